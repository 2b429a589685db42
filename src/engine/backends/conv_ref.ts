/**
 * Convolution kernels written with other backend kernels: im2col + GEMM (Chellapilla et
 * al. 2006; Caffe's im2col), with images batched into one GEMM of about GEMM_COLS
 * columns. The js backend's conv2d* kernels are these over the js kernels (the
 * definition), and the wasm backend runs them over its own GEMM and im2col. The native
 * backend has fused implicit-GEMM kernels instead (native/conv.cpp).
 */
import type { Backend, ConvGeometry } from './backend.js';

/** Buffers above this many floats (64 MiB) are not kept between calls. */
const SCRATCH_KEEP = 1 << 24;

/**
 * A set of reusable scratch buffers, one per slot (for im2col columns and transposes;
 * they never escape a call). Each user makes its own set, so nested calls cannot share.
 */
export function scratchBuffers(slots: number): (slot: number, n: number) => Float32Array {
  const bufs = Array.from({ length: slots }, () => new Float32Array(0));
  return (slot, n) => {
    const cur = bufs[slot];
    if (cur.length >= n) return cur.subarray(0, n);
    const buf = new Float32Array(n);
    if (n <= SCRATCH_KEEP) bufs[slot] = buf;
    return buf;
  };
}

const scratch = scratchBuffers(3);

function isDirect(G: ConvGeometry): boolean {
  // A 1x1, stride-1, unpadded convolution needs no im2col: x_n already is its columns.
  return G.kh === 1 && G.kw === 1 && G.sh === 1 && G.sw === 1 && G.ph === 0 && G.pw === 0 && G.oh === G.H && G.ow === G.W;
}

/**
 * Images per GEMM. Small feature maps give thin GEMMs (a 4x4 map: 16 columns), which
 * run at a fraction of peak (native, 2 cores: 512x16x4096 at 74 GFLOPS against 185
 * for 512x1024x4096), so images are batched into one GEMM of about GEMM_COLS columns,
 * at the price of two block transposes; CHUNK_FLOATS bounds the columns buffer.
 */
const GEMM_COLS = 2048;
const CHUNK_FLOATS = 1 << 23;

function chunkOf(G: ConvGeometry): number {
  const L = G.oh * G.ow;
  const per = Math.max(G.Cin * G.kh * G.kw * L, 1);
  return Math.max(1, Math.min(G.N, Math.ceil(GEMM_COLS / Math.max(L, 1)), Math.floor(CHUNK_FLOATS / per)));
}

/** im2col of images n0..n0+m-1 into [m, Cin*kh*kw, L] (x itself for a direct conv). */
function im2colChunk(bk: Backend, xv: Float32Array, G: ConvGeometry, n0: number, m: number, slot: number): Float32Array {
  const CHW = G.Cin * G.H * G.W;
  if (isDirect(G)) return xv.subarray(n0 * CHW, (n0 + m) * CHW);
  const per = G.Cin * G.kh * G.kw * G.oh * G.ow;
  const cols = scratch(slot, m * per);
  for (let i = 0; i < m; i++) {
    bk.im2col(xv, (n0 + i) * CHW, G.Cin, G.H, G.W, G.kh, G.kw, G.sh, G.sw, G.ph, G.pw, G.dh, G.dw, G.oh, G.ow,
      cols.subarray(i * per, (i + 1) * per));
  }
  return cols;
}

/** out [B, A, L] = v [A, B, L]: the axes 0 and 1 swapped, by the backend's strided copy. */
function swap01(bk: Backend, v: Float32Array, A: number, B: number, L: number, out: Float32Array): Float32Array {
  bk.copy(v, 0, [L, B * L, 1], out, [B, A, L]);
  return out;
}

/** [m, R, L] -> [R, m, L] (the batch joins the GEMM's column axis); a no-op for m = 1. */
function batchToCols(bk: Backend, v: Float32Array, m: number, R: number, L: number, slot: number): Float32Array {
  return m === 1 ? v : swap01(bk, v, m, R, L, scratch(slot, m * R * L));
}

/** out [N, Cout, oh, ow] = conv(x, w) + bias, with bk's im2col, GEMM and copy. */
export function convForwardVia(bk: Backend, xv: Float32Array, wv: Float32Array, bv: Float32Array | null, G: ConvGeometry, out: Float32Array): void {
  const { N, Cout, groups } = G;
  const L = G.oh * G.ow;
  const Og = Cout / groups;
  const K = (G.Cin / groups) * G.kh * G.kw;
  if (N * Cout * L === 0) return;
  const nb = chunkOf(G);
  for (let n0 = 0; n0 < N; n0 += nb) {
    const m = Math.min(nb, N - n0);
    const mL = m * L;
    // [Og, K] x [K, m*L] -> [Og, m*L] per group, then back to [m, Cout, L].
    const cols = batchToCols(bk, im2colChunk(bk, xv, G, n0, m, 0), m, groups * K, L, 1);
    const dst = out.subarray(n0 * Cout * L, (n0 + m) * Cout * L);
    const outT = m === 1 ? dst : scratch(2, Cout * mL);
    if (bv) for (let c = 0; c < Cout; c++) outT.fill(bv[c], c * mL, (c + 1) * mL);
    for (let g = 0; g < groups; g++) {
      bk.gemm(false, false, Og, mL, K, wv, g * Og * K, K, cols, g * K * mL, mL, bv ? 1 : 0, outT, g * Og * mL, mL);
    }
    if (m > 1) swap01(bk, outT, Cout, m, L, dst);
  }
}

/** out [N, Cin, H, W] += conv^T(y, w) (= with `overwrite`): the adjoint of convForwardVia in x. */
export function convBackwardDataVia(bk: Backend, yv: Float32Array, wv: Float32Array, G: ConvGeometry, out: Float32Array, overwrite = false): void {
  if (overwrite) out.fill(0, 0, G.N * G.Cin * G.H * G.W);
  const { N, Cin, Cout, groups } = G;
  const L = G.oh * G.ow;
  const HW = G.H * G.W;
  const Cg = Cin / groups;
  const Og = Cout / groups;
  const K = Cg * G.kh * G.kw;
  const CK = Cin * G.kh * G.kw;
  if (N * Cin * HW === 0 || L === 0 || Og === 0) return;
  const direct = isDirect(G);
  const nb = chunkOf(G);
  for (let n0 = 0; n0 < N; n0 += nb) {
    const m = Math.min(nb, N - n0);
    const mL = m * L;
    const yT = batchToCols(bk, yv.subarray(n0 * Cout * L, (n0 + m) * Cout * L), m, Cout, L, 0);
    if (direct && m === 1) {
      // w^T y is already the image: accumulate it onto out.
      for (let g = 0; g < groups; g++) {
        bk.gemm(true, false, K, L, Og, wv, g * Og * K, K, yT, g * Og * L, L, 1, out, (n0 * Cin + g * Cg) * HW, L);
      }
      continue;
    }
    const colsT = scratch(1, CK * mL);
    for (let g = 0; g < groups; g++) {
      bk.gemm(true, false, K, mL, Og, wv, g * Og * K, K, yT, g * Og * mL, mL, 0, colsT, g * K * mL, mL);
    }
    const cols = m === 1 ? colsT : swap01(bk, colsT, CK, m, L, scratch(2, CK * mL));
    const per = CK * L;
    for (let i = 0; i < m; i++) {
      bk.col2im(cols.subarray(i * per, (i + 1) * per), Cin, G.H, G.W, G.kh, G.kw, G.sh, G.sw, G.ph, G.pw, G.dh, G.dw, G.oh, G.ow,
        out, (n0 + i) * Cin * HW);
    }
  }
}

/** out [Cout, Cin/groups, kh, kw] = sum_n y_n . im2col(x_n)^T: the gradient of convForwardVia in w. */
export function convBackwardWeightVia(bk: Backend, xv: Float32Array, yv: Float32Array, G: ConvGeometry, out: Float32Array): void {
  const { N, Cout, groups } = G;
  const L = G.oh * G.ow;
  const Og = Cout / groups;
  const K = (G.Cin / groups) * G.kh * G.kw;
  if (out.length === 0) return;
  if (N === 0 || L === 0) {
    out.fill(0, 0, Cout * K);
    return;
  }
  const nb = chunkOf(G);
  for (let n0 = 0; n0 < N; n0 += nb) {
    const m = Math.min(nb, N - n0);
    const mL = m * L;
    const yT = batchToCols(bk, yv.subarray(n0 * Cout * L, (n0 + m) * Cout * L), m, Cout, L, 0);
    const cols = batchToCols(bk, im2colChunk(bk, xv, G, n0, m, 1), m, groups * K, L, 2);
    for (let g = 0; g < groups; g++) {
      bk.gemm(false, true, Og, K, mL, yT, g * Og * mL, mL, cols, g * K * mL, mL, n0 > 0 ? 1 : 0, out, g * Og * K, K);
    }
  }
}
