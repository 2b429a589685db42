/**
 * seq2seq: conformance of both architectures (and both LSTM attention scores) on
 * CMUdict, incremental decoding (KV cache / LSTM state, beam reordering) against the
 * teacher-forced forward, and edit distance / BLEU on known cases.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor } from '../engine/index.js';
import { conformance } from '../../test/model_conformance.js';
import { loadTaskSource } from '../train/task_data.js';
import { Seq2Seq, editDistance, corpusBleu, sequenceScores } from './seq2seq.js';
import type { Config } from './registry.js';

conformance('seq2seq', { data: 'cmudict', limit: 128, steps: 25 });
conformance('seq2seq', { data: 'cmudict', limit: 64, steps: 15, modelOverrides: { arch: 'lstm', attention: 'luong' } });
conformance('seq2seq', { data: 'cmudict', limit: 64, steps: 15, modelOverrides: { arch: 'lstm', attention: 'bahdanau' } });
conformance('seq2seq', { data: 'mobydick-keywords', limit: 64, steps: 10, batchSize: 8 });

test('editDistance: known cases', () => {
  assert.equal(editDistance([], []), 0);
  assert.equal(editDistance([1, 2, 3], []), 3);
  assert.equal(editDistance('kitten'.split(''), 'sitting'.split('')), 3);
  assert.equal(editDistance('flaw'.split(''), 'lawn'.split('')), 2);
  assert.equal(editDistance([1, 2, 3], [1, 3]), 1);
});

test('corpusBleu: identical, disjoint, brevity penalty and a hand-computed case', () => {
  const ref = 'the cat sat on the mat'.split(' ');
  assert.equal(corpusBleu([ref], [ref]), 1);
  assert.equal(corpusBleu([['a', 'b', 'c', 'd']], [ref]), 0);
  // Candidate = the first 4 reference words: all precisions 1, BP = exp(1 - 6/4).
  assert.ok(Math.abs(corpusBleu([ref.slice(0, 4)], [ref]) - Math.exp(1 - 6 / 4)) < 1e-12);
  // 'the the the the the the' vs ref (Papineni's clipping example, unigram only): 2/6.
  assert.ok(Math.abs(corpusBleu([new Array(6).fill('the')], [ref], 1) - 2 / 6) < 1e-12);
  // Bigram BLEU of 'the cat sat on the rug': p1 = 5/6, p2 = 4/5, BP = 1.
  const c = 'the cat sat on the rug'.split(' ');
  assert.ok(Math.abs(corpusBleu([c], [ref], 2) - Math.sqrt((5 / 6) * (4 / 5))) < 1e-12);
  const s = sequenceScores([[1, 2, 3], [4]], [[1, 2, 3], [4, 5]]);
  assert.equal(s.seqAcc, 0.5);
  assert.equal(s.ter, 1 / 5);
});

for (const over of [{ arch: 'transformer' }, { arch: 'lstm', attention: 'bahdanau' }] as Config[]) {
  test(`seq2seq (${over.arch}): step-by-step decoding matches the teacher-forced forward, with beam reordering`, () => {
    const ds = loadTaskSource('cmudict', { limit: 40, seed: 0 });
    const m = new Seq2Seq({ dModel: 16, nHead: 2, nLayer: 2, hiddenDim: 16, dropout: 0, ...over }, new Rng(0), ds.info);
    m.eval();
    const x = ds.train.x.slice(0, 0, 3).contiguous();
    const y = ds.train.y.slice(0, 0, 3).contiguous();
    const full = m.forwardLogits(x, y).logSoftmax(-1); // (3, U - 1, V)
    const U = y.shape[1];
    const yv = y.i32();
    // Reverse the rows at every step: row r of the state continues row 2 - r.
    let s = m.startDecoding(3, { source: x });
    let order = [0, 1, 2]; // state row -> example
    for (let t = 0; t < 6; t++) {
      const lp = m.nextLogProbs(s).f32();
      const V = m.vocabSize;
      for (let r = 0; r < 3; r++) {
        const want = full.index(0, order[r]).index(0, t).f32();
        for (let v = 0; v < V; v += 7) assert.ok(Math.abs(lp[r * V + v] - want[v]) < 1e-4, `t=${t} row ${r} v=${v}: ${lp[r * V + v]} vs ${want[v]}`);
      }
      order = [order[2], order[1], order[0]];
      const toks = Int32Array.from(order, (e) => yv[e * U + t + 1]);
      s = m.advance(s, toks, Int32Array.of(2, 1, 0));
    }
  });
}

test('seq2seq: greedy equals its own argmax chain and evaluate reports scores', () => {
  const ds = loadTaskSource('cmudict', { limit: 40, seed: 0 });
  const m = new Seq2Seq({ dModel: 16, nHead: 2, nLayer: 1, dropout: 0 }, new Rng(1), ds.info);
  m.eval();
  const x = new Tensor(ds.test.x.contiguous().i32().slice(), ds.test.x.shape);
  const h = m.greedy(x, 5);
  assert.equal(h.length, x.shape[0]);
  for (const row of h) assert.ok(row.length <= 5);
  const ev = m.evaluate({ x: ds.test.x, y: ds.test.y }, new Rng(0));
  for (const k of ['seqAcc', 'ter', 'bleu', 'ce']) assert.ok(Number.isFinite(ev[k]), k);
});
