/**
 * Learning-rate schedules against torch's schedulers' lr sequences, gradient clipping
 * against torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (fixtures from
 * scripts/fixtures/optim.py), and EMA against its formula.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor } from '../engine/index.js';
import { fixture, fromFixture, assertClose } from '../../test/helpers.js';
import type { FixtureTensor } from '../../test/helpers.js';
import { SGD, LRScheduler, constantLR, stepLR, cosineLR, linearWarmup, clipGradNorm, clipGradValue, EMA } from './index.js';
import type { Schedule } from './index.js';

interface Fx {
  schedules: Record<string, { lrs: number[] } & Record<string, number>>;
  clip: {
    grads: FixtureTensor[];
    cases: { maxNorm: number; normType: number | 'inf'; total: number; clipped: FixtureTensor[] }[];
    value: { clipValue: number; clipped: FixtureTensor[] };
  };
}
const fx = fixture<Fx>('optim');

function checkSequence(name: string, schedule: Schedule, want: number[]): void {
  const p = tensor([0]).requiresGrad_();
  const opt = new SGD([p], { lr: 0.1 });
  const sched = new LRScheduler(opt, schedule);
  want.forEach((lr, k) => {
    if (k > 0) {
      opt.step();
      sched.step();
    }
    assert.ok(Math.abs(opt.lr - lr) <= 1e-12 + 1e-9 * lr, `${name}: lr at step ${k} is ${opt.lr}, torch ${lr}`);
    // The scheduler and the pure function agree.
    assert.equal(schedule(k, 0.1), opt.lr);
  });
}

test('stepLR follows torch StepLR', () => {
  const s = fx.schedules.step;
  checkSequence('stepLR', stepLR({ stepSize: s.stepSize, gamma: s.gamma }), s.lrs);
});

test('cosineLR follows torch CosineAnnealingLR and then stays at minLr', () => {
  const s = fx.schedules.cosine;
  const sched = cosineLR({ totalSteps: s.totalSteps, minLr: s.minLr });
  checkSequence('cosineLR', sched, s.lrs);
  assert.equal(sched(s.totalSteps + 5, 0.1), s.minLr);
});

test('linearWarmup follows torch LinearLR', () => {
  const s = fx.schedules.linear;
  checkSequence('linearWarmup', linearWarmup({ warmupSteps: s.warmupSteps, startFactor: s.startFactor }), s.lrs);
});

test('linearWarmup then cosine follows torch SequentialLR(LinearLR, CosineAnnealingLR)', () => {
  const s = fx.schedules.warmup_cosine;
  const sched = linearWarmup({ warmupSteps: s.warmupSteps, startFactor: s.startFactor }, cosineLR({ totalSteps: s.totalSteps, minLr: s.minLr }));
  checkSequence('warmup+cosine', sched, s.lrs);
});

test('LRScheduler keeps per-group base lrs and resumes from its state', () => {
  const a = tensor([0]).requiresGrad_();
  const b = tensor([0]).requiresGrad_();
  const opt = new SGD([{ params: [a], lr: 1 }, { params: [b], lr: 0.1 }], { lr: 0.5 });
  const sched = new LRScheduler(opt, stepLR({ stepSize: 2, gamma: 0.5 }));
  for (let k = 0; k < 5; k++) sched.step();
  assert.deepEqual(sched.lastLr, [0.25, 0.025]);
  const opt2 = new SGD([{ params: [a], lr: 7 }, { params: [b], lr: 7 }], { lr: 0.5 });
  const sched2 = new LRScheduler(opt2, stepLR({ stepSize: 2, gamma: 0.5 }));
  sched2.loadStateDict(JSON.parse(JSON.stringify(sched.stateDict())));
  assert.deepEqual(sched2.lastLr, [0.25, 0.025]);
  sched.step();
  sched2.step();
  assert.deepEqual(sched2.lastLr, sched.lastLr);
  assert.equal(constantLR()(1000, 0.3), 0.3);
  assert.throws(() => stepLR({ stepSize: 0 }), /stepSize must be an integer >= 1/);
});

function gradsOf(): Tensor[] {
  return fx.clip.grads.map((g) => {
    const p = tensor(new Float32Array(g.shape.reduce((a, b) => a * b, 1)), g.shape).requiresGrad_();
    p.grad = fromFixture(g);
    return p;
  });
}

test('clipGradNorm matches torch clip_grad_norm_ for norms 2, 1, 3 and inf', () => {
  for (const c of fx.clip.cases) {
    const ps = gradsOf();
    const normType = c.normType === 'inf' ? Infinity : c.normType;
    const total = clipGradNorm(ps, c.maxNorm, { normType });
    assert.ok(Math.abs(total - c.total) <= 1e-6 * c.total, `norm ${c.normType}: total ${total}, torch ${c.total}`);
    ps.forEach((p, i) => assertClose(p.grad!, c.clipped[i], 1e-6, 1e-7, `norm ${c.normType} max ${c.maxNorm} grad ${i}`));
  }
});

test('clipGradNorm skips params without grad, returns 0 for none, and can refuse non-finite norms', () => {
  const [p, q] = gradsOf();
  const none = tensor([1, 2]).requiresGrad_();
  assert.equal(clipGradNorm([none], 1), 0);
  const total = clipGradNorm([p, none, q], 1);
  assert.ok(total > 1 && none.grad === null);
  q.grad = tensor([1, NaN, 2, 3, 4]);
  assert.throws(() => clipGradNorm([p, q], 1, { errorIfNonfinite: true }), /total norm of order 2 .* is NaN/);
  assert.ok(Number.isNaN(clipGradNorm([p, q], 1)));
  assert.ok(p.grad!.toArray().every(Number.isNaN), 'as torch, a NaN norm scales every gradient to NaN');
});

test('clipGradValue matches torch clip_grad_value_', () => {
  const ps = gradsOf();
  clipGradValue(ps, fx.clip.value.clipValue);
  ps.forEach((p, i) => assertClose(p.grad!, fx.clip.value.clipped[i], 0, 0, `clip value grad ${i}`));
});

test('EMA follows shadow = d shadow + (1 - d) param, with warm-up, apply/restore and state', () => {
  const w = tensor([1, 2, 3]).requiresGrad_();
  const ema = new EMA([['w', w]] as [string, Tensor][], { decay: 0.9, warmup: true });
  const expected = [1, 2, 3];
  for (let t = 0; t < 20; t++) {
    const d = Math.min(0.9, (1 + t) / (10 + t));
    assert.ok(Math.abs(ema.currentDecay() - d) < 1e-15);
    (w.data as Float32Array).set([t, -t, 2 * t]);
    ema.update();
    [t, -t, 2 * t].forEach((v, i) => (expected[i] = d * expected[i] + (1 - d) * v));
  }
  assertClose(ema.shadow[0], tensor(expected), 1e-6, 1e-6, 'EMA shadow');
  const training = w.toArray();
  ema.apply();
  assertClose(w, tensor(expected), 1e-6, 1e-6, 'applied shadow');
  assert.throws(() => ema.update(), /restore\(\) first/);
  ema.restore();
  assert.deepEqual(w.toArray(), training);
  assert.throws(() => ema.restore(), /apply\(\) was not called/);
  // State round trip into a fresh EMA.
  const sd = ema.stateDict();
  const ema2 = new EMA([['w', w]] as [string, Tensor][], { decay: 0.9, warmup: true });
  ema2.loadStateDict({ state: JSON.parse(JSON.stringify(sd.state)), tensors: new Map([['w', tensor(sd.tensors.get('w')!.toArray())]]) });
  assert.equal(ema2.numUpdates, 20);
  assert.deepEqual(ema2.shadow[0].toArray(), ema.shadow[0].toArray());
  assert.throws(() => ema2.loadStateDict({ state: sd.state, tensors: new Map([['v', tensor([1, 2, 3])]]) }), /no shadow for 'w'/);
  assert.throws(() => ema2.loadStateDict({ state: sd.state, tensors: new Map([['w', tensor([1, 2])]]) }), /shadow 'w' is float32 \[2\], parameter is float32 \[3\]/);
  // Without warm-up the decay is constant.
  assert.equal(new EMA([w], { decay: 0.99 }).currentDecay(), 0.99);
});
