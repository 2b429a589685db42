/**
 * Glow: conformance (2-D toy and MNIST), whole-model invertibility and exact
 * log-determinant against a brute-force Jacobian on 2-D points and a 1x4x4 image
 * (two levels, split prior), deterministic actnorm init saved in the state dict,
 * sampling with temperature through the split priors, and finite samples from a model
 * whose coupling scales collapse (issue 7).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor, randn, noGrad, concat } from '../engine/index.js';
import type { Module } from '../nn/module.js';
import { bruteForceLogDet, ActNorm, AffineCoupling, CouplingConvNet } from '../nn/flows.js';
import { conformance } from '../../test/model_conformance.js';
import { Glow } from './glow.js';
import type { DataInfo } from './contract.js';

conformance('glow', { data: '8gaussians', limit: 256 });
conformance('glow', { data: 'mnist', limit: 32, batchSize: 8, steps: 20, evalExamples: 8 });

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

test('glow on points: invertible, logdet equals the brute-force Jacobian', () => {
  const m = new Glow({ nSteps: 3, hiddenDim: 16 }, new Rng(0), points);
  const x = randn([3, 2], new Rng(2)).mul(2).add(1);
  m.encode(randn([64, 2], new Rng(1)).mul(3)); // actnorm init
  perturb(m, 1);
  m.eval();
  const { zs, logdet } = m.encode(x);
  assert.ok(maxDiff(zs[0], x) > 1e-2);
  assert.ok(maxDiff(noGrad(() => m.decode(zs)), x) < 1e-4);
  const brute = bruteForceLogDet((v) => flat(m.encode(v).zs), x);
  logdet.values().forEach((v, i) => assert.ok(Math.abs(v - brute[i]) < 1e-3, `${v} vs ${brute[i]}`));
});

test('glow multi-scale (2 levels, split prior) on a 1x4x4 image: invertible, logdet equals the brute-force Jacobian', () => {
  const m = new Glow({ nLevels: 2, nSteps: 2, hiddenChannels: 4 }, new Rng(3), small);
  assert.deepEqual(m.latentShapes, [[2, 2, 2], [8, 1, 1]]);
  m.encode(randn([8, 1, 4, 4], new Rng(4)));
  perturb(m, 5);
  m.eval();
  const y = randn([2, 1, 4, 4], new Rng(6));
  const { zs, logdet, logPrior } = m.encode(y);
  assert.ok(maxDiff(noGrad(() => m.decode(zs)), y) < 1e-4);
  const brute = bruteForceLogDet((v) => flat(m.encode(v).zs), y);
  logdet.values().forEach((v, i) => assert.ok(Math.abs(v - brute[i]) < 2e-3 * Math.max(1, Math.abs(brute[i])), `${v} vs ${brute[i]}`));
  assert.ok(logPrior.values().every(Number.isFinite));
  // Sampling through the split prior: decode(noise) with the prior's mean and scale.
  const s = m.sample(3, new Rng(7), undefined, { temperature: 0.7 });
  assert.equal(s.kind, 'image');
  if (s.kind === 'image') assert.deepEqual([...s.images.shape], [3, 1, 4, 4]);
});

test('glow actnorm: data-dependent init is deterministic and restored from the state dict', () => {
  const info: DataInfo = { name: 'mnist', kind: 'image', shape: [1, 28, 28] };
  const x = new Tensor(new Float32Array(4 * 784).map((_, i) => ((i * 37) % 256) / 255), [4, 1, 28, 28]);
  const a = new Glow({ nLevels: 2, nSteps: 1, hiddenChannels: 4 }, new Rng(8), info);
  const b = new Glow({ nLevels: 2, nSteps: 1, hiddenChannels: 4 }, new Rng(8), info);
  a.loss({ x }, new Rng(9));
  b.loss({ x }, new Rng(9));
  const an = a.modules().filter((mm): mm is ActNorm => mm instanceof ActNorm);
  assert.ok(an.length === 2 && an.every((l) => l.initialized.item() === 1));
  assert.deepEqual(Array.from(an[0].logs.values()), Array.from(b.modules().filter((mm): mm is ActNorm => mm instanceof ActNorm)[0].logs.values()));
  const c = new Glow({ nLevels: 2, nSteps: 1, hiddenChannels: 4 }, new Rng(10), info);
  c.loadStateDict(a.stateDict());
  const logsBefore = Array.from(c.modules().filter((mm): mm is ActNorm => mm instanceof ActNorm)[0].logs.values());
  c.loss({ x: x.mul(0.5) }, new Rng(9)); // must not re-initialise
  assert.deepEqual(Array.from(c.modules().filter((mm): mm is ActNorm => mm instanceof ActNorm)[0].logs.values()), logsBefore);
  a.eval();
  c.eval();
  assert.equal(a.evaluate({ x }, new Rng(1)).bitsPerDim, c.evaluate({ x }, new Rng(1)).bitsPerDim);
});

test('glow split prior: log-std is 0 at init and bounded above for extreme inputs (sampling cannot overflow)', () => {
  const m = new Glow({ nLevels: 2, nSteps: 1, hiddenChannels: 4 }, new Rng(11), small);
  const lv = [...m.levels!][0];
  const h = randn([2, 2, 2, 2], new Rng(12)).mul(100);
  assert.ok(lv.priorParams(h).logStd.values().every((v) => v === 0 || Math.abs(v) < 1e-6));
  perturb(lv, 13, 1);
  const ls = lv.priorParams(h).logStd.values();
  assert.ok(ls.every((v) => v <= Math.log1p(Math.E) + 1e-5), `max log-std ${Math.max(...ls)}`);
  assert.ok(ls.some((v) => v < -5), 'log-std should stay unbounded below');
});

test('glow sampling with collapsed coupling scales (sigmoid(h + 2) ~ 1e-26) gives finite pixels in [0, 1]', () => {
  // As an undertrained MNIST glow on a temperature-1 sample: the conditioners see values
  // unlike any training batch and output h << 0. Unfloored, each coupling's inverse
  // multiplies by 1/s ~ 1e26 and the second one overflows float32 (Inf, then NaN).
  // With the floor s >= 1e-3 the gain is 1e3 per coupling, still past float32 over 16
  // couplings (the default 2 levels x 8 steps): decode's clamp keeps those finite.
  const info: DataInfo = { name: 'img', kind: 'image', shape: [1, 8, 8] };
  const m = new Glow({ nLevels: 2, nSteps: 8, hiddenChannels: 8 }, new Rng(20), info);
  perturb(m, 21, 0.3);
  const couplings = m.modules().filter((mm): mm is AffineCoupling => mm instanceof AffineCoupling);
  assert.equal(couplings.length, 16);
  for (const c of couplings) {
    const bias = (c.net as CouplingConvNet).conv3.bias!;
    const b = bias.data as Float32Array;
    for (let i = 0; i < bias.size / 2; i++) b[bias.offset + i] = -60; // the raw log-scale channels
  }
  m.eval();
  const s = m.sample(8, new Rng(22), undefined, { temperature: 1 });
  assert.equal(s.kind, 'image');
  if (s.kind !== 'image') return;
  const v = s.images.values();
  const bad = Array.from(v).filter((p) => !(p >= 0 && p <= 1)).length;
  assert.equal(bad, 0, `${bad} of ${v.length} pixels are non-finite or outside [0, 1]`);
});
