/**
 * Normalisation layers with PyTorch's semantics (torch/nn/modules/batchnorm.py,
 * normalization.py): BatchNorm1d/2d (Ioffe & Szegedy 2015), LayerNorm (Ba et al.
 * 2016) and GroupNorm (Wu & He 2018), written with differentiable tensor ops so
 * their gradients (and double gradients) come from autograd.
 *
 * BatchNorm in training normalises with the batch mean and the biased variance and
 * updates the running statistics with the unbiased variance:
 *   running = (1 - momentum) * running + momentum * batch_stat
 * (momentum null means a cumulative average, momentum = 1 / num_batches_tracked).
 * In eval mode it normalises with the running statistics.
 *
 * LayerNorm normalises with one fused primitive (normalizeLastAxis in
 * src/engine/ops/fused.ts: statistics, normalisation and its backward in one kernel
 * each); layerNormCore is the unfused definition. GroupNorm's normalisation, affine
 * part and optional SiLU are one kernel each way (groupNormAffine). BatchNorm on [N, C, ...] inputs of
 * rank >= 3 with batch statistics runs as kernels too (batchNormTrain: statistics, one
 * affine pass, a three-pass backward); [N, C] inputs and eval mode use the ops.
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { ShapeError, fmtShape, shapesEqual } from '../engine/shape.js';
import { zeros, ones, full } from '../engine/creation.js';
import { Module } from './module.js';
import { batchNormTrain, channelAffine, groupNormAffine, layerNormAffine, normalizeLastAxis } from '../engine/ops/fused.js';

export interface BatchNormOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Running-average factor (default 0.1); null for a cumulative average. */
  momentum?: number | null;
  /** Learnable weight and bias (default true). */
  affine?: boolean;
  /** Keep running_mean/running_var (default true); without them eval uses batch stats. */
  trackRunningStats?: boolean;
}

/**
 * Functional batch norm over axis 1 of x [N, C, *]. When `training` is true the batch
 * statistics are used and, if given, runningMean/runningVar are updated in place.
 */
export function batchNorm(
  x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, weight: Tensor | null, bias: Tensor | null,
  training: boolean, momentum = 0.1, eps = 1e-5,
): Tensor {
  if (x.rank < 2) throw new ShapeError(`batchNorm: input must be [N, C, ...], got ${fmtShape(x.shape)}`);
  const C = x.shape[1];
  const axes = [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2)];
  if (training || !runningMean || !runningVar) {
    const n = x.size / C;
    if (training && n <= 1) throw new ShapeError(`batchNorm: expected more than 1 value per channel when training, got input ${fmtShape(x.shape)}`);
    let out: Tensor;
    let mv: ArrayLike<number>;
    let vv: ArrayLike<number>;
    if (x.rank >= 3 && x.size > 0) {
      // Statistics, normalisation and affine part as kernels (and the backward).
      const r = batchNormTrain(x, weight, bias, eps);
      [out, mv, vv] = [r.y, r.mean, r.variance];
    } else {
      const mean = x.mean(axes, true);
      const v = x.sub(mean).square().mean(axes, true); // biased, for normalising
      out = affineOf(x, mean.reshape([C]), v.add(eps).rsqrt().reshape([C]), weight, bias);
      [mv, vv] = noGrad(() => [mean.values(), v.values()]);
    }
    if (training && runningMean && runningVar) {
      noGrad(() => {
        const rm = runningMean.data as Float32Array;
        const rv = runningVar.data as Float32Array;
        const unbias = n / (n - 1);
        for (let c = 0; c < C; c++) {
          rm[runningMean.offset + c] = (1 - momentum) * rm[runningMean.offset + c] + momentum * mv[c];
          rv[runningVar.offset + c] = (1 - momentum) * rv[runningVar.offset + c] + momentum * vv[c] * unbias;
        }
      });
    }
    return out;
  }
  return affineOf(x, runningMean, runningVar.add(eps).rsqrt(), weight, bias);
}

/**
 * (x - mean) rstd weight + bias per channel of x [N, C, *] as x * scale + shift with
 * scale = rstd weight and shift = bias - mean scale ([C] each): one pass over x
 * (channelAffine) instead of four. [N, C] inputs broadcast the [C] rows instead.
 */
function affineOf(x: Tensor, mean: Tensor, rstd: Tensor, weight: Tensor | null, bias: Tensor | null): Tensor {
  const scale = weight ? rstd.mul(weight) : rstd;
  const shift = bias ? bias.sub(mean.mul(scale)) : mean.mul(scale).neg();
  return x.rank === 2 ? x.mul(scale).add(shift) : channelAffine(x, scale, shift);
}

class BatchNormBase extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  numBatchesTracked: Tensor | null;

  constructor(numFeatures: number, opts: BatchNormOptions) {
    super();
    this.numFeatures = numFeatures;
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    this.affine = opts.affine ?? true;
    this.trackRunningStats = opts.trackRunningStats ?? true;
    this.weight = this.registerParameter('weight', this.affine ? ones([numFeatures]) : null);
    this.bias = this.registerParameter('bias', this.affine ? zeros([numFeatures]) : null);
    const track = this.trackRunningStats;
    this.runningMean = this.registerBuffer('running_mean', track ? zeros([numFeatures]) : null);
    this.runningVar = this.registerBuffer('running_var', track ? ones([numFeatures]) : null);
    // int64 in torch; int32 here (a checkpoint writer widens it).
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', track ? full([], 0, 'int32') : null);
  }

  protected norm(x: Tensor): Tensor {
    if (x.shape[1] !== this.numFeatures) {
      throw new ShapeError(`${this.constructor.name}(${this.numFeatures}): input ${fmtShape(x.shape)} has ${x.shape[1]} channels`);
    }
    let momentum = this.momentum ?? 0;
    if (this.training && this.numBatchesTracked) {
      const nbt = this.numBatchesTracked.data as Int32Array;
      nbt[this.numBatchesTracked.offset] += 1;
      if (this.momentum === null) momentum = 1 / nbt[this.numBatchesTracked.offset];
    }
    const useBatch = this.training || !this.trackRunningStats;
    return batchNorm(x, this.runningMean, this.runningVar, this.weight, this.bias, useBatch, momentum, this.eps);
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}, affine=${this.affine}, track_running_stats=${this.trackRunningStats}`;
  }
}

/** Batch norm over [N, C] or [N, C, L] (statistics per channel over N and L). */
export class BatchNorm1d extends BatchNormBase {
  /**
   * @example
   * const bn = new BatchNorm1d(16);
   * const y = bn.forward(x); // x [B, 16]
   */
  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super(numFeatures, opts);
  }
  forward(x: Tensor): Tensor {
    if (x.rank !== 2 && x.rank !== 3) throw new ShapeError(`BatchNorm1d: expected 2-D or 3-D input, got ${fmtShape(x.shape)}`);
    return this.norm(x);
  }
}

/** Batch norm over [N, C, H, W] (statistics per channel over N, H and W). */
export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super(numFeatures, opts);
  }
  forward(x: Tensor): Tensor {
    if (x.rank !== 4) throw new ShapeError(`BatchNorm2d: expected 4-D input [N, C, H, W], got ${fmtShape(x.shape)}`);
    return this.norm(x);
  }
}

/** Functional layer norm over the trailing axes of `normalizedShape`. */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const k = normalizedShape.length;
  const tail = x.shape.slice(x.rank - k);
  if (x.rank < k || tail.some((d, i) => d !== normalizedShape[i])) {
    throw new ShapeError(`layerNorm: input ${fmtShape(x.shape)} does not end in normalized shape ${fmtShape(normalizedShape)}`);
  }
  let N = 1;
  for (const d of normalizedShape) N *= d;
  // Normalisation and affine map are one fused primitive over rows of N
  // (src/engine/ops/fused.ts) when weight and bias are of the normalized shape.
  const flat = (t: Tensor | null): Tensor | null => (t && shapesEqual(t.shape, normalizedShape) ? t.reshape([N]) : null);
  const w = weight ? flat(weight) : null, b = bias ? flat(bias) : null;
  if (N > 0 && (weight === null) === (w === null) && (bias === null) === (b === null)) {
    return layerNormAffine(x.reshape([-1, N]), w, b, eps).reshape(x.shape);
  }
  let y = N > 0 ? normalizeLastAxis(x.reshape([-1, N]), eps).reshape(x.shape) : layerNormCore(x, k, eps);
  if (weight) y = y.mul(weight);
  if (bias) y = y.add(bias);
  return y;
}

/** layerNorm's normalising step with unfused ops (the definition the fused one is tested against). */
export function layerNormCore(x: Tensor, k: number, eps: number): Tensor {
  const axes = Array.from({ length: k }, (_, i) => x.rank - k + i);
  const xc = x.sub(x.mean(axes, true));
  return xc.mul(xc.square().mean(axes, true).add(eps).rsqrt());
}

export interface LayerNormOptions {
  eps?: number;
  /** Learnable weight (and bias) of normalizedShape (default true). */
  elementwiseAffine?: boolean;
  /** Learnable bias when affine (default true). */
  bias?: boolean;
}

/**
 * Layer norm over the last axes (torch.nn.LayerNorm): weight and bias of normalizedShape.
 * @example
 * const ln = new LayerNorm(64);
 * const y = ln.forward(x); // x [B, T, 64]
 */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(normalizedShape: number | readonly number[], opts: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = this.registerParameter('weight', affine ? ones(this.normalizedShape) : null);
    this.bias = this.registerParameter('bias', affine && (opts.bias ?? true) ? zeros(this.normalizedShape) : null);
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `(${this.normalizedShape}), eps=${this.eps}, elementwise_affine=${this.weight !== null}`;
  }
}

/**
 * Functional group norm of x [N, C, *] with `numGroups` groups of channels; with
 * activation 'silu', silu(groupNorm(x)) with the affine part and the SiLU in one pass.
 */
export function groupNorm(
  x: Tensor, numGroups: number, weight: Tensor | null, bias: Tensor | null, eps = 1e-5, activation: 'silu' | null = null,
): Tensor {
  if (x.rank < 2) throw new ShapeError(`groupNorm: input must be [N, C, ...], got ${fmtShape(x.shape)}`);
  const [N, C] = x.shape;
  if (C % numGroups !== 0) throw new ShapeError(`groupNorm: ${C} channels are not divisible into ${numGroups} groups`);
  const g = x.reshape([N, numGroups, -1]); // (N, G, C/G * spatial)
  // Normalisation, affine part and activation as one kernel each way.
  if (g.shape[2] > 0 && N > 0) return groupNormAffine(x, numGroups, weight, bias, eps, activation);
  let y: Tensor;
  if (g.shape[2] > 0) {
    y = normalizeLastAxis(g, eps).reshape(x.shape);
  } else {
    const gc = g.sub(g.mean(-1, true));
    y = gc.mul(gc.square().mean(-1, true).add(eps).rsqrt()).reshape(x.shape);
  }
  return weight || bias || activation ? channelAffine(y, weight, bias, activation) : y;
}

/** Group norm (torch.nn.GroupNorm): per-sample statistics over groups of channels. */
export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(numGroups: number, numChannels: number, opts: { eps?: number; affine?: boolean } = {}) {
    super();
    if (numChannels % numGroups !== 0) throw new RangeError(`GroupNorm: num_channels ${numChannels} must be divisible by num_groups ${numGroups}`);
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = this.registerParameter('weight', affine ? ones([numChannels]) : null);
    this.bias = this.registerParameter('bias', affine ? zeros([numChannels]) : null);
  }

  /** GroupNorm of x; with activation 'silu', silu(GroupNorm(x)) fused (the U-Nets' norm + SiLU). */
  forward(x: Tensor, activation: 'silu' | null = null): Tensor {
    if (x.rank < 2 || x.shape[1] !== this.numChannels) {
      throw new ShapeError(`GroupNorm(${this.numGroups}, ${this.numChannels}): expected input [N, ${this.numChannels}, ...], got ${fmtShape(x.shape)}`);
    }
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps, activation);
  }

  override extraRepr(): string {
    return `${this.numGroups}, ${this.numChannels}, eps=${this.eps}`;
  }
}
