/**
 * Masked Autoregressive Flow (Papamakarios, Pavlakou & Murray 2017, "Masked
 * Autoregressive Flow for Density Estimation", arXiv:1705.07057): a stack of MADEs
 * (Germain et al. 2015, src/nn/masked.ts), each an autoregressive affine bijection
 *   u_i = (x_i - mu_i(x_{1:i-1})) exp(-alpha_i(x_{1:i-1}))   (eq. 4),
 * log|det du/dx| = -sum_i alpha_i (eq. 5), with the order reversed between MADEs and
 * optionally batch normalization as a bijection in between (appendix B). Density
 * evaluation is one pass; sampling is D sequential passes per MADE.
 * In eval mode the batch norms use the exact statistics of the most recent training
 * examples (up to `batchNormStatsExamples`, one MNIST epoch), recomputed with the
 * current weights whenever the model leaves training, as the reference code sets them
 * from the whole training set after training (github.com/gpapamak/maf, BatchNorm.
 * set_batch_stats); the running averages only serve a model that never left training.
 * Data: points [B, D], or images flattened to [B, C*H*W] (dequantized and
 * logit-transformed as Real NVP sec. 4.1; bits/dim on the [0, 256) pixel scale).
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { sum } from '../engine/ops/reduce.js';
import { Module } from '../nn/module.js';
import { MaskedLinear, madeMasks } from '../nn/masked.js';
import {
  FlowLayer, FlowSequence, Reverse, BatchNormFlow, standardNormalLogProb, dequantizeLogit, logitToImage, sampleLatents, flowNll,
  fitBatchNormStatistics,
} from '../nn/flows.js';
import type { StateDict } from '../nn/module.js';
import type { FlowOutput } from '../nn/flows.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, Samples, SampleOptions } from './contract.js';
import { registerModel } from './registry.js';
import type { Config } from './registry.js';

export interface MafConfig {
  type: 'maf';
  /** Number of MADEs (autoregressive layers). */
  nMades: number;
  /** Width of each MADE's hidden layers. */
  hiddenDim: number;
  /** Hidden layers per MADE. */
  nHidden: number;
  /** Batch normalization (a bijection with running statistics) after each MADE. */
  batchNorm: boolean;
  /**
   * Batch norm: how many of the most recent training examples give the exact eval-mode
   * statistics (kept as bytes for images; 0: keep the running averages).
   */
  batchNormStatsExamples: number;
  /** Images: logit transform y = logit(alpha + (1 - 2 alpha) x). */
  alpha: number;
}

export const MAF_DEFAULTS: Config = { nMades: 5, hiddenDim: 256, nHidden: 2, batchNorm: true, batchNormStatsExamples: 60000, alpha: 0.05 };

export const MAF_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { nMades: 3, hiddenDim: 32, nHidden: 1, batchNorm: true }, train: { steps: 200, batchSize: 64, lr: 1e-3 } },
  small: { model: { nMades: 5, hiddenDim: 128, nHidden: 2, batchNorm: true }, train: { steps: 5000, batchSize: 128, lr: 1e-3, schedule: 'cosine', clipNorm: 100 } },
};

/** Bound A of the log-scales, alpha in (-A, A). */
const ALPHA_BOUND = 5;

/** Rows per block when recomputing the batch-norm statistics. */
const STATS_CHUNK = 2000;

/**
 * A ring buffer of the most recent training inputs, rows of D values: image pixels as
 * clamped bytes round(255 x) (all that dequantizeLogit keeps of x), points as
 * float32. It grows by doubling up to `capacity` rows, then overwrites the oldest.
 */
class RecentRows {
  data: Uint8ClampedArray | Float32Array;
  count = 0;
  #next = 0;

  constructor(readonly capacity: number, readonly dim: number, readonly bytes: boolean) {
    this.data = this.#alloc(Math.min(capacity, 1024));
  }

  #alloc(rows: number): Uint8ClampedArray | Float32Array {
    return this.bytes ? new Uint8ClampedArray(rows * this.dim) : new Float32Array(rows * this.dim);
  }

  push(x: Tensor): void {
    const v = x.values();
    const D = this.dim;
    for (let r = 0; r < x.shape[0]; r++) {
      if (this.#next * D === this.data.length) {
        // Not wrapped yet (next === count): grow, keeping the rows in place.
        const bigger = this.#alloc(Math.min(this.capacity, 2 * this.count));
        bigger.set(this.data);
        this.data = bigger;
      }
      const o = this.#next * D;
      if (this.bytes) for (let i = 0; i < D; i++) this.data[o + i] = Math.round(v[r * D + i] * 255);
      else this.data.set(v.subarray(r * D, (r + 1) * D), o);
      this.#next = (this.#next + 1) % this.capacity;
      this.count = Math.min(this.count + 1, this.capacity);
    }
  }

  /** Rows [start, end) as a float tensor [end - start, D] (images back in [0, 1]). */
  rows(start: number, end: number): Tensor {
    const D = this.dim;
    const part = this.data.subarray(start * D, end * D);
    const f = this.bytes ? Float32Array.from(part, (b) => b / 255) : Float32Array.from(part);
    return new Tensor(f, [end - start, D]);
  }
}

/** One MADE as an autoregressive affine bijection x -> u (MAF eqs. 4-5). */
export class MadeFlow extends FlowLayer {
  readonly dim: number;
  readonly layers: MaskedLinear[] = [];

  constructor(dim: number, hiddenDim: number, nHidden: number, rng: Rng) {
    super();
    this.dim = dim;
    const hidden = Array.from({ length: nHidden }, () => hiddenDim);
    const { masks } = madeMasks(dim, hidden, { ordering: 'natural', outputMultiple: 2 });
    let d = dim;
    masks.forEach((mask, i) => {
      const out = i < nHidden ? hiddenDim : 2 * dim;
      this.layers.push(this.registerModule(String(i), new MaskedLinear(d, out, rng, { mask })));
      d = out;
    });
    // Zero output layer: the flow starts as the identity.
    const last = this.layers[this.layers.length - 1];
    noGrad(() => {
      last.weight.data.fill(0);
      last.bias!.data.fill(0);
    });
  }

  /** mu and alpha [B, D] of each dimension given the dimensions before it. */
  params(x: Tensor): { mu: Tensor; alpha: Tensor } {
    let h = x;
    this.layers.forEach((l, i) => {
      h = l.forward(h);
      if (i < this.layers.length - 1) h = h.relu();
    });
    // alpha = A tanh(raw / A): unbounded log-scales overflowed float32 on test images
    // unlike any training batch (exp(-alpha) stacked over MADEs); A = 5 caps each MADE's
    // per-dimension scale at e^5.
    const raw = h.slice(1, this.dim, 2 * this.dim);
    return { mu: h.slice(1, 0, this.dim), alpha: raw.div(ALPHA_BOUND).tanh().mul(ALPHA_BOUND) };
  }

  forward(x: Tensor): FlowOutput {
    const { mu, alpha } = this.params(x);
    return { y: x.sub(mu).mul(alpha.neg().exp()), logdet: sum(alpha, 1).neg() };
  }

  /** x_i = u_i exp(alpha_i) + mu_i, in order: after pass k the first k dimensions are exact. */
  inverse(u: Tensor): Tensor {
    let x = u.mul(0);
    for (let k = 0; k < this.dim; k++) {
      const { mu, alpha } = this.params(x);
      x = u.mul(alpha.exp()).add(mu);
    }
    return x;
  }
}

export class MAF extends Module implements GenerativeModel {
  readonly type = 'maf';
  readonly config: MafConfig;
  readonly image: boolean;
  flow: FlowSequence;
  private readonly shape: number[];
  private readonly dim: number;
  /** Batch norm: recent training inputs, and whether training changed the model since the statistics were fitted. */
  #recent: RecentRows | null = null;
  #statsStale = false;

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(MAF_DEFAULTS as unknown as MafConfig), ...(config as unknown as MafConfig), type: 'maf' };
    const c = this.config;
    this.image = data.kind === 'image';
    this.shape = data.shape;
    this.dim = data.shape.reduce((a, b) => a * b, 1);
    if (this.dim < 2) throw new Error(`maf: data needs at least 2 dimensions, got [${data.shape}]`);
    const layers: FlowLayer[] = [];
    for (let i = 0; i < c.nMades; i++) {
      layers.push(new MadeFlow(this.dim, c.hiddenDim, c.nHidden, rng));
      if (c.batchNorm && i < c.nMades - 1) layers.push(new BatchNormFlow(this.dim));
      if (i < c.nMades - 1) layers.push(new Reverse());
    }
    this.flow = this.registerModule('flow', new FlowSequence(layers));
  }

  /** f: flattened data (logit space for images) [B, D] -> u [B, D], with log|det|. */
  encode(y: Tensor): FlowOutput {
    return this.flow.forward(y);
  }

  /** f^-1: u [B, D] -> flattened data (logit space for images). */
  decode(u: Tensor): Tensor {
    return this.flow.inverse(u);
  }

  /** log p(x) per example [B] in nats (images: dequantized pixels on the [0, 256) scale). */
  logProb(x: Tensor, rng: Rng | null = null): Tensor {
    const B = x.shape[0];
    if (!this.image) {
      const { y, logdet } = this.encode(x.reshape([B, this.dim]));
      return standardNormalLogProb(y).add(logdet);
    }
    const d = dequantizeLogit(x, this.config.alpha, rng);
    const { y, logdet } = this.encode(d.y.reshape([B, this.dim]));
    return standardNormalLogProb(y).add(logdet).add(d.logdet);
  }

  loss(batch: Batch, rng: Rng): LossOutput {
    if (this.training && this.config.batchNorm && this.config.batchNormStatsExamples > 0) {
      this.#recent ??= new RecentRows(this.config.batchNormStatsExamples, this.dim, this.image);
      this.#recent.push(batch.x);
      this.#statsStale = true;
    }
    const nll = this.logProb(batch.x, rng).mean().neg();
    if (!this.image) return { loss: nll, metrics: { nll: nll.item() } };
    const bpd = nll.div(this.dim * Math.LN2);
    return { loss: bpd, metrics: { bitsPerDim: bpd.item() } };
  }

  sample(n: number, rng: Rng, _cond?: Tensor, opts: SampleOptions = {}): Samples {
    const T = opts.temperature === undefined ? 1 : Number(opts.temperature);
    return noGrad(() => {
      const y = this.decode(sampleLatents([[this.dim]], n, T, rng)[0]).reshape([n, ...this.shape]);
      if (!this.image) return { kind: 'points', points: y } as Samples;
      return { kind: 'image', images: logitToImage(y, this.config.alpha) } as Samples;
    });
  }

  evaluate(test: Batch, rng: Rng): Record<string, number> {
    const { nll, bitsPerDim } = flowNll((x) => this.logProb(x, rng), test.x);
    return this.image ? { nll, bitsPerDim, examples: test.x.shape[0] } : { nll, examples: test.x.shape[0] };
  }

  /**
   * Set the batch norms to the exact statistics of the recent training examples under
   * the current weights (images dequantized with a fixed seed), if training has run
   * since they were last set.
   */
  fitBatchNormStats(): void {
    const recent = this.#recent;
    if (!this.#statsStale || !recent || recent.count === 0) return;
    this.#statsStale = false;
    const rng = new Rng(0);
    const chunks = noGrad(() => {
      const out: Tensor[] = [];
      for (let i = 0; i < recent.count; i += STATS_CHUNK) {
        const x = recent.rows(i, Math.min(recent.count, i + STATS_CHUNK));
        out.push(this.image ? dequantizeLogit(x, this.config.alpha, rng).y : x);
      }
      return out;
    });
    fitBatchNormStatistics(this.flow, chunks);
  }

  /** Leaving training (eval()) first fits the batch-norm statistics. */
  override train(mode = true): this {
    if (!mode) this.fitBatchNormStats();
    return super.train(mode);
  }

  /** A checkpoint saved during training gets the fitted statistics too. */
  override stateDict(): StateDict {
    this.fitBatchNormStats();
    return super.stateDict();
  }
}

registerModel({
  type: 'maf',
  description: 'Masked autoregressive flow (stacked MADEs, order reversal, batch norm); 2-D points or flattened images; exact NLL',
  data: ['points', 'image'],
  defaultData: '8gaussians',
  defaults: MAF_DEFAULTS,
  presets: MAF_PRESETS,
  create: (config, rng, data) => new MAF(config, rng, data),
});
