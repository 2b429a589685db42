/** VAE: conformance (MLP and conv), and latent tools. */
import { conformance } from '../../test/model_conformance.js';
import './vae.js';

conformance('vae', { data: 'mnist', limit: 128 });
conformance('vae', { data: 'mnist', limit: 64, modelOverrides: { arch: 'conv' }, steps: 20 });
