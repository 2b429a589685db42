import test from 'node:test';
import assert from 'node:assert/strict';
import { tensor, grad, noGrad, randn, Rng } from '../index.js';
import { assertClose, checkGradFD } from '../../test/helpers.js';

test('backward accumulates into leaves and respects noGrad', () => {
  const x = tensor([1, 2, 3]).requiresGrad_();
  x.mul(x).sum().backward();
  x.mul(2).sum().backward();
  assertClose(x.grad!, tensor([4, 6, 8]));
  const y = noGrad(() => x.mul(3));
  assert.equal(y.requiresGrad, false);
});

test('double backward through pow and tanh', () => {
  const a = tensor([0.5, -1, 2]).requiresGrad_();
  const [g] = grad(a.tanh().sum(), [a], { createGraph: true });
  const [gg] = grad(g!.sum(), [a]);
  // d2/dx2 tanh = -2 tanh (1 - tanh^2)
  const t = [0.5, -1, 2].map(Math.tanh);
  assertClose(gg!, tensor(t.map((v) => -2 * v * (1 - v * v))), 1e-4, 1e-6);
});

test('finite differences: matmul with broadcasting batch', () => {
  const rng = new Rng(1);
  checkGradFD((a, b) => a.matmul(b).tanh(), [randn([2, 3, 4], rng), randn([4, 5], rng)]);
});
