/**
 * Checkpoint folders: round trip of weights, optimizer state, rng, step and config;
 * training resumed from a checkpoint continues the same trajectory; crashes simulated
 * at every stage of a save leave a loadable checkpoint; missing and corrupt files are
 * named in the errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, Tensor, randn, tensor } from '../engine/index.js';
import { Adam } from '../optim/index.js';
import type { OptimizerStateDict } from '../optim/index.js';
import { loadSafetensors } from '../io/safetensors.js';
import { saveCheckpoint, loadCheckpoint, CheckpointError } from './checkpoint.js';
import type { CheckpointPhase } from './checkpoint.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'genlab-ckpt-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A tiny regression problem with an Adam optimizer. */
function setup(seed: number) {
  const data = new Rng(0);
  const X = randn([16, 3], data);
  const Y = X.matmul(tensor([[1], [-2], [0.5]])).add(0.3);
  const rng = new Rng(seed);
  const w = randn([3, 1], rng).requiresGrad_();
  const b = tensor([0]).requiresGrad_();
  const opt = new Adam([['w', w], ['b', b]] as [string, Tensor][], { lr: 0.05 });
  const step = (): number => {
    opt.zeroGrad();
    // Minibatch drawn from the rng, so resuming needs the rng state too.
    const i = rng.int(0, 12);
    const loss = X.slice(0, i, i + 4).matmul(w).add(b).sub(Y.slice(0, i, i + 4)).square().mean();
    loss.backward();
    opt.step();
    return loss.item();
  };
  return { rng, w, b, opt, step };
}

test('save/load round trip; resuming continues exactly the uninterrupted trajectory', () => {
  withDir((root) => {
    const dir = join(root, 'run', 'checkpoint');
    const a = setup(1);
    for (let k = 0; k < 5; k++) a.step();
    const config = { type: 'toy', model: { hiddenDim: 3 }, train: { lr: 0.05 } };
    saveCheckpoint(dir, { weights: { w: a.w, b: a.b }, optimizer: a.opt, rng: a.rng, step: 5, config, extra: { best: 0.5 } });
    assert.deepEqual(readdirSync(join(root, 'run')), ['checkpoint'], 'no temporary or old folder left');
    assert.deepEqual(readdirSync(dir).sort(), ['checkpoint.json', 'model.safetensors', 'optimizer.json', 'optimizer.safetensors', 'rng.json']);
    const rest = Array.from({ length: 5 }, () => a.step());

    const ck = loadCheckpoint(dir);
    assert.equal(ck.step, 5);
    assert.equal(ck.recovered, false);
    assert.deepEqual(ck.config, config);
    assert.deepEqual(ck.extra, { best: 0.5 });
    assert.ok(!Number.isNaN(Date.parse(ck.timestamps.savedAt)));
    assert.deepEqual([...ck.weights.keys()].sort(), ['b', 'w']);
    // model.safetensors is a plain safetensors file with PyTorch's metadata.
    assert.deepEqual(loadSafetensors(join(dir, 'model.safetensors')).metadata, { format: 'pt' });

    const c = setup(999); // Different init and rng: everything must come from the checkpoint.
    (c.w.data as Float32Array).set(ck.weights.get('w')!.f32());
    (c.b.data as Float32Array).set(ck.weights.get('b')!.f32());
    c.opt.loadStateDict(ck.optimizer as OptimizerStateDict);
    c.rng.setState(ck.rng);
    const resumed = Array.from({ length: 5 }, () => c.step());
    assert.deepEqual(resumed, rest, 'resumed losses equal the uninterrupted run bit for bit');
    assert.deepEqual(c.w.toArray(), a.w.toArray());
  });
});

test('a crash at any stage of a save leaves a complete checkpoint; the next save succeeds', () => {
  for (const crashAt of ['written', 'old-moved', 'renamed', 'done'] as CheckpointPhase[]) {
    withDir((root) => {
      const dir = join(root, 'ckpt');
      const weights = (v: number) => ({ w: tensor([v, v]) });
      const state = (v: number) => ({ weights: weights(v), optimizer: { state: { v }, tensors: new Map() }, rng: new Rng(v), step: v, config: { v } });
      saveCheckpoint(dir, state(1));
      assert.throws(
        () => saveCheckpoint(dir, state(2), { onPhase: (p) => { if (p === crashAt) throw new Error(`crash at ${p}`); } }),
        new RegExp(`crash at ${crashAt}`),
      );
      const ck = loadCheckpoint(dir);
      // Before the new folder is renamed into place the old checkpoint is the one read.
      const expectNew = crashAt === 'renamed' || crashAt === 'done';
      assert.equal(ck.step, expectNew ? 2 : 1, `crash at ${crashAt}`);
      assert.equal(ck.recovered, crashAt === 'old-moved', `crash at ${crashAt}: recovered`);
      assert.deepEqual(ck.weights.get('w')!.toArray(), expectNew ? [2, 2] : [1, 1]);
      assert.deepEqual(ck.optimizer.state, { v: expectNew ? 2 : 1 });
      saveCheckpoint(dir, state(3));
      assert.equal(loadCheckpoint(dir).step, 3, `save after a crash at ${crashAt}`);
      assert.deepEqual(readdirSync(root), ['ckpt'], `leftovers after a crash at ${crashAt}`);
    });
  }
});

test('a half-written temporary folder of a dead process is ignored by load and removed by the next save', () => {
  withDir((root) => {
    const dir = join(root, 'ckpt');
    const s = { weights: { w: tensor([1]) }, optimizer: { state: null, tensors: {} }, rng: new Rng(0).getState(), step: 7, config: {} };
    saveCheckpoint(dir, s);
    // pid 2^31-1 cannot be running.
    const stale = join(root, 'ckpt.tmp-2147483647');
    mkdirSync(stale);
    writeFileSync(join(stale, 'model.safetensors'), 'partial');
    assert.equal(loadCheckpoint(dir).step, 7);
    saveCheckpoint(dir, { ...s, step: 8 });
    assert.ok(!existsSync(stale));
    assert.equal(loadCheckpoint(dir).step, 8);
  });
});

test('missing and corrupt files are named', () => {
  withDir((root) => {
    const dir = join(root, 'ckpt');
    const rng = new Rng(3);
    const fresh = () => {
      rmSync(dir, { recursive: true, force: true });
      saveCheckpoint(dir, { weights: { w: randn([4, 4], rng) }, optimizer: { state: { a: 1 }, tensors: { m: randn([4], rng) } }, rng, step: 1, config: {} });
    };
    assert.throws(() => loadCheckpoint(dir), /no checkpoint at .*ckpt \(and no ckpt\.old to recover\)/);
    fresh();
    unlinkSync(join(dir, 'rng.json'));
    assert.throws(() => loadCheckpoint(dir), /checkpoint .*ckpt: rng\.json is missing/);
    fresh();
    const model = join(dir, 'model.safetensors');
    writeFileSync(model, readFileSync(model).subarray(0, 40));
    assert.throws(() => loadCheckpoint(dir), /model\.safetensors is corrupt: 40 bytes, the manifest says \d+/);
    fresh();
    const opt = join(dir, 'optimizer.safetensors');
    const bytes = readFileSync(opt);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(opt, bytes);
    assert.throws(() => loadCheckpoint(dir), /optimizer\.safetensors is corrupt: sha256 [0-9a-f]+ does not match/);
    fresh();
    writeFileSync(join(dir, 'checkpoint.json'), '{"format": "genlab-checkpoint",');
    assert.throws(() => loadCheckpoint(dir), /checkpoint\.json is corrupt \(invalid JSON/);
    fresh();
    unlinkSync(join(dir, 'checkpoint.json'));
    assert.throws(() => loadCheckpoint(dir), /checkpoint\.json is missing/);
    // A folder that is not a checkpoint is never replaced (or deleted).
    assert.throws(
      () => saveCheckpoint(dir, { weights: {}, optimizer: { state: null, tensors: {} }, rng, step: 2, config: {} }),
      (e: unknown) => e instanceof CheckpointError && /exists and is not a genlab checkpoint/.test(e.message),
    );
    assert.ok(existsSync(join(dir, 'model.safetensors')));
  });
});

test('invalid state is refused before anything is written', () => {
  withDir((root) => {
    const dir = join(root, 'ckpt');
    const base = { weights: { w: tensor([1]) }, optimizer: { state: null, tensors: {} }, rng: new Rng(0), step: 1, config: {} };
    assert.throws(() => saveCheckpoint(dir, { ...base, config: { lr: NaN } }), /config or extra holds NaN at key 'lr'/);
    assert.throws(() => saveCheckpoint(dir, { ...base, step: -1 }), /step must be a non-negative integer/);
    assert.deepEqual(readdirSync(root), []);
    // A checkpoint.old from a crash is still found after a failed save.
    saveCheckpoint(dir, base);
    renameSync(dir, `${dir}.old`);
    assert.throws(() => saveCheckpoint(dir, { ...base, step: 2.5 }));
    assert.equal(loadCheckpoint(dir).recovered, true);
  });
});
