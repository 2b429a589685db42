/**
 * Metrics of normalizing flows (realnvp, glow, maf) on 2-D points, registered with
 * `registerEvaluator` and merged into `genlab eval` beside the models' own exact test
 * NLL:
 * - `mmd`: the squared maximum mean discrepancy (Gretton et al. 2012, "A Kernel
 *   Two-Sample Test", JMLR 13, eq. 3, the unbiased estimate) between model samples and
 *   held-out data, Gaussian kernel with the median-distance bandwidth.
 * - `trueNll`: for toys with a closed-form density (8gaussians, 25gaussians,
 *   checkerboard), mean -log p_true on the test points, an estimate of the entropy,
 *   the floor of any model's test NLL; `nllGap` = model NLL - trueNll on the same points.
 * `densityGrid` evaluates a flow's log-density on a grid for a heat map.
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { isToyName, hasToyDensity, toyLogDensity } from '../data/toy2d.js';
import type { DataSource, GenerativeModel } from '../models/contract.js';
import { registerEvaluator } from './evaluate.js';
import type { EvalOptions } from './evaluate.js';

/** A model with an exact log-density per example [B] (nats). */
export interface DensityModel {
  logProb(x: Tensor): Tensor;
}

function hasLogProb(m: unknown): m is DensityModel {
  return typeof (m as { logProb?: unknown }).logProb === 'function';
}

/**
 * Unbiased MMD^2 between point sets a [n, D] and b [m, D] with the Gaussian kernel
 * k(x, y) = exp(-|x - y|^2 / (2 sigma^2)); sigma defaults to the median pairwise
 * distance of the pooled points. Float64 throughout.
 * @example
 * mmdGaussian(samples, testPoints); // ~0 when both come from one distribution
 */
export function mmdGaussian(a: Tensor, b: Tensor, sigma?: number): number {
  const D = a.shape[1];
  const av = a.values();
  const bv = b.values();
  const n = a.shape[0];
  const m = b.shape[0];
  const pts = (i: number): [ArrayLike<number>, number] => (i < n ? [av, i * D] : [bv, (i - n) * D]);
  const d2 = (i: number, j: number): number => {
    const [x, xo] = pts(i);
    const [y, yo] = pts(j);
    let s = 0;
    for (let k = 0; k < D; k++) {
      const t = x[xo + k] - y[yo + k];
      s += t * t;
    }
    return s;
  };
  let s2 = sigma === undefined ? 0 : sigma * sigma;
  if (sigma === undefined) {
    // Median heuristic on a strided subset of pairs (at most ~20000).
    const N = n + m;
    const stride = Math.max(1, Math.floor((N * N) / 40000));
    const ds: number[] = [];
    for (let p = 0; p < N * N; p += stride) {
      const i = Math.floor(p / N);
      const j = p % N;
      if (i < j) ds.push(d2(i, j));
    }
    ds.sort((x, y) => x - y);
    s2 = ds[Math.floor(ds.length / 2)] || 1;
  }
  const k = (i: number, j: number): number => Math.exp(-d2(i, j) / (2 * s2));
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) xx += 2 * k(i, j);
  for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) yy += 2 * k(n + i, n + j);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) xy += k(i, n + j);
  return xx / (n * (n - 1)) + yy / (m * (m - 1)) - (2 * xy) / (n * m);
}

/**
 * A flow's log-density on an n x n grid over [lo, hi]^2, row-major with row 0 at the
 * top (y = hi) and column 0 at x = lo, ready for `heatMap(values, n, n)`.
 * @example
 * const g = densityGrid(model, [-4, 4], 100);
 * writePng('density.png', heatMap(g, 100, 100));
 */
export function densityGrid(model: DensityModel, range: [number, number], n: number): Float32Array {
  const [lo, hi] = range;
  const out = new Float32Array(n * n);
  const step = n > 1 ? (hi - lo) / (n - 1) : 0;
  noGrad(() => {
    for (let r = 0; r < n; r++) {
      const pts = new Float32Array(2 * n);
      for (let c = 0; c < n; c++) {
        pts[2 * c] = lo + c * step;
        pts[2 * c + 1] = hi - r * step;
      }
      out.set(model.logProb(new Tensor(pts, [n, 2])).values(), r * n);
    }
  });
  return out;
}

/** MMD against held-out points and, for toys with a known density, the NLL floor and gap. */
export function flowPointMetrics(model: GenerativeModel, data: DataSource, opts: Required<EvalOptions>): Record<string, number> {
  if (data.info.kind !== 'points') return {};
  const nTest = data.test.x.shape[0];
  const n = Math.min(nTest, opts.quick ? 500 : 2000);
  const test = data.test.x.slice(0, 0, n);
  const s = model.sample(n, new Rng(opts.seed + 5));
  if (s.kind !== 'points') return {};
  const out: Record<string, number> = { mmd: mmdGaussian(s.points, test) };
  const name = data.info.name;
  if (isToyName(name) && hasToyDensity(name)) {
    const truth = toyLogDensity(name, test);
    let t = 0;
    for (const v of truth) t -= v;
    out.trueNll = t / n;
    if (hasLogProb(model)) {
      const lp = model.logProb(test).values();
      let m = 0;
      for (const v of lp) m -= v;
      out.nllGap = m / n - out.trueNll;
    }
  }
  return out;
}

for (const type of ['realnvp', 'glow', 'maf']) registerEvaluator(type, flowPointMetrics);
