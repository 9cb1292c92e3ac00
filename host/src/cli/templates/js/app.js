// The component's entry module (componentize-js): the world's exports.
import { exportFeature } from './sdk/index.js';
import { Plugin } from './plugin.js';

export const { describe, update, merge, finish, migrate } = exportFeature(new Plugin());
