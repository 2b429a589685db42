/**
 * MultiheadAttention beyond the torch fixtures (layers.test.ts): decoding with the
 * key/value cache equals the full causal computation, masks agree with each other,
 * options and errors.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, randn, tensor, concat, noGrad, where, zeros } from '../index.js';
import { MultiheadAttention, KVCache, scaledDotProductAttention, causalMask } from './attention.js';
import { assertClose } from '../../test/helpers.js';

test('token-by-token decoding with a KV cache equals the full causal computation', () => {
  const rng = new Rng(1);
  for (const batchFirst of [true, false]) {
    const mha = new MultiheadAttention(12, 3, rng, { batchFirst });
    const T = 7;
    const x = randn(batchFirst ? [2, T, 12] : [T, 2, 12], rng);
    const tAxis = batchFirst ? 1 : 0;
    const [full, wFull] = mha.forward(x, x, x, { causal: true });
    const cache = new KVCache();
    const outs = [];
    for (let t = 0; t < T; t++) {
      const xt = x.slice(tAxis, t, t + 1);
      const [y, w] = mha.forward(xt, xt, xt, { causal: true, cache });
      outs.push(y);
      // The step's weights are row t of the full weights over the t+1 visible keys.
      assertClose(w!, wFull!.slice(1, t, t + 1).slice(2, 0, t + 1), 1e-5, 1e-6, `weights at step ${t}`);
    }
    assert.equal(cache.length, T);
    assertClose(concat(outs, tAxis), full, 1e-5, 1e-6, `decoded output (batchFirst=${batchFirst})`);
  }
});

test('a prompt of several tokens then single tokens: the cache offsets the causal mask', () => {
  const rng = new Rng(2);
  const mha = new MultiheadAttention(8, 2, rng, { batchFirst: true });
  const x = randn([1, 6, 8], rng);
  const [full] = noGrad(() => mha.forward(x, x, x, { causal: true }));
  const cache = new KVCache();
  const prompt = x.slice(1, 0, 4);
  const parts = [noGrad(() => mha.forward(prompt, prompt, prompt, { causal: true, cache }))[0]];
  for (let t = 4; t < 6; t++) {
    const xt = x.slice(1, t, t + 1);
    parts.push(noGrad(() => mha.forward(xt, xt, xt, { causal: true, cache, needWeights: false }))[0]);
  }
  assertClose(concat(parts, 1), full, 1e-5, 1e-6, 'prompt + decode');
  cache.reset();
  assert.equal(cache.length, 0);
});

test('causal flag, int32 boolean mask and float additive mask agree; padding keys get zero weight', () => {
  const rng = new Rng(3);
  const mha = new MultiheadAttention(8, 4, rng);
  const x = randn([5, 2, 8], rng); // (L, B, E)
  const blocked = causalMask(5, 5); // float 1 = blocked
  const [a, wa] = mha.forward(x, x, x, { causal: true });
  const [b] = mha.forward(x, x, x, { attnMask: blocked.toInt() });
  const [c] = mha.forward(x, x, x, { attnMask: where(blocked, -Infinity, 0) });
  assertClose(b, a, 1e-6, 1e-6, 'int32 mask');
  assertClose(c, a, 1e-6, 1e-6, 'float mask');
  assert.deepEqual(wa!.shape, [2, 5, 5]);
  const kpm = tensor([[0, 0, 0, 0, 1], [0, 1, 0, 0, 0]]);
  const [, w] = mha.forward(x, x, x, { keyPaddingMask: kpm, averageAttnWeights: false });
  assert.deepEqual(w!.shape, [2, 4, 5, 5]);
  const wv = w!.values();
  for (let h = 0; h < 4; h++) {
    for (let i = 0; i < 5; i++) {
      assert.equal(wv[((0 * 4 + h) * 5 + i) * 5 + 4], 0);
      assert.equal(wv[((1 * 4 + h) * 5 + i) * 5 + 1], 0);
    }
  }
  assert.equal(mha.forward(x, x, x, { needWeights: false })[1], null);
});

test('scaledDotProductAttention: rows of the weights sum to 1 and the causal mask is respected', () => {
  const rng = new Rng(4);
  const q = randn([2, 3, 4], rng);
  const [out, w] = scaledDotProductAttention(q, randn([2, 3, 4], rng), randn([2, 3, 4], rng), { causal: true });
  assert.deepEqual(out.shape, [2, 3, 4]);
  assertClose(w.sum(-1), tensor([[1, 1, 1], [1, 1, 1]]), 1e-6, 1e-6, 'row sums');
  assert.equal(w.values()[1], 0);
});

test('attention errors name the shapes', () => {
  const rng = new Rng(5);
  assert.throws(() => new MultiheadAttention(10, 3, rng), /divisible by num_heads 3/);
  const mha = new MultiheadAttention(8, 2, rng, { batchFirst: true });
  const x = randn([2, 4, 8], rng);
  assert.throws(() => mha.forward(x, x, x, { keyPaddingMask: zeros([2, 3]) }), /keyPaddingMask \[2,3\] should be \[2,4\]/);
  assert.throws(() => mha.forward(x, x, x, { attnMask: zeros([3, 4]) }), /attnMask \[3,4\] should be \[4, 4\]/);
  assert.throws(() => mha.forward(randn([2, 4, 6], rng), x, x), /query \[2,4,6\] should be \[B, L, E\]/);
});
