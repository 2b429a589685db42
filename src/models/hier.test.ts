/** hier-lm: conformance on name-runs, segment decoding equals the teacher-forced decoder, codes change the segments. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { conformance } from '../../test/model_conformance.js';
import { Rng, noGrad } from '../engine/index.js';
import { loadTextSource } from '../train/text_data.js';
import { HierLM } from './hier.js';

conformance('hier-lm', { data: 'name-runs', limit: 64, steps: 20 });

test('name-runs: runs of K alphabetically consecutive names as [N, K, maxLen + 2]', () => {
  const ds = loadTextSource('name-runs', { model: { segments: 3 }, limit: 20 });
  assert.deepEqual(ds.train.x.shape.slice(1), [3, 17]);
  assert.equal(ds.info.extra?.format, 'segments');
  const x = ds.train.x.i32();
  // Every segment starts with <bos> and has an <eos>.
  for (let r = 0; r < 20 * 3; r++) {
    assert.equal(x[r * 17], 1);
    assert.ok(Array.from(x.subarray(r * 17, (r + 1) * 17)).includes(2));
  }
});

test('hier-lm: incremental segment decoding matches the teacher-forced decoder; the plan depends on earlier segments', () => {
  const ds = loadTextSource('name-runs', { limit: 8 });
  const m = new HierLM({ embedDim: 8, segDim: 8, codeDim: 8, hiddenDim: 16 }, new Rng(0), ds.info);
  m.eval();
  noGrad(() => {
    const x = ds.train.x.slice(0, 0, 2).contiguous(); // (2, K, W)
    const u = m.codes(x); // (2, K, C)
    const W = x.shape[2];
    const seg = 1;
    const ids = x.slice(1, seg, seg + 1).reshape([2, W]).contiguous();
    const full = m.decode(ids.slice(1, 0, 5).contiguous(), u.slice(1, seg, seg + 1).reshape([2, -1]).contiguous()).logits.logSoftmax(-1);
    // Plan: feed segment 0 of each row, then decode segment 1 step by step.
    let plan = m.startPlan(2);
    const xv = x.i32();
    const K = x.shape[1];
    const seg0 = [0, 1].map((r) => {
      const out: number[] = [];
      for (let j = 1; j < W && xv[(r * K) * W + j] !== 2; j++) out.push(xv[(r * K) * W + j]);
      return out;
    });
    plan = m.endSegment(plan, seg0);
    const dec = m.segmentDecoder(plan);
    let s = dec.startDecoding(2);
    const V = dec.vocabSize;
    const iv = ids.i32();
    for (let t = 0; t < 5; t++) {
      const lp = dec.nextLogProbs(s).f32();
      const want = full.slice(1, t, t + 1).reshape([2, V]).f32();
      for (let i = 0; i < lp.length; i++) assert.ok(Math.abs(lp[i] - want[i]) < 1e-4, `step ${t}: ${lp[i]} vs ${want[i]}`);
      s = dec.advance(s, Int32Array.of(iv[t + 1], iv[W + t + 1]));
    }
    const samples = m.sample(3, new Rng(0), undefined, { temperature: 0.8 });
    assert.equal(samples.kind, 'text');
    if (samples.kind === 'text') for (const t of samples.texts) assert.equal(t.split(', ').length, m.segments);
  });
});
