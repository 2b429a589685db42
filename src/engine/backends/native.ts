/**
 * The native backend: the C++ Node-API addon built from native/ by
 * scripts/build_native.mjs (packed AVX-512/AVX2 GEMM, a persistent thread pool,
 * vectorized elementwise/reduction/softmax/im2col/Adam loops, the implicit-GEMM
 * convolutions of native/conv.cpp, and the fused LSTM/GRU cell, attention and
 * row-normalisation kernels of native/fused.cpp). Arrays cross the
 * boundary zero-copy. A native call costs a fraction of a microsecond, so tiny
 * inputs stay in the js kernels (thresholds measured with bench/engine.ts); kernels
 * the addon lacks (argReduce, cumsum, gather, scatterAdd, indexSelect, indexAdd) come
 * from js.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ActivationGrad, Backend, BinaryOp, ConvGeometry, ReduceOp, TypedArray, UnaryOp } from './backend.js';
import { jsBackend } from './js.js';

/** The functions the addon exports (native/addon.cpp). */
export interface NativeAddon {
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    A: Float32Array, aOff: number, lda: number, B: Float32Array, bOff: number, ldb: number,
    beta: number, C: Float32Array, cOff: number, ldc: number,
    bias?: Float32Array | null, biasOff?: number, relu?: boolean,
  ): void;
  gemmBatched(
    transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number,
    A: Float32Array, aOff: number, aStride: number, lda: number, B: Float32Array, bOff: number, bStride: number, ldb: number,
    beta: number, C: Float32Array, cOff: number, cStride: number, ldc: number,
  ): void;
  unary(op: number, x: Float32Array, xOff: number, out: Float32Array, n: number, p0: number, p1: number): boolean;
  binary(op: number, a: Float32Array, aOff: number, b: Float32Array, bOff: number, out: Float32Array, meta: Int32Array): boolean;
  activationGrad(kind: number, x: Float32Array, g: Float32Array, out: Float32Array, n: number, slope: number): boolean;
  /** Strided copy of 4-byte elements; meta is [rank, shape..., strides...]. */
  copy(x: TypedArray, xOff: number, out: TypedArray, meta: Int32Array): boolean;
  addStrided(src: Float32Array, dst: Float32Array, dstOff: number, meta: Int32Array): boolean;
  reduce(op: number, x: Float32Array, outer: number, len: number, inner: number, out: Float32Array): void;
  softmax(x: Float32Array, outer: number, len: number, inner: number, log: boolean, out: Float32Array): void;
  im2col(
    x: Float32Array, xOff: number, C: number, H: number, W: number, kh: number, kw: number, sh: number, sw: number,
    ph: number, pw: number, dh: number, dw: number, oh: number, ow: number, cols: Float32Array,
  ): void;
  col2im(
    cols: Float32Array, C: number, H: number, W: number, kh: number, kw: number, sh: number, sw: number,
    ph: number, pw: number, dh: number, dw: number, oh: number, ow: number, x: Float32Array, xOff: number,
  ): void;
  /** Implicit-GEMM convolutions (native/conv.cpp); meta is convMeta's [N, Cin, H, W, Cout, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups]. */
  conv2dForward(x: Float32Array, w: Float32Array, bias: Float32Array | null, meta: Int32Array, y: Float32Array): void;
  conv2dBackwardData(y: Float32Array, w: Float32Array, meta: Int32Array, x: Float32Array, overwrite: boolean): void;
  conv2dBackwardWeight(x: Float32Array, y: Float32Array, meta: Int32Array, dw: Float32Array): void;
  adam(
    param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, n: number, lr: number,
    beta1: number, beta2: number, eps: number, weightDecay: number, decoupled: boolean, step: number,
  ): void;
  lstmCell(gates: Float32Array, c: Float32Array, B: number, H: number, h2: Float32Array, c2: Float32Array, act: Float32Array): void;
  lstmCellBackward(
    act: Float32Array, c: Float32Array, dh: Float32Array, dc2: Float32Array, B: number, H: number, dgates: Float32Array, dc: Float32Array,
  ): void;
  gruCell(gi: Float32Array, gh: Float32Array, h: Float32Array, B: number, H: number, h2: Float32Array, act: Float32Array): void;
  gruCellBackward(
    act: Float32Array, h: Float32Array, dh2: Float32Array, B: number, H: number, dgi: Float32Array, dgh: Float32Array, dh: Float32Array,
  ): void;
  attention(
    q: Float32Array, k: Float32Array, v: Float32Array, mask: Float32Array | null, maskStride: number, BH: number, L: number,
    S: number, D: number, Dv: number, scale: number, causalOffset: number, out: Float32Array, p: Float32Array,
    layout: Int32Array | null,
  ): void;
  attentionBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, p: Float32Array, dout: Float32Array | null, dp: Float32Array | null,
    BH: number, L: number, S: number, D: number, Dv: number, scale: number,
    dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null, scratch: Float32Array, layout: Int32Array | null,
  ): void;
  normRows(x: Float32Array, R: number, N: number, eps: number, y: Float32Array, rstd: Float32Array): void;
  normRowsBackward(y: Float32Array, rstd: Float32Array, g: Float32Array, R: number, N: number, dx: Float32Array): void;
  channelAffine: Backend['channelAffine'];
  channelAffineBackward: Backend['channelAffineBackward'];
  batchNormStats: Backend['batchNormStats'];
  groupNormRows: Backend['groupNormRows'];
  groupNormRowsBackward: Backend['groupNormRowsBackward'];
  batchNormBackward: Backend['batchNormBackward'];
  layerNormRows: Backend['layerNormRows'];
  layerNormRowsBackward: Backend['layerNormRowsBackward'];
  ntmAddress: Backend['ntmAddress'];
  ntmAddressBackward(
    mem: Float32Array, key: Float32Array, beta: Float32Array, g: Float32Array, wPrev: Float32Array, shift: Float32Array,
    gamma: Float32Array, act: Float32Array, w: Float32Array, dw: Float32Array, B: number, N: number, M: number, S: number,
    dmem: Float32Array | null, dkey: Float32Array, dbeta: Float32Array, dg: Float32Array, dwPrev: Float32Array,
    dshift: Float32Array, dgamma: Float32Array, scratch: Float32Array,
  ): void;
  memoryRead: Backend['memoryRead'];
  memoryReadBackward: Backend['memoryReadBackward'];
  memoryWrite: Backend['memoryWrite'];
  memoryWriteBackward: Backend['memoryWriteBackward'];
  setThreads(n: number): void;
  threads(): number;
  /** The GEMM microkernel in use: 'avx512', 'avx2' or 'scalar'. */
  kernel(): string;
  /** Force a GEMM microkernel (tests cover each); false if the CPU lacks it. 'best' restores the default. */
  setKernel(name: 'avx512' | 'avx2' | 'scalar' | 'best'): boolean;
  /**
   * glibc's malloc: blocks under mmapBytes from its heap, free memory at the heap's top
   * kept up to trimBytes; false where the C library is not glibc or refuses the values.
   */
  keepHeap(mmapBytes: number, trimBytes: number): boolean;
  noop(): void;
}

/** Op codes: the position in the UnaryOp / BinaryOp unions (native/kernels.cpp). */
export const UNARY_CODES: Record<UnaryOp, number> = {
  neg: 0, abs: 1, exp: 2, log: 3, log1p: 4, sqrt: 5, rsqrt: 6, sin: 7, cos: 8, tanh: 9, sigmoid: 10, relu: 11,
  leakyRelu: 12, elu: 13, gelu: 14, silu: 15, softplus: 16, clamp: 17, erf: 18, sign: 19, square: 20,
  reciprocal: 21, step: 22,
};
export const BINARY_CODES: Record<BinaryOp, number> = {
  add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6, eq: 7, ne: 8, lt: 9, le: 10, gt: 11, ge: 12,
};
export const ACTIVATION_GRAD_CODES: Record<ActivationGrad, number> = { relu: 0, leakyRelu: 1, gelu: 2, silu: 3 };
export const REDUCE_CODES: Record<ReduceOp, number> = { sum: 0, max: 1, min: 2 };

/**
 * Below these sizes the js loop beats the cost of a native call (~0.2 us). Measured
 * on the project's 2-core Zen 4 with `npm run bench:engine -- --crossover`: GEMM 4^3
 * js 0.18 / native 0.29 us, 8^3 js 1.1 / native 0.36 us; x + y at 64 elements js 206 /
 * native 211 ns, at 128 js 363 / native 217 ns (exp crosses over near 32).
 */
export const NATIVE_THRESHOLDS = {
  /** M*N*K of a GEMM. */
  gemm: 256,
  /** Elements of an elementwise op, reduction, softmax, im2col or Adam update. */
  elementwise: 64,
  /** B*H of a fused LSTM/GRU cell (several transcendentals per element). */
  cell: 16,
  /** BH*L*S*(D+Dv) of an attention call. */
  attention: 256,
};

/**
 * How the addon sets glibc's malloc when it loads (GENLAB_MALLOC=system leaves the
 * defaults). Node allocates each typed array with calloc, and glibc maps blocks over
 * 128 KB-32 MB (its threshold adapts) freshly with mmap and unmaps them when freed, so
 * each training step faults in every large activation and gradient again, page by
 * page, inside the kernels that first write them. On this project's 2-core VMs that
 * cost 10 us a page with two threads faulting at once: a 1x1 convolution's data
 * gradient into a fresh 9.6 MB array took 26.6 ms instead of 1.5 ms. Blocks up to
 * 32 MB (glibc's maximum threshold) now come from the heap, and up to 256 MB of free
 * memory at its top is kept for the next step.
 */
const HEAP = { mmapBytes: 32 << 20, trimBytes: 256 << 20 };

let addon: NativeAddon | null = null;
let addonError = '';

function findAddon(): string | null {
  const env = process.env.GENLAB_NATIVE_PATH;
  if (env) return env;
  // dist/src/engine/backends/ or src/engine/backends/: walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'native', 'build', 'genlab.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

/** The raw addon (for tests and benchmarks); throws with the reason if it is missing. */
export function nativeAddon(): NativeAddon {
  if (addon) return addon;
  if (addonError) throw new Error(addonError);
  const path = findAddon();
  if (!path) {
    addonError = 'native addon not built (run `npm run build:native`; native/build/genlab.node is missing)';
    throw new Error(addonError);
  }
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
    if (process.env.GENLAB_MALLOC !== 'system') addon.keepHeap(HEAP.mmapBytes, HEAP.trimBytes);
  } catch (e) {
    addonError = `native addon ${path} failed to load: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`;
    throw new Error(addonError);
  }
  return addon;
}

/** Number of threads native kernels use (GENLAB_THREADS at start, default: all cores). */
export function setNativeThreads(n: number): void {
  nativeAddon().setThreads(n);
}

export function nativeThreads(): number {
  return nativeAddon().threads();
}

/** A convolution geometry as the addon's Int32Array meta (written into `meta`). */
export function convMeta(g: ConvGeometry, meta = new Int32Array(16)): Int32Array {
  meta[0] = g.N; meta[1] = g.Cin; meta[2] = g.H; meta[3] = g.W; meta[4] = g.Cout; meta[5] = g.oh; meta[6] = g.ow;
  meta[7] = g.kh; meta[8] = g.kw; meta[9] = g.sh; meta[10] = g.sw; meta[11] = g.ph; meta[12] = g.pw;
  meta[13] = g.dh; meta[14] = g.dw; meta[15] = g.groups;
  return meta;
}

/** Build the native backend: js kernels with the native ones laid over them. */
export function loadNative(): Backend {
  const a = nativeAddon();
  const T = NATIVE_THRESHOLDS;
  const meta = new Int32Array(1 + 3 * 16);
  const cmeta = new Int32Array(16);
  /** meta = [rank, shape..., strides...] when the op is worth a native call (size, rank). */
  const stridedMeta = (shape: readonly number[], strides: readonly number[]): boolean => {
    const rank = shape.length;
    let n = 1;
    for (let d = 0; d < rank; d++) n *= shape[d];
    if (n < T.elementwise || rank > 16) return false;
    meta[0] = rank;
    for (let d = 0; d < rank; d++) {
      meta[1 + d] = shape[d];
      meta[1 + rank + d] = strides[d];
    }
    return true;
  };
  const overrides: Partial<Backend> = {
    unary(op, x, xOff, out, n, p0, p1) {
      if (n < T.elementwise || !a.unary(UNARY_CODES[op], x, xOff, out, n, p0, p1)) jsBackend.unary(op, x, xOff, out, n, p0, p1);
    },
    activationGrad(kind, x, g, out, n, slope) {
      if (n < T.elementwise || !a.activationGrad(ACTIVATION_GRAD_CODES[kind], x, g, out, n, slope)) jsBackend.activationGrad(kind, x, g, out, n, slope);
    },
    binary(op, x, xOff, xStrides, y, yOff, yStrides, out, shape) {
      const rank = shape.length;
      let n = 1;
      for (let d = 0; d < rank; d++) n *= shape[d];
      if (n >= T.elementwise && rank <= 16) {
        meta[0] = rank;
        for (let d = 0; d < rank; d++) {
          meta[1 + d] = shape[d];
          meta[1 + rank + d] = xStrides[d];
          meta[1 + 2 * rank + d] = yStrides[d];
        }
        if (a.binary(BINARY_CODES[op], x, xOff, y, yOff, out, meta)) return;
      }
      jsBackend.binary(op, x, xOff, xStrides, y, yOff, yStrides, out, shape);
    },
    addStrided(src, dst, dstOff, dstStrides, shape) {
      if (!(stridedMeta(shape, dstStrides) && a.addStrided(src, dst, dstOff, meta))) jsBackend.addStrided(src, dst, dstOff, dstStrides, shape);
    },
    copy(x, xOff, xStrides, out, shape) {
      if (!(stridedMeta(shape, xStrides) && a.copy(x, xOff, out, meta))) jsBackend.copy(x, xOff, xStrides, out, shape);
    },
    reduce(op, x, outer, len, inner, out) {
      if (outer * len * inner < T.elementwise) jsBackend.reduce(op, x, outer, len, inner, out);
      else a.reduce(REDUCE_CODES[op], x, outer, len, inner, out);
    },
    softmax(x, outer, len, inner, log, out) {
      if (outer * len * inner < T.elementwise) jsBackend.softmax(x, outer, len, inner, log, out);
      else a.softmax(x, outer, len, inner, log, out);
    },
    gemm(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc, epi) {
      if (M * N * K < T.gemm) jsBackend.gemm(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc, epi);
      else if (epi) a.gemm(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc, epi.bias, epi.biasOff, epi.relu);
      else a.gemm(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc);
    },
    gemmBatched(transA, transB, batch, M, N, K, A, aOff, aStride, lda, B, bOff, bStride, ldb, beta, C, cOff, cStride, ldc) {
      if (M * N * K * batch < T.gemm) jsBackend.gemmBatched(transA, transB, batch, M, N, K, A, aOff, aStride, lda, B, bOff, bStride, ldb, beta, C, cOff, cStride, ldc);
      else a.gemmBatched(transA, transB, batch, M, N, K, A, aOff, aStride, lda, B, bOff, bStride, ldb, beta, C, cOff, cStride, ldc);
    },
    im2col(x, xOff, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols) {
      if (C * kh * kw * oh * ow < T.elementwise) jsBackend.im2col(x, xOff, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols);
      else a.im2col(x, xOff, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols);
    },
    col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x, xOff) {
      if (C * kh * kw * oh * ow < T.elementwise) jsBackend.col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x, xOff);
      else a.col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x, xOff);
    },
    // Convolutions always go native: the fused kernels beat im2col + GEMM at every size.
    conv2dForward(x, w, bias, g, y) {
      a.conv2dForward(x, w, bias, convMeta(g, cmeta), y);
    },
    conv2dBackwardData(y, w, g, x, overwrite) {
      a.conv2dBackwardData(y, w, convMeta(g, cmeta), x, overwrite === true);
    },
    conv2dBackwardWeight(x, y, g, dw) {
      a.conv2dBackwardWeight(x, y, convMeta(g, cmeta), dw);
    },
    adam(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled, step) {
      if (n < T.elementwise) jsBackend.adam(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled, step);
      else a.adam(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled, step);
    },
    normRows(x, R, N, eps, y, rstd) {
      if (R * N < T.elementwise || N < 1) jsBackend.normRows(x, R, N, eps, y, rstd);
      else a.normRows(x, R, N, eps, y, rstd);
    },
    normRowsBackward(y, rstd, g, R, N, dx) {
      if (R * N < T.elementwise || N < 1) jsBackend.normRowsBackward(y, rstd, g, R, N, dx);
      else a.normRowsBackward(y, rstd, g, R, N, dx);
    },
    layerNormRows(x, R, N, eps, w, b, y, mean, rstd) {
      if (R * N < T.elementwise) jsBackend.layerNormRows(x, R, N, eps, w, b, y, mean, rstd);
      else a.layerNormRows(x, R, N, eps, w, b, y, mean, rstd);
    },
    layerNormRowsBackward(x, mean, rstd, w, g, R, N, dx, dw, db) {
      if (R * N < T.elementwise) jsBackend.layerNormRowsBackward(x, mean, rstd, w, g, R, N, dx, dw, db);
      else a.layerNormRowsBackward(x, mean, rstd, w, g, R, N, dx, dw, db);
    },
    channelAffine(x, outer, C, inner, w, b, act, y) {
      if (outer * C * inner < T.elementwise) jsBackend.channelAffine(x, outer, C, inner, w, b, act, y);
      else a.channelAffine(x, outer, C, inner, w, b, act, y);
    },
    channelAffineBackward(x, g, outer, C, inner, w, b, act, dx, sums) {
      if (outer * C * inner < T.elementwise) jsBackend.channelAffineBackward(x, g, outer, C, inner, w, b, act, dx, sums);
      else a.channelAffineBackward(x, g, outer, C, inner, w, b, act, dx, sums);
    },
    groupNormRows(x, N, G, Cg, S, eps, w, b, act, y, mean, rstd) {
      if (N * G * Cg * S < T.elementwise) jsBackend.groupNormRows(x, N, G, Cg, S, eps, w, b, act, y, mean, rstd);
      else a.groupNormRows(x, N, G, Cg, S, eps, w, b, act, y, mean, rstd);
    },
    groupNormRowsBackward(x, g, N, G, Cg, S, mean, rstd, w, b, act, dx, sums) {
      if (N * G * Cg * S < T.elementwise) jsBackend.groupNormRowsBackward(x, g, N, G, Cg, S, mean, rstd, w, b, act, dx, sums);
      else a.groupNormRowsBackward(x, g, N, G, Cg, S, mean, rstd, w, b, act, dx, sums);
    },
    batchNormStats(x, outer, C, inner, mean, variance) {
      if (outer * C * inner < T.elementwise) jsBackend.batchNormStats(x, outer, C, inner, mean, variance);
      else a.batchNormStats(x, outer, C, inner, mean, variance);
    },
    batchNormBackward(x, g, outer, C, inner, mean, rstd, w, dx, dw, db) {
      if (outer * C * inner < T.elementwise) jsBackend.batchNormBackward(x, g, outer, C, inner, mean, rstd, w, dx, dw, db);
      else a.batchNormBackward(x, g, outer, C, inner, mean, rstd, w, dx, dw, db);
    },
    lstmCell(gates, c, B, H, h2, c2, act) {
      if (B * H < T.cell) jsBackend.lstmCell(gates, c, B, H, h2, c2, act);
      else a.lstmCell(gates, c, B, H, h2, c2, act);
    },
    lstmCellBackward(act, c, dh, dc2, B, H, dgates, dc) {
      if (B * H < T.cell) jsBackend.lstmCellBackward(act, c, dh, dc2, B, H, dgates, dc);
      else a.lstmCellBackward(act, c, dh, dc2, B, H, dgates, dc);
    },
    gruCell(gi, gh, h, B, H, h2, act) {
      if (B * H < T.cell) jsBackend.gruCell(gi, gh, h, B, H, h2, act);
      else a.gruCell(gi, gh, h, B, H, h2, act);
    },
    gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh) {
      if (B * H < T.cell) jsBackend.gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh);
      else a.gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh);
    },
    attention(q, k, v, mask, maskStride, BH, L, S, D, Dv, scale, causalOffset, out, p, layout) {
      if (BH * L * S * (D + Dv) < T.attention) jsBackend.attention(q, k, v, mask, maskStride, BH, L, S, D, Dv, scale, causalOffset, out, p, layout);
      else a.attention(q, k, v, mask, maskStride, BH, L, S, D, Dv, scale, causalOffset, out, p, layout ?? null);
    },
    attentionBackward(q, k, v, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv, layout) {
      if (BH * L * S * (D + Dv) < T.attention) jsBackend.attentionBackward(q, k, v, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv, layout);
      else a.attentionBackward(q, k, v, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv, scratch(BH * L * S), layout ?? null);
    },
  };
  // The kernel's [BH, L, S] working array (written before it is read): one kept for reuse,
  // not a fresh zeroed one per call (8 MB for gpt's attention).
  let work = new Float32Array(0);
  const scratch = (n: number): Float32Array => (work.length >= n ? work : (work = new Float32Array(n)));
  // The memory kernels always go native: even at tiny sizes their loops beat js.
  if (typeof a.ntmAddressBackward === 'function') {
    overrides.ntmAddressBackward = (mem, key, beta, g, wPrev, shift, gamma, act, w, dw, B, N, M, S, dmem, dkey, dbeta, dg, dwPrev, dshift, dgamma) =>
      a.ntmAddressBackward(mem, key, beta, g, wPrev, shift, gamma, act, w, dw, B, N, M, S, dmem, dkey, dbeta, dg, dwPrev, dshift, dgamma,
        new Float32Array(2 * B * N));
  }
  for (const k of ['ntmAddress', 'memoryRead', 'memoryReadBackward', 'memoryWrite', 'memoryWriteBackward'] as const) {
    if (typeof a[k] === 'function') (overrides as Record<string, unknown>)[k] = a[k].bind(a);
  }
  return { ...jsBackend, name: 'native', ...overrides };
}
