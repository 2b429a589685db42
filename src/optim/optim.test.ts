/**
 * Optimizers against PyTorch: 10 steps of each configuration on the fixed problem of
 * scripts/fixtures/optim.py, comparing both parameters after every step. Also state
 * save/load (through JSON and safetensors bytes) continuing the same trajectory, and
 * the errors of a mismatched state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, hasBackend, withBackend } from '../engine/index.js';
import { fixture, fromFixture, assertClose } from '../../test/helpers.js';
import type { FixtureTensor } from '../../test/helpers.js';
import { SGD, Adam, AdamW, RMSprop } from './index.js';
import type { Optimizer, OptimizerStateDict, BaseOptions } from './index.js';
import { encodeSafetensors, decodeSafetensors } from '../io/safetensors.js';

interface Case {
  type: string;
  options: Record<string, unknown> & { groups?: Record<string, number>[] };
  losses: number[];
  trajectory: { W: FixtureTensor; b: FixtureTensor }[];
}
interface Fx {
  problem: { X: FixtureTensor; Y: FixtureTensor; W0: FixtureTensor; b0: FixtureTensor; quartic: number };
  optim: Record<string, Case>;
}
const fx = fixture<Fx>('optim');
const X = fromFixture(fx.problem.X);
const Y = fromFixture(fx.problem.Y);

function lossOf(W: Tensor, b: Tensor): Tensor {
  return X.matmul(W).add(b).sub(Y).square().mean().add(W.square().square().sum().mul(fx.problem.quartic));
}

function freshParams(): [Tensor, Tensor] {
  return [fromFixture(fx.problem.W0).requiresGrad_(), fromFixture(fx.problem.b0).requiresGrad_()];
}

type AnyOpt = Optimizer<BaseOptions>;

function make(c: Case, W: Tensor, b: Tensor): AnyOpt {
  const { groups, ...opts } = c.options;
  const params = groups
    ? [{ params: [W], ...groups[0] }, { params: [b], ...groups[1] }]
    : [W, b];
  const ctor = { SGD, Adam, AdamW, RMSprop }[c.type] as unknown as new (p: unknown, o: unknown) => AnyOpt;
  return new ctor(params, groups ? {} : opts);
}

function trainStep(opt: AnyOpt, W: Tensor, b: Tensor): number {
  opt.zeroGrad();
  const loss = lossOf(W, b);
  loss.backward();
  opt.step();
  return loss.item();
}

for (const [name, c] of Object.entries(fx.optim)) {
  test(`${name}: 10 steps follow torch.optim.${c.type}`, () => {
    const [W, b] = freshParams();
    const opt = make(c, W, b);
    c.trajectory.forEach((want, k) => {
      const loss = trainStep(opt, W, b);
      assert.ok(Math.abs(loss - c.losses[k]) <= 1e-5 * Math.abs(c.losses[k]) + 1e-6, `${name} step ${k}: loss ${loss} vs torch ${c.losses[k]}`);
      assertClose(W, want.W, 3e-5, 2e-6, `${name} W after step ${k + 1}`);
      assertClose(b, want.b, 3e-5, 2e-6, `${name} b after step ${k + 1}`);
    });
  });
}

// Adam/AdamW run in the backend's fused kernel: every available backend must follow torch.
for (const be of ['js', 'native', 'wasm'] as const) {
  test(`Adam and AdamW on the ${be} backend follow torch`, { skip: !hasBackend(be) && `${be} backend unavailable` }, () => {
    withBackend(be, () => {
      for (const name of ['adam', 'adam_weight_decay', 'adamw', 'adamw_weight_decay']) {
        const c = fx.optim[name];
        const [W, b] = freshParams();
        const opt = make(c, W, b);
        c.trajectory.forEach((want, k) => {
          trainStep(opt, W, b);
          assertClose(W, want.W, 3e-5, 2e-6, `${be} ${name} W after step ${k + 1}`);
          assertClose(b, want.b, 3e-5, 2e-6, `${be} ${name} b after step ${k + 1}`);
        });
      }
    });
  });
}

/** Serialise a state dict the way a checkpoint does: JSON text and safetensors bytes. */
function roundTrip(sd: OptimizerStateDict): OptimizerStateDict {
  const state = JSON.parse(JSON.stringify(sd.state));
  const { tensors } = decodeSafetensors(encodeSafetensors(sd.tensors));
  return { state, tensors };
}

for (const name of ['sgd_nesterov', 'adam_amsgrad', 'adamw_weight_decay', 'rmsprop_centered', 'rmsprop_momentum', 'adam_groups']) {
  test(`${name}: stateDict after 5 steps, loaded into a new optimizer, continues torch's trajectory`, () => {
    const c = fx.optim[name];
    const [W, b] = freshParams();
    const opt = make(c, W, b);
    for (let k = 0; k < 5; k++) trainStep(opt, W, b);
    const sd = roundTrip(opt.stateDict());
    // New params with the step-5 values, and an optimizer with different options (the state restores them).
    const W2 = tensor(Float32Array.from(W.f32()), W.shape).requiresGrad_();
    const b2 = tensor(Float32Array.from(b.f32()), b.shape).requiresGrad_();
    const opt2 = make(c, W2, b2);
    opt2.lr = 123;
    opt2.loadStateDict(sd);
    assert.equal(opt2.paramGroups[0].lr, opt.paramGroups[0].lr);
    for (let k = 5; k < 10; k++) {
      trainStep(opt2, W2, b2);
      assertClose(W2, c.trajectory[k].W, 3e-5, 2e-6, `${name} resumed W after step ${k + 1}`);
      assertClose(b2, c.trajectory[k].b, 3e-5, 2e-6, `${name} resumed b after step ${k + 1}`);
    }
  });
}

test('Adam stateDict holds torch-named buffers and step counts', () => {
  const [W, b] = freshParams();
  const opt = new Adam([['W', W], ['b', b]] as [string, Tensor][], { lr: 0.1 });
  trainStep(opt as unknown as AnyOpt, W, b);
  const sd = opt.stateDict();
  assert.deepEqual([...sd.tensors.keys()].sort(), ['0.exp_avg', '0.exp_avg_sq', '1.exp_avg', '1.exp_avg_sq']);
  assert.deepEqual(sd.state.steps, { 0: 1, 1: 1 });
  assert.deepEqual(sd.state.paramNames, ['W', 'b']);
  assert.deepEqual(sd.state.paramGroups[0].betas, [0.9, 0.999]);
  assert.deepEqual(sd.state.paramGroups[0].params, [0, 1]);
});

test('loadStateDict names the mismatch and leaves the state unchanged', () => {
  const [W, b] = freshParams();
  const opt = new Adam([W, b], { lr: 0.1 });
  trainStep(opt as unknown as AnyOpt, W, b);
  const sd = opt.stateDict();
  // Wrong parameter shape.
  const other = new Adam([tensor([[1, 2]]).requiresGrad_(), b], { lr: 0.1 });
  assert.throws(() => other.loadStateDict(sd), /param 0 has shape \[1, 2\], the state was saved for \[4, 3\]/);
  // Wrong optimizer type.
  assert.throws(() => new SGD([W, b], { lr: 0.1 }).loadStateDict(sd), /saved by Adam, not SGD/);
  // A moment tensor of the wrong shape.
  const bad = { state: sd.state, tensors: new Map(sd.tensors) };
  bad.tensors.set('1.exp_avg', tensor([1, 2]));
  const fresh = new Adam([W, b], { lr: 0.5 });
  assert.throws(() => fresh.loadStateDict(bad), /'1\.exp_avg' has shape \[2\], param 1 has shape \[3\]/);
  assert.equal(fresh.lr, 0.5, 'a failed load must not change the options');
  assert.equal(fresh.stateDict().tensors.size, 0, 'a failed load must not change the state');
  // Unknown buffer and different names.
  const unk = { state: sd.state, tensors: new Map([...sd.tensors, ['0.velocity', tensor(new Float32Array(12), [4, 3])]]) };
  assert.throws(() => fresh.loadStateDict(unk), /no buffer 'velocity'/);
  const named = new Adam([['enc.w', W], ['b', b]] as [string, Tensor][]);
  const sdNamed = named.stateDict();
  const renamed = new Adam([['dec.w', W], ['b', b]] as [string, Tensor][]);
  assert.throws(() => renamed.loadStateDict(sdNamed), /param 0 is 'dec\.w', the state was saved for 'enc\.w'/);
  // Group count.
  const grouped = new Adam([{ params: [W] }, { params: [b] }]);
  assert.throws(() => grouped.loadStateDict(sd), /state has 1 param groups, optimizer has 2/);
});

test('params without grad are skipped, zeroGrad clears, bad options are named', () => {
  const [W, b] = freshParams();
  const opt = new SGD([W, b], { lr: 0.1, momentum: 0.9 });
  const b0 = b.toArray();
  W.grad = tensor(new Float32Array(12).fill(1), [4, 3]);
  opt.step();
  assert.deepEqual(b.toArray(), b0);
  assert.ok(Math.abs(W.toArray()[0] - (fromFixture(fx.problem.W0).toArray()[0] - 0.1)) < 1e-6);
  assert.equal(opt.stateDict().tensors.size, 1);
  opt.zeroGrad(false);
  assert.deepEqual(W.grad!.toArray(), new Array(12).fill(0));
  opt.zeroGrad();
  assert.equal(W.grad, null);
  assert.throws(() => new SGD([W], { lr: -1 }), /SGD \(group 0\): lr must be a number >= 0, got -1/);
  assert.throws(() => new SGD([W], { lr: 0.1, nesterov: true }), /nesterov momentum needs momentum > 0/);
  assert.throws(() => new Adam([W], { betas: [0.9, 1] }), /betas\[1\] must be a number in \[0, 1\)/);
  assert.throws(() => new Adam([{ params: [W], momentum: 0.9 } as never]), /unknown option 'momentum'/);
  assert.throws(() => new Adam([]), /empty parameter list/);
  assert.throws(() => new Adam([W, W]), /appears more than once/);
  assert.throws(() => new Adam([W.mul(2)]), /not a leaf/);
  W.grad = tensor([1, 2]);
  assert.throws(() => opt.step(), /gradient shape \[2\] does not match parameter shape \[4, 3\]/);
});

test('AdamW defaults to weightDecay 0.01 and decays decoupled from the gradient', () => {
  const p = tensor([1, -2]).requiresGrad_();
  const opt = new AdamW([p], { lr: 0.1 });
  assert.equal(opt.paramGroups[0].weightDecay, 0.01);
  p.grad = tensor([0, 0]);
  opt.step();
  // Zero gradient: Adam's update is 0, only the decay p *= 1 - lr * wd acts.
  assertClose(p, tensor([1 * 0.999, -2 * 0.999]), 1e-7, 0, 'AdamW decay');
});
