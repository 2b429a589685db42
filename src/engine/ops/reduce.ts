/**
 * Reductions over axes (with keepDim, as PyTorch's `dim`/`keepdim`), cumulative sums,
 * softmax and log-softmax. Gradients are written with differentiable ops.
 */
import { backend } from '../backends/index.js';
import type { ReduceOp } from '../backends/backend.js';
import { Tensor, allocF32, emptyF32, fromOp, isGradEnabled } from '../tensor.js';
import { fmtShape, normAxes, normAxis, shapesEqual, sizeOf } from '../shape.js';
import type { Shape } from '../shape.js';
import { abs, add, div, eq, exp, log, mul, sub, where, scalar } from './elementwise.js';
import { expand, reshape } from './shape_ops.js';

/** The shape after reducing `axes` (sorted), with or without kept unit dimensions. */
function reducedShape(shape: Shape, axes: number[], keepDim: boolean): number[] {
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < shape.length; i++) {
    if (k < axes.length && axes[k] === i) {
      k++;
      if (keepDim) out.push(1);
    } else {
      out.push(shape[i]);
    }
  }
  return out;
}

/**
 * Raw reduction of a float array of shape `shape` over `axes` (sorted; keepDim
 * layout). Each run of adjacent axes is one kernel call over their merged length.
 */
function reduceRaw(op: ReduceOp, v: Float32Array, shape: Shape, axes: number[]): Float32Array {
  if (axes.length === 0) return Float32Array.from(v);
  const bk = backend();
  let cur = v;
  const sh = shape.slice();
  // Reduce from the last run back so outer/inner sizes stay simple.
  for (let k = axes.length - 1; k >= 0;) {
    const hi = axes[k];
    let lo = hi;
    while (k > 0 && axes[k - 1] === lo - 1) lo = axes[--k];
    k--;
    let outer = 1, len = 1, inner = 1;
    for (let d = 0; d < lo; d++) outer *= sh[d];
    for (let d = lo; d <= hi; d++) {
      len *= sh[d];
      sh[d] = 1;
    }
    for (let d = hi + 1; d < sh.length; d++) inner *= sh[d];
    const out = emptyF32(outer * inner);
    bk.reduce(op, cur, outer, len, inner, out);
    cur = out;
  }
  return cur;
}

/**
 * Sum over `axes` (all when omitted).
 * @example
 * x.sum(-1, true) // (B, T, C) -> (B, T, 1)
 */
const allAxesByRank: number[][] = [];
/** normAxes with the two common cases (all axes; one axis) made without sets and sorts. */
function axesOf(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) {
    let all = allAxesByRank[rank];
    if (!all) {
      all = [];
      for (let i = 0; i < rank; i++) all.push(i);
      allAxesByRank[rank] = all;
    }
    return all.slice();
  }
  if (typeof axes === 'number' && rank > 0) return [normAxis(op, axes, rank)];
  return normAxes(op, axes, rank);
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  const ax = axesOf('sum', axes, x.rank);
  const data = reduceRaw('sum', x.f32('sum'), x.shape, ax);
  const shape = reducedShape(x.shape, ax, keepDim);
  if (!x.requiresGrad || !isGradEnabled()) return fromOp('sum', data, shape, [x], null);
  const keepShape = keepDim ? shape : reducedShape(x.shape, ax, true);
  return fromOp('sum', data, shape, [x], (g) => [expand(reshape(g, keepShape), x.shape)]);
}

/** Sum a gradient down to `shape` (the adjoint of broadcasting `shape` up to g's shape). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  if (lead < 0) throw new Error(`sumTo: cannot reduce ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return reshape(sum(g, axes, true), shape);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  const ax = normAxes('mean', axes, x.rank);
  let n = 1;
  for (const a of ax) n *= x.shape[a];
  return mul(sum(x, ax, keepDim), 1 / n);
}

/** Variance with Bessel's `correction` (1 = unbiased, PyTorch's default; 0 = population). */
export function variance(x: Tensor, axes?: number | readonly number[], keepDim = false, correction = 1): Tensor {
  const ax = normAxes('var', axes, x.rank);
  let n = 1;
  for (const a of ax) n *= x.shape[a];
  const d = sub(x, mean(x, ax, true));
  return mul(sum(mul(d, d), ax, keepDim), 1 / Math.max(n - correction, 0));
}

function extremum(op: 'max' | 'min', x: Tensor, axes: number | readonly number[] | undefined, keepDim: boolean): Tensor {
  const ax = normAxes(op, axes, x.rank);
  for (const a of ax) {
    if (x.shape[a] === 0) throw new RangeError(`${op}: cannot reduce over the empty axis ${a} of shape ${fmtShape(x.shape)}`);
  }
  const data = reduceRaw(op, x.f32(op), x.shape, ax);
  const keepShape = reducedShape(x.shape, ax, true);
  const y: Tensor = fromOp(op, data, reducedShape(x.shape, ax, keepDim), [x], (g) => {
    // Ties share the gradient equally (as torch.amax).
    const yk = reshape(y.detach(), keepShape);
    const mask = eq(x.detach(), yk);
    const count = sum(mask, ax, true);
    return [mul(expand(reshape(g, keepShape), x.shape), div(mask, count))];
  });
  return y;
}

export function max(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  return extremum('max', x, axes, keepDim);
}
export function min(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  return extremum('min', x, axes, keepDim);
}

function argExtremum(op: 'max' | 'min', x: Tensor, axis: number | undefined, keepDim: boolean): Tensor {
  const name = op === 'max' ? 'argmax' : 'argmin';
  const v = x.f32(name);
  if (axis === undefined) {
    if (v.length === 0) throw new RangeError(`${name}: empty tensor`);
    const out = new Int32Array(1);
    backend().argReduce(op, v, 1, v.length, 1, out);
    return new Tensor(out, keepDim ? x.shape.map(() => 1) : []);
  }
  const a = normAxis(name, axis, x.rank);
  if (x.shape[a] === 0) throw new RangeError(`${name}: empty axis ${a} of shape ${fmtShape(x.shape)}`);
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  const out = new Int32Array(outer * inner);
  backend().argReduce(op, v, outer, x.shape[a], inner, out);
  return new Tensor(out, reducedShape(x.shape, [a], keepDim));
}

/** Index of the largest value (int32); over the flattened tensor when `axis` is omitted. */
export function argmax(x: Tensor, axis?: number, keepDim = false): Tensor {
  return argExtremum('max', x, axis, keepDim);
}
export function argmin(x: Tensor, axis?: number, keepDim = false): Tensor {
  return argExtremum('min', x, axis, keepDim);
}

/** log(sum(exp(x))) computed stably; -Inf where every entry is -Inf, Inf where one is Inf. */
export function logSumExp(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  const ax = normAxes('logSumExp', axes, x.rank);
  // Over an empty axis the sum is 0 and the result -Inf (as torch); max has no value there.
  const empty = ax.some((a) => x.shape[a] === 0);
  const keep = reducedShape(x.shape, ax, true);
  const m = empty ? new Tensor(new Float32Array(sizeOf(keep)).fill(-Infinity), keep) : max(x.detach(), ax, true);
  // Shift by 0 where the max is infinite: Inf - Inf would give NaN (torch.logsumexp: Inf).
  const mSafe = where(eq(abs(m), Infinity), scalar(0), m);
  const s = add(log(sum(exp(sub(x, mSafe)), ax, true)), mSafe);
  return keepDim ? s : reshape(s, reducedShape(x.shape, ax, false));
}

function cumsumDir(x: Tensor, axis: number, reverse: boolean): Tensor {
  const a = normAxis('cumsum', axis, x.rank);
  const v = x.f32('cumsum');
  const out = allocF32(v.length);
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  backend().cumsum(v, outer, x.rank ? x.shape[a] : 1, inner, reverse, out);
  return fromOp('cumsum', out, x.shape, [x], (g) => [cumsumDir(g, a, !reverse)]);
}

/** Cumulative sum along `axis`. */
export function cumsum(x: Tensor, axis: number): Tensor {
  return cumsumDir(x, axis, false);
}

function softmaxRaw(x: Tensor, axis: number, logOut: boolean): Float32Array {
  const name = logOut ? 'logSoftmax' : 'softmax';
  const a = normAxis(name, axis, x.rank);
  const v = x.f32(name);
  const out = allocF32(v.length);
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  backend().softmax(v, outer, x.rank ? x.shape[a] : 1, inner, logOut, out);
  return out;
}

/** Softmax along `axis` (the last by default). */
export function softmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis('softmax', axis, x.rank);
  const y: Tensor = fromOp('softmax', softmaxRaw(x, a, false), x.shape, [x], (g) => {
    // dx = y * (g - sum(g * y))
    return [mul(y, sub(g, sum(mul(g, y), a, true)))];
  });
  return y;
}

/** Log-softmax along `axis`, computed stably in one pass. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis('logSoftmax', axis, x.rank);
  const y: Tensor = fromOp('logSoftmax', softmaxRaw(x, a, true), x.shape, [x], (g) => {
    // dx = g - softmax * sum(g)
    return [sub(g, mul(exp(y), sum(g, a, true)))];
  });
  return y;
}
