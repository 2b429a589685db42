/**
 * Decoding strategies on a table-like fake TokenModel (log-probabilities a fixed random
 * function of the prefix, so exhaustive enumeration is possible) and on a tiny rnn-lm.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, Tensor } from '../engine/index.js';
import { CharTokenizer } from '../data/tokenizer.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { DecodeState, StartDecodingOptions, TokenModel } from '../models/sequence.js';
import { RnnLM } from '../models/rnn_lm.js';
import { loadTextSource } from '../train/text_data.js';
import { applyTopK, applyTopP, beamSearch, decodeSamples, greedyDecode, lengthNorm, sampleSequences } from './decoding.js';

interface FakeState extends DecodeState {
  seqs: number[][];
}

/** log p(next | prefix) = log-softmax of N(0, sharpness^2) logits seeded by a hash of the prefix. */
class FakeLM implements TokenModel {
  readonly tokenizer: Tokenizer;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  constructor(chars: string, private readonly seed = 0, private readonly sharpness = 2) {
    this.tokenizer = CharTokenizer.fromText(chars, { specials: true });
    this.vocabSize = this.tokenizer.vocabSize;
    this.bosId = this.tokenizer.bos;
    this.eosId = this.tokenizer.eos;
    this.padId = this.tokenizer.pad;
  }
  logProbs(seq: readonly number[]): Float64Array {
    let h = 17 + this.seed * 7919;
    for (const t of seq) h = (h * 31 + t + 1) % 2147483647;
    const rng = new Rng(h);
    const l = Float64Array.from({ length: this.vocabSize }, () => this.sharpness * rng.normal());
    const m = Math.max(...l);
    const z = Math.log(l.reduce((a, x) => a + Math.exp(x - m), 0)) + m;
    return l.map((x) => x - z);
  }
  startDecoding(rows: number, opts: StartDecodingOptions = {}): DecodeState {
    const seqs = Array.from({ length: rows }, () => [this.bosId, ...(opts.prompt ?? [])]);
    return { rows, length: seqs[0].length, seqs } as FakeState;
  }
  nextLogProbs(state: DecodeState): Tensor {
    const s = state as FakeState;
    const out = new Float32Array(s.rows * this.vocabSize);
    s.seqs.forEach((q, r) => out.set(this.logProbs(q), r * this.vocabSize));
    return new Tensor(out, [s.rows, this.vocabSize]);
  }
  advance(state: DecodeState, tokens: Int32Array, beamIndices?: Int32Array): DecodeState {
    const s = state as FakeState;
    const base = beamIndices ? Array.from(beamIndices, (b) => s.seqs[b]) : s.seqs;
    const seqs = base.map((q, r) => [...q, tokens[r]]);
    return { rows: seqs.length, length: s.length + 1, seqs } as FakeState;
  }
}

/** Exact log-probability of a generated sequence (ended by <eos> when `ended`). */
function seqLogProb(m: FakeLM, tokens: number[], ended: boolean): number {
  const prefix = [m.bosId];
  let lp = 0;
  for (const t of [...tokens, ...(ended ? [m.eosId] : [])]) {
    lp += m.logProbs(prefix)[t];
    prefix.push(t);
  }
  return lp;
}

/** Every sequence of up to maxLen steps over the non-special tokens: ended by <eos>, or cut at maxLen. */
function enumerate(m: FakeLM, maxLen: number): { tokens: number[]; logProb: number }[] {
  const symbols = Array.from({ length: m.vocabSize - 4 }, (_, i) => i + 4);
  const out: { tokens: number[]; logProb: number }[] = [];
  const walk = (prefix: number[]): void => {
    if (prefix.length < maxLen) out.push({ tokens: prefix, logProb: seqLogProb(m, prefix, true) });
    if (prefix.length === maxLen) {
      out.push({ tokens: prefix, logProb: seqLogProb(m, prefix, false) });
      return;
    }
    for (const s of symbols) walk([...prefix, s]);
  };
  walk([]);
  return out.sort((a, b) => b.logProb - a.logProb);
}

test('beam search with width 1 equals greedy decoding (fake model and rnn-lm)', () => {
  for (let seed = 0; seed < 5; seed++) {
    const m = new FakeLM('abc', seed);
    const g = greedyDecode(m, 1, { maxLen: 8 })[0];
    const b = beamSearch(m, { width: 1, maxLen: 8 })[0];
    assert.deepEqual(b.tokens, g.tokens);
    assert.ok(Math.abs(b.logProb - g.logProb) < 1e-5);
  }
  const ds = loadTextSource('names', { limit: 8 });
  const lm = new RnnLM({ hiddenDim: 16, embedDim: 8 }, new Rng(0), ds.info);
  lm.eval();
  const g = greedyDecode(lm, 1, { maxLen: 10, prompt: 'ma' })[0];
  const b = beamSearch(lm, { width: 1, maxLen: 10, prompt: 'ma' })[0];
  assert.equal(b.text, g.text);
  assert.ok(g.text.startsWith('ma'));
});

test('beam search wide enough finds the exact best sequence found by enumeration, and beats greedy', () => {
  let beaten = 0;
  for (let seed = 0; seed < 6; seed++) {
    const m = new FakeLM('ab', seed, 1.5);
    const all = enumerate(m, 4); // 2^4 cut + 15 ended = 31 sequences
    const best = beamSearch(m, { width: 40, maxLen: 4, earlyStop: false });
    assert.deepEqual(best[0].tokens, all[0].tokens, `seed ${seed}`);
    assert.ok(Math.abs(best[0].logProb - all[0].logProb) < 1e-4);
    // The ranking of the top 5 agrees too.
    assert.deepEqual(best.slice(0, 5).map((d) => d.logProb.toFixed(4)), all.slice(0, 5).map((d) => d.logProb.toFixed(4)));
    const g = greedyDecode(m, 1, { maxLen: 4 })[0];
    assert.ok(best[0].logProb >= g.logProb - 1e-6);
    if (best[0].logProb > g.logProb + 1e-6) beaten++;
  }
  assert.ok(beaten > 0, 'beam search never beat greedy on 6 random models');
});

test('top-k = 1 and temperature -> 0 equal greedy; same seed gives the same text', () => {
  const m = new FakeLM('abcd', 3);
  const g = greedyDecode(m, 3, { maxLen: 10 });
  assert.deepEqual(sampleSequences(m, 3, new Rng(1), { topK: 1, maxLen: 10 }).map((d) => d.tokens), g.map((d) => d.tokens));
  assert.deepEqual(sampleSequences(m, 3, new Rng(2), { temperature: 1e-4, maxLen: 10 }).map((d) => d.tokens), g.map((d) => d.tokens));
  const a = sampleSequences(m, 5, new Rng(7), { maxLen: 10, topP: 0.9 }).map((d) => d.text);
  const b = sampleSequences(m, 5, new Rng(7), { maxLen: 10, topP: 0.9 }).map((d) => d.text);
  assert.deepEqual(a, b);
  const c = sampleSequences(m, 5, new Rng(8), { maxLen: 10, topP: 0.9 }).map((d) => d.text);
  assert.notDeepEqual(a, c);
});

test('top-p keeps the smallest set of most likely tokens whose mass reaches p; top-k keeps k', () => {
  const probs = [0.05, 0.5, 0.15, 0.3];
  const kept = (p: number): number[] => {
    const l = applyTopP(Float32Array.from(probs, Math.log), p);
    return Array.from(l.keys()).filter((i) => l[i] > -Infinity).sort();
  };
  assert.deepEqual(kept(0.5), [1]);
  assert.deepEqual(kept(0.51), [1, 3]);
  assert.deepEqual(kept(0.8), [1, 3]);
  assert.deepEqual(kept(0.81), [1, 2, 3]);
  assert.deepEqual(kept(0.96), [0, 1, 2, 3]);
  assert.deepEqual(kept(1), [0, 1, 2, 3]);
  assert.deepEqual(kept(0.01), [1]);
  const k2 = applyTopK(Float32Array.of(1, 4, 2, 3), 2);
  assert.deepEqual(Array.from(k2), [-Infinity, 4, -Infinity, 3]);
  // Sampling with top-p 0.5 on this distribution can only give the 0.5 token.
  const m = new FakeLM('ab', 0);
  for (const d of sampleSequences(m, 8, new Rng(0), { topP: 1e-3, maxLen: 6 })) assert.deepEqual(d.tokens, greedyDecode(m, 1, { maxLen: 6 })[0].tokens);
});

test('stop sequences cut the text and end decoding; maxLen bounds the length; prompts start the text', () => {
  const m = new FakeLM('ab', 1, 0.1); // nearly uniform over a, b, <eos>
  for (const d of sampleSequences(m, 20, new Rng(0), { stop: ['b'], maxLen: 30, prompt: 'aa' })) {
    assert.ok(d.text.startsWith('aa'));
    assert.ok(!d.text.slice(2).includes('b'), d.text);
    if (d.tokens.length < 30 && d.tokens.includes(5)) assert.equal(d.finished, true);
    assert.equal(d.tokens.filter((t) => t === 5).length <= 1, true, 'decoding went on after the stop sequence');
  }
  for (const d of sampleSequences(m, 20, new Rng(1), { maxLen: 3 })) assert.ok(d.tokens.length <= 3);
  for (const d of beamSearch(m, { width: 4, maxLen: 5, stop: ['ab'] })) {
    assert.ok(d.tokens.length <= 5);
    assert.ok(!d.text.includes('ab'));
  }
});

test('diverse beam search: groups start with different tokens under a strong diversity penalty', () => {
  const m = new FakeLM('abcd', 2);
  const plain = beamSearch(m, { width: 2, maxLen: 6, numReturn: 2 });
  const diverse = beamSearch(m, { width: 2, groups: 2, diversity: 100, maxLen: 6, numReturn: 2 });
  assert.equal(diverse.length, 2);
  assert.notEqual(diverse[0].tokens[0], diverse[1].tokens[0]);
  assert.ok(plain[0].logProb >= Math.min(...diverse.map((d) => d.logProb)) - 1e-9);
  assert.throws(() => beamSearch(m, { width: 3, groups: 2 }), /must divide/);
});

test('length penalties: GNMT and simple forms; a strong penalty favours longer hypotheses', () => {
  assert.equal(lengthNorm(1, 1), 1);
  assert.ok(Math.abs(lengthNorm(7, 0.6) - Math.pow(2, 0.6)) < 1e-12);
  assert.equal(lengthNorm(4, 2, 'simple'), 16);
  assert.equal(lengthNorm(9, 0), 1);
  const m = new FakeLM('ab', 4, 1);
  const short = beamSearch(m, { width: 8, maxLen: 8, lengthPenalty: 0 })[0];
  const long = beamSearch(m, { width: 8, maxLen: 8, lengthPenalty: 3, lengthPenaltyKind: 'simple' })[0];
  assert.ok(long.tokens.length >= short.tokens.length);
});

test('decodeSamples maps CLI options to strategies and rejects unknown keys', () => {
  const m = new FakeLM('abc', 5);
  const greedy = greedyDecode(m, 2, { maxLen: 6 }).map((d) => d.text);
  assert.deepEqual(decodeSamples(m, 2, new Rng(0), { greedy: true, maxLen: 6 }), greedy);
  assert.deepEqual(decodeSamples(m, 2, new Rng(0), { temperature: 0, maxLen: 6 }), greedy);
  const beams = decodeSamples(m, 3, new Rng(0), { beam: 4, maxLen: 6, lengthPenalty: 0.6 });
  assert.equal(beams.length, 3);
  assert.deepEqual(beams, beamSearch(m, { width: 4, maxLen: 6, lengthPenalty: 0.6, numReturn: 3 }).map((d) => d.text));
  const s = decodeSamples(m, 4, new Rng(3), { temperature: 0.7, topK: 2, prompt: 'ca', stop: 'b', maxLen: '12' as unknown as number });
  assert.equal(s.length, 4);
  for (const t of s) assert.ok(t.startsWith('ca') && !t.slice(2).includes('b'));
  assert.deepEqual(s, decodeSamples(m, 4, new Rng(3), { temperature: 0.7, topK: 2, prompt: 'ca', stop: 'b', maxLen: 12 }));
  assert.throws(() => decodeSamples(m, 1, new Rng(0), { topk: 3 }), /unknown sample option 'topk'/);
  assert.throws(() => decodeSamples(m, 1, new Rng(0), { temperature: 'hot' }), /sample.temperature/);
});
