/**
 * Model families. Each file registers its types with `registerModel` when imported;
 * importing this index registers them all.
 */
export * from './contract.js';
export * from './registry.js';
export * from './vae.js';
export * from './gan.js';
export * from './dcgan.js';
export * from './cgan.js';
export * from './cvae.js';
export * from './rnn_lm.js';
export * from './gpt.js';
export * from './seq2seq.js';
export * from './made.js';
export * from './pixelcnn.js';
export * from './ntm.js';
export * from './realnvp.js';
export * from './glow.js';
export * from './maf.js';
export * from './ddpm.js';
export * from './hier.js';
export * from './sequence.js';
