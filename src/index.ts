/**
 * genlab: generative models in TypeScript. This is the one public entry point.
 * @example
 * import { tensor, Rng, randn } from 'genlab';
 */
export * from './engine/index.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './io/index.js';
