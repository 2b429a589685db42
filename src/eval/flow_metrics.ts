/**
 * Metrics of normalizing flows (realnvp, glow, maf) on 2-D points, registered with
 * `registerEvaluator` and merged into `genlab eval` beside the models' own exact test
 * NLL:
 * - `mmd`: the unbiased squared MMD (eval/mmd.ts, Gaussian kernel, median-distance
 *   bandwidth) between model samples and held-out data.
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
import { mmdGaussian } from './mmd.js';
import type { EvalOptions } from './evaluate.js';

/** A model with an exact log-density per example [B] (nats). */
export interface DensityModel {
  logProb(x: Tensor): Tensor;
}

function hasLogProb(m: unknown): m is DensityModel {
  return typeof (m as { logProb?: unknown }).logProb === 'function';
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
