// The README's library example, kept compiling and running.
import test from 'node:test';
import assert from 'node:assert/strict';
import { randn, grad, tidy, Rng, Linear, Adam } from '../src/index.js';

test('README example runs', () => {
  const rng = new Rng(0);
  const layer = new Linear(2, 1, rng);
  const opt = new Adam(layer.parameters(), { lr: 1e-2 });
  const x = randn([64, 2], rng);
  const loss = layer.forward(x).sub(x.sum(1, true)).square().mean();
  loss.backward();
  opt.step();
  for (let i = 0; i < 3; i++) {
    const lv = tidy(() => {
      opt.zeroGrad();
      const l = layer.forward(x).sub(x.sum(1, true)).square().mean();
      l.backward();
      opt.step();
      return l.item();
    });
    assert.ok(Number.isFinite(lv));
  }
  const z = randn([4, 2], rng).requiresGrad_();
  const [gz] = grad(z.tanh().sum(), [z], { createGraph: true });
  gz!.square().sum().backward();
  assert.ok(Number.isFinite(loss.item()));
  assert.equal(z.grad!.shape.join(), '4,2');
});
