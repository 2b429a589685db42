/**
 * genlab: generative models in TypeScript. This is the one public entry point.
 * @example
 * import { tensor, Rng, randn } from 'genlab';
 */
export * from './engine/index.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './io/index.js';
export * from './io/png.js';
export * from './io/plot.js';
export * from './data/index.js';
export * from './models/index.js';
export * from './train/index.js';
export * from './eval/index.js';
export * from './sample/index.js';
