/** gpt: conformance (learned and rotary positions), KV-cache decoding equals full recomputation, context sliding. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { conformance } from '../../test/model_conformance.js';
import { Rng, Tensor, noGrad } from '../engine/index.js';
import { loadTextSource } from '../train/text_data.js';
import { GPT } from './gpt.js';

conformance('gpt', { data: 'moby-dick', limit: 32, steps: 20 });
conformance('gpt', { data: 'names', limit: 64, modelOverrides: { positions: 'rotary', dropout: 0.1 }, steps: 20 });

/** log p(next | ids) by a full forward pass without cache: [V]. */
function fullLogProbs(m: GPT, ids: number[]): Float32Array {
  const L = ids.length;
  const logits = m.forward(new Tensor(Int32Array.from(ids), [1, L])); // (1, L, V)
  return logits.slice(1, L - 1, L).reshape([m.vocabSize]).logSoftmax(-1).f32();
}

function assertClose(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst < tol, `${what}: max difference ${worst}`);
}

for (const positions of ['learned', 'rotary']) {
  test(`gpt (${positions}): KV-cache decoding equals full recomputation, with beam reordering`, () => {
    const ds = loadTextSource('moby-dick', { model: { blockSize: 16 }, limit: 4 });
    const m = new GPT({ nLayer: 2, nHead: 2, dModel: 16, blockSize: 16, dropout: 0, positions }, new Rng(0), ds.info);
    m.eval();
    noGrad(() => {
      const rng = new Rng(3);
      const V = m.vocabSize;
      const prompt = m.tokenizer.encode('Call me');
      let s = m.startDecoding(3, { prompt });
      // A corpus tokenizer has no <bos>: the prompt itself starts the sequence.
      let seqs = [0, 1, 2].map(() => [...prompt]);
      for (let t = 0; t < 9; t++) {
        const lp = m.nextLogProbs(s).f32();
        assert.equal(m.nextLogProbs(s).shape[0], 3);
        for (let r = 0; r < 3; r++) assertClose(lp.subarray(r * V, (r + 1) * V), fullLogProbs(m, seqs[r]), 1e-4, `step ${t} row ${r}`);
        const beams = Int32Array.from([0, 1, 2], () => rng.int(0, 3));
        const toks = Int32Array.from([0, 1, 2], () => rng.int(0, V));
        s = m.advance(s, toks, beams);
        seqs = Array.from(beams, (b, r) => [...seqs[b], toks[r]]);
      }
    });
  });
}

test('gpt: decoding past blockSize slides the context (learned: rebuilt from the last blockSize/2 tokens)', () => {
  const ds = loadTextSource('moby-dick', { model: { blockSize: 8 }, limit: 4 });
  const m = new GPT({ nLayer: 1, nHead: 2, dModel: 8, blockSize: 8, dropout: 0 }, new Rng(0), ds.info);
  m.eval();
  noGrad(() => {
    const V = m.vocabSize;
    const ids = m.tokenizer.encode('Call me Ishmael.');
    let s = m.startDecoding(1, { prompt: ids.slice(0, 3) });
    for (let t = 3; t < ids.length; t++) {
      s = m.advance(s, Int32Array.of(ids[t]));
      const seen = t + 1;
      if (seen === 9) {
        // The 9th token overflowed the 8 positions: the cache holds the last 4 tokens.
        assertClose(m.nextLogProbs(s).f32().subarray(0, V), fullLogProbs(m, ids.slice(seen - 4, seen)), 1e-4, 'rebuilt cache');
      }
      assert.ok(Array.from(m.nextLogProbs(s).f32()).every(Number.isFinite));
    }
    const text = m.sample(2, new Rng(1), undefined, { maxLen: 30, prompt: 'The ' });
    assert.equal(text.kind, 'text');
    if (text.kind === 'text') for (const t of text.texts) assert.ok(t.startsWith('The ') && t.length >= 4);
  });
});

test('gpt: weight tying shares the token embedding with the output layer; untied has lm_head', () => {
  const ds = loadTextSource('names', { limit: 8 });
  const tied = new GPT({ nLayer: 1, nHead: 2, dModel: 8, blockSize: 32 }, new Rng(0), ds.info);
  const untied = new GPT({ nLayer: 1, nHead: 2, dModel: 8, blockSize: 32, tieWeights: false }, new Rng(0), ds.info);
  const names = (g: GPT): string[] => g.namedParameters().map(([n]) => n);
  assert.ok(!names(tied).includes('lm_head.weight'));
  assert.ok(names(untied).includes('lm_head.weight'));
  assert.ok(names(tied).includes('transformer.h.0.attn.c_attn.weight'));
  assert.throws(() => new GPT({ blockSize: 8 }, new Rng(0), ds.info), /exceed blockSize/);
});
