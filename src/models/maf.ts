/**
 * Masked Autoregressive Flow (Papamakarios, Pavlakou & Murray 2017, "Masked
 * Autoregressive Flow for Density Estimation", arXiv:1705.07057): a stack of MADEs
 * (Germain et al. 2015, src/nn/masked.ts), each an autoregressive affine bijection
 *   u_i = (x_i - mu_i(x_{1:i-1})) exp(-alpha_i(x_{1:i-1}))   (eq. 4),
 * log|det du/dx| = -sum_i alpha_i (eq. 5), with the order reversed between MADEs and
 * optionally batch normalization as a bijection in between (appendix B). Density
 * evaluation is one pass; sampling is D sequential passes per MADE.
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
} from '../nn/flows.js';
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
  /** Images: logit transform y = logit(alpha + (1 - 2 alpha) x). */
  alpha: number;
}

export const MAF_DEFAULTS: Config = { nMades: 5, hiddenDim: 256, nHidden: 2, batchNorm: true, alpha: 0.05 };

export const MAF_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { nMades: 3, hiddenDim: 32, nHidden: 1, batchNorm: true }, train: { steps: 200, batchSize: 64, lr: 1e-3 } },
  small: { model: { nMades: 5, hiddenDim: 128, nHidden: 2, batchNorm: true }, train: { steps: 5000, batchSize: 128, lr: 1e-3, schedule: 'cosine', clipNorm: 100 } },
};

/** Bound A of the log-scales, alpha in (-A, A). */
const ALPHA_BOUND = 5;

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
