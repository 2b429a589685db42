/**
 * Seeded random ops: distribution statistics (with bounds several standard errors
 * wide, so the tests are deterministic for the fixed seeds and not flaky in spirit),
 * reproducibility from a seed, and Rng state save/restore.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, rand, randn, bernoulli, randint, randperm, multinomial, categorical, tensor, ShapeError } from '../index.js';
import { testBackends } from '../../../test/helpers.js';
import { withBackend } from '../index.js';

function stats(v: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  const mean = s / v.length;
  let q = 0;
  for (let i = 0; i < v.length; i++) q += (v[i] - mean) ** 2;
  return { mean, std: Math.sqrt(q / (v.length - 1)) };
}

/** Counts of each value 0..k-1. */
function counts(v: ArrayLike<number>, k: number): number[] {
  const c = new Array<number>(k).fill(0);
  for (let i = 0; i < v.length; i++) c[v[i]]++;
  return c;
}

const N = 20000;

test('random: uniform lies in [low, high) with the right mean and spread', () => {
  const x = rand([N], new Rng(1), -2, 3).toArray();
  assert.ok(x.every((v) => v >= -2 && v < 3));
  const { mean, std } = stats(x);
  // sd of the mean: 5/sqrt(12 N) = 0.01
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  assert.ok(Math.abs(std - 5 / Math.sqrt(12)) < 0.03, `std ${std}`);
});

test('random: normal has the requested mean and std, and normal tails', () => {
  const x = randn([N], new Rng(2), 1.5, 2).toArray();
  const { mean, std } = stats(x);
  assert.ok(Math.abs(mean - 1.5) < 0.06, `mean ${mean}`); // sd of the mean 0.014
  assert.ok(Math.abs(std - 2) < 0.05, `std ${std}`);
  const within1 = x.filter((v) => Math.abs(v - 1.5) < 2).length / N;
  assert.ok(Math.abs(within1 - 0.6827) < 0.02, `P(|z| < 1) = ${within1}`);
  const beyond3 = x.filter((v) => Math.abs(v - 1.5) > 6).length / N;
  assert.ok(beyond3 < 0.006, `P(|z| > 3) = ${beyond3}`);
});

test('random: bernoulli with a scalar and with a tensor of probabilities', () => {
  const b = bernoulli(0.3, new Rng(3), [N]).toArray();
  assert.ok(b.every((v) => v === 0 || v === 1));
  assert.ok(Math.abs(stats(b).mean - 0.3) < 0.02);
  const p = tensor([0, 1, 0.5, 0.9]).reshape(1, 4).expand(N / 4, 4);
  const bp = bernoulli(p, new Rng(4));
  assert.deepEqual(bp.shape, [N / 4, 4]);
  const cols = [0, 1, 2, 3].map((j) => stats(bp.index(1, j).toArray()).mean);
  assert.equal(cols[0], 0);
  assert.equal(cols[1], 1);
  assert.ok(Math.abs(cols[2] - 0.5) < 0.04 && Math.abs(cols[3] - 0.9) < 0.03, `column means ${cols}`);
  assert.throws(() => bernoulli(0.5, new Rng(0)), ShapeError);
});

test('random: randint is uniform over [low, high) and int32', () => {
  const r = randint(-3, 4, [N], new Rng(5));
  assert.equal(r.dtype, 'int32');
  const v = r.toArray();
  assert.ok(v.every((x) => Number.isInteger(x) && x >= -3 && x < 4));
  const c = counts(v.map((x) => x + 3), 7);
  for (const k of c) assert.ok(Math.abs(k / N - 1 / 7) < 0.015, `counts ${c}`);
  assert.throws(() => randint(2, 2, [1], new Rng(0)), /empty range/);
  assert.throws(() => randint(0, 2 ** 33, [1], new Rng(0)), /randint: \[0, 8589934592\) does not fit in int32/);
  assert.ok(randint(-(2 ** 31), 2 ** 31, [100], new Rng(0)).toArray().some((v) => v < 0));
});

test('random: randperm is a permutation, and seeds give different ones', () => {
  const p = randperm(50, new Rng(6));
  assert.equal(p.dtype, 'int32');
  assert.deepEqual([...p.toArray()].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assert.notDeepEqual(p.toArray(), randperm(50, new Rng(7)).toArray());
  assert.notDeepEqual(p.toArray(), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(randperm(0, new Rng(0)).shape, [0]);
  assert.deepEqual(randperm(1, new Rng(0)).toArray(), [0]);
});

test('random: multinomial with replacement follows the weights', () => {
  const w = tensor([[1, 0, 3, 4], [0, 0, 2, 0]]); // need not sum to 1
  const s = multinomial(w, 8000, new Rng(8), true);
  assert.deepEqual(s.shape, [2, 8000]);
  const c0 = counts(s.index(0, 0).toArray(), 4);
  assert.equal(c0[1], 0);
  [1 / 8, 0, 3 / 8, 4 / 8].forEach((p, k) => assert.ok(Math.abs(c0[k] / 8000 - p) < 0.02, `row 0 counts ${c0}`));
  assert.ok(s.index(0, 1).toArray().every((v) => v === 2));
});

test('random: multinomial without replacement draws distinct categories', () => {
  const w = tensor([0.1, 0.2, 0, 0.3, 0.4]);
  const firsts = new Array<number>(5).fill(0);
  const rng = new Rng(9);
  for (let t = 0; t < 4000; t++) {
    const s = multinomial(w, 4, rng).toArray();
    assert.equal(new Set(s).size, 4);
    assert.ok(!s.includes(2), 'a zero weight was drawn');
    firsts[s[0]]++;
  }
  // The first draw follows the weights.
  [0.1, 0.2, 0, 0.3, 0.4].forEach((p, k) => assert.ok(Math.abs(firsts[k] / 4000 - p) < 0.03, `first draws ${firsts}`));
  assert.throws(() => multinomial(w, 5, new Rng(0)), /multinomial: row 0 has 4 positive weights, cannot draw 5 without replacement/);
  assert.throws(() => multinomial(tensor([1, -1]), 1, new Rng(0)), /multinomial: weight -1/);
});

test('random: categorical samples follow softmax(logits)', () => {
  const logits = tensor([Math.log(0.2), Math.log(0.5), Math.log(0.3)]).reshape(1, 3).expand(N, 3);
  const c = counts(categorical(logits, new Rng(10)).toArray(), 3);
  [0.2, 0.5, 0.3].forEach((p, k) => assert.ok(Math.abs(c[k] / N - p) < 0.02, `counts ${c}`));
});

test('random: the same seed gives the same values on every backend, other seeds differ', () => {
  const draw = (seed: number): number[][] => {
    const rng = new Rng(seed);
    return [rand([20], rng), randn([21], rng), bernoulli(0.5, rng, [10]), randint(0, 100, [10], rng), randperm(10, rng),
      multinomial(tensor([1, 2, 3]), 2, rng)].map((t) => t.toArray());
  };
  const ref = draw(42);
  for (const be of testBackends()) withBackend(be, () => assert.deepEqual(draw(42), ref, be));
  assert.notDeepEqual(draw(43), ref);
  // Seeds above 2^32 keep their high bits.
  assert.notDeepEqual(rand([4], new Rng(2 ** 32 + 5)).toArray(), rand([4], new Rng(5)).toArray());
});

test('random: Rng state save/restore resumes the stream (including the cached normal)', () => {
  const rng = new Rng(11);
  rng.normal(); // leaves the Box-Muller spare cached
  const st = rng.getState();
  assert.notEqual(st.spare, null);
  const a = [rng.normal(), rng.uniform(), rng.int(0, 1000), ...randn([5], rng).toArray()];
  // The state is plain JSON (checkpoints store it).
  const other = new Rng(999);
  other.setState(JSON.parse(JSON.stringify(st)));
  const b = [other.normal(), other.uniform(), other.int(0, 1000), ...randn([5], other).toArray()];
  assert.deepEqual(b, a);
  assert.throws(() => other.setState({ s: [1, 2, 3], spare: null } as never), /setState/);
});

test('random: fork gives a reproducible independent stream and advances the parent', () => {
  const p1 = new Rng(12);
  const p2 = new Rng(12);
  const c1 = p1.fork();
  const c2 = p2.fork();
  assert.deepEqual(rand([5], c1).toArray(), rand([5], c2).toArray());
  assert.deepEqual(p1.uniform(), p2.uniform());
  assert.notDeepEqual(rand([5], new Rng(12)).toArray(), rand([5], new Rng(12).fork()).toArray());
});
