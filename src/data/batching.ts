/**
 * Seeded shuffling, disjoint train/val/test splits and a resumable batch sampler.
 * The sampler's order in each epoch is a pure function of (seed, epoch), so its whole
 * state is two integers: a resumed run sees exactly the batches an uninterrupted run
 * would have seen.
 */
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { randperm } from '../engine/ops/random.js';

/** A random permutation of 0..n-1 (the engine's Fisher-Yates randperm). */
export function shuffledIndices(n: number, rng: Rng): Int32Array {
  return randperm(n, rng).data as Int32Array;
}

export interface Splits {
  train: Int32Array;
  val: Int32Array;
  test: Int32Array;
}

/**
 * Split 0..n-1 into disjoint train/val/test index sets by seeded shuffle.
 * Fractions are of n; what is left after val and test is train.
 */
export function splitIndices(n: number, fractions: { val?: number; test?: number } = {}, seed = 0): Splits {
  const fv = fractions.val ?? 0.1;
  const ft = fractions.test ?? 0.1;
  if (fv < 0 || ft < 0 || fv + ft >= 1) throw new RangeError(`splitIndices: val ${fv} + test ${ft} must be in [0, 1)`);
  const perm = shuffledIndices(n, new Rng(seed));
  const nt = Math.round(n * ft);
  const nv = Math.round(n * fv);
  const sort = (a: Int32Array): Int32Array => a.slice().sort();
  return { test: sort(perm.subarray(0, nt)), val: sort(perm.subarray(nt, nt + nv)), train: sort(perm.subarray(nt + nv)) };
}

export interface SamplerState {
  epoch: number;
  position: number;
}

/**
 * Yields batches of indices into a data set of `n` items, reshuffled each epoch.
 * @example
 * const s = new BatchSampler(60000, 128, 0);
 * const idx = s.next(); // Int32Array of 128 indices
 */
export class BatchSampler {
  private epochOrder: Int32Array | null = null;
  private state: SamplerState = { epoch: 0, position: 0 };

  constructor(
    readonly n: number,
    readonly batchSize: number,
    readonly seed: number,
    readonly opts: { shuffle?: boolean; dropLast?: boolean } = {},
  ) {
    if (n <= 0) throw new RangeError('BatchSampler: the data set is empty');
    if (!(batchSize > 0)) throw new RangeError(`BatchSampler: batch size must be positive, got ${batchSize}`);
  }

  private order(): Int32Array {
    if (this.epochOrder === null) {
      if (this.opts.shuffle === false) this.epochOrder = Int32Array.from({ length: this.n }, (_, i) => i);
      else this.epochOrder = shuffledIndices(this.n, new Rng(this.seed * 7919 + this.state.epoch * 104729 + 1));
    }
    return this.epochOrder;
  }

  /** The next batch; starts a new epoch when the current one is used up. */
  next(): Int32Array {
    const dropLast = this.opts.dropLast ?? true;
    const bs = Math.min(this.batchSize, this.n);
    let remaining = this.n - this.state.position;
    if (remaining <= 0 || (dropLast && remaining < bs)) {
      this.state = { epoch: this.state.epoch + 1, position: 0 };
      this.epochOrder = null;
      remaining = this.n;
    }
    const take = Math.min(bs, remaining);
    const out = this.order().slice(this.state.position, this.state.position + take);
    this.state = { epoch: this.state.epoch, position: this.state.position + take };
    return out;
  }

  get epoch(): number {
    return this.state.epoch;
  }

  getState(): SamplerState {
    return { ...this.state };
  }

  setState(s: SamplerState): void {
    if (!Number.isInteger(s?.epoch) || !Number.isInteger(s?.position) || s.position < 0 || s.position > this.n) {
      throw new Error(`BatchSampler.setState: invalid state ${JSON.stringify(s)}`);
    }
    this.state = { ...s };
    this.epochOrder = null;
  }
}

/** Rows of `t` (along axis 0) at `idx`, float or int, as a new tensor without a graph. */
export function takeRows(t: Tensor, idx: Int32Array): Tensor {
  const n = t.shape[0];
  const row = n === 0 ? 0 : t.size / n;
  const src = t.values();
  const out = t.dtype === 'int32' ? new Int32Array(idx.length * row) : new Float32Array(idx.length * row);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i];
    if (r < 0 || r >= n) throw new RangeError(`takeRows: row ${r} is out of range for ${n} rows`);
    out.set(src.subarray(r * row, (r + 1) * row), i * row);
  }
  return new Tensor(out, [idx.length, ...t.shape.slice(1)]);
}
