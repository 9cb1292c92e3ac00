// The component's entry module (componentize-js): the world's exports.
import { exportFeature } from '../../sdk-js/src/index.js';
import { SessionStats } from './session-stats.js';

export const { describe, update, merge, finish, migrate } = exportFeature(new SessionStats());
