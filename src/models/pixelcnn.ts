/**
 * PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural
 * Networks", arXiv:1601.06759, sec. 3.4-3.5 and table 4 for binarized MNIST): a 7x7
 * masked convolution of type A (a pixel never sees itself), residual blocks built
 * around 3x3 masked convolutions of type B (fig. 5: 1x1 down to h, 3x3, 1x1 back to
 * 2h, each after a ReLU), two 1x1 ReLU layers and one Bernoulli logit per pixel, so
 *   log p(x) = sum_i log p(x_i | x_<i)   (eq. 1, raster order)
 * is exact. Sampling runs the network once per pixel (noGrad); each pass only covers
 * the window of pixels inside the receptive field of the pixel being drawn.
 * Images are binarized as the VAE does (src/models/vae.ts): dynamic Bernoulli draws in
 * training, one fixed seeded binarization of the test set.
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { bernoulli } from '../engine/ops/random.js';
import { softplus } from '../engine/ops/elementwise.js';
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/layers.js';
import { MaskedConv2d } from '../nn/masked.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, Samples } from './contract.js';
import { registerModel } from './registry.js';
import type { Config } from './registry.js';

export interface PixelCnnConfig {
  type: 'pixelcnn';
  /** Channels 2h between residual blocks (h inside them). */
  channels: number;
  /** Residual blocks of masked 3x3 (type B) convolutions. */
  nLayer: number;
  /** Kernel of the first (type A) masked convolution. */
  firstKernel: number;
  /** Channels of the two 1x1 output layers. */
  outChannels: number;
  /** How training images become binary: 'dynamic', 'threshold' or 'none' (as the VAE). */
  binarize: string;
}

export const PIXELCNN_DEFAULTS: Config = { channels: 64, nLayer: 7, firstKernel: 7, outChannels: 64, binarize: 'dynamic' };
export const PIXELCNN_CHOICES = { binarize: ['dynamic', 'threshold', 'none'] } as const;
export const PIXELCNN_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { channels: 8, nLayer: 1, firstKernel: 5, outChannels: 8 }, train: { steps: 100, batchSize: 16, lr: 3e-3 } },
  small: { model: { channels: 32, nLayer: 5, firstKernel: 7, outChannels: 32 }, train: { steps: 6000, batchSize: 32, lr: 1e-3, evalEvery: 2000, numSamples: 16 } },
};

/** Residual block (fig. 5): ReLU, 1x1 2h->h, ReLU, masked 3x3 h->h (B), ReLU, 1x1 h->2h, + input. */
class ResidualBlock extends Module {
  readonly conv1: Conv2d;
  readonly conv2: MaskedConv2d;
  readonly conv3: Conv2d;
  constructor(C: number, rng: Rng) {
    super();
    const h = Math.max(1, C >> 1);
    // 1x1 convolutions see only the same pixel: type B by construction for one colour group.
    this.conv1 = this.registerModule('conv1', new Conv2d(C, h, 1, rng));
    this.conv2 = this.registerModule('conv2', new MaskedConv2d('B', h, h, 3, rng, { padding: 1 }));
    this.conv3 = this.registerModule('conv3', new Conv2d(h, C, 1, rng));
  }
  forward(x: Tensor): Tensor {
    return x.add(this.conv3.forward(this.conv2.forward(this.conv1.forward(x.relu()).relu()).relu()));
  }
}

export class PixelCNN extends Module implements GenerativeModel {
  readonly type = 'pixelcnn';
  readonly config: PixelCnnConfig;
  readonly input: MaskedConv2d;
  readonly blocks: ResidualBlock[];
  readonly out1: Conv2d;
  readonly out2: Conv2d;
  private readonly shape: number[];
  /** Rows above a pixel that can influence its logit. */
  readonly receptiveRows: number;

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(PIXELCNN_DEFAULTS as unknown as PixelCnnConfig), ...(config as unknown as PixelCnnConfig), type: 'pixelcnn' };
    const c = this.config;
    if (data.shape.length !== 3 || data.shape[0] !== 1) throw new Error(`pixelcnn: needs one-channel images, data ${data.name} has shape [${data.shape}]`);
    if (!(c.firstKernel % 2 === 1 && c.firstKernel >= 3)) throw new Error(`pixelcnn: firstKernel must be odd and >= 3, got ${c.firstKernel}`);
    this.shape = data.shape;
    this.input = this.registerModule('input', new MaskedConv2d('A', 1, c.channels, c.firstKernel, rng, { padding: c.firstKernel >> 1 }));
    this.blocks = Array.from({ length: c.nLayer }, (_, i) => this.registerModule(`block${i}`, new ResidualBlock(c.channels, rng)));
    this.out1 = this.registerModule('out1', new Conv2d(c.channels, c.outChannels, 1, rng));
    this.out2 = this.registerModule('out2', new Conv2d(c.outChannels, 1, 1, rng));
    this.receptiveRows = (c.firstKernel >> 1) + c.nLayer;
  }

  /** Bernoulli logits [B, 1, H, W] of p(x_i | x_<i) for every pixel. */
  logits(x: Tensor): Tensor {
    let h = this.input.forward(x);
    for (const b of this.blocks) h = b.forward(h);
    return this.out2.forward(this.out1.forward(h.relu()).relu());
  }

  /** log p(x) per example [B] in nats (x binary). */
  logProb(x: Tensor): Tensor {
    const l = this.logits(x);
    return x.mul(l).sub(softplus(l)).sum([1, 2, 3]);
  }

  private prepare(x: Tensor, rng: Rng): Tensor {
    if (this.config.binarize === 'none') return x;
    if (this.config.binarize === 'threshold') return x.gt(0.5);
    return bernoulli(x, rng);
  }

  loss(batch: Batch, rng: Rng): LossOutput {
    const x = this.prepare(batch.x, rng);
    const nll = this.logProb(x).neg().mean();
    return { loss: nll, metrics: { nll: nll.item() } };
  }

  /**
   * Logits of row `i` only, from the rows of x that can reach it: a crop of rows
   * [i - receptiveRows, i] gives the same values as the whole image (the rows of the
   * crop above its reach are wrong, but row i never sees them).
   */
  rowLogits(x: Tensor, i: number): Tensor {
    const top = Math.max(0, i - this.receptiveRows);
    const l = this.logits(x.slice(2, top, i + 1)); // (B, 1, i - top + 1, W)
    return l.slice(2, i - top, i - top + 1); // (B, 1, 1, W)
  }

  /**
   * Logit of pixel (i, j) for every image [B], from the window of rows
   * [i - r, i] and columns [j - r, j + r] (r = receptiveRows: each layer reaches as
   * far sideways as upwards), by the same argument as `rowLogits`.
   */
  pixelLogit(x: Tensor, i: number, j: number): Tensor {
    const r = this.receptiveRows;
    const W = x.shape[3];
    const top = Math.max(0, i - r);
    const left = Math.max(0, j - r);
    const l = this.logits(x.slice(2, top, i + 1).slice(3, left, Math.min(W, j + r + 1)));
    return l.slice(2, i - top, i - top + 1).slice(3, j - left, j - left + 1).reshape([x.shape[0]]);
  }

  /** Pixel by pixel in raster order (H*W forward passes over small windows, no graph). */
  sample(n: number, rng: Rng): Samples {
    return noGrad(() => {
      const [C, H, W] = this.shape;
      const x = new Float32Array(n * C * H * W);
      const xt = new Tensor(x, [n, C, H, W]);
      for (let i = 0; i < H; i++) {
        for (let j = 0; j < W; j++) {
          const p = this.pixelLogit(xt, i, j).sigmoid().f32(); // (n)
          for (let b = 0; b < n; b++) x[(b * H + i) * W + j] = rng.uniform() < p[b] ? 1 : 0;
        }
      }
      return { kind: 'image', images: new Tensor(x, [n, C, H, W]) } as Samples;
    });
  }

  /** Exact test NLL in nats per image on a fixed seeded binarization, and bits per dimension. */
  evaluate(test: Batch): Record<string, number> {
    return noGrad(() => {
      const n = test.x.shape[0];
      const xAll = this.prepare(test.x, new Rng(12345));
      let nll = 0;
      for (let i = 0; i < n; i += 100) nll -= this.logProb(xAll.slice(0, i, Math.min(n, i + 100))).sum().item();
      const D = this.shape.reduce((a, b) => a * b, 1);
      return { nll: nll / n, bitsPerDim: nll / n / D / Math.LN2, examples: n };
    });
  }
}

registerModel({
  type: 'pixelcnn',
  description: 'PixelCNN: masked convolutions (type A then B residual blocks), Bernoulli pixels, exact likelihood',
  data: ['image'],
  defaultData: 'mnist',
  defaults: PIXELCNN_DEFAULTS,
  presets: PIXELCNN_PRESETS,
  choices: PIXELCNN_CHOICES,
  create: (config, rng, data) => new PixelCNN(config, rng, data),
});
