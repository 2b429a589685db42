/**
 * Flow metrics: MMD is ~0 between two samples of one distribution and large between
 * different ones; a flow's density grid integrates to ~1 (the likelihood is exact);
 * the registered evaluator reports MMD, the true-density NLL floor and the gap.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, randn } from '../engine/index.js';
import '../models/realnvp.js';
import { RealNVP } from '../models/realnvp.js';
import { Glow } from '../models/glow.js';
import { MAF } from '../models/maf.js';
import { loadDataSource } from '../train/data_source.js';
import { evaluateRun } from './evaluate.js';
import { densityGrid } from './flow_metrics.js';
import { mmdGaussian } from './mmd.js';
import type { Module } from '../nn/module.js';

function perturb(m: Module, seed: number, scale = 0.2): void {
  const r = new Rng(seed);
  for (const p of m.parameters()) {
    const d = p.data as Float32Array;
    for (let i = 0; i < p.size; i++) d[p.offset + i] += scale * r.normal();
  }
}

test('mmdGaussian: near 0 for one distribution, clearly positive for two', () => {
  const a = randn([300, 2], new Rng(1));
  const b = randn([300, 2], new Rng(2));
  const c = randn([300, 2], new Rng(3)).mul(0.5).add(1);
  const same = mmdGaussian(a, b);
  const diff = mmdGaussian(a, c);
  assert.ok(Math.abs(same) < 0.01, `same: ${same}`);
  assert.ok(diff > 0.1, `different: ${diff}`);
});

test('densityGrid: a flow density integrates to ~1 over the plane (realnvp, glow, maf)', () => {
  const info = { name: 'p', kind: 'points' as const, shape: [2] };
  const models = [
    new RealNVP({ nCouplings: 4, hiddenDim: 16 }, new Rng(4), info),
    new Glow({ nSteps: 3, hiddenDim: 16 }, new Rng(5), info),
    new MAF({ nMades: 3, hiddenDim: 16, nHidden: 1, batchNorm: false }, new Rng(6), info),
  ];
  for (const m of models) {
    perturb(m, 7, 0.1);
    m.eval();
    const n = 121;
    const g = densityGrid(m, [-8, 8], n);
    assert.equal(g.length, n * n);
    const cell = (16 / (n - 1)) ** 2;
    let mass = 0;
    for (const v of g) mass += Math.exp(v) * cell;
    assert.ok(Math.abs(mass - 1) < 0.03, `${m.type}: density integrates to ${mass}`);
  }
});

test('densityGrid: row 0 is the top (y = hi), column 0 is x = lo', () => {
  const probe = { logProb: (x: import('../engine/index.js').Tensor) => x.slice(1, 0, 1).mul(10).add(x.slice(1, 1, 2)).reshape([-1]) };
  const g = densityGrid(probe, [-1, 1], 3);
  assert.deepEqual(Array.from(g), [-9, 1, 11, -10, 0, 10, -11, -1, 9]);
});

test('flow evaluator on 8gaussians: mmd, trueNll (the entropy floor) and nllGap merge into evaluateRun', () => {
  const data = loadDataSource('8gaussians', ['points'], { limit: 2000, seed: 0 });
  const m = new RealNVP({ nCouplings: 2, hiddenDim: 8 }, new Rng(8), data.info);
  const r = evaluateRun(m, data, { quick: true });
  for (const k of ['nll', 'mmd', 'trueNll', 'nllGap']) assert.ok(Number.isFinite(r[k]), `${k}: ${r[k]}`);
  assert.ok(Math.abs(r.nll - r.trueNll - r.nllGap) < 1e-3);
  // The true density of 8 Gaussians (std 0.35): entropy about log 8 + log(2 pi e 0.354^2) = 2.92 nats.
  assert.ok(r.trueNll > 2.5 && r.trueNll < 3.3, `trueNll ${r.trueNll}`);
  assert.ok(r.nllGap > 0, 'an untrained flow cannot beat the true density');
});
