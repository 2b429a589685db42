/**
 * Real NVP (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP",
 * arXiv:1605.08803): a normalizing flow of affine coupling layers, with an exact
 * log-likelihood log p(x) = log N(f(x); 0, I) + log|det df/dx| (eq. 3).
 *
 * - Points [B, D]: `nCouplings` couplings with alternating masks (eqs. 8-9) and MLP
 *   s/t networks, s = scale * tanh(h).
 * - Images [B, C, H, W]: the multi-scale architecture (sec. 3.6): at each of `nScales`
 *   scales, 3 checkerboard couplings, a squeeze, 3 channel couplings, and half of the
 *   channels factored out to the prior; then 4 checkerboard couplings at the last
 *   scale. Pixels are dequantized and logit-transformed (sec. 4.1), and the test
 *   likelihood is reported in bits per dimension on the [0, 256) pixel scale.
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { concat } from '../engine/ops/shape_ops.js';
import { Module, ModuleList } from '../nn/module.js';
import {
  FlowSequence, MaskedAffineCoupling, AffineCoupling, CouplingMLP, CouplingConvNet, checkerboardMask, couplingSplit,
  squeeze2d, unsqueeze2d, standardNormalLogProb, dequantizeLogit, logitToImage, sampleLatents, flowNll,
} from '../nn/flows.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, Samples, SampleOptions } from './contract.js';
import { registerModel } from './registry.js';
import type { Config, Preset } from './registry.js';

export interface RealnvpConfig {
  type: 'realnvp';
  /** Points: number of coupling layers (masks alternate). */
  nCouplings: number;
  /** Points: width of the s/t MLP. */
  hiddenDim: number;
  /** Points: hidden layers of the s/t MLP. */
  nHidden: number;
  /** Images: number of scales (each squeezes 2x and factors out half the channels); H and W must divide by 2^nScales. */
  nScales: number;
  /** Images: channels of the coupling conv nets. */
  hiddenChannels: number;
  /** Images: logit transform y = logit(alpha + (1 - 2 alpha) x) (paper: 0.05). */
  alpha: number;
}

export const REALNVP_DEFAULTS: Config = { nCouplings: 8, hiddenDim: 128, nHidden: 2, nScales: 2, hiddenChannels: 32, alpha: 0.05 };

export const REALNVP_PRESETS: Record<string, Preset> = {
  tiny: { model: { nCouplings: 4, hiddenDim: 32, nHidden: 2, nScales: 1, hiddenChannels: 8 }, train: { steps: 200, batchSize: 64, lr: 1e-3 } },
  // MNIST steps cost far more than 2-D ones: fewer of them keep `small` within 20 minutes.
  small: { model: { nCouplings: 8, hiddenDim: 128, nHidden: 2, nScales: 2, hiddenChannels: 32 }, train: { steps: 5000, batchSize: 128, lr: 1e-3, schedule: 'cosine', clipNorm: 100 }, forData: { mnist: { train: { steps: 1500 } } } },
};

/** One scale of the image flow: checkerboard couplings, squeeze, channel couplings. */
class Scale extends Module {
  checker: FlowSequence;
  channel: FlowSequence;
  constructor(C: number, H: number, W: number, hidden: number, rng: Rng) {
    super();
    this.checker = this.registerModule('checker', new FlowSequence(
      [0, 1, 0].map((p) => new MaskedAffineCoupling(C, checkerboardMask(H, W, p), new CouplingConvNet(C, hidden, 2 * C, rng))),
    ));
    this.channel = this.registerModule('channel', new FlowSequence(
      [0, 1, 0].map((p) => {
        const { cond, transformed } = couplingSplit(4 * C, p);
        return new AffineCoupling(4 * C, new CouplingConvNet(cond, hidden, 2 * transformed, rng), { parity: p, scale: 'tanh' });
      }),
    ));
  }
}

export class RealNVP extends Module implements GenerativeModel {
  readonly type = 'realnvp';
  readonly config: RealnvpConfig;
  readonly image: boolean;
  /** Per-example shapes of the latents, in the order encode returns them. */
  readonly latentShapes: number[][] = [];
  /** Points: the coupling chain; images: the last scale's checkerboard couplings. */
  flow: FlowSequence;
  scales: ModuleList<Scale> | null;

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(REALNVP_DEFAULTS as unknown as RealnvpConfig), ...(config as unknown as RealnvpConfig), type: 'realnvp' };
    const c = this.config;
    this.image = data.kind === 'image';
    if (!this.image) {
      const D = data.shape.reduce((a, b) => a * b, 1);
      if (data.shape.length !== 1 || D < 2) throw new Error(`realnvp: points need shape [D] with D >= 2, got [${data.shape}]`);
      this.scales = this.registerModule('scales', null);
      this.flow = this.registerModule('flow', new FlowSequence(
        Array.from({ length: c.nCouplings }, (_, i) => {
          const mask = new Tensor(Float32Array.from({ length: D }, (_, d) => ((d + i) % 2 === 0 ? 1 : 0)), [1, D]);
          return new MaskedAffineCoupling(D, mask, new CouplingMLP(D, c.hiddenDim, c.nHidden, 2 * D, rng));
        }),
      ));
      this.latentShapes.push([D]);
      return;
    }
    let [C, H, W] = data.shape;
    const f = 2 ** c.nScales;
    if (data.shape.length !== 3 || H % f !== 0 || W % f !== 0) throw new Error(`realnvp: image height and width must divide by 2^nScales = ${f}, got [${data.shape}]`);
    this.scales = this.registerModule('scales', new ModuleList<Scale>());
    for (let s = 0; s < c.nScales; s++) {
      this.scales.append(new Scale(C, H, W, c.hiddenChannels, rng));
      H /= 2;
      W /= 2;
      this.latentShapes.push([2 * C, H, W]); // half of the 4C squeezed channels leave
      C *= 2;
    }
    this.flow = this.registerModule('flow', new FlowSequence(
      [0, 1, 0, 1].map((p) => new MaskedAffineCoupling(C, checkerboardMask(H, W, p), new CouplingConvNet(C, c.hiddenChannels, 2 * C, rng))),
    ));
    this.latentShapes.push([C, H, W]);
  }

  /** f: data (logit space for images) -> latents, with log|det df/dy| per example. */
  encode(y: Tensor): { zs: Tensor[]; logdet: Tensor } {
    const zs: Tensor[] = [];
    let h = y;
    let logdet: Tensor | null = null;
    const add = (l: Tensor): void => {
      logdet = logdet ? logdet.add(l) : l;
    };
    for (const s of this.scales ?? []) {
      const a = s.checker.forward(h);
      add(a.logdet);
      const b = s.channel.forward(squeeze2d(a.y)); // (B, 4C, H/2, W/2)
      add(b.logdet);
      const half = b.y.shape[1] / 2;
      zs.push(b.y.slice(1, 0, half));
      h = b.y.slice(1, half, 2 * half);
    }
    const o = this.flow.forward(h);
    add(o.logdet);
    zs.push(o.y);
    return { zs, logdet: logdet! };
  }

  /** f^-1: latents -> data (logit space for images). */
  decode(zs: Tensor[]): Tensor {
    let h = this.flow.inverse(zs[zs.length - 1]);
    const scales = this.scales ? [...this.scales] : [];
    for (let i = scales.length - 1; i >= 0; i--) {
      const b = concat([zs[i], h], 1);
      h = scales[i].checker.inverse(unsqueeze2d(scales[i].channel.inverse(b)));
    }
    return h;
  }

  /**
   * log p(x) per example [B] in nats: of the points, or for images of the dequantized
   * pixels on the [0, 256) scale (rng draws the dequantization noise; null: mid-bin).
   */
  logProb(x: Tensor, rng: Rng | null = null): Tensor {
    let y = x;
    let pre: Tensor | null = null;
    if (this.image) {
      const d = dequantizeLogit(x, this.config.alpha, rng);
      y = d.y;
      pre = d.logdet;
    }
    const { zs, logdet } = this.encode(y);
    let lp = logdet;
    for (const z of zs) lp = lp.add(standardNormalLogProb(z));
    return pre ? lp.add(pre) : lp;
  }

  loss(batch: Batch, rng: Rng): LossOutput {
    const x = batch.x;
    const nll = this.logProb(x, rng).mean().neg();
    const D = x.size / x.shape[0];
    if (!this.image) return { loss: nll, metrics: { nll: nll.item() } };
    const bpd = nll.div(D * Math.LN2);
    return { loss: bpd, metrics: { bitsPerDim: bpd.item() } };
  }

  sample(n: number, rng: Rng, _cond?: Tensor, opts: SampleOptions = {}): Samples {
    const T = opts.temperature === undefined ? 1 : Number(opts.temperature);
    return noGrad(() => {
      const y = this.decode(sampleLatents(this.latentShapes, n, T, rng));
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
  type: 'realnvp',
  description: 'Real NVP normalizing flow (affine couplings; multi-scale for images, MLP couplings for 2-D points); exact NLL, bits/dim',
  data: ['image', 'points'],
  defaultData: 'mnist',
  defaults: REALNVP_DEFAULTS,
  presets: REALNVP_PRESETS,
  create: (config, rng, data) => new RealNVP(config, rng, data),
});
