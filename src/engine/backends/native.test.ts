/**
 * The native addon against the js backend (the definition): every native kernel on
 * random inputs, odd sizes, offsets and leading dimensions, NaN/Inf, 1 and 2 threads;
 * the implicit-GEMM convolutions against js's im2col + GEMM.
 * Kernels are called on the raw addon so that small sizes reach native code too (the
 * backend wrapper sends them to js). Skips when the addon is not built.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../rng.js';
import type { ActivationGrad, Backend, BinaryOp, ConvGeometry, UnaryOp } from './backend.js';
import { jsBackend } from './js.js';
import { ACTIVATION_GRAD_CODES, BINARY_CODES, REDUCE_CODES, UNARY_CODES, convMeta, loadNative, nativeAddon } from './native.js';
import type { NativeAddon } from './native.js';

let addon: NativeAddon | null = null;
let backendNative: Backend | null = null;
let why = '';
try {
  addon = nativeAddon();
  backendNative = loadNative();
} catch (e) {
  why = e instanceof Error ? e.message : String(e);
}
const skip = addon ? false : `native addon unavailable: ${why}`;
const N = (): NativeAddon => addon as NativeAddon;

function rand(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.uniform() * 2 - 1) * scale;
  return a;
}

/** |a - b| <= atol + rtol |b| elementwise; NaN must match NaN and Inf must match exactly. */
function close(a: Float32Array, b: Float32Array, rtol: number, atol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    if (Number.isNaN(y) || Number.isNaN(x) || !Number.isFinite(y) || !Number.isFinite(x)) {
      if (!(Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)))) assert.fail(`${what}: [${i}] native ${x}, js ${y}`);
      continue;
    }
    if (Math.abs(x - y) > atol + rtol * Math.abs(y)) assert.fail(`${what}: [${i}] native ${x}, js ${y}`);
  }
}

function withThreads(fn: (threads: number) => void): void {
  const prev = N().threads();
  try {
    for (const t of [1, 2]) {
      N().setThreads(t);
      fn(t);
    }
  } finally {
    N().setThreads(prev);
  }
}

test('native gemm = js gemm: every microkernel, transposes, odd sizes, offsets, leading dims, beta, 1 and 2 threads', { skip }, () => {
  const rng = new Rng(1);
  const sizes: [number, number, number][] = [
    [1, 1, 1], [7, 63, 65], [65, 7, 63], [257, 65, 7], [63, 257, 33], [6, 64, 16], [13, 1100, 20], [150, 70, 500],
    // Thin products (at most 4 rows or columns), one and two threads' worth of work.
    [1, 1100, 37], [4, 77, 129], [5, 4, 33], [3, 700, 2000], [1000, 1, 40], [2000, 3, 700], [520, 2, 130],
    // A^T . B split into row chunks that read B in place (one chunk, and more than MC rows).
    [100, 300, 200], [300, 400, 64],
    // Short K (rank-1 to rank-4 updates), one and two threads' worth.
    [70, 90, 1], [33, 200, 3], [600, 3000, 2],
  ];
  const kernels = (['avx512', 'avx2', 'scalar'] as const).filter((k) => N().setKernel(k));
  N().setKernel('best');
  assert.ok(kernels.includes('scalar'));
  const prevThreads = N().threads();
  try {
    for (const [M, Nn, K] of sizes) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          const lda = (tA ? M : K) + 3, ldb = (tB ? K : Nn) + 1, ldc = Nn + 2;
          const aOff = 5, bOff = 2, cOff = 3;
          const A = rand(rng, aOff + (tA ? K : M) * lda);
          const B = rand(rng, bOff + (tB ? Nn : K) * ldb);
          // Error bound scales with sum |a||b|: compute it with js on |A|, |B|.
          const absC = new Float32Array(cOff + M * ldc);
          jsBackend.gemm(tA, tB, M, Nn, K, A.map(Math.abs), aOff, lda, B.map(Math.abs), bOff, ldb, 0, absC, cOff, ldc);
          for (const beta of [0, 1]) {
            const C0 = rand(rng, cOff + M * ldc);
            if (beta === 0) C0.fill(NaN, cOff); // beta 0 must overwrite, even NaN
            const Cj = C0.slice();
            jsBackend.gemm(tA, tB, M, Nn, K, A, aOff, lda, B, bOff, ldb, beta, Cj, cOff, ldc);
            for (const kernel of kernels) {
              N().setKernel(kernel);
              for (const threads of [1, 2]) {
                N().setThreads(threads);
                const Cn = C0.slice();
                N().gemm(tA, tB, M, Nn, K, A, aOff, lda, B, bOff, ldb, beta, Cn, cOff, ldc);
                const what = `gemm ${kernel} ${M}x${Nn}x${K} tA=${tA} tB=${tB} beta=${beta} threads=${threads}`;
                for (let i = 0; i < Cn.length; i++) {
                  const x = Cn[i], y = Cj[i];
                  if (Number.isNaN(y)) {
                    assert.ok(Number.isNaN(x), `${what}: [${i}] native ${x}, js NaN`);
                    continue;
                  }
                  const tol = 1e-6 * (absC[i] + Math.abs(y) + 1);
                  if (!(Math.abs(x - y) <= tol)) assert.fail(`${what}: [${i}] native ${x}, js ${y}`);
                }
              }
            }
          }
        }
      }
    }
  } finally {
    N().setKernel('best');
    N().setThreads(prevThreads);
  }
});

test('native gemm epilogue (bias, ReLU) = js: threaded, thin, transposed-B and empty-K paths, NaN kept', { skip }, () => {
  const rng = new Rng(7);
  // [M, N, K, tA, tB]: threaded tiles, a thin C (rows, columns), the transposed-B path
  // (tB with M < N), K = 0, a product small enough for one thread, and short K (the
  // epilogue applied row by row; threaded, and one thread).
  const cases: [number, number, number, boolean, boolean][] = [
    [150, 70, 300, false, false], [512, 256, 64, false, true], [3, 700, 200, false, false], [900, 2, 300, true, false],
    [40, 600, 300, false, true], [20, 30, 0, false, false], [7, 9, 5, true, true], [530, 260, 2, false, true],
    [40, 30, 3, true, false],
  ];
  const prevThreads = N().threads();
  try {
    for (const [M, Nn, K, tA, tB] of cases) {
      const lda = (tA ? M : K) + 1, ldb = (tB ? K : Nn) + 2, ldc = Nn + 3, cOff = 4, biasOff = 2;
      const A = rand(rng, (tA ? K : M) * lda), B = rand(rng, (tB ? Nn : K) * ldb), bias = rand(rng, biasOff + Nn);
      if (K > 0) A[tA ? 1 : lda + 1] = NaN; // row 1 of C is NaN, and ReLU keeps it NaN
      for (const beta of [0, 1]) {
        for (const [withBias, relu] of [[true, false], [false, true], [true, true]]) {
          const C0 = rand(rng, cOff + M * ldc);
          const epi = { bias: withBias ? bias : null, biasOff, relu };
          const Cj = C0.slice();
          jsBackend.gemm(tA, tB, M, Nn, K, A, 0, lda, B, 0, ldb, beta, Cj, cOff, ldc, epi);
          // The definition: the product, then + bias per column, then ReLU.
          const Cr = C0.slice();
          jsBackend.gemm(tA, tB, M, Nn, K, A, 0, lda, B, 0, ldb, beta, Cr, cOff, ldc);
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < Nn; j++) {
              let v = Cr[cOff + i * ldc + j] + (withBias ? bias[biasOff + j] : 0);
              if (relu && v <= 0) v = 0;
              Cr[cOff + i * ldc + j] = v;
            }
          }
          close(Cj, Cr, 0, 0, `js epilogue ${M}x${Nn}x${K}`);
          for (const threads of [1, 2]) {
            N().setThreads(threads);
            const Cn = C0.slice();
            N().gemm(tA, tB, M, Nn, K, A, 0, lda, B, 0, ldb, beta, Cn, cOff, ldc, epi.bias, biasOff, relu);
            close(Cn, Cj, 1e-5, 1e-5, `native epilogue ${M}x${Nn}x${K} tA=${tA} tB=${tB} beta=${beta} bias=${withBias} relu=${relu} threads=${threads}`);
            if (K > 0) assert.ok(Number.isNaN(Cn[cOff + ldc]), 'NaN through ReLU');
            // Elements between rows (ldc > N) are untouched.
            assert.equal(Cn[cOff + Nn], C0[cOff + Nn]);
          }
        }
      }
    }
  } finally {
    N().setThreads(prevThreads);
  }
  const A = new Float32Array(4), B = new Float32Array(4), C = new Float32Array(4);
  assert.throws(() => N().gemm(false, false, 2, 2, 2, A, 0, 2, B, 0, 2, 0, C, 0, 2, new Float32Array(2), 1, false), /gemm bias/);
});

test('native keepHeap sets glibc malloc, and rejects bad byte counts', { skip }, () => {
  // Loading the addon already applied the defaults; setting them again must succeed on glibc.
  const glibc = process.platform === 'linux' && !!(process.report?.getReport() as { header?: { glibcVersionRuntime?: string } })?.header?.glibcVersionRuntime;
  assert.equal(N().keepHeap(32 << 20, 256 << 20), glibc);
  assert.throws(() => (N().keepHeap as (...a: unknown[]) => boolean)(-1, 0), /keepHeap expects two byte counts/);
  assert.throws(() => (N().keepHeap as (...a: unknown[]) => boolean)(1), /keepHeap expects two byte counts/);
});

test('native gemm propagates NaN and Inf like js', { skip }, () => {
  const rng = new Rng(2);
  const [M, Nn, K] = [9, 70, 11];
  const A = rand(rng, M * K), B = rand(rng, K * Nn);
  A[2 * K + 3] = NaN; // row 2 of C becomes NaN
  B[4 * Nn + 5] = Infinity; // column 5: +-Inf (or NaN with row 2)
  const Cn = new Float32Array(M * Nn), Cj = new Float32Array(M * Nn);
  N().gemm(false, false, M, Nn, K, A, 0, K, B, 0, Nn, 0, Cn, 0, Nn);
  jsBackend.gemm(false, false, M, Nn, K, A, 0, K, B, 0, Nn, 0, Cj, 0, Nn);
  for (let i = 0; i < Cn.length; i++) {
    if (!Number.isFinite(Cj[i])) assert.ok(Object.is(Cn[i], Cj[i]) || (Number.isNaN(Cn[i]) && Number.isNaN(Cj[i])), `[${i}] ${Cn[i]} vs ${Cj[i]}`);
    else assert.ok(Number.isFinite(Cn[i]), `[${i}] ${Cn[i]} vs ${Cj[i]}`);
  }
  assert.ok(Number.isNaN(Cn[2 * Nn + 7]));
  assert.equal(Cn[0 * Nn + 5], Cj[0 * Nn + 5]);
});

test('native gemm rejects out-of-bounds arguments instead of touching memory', { skip }, () => {
  const A = new Float32Array(12), B = new Float32Array(12), C = new Float32Array(9);
  assert.throws(() => N().gemm(false, false, 3, 3, 4, A, 1, 4, B, 0, 3, 0, C, 0, 3), RangeError);
  assert.throws(() => N().gemm(false, false, 3, 4, 4, A, 0, 4, B, 0, 3, 0, C, 0, 3), RangeError);
});

test('native gemmBatched = js gemm per item: transposes, a shared (stride 0) B, beta, items split over threads or not', { skip }, () => {
  const rng = new Rng(29);
  // [batch, M, N, K]: small items (spread over the threads) and items large enough to be
  // threaded one by one.
  for (const [batch, M, Nn, K] of [[1, 5, 7, 9], [32, 49, 49, 128], [7, 13, 33, 65], [3, 200, 150, 120]]) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        for (const shareB of [false, true]) {
          const lda = (tA ? M : K) + 1, ldb = (tB ? K : Nn) + 2, ldc = Nn + 3;
          const aStride = (tA ? K : M) * lda + 4, bStride = shareB ? 0 : (tB ? Nn : K) * ldb + 1, cStride = M * ldc + 5;
          const A = rand(rng, 2 + batch * aStride), B = rand(rng, 1 + (shareB ? (tB ? Nn : K) * ldb : batch * bStride));
          for (const beta of [0, 1]) {
            const C0 = rand(rng, 3 + batch * cStride), Cj = C0.slice();
            for (let i = 0; i < batch; i++) {
              jsBackend.gemm(tA, tB, M, Nn, K, A, 2 + i * aStride, lda, B, 1 + i * bStride, ldb, beta, Cj, 3 + i * cStride, ldc);
            }
            withThreads((threads) => {
              const Cn = C0.slice();
              N().gemmBatched(tA, tB, batch, M, Nn, K, A, 2, aStride, lda, B, 1, bStride, ldb, beta, Cn, 3, cStride, ldc);
              close(Cn, Cj, 1e-5, 1e-4 * Math.sqrt(K), `gemmBatched ${[batch, M, Nn, K]} tA ${tA} tB ${tB} shareB ${shareB} beta ${beta} (threads ${threads})`);
            });
          }
        }
      }
    }
  }
});

test('native gemmBatched rejects overlapping results and out-of-bounds items', { skip }, () => {
  const A = new Float32Array(2 * 12), B = new Float32Array(12), C = new Float32Array(2 * 9);
  N().gemmBatched(false, false, 2, 3, 3, 4, A, 0, 12, 4, B, 0, 0, 3, 0, C, 0, 9, 3);
  assert.throws(() => N().gemmBatched(false, false, 2, 3, 3, 4, A, 0, 12, 4, B, 0, 0, 3, 0, C, 0, 8, 3), /overlap/);
  assert.throws(() => N().gemmBatched(false, false, 2, 3, 3, 4, A, 1, 12, 4, B, 0, 0, 3, 0, C, 0, 9, 3), /gemmBatched A out of bounds/);
  assert.throws(() => N().gemmBatched(false, false, 2, 3, 3, 4, A, 0, 12, 4, B, 0, 1, 3, 0, C, 0, 9, 3), /gemmBatched B out of bounds/);
  assert.throws(() => N().gemmBatched(false, false, 3, 3, 3, 4, A, 0, 6, 4, B, 0, 0, 3, 0, C, 0, 9, 3), /gemmBatched C out of bounds/);
});

const SPECIAL = [NaN, Infinity, -Infinity, 0, -0, 1e-40, -1e-40, 1e-7, -1e-7, 0.5, -0.5, 1, -1, 19.9, 20, 20.1, 88, -88, 89, -104, 200, -200];

test('native unary = js unary for every op, NaN/Inf/extremes included', { skip }, () => {
  const rng = new Rng(3);
  const n = 2000;
  const x = new Float32Array(3 + n);
  x.set(SPECIAL, 3);
  for (let i = 3 + SPECIAL.length; i < x.length; i++) x[i] = rng.normal() * (i % 3 === 0 ? 10 : 2);
  // Ops computed exactly as js does (no transcendental approximation).
  const exact = new Set<UnaryOp>(['neg', 'abs', 'sqrt', 'sin', 'cos', 'relu', 'leakyRelu', 'clamp', 'sign', 'square', 'reciprocal', 'step']);
  withThreads((threads) => {
    for (const op of Object.keys(UNARY_CODES) as UnaryOp[]) {
      const [p0, p1] = op === 'clamp' ? [-0.5, 0.75] : op === 'leakyRelu' ? [0.01, 0] : op === 'elu' ? [1.5, 0] : [0, 0];
      const on = new Float32Array(n), oj = new Float32Array(n);
      assert.equal(N().unary(UNARY_CODES[op], x, 3, on, n, p0, p1), true, `${op} implemented`);
      jsBackend.unary(op, x, 3, oj, n, p0, p1);
      const rtol = exact.has(op) ? 0 : op === 'rsqrt' ? 1.2e-7 : 4e-6;
      close(on, oj, rtol, exact.has(op) ? 0 : 1e-12, `unary ${op} (threads ${threads})`);
    }
  });
});

test('native activationGrad = js activationGrad for every activation, NaN/Inf/extremes included', { skip }, () => {
  const rng = new Rng(5);
  const n = 3000;
  const x = new Float32Array(n), g = new Float32Array(n);
  x.set(SPECIAL);
  for (let i = SPECIAL.length; i < n; i++) x[i] = rng.normal() * (i % 3 === 0 ? 10 : 2);
  for (let i = 0; i < n; i++) g[i] = i === 7 ? NaN : i === 8 ? Infinity : rng.normal();
  withThreads((threads) => {
    for (const kind of Object.keys(ACTIVATION_GRAD_CODES) as ActivationGrad[]) {
      const on = new Float32Array(n).fill(NaN), oj = new Float32Array(n);
      assert.equal(N().activationGrad(ACTIVATION_GRAD_CODES[kind], x, g, on, n, 0.2), true, `${kind} implemented`);
      jsBackend.activationGrad(kind, x, g, oj, n, 0.2);
      const exact = kind === 'relu' || kind === 'leakyRelu';
      close(on, oj, exact ? 0 : 4e-6, exact ? 0 : 1e-7, `activationGrad ${kind} (threads ${threads})`);
    }
  });
  assert.equal(N().activationGrad(9, x, g, new Float32Array(n), n, 0), false, 'unknown kind refused');
  assert.throws(() => N().activationGrad(0, x, g, new Float32Array(10), n, 0), RangeError);
});

test('native binary = js binary: contiguous, broadcast, transposed, negative strides, NaN/Inf', { skip }, () => {
  const rng = new Rng(4);
  const base = rand(rng, 4000, 3);
  base.set([NaN, Infinity, -Infinity, 0, -0, 2, 0.5, -3], 0);
  const cases: { shape: number[]; as: number[]; bs: number[]; aOff: number; bOff: number }[] = [
    { shape: [600], as: [1], bs: [1], aOff: 0, bOff: 7 },
    { shape: [3, 4, 50], as: [200, 50, 1], bs: [0, 50, 1], aOff: 1, bOff: 0 }, // b broadcast on axis 0
    { shape: [37, 41], as: [41, 1], bs: [0, 0], aOff: 3, bOff: 5 }, // scalar b
    { shape: [37, 41], as: [0, 1], bs: [1, 0], aOff: 3, bOff: 5 }, // outer-product broadcast
    { shape: [30, 40], as: [1, 30], bs: [40, 1], aOff: 0, bOff: 0 }, // transposed a
    { shape: [20, 30], as: [30, -1], bs: [30, 1], aOff: 29, bOff: 0 }, // flipped last axis
    { shape: [2, 1, 3, 1, 60], as: [180, 0, 60, 0, 1], bs: [0, 0, 60, 0, 1], aOff: 0, bOff: 100 },
    { shape: [], as: [], bs: [], aOff: 2, bOff: 3 }, // 0-D
  ];
  withThreads((threads) => {
    for (const op of Object.keys(BINARY_CODES) as BinaryOp[]) {
      for (const c of cases) {
        const n = c.shape.reduce((p, v) => p * v, 1);
        const on = new Float32Array(n), oj = new Float32Array(n);
        const meta = Int32Array.from([c.shape.length, ...c.shape, ...c.as, ...c.bs]);
        assert.equal(N().binary(BINARY_CODES[op], base, c.aOff, base, c.bOff, on, meta), true);
        jsBackend.binary(op, base, c.aOff, c.as, base, c.bOff, c.bs, oj, c.shape);
        close(on, oj, 0, 0, `binary ${op} shape ${JSON.stringify(c.shape)} (threads ${threads})`);
      }
    }
  });
});

test('native addStrided = js addStrided: chunks, step slices, permuted views; refuses overlapping views', { skip }, () => {
  const rng = new Rng(10);
  const cases: { shape: number[]; st: number[]; off: number }[] = [
    { shape: [64, 32], st: [96, 1], off: 32 }, // the middle chunk of [64, 96] (qkv)
    { shape: [8, 40, 3], st: [120, 3, 1], off: 0 }, // contiguous: merges into one row
    { shape: [6, 5, 40], st: [1, 6, 30], off: 2 }, // permuted
    { shape: [3, 50], st: [200, 2], off: 1 }, // step slice
    { shape: [], st: [], off: 7 },
  ];
  withThreads((threads) => {
    for (const c of cases) {
      const n = c.shape.reduce((p, v) => p * v, 1);
      const src = rand(rng, n), base = rand(rng, 8000);
      const dn = base.slice(), dj = base.slice();
      const meta = Int32Array.from([c.shape.length, ...c.shape, ...c.st]);
      assert.equal(N().addStrided(src, dn, c.off, meta), true);
      jsBackend.addStrided(src, dj, c.off, c.st, c.shape);
      close(dn, dj, 0, 0, `addStrided ${JSON.stringify(c.shape)} (threads ${threads})`);
      assert.ok(dj.some((v, i) => v !== base[i]) || n === 0, 'something was added');
    }
  });
  // Zero or negative strides could make two rows write one element: not handled natively.
  assert.equal(N().addStrided(new Float32Array(60), new Float32Array(60), 0, Int32Array.from([2, 2, 30, 0, 1])), false);
  assert.throws(() => N().addStrided(new Float32Array(20), new Float32Array(20), 5, Int32Array.from([1, 20, 1])), RangeError);
});

test('native copy = js copy: permuted, sliced, flipped and broadcast views, float32 and int32', { skip }, () => {
  const rng = new Rng(9);
  const src = rand(rng, 5000);
  src[3] = NaN;
  const isrc = Int32Array.from({ length: 5000 }, (_, i) => (i * 2654435761) | 0);
  const cases: { shape: number[]; st: number[]; off: number }[] = [
    { shape: [4, 5, 6], st: [30, 6, 1], off: 0 }, // contiguous
    { shape: [6, 5, 4], st: [1, 6, 30], off: 2 }, // full permutation
    { shape: [8, 40, 3], st: [120, 3, 1], off: 1 }, // merged
    { shape: [10, 20], st: [40, -1], off: 19 }, // flip
    { shape: [7, 30], st: [0, 1], off: 5 }, // broadcast (expand)
    { shape: [3, 1, 50], st: [100, 0, 2], off: 0 }, // step slice
    { shape: [], st: [], off: 4 },
    // Last axis repeated (nearest upsampling's [NC, H, f, W, f] view): f = 2 and 3, one
    // row, a repeated axis right before it, enough rows for two threads.
    { shape: [6, 7, 2, 7, 2], st: [49, 7, 0, 1, 0], off: 3 },
    { shape: [2, 5, 3, 4, 3], st: [20, 4, 0, 1, 0], off: 0 },
    { shape: [9, 3], st: [2, 0], off: 1 },
    { shape: [5, 4, 2], st: [1, 5, 0], off: 2 },
    { shape: [4, 3, 5, 2], st: [60, 5, 0, 0], off: 7 },
    { shape: [24, 14, 2, 14, 2], st: [196, 14, 0, 1, 0], off: 0 },
  ];
  withThreads((threads) => {
    for (const c of cases) {
      const n = c.shape.reduce((p, v) => p * v, 1);
      const meta = Int32Array.from([c.shape.length, ...c.shape, ...c.st]);
      const on = new Float32Array(n), oj = new Float32Array(n);
      assert.equal(N().copy(src, c.off, on, meta), true);
      jsBackend.copy(src, c.off, c.st, oj, c.shape);
      close(on, oj, 0, 0, `copy ${JSON.stringify(c.shape)} (threads ${threads})`);
      const inn = new Int32Array(n), inj = new Int32Array(n);
      N().copy(isrc, c.off, inn, meta);
      jsBackend.copy(isrc, c.off, c.st, inj, c.shape);
      assert.deepEqual(inn, inj, `int32 copy ${JSON.stringify(c.shape)}`);
    }
  });
  assert.throws(() => N().copy(src, 4990, new Float32Array(20), Int32Array.from([1, 20, 1])), RangeError);
});

test('native reduce and softmax = js, NaN and -Inf rows included', { skip }, () => {
  const rng = new Rng(5);
  const shapes: [number, number, number][] = [[3, 17, 1], [1, 1000, 1], [2, 5, 7], [1, 13, 300], [4, 0, 3], [50, 33, 1], [2, 300, 70],
    // Short rows (len < 16, inner 1; reductions only): many rows per call, pairs on their own path.
    [20000, 2, 1], [40, 5, 1], [7, 1, 1], [6, 0, 1]];
  withThreads((threads) => {
    for (const [outer, len, inner] of shapes) {
      const x = rand(rng, outer * len * inner, 4);
      if (x.length > 40) {
        x[5] = NaN;
        x[17] = Infinity;
        x[23] = -Infinity;
      }
      if (inner === 1 && outer > 2 && len > 0) x.fill(-Infinity, len, 2 * len); // a row of -Inf
      for (const op of ['sum', 'max', 'min'] as const) {
        const on = new Float32Array(outer * inner), oj = new Float32Array(outer * inner);
        N().reduce(REDUCE_CODES[op], x, outer, len, inner, on);
        jsBackend.reduce(op, x, outer, len, inner, oj);
        close(on, oj, op === 'sum' ? 1e-5 : 0, op === 'sum' ? 1e-4 : 0, `reduce ${op} [${outer},${len},${inner}] (threads ${threads})`);
      }
      if (len === 0 || (inner === 1 && len < 16)) continue;
      for (const log of [false, true]) {
        const on = new Float32Array(x.length), oj = new Float32Array(x.length);
        N().softmax(x, outer, len, inner, log, on);
        jsBackend.softmax(x, outer, len, inner, log, oj);
        close(on, oj, 1e-5, 1e-7, `softmax log=${log} [${outer},${len},${inner}] (threads ${threads})`);
      }
    }
  });
});

test('native im2col and col2im = js (stride, padding, dilation, offsets)', { skip }, () => {
  const rng = new Rng(6);
  const cfgs = [
    { C: 3, H: 9, W: 11, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, dh: 1, dw: 1 },
    { C: 2, H: 10, W: 7, kh: 3, kw: 2, sh: 2, sw: 3, ph: 2, pw: 0, dh: 2, dw: 1 },
    { C: 5, H: 6, W: 6, kh: 1, kw: 1, sh: 1, sw: 1, ph: 0, pw: 0, dh: 1, dw: 1 },
    { C: 16, H: 28, W: 28, kh: 5, kw: 5, sh: 1, sw: 1, ph: 4, pw: 4, dh: 1, dw: 1 },
  ];
  withThreads((threads) => {
    for (const c of cfgs) {
      const oh = Math.floor((c.H + 2 * c.ph - c.dh * (c.kh - 1) - 1) / c.sh) + 1;
      const ow = Math.floor((c.W + 2 * c.pw - c.dw * (c.kw - 1) - 1) / c.sw) + 1;
      const xOff = 4;
      const x = rand(rng, xOff + c.C * c.H * c.W);
      const rows = c.C * c.kh * c.kw;
      const cn = new Float32Array(rows * oh * ow).fill(NaN), cj = new Float32Array(rows * oh * ow);
      N().im2col(x, xOff, c.C, c.H, c.W, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, oh, ow, cn);
      jsBackend.im2col(x, xOff, c.C, c.H, c.W, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, oh, ow, cj);
      close(cn, cj, 0, 0, `im2col ${JSON.stringify(c)} (threads ${threads})`);
      const cols = rand(rng, rows * oh * ow);
      const xn = rand(rng, x.length), xj = xn.slice();
      N().col2im(cols, c.C, c.H, c.W, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, oh, ow, xn, xOff);
      jsBackend.col2im(cols, c.C, c.H, c.W, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, oh, ow, xj, xOff);
      close(xn, xj, 0, 0, `col2im ${JSON.stringify(c)} (threads ${threads})`);
    }
  });
});

/** Convolution geometries for the conv2d* kernels: odd sizes, strides, padding, dilation, groups, batch 1 and > 1. */
const CONV_CASES: ConvGeometry[] = [
  // [N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, groups]
  [1, 3, 17, 19, 5, 5, 5, 3, 3, 2, 2, 1, 1, 1],
  [5, 8, 13, 13, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [3, 6, 11, 10, 9, 3, 2, 2, 1, 1, 0, 1, 2, 3],
  [4, 24, 12, 12, 20, 1, 1, 1, 1, 0, 0, 1, 1, 1],
  [2, 8, 9, 7, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2],
  [3, 4, 9, 9, 6, 1, 1, 2, 2, 0, 0, 1, 1, 1],
  [7, 64, 9, 9, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [16, 4, 16, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [6, 64, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [2, 3, 8, 8, 4, 4, 4, 2, 2, 1, 1, 1, 1, 1],
  [2, 4, 6, 5, 3, 3, 3, 1, 2, 3, 2, 2, 1, 1],
  // Stride 1 (data gradient as a flipped-kernel convolution): dilated, grouped, uneven padding; padding > d (k - 1).
  [2, 6, 10, 9, 4, 3, 2, 1, 1, 2, 1, 2, 3, 2],
  [2, 3, 6, 6, 4, 3, 3, 1, 1, 3, 3, 1, 1, 1],
  // Stride 1 at widths >= 14 (the padded, widened-grid forward): grouped with a 3x5 kernel
  // and uneven padding, one input channel, no padding with a 2x4 kernel.
  [3, 6, 15, 17, 4, 3, 5, 1, 1, 1, 2, 1, 1, 2],
  [4, 1, 28, 28, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [2, 5, 20, 18, 3, 2, 4, 1, 1, 0, 0, 1, 1, 1],
  // ... with at most 4 outputs, the weight gradient as dot products: uneven padding.
  [3, 40, 16, 15, 1, 3, 3, 1, 1, 2, 1, 1, 1, 1],
  // ... in two passes of images (a ~4 MB widened result holds 8 of these).
  [10, 4, 14, 14, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  // 3x3 stride 1 with >= 16 channels each side, Winograd F(2x2, 3x3) (output sizes such
  // as 5, 6, 9 and 10, where 4x4 tiles save too little): odd output sizes (tiles past the
  // edge), padding 0 and 2, channel counts off multiples of 16, and blocks of tile rows
  // that start inside an image (9x9: 5-row images).
  [7, 24, 9, 9, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [3, 16, 12, 11, 20, 3, 3, 1, 1, 0, 0, 1, 1, 1],
  [2, 18, 3, 4, 16, 3, 3, 1, 1, 2, 2, 1, 1, 1],
  // ... F(4x4, 3x3) (7x7, 8x8, 13x28, 20x16, 28x28...): tiles past the edge, blocks that
  // start inside an image (20x16: 5-row images), padding 0, 2, 3 and 28x28.
  [2, 40, 13, 28, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [3, 16, 10, 11, 20, 3, 3, 1, 1, 0, 0, 1, 1, 1],
  [5, 17, 7, 7, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [8, 16, 20, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [3, 20, 18, 14, 17, 3, 3, 1, 1, 2, 2, 1, 1, 1],
  [2, 32, 28, 28, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  // Stride 2 with even kernels (the forward over four phase images): odd sizes with a 2x2
  // kernel, uneven padding and groups.
  [3, 4, 9, 7, 5, 2, 2, 2, 2, 0, 0, 1, 1, 1],
  [2, 4, 10, 11, 6, 4, 4, 2, 2, 2, 1, 1, 1, 2],
  // ... whose 2x2 convolution over the phase images takes Winograd F(2x2, 2x2) (>= 16
  // phase channels and outputs), gradients too: odd sizes, uneven padding, a 2x2 kernel.
  [3, 4, 14, 14, 16, 4, 4, 2, 2, 1, 1, 1, 1, 1],
  [2, 8, 13, 11, 20, 4, 4, 2, 2, 1, 1, 1, 1, 1],
  [2, 6, 10, 12, 17, 4, 4, 2, 2, 2, 1, 1, 1, 1],
  [3, 5, 9, 9, 16, 2, 2, 2, 2, 0, 0, 1, 1, 1],
].map(([N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, groups]) => ({
  N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, groups,
  oh: Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1,
  ow: Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1,
}));

/**
 * Tolerance for a sum of `terms` products: js's float32 reference rounds too, with an
 * error that grows like sqrt(terms) (a weight gradient over 32768 terms is ~2e-4 off).
 */
const convTol = (terms: number): number => 1e-4 * Math.max(1, Math.sqrt(terms / 2048));

/**
 * Whether native runs this geometry through Winograd F(4x4, 3x3) (native/winograd.cpp:
 * 3x3 stride 1, >= 16 channels each side, and 36 products per 4x4 tile at most 0.8 of 16
 * per 2x2 tile, tiles past the edges counted), whose transforms (points 0, +-1, +-2)
 * round ~10x more than a direct sum; the test below bounds that error against float64 sums.
 */
const winograd4 = (g: ConvGeometry): boolean => {
  const tiles = (m: number): number => Math.ceil(g.oh / m) * Math.ceil(g.ow / m);
  return g.groups === 1 && g.kh === 3 && g.kw === 3 && g.sh === 1 && g.sw === 1 && g.dh === 1 && g.dw === 1 &&
    g.Cin >= 16 && g.Cout >= 16 && 5 * 36 * tiles(4) <= 4 * 16 * tiles(2);
};

/** conv2dForward, conv2dBackwardData (adding into x) and conv2dBackwardWeight of `be` against js. */
function checkConvAgainstJs(be: Backend, rng: Rng, g: ConvGeometry, what: string): void {
  const f = be !== jsBackend && winograd4(g) ? 10 : 1;
  const tolFwd = f * convTol((g.Cin / g.groups) * g.kh * g.kw), tolData = f * convTol((g.Cout / g.groups) * g.kh * g.kw);
  const tolWeight = f * convTol(g.N * g.oh * g.ow);
  const nx = g.N * g.Cin * g.H * g.W, ny = g.N * g.Cout * g.oh * g.ow, nw = g.Cout * (g.Cin / g.groups) * g.kh * g.kw;
  const x = rand(rng, nx), w = rand(rng, nw), y = rand(rng, ny), bias = rand(rng, g.Cout);
  for (const b of [null, bias]) {
    const yb = new Float32Array(ny).fill(NaN), yj = new Float32Array(ny);
    be.conv2dForward(x, w, b, g, yb);
    jsBackend.conv2dForward(x, w, b, g, yj);
    close(yb, yj, tolFwd, tolFwd, `conv2dForward ${what}${b ? ' with bias' : ''}`);
  }
  const x0 = rand(rng, nx);
  const xb = x0.slice(), xj = x0.slice();
  be.conv2dBackwardData(y, w, g, xb);
  jsBackend.conv2dBackwardData(y, w, g, xj);
  close(xb, xj, tolData, tolData, `conv2dBackwardData ${what}`);
  // Overwriting: x's prior contents (NaN here) are never read.
  const xo = new Float32Array(nx).fill(NaN), xz = new Float32Array(nx);
  be.conv2dBackwardData(y, w, g, xo, true);
  jsBackend.conv2dBackwardData(y, w, g, xz);
  close(xo, xz, tolData, tolData, `conv2dBackwardData overwriting ${what}`);
  const wb = new Float32Array(nw).fill(NaN), wj = new Float32Array(nw);
  be.conv2dBackwardWeight(x, y, g, wb);
  jsBackend.conv2dBackwardWeight(x, y, g, wj);
  close(wb, wj, tolWeight, tolWeight, `conv2dBackwardWeight ${what}`);
}

test('native conv2d kernels = js (implicit GEMM): every microkernel, strides, padding, dilation, groups, 1 and 2 threads', { skip }, () => {
  const rng = new Rng(11);
  const kernels = (['avx512', 'avx2', 'scalar'] as const).filter((k) => N().setKernel(k));
  try {
    for (const k of kernels) {
      N().setKernel(k);
      withThreads((threads) => {
        for (const g of CONV_CASES) checkConvAgainstJs(backendNative as Backend, rng, g, `${JSON.stringify(g)} (${k}, threads ${threads})`);
      });
    }
  } finally {
    N().setKernel('best');
  }
});

test('native stride-2 forward over phase images in two passes = a float64 direct convolution', { skip }, () => {
  // 4 * 256 * 47 * 47 phase floats an image: over the 2^21 of a pass, so one image per pass.
  const g: ConvGeometry = { N: 2, Cin: 256, H: 92, W: 92, Cout: 3, kh: 4, kw: 4, sh: 2, sw: 2, ph: 1, pw: 1, dh: 1, dw: 1, groups: 1, oh: 46, ow: 46 };
  const rng = new Rng(5);
  const x = rand(rng, g.N * g.Cin * g.H * g.W), w = rand(rng, g.Cout * g.Cin * 16), b = rand(rng, g.Cout);
  const y = new Float32Array(g.N * g.Cout * g.oh * g.ow).fill(NaN);
  backendNative!.conv2dForward(x, w, b, g, y);
  let worst = 0;
  for (let n = 0; n < g.N; n++)
    for (let o = 0; o < g.Cout; o++)
      for (let oy = 0; oy < g.oh; oy++)
        for (let ox = 0; ox < g.ow; ox++) {
          let sum = b[o], mag = Math.abs(b[o]);
          for (let c = 0; c < g.Cin; c++)
            for (let ki = 0; ki < 4; ki++) {
              const iy = 2 * oy - 1 + ki;
              if (iy < 0 || iy >= g.H) continue;
              for (let kj = 0; kj < 4; kj++) {
                const ix = 2 * ox - 1 + kj;
                if (ix < 0 || ix >= g.W) continue;
                const t = w[((o * g.Cin + c) * 4 + ki) * 4 + kj] * x[((n * g.Cin + c) * g.H + iy) * g.W + ix];
                sum += t;
                mag += Math.abs(t);
              }
            }
          worst = Math.max(worst, Math.abs(y[((n * g.Cout + o) * g.oh + oy) * g.ow + ox] - sum) / mag);
        }
  assert.ok(worst < 1e-5, `worst error relative to sum |w x|: ${worst}`);
});

/**
 * The worst errors of native's forward, data and weight gradients of geometry g (one
 * group, no dilation), each relative to the sum of |terms| of its float64 direct sum.
 */
function convErrorsVsFloat64(g: ConvGeometry, seed: number): { forward: number; data: number; weight: number } {
  const rng = new Rng(seed);
  const kk = g.kh * g.kw;
  const x = rand(rng, g.N * g.Cin * g.H * g.W), w = rand(rng, g.Cout * g.Cin * kk), dy = rand(rng, g.N * g.Cout * g.oh * g.ow);
  const y = new Float32Array(dy.length), dx = new Float32Array(x.length), dw = new Float32Array(w.length);
  backendNative!.conv2dForward(x, w, null, g, y);
  backendNative!.conv2dBackwardData(dy, w, g, dx);
  backendNative!.conv2dBackwardWeight(x, dy, g, dw);
  const sums = { y: new Float64Array(y.length), yMag: new Float64Array(y.length), dx: new Float64Array(x.length),
    dxMag: new Float64Array(x.length), dw: new Float64Array(w.length), dwMag: new Float64Array(w.length) };
  for (let n = 0; n < g.N; n++)
    for (let o = 0; o < g.Cout; o++)
      for (let oy = 0; oy < g.oh; oy++)
        for (let ox = 0; ox < g.ow; ox++) {
          const yi = ((n * g.Cout + o) * g.oh + oy) * g.ow + ox;
          for (let c = 0; c < g.Cin; c++)
            for (let ki = 0; ki < g.kh; ki++)
              for (let kj = 0; kj < g.kw; kj++) {
                const iy = oy * g.sh - g.ph + ki, ix = ox * g.sw - g.pw + kj;
                if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) continue;
                const wi = ((o * g.Cin + c) * g.kh + ki) * g.kw + kj, xi = ((n * g.Cin + c) * g.H + iy) * g.W + ix;
                sums.y[yi] += w[wi] * x[xi];
                sums.yMag[yi] += Math.abs(w[wi] * x[xi]);
                sums.dw[wi] += dy[yi] * x[xi];
                sums.dwMag[wi] += Math.abs(dy[yi] * x[xi]);
                sums.dx[xi] += dy[yi] * w[wi];
                sums.dxMag[xi] += Math.abs(dy[yi] * w[wi]);
              }
        }
  const worst = (got: Float32Array, ref: Float64Array, mag: Float64Array): number =>
    got.reduce((m, v, i) => (mag[i] === 0 ? m : Math.max(m, Math.abs(v - ref[i]) / mag[i])), 0);
  return { forward: worst(y, sums.y, sums.yMag), data: worst(dx, sums.dx, sums.dxMag), weight: worst(dw, sums.dw, sums.dwMag) };
}

test('native Winograd F(4x4, 3x3) and F(4x4, 2x2): forward, data and weight gradients = float64 direct sums', { skip }, () => {
  const conv = (N: number, Cin: number, H: number, W: number, Cout: number, k: number, s: number, p: number): ConvGeometry => ({
    N, Cin, H, W, Cout, kh: k, kw: k, sh: s, sw: s, ph: p, pw: p, dh: 1, dw: 1, groups: 1,
    oh: Math.floor((H + 2 * p - k) / s) + 1, ow: Math.floor((W + 2 * p - k) / s) + 1,
  });
  // F(4x4, 3x3): 20x16 outputs, padding 1: 5 x 4 tiles of 4x4 an image, blocks of tile
  // rows that start inside images. F(4x4, 2x2), the 2x2 kernel over a k4 s2 convolution's
  // phase images: 7x7 outputs (tiles past the edge; the data gradient's 8x8 phase images
  // are whole tiles), 16 phase channels, and 5x4 outputs of 18 phase channels, uneven.
  const cases: [string, ConvGeometry][] = [
    ['F(4x4, 3x3)', conv(8, 24, 20, 16, 20, 3, 1, 1)],
    ['F(4x4, 2x2)', conv(5, 4, 14, 14, 16, 4, 2, 1)],
    ['F(4x4, 2x2)', { ...conv(3, 6, 9, 8, 17, 4, 2, 1), ph: 0, oh: 3 }],
  ];
  assert.ok(winograd4(cases[0][1]));
  for (const [name, g] of cases) {
    const e = convErrorsVsFloat64(g, 17);
    // A direct float32 sum stays near 1e-7 of sum |terms| here; these transforms near 1e-6.
    for (const [what, v] of Object.entries(e)) assert.ok(v < 1e-5, `${name} ${JSON.stringify(g)} ${what}: worst error relative to sum |terms| ${v}`);
  }
});

test('native stride-2 gradients over phase images in two passes = the sum and concatenation of one-image passes', { skip }, () => {
  // 4 * 256 * 47 * 47 phase floats an image: one image per pass.
  const g: ConvGeometry = { N: 2, Cin: 256, H: 92, W: 92, Cout: 16, kh: 4, kw: 4, sh: 2, sw: 2, ph: 1, pw: 1, dh: 1, dw: 1, groups: 1, oh: 46, ow: 46 };
  const one: ConvGeometry = { ...g, N: 1 };
  const rng = new Rng(23);
  const nx = g.Cin * g.H * g.W, ny = g.Cout * g.oh * g.ow, nw = g.Cout * g.Cin * 16;
  const x = rand(rng, 2 * nx), w = rand(rng, nw), y = rand(rng, 2 * ny);
  const dw = new Float32Array(nw), dw0 = new Float32Array(nw), dw1 = new Float32Array(nw);
  backendNative!.conv2dBackwardWeight(x, y, g, dw);
  backendNative!.conv2dBackwardWeight(x.subarray(0, nx), y.subarray(0, ny), one, dw0);
  backendNative!.conv2dBackwardWeight(x.subarray(nx), y.subarray(ny), one, dw1);
  close(dw, dw0.map((v, i) => v + dw1[i]), 1e-5, 1e-3, 'weight gradient over two passes');
  const dx = new Float32Array(2 * nx), dx0 = new Float32Array(nx), dx1 = new Float32Array(nx);
  backendNative!.conv2dBackwardData(y, w, g, dx);
  backendNative!.conv2dBackwardData(y.subarray(0, ny), w, one, dx0);
  backendNative!.conv2dBackwardData(y.subarray(ny), w, one, dx1);
  close(dx.subarray(0, nx), dx0, 0, 0, 'data gradient, first pass');
  close(dx.subarray(nx), dx1, 0, 0, 'data gradient, second pass');
});

test('native weight gradients are the same bits on every call: partial sums split across threads in a fixed way', { skip }, () => {
  // Winograd, few im2col rows (image by image), and a weight gradient with one output (32 -> 1).
  const cases: ConvGeometry[] = [
    { N: 16, Cin: 32, H: 14, W: 14, Cout: 32, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, dh: 1, dw: 1, groups: 1, oh: 14, ow: 14 },
    { N: 32, Cin: 1, H: 28, W: 28, Cout: 32, kh: 4, kw: 4, sh: 2, sw: 2, ph: 1, pw: 1, dh: 1, dw: 1, groups: 1, oh: 14, ow: 14 },
    { N: 16, Cin: 32, H: 28, W: 28, Cout: 1, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, dh: 1, dw: 1, groups: 1, oh: 28, ow: 28 },
  ];
  const rng = new Rng(31);
  const prev = N().threads();
  try {
    N().setThreads(2);
    for (const g of cases) {
      const x = rand(rng, g.N * g.Cin * g.H * g.W), y = rand(rng, g.N * g.Cout * g.oh * g.ow);
      const first = new Float32Array(g.Cout * g.Cin * g.kh * g.kw);
      backendNative!.conv2dBackwardWeight(x, y, g, first);
      for (let rep = 0; rep < 12; rep++) {
        const again = new Float32Array(first.length);
        backendNative!.conv2dBackwardWeight(x, y, g, again);
        assert.deepEqual(again, first, `conv2dBackwardWeight ${JSON.stringify(g)}, call ${rep + 2}`);
      }
    }
  } finally {
    N().setThreads(prev);
  }
});

test('native conv2d kernels reject a meta of the wrong length or an impossible geometry', { skip }, () => {
  const g = CONV_CASES[1];
  const x = new Float32Array(g.N * g.Cin * g.H * g.W), w = new Float32Array(g.Cout * g.Cin * 9), y = new Float32Array(g.N * g.Cout * g.oh * g.ow);
  assert.throws(() => N().conv2dForward(x, w, null, new Int32Array(15), y), /16 entries/);
  assert.throws(() => N().conv2dForward(x.subarray(1), w, null, convMeta(g), y), /out of bounds/);
  assert.throws(() => N().conv2dForward(x, w, null, convMeta({ ...g, oh: g.oh + 5 }), y), /invalid conv geometry|out of bounds/);
});

test('native adam = js adam (Adam and AdamW, weight decay, several steps)', { skip }, () => {
  const rng = new Rng(7);
  const n = 1003;
  for (const [wd, decoupled] of [[0, false], [0.01, false], [0.05, true]] as const) {
    const p = rand(rng, n), m = new Float32Array(n), v = new Float32Array(n);
    const pn = p.slice(), mn = m.slice(), vn = v.slice();
    for (let step = 1; step <= 5; step++) {
      const g = rand(rng, n);
      g[7] = 0;
      N().adam(pn, g, mn, vn, n, 1e-3, 0.9, 0.999, 1e-8, wd, decoupled, step);
      jsBackend.adam(p, g, m, v, n, 1e-3, 0.9, 0.999, 1e-8, wd, decoupled, step);
    }
    // Native works in float (js in double, rounded to float): an ulp or so apart, more
    // relative to a moment that nearly cancels.
    close(pn, p, 1e-6, 1e-9, `adam param wd=${wd} decoupled=${decoupled}`);
    close(mn, m, 1e-6, 1e-7, 'adam m');
    close(vn, v, 1e-6, 0, 'adam v');
  }
});

test('native backend object: name, js fallbacks for small sizes, kernels the addon lacks', { skip }, () => {
  const b = backendNative as Backend;
  assert.equal(b.name, 'native');
  // Small GEMM (js path) and large GEMM (native path) agree with js.
  const rng = new Rng(8);
  for (const [M, Nn, K] of [[2, 3, 4], [40, 50, 60]]) {
    const A = rand(rng, M * K), B = rand(rng, K * Nn);
    const cn = new Float32Array(M * Nn), cj = new Float32Array(M * Nn);
    b.gemm(false, false, M, Nn, K, A, 0, K, B, 0, Nn, 0, cn, 0, Nn);
    jsBackend.gemm(false, false, M, Nn, K, A, 0, K, B, 0, Nn, 0, cj, 0, Nn);
    close(cn, cj, 1e-5, 1e-5, `backend gemm ${M}x${Nn}x${K}`);
  }
  assert.equal(b.cumsum, jsBackend.cumsum);
  assert.notEqual(b.copy, jsBackend.copy);
  assert.equal(b.gather, jsBackend.gather);
  const x = rand(rng, 1000);
  const on = new Float32Array(1000), oj = new Float32Array(1000);
  b.binary('add', x, 0, [0, 1], x, 0, [1, 0], on, [1, 1000].length === 2 ? [1, 1000] : []);
  jsBackend.binary('add', x, 0, [0, 1], x, 0, [1, 0], oj, [1, 1000]);
  close(on, oj, 0, 0, 'backend binary');
});
