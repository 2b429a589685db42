/**
 * Basic layers with PyTorch's parameter names, shapes and default initialisation
 * (torch/nn/modules/linear.py, conv.py, sparse.py, dropout.py, activation.py):
 * Linear, Conv1d, Conv2d, ConvTranspose2d, pooling and upsampling wrappers,
 * Embedding, Dropout, Identity, Flatten and the activation modules. Linear and conv
 * weights get kaiming_uniform(a=sqrt(5)) (bound 1/sqrt(fan_in)) and biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch's reset_parameters.
 */
import { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import { ShapeError, fmtShape } from '../engine/shape.js';
import { zeros } from '../engine/creation.js';
import { bernoulli } from '../engine/ops/random.js';
import { embedding as embeddingOp } from '../engine/ops/indexing.js';
import { matmulBias } from '../engine/ops/matmul.js';
import { add, eq, mul, softplus as softplusOp, tanh as tanhOp, where } from '../engine/ops/elementwise.js';
import { conv1d, conv2d, convTranspose2d, maxPool2d, avgPool2d, upsample } from '../engine/ops/conv.js';
import { Module } from './module.js';
import { fanInOut, kaimingUniform_, normal_, uniform_ } from './init.js';

type Pair = number | [number, number];

function pair(v: Pair): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

/** torch's default init for Linear/Conv weights and biases (fan_in from the weight). */
function resetLinearLike(weight: Tensor, bias: Tensor | null, rng: Rng): void {
  kaimingUniform_(weight, rng, { a: Math.sqrt(5) });
  if (bias) {
    const { fanIn } = fanInOut(weight.shape);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform_(bias, rng, -bound, bound);
  }
}

/**
 * y = x W^T + b over the last axis (torch.nn.functional.linear); with
 * `{ activation: 'relu' }`, relu(x W^T + b) computed by one fused kernel (the GEMM adds
 * the bias and applies the ReLU as it finishes each tile of y).
 * @example
 * const y = linear(x, w, b); // x [B, T, in], w [out, in] -> [B, T, out]
 * const h = linear(x, w, b, { activation: 'relu' }); // = linear(x, w, b).relu()
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: { activation?: 'relu' } = {}): Tensor {
  const inF = weight.shape[1];
  if (x.rank === 0 || x.shape[x.rank - 1] !== inF) {
    throw new ShapeError(`linear: input ${fmtShape(x.shape)} does not end in in_features ${inF} (weight ${fmtShape(weight.shape)})`);
  }
  if (opts.activation !== undefined && opts.activation !== 'relu') {
    throw new RangeError(`linear: activation must be 'relu' or absent, got ${JSON.stringify(opts.activation)}`);
  }
  if (bias) return matmulBias(x, weight.T, bias, opts.activation);
  const y = x.matmul(weight.T);
  return opts.activation === 'relu' ? y.relu() : y;
}

/**
 * Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p).
 * Identity when not training or p = 0.
 */
export function dropout(x: Tensor, p: number, rng: Rng | undefined, training = true): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: probability must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  if (p === 1) return mul(x, 0);
  if (!rng) throw new Error('dropout: training with p > 0 needs an Rng (pass one to the layer or the call)');
  const keep = bernoulli(1 - p, rng, x.shape);
  return mul(x, mul(keep, 1 / (1 - p)));
}

/** Fully connected layer: weight [out, in], bias [out]. */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;

  /**
   * @example
   * const fc = new Linear(784, 128, rng);
   * const h = fc.forward(x); // [B, 784] -> [B, 128]
   */
  constructor(inFeatures: number, outFeatures: number, rng: Rng, opts: { bias?: boolean } = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = this.registerParameter('weight', zeros([outFeatures, inFeatures]));
    this.bias = this.registerParameter('bias', opts.bias ?? true ? zeros([outFeatures]) : null);
    resetLinearLike(this.weight, this.bias, rng);
  }

  /** x W^T + b; with `{ activation: 'relu' }` its ReLU, fused (see linear()). */
  forward(x: Tensor, opts: { activation?: 'relu' } = {}): Tensor {
    if (x.rank === 0 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new ShapeError(`Linear(${this.inFeatures}, ${this.outFeatures}): input ${fmtShape(x.shape)} should end in ${this.inFeatures}`);
    }
    return linear(x, this.weight, this.bias, opts);
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

export interface Conv2dLayerOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

function checkGroups(layer: string, inC: number, outC: number, groups: number): void {
  if (!Number.isInteger(groups) || groups < 1 || inC % groups !== 0 || outC % groups !== 0) {
    throw new RangeError(`${layer}: in_channels ${inC} and out_channels ${outC} must both be divisible by groups ${groups}`);
  }
}

/** 2-D convolution over [N, C, H, W]: weight [out, in/groups, kh, kw], bias [out]. */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  weight: Tensor;
  bias: Tensor | null;

  /**
   * @example
   * const conv = new Conv2d(1, 8, 3, rng, { padding: 1 }); // [N,1,28,28] -> [N,8,28,28]
   */
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, rng: Rng, opts: Conv2dLayerOptions = {}) {
    super();
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize);
    this.stride = pair(opts.stride ?? 1);
    this.padding = pair(opts.padding ?? 0);
    this.dilation = pair(opts.dilation ?? 1);
    this.groups = opts.groups ?? 1;
    checkGroups('Conv2d', inChannels, outChannels, this.groups);
    const [kh, kw] = this.kernelSize;
    this.weight = this.registerParameter('weight', zeros([outChannels, inChannels / this.groups, kh, kw]));
    this.bias = this.registerParameter('bias', opts.bias ?? true ? zeros([outChannels]) : null);
    resetLinearLike(this.weight, this.bias, rng);
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(`Conv2d(${this.inChannels}, ${this.outChannels}): expected input [N, ${this.inChannels}, H, W], got ${fmtShape(x.shape)}`);
    }
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }

  override extraRepr(): string {
    return `${this.inChannels}, ${this.outChannels}, kernel_size=(${this.kernelSize}), stride=(${this.stride}), padding=(${this.padding})`;
  }
}

export interface Conv1dLayerOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

/** 1-D convolution over [N, C, L]: weight [out, in/groups, k], bias [out]. */
export class Conv1d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly groups: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(inChannels: number, outChannels: number, kernelSize: number, rng: Rng, opts: Conv1dLayerOptions = {}) {
    super();
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = kernelSize;
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.dilation = opts.dilation ?? 1;
    this.groups = opts.groups ?? 1;
    checkGroups('Conv1d', inChannels, outChannels, this.groups);
    this.weight = this.registerParameter('weight', zeros([outChannels, inChannels / this.groups, kernelSize]));
    this.bias = this.registerParameter('bias', opts.bias ?? true ? zeros([outChannels]) : null);
    resetLinearLike(this.weight, this.bias, rng);
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 3 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(`Conv1d(${this.inChannels}, ${this.outChannels}): expected input [N, ${this.inChannels}, L], got ${fmtShape(x.shape)}`);
    }
    return conv1d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }

  override extraRepr(): string {
    return `${this.inChannels}, ${this.outChannels}, kernel_size=(${this.kernelSize},), stride=(${this.stride},)`;
  }
}

export interface ConvTranspose2dLayerOptions extends Conv2dLayerOptions {
  outputPadding?: Pair;
}

/**
 * Transposed 2-D convolution (the adjoint of Conv2d, for upsampling decoders):
 * weight [in, out/groups, kh, kw] as PyTorch, bias [out]. Output size per axis:
 * (in - 1) * stride - 2 * padding + dilation * (k - 1) + outputPadding + 1.
 */
export class ConvTranspose2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly outputPadding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, rng: Rng, opts: ConvTranspose2dLayerOptions = {}) {
    super();
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize);
    this.stride = pair(opts.stride ?? 1);
    this.padding = pair(opts.padding ?? 0);
    this.outputPadding = pair(opts.outputPadding ?? 0);
    this.dilation = pair(opts.dilation ?? 1);
    this.groups = opts.groups ?? 1;
    checkGroups('ConvTranspose2d', inChannels, outChannels, this.groups);
    const [kh, kw] = this.kernelSize;
    this.weight = this.registerParameter('weight', zeros([inChannels, outChannels / this.groups, kh, kw]));
    this.bias = this.registerParameter('bias', opts.bias ?? true ? zeros([outChannels]) : null);
    // torch computes fan_in from weight dim 1 here too (out/groups * kh * kw).
    resetLinearLike(this.weight, this.bias, rng);
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(`ConvTranspose2d(${this.inChannels}, ${this.outChannels}): expected input [N, ${this.inChannels}, H, W], got ${fmtShape(x.shape)}`);
    }
    return convTranspose2d(x, this.weight, this.bias, {
      stride: this.stride, padding: this.padding, outputPadding: this.outputPadding, dilation: this.dilation, groups: this.groups,
    });
  }

  override extraRepr(): string {
    return `${this.inChannels}, ${this.outChannels}, kernel_size=(${this.kernelSize}), stride=(${this.stride}), padding=(${this.padding})`;
  }
}

/** Max pooling over [N, C, H, W] (stride defaults to the kernel size, as torch). */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly opts: { stride?: Pair; padding?: Pair; dilation?: Pair } = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, { ...this.opts, stride: this.opts.stride ?? this.kernelSize });
  }
}

/** Average pooling over [N, C, H, W] (stride defaults to the kernel size). */
export class AvgPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly opts: { stride?: Pair; padding?: Pair; countIncludePad?: boolean } = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, { ...this.opts, stride: this.opts.stride ?? this.kernelSize });
  }
}

/** Upsampling of [N, C, H, W] by a scale factor or to a size (nearest or bilinear). */
export class Upsample extends Module {
  constructor(readonly opts: { scaleFactor?: Pair; size?: [number, number]; mode?: 'nearest' | 'bilinear'; alignCorners?: boolean }) {
    super();
  }
  forward(x: Tensor): Tensor {
    return upsample(x, this.opts);
  }
}

export interface EmbeddingOptions {
  /** Row whose gradient is always zero (and which starts as zeros), as torch's padding_idx. */
  paddingIdx?: number;
}

/** Lookup table: weight [num, dim] initialised N(0, 1); ids int32 of any shape -> [...ids, dim]. */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly paddingIdx: number | null;
  weight: Tensor;

  constructor(numEmbeddings: number, embeddingDim: number, rng: Rng, opts: EmbeddingOptions = {}) {
    super();
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    let p = opts.paddingIdx ?? null;
    if (p !== null) {
      if (!Number.isInteger(p) || p < -numEmbeddings || p >= numEmbeddings) {
        throw new RangeError(`Embedding: paddingIdx ${p} out of range for ${numEmbeddings} embeddings`);
      }
      if (p < 0) p += numEmbeddings;
    }
    this.paddingIdx = p;
    this.weight = this.registerParameter('weight', zeros([numEmbeddings, embeddingDim]));
    normal_(this.weight, rng);
    if (p !== null) (this.weight.data as Float32Array).fill(0, p * embeddingDim, (p + 1) * embeddingDim);
  }

  forward(ids: Tensor): Tensor {
    if (ids.dtype !== 'int32') throw new ShapeError(`Embedding: ids must be an int32 tensor, got ${ids.dtype} of shape ${fmtShape(ids.shape)}`);
    const out = embeddingOp(this.weight, ids);
    if (this.paddingIdx === null) return out;
    // The padding row gets no gradient: its lookups read a detached copy.
    const isPad = eq(ids, this.paddingIdx).unsqueeze(-1);
    return where(isPad, out.detach(), out);
  }

  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}${this.paddingIdx !== null ? `, padding_idx=${this.paddingIdx}` : ''}`;
  }
}

/**
 * Dropout with probability p during training (identity in eval mode). The Rng is
 * given to the constructor or to each call; a call's Rng wins.
 * @example
 * const drop = new Dropout(0.1, rng);
 * const y = drop.forward(x);
 */
export class Dropout extends Module {
  readonly #rng: Rng | undefined;

  constructor(readonly p = 0.5, rng?: Rng) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: probability must be in [0, 1], got ${p}`);
    this.#rng = rng;
  }

  forward(x: Tensor, rng?: Rng): Tensor {
    return dropout(x, this.p, rng ?? this.#rng, this.training);
  }

  override extraRepr(): string {
    return `p=${this.p}`;
  }
}

/** Returns its input. */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** Flattens axes startDim..endDim (default 1..-1, keeping the batch axis). */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.leakyRelu(this.negativeSlope);
  }
  override extraRepr(): string {
    return `negative_slope=${this.negativeSlope}`;
  }
}

/** GELU, exact by default; approximate 'tanh' as torch's GELU(approximate='tanh'). */
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    if (this.approximate === 'none') return x.gelu();
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const inner = mul(add(x, mul(x.pow(3), 0.044715)), Math.sqrt(2 / Math.PI));
    return mul(mul(x, 0.5), add(tanhOp(inner), 1));
  }
}

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return x.silu();
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}

export class ELU extends Module {
  constructor(readonly alpha = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.elu(this.alpha);
  }
}

/** softplus(x) = log(1 + exp(beta x)) / beta, linear where beta x > threshold (20). */
export class Softplus extends Module {
  constructor(readonly beta = 1, readonly threshold = 20) {
    super();
    if (threshold !== 20) throw new RangeError('Softplus: only the default threshold 20 is supported');
  }
  forward(x: Tensor): Tensor {
    return this.beta === 1 ? softplusOp(x) : softplusOp(mul(x, this.beta)).div(this.beta);
  }
}

/** Softmax along `dim` (no default, as torch recommends an explicit axis). */
export class Softmax extends Module {
  constructor(readonly dim: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.softmax(this.dim);
  }
}
