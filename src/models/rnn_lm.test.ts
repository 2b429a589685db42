/** rnn-lm: conformance (LSTM on names, GRU and Elman RNN on Moby-Dick windows), incremental decoding = full forward. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { conformance } from '../../test/model_conformance.js';
import { Rng, Tensor, noGrad } from '../engine/index.js';
import { loadTextSource } from '../train/text_data.js';
import { RnnLM } from './rnn_lm.js';

conformance('rnn-lm', { data: 'names', limit: 128 });
conformance('rnn-lm', { data: 'moby-dick', limit: 32, modelOverrides: { cell: 'gru', nLayer: 2, blockSize: 16 }, steps: 20 });
conformance('rnn-lm', { data: 'moby-dick', limit: 32, modelOverrides: { cell: 'rnn', blockSize: 16 }, steps: 20, lr: 3e-3 });

test('rnn-lm: step-by-step decoding gives the log-probabilities of the full forward pass, beams reorder rows', () => {
  const ds = loadTextSource('names', { limit: 16 });
  const m = new RnnLM({ cell: 'lstm', nLayer: 2, embedDim: 8, hiddenDim: 16 }, new Rng(0), ds.info);
  m.eval();
  noGrad(() => {
    const x = ds.train.x.slice(0, 0, 2).contiguous(); // (2, W): <bos> name <eos> <pad>...
    const T = 6;
    const full = m.forward(x.slice(1, 0, T).contiguous(), null, null).logits.logSoftmax(-1); // (2, T, V)
    const V = m.vocabSize;
    const xv = x.i32();
    const W = x.shape[1];
    let s = m.startDecoding(2);
    for (let t = 0; t < T; t++) {
      const lp = m.nextLogProbs(s).f32();
      const want = full.slice(1, t, t + 1).reshape([2, V]).f32();
      for (let i = 0; i < lp.length; i++) assert.ok(Math.abs(lp[i] - want[i]) < 1e-5, `step ${t}: ${lp[i]} vs ${want[i]}`);
      s = m.advance(s, Int32Array.of(xv[t + 1], xv[W + t + 1]));
    }
    // Swapping rows with beamIndices swaps the distributions.
    const tok = Int32Array.of(5, 5);
    const a = m.nextLogProbs(m.advance(s, tok, Int32Array.of(1, 0))).f32();
    const b = m.nextLogProbs(m.advance(s, tok)).f32();
    for (let i = 0; i < V; i++) {
      assert.ok(Math.abs(a[i] - b[V + i]) < 1e-6);
      assert.ok(Math.abs(a[V + i] - b[i]) < 1e-6);
    }
  });
});

test('rnn-lm: names loss ignores padding (a longer pad tail does not change the loss)', () => {
  const ds = loadTextSource('names', { limit: 8 });
  const m = new RnnLM({ hiddenDim: 16, embedDim: 8 }, new Rng(0), ds.info);
  m.eval();
  const x = ds.train.x;
  const [N, W] = x.shape;
  const wider = new Int32Array(N * (W + 3)).fill(0);
  for (let i = 0; i < N; i++) wider.set(x.i32().subarray(i * W, (i + 1) * W), i * (W + 3));
  const a = noGrad(() => m.loss({ x }, new Rng(0)).loss.item());
  const b = noGrad(() => m.loss({ x: new Tensor(wider, [N, W + 3]) }, new Rng(0)).loss.item());
  assert.ok(Math.abs(a - b) < 1e-5, `${a} vs ${b}`);
});
