/**
 * Sample-quality metrics for images, computed on the features of a small LeNet-like
 * classifier (LeCun et al. 1998) that genlab trains itself on the data set (MNIST or
 * Fashion-MNIST) and caches, in place of the Inception network of the papers:
 * - FID-proxy: the Frechet distance between Gaussians fitted to real and generated
 *   features (Heusel et al. 2017, arXiv:1706.08500, eq. 6):
 *   |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r^1/2 S_g S_r^1/2)^1/2), matrix square
 *   roots from a Jacobi eigendecomposition in float64;
 * - KID: unbiased MMD^2 with the kernel (x.y / d + 1)^3, averaged over subsets
 *   (Binkowski et al. 2018, arXiv:1801.01401, section 3);
 * - precision and recall from k-NN balls, k = 3 (Kynkaanniemi et al. 2019,
 *   arXiv:1904.06991, eq. 1-2);
 * - classifier-score proxy of the Inception Score (Salimans et al. 2016), and for
 *   conditional models the share of samples classified as the asked class.
 * The classifier is cached in $GENLAB_CACHE_DIR, else $XDG_CACHE_HOME/genlab, else
 * ~/.cache/genlab, as safetensors written atomically; a missing or corrupt file is
 * retrained. Also registers these metrics (and the 2-D ones of mmd.ts) as
 * `genlab eval` evaluators for the gan, dcgan, cgan, acgan, vae and cvae types.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { matmul } from '../engine/ops/matmul.js';
import { concat } from '../engine/ops/shape_ops.js';
import { maxPool2d } from '../engine/ops/conv.js';
import { randperm } from '../engine/ops/random.js';
import { Module } from '../nn/module.js';
import { Linear, Conv2d } from '../nn/layers.js';
import { crossEntropy } from '../nn/losses.js';
import { Adam } from '../optim/index.js';
import { loadMnist, loadFashionMnist } from '../data/mnist.js';
import { takeRows } from '../data/batching.js';
import { saveSafetensors, loadSafetensors } from '../io/safetensors.js';
import type { DataSource, GenerativeModel } from '../models/contract.js';
import { registerEvaluator, testSubset } from './evaluate.js';
import type { EvalOptions } from './evaluate.js';
import { mmdGaussian, gridDivergence, modeCoverage } from './mmd.js';
import { sampleToy, isToyName, toyMixture } from '../data/toy2d.js';

// ---------------------------------------------------------------------------
// The feature classifier.

/** LeNet-like: conv5(16)-pool-conv5(32)-pool-fc(128)-fc(K); features are the 128-d fc1 activations. */
export class ImageClassifier extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(inChannels: number, numClasses: number, rng: Rng, readonly featureDim = 128) {
    super();
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, 16, 5, rng, { padding: 2 }));
    this.conv2 = this.registerModule('conv2', new Conv2d(16, 32, 5, rng, { padding: 2 }));
    this.fc1 = this.registerModule('fc1', new Linear(32 * 7 * 7, featureDim, rng));
    this.fc2 = this.registerModule('fc2', new Linear(featureDim, numClasses, rng));
  }
  /** Penultimate features [B, featureDim] of images [B, C, 28, 28] in [0, 1]. */
  features(x: Tensor): Tensor {
    const h1 = maxPool2d(this.conv1.forward(x).relu(), 2); // (B, 16, 14, 14)
    const h2 = maxPool2d(this.conv2.forward(h1).relu(), 2); // (B, 32, 7, 7)
    return this.fc1.forward(h2.reshape([x.shape[0], -1])).relu();
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.features(x));
  }
}

export interface ClassifierTrainOptions {
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
}

/**
 * Train a classifier on images x [N, C, 28, 28] with labels y [N] (Adam, shuffled
 * mini-batches); returns it in eval mode.
 * @example
 * const clf = trainImageClassifier(train.images, train.labels, { epochs: 3 });
 */
export function trainImageClassifier(x: Tensor, y: Tensor, opts: ClassifierTrainOptions = {}): ImageClassifier {
  const rng = new Rng(opts.seed ?? 0);
  const K = Math.max(...Array.from(y.values())) + 1;
  const clf = new ImageClassifier(x.shape[1], K, rng);
  const opt = new Adam(clf.parameters(), { lr: opts.lr ?? 1e-3 });
  const bs = opts.batchSize ?? 128;
  const N = x.shape[0];
  for (let e = 0; e < (opts.epochs ?? 3); e++) {
    const perm = randperm(N, rng).values() as Int32Array;
    for (let i = 0; i + bs <= N || (i < N && i === 0); i += bs) {
      const idx = perm.subarray(i, Math.min(N, i + bs));
      opt.zeroGrad();
      crossEntropy(clf.forward(takeRows(x, idx)), takeRows(y, idx)).backward();
      opt.step();
    }
  }
  return clf.eval();
}

/** Share of images classified as their label. */
export function classifierAccuracy(clf: ImageClassifier, x: Tensor, y: Tensor): number {
  const pred = classify(clf, x).values();
  const lab = y.values();
  let ok = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === lab[i]) ok++;
  return pred.length ? ok / pred.length : 0;
}

/** Run `fn` over chunks of rows and concatenate the results along axis 0. */
function chunked(x: Tensor, fn: (b: Tensor) => Tensor, size = 500): Tensor {
  return noGrad(() => {
    const parts: Tensor[] = [];
    for (let i = 0; i < x.shape[0]; i += size) parts.push(fn(x.slice(0, i, Math.min(x.shape[0], i + size))));
    return parts.length === 1 ? parts[0] : concat(parts, 0);
  });
}

/** Predicted classes [N] (int32). */
export function classify(clf: ImageClassifier, x: Tensor): Tensor {
  return chunked(x, (b) => clf.forward(b).argmax(1));
}

/** Penultimate features [N, featureDim]. */
export function classifierFeatures(clf: ImageClassifier, x: Tensor): Tensor {
  return chunked(x, (b) => clf.features(b));
}

/** The cache folder: $GENLAB_CACHE_DIR, $XDG_CACHE_HOME/genlab, or ~/.cache/genlab. */
export function cacheDir(): string {
  if (process.env.GENLAB_CACHE_DIR) return process.env.GENLAB_CACHE_DIR;
  if (process.env.XDG_CACHE_HOME) return join(process.env.XDG_CACHE_HOME, 'genlab');
  return join(homedir(), '.cache', 'genlab');
}

const CLASSIFIER_VERSION = '1';
const loaded = new Map<string, ImageClassifier>();

/** Forget classifiers loaded in this process (the files stay; tests of the cache). */
export function clearClassifierMemo(): void {
  loaded.clear();
}

/** Data sets with a feature classifier. */
export const CLASSIFIER_DATA = ['mnist', 'fashion-mnist'] as const;

/**
 * The feature classifier of `dataset`, loaded from the cache or trained and cached:
 * full (3 epochs on the 60k training images, ~99% test accuracy on MNIST) or, with
 * `quick` and no full one cached, a quick one (1 epoch on 6k images, or
 * `trainExamples`).
 * @example
 * const clf = featureClassifier('mnist');
 */
export function featureClassifier(dataset: string, opts: { quick?: boolean; trainExamples?: number } = {}): ImageClassifier {
  if (!(CLASSIFIER_DATA as readonly string[]).includes(dataset)) throw new Error(`featureClassifier: no classifier for data '${dataset}' (have ${CLASSIFIER_DATA.join(', ')})`);
  const dir = cacheDir();
  const file = (q: boolean): string => join(dir, `${dataset}-classifier-v${CLASSIFIER_VERSION}${q ? '-quick' : ''}.safetensors`);
  const tryLoad = (q: boolean): ImageClassifier | null => {
    const key = file(q);
    if (loaded.has(key)) return loaded.get(key)!;
    if (!existsSync(key)) return null;
    try {
      const { tensors } = loadSafetensors(key);
      const clf = new ImageClassifier(1, 10, new Rng(0));
      clf.loadStateDict(tensors);
      loaded.set(key, clf.eval());
      return clf;
    } catch {
      return null; // corrupt or stale: retrain below
    }
  };
  const full = tryLoad(false);
  if (full) return full;
  const quick = !!opts.quick;
  if (quick) {
    const q = tryLoad(true);
    if (q) return q;
  }
  const load = dataset === 'mnist' ? loadMnist : loadFashionMnist;
  const tr = load('train', opts.trainExamples ?? (quick ? 6000 : undefined));
  const te = load('test', quick ? 1000 : undefined);
  const clf = trainImageClassifier(tr.images, tr.labels, { epochs: quick ? 1 : 3, batchSize: quick ? 64 : 128 });
  const acc = classifierAccuracy(clf, te.images, te.labels);
  mkdirSync(dir, { recursive: true });
  saveSafetensors(file(quick), clf.stateDict(), { version: CLASSIFIER_VERSION, dataset, testAccuracy: acc.toFixed(4) });
  loaded.set(file(quick), clf);
  return clf;
}

// ---------------------------------------------------------------------------
// Feature statistics.

/** Mean [d] and covariance [d, d] (unbiased) of features [N, d], in float64. */
export function gaussianStats(f: Tensor): { mu: Float64Array; cov: Float64Array; d: number } {
  const [n, d] = f.shape;
  const v = f.values();
  const mu = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mu[j] += v[i * d + j];
  for (let j = 0; j < d; j++) mu[j] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = v[i * d + j] - mu[j];
    for (let a = 0; a < d; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b] += ra * row[b];
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const c = cov[a * d + b] / Math.max(1, n - 1);
      cov[a * d + b] = c;
      cov[b * d + a] = c;
    }
  }
  return { mu, cov, d };
}

/**
 * Eigendecomposition of a symmetric matrix A [n, n] (row-major float64) by cyclic
 * Jacobi rotations: A = V diag(values) V^T, eigenvectors in the columns of V.
 */
export function symmetricEigen(A: Float64Array, n: number, opts: { tol?: number; maxSweeps?: number } = {}): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(A);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += a[i] * a[i];
  const tol = (opts.tol ?? 1e-22) * Math.max(scale, 1e-300);
  for (let sweep = 0; sweep < (opts.maxSweeps ?? 100); sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    if (off <= tol) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const app = a[p * n + p];
        const aqq = a[q * n + q];
        // Rotation angle that zeroes a_pq (Golub & Van Loan, algorithm 8.5.2).
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i];
  return { values, vectors: v };
}

/** Square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped to 0). */
export function sqrtmPsd(A: Float64Array, n: number): Float64Array {
  const { values, vectors: V } = symmetricEigen(A, n);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = Math.sqrt(Math.max(0, values[k]));
    if (s === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = V[i * n + k] * s;
      if (vik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += vik * V[j * n + k];
    }
  }
  return out;
}

function matmul64(A: Float64Array, B: Float64Array, n: number): Float64Array {
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = A[i * n + k];
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) C[i * n + j] += aik * B[k * n + j];
    }
  }
  return C;
}

/**
 * Frechet distance between N(mu1, S1) and N(mu2, S2); the symmetric form
 * tr sqrt(S1^1/2 S2 S1^1/2) of the cross term keeps everything in symmetric eigenproblems.
 */
export function frechetDistance(mu1: Float64Array, S1: Float64Array, mu2: Float64Array, S2: Float64Array): number {
  const d = mu1.length;
  let mean = 0;
  for (let i = 0; i < d; i++) mean += (mu1[i] - mu2[i]) ** 2;
  const r = sqrtmPsd(S1, d);
  const M = matmul64(matmul64(r, S2, d), r, d);
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) M[i * d + j] = M[j * d + i] = 0.5 * (M[i * d + j] + M[j * d + i]);
  const { values } = symmetricEigen(M, d);
  let trCross = 0;
  for (const v of values) trCross += Math.sqrt(Math.max(0, v));
  let tr = 0;
  for (let i = 0; i < d; i++) tr += S1[i * d + i] + S2[i * d + i];
  return Math.max(0, mean + tr - 2 * trCross);
}

/** FID between two feature sets [N, d] and [M, d]. */
export function featureFid(real: Tensor, fake: Tensor): number {
  const a = gaussianStats(real);
  const b = gaussianStats(fake);
  return frechetDistance(a.mu, a.cov, b.mu, b.cov);
}

/**
 * KID: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged over `subsets` random
 * subsets of `subsetSize` rows of each set.
 */
export function kernelInceptionDistance(real: Tensor, fake: Tensor, opts: { subsets?: number; subsetSize?: number; seed?: number } = {}): number {
  const d = real.shape[1];
  const m = Math.min(opts.subsetSize ?? 1000, real.shape[0], fake.shape[0]);
  const nSub = opts.subsets ?? 10;
  const rng = new Rng(opts.seed ?? 0);
  let total = 0;
  for (let s = 0; s < nSub; s++) {
    const pick = (t: Tensor): Tensor => takeRows(t, (randperm(t.shape[0], rng).values() as Int32Array).subarray(0, m));
    const x = pick(real);
    const y = pick(fake);
    const k = (p: Tensor, q: Tensor): Float32Array => matmul(p, q.T).div(d).add(1).pow(3).values() as Float32Array;
    const kxx = k(x, x);
    const kyy = k(y, y);
    const kxy = k(x, y);
    let sxx = 0;
    let syy = 0;
    let sxy = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        if (i !== j) {
          sxx += kxx[i * m + j];
          syy += kyy[i * m + j];
        }
        sxy += kxy[i * m + j];
      }
    }
    total += (sxx + syy) / (m * (m - 1)) - (2 * sxy) / (m * m);
  }
  return total / nSub;
}

/** Squared distances [N, M] between rows of a and b. */
function sqDistances(a: Tensor, b: Tensor): Float32Array {
  const na = a.square().sum(1, true); // (N, 1)
  const nb = b.square().sum(1, true).T; // (1, M)
  return na.add(nb).sub(matmul(a, b.T).mul(2)).relu().values() as Float32Array;
}

/** Distance to the k-th nearest other row of each row of x. */
function knnRadii(x: Tensor, k: number): Float64Array {
  const n = x.shape[0];
  const D = sqDistances(x, x);
  const r = new Float64Array(n);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) row[j] = D[i * n + j];
    row[i] = Infinity;
    row.sort();
    r[i] = row[Math.min(k - 1, n - 2)];
  }
  return r;
}

/** Share of rows of `q` inside some k-NN ball of `p` (the manifold of p). */
function coverage(p: Tensor, radii: Float64Array, q: Tensor): number {
  const np = p.shape[0];
  const nq = q.shape[0];
  const D = sqDistances(q, p);
  let inside = 0;
  for (let i = 0; i < nq; i++) {
    for (let j = 0; j < np; j++) {
      if (D[i * np + j] <= radii[j] * (1 + 1e-6) + 1e-12) {
        inside++;
        break;
      }
    }
  }
  return nq ? inside / nq : 0;
}

/**
 * Improved precision (share of fakes within the real k-NN manifold) and recall
 * (share of reals within the fake manifold), Kynkaanniemi et al. 2019, k = 3.
 */
export function precisionRecall(real: Tensor, fake: Tensor, k = 3): { precision: number; recall: number } {
  return noGrad(() => ({
    precision: coverage(real, knnRadii(real, k), fake),
    recall: coverage(fake, knnRadii(fake, k), real),
  }));
}

/** exp(E_x KL(p(y|x) || p(y))) from class logits [N, K] (the Inception Score's formula). */
export function classifierScore(logits: Tensor): number {
  const p = logits.softmax(1).values();
  const [n, K] = logits.shape;
  const marg = new Float64Array(K);
  for (let i = 0; i < n; i++) for (let c = 0; c < K; c++) marg[c] += p[i * K + c] / n;
  let kl = 0;
  for (let i = 0; i < n; i++) for (let c = 0; c < K; c++) {
    const q = p[i * K + c];
    if (q > 0) kl += q * (Math.log(q) - Math.log(marg[c]));
  }
  return Math.exp(kl / n);
}

// ---------------------------------------------------------------------------
// Evaluators.

/** Draw n samples in chunks; conditional models get labels 0, 1, ..., K-1, 0, ... */
function drawSamples(model: GenerativeModel, n: number, rng: Rng, numClasses?: number): { x: Tensor; cond: Tensor | null } {
  const parts: Tensor[] = [];
  const conds: Tensor[] = [];
  for (let i = 0; i < n; i += 500) {
    const m = Math.min(500, n - i);
    const cond = numClasses ? new Tensor(Int32Array.from({ length: m }, (_, j) => (i + j) % numClasses), [m]) : undefined;
    const s = model.sample(m, rng, cond);
    if (s.kind === 'image') parts.push(s.images);
    else if (s.kind === 'points') parts.push(s.points);
    else throw new Error(`${model.type}: text samples have no image or point metrics`);
    if (cond) conds.push(cond);
  }
  return { x: parts.length === 1 ? parts[0] : concat(parts, 0), cond: conds.length ? concat(conds, 0) : null };
}

/** Class count when the model is conditional (it exposes numClasses). */
function modelClasses(model: GenerativeModel): number | undefined {
  const k = (model as unknown as { numClasses?: unknown }).numClasses;
  return typeof k === 'number' && k > 0 ? k : undefined;
}

/**
 * Image metrics of a model's samples against the test split: fidProxy, kid,
 * precision, recall, classifierScore, and classAccuracy for conditional models
 * (data sets with a feature classifier only; others give {}).
 */
export function imageSampleMetrics(model: GenerativeModel, data: DataSource, opts: Required<EvalOptions>): Record<string, number> {
  if (!(CLASSIFIER_DATA as readonly string[]).includes(data.info.name)) return {};
  const real = testSubset(data, opts.quick).x;
  const n = Math.min(real.shape[0], opts.quick ? 500 : 2000);
  if (n < 10) return {}; // too few test images for covariances and k-NN balls
  const clf = featureClassifier(data.info.name, { quick: opts.quick });
  const realX = real.slice(0, 0, n);
  const K = modelClasses(model);
  const { x, cond } = drawSamples(model, n, new Rng(opts.seed + 1), K);
  const fr = classifierFeatures(clf, realX);
  const ff = classifierFeatures(clf, x);
  const out: Record<string, number> = {
    fidProxy: featureFid(fr, ff),
    kid: kernelInceptionDistance(fr, ff, { subsets: opts.quick ? 3 : 10, seed: opts.seed }),
    ...precisionRecall(fr, ff, 3),
    classifierScore: noGrad(() => classifierScore(chunked(x, (b) => clf.forward(b)))),
  };
  if (cond) {
    const pred = classify(clf, x).values();
    const want = cond.values();
    let ok = 0;
    for (let i = 0; i < n; i++) if (pred[i] === want[i]) ok++;
    out.classAccuracy = ok / n;
  }
  return out;
}

/**
 * 2-D metrics of a model's samples against fresh data (toys) or the test split:
 * mmd2 (Gaussian kernel, median bandwidth), gridKL = KL(data || model), gridJS, and
 * for 8gaussians/25gaussians modesHit and highQuality.
 */
export function pointSampleMetrics(model: GenerativeModel, data: DataSource, opts: Required<EvalOptions>): Record<string, number> {
  const n = opts.quick ? 500 : 2000;
  const name = data.info.name;
  const real = isToyName(name) ? sampleToy(name, n, new Rng(opts.seed + 1001)) : testSubset(data, opts.quick).x;
  const { x } = drawSamples(model, n, new Rng(opts.seed + 1));
  const m = Math.min(n, 1000); // MMD is O(n^2)
  const out: Record<string, number> = { mmd2: mmdGaussian(x.slice(0, 0, m), real.slice(0, 0, Math.min(m, real.shape[0]))) };
  if (data.info.shape[0] === 2) {
    const { kl, js } = gridDivergence(real, x);
    out.gridKL = kl;
    out.gridJS = js;
  }
  const mix = toyMixture(name);
  if (mix) Object.assign(out, modeCoverage(x, mix));
  return out;
}

/** Image or 2-D metrics, whichever the data are. */
export function sampleQualityMetrics(model: GenerativeModel, data: DataSource, opts: Required<EvalOptions>): Record<string, number> {
  if (data.info.kind === 'points') return pointSampleMetrics(model, data, opts);
  if (data.info.kind === 'image') return imageSampleMetrics(model, data, opts);
  return {};
}

for (const type of ['gan', 'dcgan', 'cgan', 'acgan', 'vae', 'cvae']) registerEvaluator(type, sampleQualityMetrics);
