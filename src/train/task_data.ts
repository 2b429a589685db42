/**
 * Generated and paired sequence tasks for `--data`:
 *
 * - 'copy', 'repeat-copy', 'assoc-recall': the algorithmic tasks of Graves, Wayne &
 *   Danihelka 2014, "Neural Turing Machines" (arXiv:1410.5401, sec. 4.1-4.3), kind
 *   'sequence'. Each example is pre-generated as padded float tensors:
 *   x [N, T, bits + 2] (input bits, then two control channels), y [N, T, outDim]
 *   targets, mask [N, T] (1 on the output phase, where the loss and bit errors count),
 *   len [N] int32 (the sequence length, or the number of items for recall).
 *   The test split holds longer sequences than training (generalisation, sec. 4.1):
 *   copy at 1/2, 1, 3/2 and 2 times the longest training length (10, 20, 30, 40 by
 *   default; 120 each at full size); repeat-copy and recall
 *   at in- and out-of-range sizes.
 *     copy:        bits, then a delimiter (channel bits), then blank input while the
 *                  model writes the sequence back.
 *     repeat-copy: bits, then a delimiter carrying the repeat count R / maxRepeats
 *                  (channel bits + 1); output the sequence R times then an end marker
 *                  (the extra output channel).
 *     assoc-recall: items of 3 vectors each preceded by an item delimiter (channel
 *                  bits); a query delimiter (channel bits + 1), one of the items, the
 *                  query delimiter again; output the item that followed the query.
 * - 'cmudict' (spelling -> ARPAbet phonemes, held-out words by a seeded split) and
 *   'mobydick-keywords' (a summarisation proxy: a window of up to 24 words of
 *   Moby-Dick -> its 4 longest words in order): x [N, S] int32 source ids
 *   (padded with <pad> = 0), y [N, U] int32 target ids <bos> ... <eos> padded with 0;
 *   the tokenizers are in DataInfo.tokenizer / targetTokenizer. Their DataInfo.kind is
 *   'sequence' (token pairs), because data_source.ts routes task names only to models
 *   taking 'sequence' and `genlab eval` reloads data by the saved kind.
 *
 * Task sizes come from the model config when it has the keys (taskBits, taskMinLen,
 * taskMaxLen, taskMaxRepeats, taskExamples; 0 = the task's default), so an NTM preset
 * can choose them. The generator itself is in src/models/ntm.ts (models draw fresh
 * inputs from it when sampling).
 */
import { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { CharTokenizer, WordTokenizer, splitWords } from '../data/tokenizer.js';
import { loadCmudict, loadMobyDick } from '../data/text.js';
import { splitIndices, takeRows } from '../data/batching.js';
import type { Batch, DataSource } from '../models/contract.js';
import type { DataOptions } from './data_source.js';
import { ALGORITHMIC_TASKS, TASK_DEFAULTS, generateTask, taskOutDim } from '../models/ntm.js';
import type { AlgorithmicTask, TaskSpec } from '../models/ntm.js';
export { ALGORITHMIC_TASKS, TASK_DEFAULTS, generateTask };

export const PAIR_TASKS = ['cmudict', 'mobydick-keywords'] as const;

/** Names of the generated sequence tasks accepted by --data. */
export function taskDataNames(): string[] {
  return [...ALGORITHMIC_TASKS, ...PAIR_TASKS];
}

/** Test sizes per task: copy at 1/2, 1, 3/2 and 2 times the longest training length (10..40 by default). */
export function taskTestSizes(task: AlgorithmicTask, s: TaskSpec): number[] {
  if (task === 'copy') return [...new Set([0.5, 1, 1.5, 2].map((f) => Math.max(s.minLen, Math.round(f * s.maxLen))))];
  if (task === 'repeat-copy') return [s.maxLen, Math.round(s.maxLen * 1.5)];
  return [s.maxLen, s.maxLen + 2];
}

/** Concatenate batches with different T along N, padding x, y, mask with zeros to the longest T. */
function concatPadded(parts: Batch[]): Batch {
  const T = Math.max(...parts.map((p) => p.x.shape[1]));
  const out: Batch = {};
  for (const key of ['x', 'y', 'mask', 'len']) {
    const n = parts.reduce((a, p) => a + p[key].shape[0], 0);
    if (key === 'len') {
      const d = new Int32Array(n);
      let o = 0;
      for (const p of parts) {
        d.set(p.len.i32(), o);
        o += p.len.shape[0];
      }
      out.len = new Tensor(d, [n]);
      continue;
    }
    const C = key === 'mask' ? 1 : parts[0][key].shape[2];
    const d = new Float32Array(n * T * C);
    let o = 0;
    for (const p of parts) {
      const v = p[key].f32();
      const [m, t] = p[key].shape;
      for (let i = 0; i < m; i++) d.set(v.subarray(i * t * C, (i + 1) * t * C), (o + i) * T * C);
      o += m;
    }
    out[key] = new Tensor(d, key === 'mask' ? [n, T] : [n, T, C]);
  }
  return out;
}

/** A task size from the model config; absent or 0 means the task's own default. */
function num(model: DataOptions['model'], key: string, dflt: number): number {
  const v = model?.[key];
  return typeof v === 'number' && v > 0 ? v : dflt;
}

function loadAlgorithmic(task: AlgorithmicTask, opts: DataOptions): DataSource {
  const seed = opts.seed ?? 0;
  const d = TASK_DEFAULTS[task];
  const s: TaskSpec = {
    bits: num(opts.model, 'taskBits', d.bits),
    minLen: num(opts.model, 'taskMinLen', d.minLen),
    maxLen: num(opts.model, 'taskMaxLen', d.maxLen),
    maxRepeats: num(opts.model, 'taskMaxRepeats', d.maxRepeats),
    itemLen: d.itemLen,
  };
  if (task === 'assoc-recall' && s.minLen < 2) throw new Error('assoc-recall: taskMinLen (items) must be at least 2');
  const nTrain = opts.limit ?? num(opts.model, 'taskExamples', 20000);
  const train = generateTask(task, nTrain, s, new Rng(seed * 2 + 1));
  const sizes = taskTestSizes(task, s);
  const perSize = Math.max(4, Math.min(120, Math.floor(nTrain / 20)));
  const testRng = new Rng(seed * 2 + 2);
  const test = concatPadded(sizes.map((l) => generateTask(task, perSize, s, testRng, l)));
  return {
    info: {
      name: task,
      kind: 'sequence',
      shape: train.x.shape.slice(1),
      extra: { task, ...s, outDim: taskOutDim(task, s), testSizes: sizes },
    },
    train,
    test,
  };
}

/** Source/target pairs -> padded int32 tensors and a seeded train/test split. */
function pairSource(name: string, src: number[][], tgt: number[][], seed: number, testFrac: number, info: Omit<DataSource['info'], 'shape' | 'name' | 'kind'>): DataSource {
  const S = src.reduce((m, a) => Math.max(m, a.length), 1);
  const U = tgt.reduce((m, a) => Math.max(m, a.length), 1);
  const n = src.length;
  const x = new Int32Array(n * S);
  const y = new Int32Array(n * U);
  for (let i = 0; i < n; i++) {
    x.set(src[i], i * S);
    y.set(tgt[i], i * U);
  }
  const X = new Tensor(x, [n, S]);
  const Y = new Tensor(y, [n, U]);
  const sp = splitIndices(n, { val: 0, test: testFrac }, seed);
  return {
    info: { name, kind: 'sequence', shape: [S], ...info, extra: { ...(info.extra ?? {}), targetLength: U } },
    train: { x: takeRows(X, sp.train), y: takeRows(Y, sp.train) },
    test: { x: takeRows(X, sp.test), y: takeRows(Y, sp.test) },
  };
}

/** CMUdict parsed once per process (with and without stress digits). */
const cmudictCache = new Map<boolean, ReturnType<typeof loadCmudict>>();

function loadCmudictPairs(opts: DataOptions): DataSource {
  const stress = opts.model?.stress === true;
  if (!cmudictCache.has(stress)) cmudictCache.set(stress, loadCmudict({ stress }));
  const all = cmudictCache.get(stress)!;
  // A seeded shuffle before `limit`, so a small slice is still a sample of the whole.
  const rng = new Rng(1000 + (opts.seed ?? 0));
  const order = Int32Array.from(all.keys());
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  let prs = Array.from(order, (i) => all[i]).filter((p) => p.word.length <= 20 && p.phonemes.length <= 20);
  if (opts.limit !== undefined) prs = prs.slice(0, opts.limit);
  const chars = new CharTokenizer("'abcdefghijklmnopqrstuvwxyz".split(''), true);
  const phones = new WordTokenizer([...new Set(all.flatMap((p) => p.phonemes.map((q) => q.toLowerCase())))].sort(), true);
  const src = prs.map((p) => chars.encode(p.word));
  const tgt = prs.map((p) => [phones.bos, ...phones.encode(p.phonemes.join(' ')), phones.eos]);
  const testFrac = prs.length >= 20000 ? 0.05 : 0.1;
  return pairSource('cmudict', src, tgt, opts.seed ?? 0, testFrac, { tokenizer: chars.toJSON(), targetTokenizer: phones.toJSON(), extra: { stress } });
}

function loadKeywordPairs(opts: DataOptions): DataSource {
  const words = loadMobyDick().flatMap((c) => splitWords(c.text).filter((w) => /^[a-z']+$/.test(w)));
  const W = 24;
  const K = 4;
  let windows: string[][] = [];
  for (let i = 0; i + W <= words.length; i += 12) windows.push(words.slice(i, i + W));
  if (opts.limit !== undefined) windows = windows.slice(0, opts.limit);
  const tok = WordTokenizer.fromText(windows.map((w) => w.join(' ')), { maxVocab: 4000 });
  const src: number[][] = [];
  const tgt: number[][] = [];
  for (const w of windows) {
    // The K longest words (ties: earlier first), kept in their original order.
    const keep = w.map((t, i) => ({ t, i })).sort((a, b) => b.t.length - a.t.length || a.i - b.i).slice(0, K).sort((a, b) => a.i - b.i);
    src.push(tok.encode(w.join(' ')));
    tgt.push([tok.bos, ...tok.encode(keep.map((k) => k.t).join(' ')), tok.eos]);
  }
  return pairSource('mobydick-keywords', src, tgt, opts.seed ?? 0, 0.05, { tokenizer: tok.toJSON(), targetTokenizer: tok.toJSON() });
}

/**
 * Load a task by name.
 * @example
 * const ds = loadTaskSource('copy', { limit: 256 }); // ds.train.x [256, 41, 10]
 */
export function loadTaskSource(spec: string, opts: DataOptions): DataSource {
  if ((ALGORITHMIC_TASKS as readonly string[]).includes(spec)) return loadAlgorithmic(spec as AlgorithmicTask, opts);
  if (spec === 'cmudict') return loadCmudictPairs(opts);
  if (spec === 'mobydick-keywords') return loadKeywordPairs(opts);
  throw new Error(`unknown sequence task '${spec}' (known: ${taskDataNames().join(', ')})`);
}
