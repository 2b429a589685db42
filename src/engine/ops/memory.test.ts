/**
 * The external-memory primitives (ntmAddressing, ntmHeadAddressing, memoryRead, memoryWrite) against their
 * composites on every backend present: values, first gradients, second gradients
 * through createGraph, several batch / memory sizes and shift widths, extreme beta and
 * gamma, and a short unrolled NTM loop where one memory feeds several ops.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, grad } from '../tensor.js';
import { Rng } from '../rng.js';
import { randn } from './random.js';
import { tensor } from '../creation.js';
import { add, mul } from './elementwise.js';
import { sum } from './reduce.js';
import { memoryRead, memoryReadOps, memoryWrite, memoryWriteOps, ntmAddressing, ntmAddressingOps, ntmHeadAddressing, ntmHeadAddressingOps } from './memory.js';
import { withBackend } from '../backends/index.js';
import { WASM_THRESHOLDS } from '../backends/wasm.js';
import { assertClose, testBackends } from '../../../test/helpers.js';

// Even the smallest cases reach the wasm kernels.
WASM_THRESHOLDS.elementwise = 0;

function weights(shape: readonly number[], seed: number): Tensor {
  let n = 1;
  for (const d of shape) n *= d;
  return tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + seed) + 0.2), shape);
}

function loss(outs: Tensor[]): Tensor {
  let l: Tensor | null = null;
  outs.forEach((o, i) => {
    const t = sum(mul(o, weights(o.shape, i)));
    l = l ? add(l, t) : t;
  });
  return l!;
}

/** Fused and composite agree on values, gradients and second-order gradients. */
function compare(name: string, fused: (...xs: Tensor[]) => Tensor[], composite: (...xs: Tensor[]) => Tensor[], inputs: Tensor[], rtol = 1e-4, atol = 1e-6, second = true): void {
  const lead = (): Tensor[] => inputs.map((x) => x.detach().clone().requiresGrad_());
  const xf = lead(), xc = lead();
  const yf = fused(...xf), yc = composite(...xc);
  yf.forEach((y, i) => assertClose(y, yc[i], rtol, atol, `${name}: output ${i}`));
  const zero = (x: Tensor): Tensor => tensor(new Float32Array(x.size), x.shape);
  const gf = grad(loss(yf), xf, { allowUnused: true });
  const gc = grad(loss(yc), xc, { allowUnused: true });
  gf.forEach((g, i) => assertClose(g ?? zero(xf[i]), gc[i] ?? zero(xc[i]), rtol * 10, atol * 10, `${name}: grad of input ${i}`));
  if (!second) return;
  const sq = (f: (...xs: Tensor[]) => Tensor[], xs: Tensor[]): (Tensor | null)[] => {
    const g1 = grad(loss(f(...xs)), xs, { createGraph: true, allowUnused: true });
    let s: Tensor | null = null;
    for (const g of g1) if (g) s = s ? add(s, sum(mul(g, g))) : sum(mul(g, g));
    return grad(s!, xs, { allowUnused: true });
  };
  const sf = sq(fused, lead()), sc = sq(composite, lead());
  sf.forEach((g, i) => assertClose(g ?? zero(xf[i]), sc[i] ?? zero(xc[i]), 1e-3, 1e-5, `${name}: second-order grad of input ${i}`));
}

/** Valid addressing inputs: beta > 0, g in (0, 1), wPrev and shift rows on the simplex, gamma >= 1. */
function addressingInputs(B: number, N: number, M: number, S: number, rng: Rng, betaMax = 5, gammaMax = 4): Tensor[] {
  const unif = (n: number, lo: number, hi: number): Float32Array => Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform());
  const simplex = (rows: number, n: number): Tensor => randn([rows, n], rng, 0, 2).softmax(1).detach();
  return [
    randn([B, N, M], rng), randn([B, M], rng), tensor(unif(B, 0.01, betaMax), [B, 1]), tensor(unif(B, 0.02, 0.98), [B, 1]),
    simplex(B, N), simplex(B, S), tensor(unif(B, 1, gammaMax), [B, 1]),
  ];
}

const addrFused = (...x: Tensor[]): Tensor[] => [ntmAddressing(x[0], x[1], x[2], x[3], x[4], x[5], x[6])];
const addrComposite = (...x: Tensor[]): Tensor[] => [ntmAddressingOps(x[0], x[1], x[2], x[3], x[4], x[5], x[6])];

for (const be of testBackends()) {
  test(`ntmAddressing matches the composite on ${be}`, () => {
    withBackend(be, () => {
      const rng = new Rng(3);
      for (const [B, N, M, S] of [[1, 4, 3, 1], [2, 8, 5, 3], [3, 16, 4, 5], [4, 5, 6, 5], [2, 3, 2, 7], [5, 32, 20, 3]]) {
        compare(`addressing B${B} N${N} M${M} S${S}`, addrFused, addrComposite, addressingInputs(B, N, M, S, rng), 1e-4, 1e-6, B * N * M < 1000);
      }
      // Extreme sharpness: large beta (near one-hot content weights) and gamma.
      compare('addressing, beta 60 gamma 20', addrFused, addrComposite, addressingInputs(3, 8, 4, 3, rng, 60, 20), 2e-3, 1e-5, false);
      // A memory at its constant initial value (all rows equal, norms dominated by the 1e-8).
      const xs = addressingInputs(2, 6, 3, 3, rng);
      xs[0] = tensor(new Float32Array(2 * 6 * 3).fill(1e-6), [2, 6, 3]);
      compare('addressing, flat memory', addrFused, addrComposite, xs, 1e-4, 1e-6);
    });
  });

  test(`ntmHeadAddressing (raw head outputs) matches the composite on ${be}`, () => {
    withBackend(be, () => {
      const rng = new Rng(7);
      for (const [B, N, M, S, scale] of [[1, 4, 3, 1, 1], [2, 8, 5, 3, 2], [3, 16, 4, 5, 3], [4, 32, 20, 3, 1]]) {
        const head = randn([B, M + 3 + S], rng, 0, scale);
        const mem = randn([B, N, M], rng), wPrev = randn([B, N], rng).softmax(1).detach();
        compare(`head B${B} N${N} M${M} S${S}`, (m, h, w) => [ntmHeadAddressing(m, h, w)], (m, h, w) => [ntmHeadAddressingOps(m, h, w)],
          [mem, head, wPrev], 1e-4, 1e-6, B * N * M < 1000);
      }
      // Raw outputs past softplus's threshold (20) and strongly negative: sharp beta, gamma, g and shift.
      const [B, N, M, S] = [3, 8, 4, 3];
      const head = randn([B, M + 3 + S], rng);
      const hv = head.f32();
      hv[M] = 25; hv[M + 1] = -12; hv[M + 2] = 9; hv[M + 2 + S] = 21; // row 0
      hv[M + 3 + S + M] = -15; hv[2 * (M + 3 + S) - 1] = 8; // row 1
      compare('head, saturated', (m, h, w) => [ntmHeadAddressing(m, h, w)], (m, h, w) => [ntmHeadAddressingOps(m, h, w)],
        [randn([B, N, M], rng), head, randn([B, N], rng).softmax(1).detach()], 2e-3, 1e-5, false);
    });
  });

  test(`memoryRead and memoryWrite match the composites on ${be}`, () => {
    withBackend(be, () => {
      const rng = new Rng(4);
      for (const [B, N, M] of [[1, 1, 1], [2, 7, 3], [3, 16, 20]]) {
        const mem = randn([B, N, M], rng), w = randn([B, N], rng).softmax(1).detach();
        compare(`read B${B} N${N} M${M}`, (m, ww) => [memoryRead(m, ww)], (m, ww) => [memoryReadOps(m, ww)], [mem, w], 1e-5, 1e-6);
        const e = randn([B, M], rng).sigmoid().detach(), a = randn([B, M], rng).tanh().detach();
        compare(`write B${B} N${N} M${M}`, (m, ww, ee, aa) => [memoryWrite(m, ww, ee, aa)], (m, ww, ee, aa) => [memoryWriteOps(m, ww, ee, aa)],
          [mem, w, e, a], 1e-5, 1e-6);
      }
    });
  });

  test(`an unrolled NTM loop (one memory feeding address, read and write) matches on ${be}`, () => {
    withBackend(be, () => {
      const rng = new Rng(5);
      const [B, N, M, S, T] = [3, 8, 5, 3, 4];
      const steps: Tensor[] = [];
      for (let t = 0; t < T; t++) steps.push(...addressingInputs(B, N, M, S, rng).slice(1, 4), ...addressingInputs(B, N, M, S, rng).slice(5, 7));
      const erase = randn([B, M], rng).sigmoid().detach(), addv = randn([B, M], rng).tanh().detach();
      const run = (fused: boolean) => (...xs: Tensor[]): Tensor[] => {
        let mem = xs[0];
        let w = xs[1];
        const outs: Tensor[] = [];
        for (let t = 0; t < T; t++) {
          const [key, beta, g, shift, gamma] = xs.slice(4 + 5 * t, 9 + 5 * t);
          w = fused ? ntmAddressing(mem, key, beta, g, w, shift, gamma) : ntmAddressingOps(mem, key, beta, g, w, shift, gamma);
          outs.push(fused ? memoryRead(mem, w) : memoryReadOps(mem, w));
          mem = fused ? memoryWrite(mem, w, xs[2], xs[3]) : memoryWriteOps(mem, w, xs[2], xs[3]);
        }
        outs.push(mem);
        return outs;
      };
      const mem0 = randn([B, N, M], rng, 0, 0.5);
      const w0 = randn([B, N], rng).softmax(1).detach();
      compare('ntm loop', run(true), run(false), [mem0, w0, erase, addv, ...steps], 1e-4, 1e-6, false);
    });
  });
}

test('ntmAddressing checks its shapes', () => {
  const rng = new Rng(6);
  const xs = addressingInputs(2, 8, 4, 3, rng);
  assert.throws(() => ntmAddressing(xs[0], xs[1].reshape([8]).slice(0, 0, 6), xs[2], xs[3], xs[4], xs[5], xs[6]), /key/);
  assert.throws(() => ntmAddressing(xs[0], xs[1], xs[2], xs[3], xs[4], randn([2, 2], rng), xs[6]), /shift/);
  assert.throws(() => memoryWrite(xs[0], xs[4], xs[1], randn([2, 3], rng)), /add/);
  assert.throws(() => ntmHeadAddressing(xs[0], randn([2, 4 + 3 + 2], rng), xs[4]), /head/);
});
