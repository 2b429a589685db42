/**
 * Resolves `--data NAME|PATH` into train/test tensors for a model: built-in image sets
 * (mnist, fashion-mnist), 2-D toys, or a user's folder of PNGs / CSV of points. The
 * trainer draws batches from `train`; `genlab eval` uses `test`.
 */
import { existsSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { loadMnist, loadFashionMnist } from '../data/mnist.js';
import { TOY_NAMES, isToyName, sampleToy } from '../data/toy2d.js';
import { loadCsv } from '../data/text.js';
import { splitIndices, takeRows } from '../data/batching.js';
import { loadPngFolder } from '../io/png.js';
import type { Batch, DataKind, DataSource } from '../models/contract.js';
export type { DataSource };
import type { Config } from '../models/registry.js';
import { loadTextSource, textDataNames } from './text_data.js';
import { loadTaskSource, taskDataNames } from './task_data.js';


export const IMAGE_SETS = ['mnist', 'fashion-mnist'] as const;

export interface DataOptions {
  /** Use only the first N examples (quick runs, tests). */
  limit?: number;
  seed?: number;
  /** The resolved model config (text sources read blockSize etc. from it). */
  model?: Config;
}

/** Names accepted by --data, by kind. */
export function builtinData(): Record<DataKind, string[]> {
  return { image: [...IMAGE_SETS], points: [...TOY_NAMES], text: textDataNames(), sequence: taskDataNames() };
}

function fromSplit(name: string, kind: DataKind, x: Tensor, y: Tensor | null, seed: number, numClasses?: number): DataSource {
  const s = splitIndices(x.shape[0], { val: 0, test: 0.1 }, seed);
  const part = (idx: Int32Array): Batch => (y ? { x: takeRows(x, idx), y: takeRows(y, idx) } : { x: takeRows(x, idx) });
  return { info: { name, kind, shape: x.shape.slice(1), numClasses }, train: part(s.train), test: part(s.test) };
}

/**
 * Load a data source for a model that accepts `kinds`.
 * @example
 * const ds = loadDataSource('mnist', ['image']);
 */
export function loadDataSource(spec: string, kinds: DataKind[], opts: DataOptions = {}): DataSource {
  const seed = opts.seed ?? 0;
  if (textDataNames().includes(spec) || (kinds.includes('text') && existsSync(spec) && !statSync(spec).isDirectory() && extname(spec).toLowerCase() !== '.csv')) {
    if (!kinds.includes('text')) throw new Error(`data '${spec}' is text data, but this model takes ${kinds.join(' or ')} data`);
    return loadTextSource(spec, opts);
  }
  if (taskDataNames().includes(spec)) {
    if (!kinds.includes('sequence') && !kinds.includes('text')) {
      throw new Error(`data '${spec}' is a sequence task, but this model takes ${kinds.join(' or ')} data`);
    }
    return loadTaskSource(spec, opts);
  }
  const want = (k: DataKind): void => {
    if (!kinds.includes(k)) throw new Error(`data '${spec}' is ${k} data, but this model takes ${kinds.join(' or ')} data`);
  };
  if (spec === 'mnist' || spec === 'fashion-mnist') {
    want('image');
    const load = spec === 'mnist' ? loadMnist : loadFashionMnist;
    const tr = load('train', opts.limit);
    const te = load('test', opts.limit === undefined ? undefined : Math.max(1, Math.floor(opts.limit / 6)));
    return {
      info: { name: spec, kind: 'image', shape: tr.images.shape.slice(1), numClasses: 10 },
      train: { x: tr.images, y: tr.labels },
      test: { x: te.images, y: te.labels },
    };
  }
  if (isToyName(spec)) {
    want('points');
    const n = opts.limit ?? 50000;
    return {
      info: { name: spec, kind: 'points', shape: [2] },
      train: { x: sampleToy(spec, n, new Rng(seed * 2 + 1)) },
      test: { x: sampleToy(spec, Math.max(1000, Math.floor(n / 10)), new Rng(seed * 2 + 2)) },
    };
  }
  if (existsSync(spec)) {
    if (statSync(spec).isDirectory()) {
      want('image');
      const x = loadPngFolder(spec, { grayscale: true });
      return fromSplit(spec, 'image', x, null, seed);
    }
    if (extname(spec).toLowerCase() === '.csv') {
      want('points');
      const { rows } = loadCsv(spec);
      const d = rows[0].length;
      const x = new Tensor(Float32Array.from(rows.flat()), [rows.length, d]);
      return fromSplit(spec, 'points', x, null, seed);
    }
    throw new Error(`${spec}: unsupported data file (use a folder of .png images or a .csv of points)`);
  }
  const all = builtinData();
  const names = kinds.flatMap((k) => all[k]);
  throw new Error(`unknown data '${spec}': not a built-in set (${names.join(', ')}) nor an existing file or folder`);
}
