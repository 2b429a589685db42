/** 2-D metrics on known answers: MMD, grid divergences, mode coverage. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor, randn } from '../engine/index.js';
import { sampleToy, toyMixture } from '../data/toy2d.js';
import { mmdGaussian, gridDivergence, modeCoverage, medianBandwidth } from './mmd.js';

test('MMD^2: ~0 for a sample against itself and against a fresh sample, clearly > 0 for different distributions', () => {
  const a = sampleToy('8gaussians', 400, new Rng(1));
  const b = sampleToy('8gaussians', 400, new Rng(2));
  const c = sampleToy('moons', 400, new Rng(3));
  const self = mmdGaussian(a, a, { bandwidth: 1 });
  // Unbiased with identical sets: 2 * (mean off-diagonal k) - 2 * (mean k incl. diagonal) = -2 (1 - mean k) / n.
  assert.ok(Math.abs(self) < 0.01, `self ${self}`);
  const same = mmdGaussian(a, b);
  const diff = mmdGaussian(a, c);
  assert.ok(Math.abs(same) < 0.01, `same distribution ${same}`);
  assert.ok(diff > 0.02 && diff > 20 * Math.abs(same), `different ${diff} vs same ${same}`);
  // Closed form for two Gaussians N(0, I) vs N(m, I) in 2-D with bandwidth s: MMD^2 =
  // 2 (s^2 / (s^2 + 2))(1 - exp(-|m|^2 / (2 (s^2 + 2)))).
  const x = randn([1500, 2], new Rng(4));
  const y = randn([1500, 2], new Rng(5)).add(new Tensor(new Float32Array([1, 0]), [2]));
  const s = 1.5;
  const exact = 2 * (s * s / (s * s + 2)) * (1 - Math.exp(-1 / (2 * (s * s + 2))));
  const est = mmdGaussian(x, y, { bandwidth: s });
  assert.ok(Math.abs(est - exact) < 0.01, `estimate ${est} vs closed form ${exact}`);
  assert.ok(medianBandwidth(x, y) > 1 && medianBandwidth(x, y) < 3);
});

test('grid KL/JS: 0 for identical sets, large for disjoint ones, JS <= ln 2', () => {
  const a = sampleToy('8gaussians', 2000, new Rng(1));
  const id = gridDivergence(a, a);
  assert.ok(Math.abs(id.kl) < 1e-9 && Math.abs(id.js) < 1e-9);
  const far = a.add(100);
  const d = gridDivergence(a, far);
  assert.ok(d.kl > 3, `kl ${d.kl}`);
  assert.ok(d.js > 0.6 && d.js <= Math.LN2 + 1e-9, `js ${d.js}`);
  const near = gridDivergence(a, sampleToy('8gaussians', 2000, new Rng(2)));
  assert.ok(near.js < 0.05 && near.kl < 0.2, JSON.stringify(near));
});

test('mode coverage: data hit every mode with ~all samples high quality; a collapsed sample hits one', () => {
  const mix = toyMixture('8gaussians')!;
  const a = sampleToy('8gaussians', 1000, new Rng(1));
  const r = modeCoverage(a, mix);
  assert.equal(r.modesHit, 8);
  assert.ok(r.highQuality > 0.98, `highQuality ${r.highQuality}`); // P(chi2_2 <= 9) = 0.989
  const c = mix.centers[2];
  const collapsed = new Tensor(Float32Array.from({ length: 200 }, (_, i) => c[i % 2]), [100, 2]);
  assert.equal(modeCoverage(collapsed, mix).modesHit, 1);
  assert.equal(modeCoverage(collapsed.add(50), mix).highQuality, 0);
  assert.equal(modeCoverage(sampleToy('25gaussians', 2000, new Rng(3)), toyMixture('25gaussians')!).modesHit, 25);
  assert.equal(toyMixture('moons'), null);
});
