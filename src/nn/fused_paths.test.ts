/**
 * nn's step functions and attention route through the fused engine primitives; here
 * each is checked against its unfused composite on random inputs, on every backend:
 * values and gradients of every input (weights included).
 */
import test from 'node:test';
import { Tensor, grad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { randn } from '../engine/ops/random.js';
import { tensor } from '../engine/creation.js';
import { withBackend } from '../engine/backends/index.js';
import { lstmCellStep, lstmCellStepComposite, gruCellStep, gruCellStepComposite } from './rnn.js';
import { scaledDotProductAttention, scaledDotProductAttentionComposite } from './attention.js';
import { assertClose, testBackends } from '../../test/helpers.js';

function weighted(ys: Tensor[]): Tensor {
  let l: Tensor | null = null;
  ys.forEach((y, k) => {
    const w = tensor(Float32Array.from({ length: y.size }, (_, i) => Math.cos(i * 0.7 + k) + 0.3), y.shape);
    const t = y.mul(w).sum();
    l = l ? l.add(t) : t;
  });
  return l!;
}

function agree(name: string, f: (...xs: Tensor[]) => Tensor[], g: (...xs: Tensor[]) => Tensor[], inputs: Tensor[]): void {
  const a = inputs.map((x) => x.detach().clone().requiresGrad_());
  const b = inputs.map((x) => x.detach().clone().requiresGrad_());
  const ya = f(...a), yb = g(...b);
  ya.forEach((y, i) => assertClose(y, yb[i], 2e-5, 2e-6, `${name}: output ${i}`));
  const ga = grad(weighted(ya), a), gb = grad(weighted(yb), b);
  ga.forEach((x, i) => assertClose(x!, gb[i]!, 2e-4, 2e-5, `${name}: grad ${i}`));
}

for (const be of testBackends()) {
  test(`lstmCellStep and gruCellStep equal their composites on ${be}`, () => {
    withBackend(be, () => {
      const rng = new Rng(7);
      for (const [B, H, I] of [[2, 3, 4], [8, 40, 16]]) {
        agree(`lstm ${B}x${H}`, (gi, h, c, w, bias) => lstmCellStep(gi, h, c, w, bias), (gi, h, c, w, bias) => lstmCellStepComposite(gi, h, c, w, bias), [
          randn([B, 4 * H], rng), randn([B, H], rng), randn([B, H], rng), randn([4 * H, H], rng, 0, 1 / Math.sqrt(I)), randn([4 * H], rng),
        ]);
        agree(`gru ${B}x${H}`, (gi, h, w, bias) => [gruCellStep(gi, h, w, bias)], (gi, h, w, bias) => [gruCellStepComposite(gi, h, w, bias)], [
          randn([B, 3 * H], rng), randn([B, H], rng), randn([3 * H, H], rng, 0, 1 / Math.sqrt(I)), randn([3 * H], rng),
        ]);
      }
    });
  });

  test(`scaledDotProductAttention equals its composite on ${be}`, () => {
    withBackend(be, () => {
      const rng = new Rng(8);
      const boolMask = tensor(Int32Array.from({ length: 4 * 6 }, (_, i) => (i % 5 === 3 ? 1 : 0)), [4, 6]);
      for (const opts of [{}, { causal: true }, { attnMask: boolMask }, { attnMask: randn([2, 1, 4, 6], rng), causal: true }]) {
        agree(`sdpa ${JSON.stringify(Object.keys(opts))}`, (q, k, v) => scaledDotProductAttention(q, k, v, opts),
          (q, k, v) => scaledDotProductAttentionComposite(q, k, v, opts), [randn([2, 3, 4, 8], rng), randn([2, 3, 6, 8], rng), randn([2, 3, 6, 8], rng)]);
      }
    });
  });
}
