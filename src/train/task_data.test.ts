/**
 * Sequence task sources: names, shapes and splits of the algorithmic tasks (test
 * sizes longer than training), and the cmudict / keyword pairs with their tokenizers.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { tokenizerFromJSON } from '../data/tokenizer.js';
import { loadDataSource } from './data_source.js';
import { loadTaskSource, taskDataNames } from './task_data.js';

test('taskDataNames lists the tasks and loadDataSource routes them', () => {
  assert.deepEqual(taskDataNames(), ['copy', 'repeat-copy', 'assoc-recall', 'cmudict', 'mobydick-keywords']);
  assert.throws(() => loadDataSource('copy', ['image']), /sequence task/);
  assert.throws(() => loadTaskSource('nope', {}), /unknown sequence task/);
});

test('copy: train lengths 1..maxLen, test at 10/20/30/40 padded to the longest', () => {
  const ds = loadDataSource('copy', ['sequence'], { limit: 200, seed: 0 });
  assert.deepEqual(ds.train.x.shape, [200, 41, 10]);
  assert.deepEqual(ds.train.y.shape, [200, 41, 8]);
  const lens = Array.from(ds.train.len.i32());
  assert.ok(Math.min(...lens) >= 1 && Math.max(...lens) <= 20);
  assert.deepEqual([...new Set(ds.test.len.i32())], [10, 20, 30, 40]);
  assert.equal(ds.test.x.shape[1], 81);
  assert.equal(ds.info.kind, 'sequence');
  assert.equal(ds.info.extra?.outDim, 8);
  // Mask counts equal the lengths (one output step per input vector).
  const m = ds.test.mask.toList() as number[][];
  m.forEach((row, i) => assert.equal(row.reduce((a, b) => a + b, 0), ds.test.len.i32()[i]));
  // Model config keys change the task; 0 keeps the default.
  const small = loadTaskSource('copy', { limit: 8, model: { taskMaxLen: 5, taskBits: 0 } });
  assert.deepEqual(small.train.x.shape, [8, 11, 10]);
  // Same seed, same data.
  assert.deepEqual(loadTaskSource('copy', { limit: 8, seed: 3 }).train.x.toArray(), loadTaskSource('copy', { limit: 8, seed: 3 }).train.x.toArray());
});

test('cmudict: char ids -> <bos> phonemes <eos>, tokenizers round trip, held-out words', () => {
  const ds = loadTaskSource('cmudict', { limit: 400, seed: 0 });
  assert.equal(ds.info.kind, 'sequence');
  const src = tokenizerFromJSON(ds.info.tokenizer!);
  const tgt = tokenizerFromJSON(ds.info.targetTokenizer!);
  assert.equal(ds.train.x.shape[0] + ds.test.x.shape[0], 400);
  assert.equal(ds.train.x.dtype, 'int32');
  const x = ds.train.x.toList() as number[][];
  const y = ds.train.y.toList() as number[][];
  assert.equal(y[0][0], tgt.bos);
  assert.ok(y[0].includes(tgt.eos));
  const word = src.decode(x[0].filter((t) => t !== src.pad));
  assert.match(word, /^[a-z']+$/);
  const phones = tgt.decode(y[0]);
  assert.match(phones, /^[a-z]+( [a-z]+)*$/); // no stress digits by default
  const trainWords = new Set(x.map((r) => src.decode(r)));
  for (const r of ds.test.x.toList() as number[][]) assert.ok(!trainWords.has(src.decode(r)), `test word ${src.decode(r)} is in train`);
  assert.equal(ds.info.extra?.targetLength, ds.train.y.shape[1]);
});

test('mobydick-keywords: windows of 24 words -> 4 words in order', () => {
  const ds = loadTaskSource('mobydick-keywords', { limit: 50 });
  const tok = tokenizerFromJSON(ds.info.tokenizer!);
  assert.equal(ds.train.x.shape[1], 24);
  const y = (ds.train.y.toList() as number[][])[0];
  assert.equal(tok.decode(y).split(' ').length, 4);
});
