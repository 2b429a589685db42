/**
 * Parameter initialisation, as torch.nn.init (https://pytorch.org/docs/stable/nn.init.html):
 * uniform_, normal_, constant_, zeros_, ones_, xavier (Glorot & Bengio 2010),
 * kaiming (He et al. 2015, "Delving Deep into Rectifiers") and orthogonal (Saxe et
 * al. 2013). Every function fills a tensor in place from an explicit `Rng` and
 * returns it; values are drawn in row-major order, so a seed gives the same weights
 * on every backend. The trailing underscore marks in-place, as in torch; the
 * un-suffixed aliases (xavierUniform, ...) are the same functions.
 */
import type { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import { fmtShape } from '../engine/shape.js';

export type Nonlinearity =
  | 'linear' | 'conv1d' | 'conv2d' | 'conv3d' | 'conv_transpose1d' | 'conv_transpose2d' | 'conv_transpose3d'
  | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';

export type FanMode = 'fan_in' | 'fan_out';

/** Writable float storage of t in row-major order (parameters own contiguous storage). */
function storage(op: string, t: Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new TypeError(`${op}: expected a float32 tensor, got ${t.dtype}`);
  if (!t.isContiguous()) throw new TypeError(`${op}: tensor of shape ${fmtShape(t.shape)} is not contiguous; init a contiguous tensor`);
  return (t.data as Float32Array).subarray(t.offset, t.offset + t.size);
}

/**
 * Recommended gain for a nonlinearity (torch.nn.init.calculate_gain).
 * @example
 * calculateGain('leaky_relu', Math.sqrt(5)); // sqrt(2 / (1 + 5)) = 0.577...
 */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv1d': case 'conv2d': case 'conv3d':
    case 'conv_transpose1d': case 'conv_transpose2d': case 'conv_transpose3d': case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
    default:
      throw new Error(`calculateGain: unsupported nonlinearity '${String(nonlinearity)}'`);
  }
}

/**
 * fan_in and fan_out of a weight shape: dim 1 and dim 0 times the receptive field
 * (the product of dims 2..), as torch's _calculate_fan_in_and_fan_out.
 */
export function fanInOut(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new RangeError(`fanInOut: fan in and fan out need at least 2 dimensions, got ${fmtShape(shape)}`);
  let receptive = 1;
  for (let i = 2; i < shape.length; i++) receptive *= shape[i];
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

/** Fill with U(low, high). */
export function uniform_(t: Tensor, rng: Rng, low = 0, high = 1): Tensor {
  const d = storage('uniform_', t);
  const span = high - low;
  for (let i = 0; i < d.length; i++) d[i] = low + span * rng.uniform();
  return t;
}

/** Fill with N(mean, std^2). */
export function normal_(t: Tensor, rng: Rng, mean = 0, std = 1): Tensor {
  const d = storage('normal_', t);
  for (let i = 0; i < d.length; i++) d[i] = mean + std * rng.normal();
  return t;
}

/**
 * Fill with N(mean, std^2) truncated to [a, b] by rejection (torch.nn.init.trunc_normal_;
 * a and b are absolute bounds).
 */
export function truncNormal_(t: Tensor, rng: Rng, mean = 0, std = 1, a = -2, b = 2): Tensor {
  if (!(a < b)) throw new RangeError(`truncNormal_: empty interval [${a}, ${b}]`);
  const d = storage('truncNormal_', t);
  for (let i = 0; i < d.length; i++) {
    let v = mean + std * rng.normal();
    for (let tries = 0; (v < a || v > b) && tries < 1000; tries++) v = mean + std * rng.normal();
    d[i] = Math.min(Math.max(v, a), b);
  }
  return t;
}

export function constant_(t: Tensor, value: number): Tensor {
  storage('constant_', t).fill(value);
  return t;
}

export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}

export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

/** Glorot uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform_(t: Tensor, rng: Rng, gain = 1): Tensor {
  const { fanIn, fanOut } = fanInOut(t.shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, rng, -bound, bound);
}

/** Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)). */
export function xavierNormal_(t: Tensor, rng: Rng, gain = 1): Tensor {
  const { fanIn, fanOut } = fanInOut(t.shape);
  return normal_(t, rng, 0, gain * Math.sqrt(2 / (fanIn + fanOut)));
}

export interface KaimingOptions {
  /** Negative slope of the rectifier after this layer (leaky_relu only); default 0. */
  a?: number;
  /** 'fan_in' (default) keeps forward variance, 'fan_out' backward variance. */
  mode?: FanMode;
  /** Default 'leaky_relu' (with a = 0 that is ReLU's gain sqrt(2)), as torch. */
  nonlinearity?: Nonlinearity;
}

function kaimingStd(op: string, t: Tensor, opts: KaimingOptions): number {
  const { fanIn, fanOut } = fanInOut(t.shape);
  const fan = (opts.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  if (fan === 0) throw new RangeError(`${op}: zero fan for shape ${fmtShape(t.shape)}`);
  return calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0) / Math.sqrt(fan);
}

/**
 * He uniform: U(-b, b), b = gain * sqrt(3 / fan). torch's default for Linear and Conv
 * weights is kaimingUniform_(w, rng, {a: Math.sqrt(5)}), i.e. b = 1 / sqrt(fan_in).
 */
export function kaimingUniform_(t: Tensor, rng: Rng, opts: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd('kaimingUniform_', t, opts);
  return uniform_(t, rng, -bound, bound);
}

/** He normal: N(0, std^2), std = gain / sqrt(fan). */
export function kaimingNormal_(t: Tensor, rng: Rng, opts: KaimingOptions = {}): Tensor {
  return normal_(t, rng, 0, kaimingStd('kaimingNormal_', t, opts));
}

/**
 * A (semi-)orthogonal matrix: the weight seen as [shape[0], rest] has orthonormal rows
 * or columns (whichever are fewer), times `gain`. As torch: QR of a Gaussian matrix
 * with the signs fixed so R has a positive diagonal, which is what modified
 * Gram-Schmidt gives directly (computed here in float64).
 */
export function orthogonal_(t: Tensor, rng: Rng, gain = 1): Tensor {
  if (t.rank < 2) throw new RangeError(`orthogonal_: needs at least 2 dimensions, got ${fmtShape(t.shape)}`);
  const rows = t.shape[0];
  const cols = t.size / Math.max(rows, 1);
  const d = storage('orthogonal_', t);
  if (t.size === 0) return t;
  // The Gaussian matrix is drawn as [rows, cols] row-major; QR works on the tall
  // orientation [m, n] with m >= n, so transpose when the matrix is wide.
  const g = new Float64Array(rows * cols);
  for (let i = 0; i < g.length; i++) g[i] = rng.normal();
  const wide = rows < cols;
  const m = wide ? cols : rows;
  const n = wide ? rows : cols;
  // a[j] is column j of the tall matrix (length m).
  const a: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const col = new Float64Array(m);
    for (let i = 0; i < m; i++) col[i] = wide ? g[j * cols + i] : g[i * cols + j];
    a.push(col);
  }
  for (let j = 0; j < n; j++) {
    const q = a[j];
    // Two passes of modified Gram-Schmidt keep orthogonality at float64 round-off.
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        const p = a[k];
        let dot = 0;
        for (let i = 0; i < m; i++) dot += p[i] * q[i];
        for (let i = 0; i < m; i++) q[i] -= dot * p[i];
      }
    }
    let norm = 0;
    for (let i = 0; i < m; i++) norm += q[i] * q[i];
    norm = Math.sqrt(norm);
    if (norm === 0) throw new Error('orthogonal_: degenerate random matrix (zero column)');
    for (let i = 0; i < m; i++) q[i] /= norm;
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) d[r * cols + c] = gain * (wide ? a[r][c] : a[c][r]);
  }
  return t;
}

export const xavierUniform = xavierUniform_;
export const xavierNormal = xavierNormal_;
export const kaimingUniform = kaimingUniform_;
export const kaimingNormal = kaimingNormal_;
export const orthogonal = orthogonal_;
