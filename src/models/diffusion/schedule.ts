/**
 * The noise schedule of a diffusion model: everything that depends on the betas and
 * nothing that depends on the network or the sampler (diffusers'
 * `schedulers/scheduling_ddpm.py` keeps the same split).
 *
 * - Linear betas (Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models",
 *   arXiv:2006.11239, sec. 4): beta_t evenly spaced from 1e-4 to 0.02, T = 1000.
 * - Cosine schedule (Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic
 *   Models", arXiv:2102.09672, eq. 17): alphaBar(t) = cos^2(((t/T + s) / (1 + s)) pi/2),
 *   s = 0.008, beta_t = 1 - alphaBar(t+1)/alphaBar(t) clipped at 0.999.
 * - Forward process q(x_t | x_0) = N(sqrt(alphasCumprod_t) x_0, (1 - alphasCumprod_t) I)
 *   (DDPM eq. 4) and posterior q(x_{t-1} | x_t, x_0) = N(posteriorMeanCoef1_t x_0 +
 *   posteriorMeanCoef2_t x_t, posteriorVariance_t I) (DDPM eqs. 6-7).
 * - Parameterisations of the network output: epsilon (DDPM), x0, and v = sqrt(abar) eps
 *   - sqrt(1 - abar) x_0 (Salimans & Ho 2022, "Progressive Distillation", arXiv:2202.00512,
 *   sec. 4), with conversions to (x0, eps) and the training target of each.
 *
 * Index t runs over 0..T-1 as in diffusers (paper step t+1). Values are kept in float64.
 */
import { Tensor } from '../../engine/tensor.js';

export type BetaSchedule = 'linear' | 'cosine';
export type Prediction = 'epsilon' | 'x0' | 'v';
/** One timestep for the whole batch, or one per example. */
export type Timestep = number | ArrayLike<number>;

export interface ScheduleOptions {
  /** Number of diffusion steps T. */
  timesteps: number;
  /** 'linear' (Ho et al.) or 'cosine' (Nichol & Dhariwal). */
  schedule: BetaSchedule;
  /** First and last beta of the linear schedule. */
  betaStart?: number;
  betaEnd?: number;
  /** Offset s of the cosine schedule. */
  cosineS?: number;
  /** Largest beta of the cosine schedule. */
  maxBeta?: number;
}

/**
 * Betas, alphas and the forward/posterior coefficients of a schedule.
 * @example
 * const s = new NoiseSchedule({ timesteps: 1000, schedule: 'linear' });
 * s.alphasCumprod[999]; // ~4.0e-5
 */
export class NoiseSchedule {
  readonly T: number;
  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** alphasCumprod of the previous step, 1 before step 0. */
  readonly alphasCumprodPrev: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  /** Variance of q(x_{t-1} | x_t, x_0): beta_t (1 - abar_{t-1}) / (1 - abar_t). */
  readonly posteriorVariance: Float64Array;
  /** log of posteriorVariance, with step 0's 0 replaced by step 1's value (DDPM code). */
  readonly posteriorLogVarianceClipped: Float64Array;
  /** Weight of x_0 in the posterior mean: beta_t sqrt(abar_{t-1}) / (1 - abar_t). */
  readonly posteriorMeanCoef1: Float64Array;
  /** Weight of x_t in the posterior mean: (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t). */
  readonly posteriorMeanCoef2: Float64Array;

  constructor(opts: ScheduleOptions) {
    const T = opts.timesteps;
    if (!(Number.isInteger(T) && T >= 2)) throw new RangeError(`NoiseSchedule: timesteps must be an integer >= 2, got ${T}`);
    this.T = T;
    this.betas = opts.schedule === 'cosine' ? cosineBetas(T, opts.cosineS ?? 0.008, opts.maxBeta ?? 0.999) : linearBetas(T, opts.betaStart ?? 1e-4, opts.betaEnd ?? 0.02);
    const n = (): Float64Array => new Float64Array(T);
    this.alphas = n();
    this.alphasCumprod = n();
    this.alphasCumprodPrev = n();
    this.sqrtAlphasCumprod = n();
    this.sqrtOneMinusAlphasCumprod = n();
    this.posteriorVariance = n();
    this.posteriorLogVarianceClipped = n();
    this.posteriorMeanCoef1 = n();
    this.posteriorMeanCoef2 = n();
    let prod = 1;
    for (let t = 0; t < T; t++) {
      const beta = this.betas[t];
      const alpha = 1 - beta;
      const prev = prod;
      prod *= alpha;
      this.alphas[t] = alpha;
      this.alphasCumprod[t] = prod;
      this.alphasCumprodPrev[t] = prev;
      this.sqrtAlphasCumprod[t] = Math.sqrt(prod);
      this.sqrtOneMinusAlphasCumprod[t] = Math.sqrt(1 - prod);
      this.posteriorVariance[t] = (beta * (1 - prev)) / (1 - prod);
      this.posteriorMeanCoef1[t] = (beta * Math.sqrt(prev)) / (1 - prod);
      this.posteriorMeanCoef2[t] = ((1 - prev) * Math.sqrt(alpha)) / (1 - prod);
    }
    for (let t = 0; t < T; t++) this.posteriorLogVarianceClipped[t] = Math.log(this.posteriorVariance[t === 0 ? 1 : t]);
  }

  /**
   * A per-example coefficient as a tensor [B, 1, ...] that broadcasts against x of rank
   * `rank` (coef[t_b] for each row b), or a plain number when every row shares one t.
   */
  coef(arr: Float64Array, t: Timestep, rank: number): Tensor | number {
    if (typeof t === 'number') return arr[t];
    const B = t.length;
    const d = new Float32Array(B);
    for (let b = 0; b < B; b++) d[b] = arr[t[b]];
    return new Tensor(d, [B, ...Array.from({ length: rank - 1 }, () => 1)]);
  }

  /** x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (DDPM eq. 4, reparameterised). */
  qSample(x0: Tensor, t: Timestep, noise: Tensor): Tensor {
    const r = x0.rank;
    return x0.mul(this.coef(this.sqrtAlphasCumprod, t, r)).add(noise.mul(this.coef(this.sqrtOneMinusAlphasCumprod, t, r)));
  }

  /** v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, sec. 4). */
  velocity(x0: Tensor, noise: Tensor, t: Timestep): Tensor {
    const r = x0.rank;
    return noise.mul(this.coef(this.sqrtAlphasCumprod, t, r)).sub(x0.mul(this.coef(this.sqrtOneMinusAlphasCumprod, t, r)));
  }

  /** What a network with this parameterisation is trained to output. */
  target(prediction: Prediction, x0: Tensor, noise: Tensor, t: Timestep): Tensor {
    if (prediction === 'epsilon') return noise;
    if (prediction === 'x0') return x0;
    return this.velocity(x0, noise, t);
  }

  /**
   * The network output read as (x_0, eps) given x_t:
   * epsilon: x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar);
   * x0:      eps = (x_t - sqrt(abar) x_0) / sqrt(1 - abar);
   * v:       x_0 = sqrt(abar) x_t - sqrt(1 - abar) v, eps = sqrt(abar) v + sqrt(1 - abar) x_t.
   */
  toX0Eps(prediction: Prediction, out: Tensor, xt: Tensor, t: Timestep): { x0: Tensor; eps: Tensor } {
    const r = xt.rank;
    const a = this.coef(this.sqrtAlphasCumprod, t, r);
    const s = this.coef(this.sqrtOneMinusAlphasCumprod, t, r);
    if (prediction === 'epsilon') return { x0: xt.sub(out.mul(s)).div(a), eps: out };
    if (prediction === 'x0') return { x0: out, eps: xt.sub(out.mul(a)).div(s) };
    return { x0: xt.mul(a).sub(out.mul(s)), eps: out.mul(a).add(xt.mul(s)) };
  }

  /** Mean of q(x_{t-1} | x_t, x_0) (DDPM eq. 7). */
  posteriorMean(x0: Tensor, xt: Tensor, t: Timestep): Tensor {
    const r = xt.rank;
    return x0.mul(this.coef(this.posteriorMeanCoef1, t, r)).add(xt.mul(this.coef(this.posteriorMeanCoef2, t, r)));
  }
}

/** beta_t evenly spaced over [start, end] (DDPM sec. 4). */
export function linearBetas(T: number, start: number, end: number): Float64Array {
  const b = new Float64Array(T);
  for (let t = 0; t < T; t++) b[t] = start + ((end - start) * t) / (T - 1);
  return b;
}

/** Cosine schedule (Improved DDPM eq. 17), each beta clipped at maxBeta. */
export function cosineBetas(T: number, s: number, maxBeta: number): Float64Array {
  const alphaBar = (u: number): number => Math.cos(((u + s) / (1 + s)) * (Math.PI / 2)) ** 2;
  const b = new Float64Array(T);
  for (let t = 0; t < T; t++) b[t] = Math.min(1 - alphaBar((t + 1) / T) / alphaBar(t / T), maxBeta);
  return b;
}
