/**
 * The model conformance suite (ARCHITECTURE.md, "Tests"): one call per model type
 * registers node:test tests that build the model from its `tiny` preset on a small
 * slice of data and check the contract: output shapes, a finite loss, the loss falls
 * on a fixed batch, sample kind and shape, same seed gives the same samples, a state
 * dict round trip through safetensors gives identical samples, and (when the model
 * has them) `evaluate` and `trainStep` give finite numbers.
 *
 * @example
 * // src/models/gan.test.ts
 * import { conformance } from '../../test/model_conformance.js';
 * import './gan.js';
 * conformance('gan', { data: '8gaussians', limit: 256, lossFalls: false });
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng, Tensor, noGrad } from '../src/engine/index.js';
import { Adam } from '../src/optim/index.js';
import { encodeSafetensors, decodeSafetensors } from '../src/io/safetensors.js';
import { modelEntry, resolveConfig } from '../src/models/registry.js';
import type { ConfigValue } from '../src/models/registry.js';
import type { Batch, DataSource, GenerativeModel, SampleOptions, Samples, TrainHooks } from '../src/models/contract.js';
import { loadDataSource } from '../src/train/data_source.js';
import { takeRows } from '../src/data/batching.js';

export interface ConformanceOptions {
  /** Data spec as `--data` takes it (mnist, 8gaussians, a text set, a task, ...). */
  data: string;
  /** Number of training examples to load (default 256). */
  limit?: number;
  /** Preset to start from (default 'tiny'). */
  preset?: string;
  /** Model config overrides on top of the preset (as `--model.KEY=V`). */
  modelOverrides?: Record<string, ConfigValue>;
  /** Size of the fixed batch (default 16). */
  batchSize?: number;
  /** Optimisation steps on the fixed batch for the "loss falls" check (default 30). */
  steps?: number;
  /** Learning rate of that check (default: the preset's train.lr, else 1e-3). */
  lr?: number;
  /**
   * Whether `loss` must fall on the fixed batch (default true). Adversarial models,
   * whose `loss` is one player's, pass false: their loss is only checked for finiteness.
   */
  lossFalls?: boolean;
  /** Number of samples drawn (default 4). */
  nSamples?: number;
  /** Pass class labels 0..n-1 (mod numClasses) as `cond` to `sample`. */
  conditional?: boolean;
  /** Options handed to `sample`. */
  sampleOptions?: SampleOptions;
  /** Check `evaluate(test, rng, {quick: true})` gives finite numbers (default: when the model has it). */
  evaluate?: boolean;
  /** Test examples handed to `evaluate` (default 16). */
  evalExamples?: number;
}

interface Built {
  data: DataSource;
  make: (seed: number) => GenerativeModel;
  batch: Batch;
  lr: number;
}

/** Flat float64 copy of a sample set, for equality checks. */
export function sampleValues(s: Samples): number[] | string[] {
  if (s.kind === 'image') return Array.from(s.images.values());
  if (s.kind === 'points') return Array.from(s.points.values());
  return s.texts;
}

/** Trainer-like hooks for a model's configureOptimizers/trainStep (Adam at `lr`). */
export function testHooks(lr: number): TrainHooks {
  return {
    makeOptimizer: (params: Tensor[], lrScale = 1) => new Adam(params, { lr: lr * lrScale }),
    clip: () => {},
  };
}

/**
 * Register the conformance tests of one model type.
 * @example
 * conformance('vae', { data: 'mnist', limit: 128 });
 */
export function conformance(type: string, opts: ConformanceOptions): void {
  const preset = opts.preset ?? 'tiny';
  const bs = opts.batchSize ?? 16;
  const nSamples = opts.nSamples ?? 4;
  let built: Built | null = null;
  const setup = (): Built => {
    if (built) return built;
    const entry = modelEntry(type);
    const p = entry.presets[preset];
    assert.ok(p, `${type}: no preset '${preset}' (presets: ${Object.keys(entry.presets).join(', ')})`);
    const model = resolveConfig('model', entry.defaults, entry.choices, p.model, opts.modelOverrides);
    const data = loadDataSource(opts.data, entry.data, { seed: 0, limit: opts.limit ?? 256, model });
    const n = data.train.x.shape[0];
    const idx = Int32Array.from({ length: Math.min(bs, n) }, (_, i) => i);
    const batch: Batch = {};
    for (const [k, v] of Object.entries(data.train)) batch[k] = takeRows(v, idx);
    const lr = opts.lr ?? ((p.train?.lr as number | undefined) ?? 1e-3);
    built = { data, batch, lr, make: (seed) => entry.create(model, new Rng(seed), data.info) };
    return built;
  };
  const cond = (b: Built): Tensor | undefined => {
    if (!opts.conditional) return undefined;
    const k = b.data.info.numClasses ?? 10;
    return new Tensor(Int32Array.from({ length: nSamples }, (_, i) => i % k), [nSamples]);
  };
  const draw = (m: GenerativeModel, b: Built, seed: number): Samples => {
    m.eval();
    try {
      return noGrad(() => m.sample(nSamples, new Rng(seed), cond(b), opts.sampleOptions));
    } finally {
      m.train();
    }
  };

  const over = Object.entries(opts.modelOverrides ?? {}).map(([k, v]) => `, ${k}=${v}`).join('');
  describe(`conformance: ${type} (${preset}${over}) on ${opts.data}`, () => {
    test('builds from its preset with registered parameters and its type', () => {
      const b = setup();
      const m = b.make(0);
      assert.equal(m.type, type);
      assert.ok(m.parameters().length > 0, 'no parameters');
      for (const [name, p] of m.namedParameters()) {
        assert.equal(p.dtype, 'float32', `${name} is not float32`);
        assert.ok(Array.from(p.values()).every(Number.isFinite), `${name} has non-finite values at init`);
      }
    });

    test('loss is a finite scalar with finite metrics and gradients reach parameters', () => {
      const b = setup();
      const m = b.make(0);
      const { loss, metrics } = m.loss(b.batch, new Rng(1), { step: 0, totalSteps: 100 });
      assert.equal(loss.size, 1, `loss has shape [${loss.shape}]`);
      assert.ok(Number.isFinite(loss.item()), `loss is ${loss.item()}`);
      for (const [k, v] of Object.entries(metrics ?? {})) assert.ok(Number.isFinite(v), `metric ${k} is ${v}`);
      loss.backward();
      const withGrad = m.parameters().filter((p) => p.grad !== null);
      assert.ok(withGrad.length > 0, 'no parameter received a gradient');
      for (const p of withGrad) assert.ok(Array.from(p.grad!.values()).every(Number.isFinite), 'non-finite gradient');
    });

    const lossFalls = opts.lossFalls ?? true;
    test(lossFalls ? 'loss falls on a fixed batch' : 'loss stays finite while training on a fixed batch', () => {
      const b = setup();
      const m = b.make(0);
      const steps = opts.steps ?? 30;
      const losses: number[] = [];
      if (m.trainStep) {
        const hooks = testHooks(b.lr);
        m.configureOptimizers!(hooks);
        for (let s = 0; s < steps; s++) {
          const metrics = m.trainStep(b.batch, new Rng(1), { step: s, totalSteps: steps, hooks });
          for (const [k, v] of Object.entries(metrics)) assert.ok(Number.isFinite(v), `step ${s}: trainStep metric ${k} is ${v}`);
          losses.push(noGrad(() => m.loss(b.batch, new Rng(1), { step: s, totalSteps: steps }).loss.item()));
        }
      } else {
        const opt = new Adam(m.parameters(), { lr: b.lr });
        for (let s = 0; s < steps; s++) {
          opt.zeroGrad();
          // The same Rng each step makes the objective one fixed function of the weights.
          const { loss } = m.loss(b.batch, new Rng(1), { step: s, totalSteps: steps });
          losses.push(loss.item());
          loss.backward();
          opt.step();
        }
      }
      assert.ok(losses.every(Number.isFinite), `non-finite loss: ${losses.join(', ')}`);
      if (lossFalls) {
        const head = (losses[0] + losses[1]) / 2;
        const tail = (losses[steps - 1] + losses[steps - 2]) / 2;
        assert.ok(tail < head, `loss did not fall over ${steps} steps: ${head} -> ${tail}`);
      }
    });

    test('samples have the data kind and shape, finite values', () => {
      const b = setup();
      const m = b.make(0);
      const s = draw(m, b, 3);
      const info = b.data.info;
      if (s.kind === 'image') {
        assert.equal(info.kind, 'image');
        assert.deepEqual([...s.images.shape], [nSamples, ...info.shape]);
        const v = s.images.values();
        assert.ok(Array.from(v).every((x) => Number.isFinite(x) && x >= 0 && x <= 1), 'image values outside [0, 1]');
        if (s.labels) assert.equal(s.labels.shape[0], nSamples);
      } else if (s.kind === 'points') {
        assert.equal(info.kind, 'points');
        assert.deepEqual([...s.points.shape], [nSamples, ...info.shape]);
        assert.ok(Array.from(s.points.values()).every(Number.isFinite), 'non-finite points');
      } else {
        assert.equal(s.texts.length, nSamples);
        for (const t of s.texts) assert.equal(typeof t, 'string');
      }
    });

    test('the same seed gives the same samples', () => {
      const b = setup();
      const m = b.make(0);
      assert.deepEqual(sampleValues(draw(m, b, 5)), sampleValues(draw(m, b, 5)));
      // And a model built with the same seed samples the same.
      assert.deepEqual(sampleValues(draw(b.make(0), b, 5)), sampleValues(draw(m, b, 5)));
    });

    test('state dict round trip through safetensors gives identical samples', () => {
      const b = setup();
      const m = b.make(0);
      // A few updates first, so the weights differ from any fresh initialisation.
      const opt = new Adam(m.parameters(), { lr: b.lr });
      for (let s = 0; s < 2; s++) {
        opt.zeroGrad();
        m.loss(b.batch, new Rng(2 + s), { step: s, totalSteps: 2 }).loss.backward();
        opt.step();
      }
      const bytes = encodeSafetensors(m.stateDict());
      const other = b.make(123);
      other.loadStateDict(decodeSafetensors(bytes).tensors);
      assert.deepEqual(sampleValues(draw(other, b, 9)), sampleValues(draw(m, b, 9)));
    });

    const wantEval = opts.evaluate;
    test('evaluate (when present) gives finite metrics', (t) => {
      const b = setup();
      const m = b.make(0);
      if (!m.evaluate) {
        assert.notEqual(wantEval, true, `${type} has no evaluate`);
        t.skip('no evaluate');
        return;
      }
      if (wantEval === false) {
        t.skip('skipped by option');
        return;
      }
      const k = opts.evalExamples ?? 16;
      const test: Batch = {};
      for (const [key, v] of Object.entries(b.data.test)) test[key] = v.slice(0, 0, Math.min(k, v.shape[0]));
      m.eval();
      const r = noGrad(() => m.evaluate!(test, new Rng(0), { quick: true }));
      assert.ok(Object.keys(r).length > 0, 'evaluate returned no metrics');
      for (const [key, v] of Object.entries(r)) assert.ok(Number.isFinite(v), `evaluate: ${key} is ${v}`);
    });
  });
}
