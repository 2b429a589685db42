/**
 * Likelihood helpers shared by the families that report log-likelihoods: the
 * importance-sampled bound of Burda et al. 2016 (IWAE, arXiv:1509.00519, eq. 8)
 * log p(x) ~ log (1/k) sum_k w_k from per-sample log weights, a numerically stable
 * log-mean-exp, and the conversion of nats per example to bits per dimension
 * (van den Oord et al. 2016, PixelRNN, section 5.1).
 */
import type { Tensor } from '../engine/tensor.js';

/** log((1/n) sum exp(v_i)), stable for any finite values; -Infinity for an empty list. */
export function logMeanExp(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return -Infinity;
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, values[i]);
  if (!Number.isFinite(m)) return m;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(values[i] - m);
  return m + Math.log(s / n);
}

/**
 * Per-example importance-sampled log p(x) from log weights [k, B]
 * (log p(x, z_k) - log q(z_k | x)).
 * @example
 * const logpx = importanceSampledLogLikelihood(logW); // Float64Array [B]
 */
export function importanceSampledLogLikelihood(logWeights: Tensor): Float64Array {
  if (logWeights.rank !== 2) throw new Error(`importanceSampledLogLikelihood: expected log weights [k, B], got [${logWeights.shape}]`);
  const [k, B] = logWeights.shape;
  const v = logWeights.values();
  const out = new Float64Array(B);
  const col = new Float64Array(k);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < k; i++) col[i] = v[i * B + b];
    out[b] = logMeanExp(col);
  }
  return out;
}

/** Nats per example to bits per dimension: nll / (dims * ln 2). */
export function bitsPerDim(nllNats: number, dims: number): number {
  return nllNats / (dims * Math.LN2);
}
