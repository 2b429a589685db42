/**
 * Convolutions, pooling and upsampling on NCHW tensors, with PyTorch semantics
 * (torch.nn.functional conv2d, conv1d, conv_transpose2d, max_pool2d, avg_pool2d and
 * interpolate with mode 'nearest' or 'bilinear').
 *
 * Convolution is im2col + GEMM (Chellapilla et al. 2006, "High Performance
 * Convolutional Neural Networks for Document Processing"; Caffe's im2col), done by the
 * backends' conv2d* kernels (native: implicit GEMM, no column buffer). Three
 * primitives describe one convolution geometry and are closed under differentiation,
 * so double backward (WGAN-GP, R1 penalties) works to any order:
 *   convFwd(x, w)         y = conv(x, w)                          conv2d
 *   convBwdData(y, w)     x = conv^T(y, w) = col2im(w^T . y)      conv_transpose2d
 *   convBwdWeight(x, y)   w = sum_n y_n . im2col(x_n)^T           the weight gradient
 * All three are bilinear, and the gradient of each is written with the other two, as
 * PyTorch's convolution_backward and its double-backward rule do.
 *
 * Max pooling records the argmax and routes the gradient through scatterAdd (whose
 * gradient is gather). Average pooling and upsampling are linear maps: the gradient of
 * each is its adjoint, a primitive whose own gradient is the forward map again.
 * References: PyTorch aten/src/ATen/native/{Convolution.cpp, DilatedMaxPool2d.cpp,
 * AveragePool2d.cpp, UpSample.h}.
 */
import { scratchBuffers } from '../backends/conv_ref.js';
import { backend } from '../backends/index.js';
import type { ConvGeometry } from '../backends/backend.js';
import { Tensor, allocF32, emptyF32, fromOp } from '../tensor.js';
import { ShapeError, fmtShape } from '../shape.js';
import { sum } from './reduce.js';
import { reshape, squeeze, unsqueeze } from './shape_ops.js';
import { scatterAdd } from './indexing.js';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  /** Extra rows/columns on the bottom/right of the output; must be < max(stride, dilation). */
  outputPadding?: number | [number, number];
}

export interface Conv1dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
}

export interface Pool2dOptions {
  /** Defaults to the kernel size, as PyTorch. */
  stride?: number | [number, number];
  /** Implicit padding on each side: -inf for max pooling, zeros for average pooling. */
  padding?: number | [number, number];
  /** Spacing of the kernel taps (max pooling only; PyTorch's avg_pool2d has none). */
  dilation?: number | [number, number];
  /** Round the output size up instead of down (PyTorch's ceil_mode). */
  ceilMode?: boolean;
}

export interface AvgPool2dOptions extends Pool2dOptions {
  /** Count the zero padding in the divisor (PyTorch's default, true). */
  countIncludePad?: boolean;
  /** Divide every window sum by this instead of the window size. */
  divisorOverride?: number;
}

export interface UpsampleOptions {
  /** Multiplier of height and width; the output size is floor(in * scale). */
  scaleFactor?: number | [number, number];
  /** Output [height, width]; give either this or scaleFactor. */
  size?: [number, number];
  /** 'nearest' (default; PyTorch's 'nearest', not 'nearest-exact') or 'bilinear'. */
  mode?: 'nearest' | 'bilinear';
  /** Bilinear only: map corner pixel centres onto each other (default false). */
  alignCorners?: boolean;
}

// ---- Geometry ----------------------------------------------------------------------

/**
 * One convolution from the "x side" [N, Cin, H, W] to the "y side" [N, Cout, oh, ow]
 * with weight [Cout, Cin/groups, kh, kw] (the backends' ConvGeometry). Output sizes are
 * explicit (not recomputed) so that a transposed convolution with outputPadding maps
 * back exactly.
 */
type ConvGeom = ConvGeometry;

function pair(op: string, name: string, v: number | readonly number[] | undefined, def: number, min: number): [number, number] {
  const p: [number, number] = v === undefined ? [def, def] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if ((typeof v === 'object' && v.length !== 2) || p.some((e) => !Number.isInteger(e) || e < min)) {
    throw new RangeError(`${op}: ${name} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return p;
}

function fmtPair(p: readonly number[]): string {
  return p[0] === p[1] ? `${p[0]}` : `${p[0]}x${p[1]}`;
}

/** Reusable scratch buffers for padding and pooling (never escape a call). */
const scratch = scratchBuffers(2);

// ---- Raw kernels (typed arrays in, typed array out) ----------------------------------

/** y [N, Cout, oh, ow] = conv(x, w) + bias. */
function convFwdRaw(xv: Float32Array, wv: Float32Array, bv: Float32Array | null, G: ConvGeom): Float32Array {
  const out = emptyF32(G.N * G.Cout * G.oh * G.ow);
  if (out.length > 0) backend().conv2dForward(xv, wv, bv, G, out);
  return out;
}

/** x [N, Cin, H, W] = conv^T(y, w) + bias (bias per x-side channel): the adjoint of convFwdRaw. */
function convBwdDataRaw(yv: Float32Array, wv: Float32Array, bv: Float32Array | null, G: ConvGeom): Float32Array {
  const { N, Cin } = G;
  const HW = G.H * G.W;
  // Without a bias the backend writes every element (nothing to zero first).
  const empty = bv === null && G.oh * G.ow > 0 && G.Cout > 0;
  const out = empty ? emptyF32(N * Cin * HW) : allocF32(N * Cin * HW);
  if (out.length === 0) return out;
  if (bv) for (let n = 0; n < N; n++) for (let c = 0; c < Cin; c++) out.fill(bv[c], (n * Cin + c) * HW, (n * Cin + c + 1) * HW);
  if (G.oh * G.ow === 0 || G.Cout === 0) return out;
  backend().conv2dBackwardData(yv, wv, G, out, empty);
  return out;
}

/** dw [Cout, Cin/groups, kh, kw] = sum_n y_n . im2col(x_n)^T: the gradient of convFwd in w. */
function convBwdWeightRaw(xv: Float32Array, yv: Float32Array, G: ConvGeom): Float32Array {
  const out = allocF32(G.Cout * (G.Cin / G.groups) * G.kh * G.kw);
  if (out.length === 0 || G.N === 0 || G.oh * G.ow === 0) return out;
  backend().conv2dBackwardWeight(xv, yv, G, out);
  return out;
}

// ---- The three convolution primitives ----------------------------------------------

function convFwd(x: Tensor, w: Tensor, b: Tensor | null, G: ConvGeom, op = 'conv2d'): Tensor {
  const out = convFwdRaw(x.f32(op), w.f32(op), b ? b.f32(op) : null, G);
  return fromOp(op, out, [G.N, G.Cout, G.oh, G.ow], b ? [x, w, b] : [x, w], (g) => [
    x.requiresGrad ? convBwdData(g, w, null, G) : null,
    w.requiresGrad ? convBwdWeight(x, g, G) : null,
    b?.requiresGrad ? sum(g, [0, 2, 3]) : null,
  ]);
}

function convBwdData(y: Tensor, w: Tensor, b: Tensor | null, G: ConvGeom, op = 'convTranspose2d'): Tensor {
  const out = convBwdDataRaw(y.f32(op), w.f32(op), b ? b.f32(op) : null, G);
  return fromOp(op, out, [G.N, G.Cin, G.H, G.W], b ? [y, w, b] : [y, w], (g) => [
    y.requiresGrad ? convFwd(g, w, null, G) : null,
    w.requiresGrad ? convBwdWeight(g, y, G) : null,
    b?.requiresGrad ? sum(g, [0, 2, 3]) : null,
  ]);
}

function convBwdWeight(x: Tensor, y: Tensor, G: ConvGeom): Tensor {
  const op = 'conv2dWeightGrad';
  const out = convBwdWeightRaw(x.f32(op), y.f32(op), G);
  return fromOp(op, out, [G.Cout, G.Cin / G.groups, G.kh, G.kw], [x, y], (g) => [
    x.requiresGrad ? convBwdData(y, g, null, G) : null,
    y.requiresGrad ? convFwd(x, g, null, G) : null,
  ]);
}

// ---- Public convolutions -------------------------------------------------------------

interface ConvParams {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

function convParams(op: string, opts: Conv2dOptions): ConvParams {
  const groups = opts.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new RangeError(`${op}: groups must be a positive integer, got ${groups}`);
  return {
    stride: pair(op, 'stride', opts.stride, 1, 1),
    padding: pair(op, 'padding', opts.padding, 0, 0),
    dilation: pair(op, 'dilation', opts.dilation, 1, 1),
    groups,
  };
}

function checkBias(op: string, b: Tensor | null | undefined, C: number, w: Tensor): Tensor | null {
  if (!b) return null;
  if (b.rank !== 1 || b.shape[0] !== C) {
    throw new ShapeError(`${op}: bias must be [${C}] for weight ${fmtShape(w.shape)}, got ${fmtShape(b.shape)}`);
  }
  return b;
}

function describe(p: ConvParams): string {
  return `stride ${fmtPair(p.stride)}, padding ${fmtPair(p.padding)}, dilation ${fmtPair(p.dilation)}`;
}

/**
 * 2-D convolution (cross-correlation, as torch.nn.functional.conv2d).
 * x [N, Cin, H, W], weight [Cout, Cin/groups, kh, kw], bias [Cout] -> [N, Cout, oh, ow]
 * with oh = floor((H + 2 padding - dilation (kh - 1) - 1) / stride) + 1.
 * @example
 * const y = conv2d(x, w, b, { stride: 2, padding: 1 }); // (B, 3, 64, 64) -> (B, 64, 32, 32)
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  if (x.rank !== 4) throw new ShapeError(`${op}: input must be 4-D [N, C, H, W], got ${fmtShape(x.shape)}`);
  if (weight.rank !== 4) throw new ShapeError(`${op}: weight must be 4-D [Cout, Cin/groups, kh, kw], got ${fmtShape(weight.shape)}`);
  const p = convParams(op, opts);
  const [N, Cin, H, W] = x.shape;
  const [Cout, Cg, kh, kw] = weight.shape;
  if (Cout % p.groups !== 0) throw new ShapeError(`${op}: groups ${p.groups} does not divide the ${Cout} output channels of weight ${fmtShape(weight.shape)}`);
  if (Cin % p.groups !== 0) throw new ShapeError(`${op}: groups ${p.groups} does not divide the ${Cin} channels of input ${fmtShape(x.shape)}`);
  if (Cg * p.groups !== Cin) {
    throw new ShapeError(`${op}: weight ${fmtShape(weight.shape)} with groups ${p.groups} expects ${Cg * p.groups} input channels, input ${fmtShape(x.shape)} has ${Cin}`);
  }
  const b = checkBias(op, bias, Cout, weight);
  const oh = Math.floor((H + 2 * p.padding[0] - p.dilation[0] * (kh - 1) - 1) / p.stride[0]) + 1;
  const ow = Math.floor((W + 2 * p.padding[1] - p.dilation[1] * (kw - 1) - 1) / p.stride[1]) + 1;
  if (oh < 1 || ow < 1) {
    throw new ShapeError(`${op}: output size ${oh}x${ow} is too small (input ${fmtShape(x.shape)}, kernel ${kh}x${kw}, ${describe(p)})`);
  }
  const G: ConvGeom = {
    N, Cin, H, W, Cout, oh, ow, kh, kw,
    sh: p.stride[0], sw: p.stride[1], ph: p.padding[0], pw: p.padding[1], dh: p.dilation[0], dw: p.dilation[1], groups: p.groups,
  };
  return convFwd(x, weight, b, G);
}

/**
 * 1-D convolution (torch.nn.functional.conv1d) as a 2-D one over height 1; the
 * reshapes are views, so nothing is copied.
 * x [N, Cin, L], weight [Cout, Cin/groups, k], bias [Cout] -> [N, Cout, oL].
 * @example
 * const y = conv1d(x, w, null, { padding: 1 }); // (B, 16, T) -> (B, 32, T) for k = 3
 */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv1dOptions = {}): Tensor {
  if (x.rank !== 3) throw new ShapeError(`conv1d: input must be 3-D [N, C, L], got ${fmtShape(x.shape)}`);
  if (weight.rank !== 3) throw new ShapeError(`conv1d: weight must be 3-D [Cout, Cin/groups, k], got ${fmtShape(weight.shape)}`);
  for (const [name, v] of [['stride', opts.stride], ['padding', opts.padding], ['dilation', opts.dilation]] as const) {
    if (v !== undefined && typeof v !== 'number') throw new RangeError(`conv1d: ${name} must be a number, got ${JSON.stringify(v)}`);
  }
  const y = conv2d(unsqueeze(x, 2), unsqueeze(weight, 2), bias, {
    stride: [1, opts.stride ?? 1],
    padding: [0, opts.padding ?? 0],
    dilation: [1, opts.dilation ?? 1],
    groups: opts.groups,
  });
  return squeeze(y, 2);
}

/**
 * Transposed 2-D convolution (torch.nn.functional.conv_transpose2d): the adjoint of
 * conv2d with the same weight, so it doubles the size for k4 s2 p1 (DCGAN).
 * x [N, Cin, H, W], weight [Cin, Cout/groups, kh, kw] (PyTorch layout), bias [Cout]
 * -> [N, Cout, (H - 1) stride - 2 padding + dilation (kh - 1) + outputPadding + 1, ...].
 * @example
 * const y = convTranspose2d(z, w, null, { stride: 2, padding: 1 }); // (B, 128, 8, 8) -> (B, 64, 16, 16) for k = 4
 */
export function convTranspose2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  if (x.rank !== 4) throw new ShapeError(`${op}: input must be 4-D [N, C, H, W], got ${fmtShape(x.shape)}`);
  if (weight.rank !== 4) throw new ShapeError(`${op}: weight must be 4-D [Cin, Cout/groups, kh, kw], got ${fmtShape(weight.shape)}`);
  const p = convParams(op, opts);
  const op2 = pair(op, 'outputPadding', opts.outputPadding, 0, 0);
  const [N, Cin, H, W] = x.shape;
  const [Cw, Og, kh, kw] = weight.shape;
  if (Cw !== Cin) throw new ShapeError(`${op}: weight ${fmtShape(weight.shape)} expects ${Cw} input channels, input ${fmtShape(x.shape)} has ${Cin}`);
  if (Cin % p.groups !== 0) throw new ShapeError(`${op}: groups ${p.groups} does not divide the ${Cin} channels of input ${fmtShape(x.shape)}`);
  for (let i = 0; i < 2; i++) {
    if (op2[i] >= Math.max(p.stride[i], p.dilation[i])) {
      throw new RangeError(`${op}: outputPadding ${fmtPair(op2)} must be smaller than stride or dilation (${describe(p)})`);
    }
  }
  const Cout = Og * p.groups;
  const b = checkBias(op, bias, Cout, weight);
  const OH = (H - 1) * p.stride[0] - 2 * p.padding[0] + p.dilation[0] * (kh - 1) + op2[0] + 1;
  const OW = (W - 1) * p.stride[1] - 2 * p.padding[1] + p.dilation[1] * (kw - 1) + op2[1] + 1;
  if (OH < 1 || OW < 1) {
    throw new ShapeError(`${op}: output size ${OH}x${OW} is too small (input ${fmtShape(x.shape)}, kernel ${kh}x${kw}, ${describe(p)})`);
  }
  // The conv2d whose adjoint this is maps [N, Cout, OH, OW] -> [N, Cin, H, W].
  const G: ConvGeom = {
    N, Cin: Cout, H: OH, W: OW, Cout: Cin, oh: H, ow: W, kh, kw,
    sh: p.stride[0], sw: p.stride[1], ph: p.padding[0], pw: p.padding[1], dh: p.dilation[0], dw: p.dilation[1], groups: p.groups,
  };
  return convBwdData(x, weight, b, G);
}

// ---- Pooling -----------------------------------------------------------------------

interface PoolGeom {
  NC: number; H: number; W: number; oh: number; ow: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; dh: number; dw: number;
}

/** PyTorch's pooling_output_shape: floor or ceil, and no window may start in the right padding. */
function poolOut(size: number, k: number, s: number, p: number, d: number, ceil: boolean): number {
  const span = size + 2 * p - d * (k - 1) - 1;
  let o = Math.floor((span + (ceil ? s - 1 : 0)) / s) + 1;
  if (ceil && (o - 1) * s >= size + p) o--;
  return o;
}

function poolGeom(op: string, x: Tensor, kernelSize: number | [number, number], opts: Pool2dOptions): PoolGeom {
  if (x.rank !== 4) throw new ShapeError(`${op}: input must be 4-D [N, C, H, W], got ${fmtShape(x.shape)}`);
  const k = pair(op, 'kernelSize', kernelSize, 1, 1);
  const s = opts.stride === undefined ? k : pair(op, 'stride', opts.stride, 1, 1);
  const p = pair(op, 'padding', opts.padding, 0, 0);
  const d = pair(op, 'dilation', opts.dilation, 1, 1);
  if (p[0] > k[0] / 2 || p[1] > k[1] / 2) {
    throw new RangeError(`${op}: padding ${fmtPair(p)} must be at most half the kernel size ${fmtPair(k)}`);
  }
  const [N, C, H, W] = x.shape;
  const ceil = opts.ceilMode ?? false;
  const oh = poolOut(H, k[0], s[0], p[0], d[0], ceil);
  const ow = poolOut(W, k[1], s[1], p[1], d[1], ceil);
  if (oh < 1 || ow < 1) {
    throw new ShapeError(`${op}: output size ${oh}x${ow} is too small (input ${fmtShape(x.shape)}, kernel ${fmtPair(k)}, stride ${fmtPair(s)}, padding ${fmtPair(p)}, dilation ${fmtPair(d)})`);
  }
  return { NC: N * C, H, W, oh, ow, kh: k[0], kw: k[1], sh: s[0], sw: s[1], ph: p[0], pw: p[1], dh: d[0], dw: d[1] };
}

/**
 * Max pooling (torch.nn.functional.max_pool2d) that also returns the argmax of each
 * window as a flat index into its H*W plane (PyTorch's return_indices=True).
 * Padding counts as -inf. The gradient is routed through scatterAdd (gradient: gather).
 * @example
 * const { values, indices } = maxPool2dWithIndices(x, 2); // (B, C, 8, 8) -> (B, C, 4, 4)
 */
export function maxPool2dWithIndices(x: Tensor, kernelSize: number | [number, number], opts: Pool2dOptions = {}): { values: Tensor; indices: Tensor } {
  const op = 'maxPool2d';
  const P = poolGeom(op, x, kernelSize, opts);
  const { NC, H, W, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw } = P;
  const L = oh * ow;
  const kk = kh * kw;
  const xv = x.f32(op);
  // Pad with -inf up front so every tap of every window is a plain read.
  const Hp = Math.max(H + 2 * ph, (oh - 1) * sh + dh * (kh - 1) + 1);
  const Wp = Math.max(W + 2 * pw, (ow - 1) * sw + dw * (kw - 1) + 1);
  let src = xv;
  if (Hp !== H || Wp !== W) {
    src = scratch(0, NC * Hp * Wp);
    src.fill(-Infinity);
    for (let c = 0; c < NC; c++) {
      for (let i = 0; i < H; i++) src.set(xv.subarray((c * H + i) * W, (c * H + i + 1) * W), (c * Hp + i + ph) * Wp + pw);
    }
  }
  // Window l starts at start[l] of a padded plane; tap k adds tapOff[k]; tap[k*L+l] is
  // the flat index into the unpadded H*W plane (-1 in the padding). There is no backend
  // kernel for this: the loop below is the whole work, as im2col + argmax would be.
  const start = new Int32Array(L);
  const tapOff = new Int32Array(kk);
  const tap = new Int32Array(kk * L);
  const first = new Int32Array(L).fill(-1);
  for (let ki = 0; ki < kh; ki++) for (let kj = 0; kj < kw; kj++) tapOff[ki * kw + kj] = ki * dh * Wp + kj * dw;
  for (let y = 0; y < oh; y++) {
    for (let xq = 0; xq < ow; xq++) {
      const l = y * ow + xq;
      start[l] = y * sh * Wp + xq * sw;
      for (let ki = 0; ki < kh; ki++) {
        const iy = y * sh - ph + ki * dh;
        for (let kj = 0; kj < kw; kj++) {
          const ix = xq * sw - pw + kj * dw;
          const ok = iy >= 0 && iy < H && ix >= 0 && ix < W;
          tap[(ki * kw + kj) * L + l] = ok ? iy * W + ix : -1;
          if (ok && first[l] < 0) first[l] = iy * W + ix;
        }
      }
    }
  }
  const vals = allocF32(NC * L);
  const idx = new Int32Array(NC * L);
  const plane = Hp * Wp;
  for (let c = 0; c < NC; c++) {
    const o = c * L;
    const base = c * plane;
    for (let l = 0; l < L; l++) {
      const b0 = base + start[l];
      // As PyTorch: the first maximum wins, NaN always wins; padding (-inf) never does.
      let best = -Infinity;
      let bestK = -1;
      for (let k = 0; k < kk; k++) {
        const v = src[b0 + tapOff[k]];
        if (v > best || v !== v) {
          best = v;
          bestK = k;
        }
      }
      vals[o + l] = best;
      // A window of all -inf reports its first real element, as PyTorch.
      idx[o + l] = bestK >= 0 ? tap[bestK * L + l] : first[l];
    }
  }
  const [N, C] = x.shape;
  const index = new Tensor(idx, [NC, L]);
  const values = fromOp(op, vals, [N, C, oh, ow], [x], (g) => [
    reshape(scatterAdd(new Tensor(allocF32(NC * H * W), [NC, H * W]), 1, index, reshape(g, [NC, L])), x.shape),
  ]);
  return { values, indices: reshape(index, [N, C, oh, ow]) };
}

/**
 * Max pooling (torch.nn.functional.max_pool2d); stride defaults to the kernel size.
 * @example
 * const y = maxPool2d(x, 2); // (B, C, 28, 28) -> (B, C, 14, 14)
 */
export function maxPool2d(x: Tensor, kernelSize: number | [number, number], opts: Pool2dOptions = {}): Tensor {
  return maxPool2dWithIndices(x, kernelSize, opts).values;
}

/** 1 / divisor of each output window, as PyTorch's avg_pool2d computes it. */
function avgScale(P: PoolGeom, countIncludePad: boolean, divisorOverride: number | undefined): Float32Array {
  const inv = new Float32Array(P.oh * P.ow);
  for (let y = 0; y < P.oh; y++) {
    for (let xq = 0; xq < P.ow; xq++) {
      let h0 = y * P.sh - P.ph;
      let w0 = xq * P.sw - P.pw;
      let h1 = Math.min(h0 + P.kh, P.H + P.ph);
      let w1 = Math.min(w0 + P.kw, P.W + P.pw);
      const poolSize = (h1 - h0) * (w1 - w0);
      h0 = Math.max(h0, 0);
      w0 = Math.max(w0, 0);
      h1 = Math.min(h1, P.H);
      w1 = Math.min(w1, P.W);
      const div = divisorOverride ?? (countIncludePad ? poolSize : (h1 - h0) * (w1 - w0));
      inv[y * P.ow + xq] = 1 / div;
    }
  }
  return inv;
}

/** out[c, l] = scale[l] * sum over window l of x[c]. */
function avgPoolFwd(x: Tensor, P: PoolGeom, scale: Float32Array, shape: readonly number[], xShape: readonly number[]): Tensor {
  const op = 'avgPool2d';
  const L = P.oh * P.ow;
  const kk = P.kh * P.kw;
  const bk = backend();
  const cols = scratch(0, P.NC * kk * L);
  bk.im2col(x.f32(op), 0, P.NC, P.H, P.W, P.kh, P.kw, P.sh, P.sw, P.ph, P.pw, P.dh, P.dw, P.oh, P.ow, cols);
  const sums = scratch(1, P.NC * L);
  bk.reduce('sum', cols, P.NC, kk, L, sums);
  const out = allocF32(P.NC * L);
  bk.binary('mul', sums, 0, [L, 1], scale, 0, [0, 1], out, [P.NC, L]);
  return fromOp(op, out, shape, [x], (g) => [avgPoolAdjoint(g, P, scale, xShape, shape)]);
}

/** The adjoint of avgPoolFwd: spread scale[l] * g[c, l] over window l. */
function avgPoolAdjoint(g: Tensor, P: PoolGeom, scale: Float32Array, xShape: readonly number[], shape: readonly number[]): Tensor {
  const op = 'avgPool2dBackward';
  const L = P.oh * P.ow;
  const kk = P.kh * P.kw;
  const bk = backend();
  // cols[c, k, l] = scale[l] * g[c, l]: the scaling and the broadcast over taps in one call.
  const cols = scratch(0, P.NC * kk * L);
  bk.binary('mul', g.f32(op), 0, [L, 0, 1], scale, 0, [0, 0, 1], cols, [P.NC, kk, L]);
  const out = allocF32(P.NC * P.H * P.W);
  bk.col2im(cols, P.NC, P.H, P.W, P.kh, P.kw, P.sh, P.sw, P.ph, P.pw, P.dh, P.dw, P.oh, P.ow, out, 0);
  return fromOp(op, out, xShape, [g], (gg) => [avgPoolFwd(gg, P, scale, shape, xShape)]);
}

/**
 * Average pooling (torch.nn.functional.avg_pool2d). countIncludePad defaults to true
 * as in PyTorch: zero padding counts in the divisor.
 * @example
 * const y = avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false });
 */
export function avgPool2d(x: Tensor, kernelSize: number | [number, number], opts: AvgPool2dOptions = {}): Tensor {
  const op = 'avgPool2d';
  const d = pair(op, 'dilation', opts.dilation, 1, 1);
  if (d[0] !== 1 || d[1] !== 1) throw new RangeError(`${op}: dilation is not supported (PyTorch's avg_pool2d has none), got ${fmtPair(d)}`);
  const dv = opts.divisorOverride;
  if (dv !== undefined && (!Number.isFinite(dv) || dv === 0)) throw new RangeError(`${op}: divisorOverride must be a non-zero number, got ${dv}`);
  const P = poolGeom(op, x, kernelSize, opts);
  const scale = avgScale(P, opts.countIncludePad ?? true, dv);
  return avgPoolFwd(x, P, scale, [x.shape[0], x.shape[1], P.oh, P.ow], x.shape);
}

// ---- Upsampling ----------------------------------------------------------------------

/** PyTorch's compute_scales_value<float>: 1/scale when a scale factor was given, else in/out. */
function scaleOf(inSize: number, outSize: number, factor: number | undefined): number {
  return factor !== undefined && factor > 0 ? Math.fround(1 / factor) : Math.fround(inSize / outSize);
}

/** Source index of each output position for mode 'nearest' (PyTorch's nearest_idx). */
function nearestIdx(inSize: number, outSize: number, factor: number | undefined): Int32Array {
  const idx = new Int32Array(outSize);
  const s = scaleOf(inSize, outSize, factor);
  for (let o = 0; o < outSize; o++) {
    if (outSize === inSize) idx[o] = o;
    else if (outSize === 2 * inSize) idx[o] = o >> 1;
    else idx[o] = Math.min(Math.floor(Math.fround(o * s)), inSize - 1);
  }
  return idx;
}

/**
 * The source taps of one axis: index i0, and for linear modes a second index i1 with
 * weights l0, l1 (l0 = null for nearest, which copies exactly, so Inf stays Inf).
 */
interface AxisTaps {
  i0: Int32Array;
  i1: Int32Array;
  l0: Float32Array | null;
  l1: Float32Array | null;
}

/** area_pixel_compute_source_index in float arithmetic, as PyTorch's float path. */
function linearTaps(inSize: number, outSize: number, factor: number | undefined, alignCorners: boolean): AxisTaps {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const l0 = allocF32(outSize);
  const l1 = allocF32(outSize);
  const s = alignCorners ? (outSize > 1 ? Math.fround((inSize - 1) / (outSize - 1)) : 0) : scaleOf(inSize, outSize, factor);
  for (let o = 0; o < outSize; o++) {
    let src = alignCorners ? Math.fround(s * o) : Math.fround(Math.fround(s * (o + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const a = Math.min(Math.floor(src), inSize - 1);
    i0[o] = a;
    i1[o] = a < inSize - 1 ? a + 1 : a;
    l1[o] = Math.fround(src - a);
    l0[o] = 1 - l1[o];
  }
  return { i0, i1, l0, l1 };
}

/** A separable resampling [NC, H, W] -> [NC, oh, ow]: along W with tw, then along H with th. */
interface Resample {
  NC: number; H: number; W: number; oh: number; ow: number;
  th: AxisTaps; tw: AxisTaps;
  xShape: readonly number[]; yShape: readonly number[];
}

/** [sh, sw] when R is nearest-neighbour by whole factors (input pixel y / sh, x / sw), else null. */
function wholeFactors(R: Resample): [number, number] | null {
  const { H, W, oh, ow, th, tw } = R;
  if (th.l0 || tw.l0 || oh % H !== 0 || ow % W !== 0) return null;
  const sh = oh / H, sw = ow / W;
  for (let y = 0; y < oh; y++) if (th.i0[y] !== Math.floor(y / sh)) return null;
  for (let q = 0; q < ow; q++) if (tw.i0[q] !== Math.floor(q / sw)) return null;
  return [sh, sw];
}

function resampleRaw(xv: Float32Array, R: Resample): Float32Array {
  const { NC, H, W, oh, ow, th, tw } = R;
  const f = wholeFactors(R);
  if (f) {
    // Each pixel repeated sh x sw times: one strided copy of x seen as [NC, H, sh, W, sw].
    const out = emptyF32(NC * oh * ow);
    backend().copy(xv, 0, [H * W, W, 0, 1, 0], out, [NC, H, f[0], W, f[1]]);
    return out;
  }
  // 1. Along W into tmp [NC*H, ow]. (Same order as PyTorch: h-weights times w-blends.)
  const tmp = scratch(0, NC * H * ow);
  const { i0: a0, i1: a1, l0: u, l1: v } = tw;
  for (let r = 0; r < NC * H; r++) {
    const xb = r * W;
    const tb = r * ow;
    if (u && v) for (let q = 0; q < ow; q++) tmp[tb + q] = u[q] * xv[xb + a0[q]] + v[q] * xv[xb + a1[q]];
    else for (let q = 0; q < ow; q++) tmp[tb + q] = xv[xb + a0[q]];
  }
  // 2. Along H: blends of whole rows of tmp.
  const out = allocF32(NC * oh * ow);
  for (let c = 0; c < NC; c++) {
    for (let y = 0; y < oh; y++) {
      const a = (c * H + th.i0[y]) * ow;
      const o = (c * oh + y) * ow;
      if (th.l0 && th.l1) {
        const b = (c * H + th.i1[y]) * ow;
        const wa = th.l0[y];
        const wb = th.l1[y];
        for (let q = 0; q < ow; q++) out[o + q] = wa * tmp[a + q] + wb * tmp[b + q];
      } else {
        for (let q = 0; q < ow; q++) out[o + q] = tmp[a + q];
      }
    }
  }
  return out;
}

/** The adjoint of resampleRaw: each output's gradient flows back to its taps. */
function resampleAdjointRaw(gv: Float32Array, R: Resample): Float32Array {
  const { NC, H, W, oh, ow, th, tw } = R;
  const f = wholeFactors(R);
  if (f) {
    // Sums over each sh x sw block of g [NC, H, sh, W, sw]: the sw axis, then the sh axis.
    const bk = backend();
    const rows = emptyF32(NC * oh * W);
    bk.reduce('sum', gv, NC * oh * W, f[1], 1, rows);
    const out = emptyF32(NC * H * W);
    bk.reduce('sum', rows, NC * H, f[0], W, out);
    return out;
  }
  const tmp = scratch(0, NC * H * ow);
  tmp.fill(0);
  for (let c = 0; c < NC; c++) {
    for (let y = 0; y < oh; y++) {
      const a = (c * H + th.i0[y]) * ow;
      const o = (c * oh + y) * ow;
      if (th.l0 && th.l1) {
        const b = (c * H + th.i1[y]) * ow;
        const wa = th.l0[y];
        const wb = th.l1[y];
        for (let q = 0; q < ow; q++) {
          const gq = gv[o + q];
          tmp[a + q] += wa * gq;
          tmp[b + q] += wb * gq;
        }
      } else {
        for (let q = 0; q < ow; q++) tmp[a + q] += gv[o + q];
      }
    }
  }
  const out = allocF32(NC * H * W);
  const { i0: a0, i1: a1, l0: u, l1: v } = tw;
  for (let r = 0; r < NC * H; r++) {
    const xb = r * W;
    const tb = r * ow;
    if (u && v) {
      for (let q = 0; q < ow; q++) {
        const t = tmp[tb + q];
        out[xb + a0[q]] += u[q] * t;
        out[xb + a1[q]] += v[q] * t;
      }
    } else {
      for (let q = 0; q < ow; q++) out[xb + a0[q]] += tmp[tb + q];
    }
  }
  return out;
}

// Two linear primitives, each the other's gradient (so double backward works).
function resample(x: Tensor, R: Resample): Tensor {
  const op = R.tw.l0 ? 'upsampleBilinear' : 'upsampleNearest';
  return fromOp(op, resampleRaw(x.f32(op), R), R.yShape, [x], (g) => [resampleAdjoint(g, R)]);
}

function resampleAdjoint(g: Tensor, R: Resample): Tensor {
  const op = R.tw.l0 ? 'upsampleBilinearBackward' : 'upsampleNearestBackward';
  return fromOp(op, resampleAdjointRaw(g.f32(op), R), R.xShape, [g], (gg) => [resample(gg, R)]);
}

/**
 * Resize [N, C, H, W] to a size or by a scale factor (torch.nn.functional.interpolate
 * with mode 'nearest' or 'bilinear'). Separable: along W, then along H; the gradient
 * is the adjoint map, whose own gradient is the forward again.
 * @example
 * const y = upsample(x, { scaleFactor: 2 });                                     // nearest
 * const z = upsample(x, { size: [64, 64], mode: 'bilinear', alignCorners: false });
 */
export function upsample(x: Tensor, opts: UpsampleOptions): Tensor {
  const op = 'upsample';
  if (x.rank !== 4) throw new ShapeError(`${op}: input must be 4-D [N, C, H, W], got ${fmtShape(x.shape)}`);
  const mode = opts.mode ?? 'nearest';
  if (mode !== 'nearest' && mode !== 'bilinear') throw new RangeError(`${op}: mode must be 'nearest' or 'bilinear', got ${JSON.stringify(mode)}`);
  if (mode === 'nearest' && opts.alignCorners !== undefined) {
    throw new RangeError(`${op}: alignCorners can only be set with mode 'bilinear'`);
  }
  if ((opts.size === undefined) === (opts.scaleFactor === undefined)) {
    throw new RangeError(`${op}: give exactly one of size and scaleFactor`);
  }
  const [N, C, H, W] = x.shape;
  let oh: number;
  let ow: number;
  let fh: number | undefined;
  let fw: number | undefined;
  if (opts.size !== undefined) {
    [oh, ow] = pair(op, 'size', opts.size, 1, 1);
  } else {
    const f = opts.scaleFactor!;
    [fh, fw] = typeof f === 'number' ? [f, f] : [f[0], f[1]];
    if (!(fh > 0 && fw > 0) || !Number.isFinite(fh) || !Number.isFinite(fw)) {
      throw new RangeError(`${op}: scaleFactor must be positive, got ${JSON.stringify(f)}`);
    }
    oh = Math.floor(H * fh);
    ow = Math.floor(W * fw);
  }
  if (oh < 1 || ow < 1) throw new ShapeError(`${op}: output size ${oh}x${ow} is too small (input ${fmtShape(x.shape)})`);

  let th: AxisTaps;
  let tw: AxisTaps;
  if (mode === 'nearest') {
    const ih = nearestIdx(H, oh, fh);
    const iw = nearestIdx(W, ow, fw);
    th = { i0: ih, i1: ih, l0: null, l1: null };
    tw = { i0: iw, i1: iw, l0: null, l1: null };
  } else {
    const ac = opts.alignCorners ?? false;
    th = linearTaps(H, oh, fh, ac);
    tw = linearTaps(W, ow, fw, ac);
  }
  return resample(x, { NC: N * C, H, W, oh, ow, th, tw, xShape: x.shape, yShape: [N, C, oh, ow] });
}

