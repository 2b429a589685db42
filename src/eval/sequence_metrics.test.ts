/**
 * Greedy and beam search on a hand-made TokenModel whose probabilities are fixed
 * tables, where greedy decoding is suboptimal and beam search finds the better output;
 * and the seq2seq evaluator end to end on a tiny model.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor } from '../engine/index.js';
import { CharTokenizer } from '../data/tokenizer.js';
import type { DecodeState, TokenModel } from '../models/sequence.js';
import { Seq2Seq } from '../models/seq2seq.js';
import { loadTaskSource } from '../train/task_data.js';
import { batchBeamSearch, batchGreedyDecode, greedyVsBeam, seq2seqEvaluator } from './sequence_metrics.js';
import { beamSearch } from '../sample/decoding.js';

/**
 * Vocabulary <pad> <bos> <eos> <unk> a b. After <bos>: a 0.6, b 0.4. After 'a': <eos> 0.3,
 * a 0.35, b 0.35 (then 'a a' / 'a b' end with certainty). After 'b': <eos> 1.
 * Greedy: 'a' then 'a'/'b' (0.6 * 0.35 = 0.21), beam: 'b' (0.4).
 */
class Toy implements TokenModel {
  readonly tokenizer = new CharTokenizer(['a', 'b'], true);
  readonly vocabSize = 6;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly padId = 0;
  readonly maxLength = 5;
  private dist(prefix: number[]): number[] {
    const p = new Array<number>(6).fill(1e-9);
    const last = prefix[prefix.length - 1];
    if (prefix.length === 1) [p[4], p[5]] = [0.6, 0.4];
    else if (prefix.length === 2 && last === 4) [p[2], p[4], p[5]] = [0.3, 0.35, 0.35];
    else p[2] = 1;
    return p.map(Math.log);
  }
  startDecoding(rows: number): DecodeState {
    return { rows, length: 1, prefixes: Array.from({ length: rows }, () => [1]) } as DecodeState;
  }
  nextLogProbs(s: DecodeState): Tensor {
    const pre = (s as unknown as { prefixes: number[][] }).prefixes;
    return new Tensor(Float32Array.from(pre.flatMap((p) => this.dist(p))), [pre.length, 6]);
  }
  advance(s: DecodeState, tokens: Int32Array, beam?: Int32Array): DecodeState {
    let pre = (s as unknown as { prefixes: number[][] }).prefixes;
    if (beam) pre = Array.from(beam, (i) => pre[i]);
    return { rows: pre.length, length: s.length + 1, prefixes: pre.map((p, r) => [...p, tokens[r]]) } as DecodeState;
  }
}

test('greedy follows the argmax; beam search finds the more likely short output', () => {
  const m = new Toy();
  const src = new Tensor(new Int32Array(2), [2, 1]);
  assert.deepEqual(batchGreedyDecode(m, src), [[4, 4], [4, 4]]);
  const b = batchBeamSearch(m, src, { beamSize: 3, lengthPenalty: 0 });
  assert.deepEqual(b.hyps, [[5], [5]]);
  assert.ok(Math.abs(b.logps[0] - Math.log(0.4)) < 1e-5);
  // Beam width 1 is greedy.
  assert.deepEqual(batchBeamSearch(m, src, { beamSize: 1, lengthPenalty: 0 }).hyps, [[4, 4], [4, 4]]);
  const g = greedyVsBeam(m, { x: src, y: new Tensor(Int32Array.of(1, 5, 2, 1, 5, 2), [2, 3]) }, { beamSize: 3, lengthPenalty: 0 });
  assert.equal(g.greedySeqAcc, 0);
  assert.equal(g.beamSeqAcc, 1);
  assert.equal(g.beamTer, 0);
});

test('batched beam search agrees with src/sample/decoding beamSearch on a tiny LSTM seq2seq', () => {
  const ds = loadTaskSource('cmudict', { limit: 40, seed: 0 });
  const m = new Seq2Seq({ arch: 'lstm', dModel: 16, nLayer: 1, hiddenDim: 16, dropout: 0 }, new Rng(2), ds.info);
  m.eval();
  const x = ds.train.x.slice(0, 0, 6).contiguous();
  const mine = batchBeamSearch(m, x, { beamSize: 3, lengthPenalty: 0.6, maxLen: 8 });
  for (let i = 0; i < 6; i++) {
    const ref = beamSearch(m, { width: 3, lengthPenalty: 0.6, source: x.slice(0, i, i + 1).contiguous(), maxLen: 8, numReturn: 1 })[0];
    assert.deepEqual(mine.hyps[i], ref.tokens, `row ${i}`);
    assert.ok(Math.abs(mine.logps[i] - ref.logProb) < 1e-4, `row ${i}: ${mine.logps[i]} vs ${ref.logProb}`);
  }
});

test('seq2seq evaluator: greedy vs beam figures on a tiny model', () => {
  const ds = loadTaskSource('cmudict', { limit: 60, seed: 0 });
  const m = new Seq2Seq({ dModel: 16, nHead: 2, nLayer: 1, dropout: 0 }, new Rng(0), ds.info);
  m.eval();
  const r = seq2seqEvaluator(m, ds, { quick: true });
  for (const k of ['greedySeqAcc', 'greedyTer', 'beamSeqAcc', 'beamTer', 'beamBleu']) assert.ok(Number.isFinite(r[k]), `${k}: ${r[k]}`);
  assert.equal(r.beamExamples, ds.test.x.shape[0]);
  // Greedy figures match the model's own greedy decoding on the same pairs.
  const own = m.evaluate({ x: ds.test.x, y: ds.test.y }, new Rng(0));
  assert.ok(Math.abs(own.ter - r.greedyTer) < 1e-12);
});
