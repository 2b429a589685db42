/**
 * Seeded random tensors. Every function takes an explicit `Rng`; values are drawn in
 * row-major order in TypeScript, so a seed gives the same tensor on every backend.
 */
import { Tensor } from '../tensor.js';
import type { Rng } from '../rng.js';
import { ShapeError, fmtShape, sizeOf } from '../shape.js';
import type { Shape } from '../shape.js';

/** Uniform in [low, high). */
export function rand(shape: Shape, rng: Rng, low = 0, high = 1): Tensor {
  const n = sizeOf(shape);
  const d = new Float32Array(n);
  const span = high - low;
  for (let i = 0; i < n; i++) d[i] = low + span * rng.uniform();
  return new Tensor(d, shape);
}

/** Normal with the given mean and standard deviation. */
export function randn(shape: Shape, rng: Rng, mean = 0, std = 1): Tensor {
  const n = sizeOf(shape);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = mean + std * rng.normal();
  return new Tensor(d, shape);
}

/** 1 with probability p (a number, or a tensor of probabilities), else 0. */
export function bernoulli(p: Tensor | number, rng: Rng, shape?: Shape): Tensor {
  if (typeof p === 'number') {
    if (!shape) throw new ShapeError('bernoulli: a shape is needed with a scalar probability');
    const n = sizeOf(shape);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = rng.uniform() < p ? 1 : 0;
    return new Tensor(d, shape);
  }
  const pv = p.f32('bernoulli');
  const d = new Float32Array(pv.length);
  for (let i = 0; i < pv.length; i++) d[i] = rng.uniform() < pv[i] ? 1 : 0;
  return new Tensor(d, p.shape);
}

/** Uniform integers in [low, high) (int32). */
export function randint(low: number, high: number, shape: Shape, rng: Rng): Tensor {
  if (low < -2147483648 || high > 2147483648) throw new RangeError(`randint: [${low}, ${high}) does not fit in int32`);
  const n = sizeOf(shape);
  const d = new Int32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.int(low, high);
  return new Tensor(d, shape);
}

/** A random permutation of 0..n-1 (int32), by Fisher-Yates. */
export function randperm(n: number, rng: Rng): Tensor {
  const d = new Int32Array(n);
  for (let i = 0; i < n; i++) d[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    const t = d[i];
    d[i] = d[j];
    d[j] = t;
  }
  return new Tensor(d, [n]);
}

/**
 * Draw `numSamples` category indices per row of non-negative weights `probs` ([K] or
 * [B, K]; need not sum to 1), as torch.multinomial. Without replacement, a row needs
 * at least numSamples nonzero weights.
 */
export function multinomial(probs: Tensor, numSamples: number, rng: Rng, replacement = false): Tensor {
  if (probs.rank !== 1 && probs.rank !== 2) throw new ShapeError(`multinomial: probs must be [K] or [B, K], got ${fmtShape(probs.shape)}`);
  const K = probs.shape[probs.rank - 1];
  const B = probs.rank === 2 ? probs.shape[0] : 1;
  const pv = probs.f32('multinomial');
  const out = new Int32Array(B * numSamples);
  const w = new Float64Array(K);
  for (let b = 0; b < B; b++) {
    let nonzero = 0;
    for (let k = 0; k < K; k++) {
      const v = pv[b * K + k];
      if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`multinomial: weight ${v} at row ${b}, column ${k} is not a finite non-negative number`);
      w[k] = v;
      if (v > 0) nonzero++;
    }
    if (nonzero === 0) throw new RangeError(`multinomial: row ${b} has no positive weight`);
    if (!replacement && nonzero < numSamples) throw new RangeError(`multinomial: row ${b} has ${nonzero} positive weights, cannot draw ${numSamples} without replacement`);
    for (let s = 0; s < numSamples; s++) {
      let total = 0;
      for (let k = 0; k < K; k++) total += w[k];
      let u = rng.uniform() * total;
      let pick = K - 1;
      for (let k = 0; k < K; k++) {
        u -= w[k];
        if (u < 0 && w[k] > 0) {
          pick = k;
          break;
        }
      }
      while (w[pick] === 0) pick--; // float round-off at the end of the row
      out[b * numSamples + s] = pick;
      if (!replacement) w[pick] = 0;
    }
  }
  return new Tensor(out, probs.rank === 2 ? [B, numSamples] : [numSamples]);
}

/** One category per row from logits [..., K] (softmax sampling), int32 [...]. */
export function categorical(logits: Tensor, rng: Rng): Tensor {
  const K = logits.shape[logits.rank - 1];
  const v = logits.f32('categorical');
  const rows = v.length / K;
  const out = new Int32Array(rows);
  const p = new Float64Array(K);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, v[r * K + k]);
    if (!Number.isFinite(m)) throw new RangeError(`categorical: row ${r} has no finite logit`);
    let total = 0;
    for (let k = 0; k < K; k++) total += p[k] = Math.exp(v[r * K + k] - m);
    let u = rng.uniform() * total;
    let pick = K - 1;
    for (let k = 0; k < K; k++) {
      u -= p[k];
      if (u < 0) {
        pick = k;
        break;
      }
    }
    while (p[pick] === 0 && pick > 0) pick--;
    out[r] = pick;
  }
  return new Tensor(out, logits.shape.slice(0, -1));
}
