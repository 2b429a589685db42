/**
 * NTM: each addressing step (sec. 3.3, eqs. 5-9) against values computed by hand on
 * small vectors, the task generator's layout, and conformance of 'ntm' and the
 * 'lstm-seq' baseline on the copy task.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, tensor } from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { conformance } from '../../test/model_conformance.js';
import { contentWeights, interpolate, circularShift, sharpen, generateTask, TASK_DEFAULTS, taskSteps } from './ntm.js';

conformance('ntm', { data: 'copy', limit: 64, steps: 25 });
conformance('lstm-seq', { data: 'copy', limit: 64, steps: 25 });
conformance('ntm', { data: 'assoc-recall', limit: 32, steps: 10, modelOverrides: { controller: 'mlp' } });

function close(t: Tensor, want: number[], tol = 1e-5): void {
  const v = Array.from(t.values());
  assert.equal(v.length, want.length);
  v.forEach((x, i) => assert.ok(Math.abs(x - want[i]) < tol, `[${i}] ${x} vs ${want[i]} (got ${v.join(', ')})`));
}

test('ntm: content weights = softmax(beta * cosine(key, rows))', () => {
  // Rows (1,0), (0,1), (1,1); key (1,0): cosines 1, 0, 1/sqrt2; beta 2.
  const mem = tensor([[[1, 0], [0, 1], [1, 1]]]);
  const w = contentWeights(mem, tensor([[1, 0]]), tensor([[2]]));
  const e = [Math.exp(2), 1, Math.exp(2 / Math.SQRT2)];
  const z = e[0] + e[1] + e[2];
  close(w, e.map((v) => v / z));
});

test('ntm: interpolation gate mixes content and previous weights', () => {
  close(interpolate(tensor([[1, 0, 0]]), tensor([[0, 0.5, 0.5]]), tensor([[0.25]])), [0.25, 0.375, 0.375]);
});

test('ntm: circular shift by -1, 0, +1 wraps around', () => {
  const w = tensor([[0.1, 0.2, 0.3, 0.4]]);
  close(circularShift(w, tensor([[0, 0, 1]])), [0.4, 0.1, 0.2, 0.3]); // +1: every weight moves one place forward
  close(circularShift(w, tensor([[1, 0, 0]])), [0.2, 0.3, 0.4, 0.1]); // -1
  close(circularShift(w, tensor([[0, 1, 0]])), [0.1, 0.2, 0.3, 0.4]);
  // A blurred shift: 0.5 stay + 0.5 forward. w~(i) = 0.5 w(i) + 0.5 w(i-1).
  close(circularShift(w, tensor([[0, 0.5, 0.5]])), [0.25, 0.15, 0.25, 0.35]);
});

test('ntm: sharpening raises to gamma and renormalises', () => {
  // (0.2, 0.8) ^ 2 = (0.04, 0.64) / 0.68.
  close(sharpen(tensor([[0.2, 0.8]]), tensor([[2]])), [0.04 / 0.68, 0.64 / 0.68]);
  close(sharpen(tensor([[0.2, 0.8]]), tensor([[1]])), [0.2, 0.8]);
});

test('ntm: copy task layout (delimiter, output phase, mask)', () => {
  const s = { ...TASK_DEFAULTS.copy, bits: 3 };
  const b = generateTask('copy', 2, s, new Rng(0), 4);
  assert.deepEqual(b.x.shape, [2, taskSteps('copy', s, 4), 5]);
  const x = b.x.toList() as number[][][];
  const y = b.y.toList() as number[][][];
  const m = b.mask.toList() as number[][];
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(x[i][4], [0, 0, 0, 1, 0]); // delimiter
    assert.deepEqual(m[i], [0, 0, 0, 0, 0, 1, 1, 1, 1]);
    for (let t = 0; t < 4; t++) assert.deepEqual(y[i][5 + t], x[i][t].slice(0, 3));
  }
  const r = generateTask('repeat-copy', 3, { ...TASK_DEFAULTS['repeat-copy'], maxLen: 3, maxRepeats: 2 }, new Rng(1));
  const rm = r.mask.toList() as number[][];
  const ry = r.y.toList() as number[][][];
  for (let i = 0; i < 3; i++) {
    const L = r.len.i32()[i];
    const R = Math.round((r.x.toList() as number[][][])[i][L][9] * 2);
    assert.equal(rm[i].reduce((a, v) => a + v, 0), L * R + 1);
    assert.equal(ry[i][L + 1 + L * R][8], 1); // end marker
  }
  const a = generateTask('assoc-recall', 2, TASK_DEFAULTS['assoc-recall'], new Rng(2), 3);
  assert.equal((a.mask.toList() as number[][])[0].reduce((s2, v) => s2 + v, 0), 3);
});

test('ntm: evaluate groups bit errors by test length, and cutting padding steps changes nothing', async () => {
  const { loadTaskSource } = await import('../train/task_data.js');
  const { NTM } = await import('./ntm.js');
  const ds = loadTaskSource('copy', { limit: 40, model: { taskMaxLen: 4 } });
  const m = new NTM({ hiddenDim: 8, memN: 8, memM: 4 }, new Rng(0), ds.info);
  const full = m.evaluate(ds.test, new Rng(0));
  assert.deepEqual(Object.keys(full).filter((k) => k.startsWith('bitErrors@')), ['bitErrors@2', 'bitErrors@4', 'bitErrors@6', 'bitErrors@8']);
  // The same numbers from one example at a time on its full padded length.
  const n = ds.test.x.shape[0];
  let bits = 0;
  for (let i = 0; i < n; i++) {
    const one = { x: ds.test.x.slice(0, i, i + 1), y: ds.test.y.slice(0, i, i + 1), mask: ds.test.mask.slice(0, i, i + 1) };
    bits += m.loss(one).metrics!.bitsPerSeq;
  }
  assert.ok(Math.abs(bits / n - full.bitsPerSeq) < 1e-3, `${bits / n} vs ${full.bitsPerSeq}`);
  assert.equal(n, 16);
  assert.equal(m.evaluate(ds.test, new Rng(0), { quick: true }).examples, 16);
});
