/**
 * Samplers: DDIM with eta = 1 over all steps is DDPM (variance and whole trajectories);
 * both recover a Gaussian data distribution from its exact (analytic) denoiser.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng, randn, Tensor } from '../../engine/index.js';
import { assertClose, fixture } from '../../../test/helpers.js';
import { NoiseSchedule } from './schedule.js';
import { ddimStep, ddimTimesteps, ddimVariance, ddpmStep, sampleLoop } from './samplers.js';
import type { Denoise, SamplerOptions } from './samplers.js';

/** E[x_0 | x_t] for x_0 ~ N(mu, sd^2) per coordinate: the x0-prediction of a perfect network. */
function gaussianDenoiser(s: NoiseSchedule, mu: number, sd: number): Denoise {
  return (xt: Tensor, t: number) => {
    const a = Math.sqrt(s.alphasCumprod[t]);
    const k = (a * sd * sd) / (a * a * sd * sd + 1 - a * a);
    return xt.sub(a * mu).mul(k).add(mu);
  };
}

function moments(x: Tensor): { mean: number; std: number } {
  const v = x.values();
  let m = 0;
  for (const u of v) m += u;
  m /= v.length;
  let q = 0;
  for (const u of v) q += (u - m) ** 2;
  return { mean: m, std: Math.sqrt(q / v.length) };
}

describe('samplers', () => {
  test('DDIM timesteps: trailing spacing, all T when steps = T, fixture for 10 steps', () => {
    const f = fixture<{ ddim10: { timesteps: number[]; variance: number[] } }>('ddpm_schedule');
    assert.deepEqual(ddimTimesteps(1000, 10), f.ddim10.timesteps);
    assert.deepEqual(ddimTimesteps(5, 5), [4, 3, 2, 1, 0]);
    assert.deepEqual(ddimTimesteps(1000, 1), [999]);
    assert.throws(() => ddimTimesteps(10, 11), /steps/);
    const s = new NoiseSchedule({ timesteps: 1000, schedule: 'linear' });
    const ts = f.ddim10.timesteps;
    ts.forEach((t, i) => {
      const v = ddimVariance(s, t, i + 1 < ts.length ? ts[i + 1] : -1);
      assert.ok(Math.abs(v - f.ddim10.variance[i]) <= 1e-12 + 1e-9 * f.ddim10.variance[i], `step ${t}: ${v} vs ${f.ddim10.variance[i]}`);
    });
  });

  test('DDIM eta = 1 over all steps has exactly the DDPM posterior variance', () => {
    for (const schedule of ['linear', 'cosine'] as const) {
      const s = new NoiseSchedule({ timesteps: 1000, schedule });
      for (let t = 0; t < s.T; t++) {
        const v = ddimVariance(s, t, t - 1);
        assert.ok(Math.abs(v - s.posteriorVariance[t]) <= 1e-12 + 1e-9 * s.posteriorVariance[t], `${schedule} t=${t}: ${v} vs ${s.posteriorVariance[t]}`);
      }
    }
  });

  test('one DDIM step with eta = 1 equals one DDPM step given the same noise, for every parameterisation', () => {
    const s = new NoiseSchedule({ timesteps: 100, schedule: 'cosine' });
    const rng = new Rng(3);
    const xt = randn([6, 2], rng);
    const out = randn([6, 2], rng);
    const z = randn([6, 2], rng);
    for (const p of ['epsilon', 'x0', 'v'] as const) {
      for (const t of [1, 40, 99]) {
        assertClose(ddimStep(s, p, out, xt, t, t - 1, 1, z, false), ddpmStep(s, p, out, xt, t, z, false), 1e-4, 1e-4, `${p} t=${t}`);
        // With x_0 clipped too: DDIM re-derives eps from the clipped x_0, so it stays the
        // DDPM posterior (an eps left as predicted would not).
        const big = out.mul(4);
        assertClose(ddimStep(s, p, big, xt, t, t - 1, 1, z, true), ddpmStep(s, p, big, xt, t, z, true), 1e-4, 1e-4, `${p} t=${t} clipped`);
      }
    }
  });

  test('whole trajectories: DDPM and DDIM(T steps, eta = 1) agree with the same seed', () => {
    const s = new NoiseSchedule({ timesteps: 50, schedule: 'linear', betaEnd: 0.2 });
    const den = gaussianDenoiser(s, 1, 0.5);
    const a = sampleLoop(s, 'x0', den, [64, 2], new Rng(7), { sampler: 'ddpm', steps: 1, eta: 0, clip: false });
    const b = sampleLoop(s, 'x0', den, [64, 2], new Rng(7), { sampler: 'ddim', steps: 50, eta: 1, clip: false });
    assertClose(a.x, b.x, 1e-4, 1e-4, 'x_0');
  });

  const cases: [string, Partial<SamplerOptions>][] = [
    ['DDPM', { sampler: 'ddpm' }],
    ['DDIM 20 steps, eta 0', { sampler: 'ddim', steps: 20, eta: 0 }],
  ];
  // (DDIM with few, large steps (5 of 100, or eta = 1 at 20 of 100) under-disperses
  // even with a perfect denoiser: a coarse discretisation, not a bug to test for.)
  for (const [name, o] of cases) {
    test(`${name} recovers N(2, 0.5^2) from the exact denoiser (x0 and epsilon outputs)`, () => {
      const s = new NoiseSchedule({ timesteps: 100, schedule: 'cosine' });
      const x0Den = gaussianDenoiser(s, 2, 0.5);
      const { x } = sampleLoop(s, 'x0', x0Den, [4000, 1], new Rng(11), { sampler: 'ddim', steps: 100, eta: 0, clip: false, ...o });
      // The same network read as an epsilon-predictor: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar).
      const epsDen: Denoise = (xt, t) => xt.sub(x0Den(xt, t).mul(Math.sqrt(s.alphasCumprod[t]))).div(Math.sqrt(1 - s.alphasCumprod[t]));
      const e = sampleLoop(s, 'epsilon', epsDen, [4000, 1], new Rng(11), { sampler: 'ddim', steps: 100, eta: 0, clip: false, ...o });
      assertClose(e.x, x, 1e-3, 1e-3, 'epsilon vs x0 parameterisation');
      const m = moments(x);
      assert.ok(Math.abs(m.mean - 2) < 0.04, `mean ${m.mean}`);
      assert.ok(Math.abs(m.std - 0.5) < 0.04, `std ${m.std}`);
    });
  }

  test('frames: first is x_T, last is x_0, evenly spaced; clipping bounds x_0 predictions', () => {
    const s = new NoiseSchedule({ timesteps: 30, schedule: 'cosine' });
    const den = gaussianDenoiser(s, 3, 0.1);
    const r = sampleLoop(s, 'x0', den, [3, 1, 2, 2], new Rng(1), { sampler: 'ddim', steps: 10, eta: 0, clip: false, frames: 4 });
    assert.equal(r.frames.length, 4);
    assert.equal(r.frames[3], r.x);
    assertClose(r.frames[0], randn([3, 1, 2, 2], new Rng(1)), 0, 0, 'x_T');
    // Data at 3 lies outside [-1, 1]: with clipping the samples stay within it.
    const c = sampleLoop(s, 'x0', den, [3, 1, 2, 2], new Rng(1), { sampler: 'ddim', steps: 10, eta: 0, clip: true });
    assert.ok(Array.from(c.x.values()).every((v) => v <= 1 + 1e-5), 'clipped samples exceed 1');
  });
});
