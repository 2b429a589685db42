/**
 * The wasm backend against the js backend (the definition): GEMM with every transpose,
 * odd sizes, offsets, leading dims and beta; unary/binary with NaN/Inf and strided
 * broadcasting; reduce, softmax, im2col/col2im, the conv2d kernels, Adam. Thresholds are set to 0 so that
 * every size goes through the module (and its arena copies). Skips when
 * native/genlab.wasm is missing.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../rng.js';
import type { Backend, BinaryOp, ConvGeometry, UnaryOp } from './backend.js';
import { jsBackend } from './js.js';
import { UNARY_CODES, BINARY_CODES } from './native.js';
import { WASM_THRESHOLDS, loadWasm } from './wasm.js';

let wasm: Backend | null = null;
let why = '';
try {
  wasm = loadWasm();
} catch (e) {
  why = e instanceof Error ? e.message : String(e);
}
const skip = wasm ? false : `wasm backend unavailable: ${why}`;
const W = (): Backend => wasm as Backend;

function rand(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.uniform() * 2 - 1) * scale;
  return a;
}

function close(a: Float32Array, b: Float32Array, rtol: number, atol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    if (Number.isNaN(y) || Number.isNaN(x) || !Number.isFinite(y) || !Number.isFinite(x)) {
      if (!(Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)))) assert.fail(`${what}: [${i}] wasm ${x}, js ${y}`);
      continue;
    }
    if (Math.abs(x - y) > atol + rtol * Math.abs(y)) assert.fail(`${what}: [${i}] wasm ${x}, js ${y}`);
  }
}

/** Run fn with every kernel routed to wasm regardless of size. */
function allSizes(fn: () => void): void {
  const saved = { ...WASM_THRESHOLDS };
  WASM_THRESHOLDS.gemm = 0;
  WASM_THRESHOLDS.elementwise = 0;
  try {
    fn();
  } finally {
    Object.assign(WASM_THRESHOLDS, saved);
  }
}

test('wasm gemm = js gemm: transposes, odd sizes, offsets, leading dims, beta', { skip }, () => allSizes(() => {
  const rng = new Rng(11);
  const sizes: [number, number, number][] = [[1, 1, 1], [7, 63, 65], [65, 7, 63], [257, 9, 7], [5, 1100, 20], [150, 40, 500], [1, 300, 37], [4, 77, 129], [300, 2, 70], [70, 90, 1], [33, 200, 3]];
  for (const [M, N, K] of sizes) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        const lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 1, ldc = N + 2;
        const aOff = 5, bOff = 2, cOff = 3;
        const A = rand(rng, aOff + (tA ? K : M) * lda), B = rand(rng, bOff + (tB ? N : K) * ldb);
        const absC = new Float32Array(cOff + M * ldc);
        jsBackend.gemm(tA, tB, M, N, K, A.map(Math.abs), aOff, lda, B.map(Math.abs), bOff, ldb, 0, absC, cOff, ldc);
        for (const beta of [0, 1]) {
          const C0 = rand(rng, cOff + M * ldc);
          const Cw = C0.slice(), Cj = C0.slice();
          W().gemm(tA, tB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, Cw, cOff, ldc);
          jsBackend.gemm(tA, tB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, Cj, cOff, ldc);
          for (let i = 0; i < Cw.length; i++) {
            const tol = 1e-6 * (absC[i] + Math.abs(Cj[i]) + 1);
            if (!(Math.abs(Cw[i] - Cj[i]) <= tol)) assert.fail(`gemm ${M}x${N}x${K} tA=${tA} tB=${tB} beta=${beta}: [${i}] wasm ${Cw[i]}, js ${Cj[i]}`);
          }
        }
      }
    }
  }
}));

test('wasm gemm epilogue (bias, ReLU) = js', { skip }, () => allSizes(() => {
  const rng = new Rng(13);
  const [M, N, K, ldc, cOff] = [37, 70, 45, 73, 2];
  const A = rand(rng, M * K), B = rand(rng, K * N), bias = rand(rng, N + 1);
  A[K + 1] = NaN;
  for (const relu of [false, true]) {
    const C0 = rand(rng, cOff + M * ldc);
    const Cw = C0.slice(), Cj = C0.slice();
    W().gemm(false, false, M, N, K, A, 0, K, B, 0, N, 0, Cw, cOff, ldc, { bias, biasOff: 1, relu });
    jsBackend.gemm(false, false, M, N, K, A, 0, K, B, 0, N, 0, Cj, cOff, ldc, { bias, biasOff: 1, relu });
    close(Cw, Cj, 1e-5, 1e-5, `gemm epilogue relu=${relu}`);
    assert.ok(Number.isNaN(Cw[cOff + ldc]));
  }
}));

test('wasm unary = js unary for every op (sin/cos through js), NaN/Inf/extremes', { skip }, () => allSizes(() => {
  const rng = new Rng(12);
  const n = 1500;
  const x = new Float32Array(2 + n);
  x.set([NaN, Infinity, -Infinity, 0, -0, 1e-40, 1e-7, -1e-7, 0.5, -0.5, 19.9, 20, 20.1, 88, 89, -104, 200, -200], 2);
  for (let i = 20; i < x.length; i++) x[i] = rng.normal() * (i % 3 === 0 ? 10 : 2);
  const exact = new Set<UnaryOp>(['neg', 'abs', 'sqrt', 'sin', 'cos', 'relu', 'leakyRelu', 'clamp', 'sign', 'square', 'reciprocal', 'step']);
  for (const op of Object.keys(UNARY_CODES) as UnaryOp[]) {
    const [p0, p1] = op === 'clamp' ? [-0.5, 0.75] : op === 'leakyRelu' ? [0.01, 0] : op === 'elu' ? [1.5, 0] : [0, 0];
    const ow = new Float32Array(n), oj = new Float32Array(n);
    W().unary(op, x, 2, ow, n, p0, p1);
    jsBackend.unary(op, x, 2, oj, n, p0, p1);
    close(ow, oj, exact.has(op) ? 0 : op === 'rsqrt' ? 1.2e-7 : 4e-6, exact.has(op) ? 0 : 1e-12, `unary ${op}`);
  }
}));

test('wasm binary = js binary: broadcast, transposed, negative strides, NaN/Inf', { skip }, () => allSizes(() => {
  const rng = new Rng(13);
  const base = rand(rng, 3000, 3);
  base.set([NaN, Infinity, -Infinity, 0, -0, 2, 0.5, -3], 0);
  const cases: { shape: number[]; as: number[]; bs: number[]; aOff: number; bOff: number }[] = [
    { shape: [600], as: [1], bs: [1], aOff: 0, bOff: 7 },
    { shape: [3, 4, 50], as: [200, 50, 1], bs: [0, 50, 1], aOff: 1, bOff: 0 },
    { shape: [37, 41], as: [0, 1], bs: [1, 0], aOff: 3, bOff: 5 },
    { shape: [30, 40], as: [1, 30], bs: [40, 1], aOff: 0, bOff: 0 },
    { shape: [20, 30], as: [30, -1], bs: [-30, 1], aOff: 29, bOff: 600 },
    { shape: [], as: [], bs: [], aOff: 2, bOff: 3 },
  ];
  for (const op of Object.keys(BINARY_CODES) as BinaryOp[]) {
    for (const c of cases) {
      const n = c.shape.reduce((p, v) => p * v, 1);
      const ow = new Float32Array(n), oj = new Float32Array(n);
      W().binary(op, base, c.aOff, c.as, base, c.bOff, c.bs, ow, c.shape);
      jsBackend.binary(op, base, c.aOff, c.as, base, c.bOff, c.bs, oj, c.shape);
      close(ow, oj, 0, 0, `binary ${op} ${JSON.stringify(c.shape)}`);
    }
  }
}));

test('wasm reduce, softmax, im2col/col2im and adam = js', { skip }, () => allSizes(() => {
  const rng = new Rng(14);
  for (const [outer, len, inner] of [[3, 17, 1], [1, 1000, 1], [2, 5, 7], [1, 13, 300], [4, 0, 3]] as [number, number, number][]) {
    const x = rand(rng, outer * len * inner, 4);
    if (x.length > 40) x[5] = NaN;
    for (const op of ['sum', 'max', 'min'] as const) {
      const ow = new Float32Array(outer * inner), oj = new Float32Array(outer * inner);
      W().reduce(op, x, outer, len, inner, ow);
      jsBackend.reduce(op, x, outer, len, inner, oj);
      close(ow, oj, op === 'sum' ? 1e-5 : 0, op === 'sum' ? 1e-4 : 0, `reduce ${op} [${outer},${len},${inner}]`);
    }
    if (len === 0) continue;
    for (const log of [false, true]) {
      const ow = new Float32Array(x.length), oj = new Float32Array(x.length);
      W().softmax(x, outer, len, inner, log, ow);
      jsBackend.softmax(x, outer, len, inner, log, oj);
      close(ow, oj, 1e-5, 1e-7, `softmax log=${log} [${outer},${len},${inner}]`);
    }
  }
  const c = { C: 3, H: 10, W: 7, kh: 3, kw: 2, sh: 2, sw: 1, ph: 1, pw: 1, dh: 1, dw: 2 };
  const oh = Math.floor((c.H + 2 * c.ph - c.dh * (c.kh - 1) - 1) / c.sh) + 1;
  const ow = Math.floor((c.W + 2 * c.pw - c.dw * (c.kw - 1) - 1) / c.sw) + 1;
  const x = rand(rng, 3 + c.C * c.H * c.W);
  const rows = c.C * c.kh * c.kw;
  const cw = new Float32Array(rows * oh * ow), cj = new Float32Array(rows * oh * ow);
  W().im2col(x, 3, c.C, c.H, c.W, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, oh, ow, cw);
  jsBackend.im2col(x, 3, c.C, c.H, c.W, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, oh, ow, cj);
  close(cw, cj, 0, 0, 'im2col');
  const xw = x.slice(), xj = x.slice();
  W().col2im(cw, c.C, c.H, c.W, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, oh, ow, xw, 3);
  jsBackend.col2im(cj, c.C, c.H, c.W, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, oh, ow, xj, 3);
  close(xw, xj, 0, 0, 'col2im');
  const n = 777;
  const p = rand(rng, n), m = new Float32Array(n), v = new Float32Array(n);
  const pw = p.slice(), mw = m.slice(), vw = v.slice();
  for (let step = 1; step <= 3; step++) {
    const g = rand(rng, n);
    W().adam(pw, g, mw, vw, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, step === 2, step);
    jsBackend.adam(p, g, m, v, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, step === 2, step);
  }
  close(pw, p, 1e-6, 1e-9, 'adam param');
  close(vw, v, 1e-6, 0, 'adam v');
}));

test('wasm conv2d kernels (im2col + GEMM over wasm kernels) = js: strides, padding, dilation, groups, batch 1 and > 1', { skip }, () => allSizes(() => {
  const rng = new Rng(15);
  const cases: ConvGeometry[] = [
    { N: 1, Cin: 3, H: 9, W: 8, Cout: 4, oh: 3, ow: 3, kh: 3, kw: 3, sh: 3, sw: 3, ph: 1, pw: 1, dh: 1, dw: 1, groups: 1 },
    { N: 3, Cin: 6, H: 7, W: 6, Cout: 9, oh: 4, ow: 4, kh: 3, kw: 2, sh: 2, sw: 1, ph: 1, pw: 0, dh: 1, dw: 2, groups: 3 },
    { N: 2, Cin: 4, H: 5, W: 5, Cout: 3, oh: 5, ow: 5, kh: 1, kw: 1, sh: 1, sw: 1, ph: 0, pw: 0, dh: 1, dw: 1, groups: 1 },
  ];
  for (const g of cases) {
    const nx = g.N * g.Cin * g.H * g.W, ny = g.N * g.Cout * g.oh * g.ow, nw = g.Cout * (g.Cin / g.groups) * g.kh * g.kw;
    const x = rand(rng, nx), w = rand(rng, nw), y = rand(rng, ny), bias = rand(rng, g.Cout);
    const yw = new Float32Array(ny), yj = new Float32Array(ny);
    W().conv2dForward(x, w, bias, g, yw);
    jsBackend.conv2dForward(x, w, bias, g, yj);
    close(yw, yj, 1e-5, 1e-5, `conv2dForward ${JSON.stringify(g)}`);
    const xw = x.slice(), xj = x.slice();
    W().conv2dBackwardData(y, w, g, xw);
    jsBackend.conv2dBackwardData(y, w, g, xj);
    close(xw, xj, 1e-5, 1e-5, `conv2dBackwardData ${JSON.stringify(g)}`);
    const xo = new Float32Array(nx).fill(NaN), xz = new Float32Array(nx);
    W().conv2dBackwardData(y, w, g, xo, true);
    jsBackend.conv2dBackwardData(y, w, g, xz);
    close(xo, xz, 1e-5, 1e-5, `conv2dBackwardData overwriting ${JSON.stringify(g)}`);
    const ww = new Float32Array(nw), wj = new Float32Array(nw);
    W().conv2dBackwardWeight(x, y, g, ww);
    jsBackend.conv2dBackwardWeight(x, y, g, wj);
    close(ww, wj, 1e-5, 1e-5, `conv2dBackwardWeight ${JSON.stringify(g)}`);
  }
}));

test('wasm memory grows for large inputs and results stay correct', { skip }, () => {
  const rng = new Rng(15);
  const n = 3_000_000; // 12 MB per array: beyond the initial memory
  const x = rand(rng, n);
  const ow = new Float32Array(n), oj = new Float32Array(n);
  W().unary('relu', x, 0, ow, n, 0, 0);
  jsBackend.unary('relu', x, 0, oj, n, 0, 0);
  close(ow, oj, 0, 0, 'relu 3M');
});
