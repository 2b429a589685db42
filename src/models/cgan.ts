/**
 * Class-conditional GANs on labelled 28x28 images, with the DCGAN networks of
 * dcgan.ts (Radford et al. 2015):
 * - 'cgan' (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets",
 *   arXiv:1411.1784): the label y is fed to both players, G(z, y) and D(x, y). Here G
 *   gets [z, embed(y)] and D gets the image with one extra channel, a learned 28x28
 *   map per class.
 * - 'acgan' (Odena, Olah & Shlens 2017, "Conditional Image Synthesis With Auxiliary
 *   Classifier GANs", arXiv:1610.09585): G(z, y) as above, D sees only the image and
 *   has two heads, real/fake and the class; both players also minimise the class
 *   cross-entropy L_C (eq. 2-3: D maximises L_C + L_S, G maximises L_C - L_S).
 * Fakes are drawn with the real batch's labels. `sample(n, rng, cond)` uses the
 * labels in `cond`, or 0, 1, ..., 9, 0, ... when none are given.
 */
import { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { concat } from '../engine/ops/shape_ops.js';
import { Linear, Embedding } from '../nn/layers.js';
import type { DataInfo } from './contract.js';
import { AdversarialModel, GAN_LOSSES, checkAdversarialConfig } from './gan.js';
import type { AdversarialConfig } from './gan.js';
import { DcganGenerator, DcganDiscriminatorTrunk, dcganInit, check28 } from './dcgan.js';
import { registerModel } from './registry.js';
import type { Config } from './registry.js';

export interface CganConfig extends AdversarialConfig {
  type: 'cgan' | 'acgan';
  /** c: channels of G's last hidden map and D's first (as dcgan). */
  baseChannels: number;
  /** Size of the label embedding concatenated to z. */
  embedDim: number;
  /** Normalisation in D: 'batch', 'layer' or 'none' (as dcgan). */
  dNorm: string;
  /** ACGAN: weight of the auxiliary class loss L_C for both players. */
  classWeight: number;
}

export const CGAN_DEFAULTS: Config = {
  latentDim: 100, baseChannels: 64, embedDim: 50, dNorm: 'batch', lossType: 'ns', gpWeight: 10, nCritic: 1, dLrScale: 1, classWeight: 1,
};
export const CGAN_CHOICES = { lossType: GAN_LOSSES, dNorm: ['batch', 'layer', 'none'] } as const;
const CGAN_TINY = { model: { latentDim: 16, baseChannels: 8, embedDim: 8 }, train: { steps: 100, batchSize: 32, lr: 2e-4, beta1: 0.5 } };
/** small: c = 32 (a quarter of the c = 64 convolution work) for the 20-minute budget. */
function cganSmall(steps: number): { model: Config; train: Config } {
  return { model: { baseChannels: 32 }, train: { steps, batchSize: 64, lr: 2e-4, beta1: 0.5, logEvery: 50 } };
}
// Measured (share of samples the MNIST classifier puts in the asked class): cgan 0.79
// at 2000 steps, 0.957 at 6000; acgan 0.87 at 2000, 0.947 at 6000, 0.964 at 8000.
export const CGAN_PRESETS: Record<string, { model?: Config; train?: Config }> = { tiny: CGAN_TINY, small: cganSmall(6000) };
export const ACGAN_PRESETS: Record<string, { model?: Config; train?: Config }> = { tiny: CGAN_TINY, small: cganSmall(8000) };

export class ConditionalGAN extends AdversarialModel {
  readonly type: 'cgan' | 'acgan';
  readonly config: CganConfig;
  readonly labelEmbedding: Embedding;
  readonly generator: DcganGenerator;
  /** cgan: the per-class 28x28 input map of D. */
  readonly labelMap: Embedding | null;
  readonly discriminator: DcganDiscriminatorTrunk;
  readonly head: Linear;
  /** acgan: D's class head. */
  readonly classHead: Linear | null;
  protected readonly dataKind = 'image' as const;
  private readonly imageShape: number[];

  constructor(type: 'cgan' | 'acgan', config: Config, rng: Rng, data: DataInfo) {
    super();
    this.type = type;
    this.config = { ...(CGAN_DEFAULTS as unknown as CganConfig), ...(config as unknown as CganConfig), type };
    const c = this.config;
    checkAdversarialConfig(type, c);
    check28(type, data);
    if (!data.numClasses) throw new Error(`${type}: needs labelled data (data ${data.name} has no classes)`);
    this.numClasses = data.numClasses;
    this.imageShape = data.shape;
    const K = data.numClasses;
    const C = data.shape[0];
    this.classWeight = type === 'acgan' ? c.classWeight : 0;
    this.labelEmbedding = this.registerModule('label_embedding', new Embedding(K, c.embedDim, rng));
    this.generator = this.registerModule('generator', new DcganGenerator(c.latentDim + c.embedDim, c.baseChannels, C, rng));
    this.labelMap = this.registerModule('label_map', type === 'cgan' ? new Embedding(K, 28 * 28, rng) : null);
    this.discriminator = this.registerModule('discriminator', new DcganDiscriminatorTrunk(type === 'cgan' ? C + 1 : C, c.baseChannels, c.dNorm, rng));
    this.head = this.registerModule('head', new Linear(2 * c.baseChannels * 49, 1, rng));
    this.classHead = this.registerModule('class_head', type === 'acgan' ? new Linear(2 * c.baseChannels * 49, K, rng) : null);
    dcganInit(this, rng);
  }

  protected generate(z: Tensor, y: Tensor | null): Tensor {
    return this.generator.forward(concat([z, this.labelEmbedding.forward(y!)], 1)); // (B, C, 28, 28)
  }

  protected critic(x: Tensor, y: Tensor | null): { adv: Tensor; cls?: Tensor } {
    const B = x.shape[0];
    if (this.labelMap) {
      const m = this.labelMap.forward(y!).reshape([B, 1, ...this.imageShape.slice(1)]); // (B, 1, 28, 28)
      return { adv: this.head.forward(this.discriminator.forward(concat([x, m], 1))).reshape([-1]) };
    }
    const h = this.discriminator.forward(x); // (B, 2c*49)
    return { adv: this.head.forward(h).reshape([-1]), cls: this.classHead!.forward(h) };
  }

  protected generatorParameters(): Tensor[] {
    return [...this.labelEmbedding.parameters(), ...this.generator.parameters()];
  }
  protected discriminatorParameters(): Tensor[] {
    return [...(this.labelMap?.parameters() ?? []), ...this.discriminator.parameters(), ...this.head.parameters(), ...(this.classHead?.parameters() ?? [])];
  }
  protected toModel(x: Tensor): Tensor {
    return x.mul(2).sub(1);
  }
  protected toData(x: Tensor): Tensor {
    return x.add(1).mul(0.5).clamp(0, 1);
  }
}

registerModel({
  type: 'cgan',
  description: 'Conditional GAN (Mirza & Osindero 2014) with DCGAN networks: label embedding into G and a label map into D',
  data: ['image'],
  defaultData: 'mnist',
  defaults: CGAN_DEFAULTS,
  presets: CGAN_PRESETS,
  choices: CGAN_CHOICES,
  create: (config, rng, data) => new ConditionalGAN('cgan', config, rng, data),
});

registerModel({
  type: 'acgan',
  description: 'Auxiliary-classifier GAN (Odena et al. 2017) with DCGAN networks: label-conditioned G, D with real/fake and class heads',
  data: ['image'],
  defaultData: 'mnist',
  defaults: CGAN_DEFAULTS,
  presets: ACGAN_PRESETS,
  choices: CGAN_CHOICES,
  create: (config, rng, data) => new ConditionalGAN('acgan', config, rng, data),
});
