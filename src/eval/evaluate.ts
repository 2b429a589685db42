/**
 * One entry point for `genlab eval`: a model's own held-out metrics (likelihoods,
 * ELBO, validation loss: `model.evaluate`) merged with the sample-quality metrics
 * that a family registers here (FID-proxy, KID, precision/recall, MMD, BLEU, ...).
 */
import { Rng } from '../engine/rng.js';
import { noGrad } from '../engine/tensor.js';
import type { Batch, DataSource, GenerativeModel } from '../models/contract.js';

export interface EvalOptions {
  /** A subset and fewer samples, for periodic evaluation and tests. */
  quick?: boolean;
  seed?: number;
}

/** Computes extra metrics of a model type from its samples and the data. */
export type Evaluator = (model: GenerativeModel, data: DataSource, opts: Required<EvalOptions>) => Record<string, number>;

const evaluators = new Map<string, Evaluator[]>();

/** Add an evaluator for a model type (several may be registered; results merge). */
export function registerEvaluator(type: string, fn: Evaluator): void {
  evaluators.set(type, [...(evaluators.get(type) ?? []), fn]);
}

/** The test split, cut to 500 examples when quick. */
export function testSubset(data: DataSource, quick: boolean): Batch {
  const n = data.test.x.shape[0];
  const m = quick ? Math.min(n, 500) : n;
  const out: Batch = {};
  for (const [k, v] of Object.entries(data.test)) out[k] = v.slice(0, 0, m);
  return out;
}

/**
 * All metrics of a trained model on held-out data.
 * @example
 * const metrics = evaluateRun(model, loadDataSource('mnist', ['image']), { quick: true });
 */
export function evaluateRun(model: GenerativeModel, data: DataSource, opts: EvalOptions = {}): Record<string, number> {
  const o = { quick: opts.quick ?? false, seed: opts.seed ?? 0 };
  const wasTraining = model.training;
  model.eval();
  try {
    const out: Record<string, number> = model.evaluate
      ? noGrad(() => model.evaluate!(testSubset(data, o.quick), new Rng(o.seed), { quick: o.quick }))
      : {};
    // Evaluators manage grad mode themselves (one may train a feature classifier).
    for (const fn of evaluators.get(model.type) ?? []) Object.assign(out, fn(model, data, o));
    return out;
  } finally {
    if (wasTraining) model.train();
  }
}
