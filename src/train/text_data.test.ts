/** Text data sources: layouts, held-out splits, tokenizers, errors. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tokenizerFromJSON } from '../data/tokenizer.js';
import { loadMobyDick } from '../data/text.js';
import { loadDataSource } from './data_source.js';
import { loadTextSource, textDataNames } from './text_data.js';

test('moby-dick: windows of blockSize + 1 with stride blockSize/2 (train) and blockSize (test); the test text is the last 10% of chapters', () => {
  const ds = loadTextSource('moby-dick', { model: { blockSize: 32 } });
  assert.deepEqual(ds.info.shape, [33]);
  assert.equal(ds.info.kind, 'text');
  const tok = tokenizerFromJSON(ds.info.tokenizer!);
  const x = ds.train.x.i32();
  // Window i + 1 starts 16 tokens after window i.
  assert.deepEqual(Array.from(x.subarray(33 + 0, 33 + 17)), Array.from(x.subarray(16, 33)));
  const t = ds.test.x.i32();
  assert.deepEqual(Array.from(t.subarray(33, 34)), Array.from(t.subarray(32, 33)));
  const chapters = loadMobyDick();
  const first = tok.decode(Array.from(t.subarray(0, 33)));
  assert.ok(chapters[121].text.startsWith(first), `test split should start at chapter 122: ${JSON.stringify(first)}`);
  assert.ok(tok.decode(Array.from(x.subarray(0, 33))).startsWith(chapters[0].text.slice(0, 20)));
  assert.equal(ds.info.extra?.testTokens, chapters.slice(121).map((c) => c.text).join('\n\n').length);
  const limited = loadTextSource('moby-dick', { model: { blockSize: 32 }, limit: 10 });
  assert.equal(limited.train.x.shape[0], 10);
});

test('names: <bos> name <eos> <pad> rows, disjoint seeded 10% test split', () => {
  const ds = loadTextSource('names', { seed: 0 });
  const [N, W] = ds.train.x.shape;
  assert.equal(W, (ds.info.extra?.maxLen as number) + 2);
  const tok = tokenizerFromJSON(ds.info.tokenizer!);
  const rows = (x: Int32Array, n: number): string[] => Array.from({ length: n }, (_, i) => {
    const r = Array.from(x.subarray(i * W, (i + 1) * W));
    assert.equal(r[0], tok.bos);
    const e = r.indexOf(tok.eos);
    assert.ok(e > 1 && r.slice(e + 1).every((v) => v === tok.pad));
    return tok.decode(r.slice(1, e));
  });
  const train = new Set(rows(ds.train.x.i32(), N));
  const test = rows(ds.test.x.i32(), ds.test.x.shape[0]);
  assert.ok(Math.abs(test.length / (N + test.length) - 0.1) < 0.01);
  assert.ok(test.every((s) => !train.has(s)));
  const other = loadTextSource('names', { seed: 1 });
  assert.notDeepEqual(Array.from(other.test.x.i32().subarray(0, W)), Array.from(ds.test.x.i32().subarray(0, W)));
});

test('word and bpe tokenizers, a user text file', () => {
  const w = loadTextSource('moby-dick', { model: { blockSize: 16, tokenizer: 'word' }, limit: 4 });
  assert.equal(w.info.tokenizer!.kind, 'word');
  const wt = tokenizerFromJSON(w.info.tokenizer!);
  assert.ok(wt.decode(Array.from(w.train.x.i32().subarray(0, 5))).split(' ').length >= 3);
  const dir = mkdtempSync(join(tmpdir(), 'genlab-text-'));
  const file = join(dir, 'poem.txt');
  writeFileSync(file, 'the quick brown fox jumps over the lazy dog. '.repeat(20));
  const f = loadDataSource(file, ['text'], { model: { blockSize: 8 } });
  assert.equal(f.info.name, file);
  assert.ok(f.train.x.shape[0] > 0 && f.test.x.shape[0] > 0);
  // BPE merges learnt on the training text shorten the token stream.
  const b = loadTextSource(file, { model: { blockSize: 8, tokenizer: 'bpe', bpeMerges: 20 } });
  assert.equal(b.info.tokenizer!.kind, 'bpe');
  assert.ok(b.info.tokenizer!.vocab.length > 20);
  assert.ok((b.info.extra!.trainTokens as number) < (f.info.extra!.trainTokens as number) / 2);
  writeFileSync(file, 'tiny');
  assert.throws(() => loadTextSource(file, {}), /at least 20 characters/);
  assert.throws(() => loadTextSource('moby-dick', { model: { tokenizer: 'morse' } }), /model.tokenizer/);
  assert.throws(() => loadTextSource('names', { model: { tokenizer: 'word' } }), /only the character tokenizer/);
  assert.deepEqual(textDataNames(), ['moby-dick', 'sotu', 'names', 'name-runs']);
});
