/** Model families, registered by type (see registry.ts and contract.ts). */
import { registerModel } from './registry.js';
import { VAE, VAE_CHOICES, VAE_DEFAULTS, VAE_PRESETS } from './vae.js';

export * from './contract.js';
export * from './registry.js';
export { VAE, VAE_DEFAULTS, VAE_PRESETS } from './vae.js';
export type { VaeConfig } from './vae.js';

registerModel({
  type: 'vae',
  description: 'Variational autoencoder (MLP or conv; Bernoulli or Gaussian likelihood; beta, KL annealing)',
  data: ['image'],
  defaultData: 'mnist',
  defaults: VAE_DEFAULTS,
  presets: VAE_PRESETS,
  choices: VAE_CHOICES,
  create: (config, rng, data) => new VAE(config, rng, data),
});
