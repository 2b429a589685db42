/**
 * Losses against PyTorch (scripts/fixtures/nn_layers.py, one line per case: value and
 * gradients of sum(loss * w)), plus finite-difference checks and edge cases.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, Rng, randn, rand } from '../index.js';
import { mseLoss, l1Loss, bceLoss, bceWithLogits, crossEntropy, nllLoss, gaussianKL, gaussianNLL } from './losses.js';
import { assertClose, checkGradFD, fixture, fromFixture } from '../../test/helpers.js';
import type { FixtureTensor } from '../../test/helpers.js';

interface LossCase {
  name: string;
  fn: string;
  args: FixtureTensor[];
  opts: Record<string, unknown>;
  output: FixtureTensor;
  w: FixtureTensor | null;
  grads: (FixtureTensor | null)[];
}

type AnyLoss = (...a: unknown[]) => Tensor;
const fns: Record<string, AnyLoss> = {
  mseLoss: (a, b, o) => mseLoss(a as Tensor, b as Tensor, o as object),
  l1Loss: (a, b, o) => l1Loss(a as Tensor, b as Tensor, o as object),
  bceLoss: (a, b, o) => bceLoss(a as Tensor, b as Tensor, o as object),
  bceWithLogits: (a, b, o) => bceWithLogits(a as Tensor, b as Tensor, o as object),
  crossEntropy: (a, b, o) => crossEntropy(a as Tensor, b as Tensor, o as object),
  nllLoss: (a, b, o) => nllLoss(a as Tensor, b as Tensor, o as object),
  gaussianKL: (a, b, o) => gaussianKL(a as Tensor, b as Tensor, o as object),
  gaussianNLL: (a, b, c, o) => gaussianNLL(a as Tensor, b as Tensor, c as Tensor, o as object),
};

function isFixtureTensor(v: unknown): v is FixtureTensor {
  return typeof v === 'object' && v !== null && 'shape' in v && 'data' in v;
}

const cases = fixture<{ losses: LossCase[] }>('nn_layers').losses;

for (const c of cases) {
  test(`loss ${c.name} matches torch`, () => {
    const args = c.args.map((f, i) => {
      const t = fromFixture(f);
      return c.grads[i] ? t.requiresGrad_() : t;
    });
    const opts: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(c.opts)) opts[k] = isFixtureTensor(v) ? fromFixture(v) : v;
    const y = fns[c.fn](...args, opts);
    assertClose(y, c.output, 1e-4, 1e-5, `${c.name} value`);
    if (!c.grads.some((g) => g)) return;
    (c.w ? y.mul(fromFixture(c.w)).sum() : y).backward();
    c.grads.forEach((g, i) => {
      if (g) assertClose(args[i].grad!, g, 1e-4, 1e-5, `${c.name} grad of argument ${i}`);
    });
  });
}

test('every loss kind has a fixture case', () => {
  const kinds = new Set(cases.map((c) => c.fn));
  for (const k of Object.keys(fns)) assert.ok(kinds.has(k), `no fixture case for ${k}`);
  const names = cases.map((c) => c.name);
  for (const n of ['ce_ignore_2', 'ce_smooth_ignore', 'ce_probs', 'bce_clamp', 'bce_logits_posweight', 'gnll_full_sum']) assert.ok(names.includes(n), n);
});

test('finite differences: crossEntropy with smoothing and weights, bceWithLogits, gaussianNLL', () => {
  const rng = new Rng(7);
  const y = tensor([2, 0, 1], undefined, 'int32');
  const w = tensor([0.5, 1, 2]);
  checkGradFD((x) => crossEntropy(x, y, { labelSmoothing: 0.1, weight: w }), [randn([3, 3], rng)]);
  const t = rand([2, 3], rng);
  checkGradFD((x) => bceWithLogits(x, t, { posWeight: tensor([1, 2, 3]) }), [randn([2, 3], rng)]);
  checkGradFD((m, v) => gaussianNLL(m, t, v.square().add(0.1)), [randn([2, 3], rng), randn([2, 3], rng)]);
  checkGradFD((m, lv) => gaussianKL(m, lv), [randn([2, 3], rng), randn([2, 3], rng)]);
});

test('loss edge cases: all-ignored mean is NaN, bad targets and shapes are named', () => {
  const x = tensor([[1, 2], [3, 4]]);
  assert.ok(Number.isNaN(crossEntropy(x, tensor([-100, -100], undefined, 'int32')).item()));
  assert.throws(() => crossEntropy(x, tensor([0, 2], undefined, 'int32')), /target 2 at position 1 is out of range for 2 classes/);
  assert.throws(() => crossEntropy(x, tensor([0, 1, 1], undefined, 'int32')), /target \[3\] should be \[2\]/);
  assert.throws(() => mseLoss(x, tensor([1, 2])), /mseLoss: input \[2,2\] and target \[2\]/);
  assert.throws(() => nllLoss(x, tensor([0, 1])), /int32/);
  // A single unbatched sample [C] with a 0-D target.
  const single = crossEntropy(tensor([1, 2, 3]), tensor(new Int32Array([2]), []));
  assertClose(single, tensor(Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)) - 3), 1e-5, 1e-6);
  // Extreme logits stay finite.
  assert.ok(Number.isFinite(bceWithLogits(tensor([-1000, 1000]), tensor([1, 0])).item()));
});
