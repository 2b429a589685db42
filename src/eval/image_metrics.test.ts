/**
 * Image metrics on known answers (FID closed form, KID, precision/recall), the
 * Jacobi eigensolver, the classifier cache (temp dir, tiny classifier), and the
 * registered evaluators end to end on untrained tiny models.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, existsSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, Tensor, randn } from '../engine/index.js';
import {
  symmetricEigen, sqrtmPsd, frechetDistance, featureFid, gaussianStats, kernelInceptionDistance, precisionRecall,
  classifierScore, featureClassifier, clearClassifierMemo, cacheDir, classifierFeatures, sampleQualityMetrics,
} from './image_metrics.js';
import { loadDataSource } from '../train/data_source.js';
import { modelEntry, resolveConfig } from '../models/registry.js';
import '../models/index.js';

process.env.GENLAB_CACHE_DIR = mkdtempSync(join(tmpdir(), 'genlab-cache-'));

function randomSpd(n: number, rng: Rng): Float64Array {
  const B = randn([n, n], rng).values();
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += B[i * n + k] * B[j * n + k];
    A[i * n + j] = s / n + (i === j ? 0.1 : 0);
  }
  return A;
}

test('Jacobi eigendecomposition reconstructs A; sqrtm squares back to A', () => {
  const n = 24;
  const A = randomSpd(n, new Rng(0));
  const { values, vectors: V } = symmetricEigen(A, n);
  let err = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += V[i * n + k] * values[k] * V[j * n + k];
    err = Math.max(err, Math.abs(s - A[i * n + j]));
  }
  assert.ok(err < 1e-10, `reconstruction error ${err}`);
  const R = sqrtmPsd(A, n);
  let err2 = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += R[i * n + k] * R[k * n + j];
    err2 = Math.max(err2, Math.abs(s - A[i * n + j]));
  }
  assert.ok(err2 < 1e-9, `sqrtm error ${err2}`);
});

test('FID: 0 for identical feature sets; closed form for Gaussians', () => {
  const f = randn([500, 16], new Rng(1));
  assert.ok(featureFid(f, f) < 1e-6, `${featureFid(f, f)}`);
  // Same features shifted by m: the covariances agree, FID = |m|^2.
  const m = new Tensor(Float32Array.from({ length: 16 }, (_, i) => (i % 3) * 0.5), [16]);
  const shift = Array.from(m.values()).reduce((s, v) => s + v * v, 0);
  assert.ok(Math.abs(featureFid(f, f.add(m)) - shift) < 1e-3 * shift, `${featureFid(f, f.add(m))} vs ${shift}`);
  // Commuting covariances S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T: FID = |mu1-mu2|^2 + sum (sqrt a - sqrt b)^2.
  const n = 12;
  const { vectors: Q } = symmetricEigen(randomSpd(n, new Rng(2)), n);
  const a = Array.from({ length: n }, (_, i) => 0.5 + i);
  const b = Array.from({ length: n }, (_, i) => 2 + 0.3 * i);
  const build = (d: number[]): Float64Array => {
    const S = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) S[i * n + j] += Q[i * n + k] * d[k] * Q[j * n + k];
    return S;
  };
  const mu1 = new Float64Array(n).fill(1);
  const mu2 = new Float64Array(n).fill(-1);
  const exact = 4 * n + a.reduce((s, ai, i) => s + (Math.sqrt(ai) - Math.sqrt(b[i])) ** 2, 0);
  const got = frechetDistance(mu1, build(a), mu2, build(b));
  assert.ok(Math.abs(got - exact) < 1e-8 * exact, `${got} vs ${exact}`);
  const st = gaussianStats(f);
  assert.equal(st.d, 16);
});

test('KID ~0 for identical sets, > 0 for shifted; precision/recall 1 for identical, 0 for disjoint', () => {
  const f = randn([300, 8], new Rng(3));
  const g = randn([300, 8], new Rng(4));
  // Identical sets: slightly negative (the within-set means leave out the diagonal, the cross mean does not).
  const same = kernelInceptionDistance(f, f, { subsets: 2, subsetSize: 300 });
  assert.ok(same <= 0 && same > -0.1, `kid identical ${same}`);
  const other = kernelInceptionDistance(f, g, { subsets: 5, subsetSize: 200 });
  assert.ok(Math.abs(other) < 0.02, `kid same distribution ${other}`);
  const shifted = kernelInceptionDistance(f, g.add(1), { subsets: 5, subsetSize: 200 });
  assert.ok(shifted > 0.05 && shifted > 20 * Math.abs(other), `shifted ${shifted} vs same-distribution ${other}`);
  assert.deepEqual(precisionRecall(f, f), { precision: 1, recall: 1 });
  assert.deepEqual(precisionRecall(f, f.add(100)), { precision: 0, recall: 0 });
  // A collapsed generator: precise but with low recall.
  const collapsed = f.slice(0, 0, 10).mul(0.01);
  const pr = precisionRecall(f, collapsed);
  assert.ok(pr.precision === 1 && pr.recall < 0.3, JSON.stringify(pr));
  const conf = new Tensor(Float32Array.from({ length: 40 }, (_, i) => (i % 4 === Math.floor(i / 4) % 4 ? 50 : 0)), [10, 4]);
  assert.ok(classifierScore(new Tensor(new Float32Array(40), [10, 4])) - 1 < 1e-9);
  assert.ok(classifierScore(conf) > 2.4 && classifierScore(conf) <= 4);
});

test('feature classifier: trained into the cache dir, reloaded, retrained when corrupt; evaluators give finite metrics', () => {
  assert.equal(cacheDir(), process.env.GENLAB_CACHE_DIR);
  const clf = featureClassifier('mnist', { quick: true, trainExamples: 600 });
  const files = readdirSync(cacheDir());
  assert.equal(files.length, 1, files.join(', '));
  const file = join(cacheDir(), files[0]);
  assert.ok(existsSync(file) && !files[0].includes('.tmp'));
  const ds = loadDataSource('mnist', ['image'], { limit: 600 });
  const x = ds.test.x.slice(0, 0, 50);
  const f0 = classifierFeatures(clf, x).values();
  assert.equal(classifierFeatures(clf, x).shape[1], 128);
  clearClassifierMemo();
  assert.deepEqual(Array.from(classifierFeatures(featureClassifier('mnist', { quick: true }), x).values()), Array.from(f0));
  writeFileSync(file, 'not a safetensors file');
  clearClassifierMemo();
  const again = featureClassifier('mnist', { quick: true, trainExamples: 300 });
  assert.ok(Array.from(classifierFeatures(again, x).values()).every(Number.isFinite));
  assert.throws(() => featureClassifier('cifar10'), /no classifier/);

  const opts = { quick: true, seed: 0 };
  for (const type of ['acgan', 'vae']) {
    const e = modelEntry(type);
    const m = e.create(resolveConfig('model', e.defaults, e.choices, e.presets.tiny.model), new Rng(0), ds.info);
    m.eval();
    const r = sampleQualityMetrics(m, ds, opts);
    for (const k of ['fidProxy', 'kid', 'precision', 'recall', 'classifierScore']) assert.ok(Number.isFinite(r[k]), `${type}: ${k} = ${r[k]}`);
    assert.equal('classAccuracy' in r, type === 'acgan');
  }
  const pts = loadDataSource('8gaussians', ['points'], { limit: 300 });
  const e = modelEntry('gan');
  const g = e.create(resolveConfig('model', e.defaults, e.choices, e.presets.tiny.model), new Rng(0), pts.info);
  const r = sampleQualityMetrics(g, pts, opts);
  for (const k of ['mmd2', 'gridKL', 'gridJS', 'modesHit', 'highQuality']) assert.ok(Number.isFinite(r[k]), `gan: ${k} = ${r[k]}`);
});
