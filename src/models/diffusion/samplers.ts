/**
 * Reverse-process samplers over a `NoiseSchedule`, for any denoiser: a function from
 * (x_t, t) to the network output. They know nothing of the network (diffusers'
 * `scheduling_ddpm.py` / `scheduling_ddim.py` `step()`).
 *
 * - DDPM ancestral sampling (Ho et al. 2020, arXiv:2006.11239, Algorithm 2 with the
 *   posterior of eqs. 6-7 and sigma_t^2 = posteriorVariance, "fixed small").
 * - DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models",
 *   arXiv:2010.02502, eq. 12 with sigma of eq. 16): any sub-sequence of the timesteps
 *   and any eta; eta = 1 over all T steps is the DDPM posterior, eta = 0 is
 *   deterministic. Timesteps are spaced "trailing" (Lin et al. 2023, arXiv:2305.08891,
 *   table 2), so the first step always starts from t = T-1, pure noise.
 */
import { tidy } from '../../engine/tensor.js';
import type { Tensor } from '../../engine/tensor.js';
import type { Rng } from '../../engine/rng.js';
import { randn } from '../../engine/ops/random.js';
import type { NoiseSchedule, Prediction } from './schedule.js';

/** The (guided) network output at one timestep shared by every row of x_t. */
export type Denoise = (xt: Tensor, t: number) => Tensor;

export type SamplerName = 'ddpm' | 'ddim';

export interface SamplerOptions {
  /** 'ddpm' (ancestral, all T steps) or 'ddim' (`steps` steps, stochasticity `eta`). */
  sampler: SamplerName;
  /** DDIM: number of denoising steps (1..T). */
  steps: number;
  /** DDIM: 0 deterministic, 1 the DDPM posterior variance. */
  eta: number;
  /** Clip the predicted x_0 to [-1, 1] (images). */
  clip: boolean;
  /** Record this many frames of x_t (first: x_T, last: x_0); 0 for none. */
  frames?: number;
}

/** DDIM timesteps, trailing spacing: round(T - i T / S) - 1 for i = 0..S-1 (all T when S = T). */
export function ddimTimesteps(T: number, steps: number): number[] {
  if (!(Number.isInteger(steps) && steps >= 1 && steps <= T)) throw new RangeError(`ddim: steps must be an integer in 1..${T}, got ${steps}`);
  const ts: number[] = [];
  for (let i = 0; i < steps; i++) ts.push(Math.round(T - (i * T) / steps) - 1);
  return ts;
}

/**
 * The output read as (x_0, eps). With clipping, x_0 is clamped to [-1, 1] and eps is
 * re-derived from the clamped x_0, eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)
 * (guided-diffusion's `ddim_sample`), so DDIM moves along the clipped prediction: an eps
 * left as predicted pulls x_t away from it at every step, and with 50 steps and
 * guidance the samples saturate (MNIST, w = 2: 15 % of digits the asked class, 99 %
 * with the eps re-derived).
 */
function x0AndEps(s: NoiseSchedule, prediction: Prediction, out: Tensor, xt: Tensor, t: number, clip: boolean): { x0: Tensor; eps: Tensor } {
  const { x0, eps } = s.toX0Eps(prediction, out, xt, t);
  if (!clip) return { x0, eps };
  const x0c = x0.clamp(-1, 1);
  return { x0: x0c, eps: s.toX0Eps('x0', x0c, xt, t).eps };
}

/**
 * One DDPM step x_t -> x_{t-1}:
 * 1. read the output as x_0 (clipped for images);
 * 2. posterior mean coef1 x_0 + coef2 x_t (eq. 7);
 * 3. add sqrt(posteriorVariance_t) z, except at t = 0.
 */
export function ddpmStep(s: NoiseSchedule, prediction: Prediction, out: Tensor, xt: Tensor, t: number, noise: Tensor | null, clip: boolean): Tensor {
  const { x0 } = x0AndEps(s, prediction, out, xt, t, clip);
  const mean = s.posteriorMean(x0, xt, t);
  return t > 0 && noise ? mean.add(noise.mul(Math.sqrt(s.posteriorVariance[t]))) : mean;
}

/** DDIM sigma_t^2 between steps t and tPrev (eq. 16 without eta); tPrev < 0 means x_0. */
export function ddimVariance(s: NoiseSchedule, t: number, tPrev: number): number {
  const aT = s.alphasCumprod[t];
  const aP = tPrev >= 0 ? s.alphasCumprod[tPrev] : 1;
  return ((1 - aP) / (1 - aT)) * (1 - aT / aP);
}

/**
 * One DDIM step x_t -> x_{tPrev} (eq. 12):
 * 1. read the output as (x_0, eps), x_0 clipped for images (eps as predicted);
 * 2. sigma = eta sqrt(ddimVariance);
 * 3. x_prev = sqrt(abar_prev) x_0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z.
 */
export function ddimStep(
  s: NoiseSchedule, prediction: Prediction, out: Tensor, xt: Tensor, t: number, tPrev: number, eta: number, noise: Tensor | null, clip: boolean,
): Tensor {
  const { x0, eps } = x0AndEps(s, prediction, out, xt, t, clip);
  const aP = tPrev >= 0 ? s.alphasCumprod[tPrev] : 1;
  const sigma = eta * Math.sqrt(ddimVariance(s, t, tPrev));
  const dirCoef = Math.sqrt(Math.max(0, 1 - aP - sigma * sigma));
  const x = x0.mul(Math.sqrt(aP)).add(eps.mul(dirCoef));
  return sigma > 0 && noise ? x.add(noise.mul(sigma)) : x;
}

/**
 * Run the reverse process from x_T ~ N(0, I) of `shape`.
 * @example
 * const { x } = sampleLoop(schedule, 'epsilon', (xt, t) => net.forward(xt, t), [16, 2], rng,
 *   { sampler: 'ddim', steps: 50, eta: 0, clip: false });
 */
export function sampleLoop(
  s: NoiseSchedule, prediction: Prediction, denoise: Denoise, shape: number[], rng: Rng, opts: SamplerOptions,
): { x: Tensor; frames: Tensor[] } {
  const ts = opts.sampler === 'ddpm' ? ddimTimesteps(s.T, s.T) : ddimTimesteps(s.T, opts.steps);
  const nFrames = opts.frames ?? 0;
  // Frames after these many steps: 0 (x_T) .. ts.length (x_0), evenly spaced.
  const at = new Set<number>();
  for (let f = 0; f < nFrames; f++) at.add(nFrames === 1 ? ts.length : Math.round((f * ts.length) / (nFrames - 1)));
  const frames: Tensor[] = [];
  let x = randn(shape, rng);
  if (at.has(0)) frames.push(x);
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i];
    const xt = x;
    // One scope per step: the network's activations are reused by the next step.
    x = tidy(() => {
      const out = denoise(xt, t);
      if (opts.sampler === 'ddpm') return ddpmStep(s, prediction, out, xt, t, t > 0 ? randn(shape, rng) : null, opts.clip);
      const tPrev = i + 1 < ts.length ? ts[i + 1] : -1;
      return ddimStep(s, prediction, out, xt, t, tPrev, opts.eta, opts.eta > 0 && tPrev >= 0 ? randn(shape, rng) : null, opts.clip);
    });
    if (at.has(i + 1)) frames.push(x);
  }
  return { x, frames };
}
