/** Latent tools: lerp/slerp geometry, quantile grid, reconstructions, option dispatch. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor } from '../engine/index.js';
import { VAE } from '../models/vae.js';
import { CVAE } from '../models/cvae.js';
import { DCGAN } from '../models/dcgan.js';
import { GAN } from '../models/gan.js';
import { interpolateLatents, latentInterpolation, latentGrid, reconstructions, latentSamples, normalQuantile, isLatentModel } from './latent.js';

function close(a: ArrayLike<number>, b: ArrayLike<number>): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `element ${i}: ${a[i]} vs ${b[i]}`);
}

const mnist = { name: 'mnist', kind: 'image' as const, shape: [1, 28, 28], numClasses: 10 };

test('lerp is linear; slerp keeps the norm between equal-norm latents and ends at both end points', () => {
  const a = [3, 0, 0];
  const b = [0, 3, 0];
  const lerp = interpolateLatents(a, b, 5, 'lerp');
  assert.deepEqual(Array.from(lerp[2]), [1.5, 1.5, 0]);
  const sl = interpolateLatents(a, b, 5, 'slerp');
  assert.deepEqual(Array.from(sl[0]), a);
  for (const z of sl) assert.ok(Math.abs(Math.hypot(...z) - 3) < 1e-9);
  assert.ok(Math.abs(sl[4][1] - 3) < 1e-12 && Math.abs(sl[4][0]) < 1e-12);
  // Parallel latents fall back to lerp.
  assert.deepEqual(Array.from(interpolateLatents([1, 1], [2, 2], 3, 'slerp')[1]), [1.5, 1.5]);
  assert.throws(() => interpolateLatents([1], [1, 2], 3), /sizes/);
});

test('normalQuantile inverts the normal CDF', () => {
  assert.ok(Math.abs(normalQuantile(0.5)) < 1e-12);
  assert.ok(Math.abs(normalQuantile(0.975) - 1.959963984540054) < 1e-8);
  assert.ok(Math.abs(normalQuantile(0.001) + 3.090232306167813) < 1e-8);
  assert.ok(Math.abs(normalQuantile(0.3) + normalQuantile(0.7)) < 1e-12);
});

test('interpolation strips, 2-D latent grid and reconstructions have the right shapes and ends', () => {
  const vae = new VAE({ hiddenDim: 16, latentDim: 2 }, new Rng(0), mnist).eval();
  assert.ok(isLatentModel(vae));
  const strip = latentInterpolation(vae, new Rng(1), { steps: 6, rows: 2, mode: 'slerp' });
  assert.deepEqual([...strip.shape], [12, 1, 28, 28]);
  const from = [0.5, -1];
  const to = [2, 1];
  const s = latentInterpolation(vae, new Rng(1), { steps: 4, from, to, mode: 'lerp' });
  const ends = vae.decodeLatent(new Tensor(Float32Array.from([...from, ...to]), [2, 2])).values();
  const sv = s.values();
  const P = 784;
  // (Batches of different sizes may take different GEMM paths: compare closely, not bitwise.)
  close(sv.subarray(0, P), ends.subarray(0, P));
  close(sv.subarray(3 * P, 4 * P), ends.subarray(P));
  const grid = latentGrid(vae, { size: 5 });
  assert.deepEqual([...grid.shape], [25, 1, 28, 28]);
  // The centre of an odd grid is z = 0.
  const centre = vae.decodeLatent(new Tensor(new Float32Array(2), [1, 2])).values();
  close(grid.values().subarray(12 * P, 13 * P), centre);
  const x = new Tensor(new Float32Array(3 * P).fill(0.5), [3, 1, 28, 28]);
  const rec = reconstructions(vae, x);
  assert.deepEqual([...rec.shape], [6, 1, 28, 28]);
  assert.equal(rec.values()[0], 0.5);
  const gan = new GAN({ latentDim: 1 }, new Rng(0), { name: 'p', kind: 'points', shape: [2] });
  assert.throws(() => latentGrid(gan), /needs 2/);
  assert.throws(() => reconstructions(new DCGAN({ latentDim: 4, baseChannels: 4 }, new Rng(0), mnist), x), /no encoder/);
});

test('latentSamples dispatches sample options; conditional models get labels', () => {
  const cvae = new CVAE({ hiddenDim: 16, latentDim: 3 }, new Rng(0), mnist).eval();
  const rng = new Rng(2);
  assert.equal(latentSamples(cvae, rng, {}), null);
  const i = latentSamples(cvae, rng, { interpolate: 'lerp', steps: 4, rows: 3 }, { cls: 7 });
  assert.ok(i && i.kind === 'image' && i.images.shape[0] === 12);
  const g = latentSamples(cvae, rng, { grid: 4 });
  assert.ok(g && g.kind === 'image' && g.images.shape[0] === 16);
  const data = { x: new Tensor(new Float32Array(5 * 784), [5, 1, 28, 28]), y: new Tensor(new Int32Array(5), [5]) };
  const r = latentSamples(cvae, rng, { reconstruct: 2 }, { data });
  assert.ok(r && r.kind === 'image' && r.images.shape[0] === 4);
  assert.throws(() => latentSamples(cvae, rng, { interpolate: 'cubic' }), /lerp or slerp/);
  const gan = new GAN({ latentDim: 3, hiddenDim: 8, nLayer: 1 }, new Rng(0), { name: 'p', kind: 'points', shape: [2] });
  const p = latentSamples(gan, rng, { interpolate: true, steps: 5 });
  assert.ok(p && p.kind === 'points' && p.points.shape[0] === 5);
});
