/** Sampling tools: decoding strategies, hierarchical sampling, latent interpolation. */
export * from './decoding.js';
export * from './hierarchical.js';
export * from './latent.js';
