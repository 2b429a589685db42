/** Noise schedules against formula fixtures (scripts/fixtures/ddpm_schedule.py); parameterisation conversions. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng, randn } from '../../engine/index.js';
import { assertClose, fixture } from '../../../test/helpers.js';
import { NoiseSchedule } from './schedule.js';
import type { Prediction } from './schedule.js';

interface Fix {
  T: number;
  index: number[];
  linear: Record<string, number[]>;
  cosine: Record<string, number[]>;
}

describe('NoiseSchedule', () => {
  const f = fixture<Fix>('ddpm_schedule');
  for (const kind of ['linear', 'cosine'] as const) {
    test(`${kind}: every derived array matches the formulas (float64)`, () => {
      const s = new NoiseSchedule({ timesteps: f.T, schedule: kind });
      for (const [name, want] of Object.entries(f[kind])) {
        const arr = (s as unknown as Record<string, Float64Array>)[name];
        assert.ok(arr instanceof Float64Array, `missing ${name}`);
        f.index.forEach((t, i) => {
          const err = Math.abs(arr[t] - want[i]);
          assert.ok(err <= 1e-9 + 1e-9 * Math.abs(want[i]), `${kind} ${name}[${t}] = ${arr[t]}, want ${want[i]}`);
        });
      }
    });
  }

  test('linear ends and cosine clipping', () => {
    const lin = new NoiseSchedule({ timesteps: 1000, schedule: 'linear' });
    assert.equal(lin.betas[0], 1e-4);
    assert.ok(Math.abs(lin.betas[999] - 0.02) < 1e-15);
    const cos = new NoiseSchedule({ timesteps: 1000, schedule: 'cosine' });
    assert.equal(cos.betas[999], 0.999);
    assert.ok(Array.from(cos.betas).every((b) => b > 0 && b <= 0.999));
    assert.throws(() => new NoiseSchedule({ timesteps: 1, schedule: 'linear' }), /timesteps/);
  });

  test('eps, x0 and v targets convert back to the same (x0, eps)', () => {
    const s = new NoiseSchedule({ timesteps: 200, schedule: 'cosine' });
    const rng = new Rng(0);
    const x0 = randn([5, 3, 4], rng);
    const eps = randn([5, 3, 4], rng);
    const t = [0, 17, 99, 150, 199];
    const xt = s.qSample(x0, t, eps);
    for (const p of ['epsilon', 'x0', 'v'] as Prediction[]) {
      const out = s.target(p, x0, eps, t);
      const r = s.toX0Eps(p, out, xt, t);
      // eps from x0 at t = 0 divides by sqrt(1 - abar_0) ~ 0.006; hence the looser atol.
      assertClose(r.x0, x0, 1e-4, 2e-4, `${p}: x0`);
      assertClose(r.eps, eps, 1e-3, p === 'x0' ? 2e-2 : 1e-4, `${p}: eps`);
    }
    // v = sqrt(abar) eps - sqrt(1 - abar) x0, elementwise at one shared t.
    const v = s.velocity(x0, eps, 50).values();
    const a = Math.sqrt(s.alphasCumprod[50]);
    const b = Math.sqrt(1 - s.alphasCumprod[50]);
    const xv = x0.values();
    const ev = eps.values();
    for (let i = 0; i < v.length; i++) assert.ok(Math.abs(v[i] - (a * ev[i] - b * xv[i])) < 1e-5);
  });

  test('the posterior mean at x_0 = E[x_0] is consistent: q(x_{t-1}|x_t, x_0) mean of noiseless x_t is sqrt(abar_{t-1}) x_0', () => {
    const s = new NoiseSchedule({ timesteps: 100, schedule: 'linear' });
    const x0 = randn([4, 2], new Rng(1));
    for (const t of [1, 50, 99]) {
      const xt = x0.mul(Math.sqrt(s.alphasCumprod[t]));
      assertClose(s.posteriorMean(x0, xt, t), x0.mul(Math.sqrt(s.alphasCumprodPrev[t])), 1e-4, 1e-5, `t=${t}`);
    }
  });
});
