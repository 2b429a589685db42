/**
 * The trainer: runs any model through the model contract (models/contract.ts) for a
 * number of steps with an optimizer, LR schedule, gradient clipping and EMA; logs
 * every metric to `metrics.jsonl`, shows progress, evaluates and samples periodically,
 * and checkpoints every N steps, at the end, and on Ctrl-C. A resumed run restores
 * weights, optimizer(s), scheduler, EMA, RNG, data order and step, so it continues
 * with exactly the losses an uninterrupted run would have had.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, noGrad, tidy } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { BatchSampler, takeRows } from '../data/batching.js';
import { Adam, AdamW, SGD, RMSprop, LRScheduler, clipGradNorm, EMA, cosineLR, linearWarmup, constantLR } from '../optim/index.js';
import type { Schedule } from '../optim/index.js';
import type { Batch, GenerativeModel, OptimizerLike, TrainHooks } from '../models/contract.js';
import type { Config } from '../models/registry.js';
import type { DataSource } from './data_source.js';
import { saveCheckpoint, loadCheckpoint } from './checkpoint.js';
import { Progress } from './progress.js';

/** Trainer settings (`--train.key=value`). */
export const TRAIN_DEFAULTS: Config = {
  steps: 1000,
  batchSize: 64,
  lr: 1e-3,
  optimizer: 'adam',
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  momentum: 0.9,
  schedule: 'constant',
  warmupSteps: 0,
  minLr: 0,
  clipNorm: 0,
  ema: 0,
  logEvery: 50,
  evalEvery: 0,
  sampleEvery: 0,
  ckptEvery: 1000,
  /** Samples drawn for the periodic and final sample pictures (0: none). */
  numSamples: 64,
};

export const TRAIN_CHOICES = {
  optimizer: ['adam', 'adamw', 'sgd', 'rmsprop'],
  schedule: ['constant', 'cosine'],
} as const;

export interface TrainerOptions {
  model: GenerativeModel;
  /** Everything needed to rebuild the model: {type, model: {...}, train: {...}, data, seed}. */
  runConfig: RunConfig;
  data: DataSource;
  outDir: string;
  /** Print progress (default true). */
  verbose?: boolean;
  /** Write sample pictures (the CLI passes its PNG writer; models know nothing of files). */
  onSample?: (step: number, model: GenerativeModel, rng: Rng) => void;
  /** Stop after this step even though train.steps is larger (tests of resume). */
  stopAt?: number;
}

export interface RunConfig {
  type: string;
  model: Config;
  train: Config;
  data: string;
  seed: number;
  /** Use only the first N training examples (quick runs and tests). */
  limit?: number;
}

export class TrainingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingError';
  }
}

export interface TrainResult {
  step: number;
  losses: number[];
  interrupted: boolean;
  lastMetrics: Record<string, number>;
}

function makeOptimizer(cfg: Config, params: Tensor[], lrScale = 1): OptimizerLike {
  const lr = (cfg.lr as number) * lrScale;
  const betas: [number, number] = [cfg.beta1 as number, cfg.beta2 as number];
  const wd = cfg.weightDecay as number;
  switch (cfg.optimizer) {
    case 'adam': return new Adam(params, { lr, betas, weightDecay: wd });
    case 'adamw': return new AdamW(params, { lr, betas, weightDecay: wd });
    case 'sgd': return new SGD(params, { lr, momentum: cfg.momentum as number, weightDecay: wd });
    case 'rmsprop': return new RMSprop(params, { lr, weightDecay: wd });
    default: throw new TrainingError(`train.optimizer: unknown optimizer ${JSON.stringify(cfg.optimizer)}`);
  }
}

function makeSchedule(cfg: Config): Schedule {
  const total = cfg.steps as number;
  const warm = cfg.warmupSteps as number;
  const after = cfg.schedule === 'cosine' ? cosineLR({ totalSteps: Math.max(1, total - warm), minLr: cfg.minLr as number }) : constantLR();
  return warm > 0 ? linearWarmup({ warmupSteps: warm }, after) : after;
}

export class Trainer {
  readonly model: GenerativeModel;
  readonly cfg: RunConfig;
  readonly outDir: string;
  private readonly data: DataSource;
  private readonly sampler: BatchSampler;
  private readonly rng: Rng;
  private step = 0;
  private readonly optimizers: Record<string, OptimizerLike> = {};
  private readonly schedulers: Record<string, LRScheduler> = {};
  private ema: EMA | null = null;
  private interrupted = false;
  private readonly opts: TrainerOptions;

  constructor(opts: TrainerOptions) {
    this.opts = opts;
    this.model = opts.model;
    this.cfg = opts.runConfig;
    this.outDir = opts.outDir;
    this.data = opts.data;
    const t = this.cfg.train;
    this.sampler = new BatchSampler(this.data.train.x.shape[0], t.batchSize as number, this.cfg.seed);
    this.rng = new Rng(this.cfg.seed * 1000 + 17);
    if (this.model.trainStep) {
      if (!this.model.configureOptimizers) throw new TrainingError(`${this.model.type}: a model with its own trainStep must define configureOptimizers`);
      this.model.configureOptimizers(this.hooks());
    } else {
      this.addOptimizer('main', makeOptimizer(t, this.model.parameters()));
    }
    if ((t.ema as number) > 0) this.ema = new EMA(this.model.namedParameters(), { decay: t.ema as number });
  }

  private addOptimizer(name: string, opt: OptimizerLike): OptimizerLike {
    this.optimizers[name] = opt;
    this.schedulers[name] = new LRScheduler(opt, makeSchedule(this.cfg.train));
    return opt;
  }

  private hooks(): TrainHooks {
    return {
      makeOptimizer: (params, lrScale = 1) => {
        const name = `opt${Object.keys(this.optimizers).length}`;
        return this.addOptimizer(name, makeOptimizer(this.cfg.train, params, lrScale));
      },
      clip: (params) => {
        const c = this.cfg.train.clipNorm as number;
        if (c > 0) clipGradNorm(params, c);
      },
    };
  }

  get checkpointDir(): string {
    return join(this.outDir, 'checkpoint');
  }

  /** Save weights, optimizers, schedulers, EMA, RNG, data order and step, atomically. */
  save(): void {
    const optim: Record<string, unknown> = {};
    const tensors: Record<string, Tensor> = {};
    for (const [name, o] of Object.entries(this.optimizers)) {
      const sd = o.stateDict() as { state: unknown; tensors: Map<string, Tensor> };
      optim[name] = { state: sd.state, scheduler: this.schedulers[name].stateDict() };
      for (const [k, v] of sd.tensors) tensors[`${name}.${k}`] = v;
    }
    let ema: unknown = null;
    if (this.ema) {
      const sd = this.ema.stateDict();
      ema = sd.state;
      for (const [k, v] of sd.tensors) tensors[`ema.${k}`] = v;
    }
    saveCheckpoint(this.checkpointDir, {
      weights: this.model.stateDict(),
      optimizer: { state: { optimizers: optim, ema }, tensors },
      rng: this.rng.getState(),
      step: this.step,
      config: this.cfg as unknown as Record<string, unknown>,
      extra: { sampler: this.sampler.getState() },
    });
  }

  /** Restore everything `save()` wrote. */
  restore(dir = this.checkpointDir): void {
    const ck = loadCheckpoint(dir);
    this.model.loadStateDict(ck.weights);
    const st = ck.optimizer.state as { optimizers: Record<string, { state: unknown; scheduler: { stepCount: number; baseLrs: number[] } }>; ema: unknown };
    for (const [name, o] of Object.entries(this.optimizers)) {
      const saved = st.optimizers[name];
      if (!saved) throw new TrainingError(`${dir}: checkpoint has no state for optimizer '${name}'`);
      const tensors = new Map<string, Tensor>();
      for (const [k, v] of ck.optimizer.tensors) if (k.startsWith(`${name}.`)) tensors.set(k.slice(name.length + 1), v);
      o.loadStateDict({ state: saved.state, tensors } as never);
      this.schedulers[name].loadStateDict(saved.scheduler);
    }
    if (this.ema && st.ema) {
      const tensors = new Map<string, Tensor>();
      for (const [k, v] of ck.optimizer.tensors) if (k.startsWith('ema.')) tensors.set(k.slice(4), v);
      this.ema.loadStateDict({ state: st.ema, tensors } as never);
    } else if (this.ema) {
      // EMA switched on when resuming a run that kept none: average from the loaded
      // weights, not from the fresh initialisation the trainer was built with.
      this.ema.reset();
    }
    this.rng.setState(ck.rng);
    this.sampler.setState((ck.extra as { sampler: { epoch: number; position: number } }).sampler);
    this.step = ck.step;
  }

  private log(record: Record<string, unknown>): void {
    appendFileSync(join(this.outDir, 'metrics.jsonl'), JSON.stringify(record) + '\n');
  }

  private nextBatch(): Batch {
    const idx = this.sampler.next();
    const b: Batch = {};
    for (const [k, v] of Object.entries(this.data.train)) b[k] = takeRows(v, idx);
    return b;
  }

  /**
   * One optimisation step through the model contract; returns its metrics. Inside a
   * tidy scope: the step's activations and gradients are reused by the next step.
   */
  private trainStep(batch: Batch): Record<string, number> {
    return tidy(() => this.trainStepBody(batch));
  }

  private trainStepBody(batch: Batch): Record<string, number> {
    const t = this.cfg.train;
    const ctx = { step: this.step, totalSteps: t.steps as number };
    if (this.model.trainStep) {
      const m = this.model.trainStep(batch, this.rng, { ...ctx, hooks: this.hooks() });
      for (const s of Object.values(this.schedulers)) s.step();
      return m;
    }
    const opt = this.optimizers.main;
    opt.zeroGrad();
    const { loss, metrics } = this.model.loss(batch, this.rng, ctx);
    const lv = loss.item();
    if (!Number.isFinite(lv)) return { loss: lv, ...metrics };
    loss.backward();
    const c = t.clipNorm as number;
    const out: Record<string, number> = { loss: lv, ...metrics };
    if (c > 0) out.gradNorm = clipGradNorm(this.model.parameters(), c);
    opt.step();
    this.schedulers.main.step();
    this.ema?.update();
    return out;
  }

  /** Run fn with the EMA weights in place (when the run keeps an EMA), then restore. */
  withEma<T>(fn: () => T): T {
    this.ema?.apply();
    try {
      return fn();
    } finally {
      this.ema?.restore();
    }
  }

  /** Evaluate on (a quick subset of) the test split, with EMA weights when kept. */
  evaluate(quick: boolean): Record<string, number> {
    if (!this.model.evaluate) return {};
    const n = this.data.test.x.shape[0];
    const m = quick ? Math.min(n, 500) : n;
    const test: Batch = {};
    for (const [k, v] of Object.entries(this.data.test)) test[k] = v.slice(0, 0, m);
    this.model.eval();
    this.ema?.apply();
    try {
      return noGrad(() => this.model.evaluate!(test, new Rng(this.cfg.seed + 99), { quick }));
    } finally {
      this.ema?.restore();
      this.model.train();
    }
  }

  /** Train until train.steps (or opts.stopAt); resolves when done or interrupted. */
  async run(): Promise<TrainResult> {
    const t = this.cfg.train;
    const total = t.steps as number;
    const stopAt = Math.min(total, this.opts.stopAt ?? total);
    mkdirSync(this.outDir, { recursive: true });
    const progress = new Progress(total, this.opts.verbose ?? true);
    const onSigint = (): void => {
      this.interrupted = true;
    };
    process.on('SIGINT', onSigint);
    const losses: number[] = [];
    let last: Record<string, number> = {};
    const every = (k: number): boolean => k > 0 && this.step % k === 0;
    try {
      this.model.train();
      while (this.step < stopAt && !this.interrupted) {
        const metrics = this.trainStep(this.nextBatch());
        const lv = metrics.loss ?? Object.values(metrics)[0];
        if (!Number.isFinite(lv)) {
          throw new TrainingError(
            `loss became ${lv} at step ${this.step} (${JSON.stringify(metrics)}); stopped. ` +
              `The last good checkpoint is in ${this.checkpointDir}${existsSync(this.checkpointDir) ? '' : ' (none written yet)'}; ` +
              'try a lower --train.lr or --train.clipNorm=1',
          );
        }
        losses.push(lv);
        this.step++;
        last = metrics;
        const lr = Object.values(this.optimizers)[0]?.paramGroups[0].lr;
        progress.update(this.step, lv);
        if (every(t.logEvery as number) || this.step === stopAt) this.log({ step: this.step, split: 'train', lr, ...metrics, time: Date.now() });
        if (every(t.evalEvery as number)) {
          const ev = this.evaluate(true);
          this.log({ step: this.step, split: 'test', ...ev, time: Date.now() });
          progress.note(`step ${this.step} eval ${fmtMetrics(ev)}`);
        }
        if (every(t.sampleEvery as number) && this.opts.onSample) {
          const onSample = this.opts.onSample;
          this.withEma(() => onSample(this.step, this.model, new Rng(this.cfg.seed + 7)));
        }
        if (every(t.ckptEvery as number)) this.save();
        // Let Ctrl-C and other events in between steps.
        if (this.step % 4 === 0) await new Promise((r) => setImmediate(r));
      }
      this.save();
      progress.done(this.interrupted ? `interrupted at step ${this.step}; checkpoint written` : `done: ${this.step} steps`);
    } finally {
      process.off('SIGINT', onSigint);
      progress.close();
    }
    return { step: this.step, losses, interrupted: this.interrupted, lastMetrics: last };
  }
}

export function fmtMetrics(m: Record<string, number>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toPrecision(4)}`)
    .join(', ');
}

/** Read metrics.jsonl of a run folder (missing file: empty). */
export function readMetrics(outDir: string): Record<string, unknown>[] {
  const p = join(outDir, 'metrics.jsonl');
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l, i) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`${p}:${i + 1}: not valid JSON`);
      }
    });
}
