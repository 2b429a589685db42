/**
 * PixelCNN: conformance on MNIST, the causal receptive field (a logit never depends on
 * its own pixel or later ones), the row-band shortcut used in sampling, and the NLL
 * as the sum of per-pixel binary cross-entropies.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, grad, bernoulli, rand } from '../engine/index.js';
import { bceWithLogits } from '../nn/losses.js';
import { conformance } from '../../test/model_conformance.js';
import { PixelCNN } from './pixelcnn.js';
import type { DataInfo } from './contract.js';

conformance('pixelcnn', { data: 'mnist', limit: 64, batchSize: 8, steps: 20, nSamples: 2 });

const info: DataInfo = { name: 'toy', kind: 'image', shape: [1, 6, 6] };
const cfg = { channels: 6, nLayer: 2, firstKernel: 3, outChannels: 6 };

test('pixelcnn: logit of pixel p depends only on pixels before p (raster order)', () => {
  const m = new PixelCNN(cfg, new Rng(0), info);
  const x0 = bernoulli(rand([1, 1, 6, 6], new Rng(1)), new Rng(2));
  let reach = 0;
  for (let p = 0; p < 36; p++) {
    const x = x0.detach();
    x.requiresGrad = true;
    const [g] = grad(m.logits(x).reshape([36]).slice(0, p, p + 1).sum(), [x]);
    const gv = g!.values();
    for (let i = p; i < 36; i++) assert.equal(gv[i], 0, `logit ${p} depends on pixel ${i}`);
    for (let i = 0; i < p; i++) if (gv[i] !== 0) reach++;
  }
  assert.ok(reach > 100, `receptive field too small (${reach} links)`);
});

test('pixelcnn: rowLogits on a band of rows and pixelLogit on a window equal the full forward', () => {
  const m = new PixelCNN(cfg, new Rng(0), info);
  const x = bernoulli(rand([2, 1, 6, 6], new Rng(5)), new Rng(6));
  const full = m.logits(x);
  for (const i of [0, 2, 5]) {
    const a = m.rowLogits(x, i).f32();
    const b = full.slice(2, i, i + 1).contiguous().f32();
    for (let k = 0; k < a.length; k++) assert.ok(Math.abs(a[k] - b[k]) < 1e-5, `row ${i}: ${a[k]} vs ${b[k]}`);
  }
  const fv = full.contiguous().f32();
  for (const [i, j] of [[0, 0], [2, 3], [5, 0], [5, 5], [3, 1]]) {
    const a = m.pixelLogit(x, i, j).f32();
    for (let b = 0; b < 2; b++) assert.ok(Math.abs(a[b] - fv[b * 36 + i * 6 + j]) < 1e-5, `pixel (${i}, ${j}): ${a[b]} vs ${fv[b * 36 + i * 6 + j]}`);
  }
});

test('pixelcnn: NLL equals the sum of per-pixel BCE', () => {
  const m = new PixelCNN(cfg, new Rng(0), info);
  const x = bernoulli(rand([3, 1, 6, 6], new Rng(3)), new Rng(4));
  const bce = bceWithLogits(m.logits(x), x, { reduction: 'sum' }).item() / 3;
  const nll = -m.logProb(x).mean().item();
  assert.ok(Math.abs(nll - bce) < 1e-3, `${nll} vs ${bce}`);
  assert.ok(Math.abs(m.evaluate({ x }).nll - bce) < 1e-3);
});
