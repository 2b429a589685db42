/**
 * DCGAN (Radford, Metz & Chintala 2015, "Unsupervised Representation Learning with
 * Deep Convolutional Generative Adversarial Networks", arXiv:1511.06434) for 28x28
 * images, following the paper's guidelines (section 3): strided transposed
 * convolutions in G and strided convolutions in D instead of pooling, BatchNorm in
 * both (not on G's output nor D's input), ReLU in G with Tanh output, LeakyReLU(0.2)
 * in D, weights from N(0, 0.02), Adam(2e-4, beta1 0.5).
 *   G: z -> Linear -> (2c, 7, 7) -> BN -> ReLU -> ConvT 2c->c k4 s2 p1 (14x14) -> BN
 *      -> ReLU -> ConvT c->C k4 s2 p1 (28x28) -> Tanh
 *   D: Conv C->c k4 s2 p1 (14x14) -> LReLU -> Conv c->2c k4 s2 p1 (7x7) -> BN -> LReLU
 *      -> Linear 2c*49 -> 1
 * with c = baseChannels (64 gives the 128x7x7 / 6272 sizes of the reference layout).
 * hiddenDim h > 0 adds a fully connected layer to each net, as InfoGAN's MNIST networks
 * (Chen et al. 2016, arXiv:1606.03657, appendix C.1): G: z -> Linear h -> BN -> ReLU ->
 * Linear -> (2c, 7, 7) ...; D: ... -> Linear 2c*49 -> h -> BN -> LReLU -> Linear h -> 1.
 * Data are scaled to [-1, 1] inside the model; samples come back in [0, 1]. Any loss
 * of gan.ts may be used; with 'wgan-gp' set dNorm to 'none' or 'layer' (the penalty
 * is per example, which batch norm breaks; Gulrajani et al. 2017, section 4).
 */
import { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { Module } from '../nn/module.js';
import { Linear, Conv2d, ConvTranspose2d, Embedding } from '../nn/layers.js';
import { BatchNorm1d, BatchNorm2d, LayerNorm } from '../nn/norm.js';
import { normal_, zeros_ } from '../nn/init.js';
import type { DataInfo } from './contract.js';
import { AdversarialModel, GAN_LOSSES, checkAdversarialConfig } from './gan.js';
import type { AdversarialConfig } from './gan.js';
import { registerModel } from './registry.js';
import type { Config } from './registry.js';

export interface DcganConfig extends AdversarialConfig {
  type: 'dcgan';
  /** c: channels of G's last hidden map and D's first (G's first map has 2c). */
  baseChannels: number;
  /** Normalisation in D after its second conv: 'batch' (the paper), 'layer', or 'none'. */
  dNorm: string;
  /** Width of an extra fully connected layer in G and D (InfoGAN's MNIST nets); 0: none. */
  hiddenDim: number;
}

export const DCGAN_DEFAULTS: Config = { latentDim: 100, baseChannels: 64, hiddenDim: 0, dNorm: 'batch', lossType: 'ns', gpWeight: 10, nCritic: 1, dLrScale: 1 };
export const DCGAN_CHOICES = { lossType: GAN_LOSSES, dNorm: ['batch', 'layer', 'none'] } as const;
export const DCGAN_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { latentDim: 16, baseChannels: 8 }, train: { steps: 100, batchSize: 32, lr: 2e-4, beta1: 0.5 } },
  // InfoGAN's fully connected layers at c = 32: FID-proxy 25.1 after 4000 steps, where
  // the same nets without them reach 99.2 (85.2 at 8000 steps) and over-produce 0s and
  // 9s (docs/QUALITY.md).
  small: { model: { baseChannels: 32, hiddenDim: 1024 }, train: { steps: 4000, batchSize: 64, lr: 2e-4, beta1: 0.5, logEvery: 50 } },
};

/**
 * DCGAN initialisation (section 4: "all weights ... from a zero-centered Normal
 * distribution with standard deviation 0.02"): conv, linear and embedding weights
 * N(0, 0.02), BN scale N(1, 0.02). The conditional models' label embeddings need it
 * too: left at N(0, 1) they swamp z at the start and G collapses to one image per
 * class (seen in genlab and in a PyTorch twin alike: within-class pixel std 0.04
 * after 500 steps, 0.21-0.27 with this init).
 */
export function dcganInit(m: Module, rng: Rng): void {
  for (const mod of m.modules()) {
    if (mod instanceof Embedding) {
      normal_(mod.weight, rng, 0, 0.02);
    } else if (mod instanceof Conv2d || mod instanceof ConvTranspose2d || mod instanceof Linear) {
      normal_(mod.weight, rng, 0, 0.02);
      if (mod.bias) zeros_(mod.bias);
    } else if (mod instanceof BatchNorm1d || mod instanceof BatchNorm2d) {
      if (mod.weight) normal_(mod.weight, rng, 1, 0.02);
      if (mod.bias) zeros_(mod.bias);
    }
  }
}

/** z (+ an optional conditioning vector) -> images in [-1, 1]. */
export class DcganGenerator extends Module {
  readonly fcHidden: Linear | null;
  readonly bnHidden: BatchNorm1d | null;
  readonly fc: Linear;
  readonly bn0: BatchNorm1d;
  readonly deconv1: ConvTranspose2d;
  readonly bn1: BatchNorm2d;
  readonly deconv2: ConvTranspose2d;
  /** hidden > 0: an extra Linear -> BN -> ReLU of that width before the projection. */
  constructor(inDim: number, private readonly c: number, outChannels: number, rng: Rng, hidden = 0) {
    super();
    this.fcHidden = this.registerModule('fc_hidden', hidden > 0 ? new Linear(inDim, hidden, rng, { bias: false }) : null);
    this.bnHidden = this.registerModule('bn_hidden', hidden > 0 ? new BatchNorm1d(hidden) : null);
    this.fc = this.registerModule('fc', new Linear(hidden > 0 ? hidden : inDim, 2 * c * 49, rng, { bias: false }));
    this.bn0 = this.registerModule('bn0', new BatchNorm1d(2 * c * 49));
    this.deconv1 = this.registerModule('deconv1', new ConvTranspose2d(2 * c, c, 4, rng, { stride: 2, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(c));
    this.deconv2 = this.registerModule('deconv2', new ConvTranspose2d(c, outChannels, 4, rng, { stride: 2, padding: 1 }));
  }
  forward(z: Tensor): Tensor {
    const B = z.shape[0];
    if (this.fcHidden && this.bnHidden) z = this.bnHidden.forward(this.fcHidden.forward(z)).relu(); // (B, hidden)
    const h0 = this.bn0.forward(this.fc.forward(z)).relu().reshape([B, 2 * this.c, 7, 7]); // (B, 2c, 7, 7)
    const h1 = this.bn1.forward(this.deconv1.forward(h0)).relu(); // (B, c, 14, 14)
    return this.deconv2.forward(h1).tanh(); // (B, C, 28, 28)
  }
}

/** images in [-1, 1] -> features [B, featureDim] (heads are added by the models). */
export class DcganDiscriminatorTrunk extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly norm: Module | null;
  readonly fcHidden: Linear | null;
  readonly normHidden: Module | null;
  /** Width of the features: 2c*49, or `hidden` with the extra layer. */
  readonly featureDim: number;
  /** hidden > 0: an extra Linear -> norm (as dNorm) -> LReLU of that width after the convs. */
  constructor(inChannels: number, c: number, dNorm: string, rng: Rng, hidden = 0) {
    super();
    this.featureDim = hidden > 0 ? hidden : 2 * c * 49;
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, c, 4, rng, { stride: 2, padding: 1 }));
    this.conv2 = this.registerModule('conv2', new Conv2d(c, 2 * c, 4, rng, { stride: 2, padding: 1, bias: dNorm !== 'batch' }));
    this.norm = this.registerModule('norm', dNorm === 'batch' ? new BatchNorm2d(2 * c) : dNorm === 'layer' ? new LayerNorm([2 * c, 7, 7]) : null);
    this.fcHidden = this.registerModule('fc_hidden', hidden > 0 ? new Linear(2 * c * 49, hidden, rng, { bias: dNorm !== 'batch' }) : null);
    const hiddenNorm = hidden <= 0 ? null : dNorm === 'batch' ? new BatchNorm1d(hidden) : dNorm === 'layer' ? new LayerNorm([hidden]) : null;
    this.normHidden = this.registerModule('norm_hidden', hiddenNorm);
  }
  forward(x: Tensor): Tensor {
    const h1 = this.conv1.forward(x).leakyRelu(0.2); // (B, c, 14, 14)
    let h2 = this.conv2.forward(h1); // (B, 2c, 7, 7)
    if (this.norm) h2 = (this.norm as BatchNorm2d | LayerNorm).forward(h2);
    const f = h2.leakyRelu(0.2).reshape([x.shape[0], -1]); // (B, 2c*49)
    if (!this.fcHidden) return f;
    let h3 = this.fcHidden.forward(f); // (B, hidden)
    if (this.normHidden) h3 = (this.normHidden as BatchNorm1d | LayerNorm).forward(h3);
    return h3.leakyRelu(0.2);
  }
}

/** Checks 28x28 image data for the conv models. */
export function check28(type: string, data: DataInfo): void {
  if (data.kind !== 'image' || data.shape.length !== 3 || data.shape[1] !== 28 || data.shape[2] !== 28) {
    throw new Error(`${type}: needs 28x28 images, data ${data.name} has shape [${data.shape}]`);
  }
}

export class DCGAN extends AdversarialModel {
  readonly type = 'dcgan';
  readonly config: DcganConfig;
  readonly generator: DcganGenerator;
  readonly discriminator: DcganDiscriminatorTrunk;
  readonly head: Linear;
  protected readonly dataKind = 'image' as const;

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(DCGAN_DEFAULTS as unknown as DcganConfig), ...(config as unknown as DcganConfig), type: 'dcgan' };
    const c = this.config;
    checkAdversarialConfig('dcgan', c);
    check28('dcgan', data);
    if (!(Number.isInteger(c.hiddenDim) && c.hiddenDim >= 0)) throw new Error(`dcgan: hiddenDim must be an integer >= 0, got ${c.hiddenDim}`);
    const C = data.shape[0];
    this.generator = this.registerModule('generator', new DcganGenerator(c.latentDim, c.baseChannels, C, rng, c.hiddenDim));
    this.discriminator = this.registerModule('discriminator', new DcganDiscriminatorTrunk(C, c.baseChannels, c.dNorm, rng, c.hiddenDim));
    this.head = this.registerModule('head', new Linear(this.discriminator.featureDim, 1, rng));
    dcganInit(this, rng);
  }

  protected generate(z: Tensor): Tensor {
    return this.generator.forward(z);
  }
  protected critic(x: Tensor): { adv: Tensor } {
    return { adv: this.head.forward(this.discriminator.forward(x)).reshape([-1]) };
  }
  protected generatorParameters(): Tensor[] {
    return this.generator.parameters();
  }
  protected discriminatorParameters(): Tensor[] {
    return [...this.discriminator.parameters(), ...this.head.parameters()];
  }
  protected toModel(x: Tensor): Tensor {
    return x.mul(2).sub(1);
  }
  protected toData(x: Tensor): Tensor {
    return x.add(1).mul(0.5).clamp(0, 1);
  }
}

registerModel({
  type: 'dcgan',
  description: 'DCGAN (Radford et al. 2015): transposed-conv generator, conv discriminator with BatchNorm/LeakyReLU, 28x28 images',
  data: ['image'],
  defaultData: 'mnist',
  defaults: DCGAN_DEFAULTS,
  presets: DCGAN_PRESETS,
  choices: DCGAN_CHOICES,
  create: (config, rng, data) => new DCGAN(config, rng, data),
});
