/**
 * DDPM: conformance (tiny U-Net on MNIST, class-conditional; MLP on 2-D toys, with the
 * v parameterisation too), classifier-free guidance, the denoising strip, options.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng, Tensor, noGrad, randn } from '../engine/index.js';
import { Adam } from '../optim/index.js';
import { conformance } from '../../test/model_conformance.js';
import { assertClose } from '../../test/helpers.js';
import { modelEntry, resolveConfig } from './registry.js';
import type { ConfigValue } from './registry.js';
import { loadDataSource } from '../train/data_source.js';
import { DDPM, rbfMmd2 } from './ddpm.js';
import { sampleLoop } from './diffusion/samplers.js';

conformance('ddpm', { data: 'mnist', limit: 64, conditional: true, steps: 20 });
conformance('ddpm', { data: 'moons', limit: 256 });
conformance('ddpm', { data: '8gaussians', limit: 256, modelOverrides: { prediction: 'v', schedule: 'cosine' }, steps: 20 });

function tinyModel(data: string, overrides: Record<string, ConfigValue> = {}): { m: DDPM; x: Tensor; y?: Tensor } {
  const e = modelEntry('ddpm');
  const cfg = resolveConfig('model', e.defaults, e.choices, e.presets.tiny.model, overrides);
  const ds = loadDataSource(data, e.data, { limit: 64 });
  const m = e.create(cfg, new Rng(0), ds.info) as DDPM;
  // A few large steps so that labels and time reach the output (blocks start as the identity).
  const opt = new Adam(m.parameters(), { lr: 1e-2 });
  const batch = { x: ds.train.x.slice(0, 0, 16), ...(ds.train.y ? { y: ds.train.y.slice(0, 0, 16) } : {}) };
  for (let s = 0; s < 4; s++) {
    opt.zeroGrad();
    m.loss(batch, new Rng(s)).loss.backward();
    opt.step();
  }
  m.eval();
  return { m, x: ds.test.x, y: ds.test.y };
}

describe('ddpm', () => {
  const mnist = (() => {
    let cached: ReturnType<typeof tinyModel> | null = null;
    return () => (cached ??= tinyModel('mnist'));
  })();

  test('guided output is (1 + w) out(x, y) - w out(x, null), in one batch', () => {
    const { m } = mnist();
    const x = randn([3, 1, 28, 28], new Rng(1));
    const y = new Tensor(Int32Array.from([0, 5, 9]), [3]);
    noGrad(() => {
      const c = m.denoise(x, [40, 40, 40], y);
      const u = m.denoise(x, [40, 40, 40], new Tensor(Int32Array.from([10, 10, 10]), [3]));
      assert.ok(c.sub(u).abs().max().item() > 1e-4, 'the label has no effect; the test would prove nothing');
      assertClose(m.guidedOutput(x, 40, y, 2.5), c.mul(3.5).sub(u.mul(2.5)), 1e-4, 1e-4, 'w = 2.5');
      assertClose(m.guidedOutput(x, 40, y, 0), c, 0, 0, 'w = 0');
    });
  });

  test('guidance w = 0 equals plain conditional sampling; w > 0 changes the samples', () => {
    const { m } = mnist();
    const y = new Tensor(Int32Array.from([1, 7]), [2]);
    const opts = { sampler: 'ddim', steps: 5, eta: 0.5 };
    const guided = m.sample(2, new Rng(3), y, { ...opts, guidance: 0 });
    // The same loop driven by the conditional network alone.
    const ref = noGrad(() => sampleLoop(m.schedule, 'epsilon', (xt, t) => m.denoise(xt, [t, t], y), [2, 1, 28, 28], new Rng(3),
      { sampler: 'ddim', steps: 5, eta: 0.5, clip: true }).x);
    assert.equal(guided.kind, 'image');
    if (guided.kind !== 'image') return;
    assertClose(guided.images, m.fromModelSpace(ref), 1e-5, 1e-5, 'w = 0');
    assert.deepEqual(Array.from(guided.labels!.values()), [1, 7]);
    const strong = m.sample(2, new Rng(3), y, { ...opts, guidance: 4 });
    if (strong.kind === 'image') assert.ok(strong.images.sub(guided.images).abs().max().item() > 1e-3, 'guidance had no effect');
  });

  test('denoising strip: n rows of frames from noise to the final sample', () => {
    const { m } = mnist();
    const final = m.sample(3, new Rng(4), undefined, { steps: 6 });
    const strip = m.sample(3, new Rng(4), undefined, { steps: 6, strip: true });
    const five = m.sample(2, new Rng(4), undefined, { steps: 6, strip: true, frames: 5 });
    assert.ok(strip.kind === 'image' && final.kind === 'image' && five.kind === 'image');
    assert.deepEqual(strip.images.shape, [9, 1, 28, 28]);
    assert.deepEqual(five.images.shape, [10, 1, 28, 28]);
    for (let i = 0; i < 3; i++) assertClose(strip.images.slice(0, 3 * i + 2, 3 * i + 3), final.images.slice(0, i, i + 1), 0, 0, `row ${i} last frame`);
    // Unconditional points models have no strip.
    const pts = tinyModel('moons').m;
    assert.throws(() => pts.sample(2, new Rng(0), undefined, { strip: true }), /strip/);
    assert.throws(() => pts.sample(2, new Rng(0), new Tensor(Int32Array.from([0, 1]), [2])), /unconditional/);
  });

  test('sample options are checked; the DDPM sampler runs all T steps', () => {
    const { m } = mnist();
    assert.throws(() => m.sample(1, new Rng(0), undefined, { temperature: 1 }), /unknown sample option 'temperature'/);
    assert.throws(() => m.sample(1, new Rng(0), undefined, { sampler: 'euler' }), /sampler/);
    assert.throws(() => m.sample(1, new Rng(0), undefined, { steps: 101 }), /steps must be an integer in 1..100/);
    const s = m.sample(2, new Rng(0), undefined, { sampler: 'ddpm' });
    assert.ok(s.kind === 'image' && Array.from(s.images.values()).every((v) => v >= 0 && v <= 1));
  });

  test('points: standardisation from the first batch; evaluate reports valLoss and MMD', () => {
    const { m, x } = tinyModel('moons');
    const mean = m.dataMean!.values();
    const std = m.dataStd!.values();
    assert.equal(m.dataReady!.values()[0], 1);
    assert.ok(Math.abs(mean[0] - 0.5) < 0.6 && std[0] > 0.3 && std[0] < 3, `mean ${mean[0]}, std ${std[0]}`);
    const r = noGrad(() => m.evaluate({ x: x.slice(0, 0, 100) }, new Rng(0), { quick: true }));
    for (const k of ['valLoss', 'mmd', 'loss_t50']) assert.ok(Number.isFinite(r[k]), `${k}: ${r[k]}`);
  });

  test('rbfMmd2: near 0 for two draws of one distribution, large for shifted ones', () => {
    const a = randn([300, 2], new Rng(1));
    const b = randn([300, 2], new Rng(2));
    const c = randn([300, 2], new Rng(3), 1.5);
    const same = rbfMmd2(a, b);
    const shifted = rbfMmd2(a, c);
    assert.ok(Math.abs(same) < 0.02, `same: ${same}`);
    assert.ok(shifted > 0.3, `shifted: ${shifted}`);
  });

  test('config errors name the problem', () => {
    const e = modelEntry('ddpm');
    const info = loadDataSource('moons', e.data, { limit: 16 }).info;
    const make = (o: Record<string, ConfigValue>) => e.create(resolveConfig('model', e.defaults, e.choices, e.presets.tiny.model, o), new Rng(0), info);
    assert.throws(() => make({ arch: 'unet' }), /arch 'unet' needs image data/);
    assert.throws(() => make({ sampleSteps: 500 }), /sampleSteps 500 exceeds timesteps 100/);
    assert.throws(() => resolveConfig('model', e.defaults, e.choices, { prediction: 'score' }), /prediction/);
  });
});
