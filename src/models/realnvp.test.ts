/**
 * Real NVP: conformance (2-D toy and MNIST), whole-model invertibility and exact
 * log-determinant against a brute-force Jacobian on 2-D points and on a 1x4x4 image,
 * bits/dim bookkeeping, and sampling temperature.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor, randn, noGrad, concat } from '../engine/index.js';
import type { Module } from '../nn/module.js';
import { bruteForceLogDet, standardNormalLogProb } from '../nn/flows.js';
import { conformance } from '../../test/model_conformance.js';
import { RealNVP } from './realnvp.js';
import type { DataInfo } from './contract.js';

conformance('realnvp', { data: '8gaussians', limit: 256 });
conformance('realnvp', { data: 'mnist', limit: 32, batchSize: 8, steps: 20, evalExamples: 8 });

function perturb(m: Module, seed: number, scale = 0.1): void {
  const r = new Rng(seed);
  for (const p of m.parameters()) {
    const d = p.data as Float32Array;
    for (let i = 0; i < p.size; i++) d[p.offset + i] += scale * r.normal();
  }
}

const flat = (zs: Tensor[]): Tensor => concat(zs.map((z) => z.reshape([z.shape[0], -1])), 1);
const maxDiff = (a: Tensor, b: Tensor): number => {
  const x = a.values();
  const y = b.values();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
};

const points: DataInfo = { name: 'pts', kind: 'points', shape: [2] };
const small: DataInfo = { name: 'img', kind: 'image', shape: [1, 4, 4] };

test('realnvp on points: inverse(forward(x)) == x and logdet equals the brute-force Jacobian', () => {
  const m = new RealNVP({ nCouplings: 4, hiddenDim: 16, nHidden: 2 }, new Rng(0), points);
  perturb(m, 1);
  const x = randn([3, 2], new Rng(2)).mul(2);
  const { zs, logdet } = m.encode(x);
  assert.ok(maxDiff(zs[0], x) > 1e-2, 'flow is the identity');
  assert.ok(maxDiff(noGrad(() => m.decode(zs)), x) < 1e-4);
  const brute = bruteForceLogDet((v) => flat(m.encode(v).zs), x);
  logdet.values().forEach((v, i) => assert.ok(Math.abs(v - brute[i]) < 1e-3, `${v} vs ${brute[i]}`));
  // logProb = log N(z) + logdet.
  const lp = m.logProb(x).values();
  const want = standardNormalLogProb(zs[0]).add(logdet).values();
  lp.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-4));
});

test('realnvp multi-scale on a 1x4x4 image: invertible, logdet equals the brute-force Jacobian of all latents', () => {
  const m = new RealNVP({ nScales: 1, hiddenChannels: 4 }, new Rng(3), small);
  assert.deepEqual(m.latentShapes, [[2, 2, 2], [2, 2, 2]]);
  perturb(m, 4);
  const y = randn([2, 1, 4, 4], new Rng(5));
  const { zs, logdet } = m.encode(y);
  assert.ok(maxDiff(noGrad(() => m.decode(zs)), y) < 1e-4);
  const brute = bruteForceLogDet((v) => flat(m.encode(v).zs), y);
  logdet.values().forEach((v, i) => assert.ok(Math.abs(v - brute[i]) < 2e-3 * Math.max(1, Math.abs(brute[i])), `${v} vs ${brute[i]}`));
});

test('realnvp on MNIST shapes: two scales, latents [2,14,14], [4,7,7], [4,7,7]; bits/dim = nll / (784 ln 2)', () => {
  const info: DataInfo = { name: 'mnist', kind: 'image', shape: [1, 28, 28] };
  const m = new RealNVP({ nScales: 2, hiddenChannels: 4 }, new Rng(6), info);
  assert.deepEqual(m.latentShapes, [[2, 14, 14], [4, 7, 7], [4, 7, 7]]);
  assert.throws(() => new RealNVP({ nScales: 3 }, new Rng(0), info), /2\^nScales/);
  const x = new Tensor(new Float32Array(2 * 784).map((_, i) => (i % 7) / 7), [2, 1, 28, 28]);
  const ev = m.evaluate({ x }, new Rng(7));
  assert.ok(Math.abs(ev.bitsPerDim - ev.nll / (784 * Math.LN2)) < 1e-9);
  // An untrained flow with zero-initialised couplings is the identity on logit space.
  assert.ok(ev.bitsPerDim > 1 && ev.bitsPerDim < 12, `bits/dim ${ev.bitsPerDim}`);
});

test('realnvp sampling: temperature scales the latent spread; temperature 0 gives decode(0)', () => {
  const m = new RealNVP({ nCouplings: 2, hiddenDim: 8 }, new Rng(8), points);
  const spread = (T: number): number => {
    const s = m.sample(2000, new Rng(9), undefined, { temperature: T });
    assert.equal(s.kind, 'points');
    return s.kind === 'points' ? s.points.var(0).mean().item() : 0;
  };
  // The fresh flow is the identity: sample variance = T^2.
  assert.ok(Math.abs(spread(1) - 1) < 0.1);
  assert.ok(Math.abs(spread(0.5) - 0.25) < 0.03);
  assert.equal(spread(0), 0);
});
