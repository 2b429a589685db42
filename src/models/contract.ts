/**
 * The model contract (ARCHITECTURE.md, "One model contract"). The trainer, CLI,
 * evaluators and benchmarks see a model only through this interface: build it from a
 * config and an Rng, ask it for a loss on a batch, for samples, and for its
 * parameters and state. Adversarial models override `trainStep`.
 */
import type { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import type { Module } from '../nn/module.js';

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
  /** Per-example shape of `x` (e.g. [1, 28, 28] or [2]). */
  shape: number[];
  numClasses?: number;
}

export type DataKind = 'image' | 'points' | 'text';

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
  /** n samples (cond: class labels [n] int32 for conditional models). */
  sample(n: number, rng: Rng, cond?: Tensor): Samples;
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
