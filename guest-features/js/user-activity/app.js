// The component's entry module (componentize-js): the world's exports.
import { exportFeature } from '../../sdk-js/src/index.js';
import { UserActivity } from './user-activity.js';

export const { describe, update, merge, finish, migrate } = exportFeature(new UserActivity());
