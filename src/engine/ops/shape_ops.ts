/**
 * Shape ops. reshape (where strides allow), permute/transpose, expand, slice, flip
 * and squeeze are views: they share storage and only change shape, strides and
 * offset. concat, pad and copies of non-contiguous tensors allocate.
 */
import { backend } from '../backends/index.js';
import type { TypedArray } from '../backends/backend.js';
import { Tensor, allocF32, emptyF32, fromOp, addGradRegion } from '../tensor.js';
import { ShapeError, fmtShape, normAxis, sizeOf, stridesOf } from '../shape.js';
import type { Shape } from '../shape.js';
import { sumTo } from './reduce.js';

function view(x: Tensor, op: string, shape: Shape, strides: readonly number[], offset: number, backward: (g: Tensor) => Tensor | null): Tensor {
  return fromOp(op, x.data, shape, [x], (g) => [backward(g)], { strides, offset, dtype: x.dtype });
}

/** Storage for a result its op writes in full (clone, concat). */
function newArray(x: Tensor, n: number): TypedArray {
  return x.dtype === 'int32' ? new Int32Array(n) : emptyF32(n);
}

/** A contiguous copy with its own storage. */
export function clone(x: Tensor): Tensor {
  const out = newArray(x, x.size);
  backend().copy(x.data, x.offset, x.strides, out, x.shape);
  return fromOp('clone', out, x.shape, [x], (g) => [g], { dtype: x.dtype });
}

/** Resolve a shape that may hold one -1. */
function inferShape(op: string, x: Tensor, shape: readonly number[]): number[] {
  const out = [...shape];
  const neg = out.indexOf(-1);
  if (out.filter((d) => d === -1).length > 1) throw new ShapeError(`${op}: only one dimension can be -1, got ${fmtShape(shape)}`);
  if (out.some((d) => d < -1 || !Number.isInteger(d))) throw new ShapeError(`${op}: invalid shape ${fmtShape(shape)}`);
  if (neg >= 0) {
    const rest = sizeOf(out.filter((_, i) => i !== neg));
    if (rest === 0 || x.size % rest !== 0) {
      throw new ShapeError(`${op}: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) into ${fmtShape(shape)}`);
    }
    out[neg] = x.size / rest;
  }
  if (sizeOf(out) !== x.size) {
    throw new ShapeError(`${op}: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) into ${fmtShape(shape)}`);
  }
  return out;
}

/**
 * Strides that let `shape` view storage laid out as (oldShape, oldStrides), or null when
 * no view can: each run of old axes that is contiguous within itself (stride of one axis
 * = size x stride of the next) may be split or merged freely, but new axes must not
 * straddle two runs (the rule of torch's view).
 */
function viewStrides(oldShape: readonly number[], oldStrides: readonly number[], shape: readonly number[]): number[] | null {
  if (sizeOf(oldShape) === 0 || oldShape.length === 0) return stridesOf(shape);
  const out = new Array<number>(shape.length);
  let d = shape.length - 1;
  let base = oldStrides[oldShape.length - 1];
  let runSize = 1;
  let viewSize = 1;
  for (let t = oldShape.length - 1; t >= 0; t--) {
    runSize *= oldShape[t];
    const runEnds = t === 0 || (oldShape[t - 1] !== 1 && oldStrides[t - 1] !== runSize * base);
    if (!runEnds) continue;
    while (d >= 0 && (viewSize < runSize || shape[d] === 1)) {
      out[d] = viewSize * base;
      viewSize *= shape[d];
      d--;
    }
    if (viewSize !== runSize) return null;
    if (t > 0) {
      base = oldStrides[t - 1];
      runSize = 1;
      viewSize = 1;
    }
  }
  return d === -1 ? out : null;
}

/** Reshape (a view whenever the strides allow one, else a copy); one dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = inferShape('reshape', x, shape);
  const strides = x.isContiguous() ? stridesOf(s) : viewStrides(x.shape, x.strides, s);
  if (strides) return view(x, 'reshape', s, strides, x.offset, (g) => reshape(g, x.shape));
  const src = clone(x);
  return view(src, 'reshape', s, stridesOf(s), src.offset, (g) => reshape(g, x.shape));
}

/** Flatten axes start..end (inclusive) into one. */
export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const s = normAxis('flatten', startAxis, x.rank);
  const e = normAxis('flatten', endAxis, x.rank);
  if (e < s) throw new ShapeError(`flatten: end axis ${endAxis} before start axis ${startAxis}`);
  const shape = [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

/** Remove unit axes (all of them, or just `axis` if it is 1). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined) {
    const keep = x.shape.map((d, i) => i).filter((i) => x.shape[i] !== 1);
    return view(x, 'squeeze', keep.map((i) => x.shape[i]), keep.map((i) => x.strides[i]), x.offset, (g) => reshape(g, x.shape));
  }
  const a = normAxis('squeeze', axis, x.rank);
  if (x.shape[a] !== 1) return x;
  const idx = x.shape.map((_, i) => i).filter((i) => i !== a);
  return view(x, 'squeeze', idx.map((i) => x.shape[i]), idx.map((i) => x.strides[i]), x.offset, (g) => reshape(g, x.shape));
}

/** Insert a unit axis at `axis` (-1 appends). */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis('unsqueeze', axis, x.rank + 1);
  const shape = [...x.shape];
  const strides = [...x.strides];
  shape.splice(a, 0, 1);
  strides.splice(a, 0, a < x.rank ? x.strides[a] * x.shape[a] : 1);
  return view(x, 'unsqueeze', shape, strides, x.offset, (g) => reshape(g, x.shape));
}

/** Reorder axes (a view). */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  if (axes.length !== x.rank) throw new ShapeError(`permute: ${axes.length} axes given for a tensor of shape ${fmtShape(x.shape)}`);
  const ax = axes.map((a) => normAxis('permute', a, x.rank));
  if (new Set(ax).size !== ax.length) throw new ShapeError(`permute: repeated axis in ${fmtShape(axes)}`);
  const inv = new Array<number>(ax.length);
  ax.forEach((a, i) => (inv[a] = i));
  return view(x, 'permute', ax.map((a) => x.shape[a]), ax.map((a) => x.strides[a]), x.offset, (g) => permute(g, inv));
}

/** Swap two axes (a view). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  if (x.rank < 2 && a === -2 && b === -1) return x;
  const i = normAxis('transpose', a, x.rank);
  const j = normAxis('transpose', b, x.rank);
  const axes = x.shape.map((_, k) => k);
  axes[i] = j;
  axes[j] = i;
  return permute(x, axes);
}

/** Broadcast to `shape` without copying (stride 0 on stretched axes); -1 keeps a size. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.rank;
  if (lead < 0) throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to fewer dimensions ${fmtShape(shape)}`);
  const outShape: number[] = [];
  const strides: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    const src = i - lead;
    const want = shape[i];
    if (src < 0) {
      if (want < 0) throw new ShapeError(`expand: -1 not allowed in new leading dimension of ${fmtShape(shape)}`);
      outShape.push(want);
      strides.push(0);
    } else {
      const have = x.shape[src];
      const d = want === -1 ? have : want;
      if (have !== d && have !== 1) throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
      outShape.push(d);
      strides.push(have === d ? x.strides[src] : 0);
    }
  }
  return view(x, 'expand', outShape, strides, x.offset, (g) => sumTo(g, x.shape));
}

/**
 * Python-style slice `start:end:step` of one axis (a view). Negative indices count
 * from the end; out-of-range bounds clamp.
 */
export function slice(x: Tensor, axis: number, start: number, end?: number, step = 1): Tensor {
  const a = normAxis('slice', axis, x.rank);
  if (!Number.isInteger(step) || step <= 0) throw new RangeError(`slice: step must be a positive integer, got ${step}`);
  const n = x.shape[a];
  const clampIdx = (i: number): number => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start);
  const e = clampIdx(end ?? n);
  const len = Math.max(0, Math.ceil((e - s) / step));
  const shape = [...x.shape];
  const strides = [...x.strides];
  shape[a] = len;
  strides[a] = x.strides[a] * step;
  return view(x, 'slice', shape, strides, x.offset + s * x.strides[a], (g) => {
    // Add into x's gradient buffer when the sweep allows (no zero-padded copy).
    const xs = stridesOf(x.shape);
    const dst = [...xs];
    dst[a] *= step;
    if (addGradRegion(x, (buf) => backend().addStrided(g.f32('slice backward'), buf, s * xs[a], dst, g.shape))) return null;
    return embed(g, x.shape, a, s, step, 0);
  });
}

/**
 * The adjoint of slice: a tensor of `shape` filled with `fill`, with `g` written at
 * positions start, start+step, ... of `axis`.
 */
function embed(g: Tensor, shape: Shape, axis: number, start: number, step: number, fill: number): Tensor {
  const out = allocF32(sizeOf(shape));
  if (fill !== 0) out.fill(fill);
  const strides = stridesOf(shape);
  const dstStrides = [...strides];
  dstStrides[axis] *= step;
  writeStrided(out, start * strides[axis], dstStrides, g);
  return fromOp('embed', out, shape, [g], (gg) => [slice(gg, axis, start, start + g.shape[axis] * step, step)]);
}

/** Write tensor `src` into `dst` at offset `off` with strides `dstStrides` (src's shape). */
function writeStrided(dst: TypedArray, off: number, dstStrides: readonly number[], src: Tensor): void {
  const shape = src.shape;
  const v = src.values();
  const rank = shape.length;
  if (v.length === 0) return;
  if (rank === 0) {
    dst[off] = v[0];
    return;
  }
  // Rows: the trailing axes that are contiguous in dst too (concat along axis 2 of
  // [B, H, S, D] copies S*D floats at a time, with one typed-array set).
  let inner = rank - 1;
  let n = shape[rank - 1];
  if (dstStrides[rank - 1] === 1) {
    while (inner > 0 && dstStrides[inner - 1] === n) n *= shape[--inner];
  }
  const ls = inner === rank - 1 ? dstStrides[rank - 1] : 1;
  const rows = v.length / n;
  const idx = new Array<number>(rank).fill(0);
  let d = off;
  for (let r = 0; r < rows; r++) {
    const vb = r * n;
    if (ls === 1 && n >= 32) dst.set(v.subarray(vb, vb + n), d);
    else for (let j = 0; j < n; j++) dst[d + j * ls] = v[vb + j];
    for (let k = inner - 1; k >= 0; k--) {
      idx[k]++;
      d += dstStrides[k];
      if (idx[k] < shape[k]) break;
      d -= dstStrides[k] * shape[k];
      idx[k] = 0;
    }
  }
}

/** Pick index `i` of `axis`, removing the axis (a view). */
export function select(x: Tensor, axis: number, i: number): Tensor {
  const a = normAxis('index', axis, x.rank);
  const n = x.shape[a];
  const k = i < 0 ? i + n : i;
  if (!Number.isInteger(k) || k < 0 || k >= n) throw new RangeError(`index: ${i} is out of range for axis ${a} of shape ${fmtShape(x.shape)}`);
  return squeeze(slice(x, a, k, k + 1), a);
}

/** Split into pieces of `sizes` (a number: equal pieces of that size, the last may be smaller). */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normAxis('split', axis, x.rank);
  const n = x.shape[a];
  let list: number[];
  if (typeof sizes === 'number') {
    if (!(sizes > 0)) throw new RangeError(`split: size must be positive, got ${sizes}`);
    list = [];
    for (let s = 0; s < n; s += sizes) list.push(Math.min(sizes, n - s));
    if (n === 0) list.push(0); // torch.split of an empty axis gives one empty piece
  } else {
    list = [...sizes];
    const total = list.reduce((p, q) => p + q, 0);
    if (total !== n) throw new ShapeError(`split: sizes ${fmtShape(list)} sum to ${total}, axis ${a} of ${fmtShape(x.shape)} has ${n}`);
  }
  const out: Tensor[] = [];
  let s = 0;
  for (const len of list) {
    out.push(slice(x, a, s, s + len));
    s += len;
  }
  return out;
}

/** Split into `n` nearly equal chunks (as torch.chunk). */
export function chunk(x: Tensor, n: number, axis = 0): Tensor[] {
  const a = normAxis('chunk', axis, x.rank);
  return split(x, Math.ceil(x.shape[a] / n), a);
}

/** Join tensors along an existing axis. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new ShapeError('concat: no tensors given');
  const first = tensors[0];
  if (first.rank === 0) throw new ShapeError('concat: 0-D tensors have no axis to join along; use stack');
  const a = normAxis('concat', axis, first.rank);
  for (const t of tensors) {
    const ok = t.rank === first.rank && t.shape.every((d, i) => i === a || d === first.shape[i]) && t.dtype === first.dtype;
    if (!ok) {
      throw new ShapeError(`concat: shapes ${tensors.map((u) => fmtShape(u.shape) + (u.dtype === 'int32' ? 'i32' : '')).join(', ')} differ outside axis ${a}`);
    }
  }
  const shape = [...first.shape];
  shape[a] = tensors.reduce((s, t) => s + t.shape[a], 0);
  const out = newArray(first, sizeOf(shape));
  const strides = stridesOf(shape);
  let pos = 0;
  for (const t of tensors) {
    writeStrided(out, pos * strides[a], strides, t);
    pos += t.shape[a];
  }
  const sizes = tensors.map((t) => t.shape[a]);
  return fromOp('concat', out, shape, [...tensors], (g) => split(g, sizes, a), { dtype: first.dtype });
}

/** Join tensors of equal shape along a new axis. */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new ShapeError('stack: no tensors given');
  const a = normAxis('stack', axis, tensors[0].rank + 1);
  for (const t of tensors) {
    if (t.shape.length !== tensors[0].shape.length || t.shape.some((d, i) => d !== tensors[0].shape[i])) {
      throw new ShapeError(`stack: shapes ${tensors.map((u) => fmtShape(u.shape)).join(', ')} differ`);
    }
  }
  return concat(tensors.map((t) => unsqueeze(t, a)), a);
}

/**
 * Constant padding as torch.nn.functional.pad: `pads` pairs (before, after) starting
 * from the last axis, e.g. [left, right, top, bottom] for an image.
 */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.rank) {
    throw new ShapeError(`pad: ${pads.length} pad values for a tensor of shape ${fmtShape(x.shape)} (need pairs, at most 2 per axis)`);
  }
  if (pads.some((p) => !Number.isInteger(p) || p < 0)) throw new RangeError(`pad: pads must be non-negative integers, got ${fmtShape(pads)}`);
  const shape = [...x.shape];
  const starts = new Array<number>(x.rank).fill(0);
  for (let k = 0; k < pads.length / 2; k++) {
    const ax = x.rank - 1 - k;
    starts[ax] = pads[2 * k];
    shape[ax] += pads[2 * k] + pads[2 * k + 1];
  }
  const out = allocF32(sizeOf(shape));
  if (value !== 0) out.fill(value);
  const strides = stridesOf(shape);
  const off = starts.reduce((s, st, i) => s + st * strides[i], 0);
  writeStrided(out, off, strides, x);
  return fromOp('pad', out, shape, [x], (g) => {
    let r = g;
    for (let ax = 0; ax < x.rank; ax++) if (shape[ax] !== x.shape[ax]) r = slice(r, ax, starts[ax], starts[ax] + x.shape[ax]);
    return [r];
  });
}

/** Reverse one axis (a view with a negative stride). */
export function flip(x: Tensor, axis: number): Tensor {
  const a = normAxis('flip', axis, x.rank);
  const strides = [...x.strides];
  strides[a] = -x.strides[a];
  const off = x.shape[a] > 0 ? x.offset + (x.shape[a] - 1) * x.strides[a] : x.offset;
  return view(x, 'flip', x.shape, strides, off, (g) => flip(g, a));
}
