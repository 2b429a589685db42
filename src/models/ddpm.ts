/**
 * Denoising diffusion (Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic
 * Models", arXiv:2006.11239): learn to undo x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
 * by regressing the network output on eps (DDPM eq. 14, L_simple), x_0, or
 * v (Salimans & Ho 2022, arXiv:2202.00512); sample by ancestral DDPM steps or by DDIM
 * (Song et al. 2021, arXiv:2010.02502) with any number of steps and eta. Class-
 * conditional models train with label dropout p_uncond and sample with classifier-free
 * guidance (Ho & Salimans 2022, arXiv:2207.12598, eq. 6):
 * out = (1 + w) out(x_t, y) - w out(x_t, null).
 *
 * Three separate parts, as diffusers' pipeline_ddpm.py: the denoiser (a U-Net for
 * images, diffusion/unet.ts; an MLP for 2-D points, below), the noise schedule
 * (diffusion/schedule.ts) and the samplers (diffusion/samplers.ts). Images are scaled
 * to [-1, 1]; points are standardised with a mean and scale taken from the first
 * training batch (buffers, saved with the weights).
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { randn, randint } from '../engine/ops/random.js';
import { concat, stack } from '../engine/ops/shape_ops.js';
import { Module } from '../nn/module.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, SampleOptions, Samples } from './contract.js';
import { registerModel } from './registry.js';
import type { Config, Preset } from './registry.js';
import { NoiseSchedule } from './diffusion/schedule.js';
import type { BetaSchedule, Prediction } from './diffusion/schedule.js';
import { sampleLoop } from './diffusion/samplers.js';
import type { SamplerName } from './diffusion/samplers.js';
import { UNet } from './diffusion/unet.js';
import { MlpDenoiser } from './diffusion/mlp.js';

export interface DdpmConfig {
  type: 'ddpm';
  /** Denoiser: 'auto' (U-Net for images, MLP for points), 'unet' or 'mlp'. */
  arch: string;
  /** Diffusion steps T. */
  timesteps: number;
  /** Noise schedule: 'linear' (Ho et al.) or 'cosine' (Nichol & Dhariwal). */
  schedule: string;
  /** First and last beta of the linear schedule. */
  betaStart: number;
  betaEnd: number;
  /** What the network predicts: 'epsilon', 'x0' or 'v'. */
  prediction: string;
  /** U-Net channels per level (28/14/7 for 28x28 images). */
  channels: number[];
  /** Residual blocks per U-Net level. */
  numResBlocks: number;
  /** Width of the sinusoidal time features. */
  timeEmbedDim: number;
  /** GroupNorm groups in the U-Net. */
  groups: number;
  /** Attention heads at the lowest U-Net level (0 = no attention). */
  nHead: number;
  /** Dropout inside the residual blocks. */
  dropout: number;
  /** MLP denoiser width. */
  hiddenDim: number;
  /** MLP denoiser residual blocks. */
  nLayer: number;
  /** Class-conditional (for classifier-free guidance) when the data has classes. */
  conditional: boolean;
  /** Probability of replacing a label by the null label in training (p_uncond). */
  pUncond: number;
  /** Default guidance scale w at sampling (0 = plain conditional). */
  guidance: number;
  /** Default sampler: 'ddpm' (all T steps) or 'ddim'. */
  sampler: string;
  /** Default number of DDIM steps. */
  sampleSteps: number;
  /** Default DDIM eta (0 deterministic, 1 DDPM-like). */
  eta: number;
  /** Clip predicted x_0 to [-1, 1] when sampling images. */
  clipSample: boolean;
  /** Samples for the held-out MMD of point models. */
  evalSamples: number;
}

export const DDPM_DEFAULTS: Config = {
  arch: 'auto', timesteps: 1000, schedule: 'linear', betaStart: 1e-4, betaEnd: 0.02, prediction: 'epsilon',
  channels: [32, 64, 128], numResBlocks: 2, timeEmbedDim: 128, groups: 8, nHead: 1, dropout: 0,
  hiddenDim: 128, nLayer: 3, conditional: true, pUncond: 0.1, guidance: 2,
  sampler: 'ddim', sampleSteps: 50, eta: 0, clipSample: true, evalSamples: 2000,
};

export const DDPM_CHOICES = {
  arch: ['auto', 'unet', 'mlp'], schedule: ['linear', 'cosine'], prediction: ['epsilon', 'x0', 'v'], sampler: ['ddpm', 'ddim'],
} as const;

export const DDPM_PRESETS: Record<string, Preset> = {
  tiny: {
    model: { timesteps: 100, channels: [8, 16], numResBlocks: 1, timeEmbedDim: 16, groups: 4, hiddenDim: 64, nLayer: 2, sampleSteps: 10, evalSamples: 200 },
    train: { steps: 300, batchSize: 64, lr: 2e-3 },
  },
  // On MNIST a narrower U-Net (16/32/64, one block per level) and fewer steps keep the
  // 20-minute budget; the 2-D toys train the MLP denoiser and keep 6000 steps.
  small: {
    model: {}, train: { steps: 6000, batchSize: 64, lr: 1e-3, warmupSteps: 200, schedule: 'cosine', minLr: 1e-4, clipNorm: 1 },
    // 2600 steps: ~19 min at the 2.25 steps/s measured on an idle machine with 2 threads.
    forData: { mnist: { model: { channels: [16, 32, 64], numResBlocks: 1 }, train: { steps: 2600 } } },
  },
};

/** Resolved sampling settings: the config's defaults overridden by SampleOptions. */
export interface DdpmSampleSettings {
  sampler: SamplerName;
  steps: number;
  eta: number;
  guidance: number;
  /** Return the denoising strip (x_t over t) instead of the final samples. */
  strip: boolean;
  frames: number;
}

const SAMPLE_KEYS = ['sampler', 'steps', 'eta', 'guidance', 'strip', 'frames'];

export class DDPM extends Module implements GenerativeModel {
  readonly type = 'ddpm';
  readonly config: DdpmConfig;
  readonly schedule: NoiseSchedule;
  readonly net: UNet | MlpDenoiser;
  /** Number of classes when class-conditional (the null label is numClasses), else 0. */
  readonly numClasses: number;
  readonly isImage: boolean;
  /** Points: standardisation (x - mean) / std, set from the first training batch. */
  readonly dataMean: Tensor | null;
  readonly dataStd: Tensor | null;
  readonly dataReady: Tensor | null;
  private readonly shape: number[];

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(DDPM_DEFAULTS as unknown as DdpmConfig), ...(config as unknown as DdpmConfig), type: 'ddpm' };
    const c = this.config;
    this.shape = data.shape;
    this.isImage = data.kind === 'image';
    if (!this.isImage && data.kind !== 'points') throw new Error(`ddpm: needs image or points data, ${data.name} is ${data.kind}`);
    for (const [k, v] of [['timesteps', c.timesteps], ['sampleSteps', c.sampleSteps], ['nLayer', c.nLayer], ['numResBlocks', c.numResBlocks]] as const) {
      if (!(Number.isInteger(v) && v >= 1)) throw new Error(`ddpm: ${k} must be a positive integer, got ${v}`);
    }
    if (c.sampleSteps > c.timesteps) throw new Error(`ddpm: sampleSteps ${c.sampleSteps} exceeds timesteps ${c.timesteps}`);
    if (!(c.pUncond >= 0 && c.pUncond < 1)) throw new Error(`ddpm: pUncond must be in [0, 1), got ${c.pUncond}`);
    this.schedule = new NoiseSchedule({ timesteps: c.timesteps, schedule: c.schedule as BetaSchedule, betaStart: c.betaStart, betaEnd: c.betaEnd });
    this.numClasses = c.conditional && data.numClasses ? data.numClasses : 0;
    const arch = c.arch === 'auto' ? (this.isImage ? 'unet' : 'mlp') : c.arch;
    if (arch === 'unet') {
      if (!this.isImage) throw new Error(`ddpm: arch 'unet' needs image data, ${data.name} is ${data.kind}`);
      const unet = new UNet({
        inChannels: data.shape[0], channels: c.channels, numResBlocks: c.numResBlocks, timeEmbedDim: c.timeEmbedDim,
        groups: c.groups, nHead: c.nHead, dropout: c.dropout, numClasses: this.numClasses,
      }, rng);
      unet.checkInput([1, ...data.shape]);
      this.net = this.registerModule('unet', unet);
    } else {
      if (data.shape.length !== 1) throw new Error(`ddpm: arch 'mlp' needs flat points, data ${data.name} has shape [${data.shape}]`);
      this.net = this.registerModule('mlp', new MlpDenoiser({ dim: data.shape[0], hiddenDim: c.hiddenDim, nLayer: c.nLayer, timeEmbedDim: c.timeEmbedDim, numClasses: this.numClasses }, rng));
    }
    const D = this.isImage ? 0 : data.shape[0];
    this.dataMean = this.registerBuffer('data_mean', this.isImage ? null : new Tensor(new Float32Array(D), [D]));
    this.dataStd = this.registerBuffer('data_std', this.isImage ? null : new Tensor(new Float32Array(D).fill(1), [D]));
    this.dataReady = this.registerBuffer('data_ready', this.isImage ? null : new Tensor(new Float32Array(1), [1]));
  }

  private get prediction(): Prediction {
    return this.config.prediction as Prediction;
  }

  /** Data -> diffusion space: images [0, 1] -> [-1, 1]; points standardised. */
  toModelSpace(x: Tensor): Tensor {
    if (this.isImage) return x.mul(2).sub(1);
    return x.sub(this.dataMean!).div(this.dataStd!);
  }

  /** Diffusion space -> data. */
  fromModelSpace(x: Tensor): Tensor {
    if (this.isImage) return x.add(1).mul(0.5).clamp(0, 1);
    return x.mul(this.dataStd!).add(this.dataMean!);
  }

  /** Points: take the standardisation from the first training batch (once). */
  private initDataStats(x: Tensor): void {
    if (this.isImage || this.dataReady!.data[0] === 1 || !this.training) return;
    const m = x.mean(0).values();
    const s = x.sub(x.mean(0, true)).square().mean(0).sqrt().values();
    for (let d = 0; d < m.length; d++) {
      this.dataMean!.data[d] = m[d];
      this.dataStd!.data[d] = s[d] > 1e-6 ? s[d] : 1;
    }
    this.dataReady!.data[0] = 1;
  }

  /** The raw network output at timesteps t [B] (labels y [B] with numClasses = null, or null). */
  denoise(xt: Tensor, t: ArrayLike<number>, y: Tensor | null, rng?: Rng): Tensor {
    return this.net instanceof UNet ? this.net.forward(xt, t, y, rng) : this.net.forward(xt, t, y);
  }

  /**
   * Classifier-free guided output at one timestep t for every row (eq. 6 of Ho &
   * Salimans): (1 + w) out(x, y) - w out(x, null), both halves in one batch; w = 0 or
   * y = null is the plain conditional (or unconditional) output.
   */
  guidedOutput(xt: Tensor, t: number, y: Tensor | null, w: number): Tensor {
    const B = xt.shape[0];
    if (!y || w === 0) return this.denoise(xt, new Int32Array(B).fill(t), y);
    const both = this.denoise(concat([xt, xt], 0), new Int32Array(2 * B).fill(t), concat([y, this.nullLabels(B)], 0));
    const cond = both.slice(0, 0, B);
    const uncond = both.slice(0, B, 2 * B);
    return cond.mul(1 + w).sub(uncond.mul(w));
  }

  private nullLabels(n: number): Tensor {
    return new Tensor(new Int32Array(n).fill(this.numClasses), [n]);
  }

  loss(batch: Batch, rng: Rng): LossOutput {
    this.initDataStats(batch.x);
    const x0 = this.toModelSpace(batch.x);
    const B = x0.shape[0];
    // 1. t ~ U{0..T-1}, eps ~ N(0, I), x_t = q_sample(x_0, t, eps) (DDPM Algorithm 1).
    const t = randint(0, this.schedule.T, [B], rng).i32();
    const noise = randn(x0.shape, rng);
    const xt = this.schedule.qSample(x0, t, noise);
    // 2. Labels, each dropped to the null label with probability pUncond.
    let y: Tensor | null = null;
    if (this.numClasses > 0) {
      if (!batch.y) throw new Error('ddpm: a class-conditional model needs labels y in the batch');
      const ids = Int32Array.from(batch.y.toInt().values());
      for (let b = 0; b < B; b++) if (rng.uniform() < this.config.pUncond) ids[b] = this.numClasses;
      y = new Tensor(ids, [B]);
    }
    // 3. Regress the output on the target of the parameterisation (L_simple).
    const out = this.denoise(xt, t, y, rng);
    return { loss: out.sub(this.schedule.target(this.prediction, x0, noise, t)).square().mean() };
  }

  /** The config's sampling defaults overridden by `opts` (checked). */
  sampleSettings(opts: SampleOptions = {}): DdpmSampleSettings {
    const c = this.config;
    for (const k of Object.keys(opts)) {
      if (!SAMPLE_KEYS.includes(k)) throw new Error(`ddpm: unknown sample option '${k}'; options: ${SAMPLE_KEYS.join(', ')}`);
    }
    const num = (k: string, d: number, ok: (v: number) => boolean, what: string): number => {
      const v = opts[k] ?? d;
      if (typeof v !== 'number' || !ok(v)) throw new Error(`ddpm: sample option ${k} must be ${what}, got ${JSON.stringify(v)}`);
      return v;
    };
    const sampler = opts.sampler ?? c.sampler;
    if (sampler !== 'ddpm' && sampler !== 'ddim') throw new Error(`ddpm: sample option sampler must be 'ddpm' or 'ddim', got ${JSON.stringify(sampler)}`);
    const strip = opts.strip ?? false;
    if (typeof strip !== 'boolean') throw new Error(`ddpm: sample option strip must be true or false, got ${JSON.stringify(strip)}`);
    const T = this.schedule.T;
    return {
      sampler,
      steps: num('steps', c.sampleSteps, (v) => Number.isInteger(v) && v >= 1 && v <= T, `an integer in 1..${T}`),
      eta: num('eta', c.eta, (v) => v >= 0, 'a number >= 0'),
      guidance: num('guidance', c.guidance, Number.isFinite, 'a number'),
      strip,
      frames: num('frames', 0, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0'),
    };
  }

  /**
   * n samples. cond: labels [n] for a class-conditional model (default 0, 1, 2, ...
   * cycling). opts: sampler ('ddpm' | 'ddim'), steps, eta, guidance, strip (images: n
   * rows of `frames` frames of x_t from noise to x_0; frames default n, a square grid).
   * @example
   * model.sample(16, new Rng(0), undefined, { sampler: 'ddim', steps: 10 });
   */
  sample(n: number, rng: Rng, cond?: Tensor, opts: SampleOptions = {}): Samples {
    const st = this.sampleSettings(opts);
    if (st.strip && !this.isImage) throw new Error('ddpm: the denoising strip is for images');
    if (cond && this.numClasses === 0) throw new Error('ddpm: this model is unconditional (conditional=false or data without classes); it takes no labels');
    return noGrad(() => {
      let y: Tensor | null = null;
      if (this.numClasses > 0) {
        y = cond ? cond.toInt() : new Tensor(Int32Array.from({ length: n }, (_, i) => i % this.numClasses), [n]);
        if (y.shape[0] !== n) throw new Error(`ddpm: cond has ${y.shape[0]} labels for ${n} samples`);
      }
      const frames = st.strip ? st.frames || n : 0;
      const { x, frames: fr } = sampleLoop(this.schedule, this.prediction, (xt, t) => this.guidedOutput(xt, t, y, st.guidance), [n, ...this.shape], rng, {
        sampler: st.sampler, steps: st.steps, eta: st.eta, clip: this.isImage && this.config.clipSample, frames,
      });
      if (st.strip) {
        const strip = stack(fr.map((f) => this.fromModelSpace(f)), 1); // (n, frames, C, H, W)
        return { kind: 'image', images: strip.reshape([n * fr.length, ...this.shape]) } as Samples;
      }
      const out = this.fromModelSpace(x);
      return (this.isImage ? { kind: 'image', images: out, ...(y ? { labels: y } : {}) } : { kind: 'points', points: out }) as Samples;
    });
  }

  /**
   * Held-out metrics: the loss of the parameterisation on the test set at fixed t
   * (fixed noise, true labels), per t and averaged (valLoss); points also get the MMD
   * between fresh samples (default sampler) and the test points.
   */
  evaluate(test: Batch, rng: Rng, opts: { quick?: boolean } = {}): Record<string, number> {
    const T = this.schedule.T;
    const ts = [0.02, 0.1, 0.3, 0.5, 0.7, 0.9].map((f) => Math.min(T - 1, Math.round(f * T)));
    const nAll = test.x.shape[0];
    const n = opts.quick ? Math.min(nAll, this.isImage ? 200 : 1000) : nAll;
    const noiseRng = new Rng(2024);
    const out: Record<string, number> = {};
    let total = 0;
    const bs = this.isImage ? 100 : 1000;
    for (const t of ts) {
      let sum = 0;
      for (let i = 0; i < n; i += bs) {
        const x0 = this.toModelSpace(test.x.slice(0, i, Math.min(n, i + bs)));
        const B = x0.shape[0];
        const tt = new Int32Array(B).fill(t);
        const noise = randn(x0.shape, noiseRng);
        const y = this.numClasses > 0 && test.y ? test.y.slice(0, i, i + B).toInt() : null;
        const o = this.denoise(this.schedule.qSample(x0, tt, noise), tt, y);
        sum += o.sub(this.schedule.target(this.prediction, x0, noise, tt)).square().mean().item() * B;
      }
      out[`loss_t${t}`] = sum / n;
      total += sum / n;
    }
    out.valLoss = total / ts.length;
    if (!this.isImage) {
      const m = Math.min(opts.quick ? 500 : this.config.evalSamples, this.config.evalSamples);
      const s = this.sample(m, rng);
      if (s.kind === 'points') out.mmd = rbfMmd2(s.points, test.x.slice(0, 0, Math.min(nAll, m)));
    }
    out.examples = n;
    return out;
  }
}

/**
 * Unbiased squared MMD (Gretton et al. 2012, eq. 3) with a sum of RBF kernels of
 * bandwidths 0.1, 0.3, 1 and 3 (data units) between point sets a [n, D] and b [m, D].
 */
export function rbfMmd2(a: Tensor, b: Tensor): number {
  const A = a.values();
  const Bv = b.values();
  const D = a.shape[1];
  const n = a.shape[0];
  const m = b.shape[0];
  const gammas = [0.1, 0.3, 1, 3].map((s) => 1 / (2 * s * s));
  const k = (X: ArrayLike<number>, i: number, Y: ArrayLike<number>, j: number): number => {
    let d2 = 0;
    for (let c = 0; c < D; c++) d2 += (X[i * D + c] - Y[j * D + c]) ** 2;
    let s = 0;
    for (const g of gammas) s += Math.exp(-g * d2);
    return s;
  };
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) xx += k(A, i, A, j);
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) if (i !== j) yy += k(Bv, i, Bv, j);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) xy += k(A, i, Bv, j);
  return xx / (n * (n - 1)) + yy / (m * (m - 1)) - (2 * xy) / (n * m);
}

registerModel({
  type: 'ddpm',
  description: 'Denoising diffusion (U-Net or MLP; linear/cosine schedule; eps/x0/v; DDPM and DDIM sampling; classifier-free guidance)',
  data: ['image', 'points'],
  defaultData: 'mnist',
  defaults: DDPM_DEFAULTS,
  presets: DDPM_PRESETS,
  choices: DDPM_CHOICES,
  create: (config, rng, data) => new DDPM(config, rng, data),
});
