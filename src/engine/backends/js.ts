/**
 * The pure TypeScript backend: the reference definition of every kernel. The native
 * and wasm backends must agree with these loops (see engine tests). Written for
 * clarity first; the GEMM is blocked so that tests and small models stay usable.
 */
import type { Backend, BinaryOp, GemmEpilogue, ReduceOp, TypedArray, UnaryOp } from './backend.js';
import { convBackwardDataVia, convBackwardWeightVia, convForwardVia } from './conv_ref.js';
import { memoryKernels } from './memory_ref.js';

const SQRT1_2 = Math.SQRT1_2;

/**
 * erf(x) to float32 precision: the Maclaurin series near 0, and elsewhere the erfc
 * Chebyshev fit of Numerical Recipes (erfcc, relative error below 1.2e-7).
 */
export function erf(x: number): number {
  const z = Math.abs(x);
  if (z < 0.5) {
    const z2 = x * x;
    // Maclaurin series, accurate to < 1e-9 for |x| < 0.5.
    let term = x;
    let sum = x;
    for (let n = 1; n < 12; n++) {
      term *= -z2 / n;
      sum += term / (2 * n + 1);
    }
    return sum * 1.1283791670955126;
  }
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 +
        t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

/** 1 + erf(x), with the tail 1 + erf(x) = erfc(-x) for x <= -0.5 kept accurate. */
function onePlusErf(x: number): number {
  if (x > -0.5) return 1 + erf(x);
  const z = -x;
  const t = 1 / (1 + 0.5 * z);
  return t * Math.exp(
    -z * z - 1.26551223 +
      t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 +
      t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
  );
}

/** gelu'(v) = Phi(v) + v phi(v). */
function geluGrad(v: number): number {
  return 0.5 * onePlusErf(v * SQRT1_2) + v * Math.exp(-0.5 * v * v) * 0.3989422804014327;
}

/** silu'(v) = s (1 + v (1 - s)), s = sigmoid(v). */
function siluGrad(v: number): number {
  const s = v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v));
  return s * (1 + v * (1 - s));
}

function unaryFn(op: UnaryOp, p0: number, p1: number): (v: number) => number {
  switch (op) {
    case 'neg': return (v) => -v;
    case 'abs': return Math.abs;
    case 'exp': return Math.exp;
    case 'log': return Math.log;
    case 'log1p': return Math.log1p;
    case 'sqrt': return Math.sqrt;
    case 'rsqrt': return (v) => 1 / Math.sqrt(v);
    case 'sin': return Math.sin;
    case 'cos': return Math.cos;
    case 'tanh': return Math.tanh;
    case 'sigmoid': return (v) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));
    case 'relu': return (v) => (v > 0 ? v : v === v ? 0 : v);
    case 'leakyRelu': return (v) => (v > 0 ? v : v * p0);
    case 'elu': return (v) => (v > 0 ? v : p0 * Math.expm1(v));
    case 'gelu': return (v) => 0.5 * v * (1 + erf(v * SQRT1_2));
    case 'silu': return (v) => (v >= 0 ? v / (1 + Math.exp(-v)) : (v * Math.exp(v)) / (1 + Math.exp(v)));
    // PyTorch's softplus (beta 1, threshold 20): linear above the threshold.
    case 'softplus': return (v) => (v > 20 ? v : Math.log1p(Math.exp(v)));
    case 'clamp': return (v) => (v < p0 ? p0 : v > p1 ? p1 : v);
    case 'erf': return erf;
    case 'sign': return (v) => (v > 0 ? 1 : v < 0 ? -1 : v === 0 ? 0 : v);
    case 'square': return (v) => v * v;
    case 'reciprocal': return (v) => 1 / v;
    case 'step': return (v) => (v > 0 ? 1 : v === v ? 0 : v);
  }
}

function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return (a, b) => a * b;
    case 'div': return (a, b) => a / b;
    case 'pow': return Math.pow;
    // NaN propagates, as torch.maximum/minimum.
    case 'maximum': return (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b);
    case 'minimum': return (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b);
    case 'eq': return (a, b) => (a === b ? 1 : 0);
    case 'ne': return (a, b) => (a !== b ? 1 : 0);
    case 'lt': return (a, b) => (a < b ? 1 : 0);
    case 'le': return (a, b) => (a <= b ? 1 : 0);
    case 'gt': return (a, b) => (a > b ? 1 : 0);
    case 'ge': return (a, b) => (a >= b ? 1 : 0);
  }
}

/** Whether strides read `shape` in row-major order (size-1 axes may have any stride). */
function isRowMajor(shape: readonly number[], strides: readonly number[]): boolean {
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d];
    if (n !== 1 && strides[d] !== s) return false;
    s *= n;
  }
  return true;
}

/** Odometer scratch of the strided binary loop (kernels never nest). */
let rowIdx = new Int32Array(16);

/** out[oi + j] = f(a[ai + j as], b[bi + j bs]) for j < n, unit and broadcast strides spelled out. */
function binaryRow(
  op: BinaryOp, f: (x: number, y: number) => number, a: Float32Array, ai: number, as: number, b: Float32Array, bi: number, bs: number,
  out: Float32Array, oi: number, n: number,
): void {
  if (as === 1 && bs === 0) {
    const bv = b[bi];
    switch (op) {
      case 'add': for (let j = 0; j < n; j++) out[oi + j] = a[ai + j] + bv; return;
      case 'sub': for (let j = 0; j < n; j++) out[oi + j] = a[ai + j] - bv; return;
      case 'mul': for (let j = 0; j < n; j++) out[oi + j] = a[ai + j] * bv; return;
      case 'div': for (let j = 0; j < n; j++) out[oi + j] = a[ai + j] / bv; return;
    }
  } else if (as === 1 && bs === 1) {
    switch (op) {
      case 'add': for (let j = 0; j < n; j++) out[oi + j] = a[ai + j] + b[bi + j]; return;
      case 'sub': for (let j = 0; j < n; j++) out[oi + j] = a[ai + j] - b[bi + j]; return;
      case 'mul': for (let j = 0; j < n; j++) out[oi + j] = a[ai + j] * b[bi + j]; return;
      case 'div': for (let j = 0; j < n; j++) out[oi + j] = a[ai + j] / b[bi + j]; return;
    }
  }
  for (let j = 0; j < n; j++) out[oi + j] = f(a[ai + j * as], b[bi + j * bs]);
}

/** Iterate a strided N-d index space; calls body(aIdx, bIdx, outIdx, n, aStep, bStep) per row. */
function forEachRow(
  shape: readonly number[], aStrides: readonly number[], bStrides: readonly number[], aOff: number, bOff: number,
  body: (ai: number, bi: number, oi: number, n: number, as: number, bs: number) => void,
): void {
  const rank = shape.length;
  if (rank === 0) {
    body(aOff, bOff, 0, 1, 0, 0);
    return;
  }
  const n = shape[rank - 1];
  const as = aStrides[rank - 1];
  const bs = bStrides[rank - 1];
  let rows = 1;
  for (let d = 0; d < rank - 1; d++) rows *= shape[d];
  if (rows === 0 || n === 0) return;
  const idx = new Array<number>(rank).fill(0);
  let ai = aOff;
  let bi = bOff;
  for (let r = 0; r < rows; r++) {
    body(ai, bi, r * n, n, as, bs);
    // Advance the odometer over the outer dimensions.
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      ai += aStrides[d];
      bi += bStrides[d];
      if (idx[d] < shape[d]) break;
      ai -= aStrides[d] * shape[d];
      bi -= bStrides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** Mean and 1/sqrt(var + eps) (biased variance, float32 steps) of x[o .. o + N). */
function rowStats(x: Float32Array, o: number, N: number, eps: number): [number, number] {
  let s = 0;
  for (let j = 0; j < N; j++) s += x[o + j];
  const m = Math.fround(s / N);
  let v = 0;
  for (let j = 0; j < N; j++) {
    const d = Math.fround(x[o + j] - m);
    v += d * d;
  }
  return [m, Math.fround(1 / Math.sqrt(Math.fround(v / N) + eps))];
}

/** Where head bh of an attention operand starts and its row stride (backend.ts, attention). */
interface HeadAt {
  at(bh: number): number;
  ld: number;
}

/** Where head bh of operand o of an attention head layout starts (backend.ts, attention). */
export function headStart(layout: Int32Array, o: number, bh: number): number {
  const H = layout[0];
  return Math.floor(bh / H) * layout[1 + 3 * o] + (bh % H) * layout[2 + 3 * o];
}

/** The operands' head layouts from attention's `layout` argument, or contiguous [BH, rows, cols]. */
function headLayouts(layout: Int32Array | null | undefined, dims: [number, number][]): HeadAt[] {
  return dims.map(([rows, cols], o) =>
    layout ? { at: (bh: number) => headStart(layout, o, bh), ld: layout[3 + 3 * o] } : { at: (bh: number) => bh * rows * cols, ld: cols });
}

const sigmoid = (v: number): number => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));

/** Fused kernels (definitions for native/fused.cpp). */
const fusedKernels: Pick<
  Backend, 'lstmCell' | 'lstmCellBackward' | 'gruCell' | 'gruCellBackward' | 'attention' | 'attentionBackward' | 'normRows' | 'normRowsBackward'
  | 'channelAffine' | 'channelAffineBackward' | 'batchNormStats' | 'batchNormBackward' | 'groupNormRows' | 'groupNormRowsBackward'
  | 'layerNormRows' | 'layerNormRowsBackward'
> = {
  layerNormRows(x, R, N, eps, w, b, y, mean, rstd) {
    for (let r = 0; r < R; r++) {
      const o = r * N;
      const [m, rs] = rowStats(x, o, N, eps);
      for (let j = 0; j < N; j++) y[o + j] = Math.fround(x[o + j] - m) * rs * (w ? w[j] : 1) + (b ? b[j] : 0);
      mean[r] = m;
      rstd[r] = rs;
    }
  },

  layerNormRowsBackward(x, mean, rstd, w, g, R, N, dx, dw, db) {
    if (dw) dw.fill(0, 0, N);
    if (db) db.fill(0, 0, N);
    for (let r = 0; r < R; r++) {
      const o = r * N, m = mean[r], rs = rstd[r];
      let sg = 0, sgy = 0;
      for (let j = 0; j < N; j++) {
        const gw = g[o + j] * (w ? w[j] : 1), xh = (x[o + j] - m) * rs;
        sg += gw;
        sgy += gw * xh;
        if (dw) dw[j] += g[o + j] * xh;
        if (db) db[j] += g[o + j];
      }
      if (!dx) continue;
      const mg = sg / N, mgy = sgy / N;
      for (let j = 0; j < N; j++) dx[o + j] = rs * (g[o + j] * (w ? w[j] : 1) - mg - (x[o + j] - m) * rs * mgy);
    }
  },

  normRows(x, R, N, eps, y, rstd) {
    for (let r = 0; r < R; r++) {
      const o = r * N;
      const [m, rs] = rowStats(x, o, N, eps);
      for (let j = 0; j < N; j++) y[o + j] = Math.fround(x[o + j] - m) * rs;
      rstd[r] = rs;
    }
  },

  normRowsBackward(y, rstd, g, R, N, dx) {
    for (let r = 0; r < R; r++) {
      const o = r * N;
      let sg = 0, sgy = 0;
      for (let j = 0; j < N; j++) {
        sg += g[o + j];
        sgy += g[o + j] * y[o + j];
      }
      const mg = sg / N, mgy = sgy / N, rs = rstd[r];
      for (let j = 0; j < N; j++) dx[o + j] = rs * (g[o + j] - mg - y[o + j] * mgy);
    }
  },

  channelAffine(x, outer, C, inner, w, b, act, y) {
    for (let r = 0; r < outer * C; r++) {
      const c = r % C, o = r * inner;
      const wc = w ? w[c] : 1, bc = b ? b[c] : 0;
      for (let j = 0; j < inner; j++) {
        const u = Math.fround(x[o + j] * wc + bc);
        y[o + j] = act === 1 ? u * sigmoid(u) : u;
      }
    }
  },

  channelAffineBackward(x, g, outer, C, inner, w, b, act, dx, sums) {
    for (let r = 0; r < outer * C; r++) {
      const c = r % C, o = r * inner;
      const wc = w ? w[c] : 1, bc = b ? b[c] : 0;
      let sx = 0, s1 = 0;
      for (let j = 0; j < inner; j++) {
        let du = g[o + j];
        if (act === 1) {
          const u = Math.fround(x[o + j] * wc + bc), s = sigmoid(u);
          du *= s * (1 + u * (1 - s));
        }
        dx[o + j] = du * wc;
        sx += du * x[o + j];
        s1 += du;
      }
      sums[2 * r] = sx;
      sums[2 * r + 1] = s1;
    }
  },

  groupNormRows(x, N, G, Cg, S, eps, w, b, act, y, mean, rstd) {
    const L = Cg * S;
    for (let r = 0; r < N * G; r++) {
      const o = r * L;
      const [m, rs] = rowStats(x, o, L, eps);
      mean[r] = m;
      rstd[r] = rs;
      for (let c = 0; c < Cg; c++) {
        const ch = (r % G) * Cg + c;
        const sc = Math.fround(rs * (w ? w[ch] : 1)), sh = Math.fround((b ? b[ch] : 0) - Math.fround(m * sc));
        for (let j = o + c * S; j < o + (c + 1) * S; j++) {
          const u = Math.fround(x[j] * sc + sh);
          y[j] = act === 1 ? u * sigmoid(u) : u;
        }
      }
    }
  },

  groupNormRowsBackward(x, g, N, G, Cg, S, mean, rstd, w, b, act, dx, sums) {
    const L = Cg * S, C = G * Cg;
    for (let r = 0; r < N * G; r++) {
      const o = r * L, m = mean[r], rs = rstd[r], n = Math.floor(r / G), g0 = (r % G) * Cg;
      const du = (c: number, j: number, xh: number): number => {
        if (act !== 1) return g[j];
        const u = Math.fround(xh * (w ? w[g0 + c] : 1) + (b ? b[g0 + c] : 0)), s = sigmoid(u);
        return g[j] * s * (1 + u * (1 - s));
      };
      let sA = 0, sB = 0;
      for (let c = 0; c < Cg; c++) {
        const wc = w ? w[g0 + c] : 1;
        let su = 0, suxh = 0;
        for (let j = o + c * S; j < o + (c + 1) * S; j++) {
          const xh = Math.fround(Math.fround(x[j] - m) * rs), d = du(c, j, xh);
          su += d;
          suxh += d * xh;
        }
        sums[2 * (n * C + g0 + c)] = suxh;
        sums[2 * (n * C + g0 + c) + 1] = su;
        sA += wc * su;
        sB += wc * suxh;
      }
      const a = sA / L, bq = sB / L;
      for (let c = 0; c < Cg; c++) {
        const wc = w ? w[g0 + c] : 1;
        for (let j = o + c * S; j < o + (c + 1) * S; j++) {
          const xh = Math.fround(Math.fround(x[j] - m) * rs);
          dx[j] = rs * (du(c, j, xh) * wc - a - xh * bq);
        }
      }
    }
  },

  batchNormStats(x, outer, C, inner, mean, variance) {
    const n = outer * inner;
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let o = 0; o < outer; o++) for (let j = 0, r = (o * C + c) * inner; j < inner; j++) s += x[r + j];
      const m = Math.fround(s / n);
      let q = 0;
      for (let o = 0; o < outer; o++) {
        for (let j = 0, r = (o * C + c) * inner; j < inner; j++) {
          const d = Math.fround(x[r + j] - m);
          q += d * d;
        }
      }
      mean[c] = m;
      variance[c] = q / n;
    }
  },

  batchNormBackward(x, g, outer, C, inner, mean, rstd, w, dx, dw, db) {
    const n = outer * inner;
    for (let c = 0; c < C; c++) {
      const m = mean[c], rs = rstd[c];
      let sg = 0, sgd = 0;
      for (let o = 0; o < outer; o++) {
        for (let j = 0, r = (o * C + c) * inner; j < inner; j++) {
          sg += g[r + j];
          sgd += g[r + j] * Math.fround(x[r + j] - m);
        }
      }
      const sh = sgd * rs;
      if (dw) dw[c] = sh;
      if (db) db[c] = sg;
      if (!dx) continue;
      const k = Math.fround((w ? w[c] : 1) * rs), a = Math.fround(sg / n), bh = Math.fround(Math.fround(sh / n) * rs);
      for (let o = 0; o < outer; o++) {
        for (let j = 0, r = (o * C + c) * inner; j < inner; j++) dx[r + j] = k * (g[r + j] - a - Math.fround(x[r + j] - m) * bh);
      }
    }
  },

  lstmCell(gates, c, B, H, h2, c2, act) {
    for (let b = 0; b < B; b++) {
      const a = b * 4 * H, s = b * 5 * H, o = b * H;
      for (let j = 0; j < H; j++) {
        const i = sigmoid(gates[a + j]), f = sigmoid(gates[a + H + j]), g = Math.tanh(gates[a + 2 * H + j]), og = sigmoid(gates[a + 3 * H + j]);
        const cn = Math.fround(f * c[o + j] + i * g);
        const tc = Math.tanh(cn);
        act[s + j] = i;
        act[s + H + j] = f;
        act[s + 2 * H + j] = g;
        act[s + 3 * H + j] = og;
        act[s + 4 * H + j] = tc;
        c2[o + j] = cn;
        h2[o + j] = og * tc;
      }
    }
  },

  lstmCellBackward(act, c, dh, dc2, B, H, dgates, dc) {
    for (let b = 0; b < B; b++) {
      const s = b * 5 * H, d = b * 4 * H, o = b * H;
      for (let j = 0; j < H; j++) {
        const i = act[s + j], f = act[s + H + j], g = act[s + 2 * H + j], og = act[s + 3 * H + j], tc = act[s + 4 * H + j];
        const gh = dh[o + j];
        // d c2 total: directly, and through h2 = o * tanh(c2).
        const dct = dc2[o + j] + gh * og * (1 - tc * tc);
        dgates[d + j] = dct * g * i * (1 - i);
        dgates[d + H + j] = dct * c[o + j] * f * (1 - f);
        dgates[d + 2 * H + j] = dct * i * (1 - g * g);
        dgates[d + 3 * H + j] = gh * tc * og * (1 - og);
        dc[o + j] = dct * f;
      }
    }
  },

  gruCell(gi, gh, h, B, H, h2, act) {
    for (let b = 0; b < B; b++) {
      const x = b * 3 * H, s = b * 4 * H, o = b * H;
      for (let j = 0; j < H; j++) {
        const r = sigmoid(Math.fround(gi[x + j] + gh[x + j]));
        const z = sigmoid(Math.fround(gi[x + H + j] + gh[x + H + j]));
        const hn = gh[x + 2 * H + j];
        const n = Math.tanh(Math.fround(gi[x + 2 * H + j] + Math.fround(r * hn)));
        act[s + j] = r;
        act[s + H + j] = z;
        act[s + 2 * H + j] = n;
        act[s + 3 * H + j] = hn;
        h2[o + j] = n + z * (h[o + j] - n);
      }
    }
  },

  gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh) {
    for (let b = 0; b < B; b++) {
      const s = b * 4 * H, x = b * 3 * H, o = b * H;
      for (let j = 0; j < H; j++) {
        const r = act[s + j], z = act[s + H + j], n = act[s + 2 * H + j], hn = act[s + 3 * H + j];
        const g = dh2[o + j];
        const dn = g * (1 - z) * (1 - n * n); // through tanh: the gradient of n's pre-activation
        const dz = g * (h[o + j] - n) * z * (1 - z);
        const dr = dn * hn * r * (1 - r);
        dgi[x + j] = dr;
        dgh[x + j] = dr;
        dgi[x + H + j] = dz;
        dgh[x + H + j] = dz;
        dgi[x + 2 * H + j] = dn;
        dgh[x + 2 * H + j] = dn * r;
        dh[o + j] = g * z;
      }
    }
  },

  attention(q, k, v, mask, maskStride, BH, L, S, D, Dv, scale, causalOffset, out, p, layout) {
    const [lq, lk, lv, lo] = headLayouts(layout, [[L, D], [S, D], [S, Dv], [L, Dv]]);
    for (let bh = 0; bh < BH; bh++) {
      const qb = lq.at(bh), kb = lk.at(bh);
      for (let i = 0; i < L; i++) {
        const row = (bh * L + i) * S;
        const lim = causalOffset < 0 ? S : causalOffset + i + 1;
        const qi = qb + i * lq.ld;
        for (let j = 0; j < S; j++) {
          let dot = 0;
          const kj = kb + j * lk.ld;
          for (let t = 0; t < D; t++) dot += q[qi + t] * k[kj + t];
          let sv = Math.fround(dot) * scale;
          if (mask) sv += mask[bh * maskStride + i * S + j];
          p[row + j] = j >= lim ? -Infinity : sv;
        }
      }
    }
    jsBackend.softmax(p, BH * L, S, 1, false, p);
    for (let bh = 0; bh < BH; bh++) {
      jsBackend.gemm(false, false, L, Dv, S, p, bh * L * S, S, v, lv.at(bh), lv.ld, 0, out, lo.at(bh), lo.ld);
    }
  },

  attentionBackward(q, k, v, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv, layout) {
    const [lq, lk, lv, ldo, ldq, ldk, ldv] = headLayouts(layout, [[L, D], [S, D], [S, Dv], [L, Dv], [L, D], [S, D], [S, Dv]]);
    const ds = new Float32Array(L * S);
    for (let bh = 0; bh < BH; bh++) {
      const po = bh * L * S;
      // dP = dO v^T (+ dp); dS = P * (dP - rowsum(dP * P)) * scale
      if (dout) jsBackend.gemm(false, true, L, S, Dv, dout, ldo.at(bh), ldo.ld, v, lv.at(bh), lv.ld, 0, ds, 0, S);
      else ds.fill(0);
      if (dp) for (let i = 0; i < L * S; i++) ds[i] += dp[po + i];
      for (let i = 0; i < L; i++) {
        let dot = 0;
        for (let j = 0; j < S; j++) dot += ds[i * S + j] * p[po + i * S + j];
        for (let j = 0; j < S; j++) ds[i * S + j] = p[po + i * S + j] * (ds[i * S + j] - dot) * scale;
      }
      if (dq) jsBackend.gemm(false, false, L, D, S, ds, 0, S, k, lk.at(bh), lk.ld, 0, dq, ldq.at(bh), ldq.ld);
      if (dk) jsBackend.gemm(true, false, S, D, L, ds, 0, S, q, lq.at(bh), lq.ld, 0, dk, ldk.at(bh), ldk.ld);
      if (dv && dout) jsBackend.gemm(true, false, S, Dv, L, p, po, S, dout, ldo.at(bh), ldo.ld, 0, dv, ldv.at(bh), ldv.ld);
    }
  },
};
export const jsBackend: Backend = {
  ...fusedKernels,
  ...memoryKernels,

  name: 'js',

  unary(op, x, xOff, out, n, p0, p1) {
    switch (op) {
      case 'neg': for (let i = 0; i < n; i++) out[i] = -x[xOff + i]; return;
      case 'exp': for (let i = 0; i < n; i++) out[i] = Math.exp(x[xOff + i]); return;
      case 'relu': for (let i = 0; i < n; i++) { const v = x[xOff + i]; out[i] = v > 0 ? v : v === v ? 0 : v; } return;
      case 'tanh': for (let i = 0; i < n; i++) out[i] = Math.tanh(x[xOff + i]); return;
      default: {
        const f = unaryFn(op, p0, p1);
        for (let i = 0; i < n; i++) out[i] = f(x[xOff + i]);
      }
    }
  },

  binary(op, a, aOff, aStrides, b, bOff, bStrides, out, shape) {
    // Both operands row-major over `shape` (the common case): one flat loop.
    if (isRowMajor(shape, aStrides) && isRowMajor(shape, bStrides)) {
      let n = 1;
      for (let d = 0; d < shape.length; d++) n *= shape[d];
      switch (op) {
        case 'add': for (let i = 0; i < n; i++) out[i] = a[aOff + i] + b[bOff + i]; return;
        case 'sub': for (let i = 0; i < n; i++) out[i] = a[aOff + i] - b[bOff + i]; return;
        case 'mul': for (let i = 0; i < n; i++) out[i] = a[aOff + i] * b[bOff + i]; return;
        case 'div': for (let i = 0; i < n; i++) out[i] = a[aOff + i] / b[bOff + i]; return;
        default: {
          const f = binaryFn(op);
          for (let i = 0; i < n; i++) out[i] = f(a[aOff + i], b[bOff + i]);
          return;
        }
      }
    }
    // Broadcast or strided: rows of the last axis under an odometer over the others.
    const rank = shape.length;
    const n = shape[rank - 1], as = aStrides[rank - 1], bs = bStrides[rank - 1];
    let rows = 1;
    for (let d = 0; d < rank - 1; d++) rows *= shape[d];
    if (rows === 0 || n === 0) return;
    const f = binaryFn(op);
    const idx = rowIdx.length >= rank ? rowIdx : (rowIdx = new Int32Array(rank));
    idx.fill(0, 0, rank);
    let ai = aOff, bi = bOff;
    for (let r = 0, oi = 0; r < rows; r++, oi += n) {
      binaryRow(op, f, a, ai, as, b, bi, bs, out, oi, n);
      for (let d = rank - 2; d >= 0; d--) {
        idx[d]++;
        ai += aStrides[d];
        bi += bStrides[d];
        if (idx[d] < shape[d]) break;
        ai -= aStrides[d] * shape[d];
        bi -= bStrides[d] * shape[d];
        idx[d] = 0;
      }
    }
  },

  activationGrad(kind, x, g, out, n, slope) {
    const d: (v: number) => number =
      kind === 'relu' ? (v) => (v > 0 ? 1 : v === v ? 0 : v)
        : kind === 'leakyRelu' ? (v) => (v > 0 ? 1 : v === v ? Math.fround(slope) : v)
          : kind === 'gelu' ? geluGrad : siluGrad;
    for (let i = 0; i < n; i++) out[i] = g[i] * Math.fround(d(x[i]));
  },

  copy(x, xOff, xStrides, out, shape) {
    if (isRowMajor(shape, xStrides)) {
      let n = 1;
      for (let d = 0; d < shape.length; d++) n *= shape[d];
      for (let i = 0; i < n; i++) out[i] = x[xOff + i];
      return;
    }
    forEachRow(shape, xStrides, xStrides, xOff, xOff, (xi, _bi, oi, n, xs) => {
      if (xs === 1) for (let j = 0; j < n; j++) out[oi + j] = x[xi + j];
      else for (let j = 0; j < n; j++) out[oi + j] = x[xi + j * xs];
    });
  },

  addStrided(src, dst, dstOff, dstStrides, shape) {
    forEachRow(shape, dstStrides, dstStrides, dstOff, dstOff, (di, _bi, si, n, ds) => {
      if (ds === 1) for (let j = 0; j < n; j++) dst[di + j] += src[si + j];
      else for (let j = 0; j < n; j++) dst[di + j * ds] += src[si + j];
    });
  },

  reduce(op: ReduceOp, x, outer, len, inner, out) {
    for (let o = 0; o < outer; o++) {
      const base = o * len * inner;
      const ob = o * inner;
      if (op === 'sum') {
        for (let i = 0; i < inner; i++) out[ob + i] = 0;
        for (let k = 0; k < len; k++) {
          const row = base + k * inner;
          for (let i = 0; i < inner; i++) out[ob + i] += x[row + i];
        }
      } else {
        const isMax = op === 'max';
        for (let i = 0; i < inner; i++) out[ob + i] = len > 0 ? x[base + i] : isMax ? -Infinity : Infinity;
        for (let k = 1; k < len; k++) {
          const row = base + k * inner;
          for (let i = 0; i < inner; i++) {
            const v = x[row + i];
            const cur = out[ob + i];
            if (v !== v || (isMax ? v > cur : v < cur)) {
              if (cur === cur) out[ob + i] = v;
            }
          }
        }
      }
    }
  },

  argReduce(op, x, outer, len, inner, out) {
    const isMax = op === 'max';
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let best = 0;
        let bv = x[o * len * inner + i];
        for (let k = 1; k < len; k++) {
          const v = x[(o * len + k) * inner + i];
          if (bv !== bv) break;
          if (v !== v || (isMax ? v > bv : v < bv)) {
            bv = v;
            best = k;
          }
        }
        out[o * inner + i] = best;
      }
    }
  },

  cumsum(x, outer, len, inner, reverse, out) {
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let acc = 0;
        for (let kk = 0; kk < len; kk++) {
          const k = reverse ? len - 1 - kk : kk;
          const j = (o * len + k) * inner + i;
          acc += x[j];
          out[j] = acc;
        }
      }
    }
  },

  softmax(x, outer, len, inner, log, out) {
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * len * inner + i;
        let m = -Infinity;
        for (let k = 0; k < len; k++) {
          const v = x[base + k * inner];
          if (v > m || v !== v) m = v;
        }
        if (m === -Infinity) m = 0;
        let s = 0;
        for (let k = 0; k < len; k++) s += Math.exp(x[base + k * inner] - m);
        if (log) {
          const ls = Math.log(s) + m;
          for (let k = 0; k < len; k++) out[base + k * inner] = x[base + k * inner] - ls;
        } else {
          const inv = 1 / s;
          for (let k = 0; k < len; k++) out[base + k * inner] = Math.exp(x[base + k * inner] - m) * inv;
        }
      }
    }
  },

  gemm(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc, epilogue) {
    if (beta === 0) for (let i = 0; i < M; i++) C.fill(0, cOff + i * ldc, cOff + i * ldc + N);
    // i-k-j loop order: the inner loop runs over contiguous rows of B and C.
    const bt = transB ? transposeBlock(B, bOff, ldb, N, K) : null;
    const Bm = bt ?? B;
    const bo = bt ? 0 : bOff;
    const ldbm = bt ? N : ldb;
    for (let i = 0; i < M; i++) {
      const ci = cOff + i * ldc;
      for (let k = 0; k < K; k++) {
        const a = transA ? A[aOff + k * lda + i] : A[aOff + i * lda + k];
        const bk = bo + k * ldbm;
        for (let j = 0; j < N; j++) C[ci + j] += a * Bm[bk + j];
      }
    }
    if (epilogue) gemmEpilogue(C, cOff, ldc, M, N, epilogue);
  },

  gemmBatched(transA, transB, batch, M, N, K, A, aOff, aStride, lda, B, bOff, bStride, ldb, beta, C, cOff, cStride, ldc) {
    for (let i = 0; i < batch; i++) {
      jsBackend.gemm(transA, transB, M, N, K, A, aOff + i * aStride, lda, B, bOff + i * bStride, ldb, beta, C, cOff + i * cStride, ldc);
    }
  },

  im2col(x, xOff, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols) {
    const L = oh * ow;
    for (let c = 0; c < C; c++) {
      for (let ki = 0; ki < kh; ki++) {
        for (let kj = 0; kj < kw; kj++) {
          const row = ((c * kh + ki) * kw + kj) * L;
          for (let y = 0; y < oh; y++) {
            const iy = y * sh - ph + ki * dh;
            const ro = row + y * ow;
            if (iy < 0 || iy >= H) {
              cols.fill(0, ro, ro + ow);
              continue;
            }
            const xb = xOff + (c * H + iy) * W;
            for (let xq = 0; xq < ow; xq++) {
              const ix = xq * sw - pw + kj * dw;
              cols[ro + xq] = ix >= 0 && ix < W ? x[xb + ix] : 0;
            }
          }
        }
      }
    }
  },

  col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x, xOff) {
    const L = oh * ow;
    for (let c = 0; c < C; c++) {
      for (let ki = 0; ki < kh; ki++) {
        for (let kj = 0; kj < kw; kj++) {
          const row = ((c * kh + ki) * kw + kj) * L;
          for (let y = 0; y < oh; y++) {
            const iy = y * sh - ph + ki * dh;
            if (iy < 0 || iy >= H) continue;
            const xb = xOff + (c * H + iy) * W;
            const ro = row + y * ow;
            for (let xq = 0; xq < ow; xq++) {
              const ix = xq * sw - pw + kj * dw;
              if (ix >= 0 && ix < W) x[xb + ix] += cols[ro + xq];
            }
          }
        }
      }
    }
  },

  conv2dForward(x, w, bias, g, y) {
    convForwardVia(jsBackend, x, w, bias, g, y);
  },

  conv2dBackwardData(y, w, g, x, overwrite) {
    convBackwardDataVia(jsBackend, y, w, g, x, overwrite);
  },

  conv2dBackwardWeight(x, y, g, dw) {
    convBackwardWeightVia(jsBackend, x, y, g, dw);
  },

  gather(x, outer, xLen, inner, idx, idxLen, out) {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < idxLen; j++) {
        const ib = (o * idxLen + j) * inner;
        for (let i = 0; i < inner; i++) out[ib + i] = x[(o * xLen + idx[ib + i]) * inner + i];
      }
    }
  },

  scatterAdd(out, outer, outLen, inner, idx, idxLen, src) {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < idxLen; j++) {
        const ib = (o * idxLen + j) * inner;
        for (let i = 0; i < inner; i++) out[(o * outLen + idx[ib + i]) * inner + i] += src[ib + i];
      }
    }
  },

  indexSelect(x, outer, xLen, inner, idx, out) {
    const n = idx.length;
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < n; j++) {
        const src = (o * xLen + idx[j]) * inner;
        const dst = (o * n + j) * inner;
        for (let i = 0; i < inner; i++) out[dst + i] = x[src + i];
      }
    }
  },

  indexAdd(out, outer, outLen, inner, idx, src) {
    const n = idx.length;
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < n; j++) {
        const dst = (o * outLen + idx[j]) * inner;
        const s = (o * n + j) * inner;
        for (let i = 0; i < inner; i++) out[dst + i] += src[s + i];
      }
    }
  },

  adam(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled, step) {
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2 = 1 - Math.pow(beta2, step);
    const stepSize = lr / bc1;
    const bc2Sqrt = Math.sqrt(bc2);
    for (let i = 0; i < n; i++) {
      let g = grad[i];
      if (weightDecay !== 0) {
        if (decoupled) param[i] *= 1 - lr * weightDecay;
        else g += weightDecay * param[i];
      }
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      // PyTorch: denom = sqrt(v) / sqrt(bc2) + eps.
      param[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
    }
  },
};


/** Backend.gemm's epilogue on C's M x N block at cOff (row stride ldc); the wasm backend's too. */
export function gemmEpilogue(C: Float32Array, cOff: number, ldc: number, M: number, N: number, e: GemmEpilogue): void {
  for (let i = 0; i < M; i++) {
    const ci = cOff + i * ldc;
    if (e.bias) for (let j = 0; j < N; j++) C[ci + j] += e.bias[e.biasOff + j];
    if (e.relu) for (let j = 0; j < N; j++) if (0 > C[ci + j]) C[ci + j] = 0; // NaN (and -0) stay
  }
}

function transposeBlock(B: Float32Array, bOff: number, ldb: number, N: number, K: number): Float32Array {
  // B is N x K (row stride ldb); return its transpose K x N, contiguous.
  const t = new Float32Array(K * N);
  for (let j = 0; j < N; j++) {
    const bj = bOff + j * ldb;
    for (let k = 0; k < K; k++) t[k * N + j] = B[bj + k];
  }
  return t;
}

export type { TypedArray };
