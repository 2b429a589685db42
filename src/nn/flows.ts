/**
 * Building blocks of normalizing flows: invertible layers that return their output
 * and the log-determinant of their Jacobian, log|det dy/dx| per example, and invert
 * exactly (up to float error).
 *
 * - `MaskedAffineCoupling`, `AffineCoupling`, `squeeze2d`, `checkerboardMask` and the
 *   logit preprocessing: Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using
 *   Real NVP", arXiv:1605.08803 (eqs. 7-9 coupling, sec. 3.6 squeeze and masks, sec.
 *   4.1 logit transform).
 * - `ActNorm`, `InvConv1x1` in LU form, the sigmoid-scaled coupling: Kingma & Dhariwal
 *   2018, "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039,
 *   table 1 and sec. 3.2 (W = P L (U + diag(s))).
 * - `BatchNormFlow`: Papamakarios, Pavlakou & Murray 2017, "Masked Autoregressive Flow
 *   for Density Estimation", arXiv:1705.07057, appendix B (after Real NVP sec. 3.7).
 *
 * Every layer works on x [B, C] (vectors) or x [B, C, H, W] (images); the "channel"
 * axis is always 1. `forward` is the data -> latent direction (the direction of
 * density evaluation); `inverse` is latent -> data (sampling).
 */
import { Tensor, noGrad, grad } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import { ShapeError, fmtShape } from '../engine/shape.js';
import { zeros, ones, eye } from '../engine/creation.js';
import { conv2d } from '../engine/ops/conv.js';
import { concat } from '../engine/ops/shape_ops.js';
import { sum } from '../engine/ops/reduce.js';
import { randn } from '../engine/ops/random.js';
import { Module } from './module.js';
import type { TensorModule } from './module.js';
import { Linear, Conv2d } from './layers.js';

/** A flow layer's output: y and log|det dy/dx| per example [B]. */
export interface FlowOutput {
  y: Tensor;
  logdet: Tensor;
}

/** An invertible layer. */
export abstract class FlowLayer extends Module {
  /** Data -> latent, with the log-determinant per example. */
  abstract forward(x: Tensor): FlowOutput;
  /** Latent -> data (the exact inverse of forward). */
  abstract inverse(y: Tensor): Tensor;
}

const LOG_2PI = Math.log(2 * Math.PI);

/** Axes of x other than the batch axis. */
export function featureAxes(x: Tensor): number[] {
  return x.shape.map((_, i) => i).slice(1);
}

/** Number of values per example (C*H*W). */
function spatial(x: Tensor): number {
  return x.shape.slice(2).reduce((a, b) => a * b, 1);
}

/** Shape that broadcasts a per-channel vector [C] against x: [1, C] or [1, C, 1, 1]. */
function channelShape(x: Tensor, C: number): number[] {
  return [1, C, ...x.shape.slice(2).map(() => 1)];
}

/** log N(z; 0, I) summed per example [B]. */
export function standardNormalLogProb(z: Tensor): Tensor {
  return sum(z.square().add(LOG_2PI).mul(-0.5), featureAxes(z));
}

/** log N(z; mean, exp(logStd)^2) summed per example [B]. */
export function gaussianLogProb(z: Tensor, mean: Tensor, logStd: Tensor): Tensor {
  const d = z.sub(mean).mul(logStd.neg().exp());
  return sum(d.square().add(LOG_2PI).mul(-0.5).sub(logStd), featureAxes(z));
}

/** A [B] tensor filled with v (a logdet that does not depend on x). */
function constLogdet(B: number, v: Tensor | number): Tensor {
  return zeros([B]).add(v);
}

/**
 * Actnorm (Glow sec. 3.1): y = (x + bias) * exp(logs) per channel. The first forward
 * in training mode sets bias and logs so that this batch has zero mean and unit
 * variance per channel (data-dependent init); the `initialized` buffer records that
 * in the state dict, so a loaded model never re-initialises.
 * @example
 * const an = new ActNorm(4);
 * const { y, logdet } = an.forward(x); // x [B, 4, H, W]; logdet = H*W*sum(logs)
 */
export class ActNorm extends FlowLayer {
  readonly channels: number;
  bias: Tensor;
  logs: Tensor;
  initialized: Tensor;

  constructor(channels: number) {
    super();
    this.channels = channels;
    this.bias = this.registerParameter('bias', zeros([channels]));
    this.logs = this.registerParameter('logs', zeros([channels]));
    this.initialized = this.registerBuffer('initialized', zeros([1]));
  }

  /** Data-dependent init from x (called by the first training forward). */
  initialize(x: Tensor): void {
    noGrad(() => {
      const axes = [0, ...x.shape.slice(2).map((_, i) => i + 2)];
      const mean = x.mean(axes).values();
      const v = x.var(axes, false, 0).values();
      const b = this.bias.data as Float32Array;
      const l = this.logs.data as Float32Array;
      for (let c = 0; c < this.channels; c++) {
        b[this.bias.offset + c] = -mean[c];
        l[this.logs.offset + c] = -Math.log(Math.sqrt(v[c]) + 1e-6);
      }
      (this.initialized.data as Float32Array)[this.initialized.offset] = 1;
    });
  }

  forward(x: Tensor): FlowOutput {
    if (x.shape[1] !== this.channels) throw new ShapeError(`ActNorm(${this.channels}): input ${fmtShape(x.shape)}`);
    if (this.training && this.initialized.item() === 0) this.initialize(x);
    const cs = channelShape(x, this.channels);
    const y = x.add(this.bias.reshape(cs)).mul(this.logs.exp().reshape(cs));
    return { y, logdet: constLogdet(x.shape[0], this.logs.sum().mul(spatial(x))) };
  }

  inverse(y: Tensor): Tensor {
    const cs = channelShape(y, this.channels);
    return y.mul(this.logs.neg().exp().reshape(cs)).sub(this.bias.reshape(cs));
  }
}

/** Float64 LU with partial pivoting of a row-major n x n matrix: A = P L U. */
export function luDecompose(a: ArrayLike<number>, n: number): { P: Float64Array; L: Float64Array; U: Float64Array } {
  const U = Float64Array.from(a);
  const L = new Float64Array(n * n);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let k = 0; k < n; k++) {
    let piv = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(U[i * n + k]) > Math.abs(U[piv * n + k])) piv = i;
    if (piv !== k) {
      for (let j = 0; j < n; j++) {
        [U[k * n + j], U[piv * n + j]] = [U[piv * n + j], U[k * n + j]];
        [L[k * n + j], L[piv * n + j]] = [L[piv * n + j], L[k * n + j]];
      }
      [perm[k], perm[piv]] = [perm[piv], perm[k]];
    }
    L[k * n + k] = 1;
    for (let i = k + 1; i < n; i++) {
      const f = U[k * n + k] === 0 ? 0 : U[i * n + k] / U[k * n + k];
      L[i * n + k] = f;
      for (let j = k; j < n; j++) U[i * n + j] -= f * U[k * n + j];
    }
  }
  // Rows of A were permuted as perm: (Pi A) = L U, so A = P L U with P = Pi^T.
  const P = new Float64Array(n * n);
  for (let i = 0; i < n; i++) P[perm[i] * n + i] = 1;
  return { P, L, U };
}

/** Float64 inverse of a row-major n x n matrix (Gauss-Jordan with partial pivoting). */
export function invertMatrix(a: ArrayLike<number>, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let k = 0; k < n; k++) {
    let piv = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(m[i * n + k]) > Math.abs(m[piv * n + k])) piv = i;
    for (let j = 0; j < n; j++) {
      [m[k * n + j], m[piv * n + j]] = [m[piv * n + j], m[k * n + j]];
      [inv[k * n + j], inv[piv * n + j]] = [inv[piv * n + j], inv[k * n + j]];
    }
    const d = m[k * n + k];
    if (d === 0) throw new Error('invertMatrix: singular matrix');
    for (let j = 0; j < n; j++) {
      m[k * n + j] /= d;
      inv[k * n + j] /= d;
    }
    for (let i = 0; i < n; i++) {
      if (i === k) continue;
      const f = m[i * n + k];
      if (f === 0) continue;
      for (let j = 0; j < n; j++) {
        m[i * n + j] -= f * m[k * n + j];
        inv[i * n + j] -= f * inv[k * n + j];
      }
    }
  }
  return inv;
}

/** A random orthogonal n x n matrix (Gram-Schmidt on Gaussian columns), float64 row-major. */
function randomOrthogonal(n: number, rng: Rng): Float64Array {
  const q = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const v = Array.from({ length: n }, () => rng.normal());
    for (let k = 0; k < j; k++) {
      let d = 0;
      for (let i = 0; i < n; i++) d += v[i] * q[i * n + k];
      for (let i = 0; i < n; i++) v[i] -= d * q[i * n + k];
    }
    const norm = Math.hypot(...v) || 1;
    for (let i = 0; i < n; i++) q[i * n + j] = v[i] / norm;
  }
  return q;
}

/**
 * Invertible 1x1 convolution in LU form (Glow sec. 3.2): W = P L (U + diag(sign_s *
 * exp(log_s))), with P a fixed permutation, L unit lower triangular and U strictly
 * upper triangular; log|det W| = sum(log_s), times H*W for images. Initialised from
 * a random rotation. On vectors [B, C] it is an invertible linear map y = x W^T.
 * State dict: lower, upper, log_s (parameters), p, sign_s (buffers).
 */
export class InvConv1x1 extends FlowLayer {
  readonly channels: number;
  lower: Tensor;
  upper: Tensor;
  logS: Tensor;
  p: Tensor;
  signS: Tensor;
  readonly #lowerMask: Tensor;
  readonly #upperMask: Tensor;
  readonly #eye: Tensor;

  constructor(channels: number, rng: Rng) {
    super();
    const C = channels;
    this.channels = C;
    const { P, L, U } = luDecompose(randomOrthogonal(C, rng), C);
    const lower = new Float32Array(C * C);
    const upper = new Float32Array(C * C);
    const logS = new Float32Array(C);
    const sign = new Float32Array(C);
    for (let i = 0; i < C; i++) {
      for (let j = 0; j < C; j++) {
        if (j < i) lower[i * C + j] = L[i * C + j];
        if (j > i) upper[i * C + j] = U[i * C + j];
      }
      const s = U[i * C + i];
      sign[i] = s < 0 ? -1 : 1;
      logS[i] = Math.log(Math.abs(s));
    }
    this.lower = this.registerParameter('lower', new Tensor(lower, [C, C]));
    this.upper = this.registerParameter('upper', new Tensor(upper, [C, C]));
    this.logS = this.registerParameter('log_s', new Tensor(logS, [C]));
    this.p = this.registerBuffer('p', new Tensor(Float32Array.from(P), [C, C]));
    this.signS = this.registerBuffer('sign_s', new Tensor(sign, [C]));
    const lm = new Float32Array(C * C);
    for (let i = 0; i < C; i++) for (let j = 0; j < i; j++) lm[i * C + j] = 1;
    this.#lowerMask = new Tensor(lm, [C, C]);
    this.#upperMask = this.#lowerMask.T.contiguous();
    this.#eye = eye(C);
  }

  /** The dense weight W [C, C] = P L (U + diag(sign_s exp(log_s))), differentiable. */
  weight(): Tensor {
    const L = this.lower.mul(this.#lowerMask).add(this.#eye);
    const U = this.upper.mul(this.#upperMask).add(this.#eye.mul(this.signS.mul(this.logS.exp())));
    return this.p.matmul(L.matmul(U));
  }

  private applyWeight(x: Tensor, W: Tensor): Tensor {
    const C = this.channels;
    if (x.shape[1] !== C) throw new ShapeError(`InvConv1x1(${C}): input ${fmtShape(x.shape)}`);
    return x.rank === 2 ? x.matmul(W.T) : conv2d(x, W.reshape([C, C, 1, 1]));
  }

  forward(x: Tensor): FlowOutput {
    return { y: this.applyWeight(x, this.weight()), logdet: constLogdet(x.shape[0], this.logS.sum().mul(spatial(x))) };
  }

  inverse(y: Tensor): Tensor {
    const C = this.channels;
    const Winv = noGrad(() => new Tensor(Float32Array.from(invertMatrix(this.weight().values(), C)), [C, C]));
    return this.applyWeight(y, Winv);
  }
}

/** How a coupling turns the conditioner's raw scale output into log s. */
export type CouplingScale = 'tanh' | 'sigmoid';

/**
 * Lower bound of the sigmoid coupling's scale: s = sigmoid(h + 2) + SIGMOID_SCALE_MIN,
 * as nflows' AffineCouplingTransform (bayesiains/nflows, transforms/coupling.py).
 * Glow's s = sigmoid(h + 2) (official code, model.py) can be arbitrarily close to 0,
 * and the inverse divides by it: an undertrained model's conditioner, fed the
 * out-of-distribution values of a temperature-1 sample, output h of -70 and below, so
 * 1/s reached 1e31 in one coupling and overflowed float32 (then Inf - Inf = NaN) a few
 * couplings later. With the floor each coupling's inverse gain is at most 1/1e-3; the
 * floor is part of the bijection, used in both directions, so inverse(forward(x)) = x
 * and log|det| = sum(log s) stay exact.
 */
export const SIGMOID_SCALE_MIN = 1e-3;

/**
 * log s from the raw conditioner output: 'tanh' is Real NVP's s = scale * tanh(h)
 * with a learned per-channel scale; 'sigmoid' is Glow's s = sigmoid(h + 2), plus
 * SIGMOID_SCALE_MIN.
 */
function logScale(raw: Tensor, kind: CouplingScale, scale: Tensor | null): Tensor {
  if (kind === 'sigmoid') return raw.add(2).sigmoid().add(SIGMOID_SCALE_MIN).log();
  return raw.tanh().mul(scale!.reshape(channelShape(raw, raw.shape[1])));
}

/**
 * Affine coupling on a channel split (Real NVP eq. 7 with a channel mask; Glow's
 * affine coupling): x = [xa, xb] along axis 1 (xa the first floor(C/2) channels;
 * `parity` 1 swaps the roles), (h_s, h_t) = net(xa), yb = xb * s + t ('tanh') or
 * (xb + t) * s ('sigmoid'), ya = xa. `net` maps [B, Ca, ...] to [B, 2 Cb, ...] (first
 * Cb channels the raw log-scale, the rest t); zero its last layer to start at the identity.
 */
export class AffineCoupling extends FlowLayer {
  readonly channels: number;
  readonly parity: number;
  readonly kind: CouplingScale;
  net: TensorModule;
  scale: Tensor | null;

  constructor(channels: number, net: TensorModule, opts: { parity?: number; scale?: CouplingScale } = {}) {
    super();
    this.channels = channels;
    this.parity = opts.parity ?? 0;
    this.kind = opts.scale ?? 'tanh';
    const { transformed } = couplingSplit(channels, this.parity);
    this.net = this.registerModule('net', net);
    this.scale = this.registerParameter('scale', this.kind === 'tanh' ? ones([transformed]) : null);
  }

  private split(x: Tensor): [Tensor, Tensor] {
    const h = Math.floor(this.channels / 2);
    const a = x.slice(1, 0, h);
    const b = x.slice(1, h, this.channels);
    return this.parity === 0 ? [a, b] : [b, a];
  }

  private join(cond: Tensor, trans: Tensor): Tensor {
    return this.parity === 0 ? concat([cond, trans], 1) : concat([trans, cond], 1);
  }

  private params(cond: Tensor): { logS: Tensor; t: Tensor } {
    const h = this.net.forward(cond);
    const Cb = h.shape[1] / 2;
    return { logS: logScale(h.slice(1, 0, Cb), this.kind, this.scale), t: h.slice(1, Cb, 2 * Cb) };
  }

  forward(x: Tensor): FlowOutput {
    const [xa, xb] = this.split(x);
    const { logS, t } = this.params(xa);
    const yb = this.kind === 'sigmoid' ? xb.add(t).mul(logS.exp()) : xb.mul(logS.exp()).add(t);
    return { y: this.join(xa, yb), logdet: sum(logS, featureAxes(logS)) };
  }

  inverse(y: Tensor): Tensor {
    const [ya, yb] = this.split(y);
    const { logS, t } = this.params(ya);
    const xb = this.kind === 'sigmoid' ? yb.mul(logS.neg().exp()).sub(t) : yb.sub(t).mul(logS.neg().exp());
    return this.join(ya, xb);
  }
}

/** Channel counts of a coupling's split: `cond` channels go into the net, `transformed` are changed. */
export function couplingSplit(channels: number, parity: number): { cond: number; transformed: number } {
  const h = Math.floor(channels / 2);
  return parity === 0 ? { cond: h, transformed: channels - h } : { cond: channels - h, transformed: h };
}

/**
 * Affine coupling with a binary mask b (Real NVP eqs. 8-9): y = b*x + (1-b)*(x *
 * exp(s(b*x)) + t(b*x)), log|det| = sum((1-b) * s). `mask` broadcasts against x
 * (a checkerboard [1, 1, H, W], or [1, D] alternating for vectors); `net` maps x's
 * shape to [B, 2C, ...] (raw log-scale, then t). Log-scale is scale * tanh(h).
 */
export class MaskedAffineCoupling extends FlowLayer {
  readonly channels: number;
  net: TensorModule;
  scale: Tensor;
  readonly #mask: Tensor;
  readonly #inv: Tensor;

  constructor(channels: number, mask: Tensor, net: TensorModule) {
    super();
    this.channels = channels;
    this.net = this.registerModule('net', net);
    this.scale = this.registerParameter('scale', ones([channels]));
    this.#mask = mask;
    this.#inv = mask.neg().add(1);
  }

  private params(x: Tensor): { logS: Tensor; t: Tensor } {
    const h = this.net.forward(x.mul(this.#mask));
    const C = this.channels;
    const logS = h.slice(1, 0, C).tanh().mul(this.scale.reshape(channelShape(x, C))).mul(this.#inv);
    return { logS, t: h.slice(1, C, 2 * C).mul(this.#inv) };
  }

  forward(x: Tensor): FlowOutput {
    const { logS, t } = this.params(x);
    return { y: x.mul(logS.exp()).add(t), logdet: sum(logS, featureAxes(logS)) };
  }

  inverse(y: Tensor): Tensor {
    // b*y = b*x, so the net sees the same input as in forward.
    const { logS, t } = this.params(y);
    return y.sub(t).mul(logS.neg().exp());
  }
}

/**
 * Checkerboard mask [1, 1, H, W] with b = 1 where (i + j + parity) is even (Real NVP fig. 3).
 * For vectors (H = 1), alternating dimensions.
 */
export function checkerboardMask(H: number, W: number, parity: number): Tensor {
  const m = new Float32Array(H * W);
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) m[i * W + j] = (i + j + parity) % 2 === 0 ? 1 : 0;
  return new Tensor(m, [1, 1, H, W]);
}

/**
 * Squeeze (Real NVP sec. 3.6): [B, C, H, W] -> [B, 4C, H/2, W/2], each 2x2 block
 * becoming four channels (channel index c*4 + 2*dy + dx, as Glow's squeeze2d).
 */
export function squeeze2d(x: Tensor): Tensor {
  const [B, C, H, W] = x.shape;
  if (H % 2 !== 0 || W % 2 !== 0) throw new ShapeError(`squeeze2d: height and width must be even, got ${fmtShape(x.shape)}`);
  return x
    .reshape([B, C, H / 2, 2, W / 2, 2]) // (B, C, H/2, dy, W/2, dx)
    .permute([0, 1, 3, 5, 2, 4]) // (B, C, dy, dx, H/2, W/2)
    .reshape([B, C * 4, H / 2, W / 2]);
}

/** The inverse of squeeze2d: [B, 4C, H, W] -> [B, C, 2H, 2W]. */
export function unsqueeze2d(x: Tensor): Tensor {
  const [B, C4, H, W] = x.shape;
  const C = C4 / 4;
  return x
    .reshape([B, C, 2, 2, H, W]) // (B, C, dy, dx, H, W)
    .permute([0, 1, 4, 2, 5, 3]) // (B, C, H, dy, W, dx)
    .reshape([B, C, H * 2, W * 2]);
}

/** A reversal of the feature order along axis 1 (MAF between MADEs); log|det| = 0. */
export class Reverse extends FlowLayer {
  forward(x: Tensor): FlowOutput {
    return { y: x.flip(1), logdet: zeros([x.shape[0]]) };
  }
  inverse(y: Tensor): Tensor {
    return y.flip(1);
  }
}

/**
 * Batch normalization as a bijection (Real NVP sec. 3.7, MAF appendix B):
 * y = exp(log_gamma) * (x - mu) / sqrt(v + eps) + beta, with the batch statistics in
 * training (updating running_mean / running_var) and the running averages in eval.
 * log|det| = sum(log_gamma - 0.5 log(v + eps)). On vectors [B, D].
 * `setStatistics` (and `fitBatchNormStatistics` for a whole flow) replaces the running
 * averages by a data set's exact statistics, as the MAF reference code does with the
 * training set after training: an exponential average over the last ~10 batches
 * misses the rare examples of a heavy-tailed dimension (an MNIST pixel lit in 53 of
 * 60000 training images), and a test image that lights it lands hundreds of standard
 * deviations out.
 */
export class BatchNormFlow extends FlowLayer {
  readonly features: number;
  readonly momentum: number;
  readonly eps: number;
  logGamma: Tensor;
  beta: Tensor;
  runningMean: Tensor;
  runningVar: Tensor;

  constructor(features: number, opts: { momentum?: number; eps?: number } = {}) {
    super();
    this.features = features;
    this.momentum = opts.momentum ?? 0.1;
    this.eps = opts.eps ?? 1e-5;
    this.logGamma = this.registerParameter('log_gamma', zeros([features]));
    this.beta = this.registerParameter('beta', zeros([features]));
    this.runningMean = this.registerBuffer('running_mean', zeros([features]));
    this.runningVar = this.registerBuffer('running_var', ones([features]));
  }

  private stats(x: Tensor): { mean: Tensor; v: Tensor } {
    if (!this.training) return { mean: this.runningMean, v: this.runningVar };
    const mean = x.mean(0);
    const v = x.sub(mean).square().mean(0);
    noGrad(() => {
      const m = this.momentum;
      const rm = this.runningMean.data as Float32Array;
      const rv = this.runningVar.data as Float32Array;
      const mv = mean.values();
      const vv = v.values();
      for (let i = 0; i < this.features; i++) {
        rm[i] = (1 - m) * rm[i] + m * mv[i];
        rv[i] = (1 - m) * rv[i] + m * vv[i];
      }
    });
    return { mean, v };
  }

  forward(x: Tensor): FlowOutput {
    const { mean, v } = this.stats(x);
    const logStd = v.add(this.eps).log().mul(0.5);
    const y = x.sub(mean).mul(this.logGamma.sub(logStd).exp()).add(this.beta);
    return { y, logdet: constLogdet(x.shape[0], this.logGamma.sub(logStd).sum()) };
  }

  /** Uses the running statistics (sampling happens in eval mode). */
  inverse(y: Tensor): Tensor {
    const logStd = this.runningVar.add(this.eps).log().mul(0.5);
    return y.sub(this.beta).mul(logStd.sub(this.logGamma).exp()).add(this.runningMean);
  }

  /**
   * Set running_mean / running_var to the mean and (biased) variance of the rows of
   * `chunks` ([n_i, D] each) taken together, summed in float64 in two passes.
   */
  setStatistics(chunks: Tensor[]): void {
    const D = this.features;
    const mean = new Float64Array(D);
    const m2 = new Float64Array(D);
    let n = 0;
    for (const c of chunks) {
      const v = c.values();
      for (let r = 0; r < c.shape[0]; r++) for (let i = 0; i < D; i++) mean[i] += v[r * D + i];
      n += c.shape[0];
    }
    if (n === 0) return;
    for (let i = 0; i < D; i++) mean[i] /= n;
    for (const c of chunks) {
      const v = c.values();
      for (let r = 0; r < c.shape[0]; r++) {
        for (let i = 0; i < D; i++) {
          const d = v[r * D + i] - mean[i];
          m2[i] += d * d;
        }
      }
    }
    (this.runningMean.data as Float32Array).set(Float32Array.from(mean), this.runningMean.offset);
    (this.runningVar.data as Float32Array).set(Float32Array.from(m2, (s) => s / n), this.runningVar.offset);
  }
}

/** A chain of flow layers; logdets add up. Children are named '0', '1', ... */
export class FlowSequence extends FlowLayer {
  readonly #layers: FlowLayer[] = [];

  constructor(layers: Iterable<FlowLayer> = []) {
    super();
    for (const l of layers) this.append(l);
  }

  append(l: FlowLayer): this {
    this.registerModule(String(this.#layers.length), l);
    this.#layers.push(l);
    return this;
  }

  get length(): number {
    return this.#layers.length;
  }

  at(i: number): FlowLayer {
    const l = this.#layers.at(i);
    if (!l) throw new RangeError(`FlowSequence.at: index ${i} out of range`);
    return l;
  }

  forward(x: Tensor): FlowOutput {
    let y = x;
    let logdet: Tensor | null = null;
    for (const l of this.#layers) {
      const o = l.forward(y);
      y = o.y;
      logdet = logdet ? logdet.add(o.logdet) : o.logdet;
    }
    return { y, logdet: logdet ?? zeros([x.shape[0]]) };
  }

  inverse(y: Tensor): Tensor {
    let x = y;
    for (let i = this.#layers.length - 1; i >= 0; i--) x = this.#layers[i].inverse(x);
    return x;
  }
}

/**
 * Set every BatchNormFlow in `flow` to the exact statistics of its inputs when `chunks`
 * (row blocks of one data set, [n_i, D]) go through the flow in eval mode, so each
 * batch norm sees its predecessors' new statistics (MAF reference code: the training
 * set's statistics after training). Training mode is restored afterwards.
 * @example
 * fitBatchNormStatistics(flow, [train.slice(0, 0, 2000), train.slice(0, 2000, 4000)]);
 */
export function fitBatchNormStatistics(flow: FlowSequence, chunks: Tensor[]): void {
  const wasTraining = flow.training;
  flow.eval();
  try {
    noGrad(() => {
      let hs = chunks;
      for (let i = 0; i < flow.length; i++) {
        const l = flow.at(i);
        if (l instanceof BatchNormFlow) l.setStatistics(hs);
        if (i < flow.length - 1) hs = hs.map((h) => l.forward(h).y);
      }
    });
  } finally {
    flow.train(wasTraining);
  }
}

/**
 * Dequantization and logit transform for images (Real NVP sec. 4.1): pixels in
 * {0..255} (x = pixel/255 in [0, 1]) become u = (pixel + U[0,1)) / 256, then
 * y = logit(alpha + (1 - 2 alpha) u). `logdet` is log|dy/du| per example, minus
 * D log 256 so that log p(y) + logdet is the density on the [0, 256) pixel scale,
 * whose negative over D ln 2 is bits per dimension.
 */
export function dequantizeLogit(x: Tensor, alpha: number, rng: Rng | null): FlowOutput {
  const pixels = x.mul(255).add(0.5).clamp(0, 255).values();
  const u = new Float32Array(pixels.length);
  for (let i = 0; i < u.length; i++) u[i] = (Math.floor(pixels[i]) + (rng ? rng.uniform() : 0.5)) / 256;
  const ut = new Tensor(u, x.shape);
  const s = ut.mul(1 - 2 * alpha).add(alpha);
  const y = s.log().sub(s.neg().log1p());
  const D = x.size / x.shape[0];
  // dy/du = (1 - 2 alpha) / (s (1 - s)); then u = z / 256 on the pixel scale z.
  const jac = s.log().add(s.neg().log1p()).neg().add(Math.log(1 - 2 * alpha));
  return { y, logdet: sum(jac, featureAxes(jac)).sub(D * Math.log(256)) };
}

/** Inverse of the logit transform: y -> u in [0, 1] (clamped). */
export function logitToImage(y: Tensor, alpha: number): Tensor {
  return y.sigmoid().sub(alpha).div(1 - 2 * alpha).clamp(0, 1);
}

/**
 * The conditioner of a coupling on vectors: an MLP inDim -> hiddenDim (x nHidden,
 * ReLU) -> outDim whose last layer starts at zero, so the coupling starts as the identity.
 */
export class CouplingMLP extends Module {
  readonly layers: Linear[] = [];

  constructor(inDim: number, hiddenDim: number, nHidden: number, outDim: number, rng: Rng) {
    super();
    let d = inDim;
    for (let i = 0; i < nHidden; i++) {
      this.layers.push(this.registerModule(String(i), new Linear(d, hiddenDim, rng)));
      d = hiddenDim;
    }
    const last = this.registerModule(String(nHidden), new Linear(d, outDim, rng));
    noGrad(() => {
      last.weight.data.fill(0);
      last.bias!.data.fill(0);
    });
    this.layers.push(last);
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (let i = 0; i < this.layers.length; i++) {
      h = this.layers[i].forward(h, i < this.layers.length - 1 ? { activation: 'relu' } : {});
    }
    return h;
  }
}

/**
 * The conditioner of a coupling on images (Glow's NN(), sec. 3.3 / appendix):
 * conv 3x3 (inC -> hidden), ReLU, conv 1x1 (hidden -> hidden), ReLU, conv 3x3
 * (hidden -> outC) initialised to zero, so the coupling starts as the identity.
 */
export class CouplingConvNet extends Module {
  conv1: Conv2d;
  conv2: Conv2d;
  conv3: Conv2d;

  constructor(inC: number, hidden: number, outC: number, rng: Rng) {
    super();
    this.conv1 = this.registerModule('conv1', new Conv2d(inC, hidden, 3, rng, { padding: 1 }));
    this.conv2 = this.registerModule('conv2', new Conv2d(hidden, hidden, 1, rng));
    this.conv3 = this.registerModule('conv3', new Conv2d(hidden, outC, 3, rng, { padding: 1 }));
    noGrad(() => {
      this.conv3.weight.data.fill(0);
      this.conv3.bias!.data.fill(0);
    });
  }

  forward(x: Tensor): Tensor {
    return this.conv3.forward(this.conv2.forward(this.conv1.forward(x).relu()).relu());
  }
}

/** n latent tensors of the given per-example shapes, from N(0, T^2 I). */
export function sampleLatents(shapes: number[][], n: number, temperature: number, rng: Rng): Tensor[] {
  return shapes.map((s) => randn([n, ...s], rng).mul(temperature));
}

/**
 * Mean negative log-likelihood (nats per example) of x under `logProb`, in batches
 * without gradients, and bits per dimension (nll / (D ln 2)).
 */
export function flowNll(logProb: (x: Tensor) => Tensor, x: Tensor, batchSize = 200): { nll: number; bitsPerDim: number } {
  return noGrad(() => {
    const n = x.shape[0];
    const D = x.size / Math.max(n, 1);
    let total = 0;
    for (let i = 0; i < n; i += batchSize) {
      const lp = logProb(x.slice(0, i, Math.min(n, i + batchSize))).values();
      for (const v of lp) total -= v;
    }
    const nll = total / n;
    return { nll, bitsPerDim: nll / (D * Math.LN2) };
  });
}

/** log|det A| of a row-major n x n matrix, in float64. */
export function logAbsDet(a: ArrayLike<number>, n: number): number {
  const { U } = luDecompose(a, n);
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.log(Math.abs(U[i * n + i]));
  return s;
}

/**
 * Brute-force log|det df/dx| per example: the full Jacobian of f (one example at a
 * time, one autograd pass per output value), then a float64 LU. For testing flow
 * layers on small inputs (D up to a few hundred).
 * @example
 * const ld = bruteForceLogDet((x) => layer.forward(x).y, x); // compare with layer.forward(x).logdet
 */
export function bruteForceLogDet(f: (x: Tensor) => Tensor, x: Tensor): Float64Array {
  const B = x.shape[0];
  const out = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const xb = x.slice(0, b, b + 1).contiguous().detach().requiresGrad_();
    const y = f(xb).reshape([-1]);
    const D = xb.size;
    if (y.size !== D) throw new ShapeError(`bruteForceLogDet: f maps ${D} values to ${y.size}`);
    const J = new Float64Array(D * D);
    for (let i = 0; i < D; i++) {
      const [g] = grad(y.slice(0, i, i + 1).sum(), [xb], { allowUnused: true });
      if (g) J.set(g.values(), i * D);
    }
    out[b] = logAbsDet(J, D);
  }
  return out;
}
