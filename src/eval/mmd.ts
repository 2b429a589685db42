/**
 * Sample-quality metrics for 2-D (low-dimensional) point sets:
 * - MMD^2 with a Gaussian kernel, the unbiased U-statistic of Gretton et al. 2012
 *   ("A Kernel Two-Sample Test", JMLR 13, eq. 3), bandwidth by the median heuristic
 *   unless given;
 * - KL and Jensen-Shannon divergences between 2-D histograms on a shared grid
 *   (additively smoothed so that empty model bins give finite values);
 * - for the Gaussian-mixture toys (8gaussians, 25gaussians), modes covered and the
 *   share of high-quality samples (within 3 standard deviations of a centre), the
 *   criteria of Srivastava et al. 2017 (VEEGAN, arXiv:1705.07761, section 5.1).
 */
import { Tensor } from '../engine/tensor.js';

/** Rows of a [N, D] tensor as a float64 copy. */
function rows(x: Tensor): { v: Float64Array; n: number; d: number } {
  if (x.rank !== 2) throw new Error(`expected points [N, D], got shape [${x.shape}]`);
  return { v: Float64Array.from(x.values()), n: x.shape[0], d: x.shape[1] };
}

function sqDist(a: Float64Array, i: number, b: Float64Array, j: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) {
    const t = a[i * d + k] - b[j * d + k];
    s += t * t;
  }
  return s;
}

/** Median pairwise distance of the pooled sample (at most 1000 points of each). */
export function medianBandwidth(x: Tensor, y: Tensor): number {
  const a = rows(x);
  const b = rows(y);
  const na = Math.min(a.n, 1000);
  const nb = Math.min(b.n, 1000);
  const pool = new Float64Array((na + nb) * a.d);
  pool.set(a.v.subarray(0, na * a.d));
  pool.set(b.v.subarray(0, nb * b.d), na * a.d);
  const n = na + nb;
  const ds: number[] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) ds.push(Math.sqrt(sqDist(pool, i, pool, j, a.d)));
  ds.sort((p, q) => p - q);
  return ds.length ? ds[Math.floor(ds.length / 2)] || 1 : 1;
}

/**
 * Unbiased MMD^2 between samples x [N, D] and y [M, D] with the Gaussian kernel
 * k(a, b) = exp(-|a - b|^2 / (2 sigma^2)). It is ~0 (and may be slightly negative)
 * when both come from one distribution.
 * @example
 * const m = mmdGaussian(samples, data, { bandwidth: 1 });
 */
export function mmdGaussian(x: Tensor, y: Tensor, opts: { bandwidth?: number } = {}): number {
  const a = rows(x);
  const b = rows(y);
  if (a.d !== b.d) throw new Error(`mmdGaussian: dimensions differ (${a.d} vs ${b.d})`);
  if (a.n < 2 || b.n < 2) throw new Error('mmdGaussian: needs at least 2 points in each set');
  const sigma = opts.bandwidth ?? medianBandwidth(x, y);
  const g = 1 / (2 * sigma * sigma);
  const within = (p: Float64Array, n: number): number => {
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) s += Math.exp(-g * sqDist(p, i, p, j, a.d));
    return (2 * s) / (n * (n - 1));
  };
  let cross = 0;
  for (let i = 0; i < a.n; i++) for (let j = 0; j < b.n; j++) cross += Math.exp(-g * sqDist(a.v, i, b.v, j, a.d));
  return within(a.v, a.n) + within(b.v, b.n) - (2 * cross) / (a.n * b.n);
}

/** A square grid [lo, hi]^2 split into bins x bins cells. */
export interface Grid2d {
  bins: number;
  lo: [number, number];
  hi: [number, number];
}

/** A grid covering both point sets (their joint bounding box, padded by 5%). */
export function gridFor(...sets: Tensor[]): Grid2d {
  const lo: [number, number] = [Infinity, Infinity];
  const hi: [number, number] = [-Infinity, -Infinity];
  for (const s of sets) {
    const { v, n } = rows(s);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < 2; k++) {
        const t = v[i * 2 + k];
        if (!Number.isFinite(t)) continue;
        lo[k] = Math.min(lo[k], t);
        hi[k] = Math.max(hi[k], t);
      }
    }
  }
  for (let k = 0; k < 2; k++) {
    const pad = 0.05 * (hi[k] - lo[k] || 1);
    lo[k] -= pad;
    hi[k] += pad;
  }
  return { bins: 20, lo, hi };
}

/** Normalised 2-D histogram of points [N, 2] (points outside the grid are dropped). */
export function histogram2d(x: Tensor, grid: Grid2d): Float64Array {
  const { v, n, d } = rows(x);
  if (d !== 2) throw new Error(`histogram2d: expected [N, 2] points, got [${x.shape}]`);
  const { bins, lo, hi } = grid;
  const h = new Float64Array(bins * bins);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const a = Math.floor(((v[i * 2] - lo[0]) / (hi[0] - lo[0])) * bins);
    const b = Math.floor(((v[i * 2 + 1] - lo[1]) / (hi[1] - lo[1])) * bins);
    if (a < 0 || a >= bins || b < 0 || b >= bins) continue;
    h[a * bins + b]++;
    total++;
  }
  if (total > 0) for (let i = 0; i < h.length; i++) h[i] /= total;
  return h;
}

/**
 * KL(p_data || p_model) and JS divergence (nats) between histograms of `data` and
 * `model` points on a shared grid; each histogram is smoothed by `eps` per bin.
 * @example
 * const { kl, js } = gridDivergence(data, samples, { bins: 20 });
 */
export function gridDivergence(data: Tensor, model: Tensor, opts: { bins?: number; grid?: Grid2d; eps?: number } = {}): { kl: number; js: number } {
  const grid = opts.grid ?? { ...gridFor(data, model), bins: opts.bins ?? 20 };
  const eps = opts.eps ?? 1e-4;
  const smooth = (h: Float64Array): Float64Array => {
    const z = 1 + eps * h.length;
    return h.map((p) => (p + eps) / z);
  };
  const p = smooth(histogram2d(data, grid));
  const q = smooth(histogram2d(model, grid));
  let kl = 0;
  let js = 0;
  for (let i = 0; i < p.length; i++) {
    kl += p[i] * Math.log(p[i] / q[i]);
    const m = 0.5 * (p[i] + q[i]);
    js += 0.5 * p[i] * Math.log(p[i] / m) + 0.5 * q[i] * Math.log(q[i] / m);
  }
  return { kl, js };
}

/**
 * Modes hit (centres with at least `minCount` samples within `radius` std, default 3)
 * and the share of samples within that radius of some centre ("high quality").
 * @example
 * const { modesHit, highQuality } = modeCoverage(samples, toyMixture('8gaussians')!);
 */
export function modeCoverage(
  x: Tensor, mix: { centers: [number, number][]; std: number }, opts: { radius?: number; minCount?: number } = {},
): { modesHit: number; modes: number; highQuality: number } {
  const { v, n } = rows(x);
  const r2 = (opts.radius ?? 3) ** 2 * mix.std * mix.std;
  const counts = new Array<number>(mix.centers.length).fill(0);
  let good = 0;
  for (let i = 0; i < n; i++) {
    let best = -1;
    let bestD = Infinity;
    mix.centers.forEach(([cx, cy], c) => {
      const dd = (v[i * 2] - cx) ** 2 + (v[i * 2 + 1] - cy) ** 2;
      if (dd < bestD) {
        bestD = dd;
        best = c;
      }
    });
    if (bestD <= r2) {
      good++;
      counts[best]++;
    }
  }
  const minCount = opts.minCount ?? 1;
  return { modesHit: counts.filter((c) => c >= minCount).length, modes: mix.centers.length, highQuality: n ? good / n : 0 };
}
