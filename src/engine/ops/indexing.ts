/**
 * Indexing with int32 index tensors: gather / scatterAdd (torch.gather and
 * Tensor.scatter_add), indexSelect / indexAdd (embedding lookup and its adjoint),
 * oneHot, and dtype casts. Every index is bounds-checked with an error naming the op.
 */
import { backend } from '../backends/index.js';
import { Tensor, allocF32, fromOp } from '../tensor.js';
import { DTypeError, ShapeError, fmtShape, normAxis, sizeOf } from '../shape.js';
import { slice, reshape } from './shape_ops.js';

function checkIndex(op: string, idx: Int32Array, n: number, axis: number): void {
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i];
    if (v < 0 || v >= n) throw new RangeError(`${op}: index ${v} is out of range for axis ${axis} of size ${n}`);
  }
}

function needInt(op: string, index: Tensor): void {
  if (index.dtype !== 'int32') throw new DTypeError(`${op}: index must be an int32 tensor, got ${index.dtype} of shape ${fmtShape(index.shape)}`);
}

/** Cut `x` down to index's size on every axis but `axis` (torch.gather allows smaller). */
function fitTo(op: string, x: Tensor, index: Tensor, axis: number): Tensor {
  if (index.rank !== x.rank) throw new ShapeError(`${op}: index rank ${index.rank} != input rank ${x.rank} (shapes ${fmtShape(index.shape)}, ${fmtShape(x.shape)})`);
  let r = x;
  for (let d = 0; d < x.rank; d++) {
    if (d === axis) continue;
    if (index.shape[d] > x.shape[d]) throw new ShapeError(`${op}: index shape ${fmtShape(index.shape)} exceeds input shape ${fmtShape(x.shape)} at axis ${d}`);
    if (index.shape[d] < x.shape[d]) r = slice(r, d, 0, index.shape[d]);
  }
  return r;
}

/** out[i][j][k] = x[i][index[i][j][k]][k] for axis 1 (torch.gather). */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  needInt('gather', index);
  const a = normAxis('gather', axis, x.rank);
  const xs = fitTo('gather', x, index, a);
  const idx = index.i32('gather');
  checkIndex('gather', idx, x.shape[a], a);
  const outer = sizeOf(index.shape.slice(0, a));
  const inner = sizeOf(index.shape.slice(a + 1));
  const out = allocF32(idx.length);
  backend().gather(xs.f32('gather'), outer, x.shape[a], inner, idx, index.shape[a] ?? 1, out);
  return fromOp('gather', out, index.shape, [xs], (g) => [scatterAdd(zerosOf(xs.shape), a, index, g)]);
}

function zerosOf(shape: readonly number[]): Tensor {
  return new Tensor(allocF32(sizeOf(shape)), shape);
}

/** x with src added at the positions index names along axis (out-of-place scatter_add). */
export function scatterAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  needInt('scatterAdd', index);
  const a = normAxis('scatterAdd', axis, x.rank);
  if (src.rank !== index.rank || src.shape.some((d, i) => d !== index.shape[i])) {
    throw new ShapeError(`scatterAdd: src shape ${fmtShape(src.shape)} must equal index shape ${fmtShape(index.shape)}`);
  }
  for (let d = 0; d < x.rank; d++) {
    if (d !== a && index.shape[d] !== x.shape[d]) {
      throw new ShapeError(`scatterAdd: index shape ${fmtShape(index.shape)} must match input shape ${fmtShape(x.shape)} outside axis ${a}`);
    }
  }
  const idx = index.i32('scatterAdd');
  checkIndex('scatterAdd', idx, x.shape[a], a);
  const out = Float32Array.from(x.f32('scatterAdd'));
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  backend().scatterAdd(out, outer, x.shape[a], inner, idx, index.shape[a] ?? 1, src.f32('scatterAdd'));
  return fromOp('scatterAdd', out, x.shape, [x, src], (g) => [g, src.requiresGrad ? gather(g, a, index) : null]);
}

/** Rows (slices along axis) of x picked by a 1-D int32 index; embedding lookup. */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  needInt('indexSelect', index);
  if (index.rank !== 1) throw new ShapeError(`indexSelect: index must be 1-D, got shape ${fmtShape(index.shape)}`);
  const a = normAxis('indexSelect', axis, x.rank);
  const idx = index.i32('indexSelect');
  checkIndex('indexSelect', idx, x.shape[a], a);
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  const shape = [...x.shape];
  shape[a] = idx.length;
  const out = allocF32(sizeOf(shape));
  backend().indexSelect(x.f32('indexSelect'), outer, x.shape[a], inner, idx, out);
  return fromOp('indexSelect', out, shape, [x], (g) => [indexAdd(zerosOf(x.shape), a, index, g)]);
}

/** x with src's slices added at the positions a 1-D index names along axis. */
export function indexAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  needInt('indexAdd', index);
  const a = normAxis('indexAdd', axis, x.rank);
  const idx = index.i32('indexAdd');
  checkIndex('indexAdd', idx, x.shape[a], a);
  const want = [...x.shape];
  want[a] = idx.length;
  if (src.rank !== want.length || src.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(`indexAdd: src shape ${fmtShape(src.shape)} should be ${fmtShape(want)}`);
  }
  const out = Float32Array.from(x.f32('indexAdd'));
  backend().indexAdd(out, sizeOf(x.shape.slice(0, a)), x.shape[a], sizeOf(x.shape.slice(a + 1)), idx, src.f32('indexAdd'));
  return fromOp('indexAdd', out, x.shape, [x, src], (g) => [g, src.requiresGrad ? indexSelect(g, a, index) : null]);
}

/** Embedding lookup: weight [V, D], ids of any shape (int32) -> [...ids.shape, D]. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.rank !== 2) throw new ShapeError(`embedding: weight must be [vocab, dim], got ${fmtShape(weight.shape)}`);
  const flat = ids.rank === 1 ? ids : reshape(ids, [ids.size]);
  return reshape(indexSelect(weight, 0, flat), [...ids.shape, weight.shape[1]]);
}

/** One-hot float encoding: int32 ids of shape S -> [...S, numClasses]. */
export function oneHot(ids: Tensor, numClasses: number): Tensor {
  needInt('oneHot', ids);
  const v = ids.i32('oneHot');
  checkIndex('oneHot', v, numClasses, -1);
  const out = allocF32(v.length * numClasses);
  for (let i = 0; i < v.length; i++) out[i * numClasses + v[i]] = 1;
  return new Tensor(out, [...ids.shape, numClasses]);
}

/** Cast to float32 (identity for float tensors). */
export function toFloat(x: Tensor): Tensor {
  return x.dtype === 'float32' ? x : new Tensor(Float32Array.from(x.values()), x.shape);
}

/** Cast to int32, truncating toward zero (as torch's .long()). Not differentiable. */
export function toInt(x: Tensor): Tensor {
  if (x.dtype === 'int32') return x;
  const v = x.values();
  const out = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new RangeError(`toInt: non-finite value ${v[i]} at flat index ${i}`);
    out[i] = Math.trunc(v[i]);
  }
  return new Tensor(out, x.shape);
}
