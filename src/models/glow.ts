/**
 * Glow (Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1
 * Convolutions", arXiv:1807.03039): a normalizing flow whose step is actnorm ->
 * invertible 1x1 convolution (LU form) -> affine coupling (table 1), with an exact
 * log-likelihood.
 *
 * - Images [B, C, H, W]: the multi-scale architecture of fig. 2: `nLevels` levels,
 *   each a squeeze and `nSteps` flow steps, then a split that factors out half the
 *   channels, whose prior is a Gaussian with mean and log-scale predicted from the
 *   kept half by a zero-initialised conv (`splitPrior`, the learned prior of the
 *   official code) or N(0, I). Pixels are dequantized and logit-transformed as in
 *   Real NVP, and bits per dimension are on the [0, 256) pixel scale.
 * - Points [B, D]: `nSteps` steps with an invertible D x D linear map in LU form and
 *   MLP couplings.
 * Actnorm initialises from the first training batch (sec. 3.1); sampling takes a
 * temperature T (z ~ N(0, T^2 I), sec. 5.5). The coupling scale is floored, s =
 * sigmoid(h + 2) + 1e-3 (nn/flows.ts), and image decoding clamps its intermediate
 * values (DECODE_BOUND), so samples of an undertrained model are finite pixels.
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { concat } from '../engine/ops/shape_ops.js';
import { softplus } from '../engine/ops/elementwise.js';
import { Module, ModuleList } from '../nn/module.js';
import { Conv2d } from '../nn/layers.js';
import {
  FlowSequence, ActNorm, InvConv1x1, AffineCoupling, CouplingMLP, CouplingConvNet, couplingSplit, squeeze2d, unsqueeze2d,
  standardNormalLogProb, gaussianLogProb, dequantizeLogit, logitToImage, sampleLatents, flowNll,
} from '../nn/flows.js';
import type { FlowLayer } from '../nn/flows.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, Samples, SampleOptions } from './contract.js';
import { registerModel } from './registry.js';
import type { Config, Preset } from './registry.js';

export interface GlowConfig {
  type: 'glow';
  /** Images: number of levels L (each squeezes 2x; all but the last split off half the channels). */
  nLevels: number;
  /** Flow steps K per level (points: in total). */
  nSteps: number;
  /** Images: channels of the coupling conv nets. */
  hiddenChannels: number;
  /** Points: width of the coupling MLP. */
  hiddenDim: number;
  /** Points: hidden layers of the coupling MLP. */
  nHidden: number;
  /** Images: learned conditional Gaussian prior for the split-off halves (else N(0, I)). */
  splitPrior: boolean;
  /** Images: logit transform y = logit(alpha + (1 - 2 alpha) x). */
  alpha: number;
}

export const GLOW_DEFAULTS: Config = { nLevels: 2, nSteps: 8, hiddenChannels: 64, hiddenDim: 128, nHidden: 2, splitPrior: true, alpha: 0.05 };

export const GLOW_PRESETS: Record<string, Preset> = {
  tiny: { model: { nLevels: 1, nSteps: 3, hiddenChannels: 8, hiddenDim: 32, nHidden: 2 }, train: { steps: 200, batchSize: 64, lr: 1e-3 } },
  // MNIST steps cost far more than 2-D ones: fewer of them keep `small` within 20 minutes.
  small: { model: { nLevels: 2, nSteps: 6, hiddenChannels: 32, hiddenDim: 128, nHidden: 2 }, train: { steps: 5000, batchSize: 128, lr: 1e-3, schedule: 'cosine', clipNorm: 100 }, forData: { mnist: { train: { steps: 2500 } } } },
};

const SOFTPLUS_1 = Math.log1p(Math.E);

/**
 * Images: bound on every intermediate value of decode, a numerical guard outside the
 * bijection. Encoding data keeps every value small (logit pixels lie in +-2.94 and
 * actnorm standardises; MNIST test images stay within +-13 through a 200-step `small`
 * model), so the clamp never acts on the inverse of an encoded image. A temperature-1 sample of an undertrained model can leave that region and
 * grow by up to 1/SIGMOID_SCALE_MIN per coupling: past float32's 3.4e38 it becomes
 * Inf, and the next conv turns Inf - Inf into NaN pixels. Such a sample's logits are
 * far beyond +-2.94 anyway, where logitToImage saturates the pixel (as the official
 * Glow's postprocess clips to [0, 255]), so clamping keeps it finite without changing
 * any pixel a bounded trajectory would give.
 */
const DECODE_BOUND = 1e6;

/** f^-1 of a level's steps for images: each layer's output clamped to +-DECODE_BOUND. */
function invertSteps(steps: FlowSequence, y: Tensor): Tensor {
  let x = y;
  for (let i = steps.length - 1; i >= 0; i--) x = steps.at(i).inverse(x).clamp(-DECODE_BOUND, DECODE_BOUND);
  return x;
}

/** One step of flow (Glow table 1): actnorm, invertible 1x1 conv, affine coupling. */
function flowStep(C: number, net: Module & { forward(x: Tensor): Tensor }, rng: Rng): FlowLayer[] {
  return [new ActNorm(C), new InvConv1x1(C, rng), new AffineCoupling(C, net, { parity: 0, scale: 'sigmoid' })];
}

/** One level: squeeze, K steps, and (but the last) the prior of the split-off half. */
class Level extends Module {
  steps: FlowSequence;
  prior: Conv2d | null;
  constructor(C: number, K: number, hidden: number, split: boolean, splitPrior: boolean, rng: Rng) {
    super();
    const { cond, transformed } = couplingSplit(C, 0);
    this.steps = this.registerModule('steps', new FlowSequence(
      Array.from({ length: K }, () => flowStep(C, new CouplingConvNet(cond, hidden, 2 * transformed, rng), rng)).flat(),
    ));
    let prior: Conv2d | null = null;
    if (split && splitPrior) {
      prior = new Conv2d(C / 2, C, 3, rng, { padding: 1 });
      noGrad(() => {
        prior!.weight.data.fill(0);
        prior!.bias!.data.fill(0);
      });
    }
    this.prior = this.registerModule('prior', prior);
  }

  /**
   * Mean and log-std of the split-off half given the kept half h. The log-std is
   * bounded above, log sigma = softplus(1) - softplus(1 - raw) <= 1.31 (0 at raw = 0):
   * an unbounded linear prior extrapolates to huge scales on the out-of-distribution h
   * of an undertrained model at sampling time, and the samples overflow.
   */
  priorParams(h: Tensor): { mean: Tensor; logStd: Tensor } {
    const o = this.prior!.forward(h);
    const c = o.shape[1] / 2;
    const raw = o.slice(1, c, 2 * c);
    return { mean: o.slice(1, 0, c), logStd: softplus(raw.neg().add(1)).neg().add(SOFTPLUS_1) };
  }
}

export class Glow extends Module implements GenerativeModel {
  readonly type = 'glow';
  readonly config: GlowConfig;
  readonly image: boolean;
  /** Per-example shapes of the latents, in the order encode returns them. */
  readonly latentShapes: number[][] = [];
  /** Points: the chain of steps. */
  flow: FlowSequence | null;
  levels: ModuleList<Level> | null;

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(GLOW_DEFAULTS as unknown as GlowConfig), ...(config as unknown as GlowConfig), type: 'glow' };
    const c = this.config;
    this.image = data.kind === 'image';
    if (!this.image) {
      const D = data.shape.reduce((a, b) => a * b, 1);
      if (data.shape.length !== 1 || D < 2) throw new Error(`glow: points need shape [D] with D >= 2, got [${data.shape}]`);
      const { cond, transformed } = couplingSplit(D, 0);
      this.flow = this.registerModule('flow', new FlowSequence(
        Array.from({ length: c.nSteps }, () => flowStep(D, new CouplingMLP(cond, c.hiddenDim, c.nHidden, 2 * transformed, rng), rng)).flat(),
      ));
      this.levels = this.registerModule('levels', null);
      this.latentShapes.push([D]);
      return;
    }
    let [C, H, W] = data.shape;
    const f = 2 ** c.nLevels;
    if (data.shape.length !== 3 || H % f !== 0 || W % f !== 0) throw new Error(`glow: image height and width must divide by 2^nLevels = ${f}, got [${data.shape}]`);
    this.flow = this.registerModule('flow', null);
    this.levels = this.registerModule('levels', new ModuleList<Level>());
    for (let l = 0; l < c.nLevels; l++) {
      C *= 4;
      H /= 2;
      W /= 2;
      const split = l < c.nLevels - 1;
      this.levels.append(new Level(C, c.nSteps, c.hiddenChannels, split, c.splitPrior, rng));
      if (split) {
        this.latentShapes.push([C / 2, H, W]);
        C /= 2;
      }
    }
    this.latentShapes.push([C, H, W]);
  }

  /**
   * f: data (logit space for images) -> latents, with log|det df/dy| and the log
   * prior density of the latents (split priors included), per example.
   */
  encode(y: Tensor): { zs: Tensor[]; logdet: Tensor; logPrior: Tensor } {
    if (this.flow) {
      const o = this.flow.forward(y);
      return { zs: [o.y], logdet: o.logdet, logPrior: standardNormalLogProb(o.y) };
    }
    const zs: Tensor[] = [];
    let h = y;
    let logdet: Tensor | null = null;
    let logPrior: Tensor | null = null;
    const levels = [...this.levels!];
    levels.forEach((lv, i) => {
      const o = lv.steps.forward(squeeze2d(h));
      logdet = logdet ? logdet.add(o.logdet) : o.logdet;
      let lp: Tensor;
      if (i < levels.length - 1) {
        const half = o.y.shape[1] / 2;
        const z = o.y.slice(1, 0, half);
        h = o.y.slice(1, half, 2 * half);
        if (lv.prior) {
          const { mean, logStd } = lv.priorParams(h);
          lp = gaussianLogProb(z, mean, logStd);
        } else {
          lp = standardNormalLogProb(z);
        }
        zs.push(z);
      } else {
        zs.push(o.y);
        lp = standardNormalLogProb(o.y);
      }
      logPrior = logPrior ? logPrior.add(lp) : lp;
    });
    return { zs, logdet: logdet!, logPrior: logPrior! };
  }

  /**
   * f^-1: latents -> data (logit space for images). With `noise` set, zs are standard
   * normal draws (times the temperature) that become latents through the split priors.
   * Images: exact wherever every intermediate value stays within +-DECODE_BOUND (all
   * encoded data); beyond it values are clamped, so the result is always finite.
   */
  decode(zs: Tensor[], noise = false): Tensor {
    if (this.flow) return this.flow.inverse(zs[0]);
    const levels = [...this.levels!];
    let h = zs[zs.length - 1];
    for (let i = levels.length - 1; i >= 0; i--) {
      const lv = levels[i];
      if (i < levels.length - 1) {
        let z = zs[i];
        if (noise && lv.prior) {
          const { mean, logStd } = lv.priorParams(h);
          z = mean.add(logStd.exp().mul(z));
        }
        h = concat([z, h], 1);
      }
      h = unsqueeze2d(invertSteps(lv.steps, h));
    }
    return h;
  }

  /** log p(x) per example [B] in nats (images: dequantized pixels on the [0, 256) scale). */
  logProb(x: Tensor, rng: Rng | null = null): Tensor {
    if (!this.image) {
      const { logdet, logPrior } = this.encode(x);
      return logPrior.add(logdet);
    }
    const d = dequantizeLogit(x, this.config.alpha, rng);
    const { logdet, logPrior } = this.encode(d.y);
    return logPrior.add(logdet).add(d.logdet);
  }

  loss(batch: Batch, rng: Rng): LossOutput {
    const x = batch.x;
    const nll = this.logProb(x, rng).mean().neg();
    if (!this.image) return { loss: nll, metrics: { nll: nll.item() } };
    const bpd = nll.div((x.size / x.shape[0]) * Math.LN2);
    return { loss: bpd, metrics: { bitsPerDim: bpd.item() } };
  }

  sample(n: number, rng: Rng, _cond?: Tensor, opts: SampleOptions = {}): Samples {
    const T = opts.temperature === undefined ? 1 : Number(opts.temperature);
    return noGrad(() => {
      const y = this.decode(sampleLatents(this.latentShapes, n, T, rng), true);
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
  type: 'glow',
  description: 'Glow normalizing flow (actnorm, LU 1x1 convolutions, affine couplings; multi-scale for images, 2-D variant); exact NLL, bits/dim',
  data: ['image', 'points'],
  defaultData: 'mnist',
  defaults: GLOW_DEFAULTS,
  presets: GLOW_PRESETS,
  create: (config, rng, data) => new Glow(config, rng, data),
});
