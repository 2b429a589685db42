/**
 * Initialisation: layers' default init lies in torch's ranges with torch's variances,
 * the init functions have the right bounds and moments, orthogonal is orthogonal, and
 * a seed reproduces the weights.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, Rng, zeros } from '../index.js';
import { Linear, Conv2d, ConvTranspose2d, Embedding } from './layers.js';
import { BatchNorm2d } from './norm.js';
import { LSTM } from './rnn.js';
import { MultiheadAttention } from './attention.js';
import {
  calculateGain, fanInOut, xavierUniform_, xavierNormal_, kaimingUniform_, kaimingNormal_, orthogonal_, normal_, uniform_, ones_,
} from './init.js';

function moments(t: Tensor): { mean: number; variance: number; maxAbs: number } {
  const v = t.values();
  let s = 0;
  let s2 = 0;
  let maxAbs = 0;
  for (const x of v) {
    s += x;
    s2 += x * x;
    maxAbs = Math.max(maxAbs, Math.abs(x));
  }
  const mean = s / v.length;
  return { mean, variance: s2 / v.length - mean * mean, maxAbs };
}

/** U(-b, b): every value inside, variance b^2/3 within 5 standard errors, mean near 0. */
function assertUniform(t: Tensor, bound: number, what: string): void {
  const m = moments(t);
  assert.ok(m.maxAbs <= bound * (1 + 1e-6), `${what}: max |w| ${m.maxAbs} exceeds bound ${bound}`);
  assert.ok(m.maxAbs > bound * 0.95, `${what}: max |w| ${m.maxAbs} far below bound ${bound}`);
  assert.ok(Math.abs(m.variance / (bound * bound / 3) - 1) < 5 * Math.sqrt(0.8 / t.size), `${what}: variance ${m.variance}, expected ${(bound * bound) / 3}`);
  assert.ok(Math.abs(m.mean) < (6 * bound) / Math.sqrt(3 * t.size), `${what}: mean ${m.mean}`);
}

function assertNormal(t: Tensor, std: number, what: string): void {
  const m = moments(t);
  assert.ok(Math.abs(Math.sqrt(m.variance) / std - 1) < 5 * Math.sqrt(0.5 / t.size), `${what}: std ${Math.sqrt(m.variance)}, expected ${std}`);
  assert.ok(Math.abs(m.mean) < (6 * std) / Math.sqrt(t.size), `${what}: mean ${m.mean}`);
}

test('default layer init is in torch ranges (kaiming_uniform(a=sqrt(5)), fan-in bias bounds, U(-1/sqrt(H), 1/sqrt(H)))', () => {
  const rng = new Rng(11);
  const fc = new Linear(200, 300, rng);
  assertUniform(fc.weight, 1 / Math.sqrt(200), 'Linear.weight');
  assert.ok(moments(fc.bias!).maxAbs <= 1 / Math.sqrt(200), 'Linear.bias bound');
  const conv = new Conv2d(8, 600, 3, rng);
  assertUniform(conv.weight, 1 / Math.sqrt(8 * 9), 'Conv2d.weight');
  assertUniform(conv.bias!, 1 / Math.sqrt(8 * 9), 'Conv2d.bias');
  // torch takes fan_in of a transposed conv from weight dim 1: out/groups * kh * kw.
  const tconv = new ConvTranspose2d(300, 16, 3, rng);
  assertUniform(tconv.weight, 1 / Math.sqrt(16 * 9), 'ConvTranspose2d.weight');
  assertNormal(new Embedding(1000, 30, rng).weight, 1, 'Embedding.weight');
  const lstm = new LSTM(50, 64, rng, { numLayers: 2 });
  for (const [n, p] of lstm.namedParameters()) if (p.size > 10000) assertUniform(p, 1 / 8, `LSTM.${n}`);
  const mha = new MultiheadAttention(96, 4, rng);
  assertUniform(mha.inProjWeight, Math.sqrt(6 / (96 + 3 * 96)), 'MHA.in_proj_weight');
  assert.equal(moments(mha.inProjBias!).maxAbs, 0);
  assert.equal(moments(mha.outProj.bias!).maxAbs, 0);
  assertUniform(mha.outProj.weight, 1 / Math.sqrt(96), 'MHA.out_proj.weight');
  const bn = new BatchNorm2d(4);
  assert.deepEqual(bn.weight!.toArray(), [1, 1, 1, 1]);
  assert.deepEqual(bn.runningVar!.toArray(), [1, 1, 1, 1]);
  assert.deepEqual(bn.runningMean!.toArray(), [0, 0, 0, 0]);
});

test('gains and fans as torch.nn.init', () => {
  assert.equal(calculateGain('linear'), 1);
  assert.equal(calculateGain('tanh'), 5 / 3);
  assert.equal(calculateGain('relu'), Math.SQRT2);
  assert.ok(Math.abs(calculateGain('leaky_relu') - Math.sqrt(2 / (1 + 1e-4))) < 1e-12);
  assert.ok(Math.abs(calculateGain('leaky_relu', Math.sqrt(5)) - Math.sqrt(1 / 3)) < 1e-12);
  assert.equal(calculateGain('selu'), 0.75);
  assert.deepEqual(fanInOut([16, 8, 3, 3]), { fanIn: 72, fanOut: 144 });
  assert.throws(() => fanInOut([5]), /at least 2 dimensions/);
});

test('xavier and kaiming bounds and standard deviations', () => {
  const rng = new Rng(3);
  assertUniform(xavierUniform_(zeros([300, 200]), rng, 2), 2 * Math.sqrt(6 / 500), 'xavierUniform_');
  assertNormal(xavierNormal_(zeros([300, 200]), rng), Math.sqrt(2 / 500), 'xavierNormal_');
  assertUniform(kaimingUniform_(zeros([300, 200]), rng), Math.sqrt(2) * Math.sqrt(3 / 200), 'kaimingUniform_');
  assertNormal(kaimingNormal_(zeros([100, 50, 3, 3]), rng, { mode: 'fan_out', nonlinearity: 'relu' }), Math.sqrt(2 / 900), 'kaimingNormal_ fan_out');
  assertNormal(normal_(zeros([50000]), rng, 2, 0.5).sub(2), 0.5, 'normal_');
  assertUniform(uniform_(zeros([50000]), rng, -3, 3), 3, 'uniform_');
  assert.deepEqual(ones_(zeros([3])).toArray(), [1, 1, 1]);
});

test('orthogonal_: orthonormal rows (wide) or columns (tall), scaled by gain', () => {
  const rng = new Rng(5);
  const check = (t: Tensor, gain: number): void => {
    const w = t.reshape([t.shape[0], -1]);
    const wide = w.shape[0] <= w.shape[1];
    const g = wide ? w.matmul(w.T) : w.T.matmul(w); // should be gain^2 I
    const n = g.shape[0];
    const v = g.values();
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) assert.ok(Math.abs(v[i * n + j] - (i === j ? gain * gain : 0)) < 1e-5, `entry (${i}, ${j}) = ${v[i * n + j]}`);
    }
  };
  check(orthogonal_(zeros([3, 5]), rng), 1);
  check(orthogonal_(zeros([6, 2, 2]), rng, 2), 2);
  check(orthogonal_(zeros([8, 8]), rng), 1);
});

test('a seed reproduces the weights; different seeds differ', () => {
  const a = new Linear(4, 4, new Rng(9)).weight.toArray();
  const b = new Linear(4, 4, new Rng(9)).weight.toArray();
  const c = new Linear(4, 4, new Rng(10)).weight.toArray();
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});
