/**
 * Generative adversarial networks (Goodfellow et al. 2014, "Generative Adversarial
 * Nets", arXiv:1406.2661) with MLP generator and discriminator, for 2-D toys and
 * flattened images. The adversarial objective is selectable:
 * - 'ns': the non-saturating loss of Goodfellow et al. (section 3): D minimises
 *   softplus(-D(x)) + softplus(D(G(z))), G minimises softplus(-D(G(z))).
 * - 'lsgan': least squares (Mao et al. 2017, arXiv:1611.04076, eq. 2 with a=0, b=c=1).
 * - 'hinge': the hinge loss (Lim & Ye 2017; Miyato et al. 2018, arXiv:1802.05957).
 * - 'wgan-gp': Wasserstein critic with gradient penalty (Gulrajani et al. 2017,
 *   arXiv:1704.00028, algorithm 1): lambda * (||grad_x D(x_hat)||_2 - 1)^2 on random
 *   interpolates x_hat, differentiated through the gradient (double backward).
 * D and G have their own optimizers (D's learning rate scaled by `dLrScale`); each
 * training step makes `nCritic` D updates, then one G update (algorithm 1's loop).
 * The shared adversarial machinery (`AdversarialModel`) is reused by dcgan.ts and
 * cgan.ts.
 */
import { Tensor, noGrad, grad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { randn, rand } from '../engine/ops/random.js';
import { sum } from '../engine/ops/reduce.js';
import { softplus } from '../engine/ops/elementwise.js';
import { Module, Sequential } from '../nn/module.js';
import type { TensorModule } from '../nn/module.js';
import { Linear, LeakyReLU, ReLU } from '../nn/layers.js';
import { crossEntropy } from '../nn/losses.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, OptimizerLike, Samples, StepContext, TrainHooks } from './contract.js';
import type { LatentModel } from './vae.js';
import { registerModel } from './registry.js';
import type { Config } from './registry.js';

/** The adversarial objectives (see the file header). */
export const GAN_LOSSES = ['ns', 'lsgan', 'hinge', 'wgan-gp'] as const;
export type GanLoss = (typeof GAN_LOSSES)[number];

/** Settings every adversarial model shares. */
export interface AdversarialConfig {
  /** Size of z ~ N(0, I). */
  latentDim: number;
  /** Adversarial objective: 'ns', 'lsgan', 'hinge' or 'wgan-gp'. */
  lossType: string;
  /** lambda, the weight of the WGAN-GP gradient penalty. */
  gpWeight: number;
  /** Discriminator (critic) updates per generator update. */
  nCritic: number;
  /** D's learning rate as a multiple of train.lr. */
  dLrScale: number;
}

export interface GanConfig extends AdversarialConfig {
  type: 'gan';
  /** Hidden width of both MLPs. */
  hiddenDim: number;
  /** Hidden layers of each MLP. */
  nLayer: number;
}

export const GAN_DEFAULTS: Config = { latentDim: 8, hiddenDim: 256, nLayer: 3, lossType: 'wgan-gp', gpWeight: 10, nCritic: 5, dLrScale: 1 };
export const GAN_CHOICES = { lossType: GAN_LOSSES } as const;
export const GAN_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { latentDim: 2, hiddenDim: 32, nLayer: 2, nCritic: 2 }, train: { steps: 200, batchSize: 64, lr: 1e-3, beta1: 0.5, beta2: 0.9 } },
  // Hinge loss, one critic step per G step, Adam(2e-4, 0.5, 0.999): on 8gaussians all 8
  // modes with 98 % of samples within 3 sd of one (8000 steps). WGAN-GP with Gulrajani
  // et al.'s toy settings (--model.lossType=wgan-gp --model.nCritic=5 --train.beta2=0.9)
  // needs many more steps: after 4000 it still spreads between the modes.
  small: { model: { lossType: 'hinge', nCritic: 1 }, train: { steps: 8000, batchSize: 256, lr: 2e-4, beta1: 0.5, beta2: 0.999, logEvery: 100 } },
};

/** D's loss on critic outputs for real and fake examples ([B] each). */
export function discriminatorLoss(kind: GanLoss, dReal: Tensor, dFake: Tensor): Tensor {
  switch (kind) {
    case 'ns': return softplus(dReal.neg()).mean().add(softplus(dFake).mean());
    case 'lsgan': return dReal.sub(1).square().mean().add(dFake.square().mean()).mul(0.5);
    case 'hinge': return dReal.neg().add(1).relu().mean().add(dFake.add(1).relu().mean());
    case 'wgan-gp': return dFake.mean().sub(dReal.mean());
  }
}

/** G's loss on critic outputs for its samples ([B]). */
export function generatorLoss(kind: GanLoss, dFake: Tensor): Tensor {
  switch (kind) {
    case 'ns': return softplus(dFake.neg()).mean();
    case 'lsgan': return dFake.sub(1).square().mean().mul(0.5);
    case 'hinge':
    case 'wgan-gp': return dFake.mean().neg();
  }
}

/**
 * The WGAN-GP penalty E[(||grad_x_hat D(x_hat)||_2 - 1)^2], x_hat = eps x + (1 - eps) x~
 * with eps ~ U[0, 1] per example (Gulrajani et al. 2017, algorithm 1, lines 6-7). The
 * gradient is taken with createGraph, so the penalty's own gradient reaches D.
 * @example
 * const gp = gradientPenalty((x) => critic.forward(x).reshape([-1]), real, fake, rng);
 */
export function gradientPenalty(critic: (x: Tensor) => Tensor, real: Tensor, fake: Tensor, rng: Rng): Tensor {
  const B = real.shape[0];
  const eps = rand([B, ...real.shape.slice(1).map(() => 1)], rng);
  const xHat = noGrad(() => real.mul(eps).add(fake.mul(eps.neg().add(1)))).requiresGrad_();
  const [g] = grad(critic(xHat).sum(), [xHat], { createGraph: true });
  const axes = g!.shape.map((_, i) => i).slice(1);
  // A small floor inside the sqrt keeps its gradient finite at g = 0.
  const norm = sum(g!.square(), axes).add(1e-12).sqrt(); // (B)
  return norm.sub(1).square().mean();
}

/**
 * An adversarial model: subclasses provide the generator, the critic and the data
 * scaling; this class owns the two optimizers, the D-then-G training step, the
 * generator loss, sampling, and the latent interface.
 */
export abstract class AdversarialModel extends Module implements GenerativeModel, LatentModel {
  abstract readonly type: string;
  abstract readonly config: AdversarialConfig;
  /** Class count of a conditional model (undefined: unconditional). */
  numClasses: number | undefined = undefined;
  #optG: OptimizerLike | null = null;
  #optD: OptimizerLike | null = null;

  /** Generator output in model space (images in [-1, 1]) from z [B, latentDim]. */
  protected abstract generate(z: Tensor, y: Tensor | null): Tensor;
  /** Critic: adversarial logits [B] and, for ACGAN, class logits [B, K]. */
  protected abstract critic(x: Tensor, y: Tensor | null): { adv: Tensor; cls?: Tensor };
  protected abstract generatorParameters(): Tensor[];
  protected abstract discriminatorParameters(): Tensor[];
  /** Data -> model space (e.g. [0, 1] -> [-1, 1]) and back. */
  protected abstract toModel(x: Tensor): Tensor;
  protected abstract toData(x: Tensor): Tensor;
  protected abstract readonly dataKind: 'image' | 'points';
  /** Weight of ACGAN's auxiliary class loss (0: none). */
  protected classWeight = 0;

  get latentDim(): number {
    return this.config.latentDim;
  }

  protected get lossKind(): GanLoss {
    return this.config.lossType as GanLoss;
  }

  configureOptimizers(hooks: TrainHooks): void {
    this.#optG = hooks.makeOptimizer(this.generatorParameters());
    this.#optD = hooks.makeOptimizer(this.discriminatorParameters(), this.config.dLrScale);
  }

  /** Labels of a batch for a conditional model (null otherwise). */
  protected labels(batch: Batch): Tensor | null {
    if (this.numClasses === undefined) return null;
    if (!batch.y) throw new Error(`${this.type}: a conditional model needs labels y in the batch`);
    return batch.y;
  }

  /**
   * One training step (Gulrajani et al. 2017, algorithm 1): nCritic updates of D on
   * the batch's real examples against fresh fakes, then one update of G. Fakes share
   * the real batch's labels in conditional models.
   */
  trainStep(batch: Batch, rng: Rng, ctx: StepContext & { hooks: TrainHooks }): Record<string, number> {
    if (!this.#optG || !this.#optD) this.configureOptimizers(ctx.hooks);
    const optG = this.#optG!;
    const optD = this.#optD!;
    const kind = this.lossKind;
    const real = this.toModel(batch.x);
    const y = this.labels(batch);
    const B = real.shape[0];
    const dParams = this.discriminatorParameters();
    const gParams = this.generatorParameters();
    const out: Record<string, number> = {};
    // 1. nCritic critic updates.
    for (let i = 0; i < this.config.nCritic; i++) {
      optD.zeroGrad();
      const fake = noGrad(() => this.generate(randn([B, this.latentDim], rng), y));
      const r = this.critic(real, y);
      const f = this.critic(fake, y);
      let lossD = discriminatorLoss(kind, r.adv, f.adv);
      if (kind === 'wgan-gp') {
        const gp = gradientPenalty((x) => this.critic(x, y).adv, real, fake, rng);
        out.gp = gp.item();
        lossD = lossD.add(gp.mul(this.config.gpWeight));
      }
      if (r.cls && f.cls && y) {
        const lc = crossEntropy(r.cls, y).add(crossEntropy(f.cls, y));
        out.clsD = lc.item();
        lossD = lossD.add(lc.mul(this.classWeight));
      }
      out.lossD = lossD.item();
      if (!Number.isFinite(out.lossD)) return { loss: out.lossD, ...out };
      lossD.backward();
      ctx.hooks.clip(dParams);
      optD.step();
      out.dReal = r.adv.mean().item();
      out.dFake = f.adv.mean().item();
    }
    // 2. One generator update.
    optG.zeroGrad();
    const { loss, metrics } = this.loss(batch, rng);
    loss.backward();
    ctx.hooks.clip(gParams);
    optG.step();
    return { loss: loss.item(), ...out, ...metrics };
  }

  /** The generator's loss on fresh fakes (the logged `loss`; gradients reach G and D). */
  loss(batch: Batch, rng: Rng): LossOutput {
    const y = this.labels(batch);
    const B = batch.x.shape[0];
    const f = this.critic(this.generate(randn([B, this.latentDim], rng), y), y);
    let loss = generatorLoss(this.lossKind, f.adv);
    const metrics: Record<string, number> = { lossG: loss.item() };
    if (f.cls && y) {
      const lc = crossEntropy(f.cls, y);
      metrics.clsG = lc.item();
      loss = loss.add(lc.mul(this.classWeight));
    }
    return { loss, metrics };
  }

  /** Class labels for n samples: `cond` when given, else 0, 1, ..., K-1, 0, ... */
  protected sampleLabels(n: number, cond?: Tensor): Tensor | null {
    if (this.numClasses === undefined) return null;
    if (cond) {
      if (cond.shape[0] !== n) throw new Error(`${this.type}.sample: cond has ${cond.shape[0]} labels for ${n} samples`);
      return cond.dtype === 'int32' ? cond : cond.toInt();
    }
    const K = this.numClasses;
    return new Tensor(Int32Array.from({ length: n }, (_, i) => i % K), [n]);
  }

  /** Data-space outputs for latents z [N, latentDim] (images in [0, 1]). */
  decodeLatent(z: Tensor, cond?: Tensor): Tensor {
    return noGrad(() => this.toData(this.generate(z, this.sampleLabels(z.shape[0], cond))));
  }

  sample(n: number, rng: Rng, cond?: Tensor): Samples {
    return noGrad(() => {
      const y = this.sampleLabels(n, cond);
      const x = this.toData(this.generate(randn([n, this.latentDim], rng), y));
      if (this.dataKind === 'points') return { kind: 'points', points: x };
      return y ? { kind: 'image', images: x, labels: y } : { kind: 'image', images: x };
    });
  }
}

/** An MLP: in -> hidden (act) x nLayer -> out. */
function mlp(inDim: number, hiddenDim: number, nLayer: number, outDim: number, act: () => TensorModule, rng: Rng): Sequential {
  const layers: TensorModule[] = [];
  let d = inDim;
  for (let i = 0; i < nLayer; i++) {
    layers.push(new Linear(d, hiddenDim, rng), act());
    d = hiddenDim;
  }
  layers.push(new Linear(d, outDim, rng));
  return new Sequential(...layers);
}

/** Check the settings every adversarial model shares. */
export function checkAdversarialConfig(type: string, c: AdversarialConfig): void {
  if (!(Number.isInteger(c.latentDim) && c.latentDim >= 1)) throw new Error(`${type}: latentDim must be a positive integer, got ${c.latentDim}`);
  if (!(Number.isInteger(c.nCritic) && c.nCritic >= 1)) throw new Error(`${type}: nCritic must be a positive integer, got ${c.nCritic}`);
  if (!(GAN_LOSSES as readonly string[]).includes(c.lossType)) throw new Error(`${type}: lossType must be one of ${GAN_LOSSES.join(', ')}, got ${c.lossType}`);
}

export class GAN extends AdversarialModel {
  readonly type = 'gan';
  readonly config: GanConfig;
  readonly generator: Sequential;
  readonly discriminator: Sequential;
  protected readonly dataKind: 'image' | 'points';
  private readonly shape: number[];

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(GAN_DEFAULTS as unknown as GanConfig), ...(config as unknown as GanConfig), type: 'gan' };
    const c = this.config;
    checkAdversarialConfig('gan', c);
    if (data.kind !== 'image' && data.kind !== 'points') throw new Error(`gan: needs image or points data, got ${data.kind}`);
    this.dataKind = data.kind;
    this.shape = data.shape;
    const D = data.shape.reduce((a, b) => a * b, 1);
    this.generator = this.registerModule('generator', mlp(c.latentDim, c.hiddenDim, c.nLayer, D, () => new ReLU(), rng));
    this.discriminator = this.registerModule('discriminator', mlp(D, c.hiddenDim, c.nLayer, 1, () => new LeakyReLU(0.2), rng));
  }

  protected generate(z: Tensor): Tensor {
    const h = this.generator.forward(z).reshape([z.shape[0], ...this.shape]);
    return this.dataKind === 'image' ? h.tanh() : h;
  }
  protected critic(x: Tensor): { adv: Tensor } {
    return { adv: this.discriminator.forward(x.reshape([x.shape[0], -1])).reshape([-1]) };
  }
  protected generatorParameters(): Tensor[] {
    return this.generator.parameters();
  }
  protected discriminatorParameters(): Tensor[] {
    return this.discriminator.parameters();
  }
  protected toModel(x: Tensor): Tensor {
    return this.dataKind === 'image' ? x.mul(2).sub(1) : x;
  }
  protected toData(x: Tensor): Tensor {
    return this.dataKind === 'image' ? x.add(1).mul(0.5).clamp(0, 1) : x;
  }
}

registerModel({
  type: 'gan',
  description: 'GAN with MLP generator/discriminator (non-saturating, least-squares, hinge or WGAN-GP loss) for 2-D toys and flattened images',
  data: ['points', 'image'],
  defaultData: '8gaussians',
  defaults: GAN_DEFAULTS,
  presets: GAN_PRESETS,
  choices: GAN_CHOICES,
  create: (config, rng, data) => new GAN(config, rng, data),
});
