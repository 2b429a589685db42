/**
 * Text data sources for sequence models: built-in corpora (src/data/text.ts) and a
 * user's text file, tokenized and cut into int32 tensors the language models train on.
 *
 * Two layouts, both `x` int32 with one extra column so that input = x[:, :-1] and
 * target = x[:, 1:] (nanoGPT's `get_batch`, makemore's dataset):
 * - Corpora ('moby-dick', 'sotu', a text file): windows [N, blockSize + 1] of the token
 *   stream. Training windows start every blockSize/2 tokens (stride blockSize/2, so
 *   each token is seen in two contexts per epoch); test windows do not overlap
 *   (stride blockSize), so every held-out token is scored once. blockSize comes from
 *   the model config (`opts.model.blockSize`, default 128). The held-out text is the
 *   end of the corpus: the last 10% of Moby-Dick's chapters (chapters 122-135), the
 *   last 10% of the State of the Union addresses (chronological), the last 10% of a
 *   text file's characters; it is never seen in training.
 * - 'names' (Karpathy's makemore): one lower-case first name per row as
 *   [<bos>, name..., <eos>, <pad>...] of width maxLen + 2; 10% of the names, by seeded
 *   shuffle, are the test split. Models skip <pad> targets (crossEntropy ignoreIndex).
 * - 'name-runs' (for hierarchical models): the names in alphabetical order cut into
 *   disjoint runs of K consecutive names (K = `opts.model.segments`, default 4), each
 *   run x [K, maxLen + 2] laid out as 'names' rows; 10% of the runs, by seeded
 *   shuffle, are the test split. Consecutive names share prefixes, so a run is a
 *   sequence of segments whose content depends on the previous segments.
 *
 * Tokenizer: characters by default; a model config with `tokenizer: 'word' | 'bpe'`
 * asks for words (minCount 2) or byte-pair encoding (`bpeMerges`, default 500) learnt
 * on the training text only. The tokenizer's JSON goes into DataInfo.tokenizer so a
 * checkpoint rebuilds it exactly.
 */
import { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { loadFirstNames, loadMobyDick, loadSotu, loadTextFile } from '../data/text.js';
import { BpeTokenizer, CharTokenizer, WordTokenizer } from '../data/tokenizer.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { shuffledIndices } from '../data/batching.js';
import type { DataSource } from '../models/contract.js';
import type { DataOptions } from './data_source.js';

const CORPORA = ['moby-dick', 'sotu'] as const;

/** Names of the built-in text data sets accepted by --data. */
export function textDataNames(): string[] {
  return [...CORPORA, 'names', 'name-runs'];
}

/** Fraction of a corpus (chapters, speeches, characters, names) held out as the test split. */
export const TEST_FRACTION = 0.1;

function tokenizerKind(opts: DataOptions): 'char' | 'word' | 'bpe' {
  const k = opts.model?.tokenizer;
  if (k === undefined || k === 'char') return 'char';
  if (k === 'word' || k === 'bpe') return k;
  throw new Error(`model.tokenizer: ${JSON.stringify(k)} is not one of char, word, bpe`);
}

/** Train/test text of a corpus: whole documents, the last 10% held out. */
function corpusText(spec: string): { train: string; test: string } {
  const join = (docs: string[]): string => docs.join('\n\n');
  const split = (docs: string[]): { train: string; test: string } => {
    const nTest = Math.max(1, Math.round(docs.length * TEST_FRACTION));
    return { train: join(docs.slice(0, docs.length - nTest)), test: join(docs.slice(docs.length - nTest)) };
  };
  if (spec === 'moby-dick') return split(loadMobyDick().map((c) => c.text));
  if (spec === 'sotu') return split(loadSotu().map((s) => s.text));
  const text = loadTextFile(spec);
  const chars = Array.from(text);
  if (chars.length < 20) throw new Error(`${spec}: a text file needs at least 20 characters to train on, it has ${chars.length}`);
  const cut = chars.length - Math.max(1, Math.round(chars.length * TEST_FRACTION));
  return { train: chars.slice(0, cut).join(''), test: chars.slice(cut).join('') };
}

function buildTokenizer(kind: 'char' | 'word' | 'bpe', train: string, all: string, opts: DataOptions): Tokenizer {
  // Characters of the whole text (a char unseen in training would otherwise be
  // unencodable; nanoGPT's shakespeare_char does the same). Words and merges are
  // learnt from the training text only.
  if (kind === 'char') return CharTokenizer.fromText(all);
  if (kind === 'word') return WordTokenizer.fromText(train, { minCount: 2 });
  const merges = typeof opts.model?.bpeMerges === 'number' ? opts.model.bpeMerges : 500;
  return BpeTokenizer.train(train, { numMerges: merges });
}

/** Windows of `width` tokens every `stride` tokens (the last partial window dropped). */
function windows(ids: number[], width: number, stride: number, limit?: number): Tensor {
  const n = ids.length < width ? 0 : Math.floor((ids.length - width) / stride) + 1;
  const m = limit === undefined ? n : Math.min(n, limit);
  const out = new Int32Array(m * width);
  for (let i = 0; i < m; i++) for (let j = 0; j < width; j++) out[i * width + j] = ids[i * stride + j];
  return new Tensor(out, [m, width]);
}

function loadCorpus(spec: string, opts: DataOptions): DataSource {
  const blockSize = typeof opts.model?.blockSize === 'number' ? opts.model.blockSize : 128;
  if (!(Number.isInteger(blockSize) && blockSize >= 2)) throw new Error(`text data: blockSize must be an integer >= 2, got ${blockSize}`);
  const { train, test } = corpusText(spec);
  const kind = tokenizerKind(opts);
  const tok = buildTokenizer(kind, train, train + test, opts);
  const trainIds = tok.encode(train);
  const testIds = tok.encode(test);
  const width = blockSize + 1;
  if (trainIds.length < width || testIds.length < width) {
    throw new Error(`${spec}: ${trainIds.length} training and ${testIds.length} test tokens; both need at least blockSize + 1 = ${width} (use a smaller --model.blockSize)`);
  }
  const testLimit = opts.limit === undefined ? undefined : Math.max(1, Math.ceil(opts.limit / 10));
  return {
    info: {
      name: spec, kind: 'text', shape: [width], tokenizer: tok.toJSON(),
      extra: { format: 'windows', blockSize, trainTokens: trainIds.length, testTokens: testIds.length },
    },
    train: { x: windows(trainIds, width, Math.max(1, Math.floor(blockSize / 2)), opts.limit) },
    test: { x: windows(testIds, width, blockSize, testLimit) },
  };
}

/** makemore's names: [<bos>, chars, <eos>, <pad>...] rows, 10% test by seeded shuffle. */
function loadNames(opts: DataOptions): DataSource {
  const names = loadFirstNames().map((s) => s.toLowerCase());
  const unique = [...new Set(names)];
  const tok = CharTokenizer.fromText(unique, { specials: true });
  const maxLen = Math.max(...unique.map((s) => Array.from(s).length));
  const width = maxLen + 2;
  const perm = shuffledIndices(unique.length, new Rng(opts.seed ?? 0));
  const nTest = Math.round(unique.length * TEST_FRACTION);
  const rows = (idx: Int32Array, limit?: number): Tensor => {
    const m = limit === undefined ? idx.length : Math.min(idx.length, limit);
    const out = new Int32Array(m * width).fill(tok.pad);
    for (let i = 0; i < m; i++) {
      const ids = [tok.bos, ...tok.encode(unique[idx[i]]), tok.eos];
      out.set(ids, i * width);
    }
    return new Tensor(out, [m, width]);
  };
  const testLimit = opts.limit === undefined ? undefined : Math.max(1, Math.ceil(opts.limit / 10));
  return {
    info: { name: 'names', kind: 'text', shape: [width], tokenizer: tok.toJSON(), extra: { format: 'lines', maxLen } },
    train: { x: rows(perm.subarray(nTest), opts.limit) },
    test: { x: rows(perm.subarray(0, nTest), testLimit) },
  };
}

/** Alphabetical runs of K names: x [N, K, maxLen + 2]. */
function loadNameRuns(opts: DataOptions): DataSource {
  const K = typeof opts.model?.segments === 'number' ? opts.model.segments : 4;
  if (!(Number.isInteger(K) && K >= 1)) throw new Error(`name-runs: segments must be a positive integer, got ${K}`);
  const unique = [...new Set(loadFirstNames().map((s) => s.toLowerCase()))].sort();
  const tok = CharTokenizer.fromText(unique, { specials: true });
  const maxLen = Math.max(...unique.map((s) => Array.from(s).length));
  const width = maxLen + 2;
  const runs = Math.floor(unique.length / K);
  const perm = shuffledIndices(runs, new Rng(opts.seed ?? 0));
  const nTest = Math.max(1, Math.round(runs * TEST_FRACTION));
  const rows = (idx: Int32Array, limit?: number): Tensor => {
    const m = limit === undefined ? idx.length : Math.min(idx.length, limit);
    const out = new Int32Array(m * K * width).fill(tok.pad);
    for (let i = 0; i < m; i++) {
      for (let k = 0; k < K; k++) out.set([tok.bos, ...tok.encode(unique[idx[i] * K + k]), tok.eos], (i * K + k) * width);
    }
    return new Tensor(out, [m, K, width]);
  };
  const testLimit = opts.limit === undefined ? undefined : Math.max(1, Math.ceil(opts.limit / 10));
  return {
    info: { name: 'name-runs', kind: 'text', shape: [K, width], tokenizer: tok.toJSON(), extra: { format: 'segments', segments: K, maxLen } },
    train: { x: rows(perm.subarray(nTest), opts.limit) },
    test: { x: rows(perm.subarray(0, nTest), testLimit) },
  };
}

/**
 * Load a built-in text set or a text file as token tensors.
 * @example
 * const ds = loadTextSource('names', {});        // x [N, 17]: <bos> name <eos> <pad>...
 * const md = loadTextSource('moby-dick', { model: { blockSize: 64 } }); // x [N, 65]
 */
export function loadTextSource(spec: string, opts: DataOptions): DataSource {
  if (spec === 'names') {
    if (tokenizerKind(opts) !== 'char') throw new Error(`names: only the character tokenizer applies (model.tokenizer = ${JSON.stringify(opts.model?.tokenizer)})`);
    return loadNames(opts);
  }
  if (spec === 'name-runs') return loadNameRuns(opts);
  return loadCorpus(spec, opts);
}

