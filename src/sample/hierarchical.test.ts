/** Hierarchical sampling: segment count, seeds, beam width 1 = greedy per segment, CLI option mapping. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../engine/index.js';
import { loadTextSource } from '../train/text_data.js';
import { HierLM } from '../models/hier.js';
import { isHierarchicalModel } from '../models/sequence.js';
import { hierarchicalSample, hierarchicalSamples } from './hierarchical.js';

const ds = loadTextSource('name-runs', { limit: 8 });
const model = new HierLM({ embedDim: 8, segDim: 8, codeDim: 8, hiddenDim: 16 }, new Rng(0), ds.info);
model.eval();

test('hierarchicalSample: K segments per sample, joined by the separator; same seed same text', () => {
  assert.ok(isHierarchicalModel(model));
  const a = hierarchicalSample(model, 3, new Rng(1), { sampling: { temperature: 1, maxLen: 8 } });
  assert.equal(a.length, 3);
  for (const s of a) {
    assert.equal(s.segments.length, model.segments);
    assert.equal(s.text, s.segments.join(', '));
    for (const t of s.tokens) assert.ok(t.length <= 8);
  }
  assert.deepEqual(hierarchicalSample(model, 3, new Rng(1), { sampling: { maxLen: 8 } }).map((s) => s.text), a.map((s) => s.text));
  assert.equal(hierarchicalSample(model, 2, new Rng(1), { segments: 2 })[0].segments.length, 2);
});

test('hierarchicalSample: beam width 1 per segment equals greedy segments; CLI mapping', () => {
  const g = hierarchicalSample(model, 2, new Rng(0), { sampling: { temperature: 0, maxLen: 10 } });
  const b = hierarchicalSample(model, 2, new Rng(0), { beam: { width: 1, maxLen: 10 } });
  assert.deepEqual(b.map((s) => s.text), g.map((s) => s.text));
  assert.deepEqual(hierarchicalSamples(model, 2, new Rng(0), { greedy: true, maxLen: 10 }), g.map((s) => s.text));
  assert.equal(hierarchicalSamples(model, 2, new Rng(0), { beam: 3, segments: 3 })[0].split(', ').length, 3);
  assert.throws(() => hierarchicalSamples(model, 1, new Rng(0), { width: 3 }), /unknown sample option 'width'/);
});
