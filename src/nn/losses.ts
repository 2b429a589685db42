/**
 * Loss functions with PyTorch's semantics (torch.nn.functional; the docs of each
 * torch.nn.*Loss give the formulas): mseLoss, l1Loss, bceLoss, bceWithLogits,
 * crossEntropy, nllLoss, gaussianNLL, and gaussianKL (the VAE regulariser, Kingma &
 * Welling 2014, appendix B). Every loss takes `reduction` 'mean' (default), 'sum'
 * or 'none' and is built from differentiable ops, so gradients come from autograd.
 */
import { Tensor } from '../engine/tensor.js';
import { DTypeError, ShapeError, fmtShape, shapesEqual } from '../engine/shape.js';
import { where, gt, maximum, log, softplus } from '../engine/ops/elementwise.js';
import { tensor } from '../engine/creation.js';

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(loss: Tensor, reduction: Reduction | undefined): Tensor {
  switch (reduction ?? 'mean') {
    case 'mean': return loss.mean();
    case 'sum': return loss.sum();
    case 'none': return loss;
    default: throw new RangeError(`loss: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
  }
}

function sameShape(op: string, input: Tensor, target: Tensor): void {
  if (!shapesEqual(input.shape, target.shape)) {
    throw new ShapeError(`${op}: input ${fmtShape(input.shape)} and target ${fmtShape(target.shape)} must have the same shape`);
  }
}

/**
 * Mean squared error (input - target)^2.
 * @example
 * const loss = mseLoss(pred, y); // scalar
 */
export function mseLoss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  sameShape('mseLoss', input, target);
  return reduce(input.sub(target).square(), opts.reduction);
}

/** Mean absolute error |input - target|. */
export function l1Loss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  sameShape('l1Loss', input, target);
  return reduce(input.sub(target).abs(), opts.reduction);
}

/** log(p) clamped below at -100 as torch's binary_cross_entropy, with a finite gradient at p = 0. */
function clampedLog(p: Tensor): Tensor {
  const pos = gt(p, 0);
  const safe = where(pos, p, 1);
  return where(pos, maximum(log(safe), -100), -100);
}

export interface BCEOptions {
  /** Rescaling weight broadcast against the elementwise loss. */
  weight?: Tensor | null;
  reduction?: Reduction;
}

/**
 * Binary cross-entropy of probabilities: -(t log p + (1 - t) log(1 - p)), with each log
 * clamped at -100 as torch (so p = 0 or 1 gives a finite loss).
 */
export function bceLoss(input: Tensor, target: Tensor, opts: BCEOptions = {}): Tensor {
  sameShape('bceLoss', input, target);
  let loss = target.mul(clampedLog(input)).add(target.neg().add(1).mul(clampedLog(input.neg().add(1)))).neg();
  if (opts.weight) loss = loss.mul(opts.weight);
  return reduce(loss, opts.reduction);
}

export interface BCEWithLogitsOptions extends BCEOptions {
  /** Weight of positive examples, broadcast over the class axis (torch's pos_weight). */
  posWeight?: Tensor | null;
}

/**
 * Binary cross-entropy on logits, computed stably:
 *   (1 - t) x + (1 + (pw - 1) t) softplus(-x)
 * which equals -[pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))].
 */
export function bceWithLogits(input: Tensor, target: Tensor, opts: BCEWithLogitsOptions = {}): Tensor {
  sameShape('bceWithLogits', input, target);
  const sp = softplus(input.neg()); // -log sigmoid(x)
  const oneMinusT = target.neg().add(1);
  let loss: Tensor;
  if (opts.posWeight) {
    const coef = opts.posWeight.sub(1).mul(target).add(1);
    loss = oneMinusT.mul(input).add(coef.mul(sp));
  } else {
    loss = oneMinusT.mul(input).add(sp);
  }
  if (opts.weight) loss = loss.mul(opts.weight);
  return reduce(loss, opts.reduction);
}

export interface NLLOptions {
  /** Per-class weight [C]. */
  weight?: Tensor | null;
  /** Target value to skip (default -100); it adds nothing to the loss or the mean's denominator. */
  ignoreIndex?: number;
  reduction?: Reduction;
}

export interface CrossEntropyOptions extends NLLOptions {
  /** Mix the target with the uniform distribution: (1 - eps) * target + eps / C (default 0). */
  labelSmoothing?: number;
}

/** Bring [N, C, d1, ...] to [M, C] (class axis last); [C] to [1, C]. */
function classLast(op: string, x: Tensor): { x2: Tensor; lead: number[] } {
  if (x.rank === 1) return { x2: x.unsqueeze(0), lead: [] };
  if (x.rank === 2) return { x2: x, lead: [x.shape[0]] };
  if (x.rank < 1) throw new ShapeError(`${op}: input must be [C], [N, C] or [N, C, d1, ...], got ${fmtShape(x.shape)}`);
  const perm = [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2), 1];
  const moved = x.permute(perm); // (N, d1, ..., C)
  const lead = moved.shape.slice(0, -1);
  return { x2: moved.reshape([-1, x.shape[1]]), lead };
}

/**
 * Negative log-likelihood from log-probabilities (the core of crossEntropy with class
 * indices). Returns per-position terms and the mean's denominator.
 */
function nllParts(op: string, logp: Tensor, target: Tensor, lead: number[], opts: NLLOptions, smoothing: number): { loss: Tensor; denom: number } {
  const C = logp.shape[1];
  const M = logp.shape[0];
  const want = lead;
  if (target.rank !== want.length || target.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(`${op}: target ${fmtShape(target.shape)} should be ${fmtShape(want)} for input with ${C} classes`);
  }
  const ignore = opts.ignoreIndex ?? -100;
  const tv = target.i32(op);
  const w = opts.weight ? opts.weight.f32(op) : null;
  if (opts.weight && (opts.weight.rank !== 1 || opts.weight.shape[0] !== C)) {
    throw new ShapeError(`${op}: weight ${fmtShape(opts.weight.shape)} should be [${C}]`);
  }
  // Per-position constants: the safe class index and its weight (0 where ignored).
  const safe = new Int32Array(M);
  const wt = new Float32Array(M);
  let denom = 0;
  for (let i = 0; i < M; i++) {
    const y = tv[i];
    if (y === ignore) continue;
    if (y < 0 || y >= C) throw new RangeError(`${op}: target ${y} at position ${i} is out of range for ${C} classes`);
    safe[i] = y;
    wt[i] = w ? w[y] : 1;
    denom += wt[i];
  }
  const picked = logp.gather(1, tensor(safe, [M, 1])).reshape([M]); // log p[i, y_i]
  let loss = picked.mul(tensor(wt, [M])).neg();
  if (smoothing > 0) {
    // Uniform part: -sum_c w_c log p[i, c], zero where ignored.
    const valid = new Float32Array(M);
    for (let i = 0; i < M; i++) valid[i] = tv[i] === ignore ? 0 : 1;
    const smooth = (opts.weight ? logp.mul(opts.weight) : logp).sum(1).neg().mul(tensor(valid, [M]));
    loss = loss.mul(1 - smoothing).add(smooth.mul(smoothing / C));
  }
  return { loss, denom };
}

/**
 * Negative log-likelihood loss on log-probabilities [N, C] (or [N, C, d1, ...], or [C])
 * with int32 class indices [N] (or [N, d1, ...], or []). The mean divides by the
 * summed weights of the non-ignored targets, as torch.
 */
export function nllLoss(input: Tensor, target: Tensor, opts: NLLOptions = {}): Tensor {
  const { x2, lead } = classLast('nllLoss', input);
  if (target.dtype !== 'int32') throw new DTypeError(`nllLoss: target must be int32 class indices, got ${target.dtype} ${fmtShape(target.shape)}`);
  const { loss, denom } = nllParts('nllLoss', x2, target, lead, opts, 0);
  return finishIndexLoss(loss, denom, lead, opts.reduction);
}

function finishIndexLoss(loss: Tensor, denom: number, lead: number[], reduction: Reduction | undefined): Tensor {
  switch (reduction ?? 'mean') {
    case 'mean': return loss.sum().div(denom); // 0/0 = NaN when everything is ignored, as torch
    case 'sum': return loss.sum();
    case 'none': return loss.reshape(lead);
    default: throw new RangeError(`loss: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
  }
}

/**
 * Cross-entropy of logits (torch.nn.functional.cross_entropy). input [N, C] (or
 * [N, C, d1, ...], or [C]); target either int32 class indices [N] (or [N, d1, ...])
 * or float32 class probabilities shaped like input.
 * @example
 * const loss = crossEntropy(logits, labels, { ignoreIndex: 0, labelSmoothing: 0.1 });
 */
export function crossEntropy(input: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1], got ${eps}`);
  const { x2, lead } = classLast('crossEntropy', input);
  const C = x2.shape[1];
  const logp = x2.logSoftmax(-1); // (M, C)
  if (target.dtype === 'int32') {
    const { loss, denom } = nllParts('crossEntropy', logp, target, lead, opts, eps);
    return finishIndexLoss(loss, denom, lead, opts.reduction);
  }
  // Class probabilities: -sum_c w_c t_c log p_c; the mean divides by the number of positions.
  sameShape('crossEntropy', input, target);
  let t = classLast('crossEntropy', target).x2;
  if (eps > 0) t = t.mul(1 - eps).add(eps / C);
  if (opts.weight) t = t.mul(opts.weight);
  const loss = t.mul(logp).sum(1).neg(); // (M)
  return reduce(opts.reduction === 'none' ? loss.reshape(lead) : loss, opts.reduction);
}

/**
 * KL(N(mu, exp(logvar)) || N(0, 1)) = -1/2 sum(1 + logvar - mu^2 - exp(logvar)), summed
 * over the latent axes (all but the first); reduction over the batch (default mean).
 * A 1-D input is one sample.
 * @example
 * const kl = gaussianKL(mu, logvar); // mean over the batch of per-sample KL
 */
export function gaussianKL(mu: Tensor, logvar: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  sameShape('gaussianKL', mu, logvar);
  const terms = logvar.add(1).sub(mu.square()).sub(logvar.exp()).mul(-0.5);
  if (mu.rank <= 1) return terms.sum();
  const perSample = terms.sum(Array.from({ length: mu.rank - 1 }, (_, i) => i + 1)); // (B)
  return reduce(perSample, opts.reduction);
}

export interface GaussianNLLOptions {
  /** Add the constant 1/2 log(2 pi) (default false, as torch). */
  full?: boolean;
  /** Lower clamp of the variance (default 1e-6); the clamp passes the gradient through, as torch. */
  eps?: number;
  reduction?: Reduction;
}

/**
 * Gaussian negative log-likelihood (torch.nn.GaussianNLLLoss):
 * 1/2 (log(max(var, eps)) + (input - target)^2 / max(var, eps)) [+ 1/2 log(2 pi)].
 * var has input's shape, or one fewer axis, or a last axis of 1 (homoscedastic).
 */
export function gaussianNLL(input: Tensor, target: Tensor, variance: Tensor, opts: GaussianNLLOptions = {}): Tensor {
  sameShape('gaussianNLL', input, target);
  let v = variance;
  if (v.rank === input.rank - 1 && shapesEqual(v.shape, input.shape.slice(0, -1))) v = v.unsqueeze(-1);
  const ok = v.rank === input.rank && v.shape.every((d, i) => d === input.shape[i] || (i === input.rank - 1 && d === 1));
  if (!ok) throw new ShapeError(`gaussianNLL: var ${fmtShape(variance.shape)} does not fit input ${fmtShape(input.shape)}`);
  if (v.values().some((x) => x < 0)) throw new RangeError('gaussianNLL: var has negative entries');
  const eps = opts.eps ?? 1e-6;
  // torch clamps a copy under no_grad, so the gradient passes through the clamp.
  const clamped = v.add(maximum(v.detach(), eps).sub(v.detach()));
  let loss = clamped.log().add(input.sub(target).square().div(clamped)).mul(0.5);
  if (opts.full) loss = loss.add(0.5 * Math.log(2 * Math.PI));
  return reduce(loss, opts.reduction);
}
