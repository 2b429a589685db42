/** Diffusion evaluator: metrics by sampler for images (FID-proxy, class shares) and 2-D points (MMD). */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Rng } from '../engine/index.js';
import { modelEntry, resolveConfig } from '../models/registry.js';
import '../models/ddpm.js';
import { loadDataSource } from '../train/data_source.js';
import { featureClassifier } from './image_metrics.js';
import { evaluateRun } from './evaluate.js';
import { diffusionSampleMetrics, diffusionSamplers } from './diffusion_metrics.js';

process.env.GENLAB_CACHE_DIR = mkdtempSync(join(tmpdir(), 'genlab-cache-'));

function tiny(data: string, limit: number, timesteps: number) {
  const e = modelEntry('ddpm');
  const cfg = resolveConfig('model', e.defaults, e.choices, e.presets.tiny.model, { timesteps, sampleSteps: 10 });
  const ds = loadDataSource(data, e.data, { limit });
  return { model: e.create(cfg, new Rng(0), ds.info), ds };
}

test('sampler list: DDPM skipped in quick runs of long chains', () => {
  assert.deepEqual(diffusionSamplers(1000, false).map(([n]) => n), ['ddpm', 'ddim50', 'ddim10']);
  assert.deepEqual(diffusionSamplers(1000, true).map(([n]) => n), ['ddim50', 'ddim10']);
  assert.deepEqual(diffusionSamplers(30, true).map(([n]) => n), ['ddpm', 'ddim10']);
});

test('points: MMD and grid JS per sampler, merged with the model own metrics', () => {
  const { model, ds } = tiny('moons', 256, 60);
  const r = evaluateRun(model, ds, { quick: true });
  for (const k of ['mmd2_ddpm', 'mmd2_ddim50', 'mmd2_ddim10', 'gridJS_ddpm', 'valLoss', 'mmd']) assert.ok(Number.isFinite(r[k]), `${k}: ${r[k]}`);
  // An untrained model is far from the data.
  assert.ok(r.mmd2_ddim50 > 0.01, `mmd2 ${r.mmd2_ddim50}`);
});

test('images: FID-proxy per sampler, the real-data floor, class shares plain and guided', () => {
  featureClassifier('mnist', { quick: true, trainExamples: 300 }); // cached for the evaluator
  // T = 20 keeps it quick: DDPM (20 steps) and DDIM-10; DDIM-50 needs T >= 50.
  const { model, ds } = tiny('mnist', 300, 20);
  model.eval();
  const r = diffusionSampleMetrics(model, ds, { quick: true, seed: 0 }, { n: 40, nGuided: 30 });
  assert.equal(r.fidProxy_ddim50, undefined);
  for (const k of ['fidProxy_data', 'fidProxy_ddpm', 'fidProxy_ddim10', 'classAccuracy_ddim10', 'guidedAccuracy', 'guidance']) {
    assert.ok(Number.isFinite(r[k]), `${k}: ${r[k]}`);
  }
  assert.ok(r.fidProxy_data < r.fidProxy_ddim10, `untrained samples should be worse than real images: ${r.fidProxy_data} vs ${r.fidProxy_ddim10}`);
  assert.ok(r.guidedAccuracy >= 0 && r.guidedAccuracy <= 1);
  assert.equal(r.samples, 40);
  // Switches: DDPM off.
  assert.equal(diffusionSampleMetrics(model, ds, { quick: true, seed: 0 }, { n: 12, nGuided: 0, ddpm: false }).fidProxy_ddpm, undefined);
});
