/**
 * Tensor constructors: from nested arrays or typed arrays, constants, ranges and
 * identity matrices. Random constructors live in ops/random.ts (they take an Rng).
 */
import { Tensor } from './tensor.js';
import type { DType } from './tensor.js';
import { ShapeError, fmtShape, sizeOf } from './shape.js';
import type { Shape } from './shape.js';

type Nested = number | readonly Nested[];

function inferShape(v: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = v;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = (cur as readonly Nested[])[0];
    if (cur === undefined) break;
  }
  return shape;
}

function flattenInto(v: Nested, shape: number[], dim: number, out: number[]): void {
  if (dim === shape.length) {
    if (typeof v !== 'number') throw new ShapeError(`tensor: ragged nested array (expected a number at depth ${dim})`);
    out.push(v);
    return;
  }
  if (!Array.isArray(v) || v.length !== shape[dim]) {
    throw new ShapeError(`tensor: ragged nested array (expected length ${shape[dim]} at depth ${dim})`);
  }
  for (const e of v as readonly Nested[]) flattenInto(e, shape, dim + 1, out);
}

/**
 * A tensor from a number, nested arrays or a typed array (with an explicit shape).
 * @example
 * const x = tensor([[1, 2], [3, 4]]);           // float32 [2, 2]
 * const y = tensor([0, 2, 1], undefined, 'int32'); // int32 labels
 */
export function tensor(values: Nested | Float32Array | Int32Array | readonly number[], shape?: Shape, dtype?: DType): Tensor {
  let flat: ArrayLike<number>;
  let s: number[];
  if (values instanceof Float32Array || values instanceof Int32Array) {
    flat = values;
    s = shape ? [...shape] : [values.length];
    dtype ??= values instanceof Int32Array ? 'int32' : 'float32';
  } else {
    s = inferShape(values as Nested);
    const out: number[] = [];
    flattenInto(values as Nested, s, 0, out);
    flat = out;
    if (shape) {
      if (sizeOf(shape) !== out.length) throw new ShapeError(`tensor: ${out.length} values do not fill shape ${fmtShape(shape)}`);
      s = [...shape];
    }
  }
  if (sizeOf(s) !== flat.length) throw new ShapeError(`tensor: ${flat.length} values do not fill shape ${fmtShape(s)}`);
  const dt = dtype ?? 'float32';
  const data = dt === 'int32' ? Int32Array.from(flat) : Float32Array.from(flat);
  return new Tensor(data, s);
}

export function full(shape: Shape, value: number, dtype: DType = 'float32'): Tensor {
  const n = sizeOf(shape);
  const data = dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
  if (value !== 0) data.fill(value);
  return new Tensor(data, shape);
}
export function zeros(shape: Shape, dtype: DType = 'float32'): Tensor {
  return full(shape, 0, dtype);
}
export function ones(shape: Shape, dtype: DType = 'float32'): Tensor {
  return full(shape, 1, dtype);
}
export function zerosLike(t: Tensor): Tensor {
  return full(t.shape, 0, t.dtype);
}
export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1, t.dtype);
}

/** [start, start+step, ...) up to end (exclusive), as torch.arange. */
export function arange(start: number, end?: number, step = 1, dtype: DType = 'float32'): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (step === 0) throw new RangeError('arange: step must be nonzero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const data = dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = start + i * step;
  return new Tensor(data, [n]);
}

/** `steps` evenly spaced values from start to end inclusive. */
export function linspace(start: number, end: number, steps: number): Tensor {
  const data = new Float32Array(steps);
  for (let i = 0; i < steps; i++) data[i] = steps === 1 ? start : start + ((end - start) * i) / (steps - 1);
  return new Tensor(data, [steps]);
}

/** n x n identity. */
export function eye(n: number): Tensor {
  const data = new Float32Array(n * n);
  for (let i = 0; i < n; i++) data[i * n + i] = 1;
  return new Tensor(data, [n, n]);
}
