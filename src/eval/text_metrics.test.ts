/** Text metrics: row decoding, novelty/uniqueness, the evaluators on names and name-runs. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../engine/index.js';
import { CharTokenizer } from '../data/tokenizer.js';
import { loadTextSource } from '../train/text_data.js';
import { RnnLM } from '../models/rnn_lm.js';
import { HierLM } from '../models/hier.js';
import { evaluateRun } from './evaluate.js';
import { decodeRows, noveltyStats, lineMetrics } from './text_metrics.js';

test('decodeRows reads <bos> item <eos> <pad> rows; noveltyStats counts unseen and distinct samples', () => {
  const ds = loadTextSource('names', { limit: 5 });
  const tok = CharTokenizer.fromText('abcdefghijklmnopqrstuvwxyz', { specials: true });
  void tok;
  const rows = decodeRows(ds.train.x, new CharTokenizer(ds.info.tokenizer!.vocab, true));
  assert.equal(rows.length, 5);
  for (const r of rows) assert.match(r, /^[a-z' -]+$/);
  assert.deepEqual(noveltyStats(['ann', 'bob', 'bob', 'cy'], new Set(['ann'])), { novelty: 0.75, uniqueness: 0.75 });
});

test('evaluateRun merges the model NLL with novelty on names and segment order on name-runs', () => {
  const names = loadTextSource('names', { limit: 64 });
  const lm = new RnnLM({ hiddenDim: 16, embedDim: 8 }, new Rng(0), names.info);
  const r = evaluateRun(lm, names, { quick: true });
  for (const k of ['nll', 'perplexity', 'novelty', 'uniqueness']) assert.ok(Number.isFinite(r[k]), `${k}: ${r[k]}`);
  assert.ok(r.novelty >= 0 && r.novelty <= 1);
  // An untrained model's names are nearly all new (and nonsense).
  assert.ok(r.novelty > 0.5);
  const moby = loadTextSource('moby-dick', { model: { blockSize: 16 }, limit: 8 });
  assert.deepEqual(lineMetrics(new RnnLM({ hiddenDim: 8, embedDim: 4 }, new Rng(0), moby.info), moby, { quick: true, seed: 0 }), {});
  const runs = loadTextSource('name-runs', { limit: 32 });
  const h = new HierLM({ embedDim: 8, segDim: 8, codeDim: 8, hiddenDim: 16 }, new Rng(0), runs.info);
  const e = evaluateRun(h, runs, { quick: true });
  for (const k of ['nll', 'nllShuffledCodes', 'codeGain', 'segmentNovelty', 'orderedPairs', 'sharedFirstLetter']) assert.ok(Number.isFinite(e[k]), `${k}: ${e[k]}`);
});
