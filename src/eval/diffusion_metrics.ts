/**
 * Sample-quality metrics of diffusion models (type 'ddpm') by sampler, registered as a
 * `genlab eval` evaluator:
 * - images (data with a feature classifier, image_metrics.ts): the FID-proxy of
 *   ancestral DDPM (all T steps, Ho et al. 2020) against DDIM with 50 and 10 steps
 *   (Song et al. 2021, eta = 0), each on the same number of samples, with the
 *   FID-proxy of held-out real images as the floor for that sample size; for class-
 *   conditional models the share of samples classified as the asked class, plain
 *   (w = 0) and with classifier-free guidance at the model's scale w (Ho & Salimans
 *   2022, arXiv:2207.12598), as the paper's fig. 1 trade-off;
 * - 2-D points: MMD^2 (Gaussian kernel, median bandwidth) and the grid JS divergence
 *   of each sampler's samples against fresh data (mmd.ts).
 * Quick runs use fewer samples and skip DDPM when T > 200 (it costs T network calls).
 */
import { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { concat } from '../engine/ops/shape_ops.js';
import type { DataSource, GenerativeModel, SampleOptions } from '../models/contract.js';
import { registerEvaluator, testSubset } from './evaluate.js';
import type { EvalOptions } from './evaluate.js';
import { CLASSIFIER_DATA, classifierFeatures, classify, featureClassifier, featureFid } from './image_metrics.js';
import { gridDivergence, mmdGaussian } from './mmd.js';
import { isToyName, sampleToy } from '../data/toy2d.js';

/** What this evaluator needs of a diffusion model beyond the contract. */
interface DiffusionLike extends GenerativeModel {
  numClasses: number;
  schedule: { T: number };
  config: { guidance: number };
}

function isDiffusion(m: GenerativeModel): m is DiffusionLike {
  const d = m as unknown as Partial<DiffusionLike>;
  return typeof d.numClasses === 'number' && typeof d.schedule?.T === 'number';
}

/** The samplers compared: name -> sample options. */
export function diffusionSamplers(T: number, quick: boolean): [string, SampleOptions][] {
  const out: [string, SampleOptions][] = [];
  if (!quick || T <= 200) out.push(['ddpm', { sampler: 'ddpm' }]);
  for (const steps of [50, 10]) if (steps <= T) out.push([`ddim${steps}`, { sampler: 'ddim', steps, eta: 0 }]);
  return out;
}

/** n samples in chunks of `chunk`, with labels cond (or none); images or points [n, ...]. */
function draw(model: GenerativeModel, n: number, rng: Rng, opts: SampleOptions, cond: Tensor | null, chunk = 100): Tensor {
  const parts: Tensor[] = [];
  for (let i = 0; i < n; i += chunk) {
    const m = Math.min(chunk, n - i);
    const s = model.sample(m, rng, cond ? cond.slice(0, i, i + m) : undefined, opts);
    if (s.kind === 'image') parts.push(s.images);
    else if (s.kind === 'points') parts.push(s.points);
    else throw new Error(`${model.type}: text samples have no diffusion metrics`);
  }
  return parts.length === 1 ? parts[0] : concat(parts, 0);
}

function share(pred: Tensor, want: Tensor): number {
  const p = pred.values();
  const w = want.values();
  let ok = 0;
  for (let i = 0; i < p.length; i++) if (p[i] === w[i]) ok++;
  return p.length ? ok / p.length : 0;
}

/** Sample counts and switches, for runs that must fit a budget (defaults: by `quick`). */
export interface DiffusionEvalSizes {
  /** Samples per sampler (images: 100 quick, 500 full; points: 500 / 1000). */
  n?: number;
  /** Guided samples for the class share (100 / 500). */
  nGuided?: number;
  /** Include ancestral DDPM (default: unless quick with T > 200). */
  ddpm?: boolean;
  /** Use the quick feature classifier (default: quick). */
  quickClassifier?: boolean;
}

/**
 * Metrics by sampler (see the file header): fidProxy_<sampler>, fidProxy_data,
 * classAccuracy_<sampler> (w = 0), guidedAccuracy (w = the model's guidance),
 * mmd2_<sampler>, gridJS_<sampler>.
 * @example
 * diffusionSampleMetrics(model, loadDataSource('mnist', ['image']), { quick: false, seed: 0 }, { n: 200 });
 */
export function diffusionSampleMetrics(model: GenerativeModel, data: DataSource, opts: Required<EvalOptions>, sizes: DiffusionEvalSizes = {}): Record<string, number> {
  if (!isDiffusion(model)) return {};
  const T = model.schedule.T;
  let samplers = diffusionSamplers(T, opts.quick);
  if (sizes.ddpm !== undefined) samplers = [...(sizes.ddpm ? [['ddpm', { sampler: 'ddpm' }] as [string, SampleOptions]] : []), ...samplers.filter(([k]) => k !== 'ddpm')];
  const out: Record<string, number> = {};
  if (data.info.kind === 'points') {
    const n = sizes.n ?? (opts.quick ? 500 : 1000); // MMD is O(n^2)
    const name = data.info.name;
    const real = isToyName(name) ? sampleToy(name, n, new Rng(opts.seed + 1001)) : testSubset(data, opts.quick).x.slice(0, 0, n);
    for (const [tag, so] of samplers) {
      const x = draw(model, n, new Rng(opts.seed + 1), so, null, 1000);
      out[`mmd2_${tag}`] = mmdGaussian(x, real);
      if (data.info.shape[0] === 2) out[`gridJS_${tag}`] = gridDivergence(real, x).js;
    }
    out.samples = n;
    return out;
  }
  if (data.info.kind !== 'image' || !(CLASSIFIER_DATA as readonly string[]).includes(data.info.name)) return {};
  const clf = featureClassifier(data.info.name, { quick: sizes.quickClassifier ?? opts.quick });
  const n = sizes.n ?? (opts.quick ? 100 : 500);
  const test = testSubset(data, false);
  const nRef = Math.min(test.x.shape[0], opts.quick ? 500 : 2000);
  const ref = classifierFeatures(clf, test.x.slice(0, 0, nRef));
  // The floor: n real training images against the same reference.
  out.fidProxy_data = featureFid(ref, classifierFeatures(clf, data.train.x.slice(0, 0, Math.min(n, data.train.x.shape[0]))));
  const K = model.numClasses;
  const cond = K > 0 ? new Tensor(Int32Array.from({ length: n }, (_, i) => i % K), [n]) : null;
  for (const [tag, so] of samplers) {
    const x = draw(model, n, new Rng(opts.seed + 1), { ...so, ...(K > 0 ? { guidance: 0 } : {}) }, cond);
    out[`fidProxy_${tag}`] = featureFid(ref, classifierFeatures(clf, x));
    if (cond) out[`classAccuracy_${tag}`] = share(classify(clf, x), cond);
  }
  const m = sizes.nGuided ?? (opts.quick ? 100 : 500);
  if (K > 0 && m > 0) {
    const want = new Tensor(Int32Array.from({ length: m }, (_, i) => i % K), [m]);
    const x = draw(model, m, new Rng(opts.seed + 2), { sampler: 'ddim', steps: Math.min(50, model.schedule.T), eta: 0 }, want);
    out.guidedAccuracy = share(classify(clf, x), want);
    out.guidance = model.config.guidance;
  }
  out.samples = n;
  return out;
}

registerEvaluator('ddpm', (model, data, opts) => diffusionSampleMetrics(model, data, opts));
