/**
 * The model contract (ARCHITECTURE.md, "One model contract"). The trainer, CLI,
 * evaluators and benchmarks see a model only through this interface: build it from a
 * config and an Rng, ask it for a loss on a batch, for samples, and for its
 * parameters and state. Adversarial models override `trainStep`.
 */
import type { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import type { Module } from '../nn/module.js';
import type { TokenizerJSON } from '../data/tokenizer.js';

/** A batch: named tensors, e.g. {x: images [B, 1, 28, 28], y: labels [B]}. */
export type Batch = Record<string, Tensor>;

/** What a loss returns: a scalar to minimise and numbers to log. */
export interface LossOutput {
  loss: Tensor;
  metrics?: Record<string, number>;
}

/** Per-step context from the trainer (step counts from 0). */
export interface StepContext {
  step: number;
  totalSteps: number;
}

/** Samples, tagged by kind so the CLI knows how to draw or print them. */
export type Samples =
  | { kind: 'image'; images: Tensor; labels?: Tensor }
  | { kind: 'points'; points: Tensor }
  | { kind: 'text'; texts: string[] };

/** What a data source provides to a model at construction (shapes, classes, vocab). */
export interface DataInfo {
  name: string;
  kind: DataKind;
  /** Per-example shape of `x` (e.g. [1, 28, 28], [2], or [blockSize + 1] token ids). */
  shape: number[];
  numClasses?: number;
  /** Token data: the tokenizer of `x` (and of `y` for sequence-to-sequence pairs). */
  tokenizer?: TokenizerJSON;
  targetTokenizer?: TokenizerJSON;
  /** Anything else a data source tells its models (task parameters, ...). JSON only. */
  extra?: Record<string, unknown>;
}

/**
 * image: x [N, C, H, W] floats in [0, 1] (y labels); points: x [N, D];
 * text: x int32 token ids (y int32 targets for pairs); sequence: generated tasks,
 * float bit sequences (NTM copy, ...) or token pairs (cmudict, mobydick-keywords).
 */
export type DataKind = 'image' | 'points' | 'text' | 'sequence';

/** Train and test splits of a data set, with what models need to know about it. */
export interface DataSource {
  info: DataInfo;
  train: Batch;
  test: Batch;
}

/** Options for `sample` from the command line (`--sample.KEY=VALUE`), e.g. temperature, topK, prompt. */
export type SampleOptions = Record<string, string | number | boolean>;

/** Optimizer-facing hooks a custom trainStep receives from the trainer. */
export interface TrainHooks {
  /** Make an optimizer over `params` with the run's optimizer settings (lr scaled by `lrScale`). */
  makeOptimizer(params: Tensor[], lrScale?: number): OptimizerLike;
  clip(params: Tensor[]): void;
}

export interface OptimizerLike {
  step(): void;
  zeroGrad(): void;
  paramGroups: { lr: number }[];
  stateDict(): unknown;
  loadStateDict(s: never): void;
}

export interface GenerativeModel extends Module {
  readonly type: string;
  readonly config: object;
  /** Loss on one batch (graph recorded; the trainer calls backward). */
  loss(batch: Batch, rng: Rng, ctx?: StepContext): LossOutput;
  /** n samples (cond: class labels [n] int32 for conditional models; opts: decoding settings). */
  sample(n: number, rng: Rng, cond?: Tensor, opts?: SampleOptions): Samples;
  /**
   * Adversarial or multi-optimizer models own their update: do one full training
   * step (forward, backward, optimizer steps) and return the metrics to log.
   */
  trainStep?(batch: Batch, rng: Rng, ctx: StepContext & { hooks: TrainHooks }): Record<string, number>;
  /**
   * Models with their own trainStep create their optimizers here, through the hooks,
   * once, when the trainer starts (so the trainer can checkpoint and restore them).
   */
  configureOptimizers?(hooks: TrainHooks): void;
  /** Held-out metrics (ELBO, NLL, ...) on a test batch set. */
  evaluate?(test: Batch, rng: Rng, opts?: { quick?: boolean }): Record<string, number>;
}
