/**
 * GAN: conformance on a 2-D toy and on flattened MNIST for each loss; WGAN-GP penalty
 * gradients (double backward) against finite differences; nCritic D updates per G update.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor, randn } from '../engine/index.js';
import { Linear } from '../nn/index.js';
import { conformance, testHooks } from '../../test/model_conformance.js';
import { GAN, gradientPenalty, discriminatorLoss, generatorLoss } from './gan.js';
import type { TrainHooks } from './contract.js';

conformance('gan', { data: '8gaussians', limit: 256, lossFalls: false, steps: 10 });
for (const lossType of ['ns', 'lsgan', 'hinge']) {
  conformance('gan', { data: 'mnist', limit: 64, lossFalls: false, steps: 4, modelOverrides: { lossType, nCritic: 1 } });
}

test('WGAN-GP: the penalty gradient w.r.t. critic weights matches finite differences (double backward)', () => {
  const rng = new Rng(0);
  const fc = new Linear(2, 1, rng);
  const critic = (x: Tensor): Tensor => x.tanh().matmul(fc.weight.T).add(fc.bias!).reshape([-1]);
  const real = randn([6, 2], new Rng(1));
  const fake = randn([6, 2], new Rng(2));
  const gp = (): Tensor => gradientPenalty(critic, real, fake, new Rng(3));
  const g0 = gp();
  assert.ok(g0.item() > 0);
  fc.zeroGrad();
  g0.backward();
  const analytic = fc.weight.grad!.values();
  assert.ok(Math.abs(analytic[0]) + Math.abs(analytic[1]) > 1e-4, 'penalty gradient does not reach the critic weights');
  const w = fc.weight.data as Float32Array;
  for (let i = 0; i < 2; i++) {
    const h = 1e-2;
    const old = w[i];
    w[i] = old + h;
    const up = gp().item();
    w[i] = old - h;
    const down = gp().item();
    w[i] = old;
    const fd = (up - down) / (2 * h);
    assert.ok(Math.abs(fd - analytic[i]) < 2e-3 + 0.02 * Math.abs(fd), `weight ${i}: analytic ${analytic[i]} vs finite difference ${fd}`);
  }
});

test('losses: known values at D = 0 and signs', () => {
  const z = new Tensor(new Float32Array([0, 0]), [2]);
  assert.ok(Math.abs(discriminatorLoss('ns', z, z).item() - 2 * Math.log(2)) < 1e-6);
  assert.ok(Math.abs(generatorLoss('ns', z).item() - Math.log(2)) < 1e-6);
  assert.ok(Math.abs(discriminatorLoss('lsgan', z, z).item() - 0.5) < 1e-6);
  assert.ok(Math.abs(discriminatorLoss('hinge', z, z).item() - 2) < 1e-6);
  const hi = new Tensor(new Float32Array([3, 3]), [2]);
  assert.ok(Math.abs(discriminatorLoss('wgan-gp', hi, z).item() + 3) < 1e-6);
});

test('trainStep makes nCritic D updates per G update, and G and D both change', () => {
  for (const nCritic of [1, 3]) {
    const m = new GAN({ latentDim: 2, hiddenDim: 8, nLayer: 1, nCritic, lossType: 'wgan-gp' }, new Rng(0), { name: 't', kind: 'points', shape: [2] });
    const counts: number[] = [];
    const base = testHooks(1e-3);
    const hooks: TrainHooks = {
      ...base,
      makeOptimizer: (params, scale) => {
        const opt = base.makeOptimizer(params, scale);
        const i = counts.push(0) - 1;
        const step = opt.step.bind(opt);
        opt.step = () => {
          counts[i]++;
          step();
        };
        return opt;
      },
    };
    m.configureOptimizers(hooks);
    const g0 = Array.from(m.generator.parameters()[0].values());
    const d0 = Array.from(m.discriminator.parameters()[0].values());
    const batch = { x: randn([16, 2], new Rng(5)) };
    for (let s = 0; s < 4; s++) {
      const r = m.trainStep(batch, new Rng(s), { step: s, totalSteps: 4, hooks });
      assert.ok(Number.isFinite(r.loss) && Number.isFinite(r.gp) && r.gp >= 0);
    }
    assert.deepEqual(counts, [4, 4 * nCritic], 'optimizer steps [G, D]');
    assert.notDeepEqual(Array.from(m.generator.parameters()[0].values()), g0);
    assert.notDeepEqual(Array.from(m.discriminator.parameters()[0].values()), d0);
  }
});
