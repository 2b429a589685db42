/**
 * The `Tensor` and reverse-mode autograd.
 *
 * A tensor is a typed array (float32, or int32 for indices and labels) seen through a
 * shape, strides and an offset, so reshape/transpose/slice/expand are views. Each op
 * result remembers its inputs and one backward closure (as micrograd's `_backward`);
 * the closures are written with differentiable tensor ops, so `grad(..., {createGraph:
 * true})` builds a graph of the gradient itself and double backward works (WGAN-GP).
 * Memory is owned by the garbage collector, except inside `tidy` (a training step, a
 * sampling step): there the storage of op results is reused once the scope ends (pool.ts).
 */
import { backend } from './backends/index.js';
import type { TypedArray } from './backends/backend.js';
import { DTypeError, fmtShape, shapesEqual, sizeOf, stridesOf } from './shape.js';
import type { Shape } from './shape.js';
import * as E from './ops/elementwise.js';
import * as R from './ops/reduce.js';
import * as S from './ops/shape_ops.js';
import * as M from './ops/matmul.js';
import * as I from './ops/indexing.js';
import * as P from './pool.js';

export type DType = 'float32' | 'int32';
export type { TypedArray };

/** Returns one gradient per input (null where an input gets none). */
export type BackwardFn = (g: Tensor) => (Tensor | null)[];

interface GradNode {
  op: string;
  inputs: Tensor[];
  backward: BackwardFn;
}

let gradEnabled = true;
let checkNumerics = process.env.GENLAB_CHECK_NUMERICS === '1';

/** Whether ops record the graph for autograd now. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Run `fn` without recording the autograd graph (inference, optimizer updates).
 * @example
 * const y = noGrad(() => model.forward(x));
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Run `fn` with graph recording on (inside a `noGrad`). */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Run `fn` and reuse the storage of the tensors it made once it returns (tfjs's tidy):
 * the next scope's ops take those arrays instead of new ones, which spares the garbage
 * collector (and its concurrent marker, which competes with the kernels for the cores)
 * most of a training step's allocations. Tensors in the result (a tensor, or arrays,
 * Maps and plain objects holding tensors), their `.grad`, and tensors passed to keep()
 * survive; reading any other tensor made inside afterwards throws. Scopes nest; a
 * callback that throws releases nothing.
 * @example
 * const loss = tidy(() => { opt.zeroGrad(); const l = model.loss(x); l.backward(); opt.step(); return l.item(); });
 */
export function tidy<T>(fn: () => T): T {
  P.openScope();
  let out: T;
  try {
    out = fn();
  } catch (e) {
    P.closeScope([], true);
    throw e;
  }
  if (out !== null && typeof out === 'object' && typeof (out as { then?: unknown }).then === 'function') {
    // The scope would end before the async work does; nothing is released.
    P.closeScope([], true);
    throw new TypeError('tidy: the callback returned a Promise; tidy scopes are synchronous (await outside, tidy each synchronous step)');
  }
  const keep: ArrayBufferLike[] = [];
  collectBuffers(out, keep, 0);
  P.closeScope(keep);
  return out;
}

/** Let `t` (and its `.grad`) outlive the innermost tidy scope; returns t. */
export function keep<T extends Tensor>(t: T): T {
  if (P.scopeDepth > 0) {
    P.keepBuffer(t.data.buffer);
    if (t.grad) P.keepBuffer(t.grad.data.buffer);
  }
  return t;
}

function collectBuffers(x: unknown, out: ArrayBufferLike[], depth: number): void {
  if (x === null || typeof x !== 'object' || depth > 6) return;
  if (x instanceof Tensor) {
    out.push(x.data.buffer);
    if (x.grad) out.push(x.grad.data.buffer);
  } else if (Array.isArray(x)) {
    for (const v of x) collectBuffers(v, out, depth + 1);
  } else if (x instanceof Map) {
    for (const v of x.values()) collectBuffers(v, out, depth + 1);
  } else {
    const proto = Object.getPrototypeOf(x);
    if (proto === Object.prototype || proto === null) for (const v of Object.values(x)) collectBuffers(v, out, depth + 1);
  }
}

/** Turn the NaN/Inf check on every op result on or off (`GENLAB_CHECK_NUMERICS=1`). */
export function setCheckNumerics(on: boolean): void {
  checkNumerics = on;
}

/** Error thrown by the numerics check: names the first op that produced NaN or Inf. */
export class NumericsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NumericsError';
  }
}

/** The init that fromOp passes by default (identity-checked; see the constructor). */
const OP_RESULT: TensorInit = Object.freeze({});

export interface TensorInit {
  strides?: readonly number[];
  offset?: number;
  dtype?: DType;
  requiresGrad?: boolean;
}

export class Tensor {
  /** Storage, or null once a tidy() scope has released it (see `data`). */
  #data: TypedArray | null;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  /** Whether gradients flow to (or through) this tensor. */
  requiresGrad: boolean;
  /** Accumulated gradient of a leaf after `backward()`. */
  grad: Tensor | null = null;
  /** The op that made this tensor (null for leaves and for results made without grad). */
  node: GradNode | null = null;

  constructor(data: TypedArray, shape: Shape, init: TensorInit = {}) {
    this.#data = data;
    if (init === OP_RESULT) {
      // fromOp's results: row-major from offset 0, dtype from the array. One loop
      // copies the shape and makes the strides (this is on every op's path).
      const r = shape.length;
      const sh = new Array<number>(r);
      const st = new Array<number>(r);
      let n = 1;
      for (let i = r - 1; i >= 0; i--) {
        const d = shape[i];
        sh[i] = d;
        st[i] = n;
        n *= d;
      }
      this.shape = sh;
      this.strides = st;
      this.offset = 0;
      this.dtype = data instanceof Float32Array ? 'float32' : 'int32';
      this.requiresGrad = false;
      if (n > data.length) throw new RangeError(`Tensor: shape ${fmtShape(shape)} needs ${n} elements, storage has ${data.length}`);
      if (P.scopeDepth > 0) P.trackTensor(this);
      return;
    }
    this.shape = [...shape];
    this.strides = init.strides ? [...init.strides] : stridesOf(shape);
    this.offset = init.offset ?? 0;
    this.dtype = init.dtype ?? (data instanceof Int32Array ? 'int32' : 'float32');
    this.requiresGrad = init.requiresGrad ?? false;
    if (this.dtype === 'float32' && !(data instanceof Float32Array)) throw new DTypeError('Tensor: float32 tensor needs a Float32Array');
    if (this.dtype === 'int32' && !(data instanceof Int32Array)) throw new DTypeError('Tensor: int32 tensor needs an Int32Array');
    if (!init.strides && sizeOf(shape) + this.offset > data.length) {
      throw new RangeError(`Tensor: shape ${fmtShape(shape)} needs ${sizeOf(shape)} elements, storage has ${data.length - this.offset}`);
    }
    if (P.scopeDepth > 0) P.trackTensor(this);
  }

  /**
   * Storage; a view shares it with its base. Reading it throws once the tidy() scope that
   * made the tensor has ended and returned its storage to the pool.
   */
  get data(): TypedArray {
    const d = this.#data;
    if (d === null) throw P.releasedError(this.shape);
    return d;
  }

  /**
   * The pool took the storage back (its tidy() scope ended): later reads of `data`
   * throw. (A getter over a private field: redefining `data` as a throwing accessor on
   * each released tensor took V8's slow path, a new hidden class per tensor.)
   * @internal
   */
  release(): void {
    this.#data = null;
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  /** True when the elements are in row-major order (offset may be non-zero). */
  isContiguous(): boolean {
    let s = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== s) return false;
      s *= this.shape[i];
    }
    return true;
  }

  /**
   * The elements in row-major order as a typed array: a zero-copy subarray when the
   * tensor is contiguous, a fresh copy otherwise. Do not write to it.
   */
  values(): TypedArray {
    const n = this.size;
    if (this.isContiguous()) {
      return this.offset === 0 && this.data.length === n ? this.data : this.data.subarray(this.offset, this.offset + n);
    }
    const out = this.dtype === 'int32' ? new Int32Array(n) : emptyF32(n);
    backend().copy(this.data, this.offset, this.strides, out, this.shape);
    return out;
  }

  /** Float values in row-major order (throws for int32). */
  f32(op = 'op'): Float32Array {
    if (this.dtype !== 'float32') throw new DTypeError(`${op}: expected a float32 tensor, got int32 of shape ${fmtShape(this.shape)}`);
    return this.values() as Float32Array;
  }

  /** Int values in row-major order (throws for float32). */
  i32(op = 'op'): Int32Array {
    if (this.dtype !== 'int32') throw new DTypeError(`${op}: expected an int32 tensor, got float32 of shape ${fmtShape(this.shape)}`);
    return this.values() as Int32Array;
  }

  /** A plain array of the values in row-major order. */
  toArray(): number[] {
    return Array.from(this.values());
  }

  /** Nested arrays shaped like the tensor (a number for 0-D). */
  toList(): unknown {
    const flat = this.values();
    const build = (dim: number, off: number): unknown => {
      if (dim === this.shape.length) return flat[off];
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, off + i * stride));
    };
    return build(0, 0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new RangeError(`item: tensor of shape ${fmtShape(this.shape)} has ${this.size} elements, not 1`);
    return this.data[this.offset];
  }

  /** A tensor sharing storage but cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, { strides: this.strides, offset: this.offset, dtype: this.dtype });
  }

  /** A contiguous copy with its own storage (differentiable). */
  clone(): Tensor {
    return S.clone(this);
  }

  /** This tensor if contiguous, else a contiguous copy (differentiable). */
  contiguous(): Tensor {
    return this.isContiguous() ? this : S.clone(this);
  }

  /** Mark a leaf as requiring gradients; returns this. */
  requiresGrad_(flag = true): this {
    if (this.node && !flag) throw new Error('requiresGrad_: cannot clear requiresGrad on a non-leaf; use detach()');
    if (flag && this.dtype !== 'float32') throw new DTypeError('requiresGrad_: only float32 tensors can require gradients');
    this.requiresGrad = flag;
    return this;
  }

  /**
   * Backpropagate from this tensor into the `.grad` of every leaf that requires grad.
   * A non-scalar tensor needs `gradOutput` of its shape.
   */
  backward(gradOutput?: Tensor, opts: { createGraph?: boolean; retainGraph?: boolean } = {}): void {
    const createGraph = opts.createGraph ?? false;
    backwardImpl([this], gradOutput ? [gradOutput] : undefined, createGraph, opts.retainGraph ?? createGraph);
  }

  /** Set `.grad` to null. */
  zeroGrad(): void {
    this.grad = null;
  }

  toString(): string {
    const vals = this.values();
    const shown = Array.from(vals.subarray(0, 8)).map((v) => +v.toPrecision(5));
    return `Tensor(${this.dtype}, ${fmtShape(this.shape)}, [${shown.join(', ')}${vals.length > 8 ? ', ...' : ''}])`;
  }

  // ---- Elementwise -------------------------------------------------------------------
  add(o: Tensor | number): Tensor { return E.add(this, o); }
  sub(o: Tensor | number): Tensor { return E.sub(this, o); }
  mul(o: Tensor | number): Tensor { return E.mul(this, o); }
  div(o: Tensor | number): Tensor { return E.div(this, o); }
  pow(o: Tensor | number): Tensor { return E.pow(this, o); }
  maximum(o: Tensor | number): Tensor { return E.maximum(this, o); }
  minimum(o: Tensor | number): Tensor { return E.minimum(this, o); }
  eq(o: Tensor | number): Tensor { return E.eq(this, o); }
  ne(o: Tensor | number): Tensor { return E.ne(this, o); }
  lt(o: Tensor | number): Tensor { return E.lt(this, o); }
  le(o: Tensor | number): Tensor { return E.le(this, o); }
  gt(o: Tensor | number): Tensor { return E.gt(this, o); }
  ge(o: Tensor | number): Tensor { return E.ge(this, o); }
  neg(): Tensor { return E.neg(this); }
  abs(): Tensor { return E.abs(this); }
  exp(): Tensor { return E.exp(this); }
  log(): Tensor { return E.log(this); }
  log1p(): Tensor { return E.log1p(this); }
  sqrt(): Tensor { return E.sqrt(this); }
  rsqrt(): Tensor { return E.rsqrt(this); }
  sin(): Tensor { return E.sin(this); }
  cos(): Tensor { return E.cos(this); }
  tanh(): Tensor { return E.tanh(this); }
  sigmoid(): Tensor { return E.sigmoid(this); }
  relu(): Tensor { return E.relu(this); }
  leakyRelu(slope = 0.01): Tensor { return E.leakyRelu(this, slope); }
  elu(alpha = 1): Tensor { return E.elu(this, alpha); }
  gelu(): Tensor { return E.gelu(this); }
  silu(): Tensor { return E.silu(this); }
  softplus(): Tensor { return E.softplus(this); }
  square(): Tensor { return E.square(this); }
  clamp(min: number, max: number): Tensor { return E.clamp(this, min, max); }

  // ---- Reductions --------------------------------------------------------------------
  sum(axes?: number | number[], keepDim = false): Tensor { return R.sum(this, axes, keepDim); }
  mean(axes?: number | number[], keepDim = false): Tensor { return R.mean(this, axes, keepDim); }
  var(axes?: number | number[], keepDim = false, correction = 1): Tensor { return R.variance(this, axes, keepDim, correction); }
  max(axes?: number | number[], keepDim = false): Tensor { return R.max(this, axes, keepDim); }
  min(axes?: number | number[], keepDim = false): Tensor { return R.min(this, axes, keepDim); }
  argmax(axis?: number, keepDim = false): Tensor { return R.argmax(this, axis, keepDim); }
  argmin(axis?: number, keepDim = false): Tensor { return R.argmin(this, axis, keepDim); }
  logSumExp(axes?: number | number[], keepDim = false): Tensor { return R.logSumExp(this, axes, keepDim); }
  cumsum(axis: number): Tensor { return R.cumsum(this, axis); }
  softmax(axis = -1): Tensor { return R.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return R.logSoftmax(this, axis); }

  // ---- Shape -------------------------------------------------------------------------
  reshape(...shape: number[] | [readonly number[]]): Tensor { return S.reshape(this, flatArgs(shape)); }
  view(...shape: number[] | [readonly number[]]): Tensor { return S.reshape(this, flatArgs(shape)); }
  flatten(startAxis = 0, endAxis = -1): Tensor { return S.flatten(this, startAxis, endAxis); }
  squeeze(axis?: number): Tensor { return S.squeeze(this, axis); }
  unsqueeze(axis: number): Tensor { return S.unsqueeze(this, axis); }
  permute(...axes: number[] | [readonly number[]]): Tensor { return S.permute(this, flatArgs(axes)); }
  transpose(a = -2, b = -1): Tensor { return S.transpose(this, a, b); }
  get T(): Tensor { return S.transpose(this, -2, -1); }
  expand(...shape: number[] | [readonly number[]]): Tensor { return S.expand(this, flatArgs(shape)); }
  slice(axis: number, start: number, end?: number, step = 1): Tensor { return S.slice(this, axis, start, end, step); }
  index(axis: number, i: number): Tensor { return S.select(this, axis, i); }
  split(sizes: number | number[], axis = 0): Tensor[] { return S.split(this, sizes, axis); }
  chunk(n: number, axis = 0): Tensor[] { return S.chunk(this, n, axis); }
  pad(pads: number[], value = 0): Tensor { return S.pad(this, pads, value); }
  flip(axis: number): Tensor { return S.flip(this, axis); }

  // ---- Indexing, matmul, casts -------------------------------------------------------
  gather(axis: number, index: Tensor): Tensor { return I.gather(this, axis, index); }
  indexSelect(axis: number, index: Tensor): Tensor { return I.indexSelect(this, axis, index); }
  matmul(o: Tensor): Tensor { return M.matmul(this, o); }
  toFloat(): Tensor { return I.toFloat(this); }
  toInt(): Tensor { return I.toInt(this); }
}

function flatArgs(a: number[] | [readonly number[]]): number[] {
  return a.length === 1 && Array.isArray(a[0]) ? [...(a[0] as readonly number[])] : (a as number[]);
}

/**
 * A fresh zeroed Float32Array for an op's result. A typed array above 64 bytes gets its
 * own off-heap backing store (malloc, zeroing, GC bookkeeping), so results of 17 to 4k
 * floats are carved from 128 KB slabs instead: a bump pointer, never reused, so every
 * view starts zeroed; the GC frees a slab when its last view dies. Measured (x.add(y),
 * best of 15): 256 floats 610 -> 360 ns, 2048 floats 1.9 -> 1.15 us. Larger slabs
 * (512 KB) lost at 8k floats: a fresh mmap-sized buffer page-faults on first touch.
 */
export function allocF32(n: number): Float32Array {
  if (n > SLAB_MAX) return P.takeF32(n, true) ?? new Float32Array(n);
  if (n <= 16) return new Float32Array(n);
  if (slabTop + n > SLAB_FLOATS) {
    slab = new ArrayBuffer(SLAB_FLOATS * 4);
    slabTop = 0;
  }
  const a = new Float32Array(slab, slabTop * 4, n);
  slabTop += (n + 3) & ~3; // keep 16-byte alignment for the kernels
  return a;
}

/**
 * A Float32Array of n floats whose contents are undefined (torch.empty), for a result
 * that the kernel overwrites in full: allocF32 without the zeroing. Over 4k floats
 * (16 KB) Node's uninitialised allocation is used, so a buffer that malloc reuses is
 * not cleared first (together with the native addon's keepHeap this takes ~5-10 % off
 * a training step of the bench models: fresh zeroed pages were faulted in and cleared
 * for every activation). Small arrays and browsers, which lack Buffer, get allocF32's
 * zeroed arrays.
 */
export function emptyF32(n: number): Float32Array {
  const pooled = P.takeF32(n, false);
  if (pooled !== null) return FILL_EMPTY ? pooled.fill(NaN) : pooled;
  if (FILL_EMPTY) return new Float32Array(n).fill(NaN);
  if (n <= SLAB_MAX || !UNINIT) return allocF32(n);
  const b = UNINIT(n * 4);
  return new Float32Array(b.buffer, b.byteOffset, n);
}
/**
 * GENLAB_FILL_EMPTY=nan fills every emptyF32 result with NaN (PyTorch's
 * fill_uninitialized_memory), so that a kernel that leaves part of its output
 * unwritten shows up as NaN in the tests (`GENLAB_FILL_EMPTY=nan npm test`).
 */
const FILL_EMPTY = typeof process === 'object' && process.env?.GENLAB_FILL_EMPTY === 'nan';
const UNINIT: ((bytes: number) => Uint8Array) | null =
  typeof Buffer === 'function' && typeof Buffer.allocUnsafeSlow === 'function' ? Buffer.allocUnsafeSlow : null;
const SLAB_FLOATS = 1 << 15;
const SLAB_MAX = P.SLAB_MAX;
let slab = new ArrayBuffer(0);
let slabTop = SLAB_FLOATS; // full: the first call makes a slab

/** A row-major tensor over `data` (internal fast constructor: no checks beyond the size). */
export function rowMajorTensor(data: TypedArray, shape: Shape): Tensor {
  return new Tensor(data, shape, OP_RESULT);
}

/**
 * Make an op's result and, when grad is on and an input requires grad, record its node.
 * Every primitive op ends here; composites are built from primitives.
 */
export function fromOp(
  op: string, data: TypedArray, shape: Shape, inputs: Tensor[], backward: BackwardFn | null, init: TensorInit = OP_RESULT,
): Tensor {
  const out = new Tensor(data, shape, init);
  if (checkNumerics && data instanceof Float32Array) numericsCheck(op, out, inputs);
  if (backward && gradEnabled) {
    for (const t of inputs) {
      if (t.requiresGrad) {
        out.requiresGrad = true;
        out.node = { op, inputs, backward };
        break;
      }
    }
  }
  return out;
}

function hasNonFinite(t: Tensor): boolean {
  if (t.dtype !== 'float32') return false;
  const v = t.values();
  for (let i = 0; i < v.length; i++) if (v[i] - v[i] !== 0) return true;
  return false;
}

function numericsCheck(op: string, out: Tensor, inputs: Tensor[]): void {
  if (!hasNonFinite(out)) return;
  if (inputs.some(hasNonFinite)) return; // Not the first op to see it.
  const v = out.values();
  let bad = 0;
  for (let i = 0; i < v.length; i++) if (v[i] - v[i] !== 0) bad = i;
  throw new NumericsError(
    `${op} produced ${Number.isNaN(v[bad]) ? 'NaN' : 'Inf'} (output shape ${fmtShape(out.shape)}, flat index ${bad}) from finite inputs ` +
      `of shapes ${inputs.map((t) => fmtShape(t.shape)).join(', ')}`,
  );
}

export interface GradOptions {
  /** Gradients of the outputs (needed for non-scalar outputs). */
  gradOutputs?: (Tensor | null)[];
  /** Record the gradient computation so it can itself be differentiated. */
  createGraph?: boolean;
  /** Return null instead of throwing for an input the outputs do not depend on. */
  allowUnused?: boolean;
}

/**
 * Gradients of `outputs` with respect to `inputs`, without touching `.grad`.
 * @example
 * const x = randn([4, 2], rng).requiresGrad_();
 * const [gx] = grad(f(x).sum(), [x], { createGraph: true }); // gx is differentiable
 */
export function grad(outputs: Tensor | Tensor[], inputs: Tensor[], opts: GradOptions = {}): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const targets = new Set(inputs);
  for (const t of inputs) {
    if (!t.requiresGrad) throw new Error(`grad: an input of shape ${fmtShape(t.shape)} does not require grad`);
  }
  const grads = propagate(outs, opts.gradOutputs, opts.createGraph ?? false, targets);
  return inputs.map((t, i) => {
    const g = grads.get(t) ?? null;
    if (g === null && !opts.allowUnused) {
      throw new Error(`grad: input ${i} (shape ${fmtShape(t.shape)}) was not used to compute the outputs; pass allowUnused`);
    }
    return g;
  });
}

/**
 * `.grad` tensors whose buffer backward allocated itself, so it may add into them in
 * place. Any other `.grad` (from a createGraph backward, or set by the user) may share
 * its storage with another leaf's gradient or with a caller's tensor, so it is replaced,
 * never written.
 */
const ownedGrads = new WeakSet<Tensor>();

function backwardImpl(outs: Tensor[], gradOutputs: (Tensor | null)[] | undefined, createGraph: boolean, retainGraph: boolean): void {
  const sweep: { users: GradUsers | null } = { users: null };
  const grads = propagate(outs, gradOutputs, createGraph, null, !retainGraph, sweep);
  for (const [t, g] of grads) {
    if (t.node !== null || !t.requiresGrad) continue;
    if (createGraph) {
      t.grad = t.grad ? t.grad.add(g) : g;
    } else if (t.grad === null && sweep.users?.soleUser(g) && shapesEqual(g.shape, t.shape)) {
      // A whole array the sweep made for this leaf alone: it becomes the leaf's buffer.
      t.grad = keep(g.requiresGrad ? g.detach() : g);
      ownedGrads.add(t.grad);
    } else if (t.grad === null || !ownedGrads.has(t.grad) || t.grad.requiresGrad || !t.grad.isContiguous() || t.grad.offset !== 0) {
      // Own the buffer: g may be shared with other gradients or be a view.
      const own = t.grad ? noGrad(() => t.grad!.add(g)) : noGrad(() => S.clone(g.detach()));
      t.grad = keep(own.detach()); // .grad outlives a tidy scope
      ownedGrads.add(t.grad);
    } else {
      // Accumulate in place into a buffer this leaf owns.
      const acc = t.grad.data as Float32Array;
      const gv = noGrad(() => (shapesEqual(g.shape, t.shape) ? g : S.expand(g, t.shape))).f32('backward');
      backend().addStrided(gv, acc, 0, [1], [acc.length]);
    }
  }
}

/** What a node's backward becomes once a sweep without retainGraph has used it. */
function freedBackward(op: string): BackwardFn {
  return () => {
    throw new Error(`backward: the graph through ${op} was freed by an earlier backward(); pass { retainGraph: true } to the first call to go through it twice`);
  };
}

/**
 * Reverse-mode sweep; returns the gradient of every tensor reached (or of `targets`).
 * `free`: drop each node's inputs and backward closure once it has run (as PyTorch
 * without retain_graph), so the activations it saved can be collected during the sweep
 * rather than after it: the peak of a training step is then no longer all activations
 * plus all gradients.
 */
function propagate(
  outs: Tensor[], gradOutputs: (Tensor | null)[] | undefined, createGraph: boolean, targets: Set<Tensor> | null, free = false,
  sweep?: { users: GradUsers | null },
): Map<Tensor, Tensor> {
  // 1. Topological order by iterative DFS (graphs of long RNN unrolls are deep). The
  // stack is two parallel arrays (no tuple per node); `needed` (does t lead to a
  // target?) is only tracked when there are targets: backward() needs every node.
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const needed = targets === null ? null : new Set<Tensor>();
  const stackT: Tensor[] = [];
  const stackI: number[] = [];
  for (const root of outs) {
    if (seen.has(root)) continue;
    stackT.push(root);
    stackI.push(0);
    seen.add(root);
    while (stackT.length) {
      const top = stackT.length - 1;
      const t = stackT[top];
      const i = stackI[top];
      const ins = t.node ? t.node.inputs : null;
      if (ins !== null && i < ins.length) {
        stackI[top] = i + 1;
        const c = ins[i];
        if (c.requiresGrad && !seen.has(c)) {
          seen.add(c);
          stackT.push(c);
          stackI.push(0);
        }
      } else {
        stackT.pop();
        stackI.pop();
        if (needed !== null) {
          let need = targets!.has(t);
          if (!need && ins !== null) for (const c of ins) if (needed.has(c)) need = true;
          if (need) needed.add(t);
        }
        order.push(t);
      }
    }
  }
  const isNeeded = (t: Tensor): boolean => needed === null || needed.has(t);
  seen.clear();

  // 2. Seed the outputs.
  const grads = new Map<Tensor, Tensor>();
  // Inside a tidy scope, a gradient array the sweep itself made goes back to the pool
  // as soon as the last map entry using it is gone (each entry counts once, so an
  // array that `add` passed to both inputs, or a view of it, stays until both are done),
  // and so do the temporaries of each backward rule.
  const users = !createGraph && P.scopeDepth > 0 ? new GradUsers(P.lendingSerial()) : null;
  if (sweep) sweep.users = users;
  outs.forEach((o, i) => {
    let g = gradOutputs?.[i] ?? null;
    if (g === null) {
      if (o.size !== 1) {
        throw new Error(`backward: output of shape ${fmtShape(o.shape)} is not a scalar; pass a gradient of that shape`);
      }
      g = new Tensor(new Float32Array(1).fill(1), o.shape);
    } else if (!shapesEqual(g.shape, o.shape)) {
      throw new Error(`backward: gradient shape ${fmtShape(g.shape)} does not match output shape ${fmtShape(o.shape)}`);
    }
    if (!o.requiresGrad) throw new Error('backward: output does not require grad (was it computed inside noGrad, or from tensors without requiresGrad?)');
    accumulate(grads, o, g, users);
  });

  // 3. Sweep in reverse topological order.
  const prev = gradEnabled;
  const prevPending = pendingRegions;
  gradEnabled = createGraph;
  pendingRegions = createGraph ? null : new Map();
  const prevUsers = regionUsers;
  regionUsers = users;
  try {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const node = t.node;
      // Every consumer of t has run: fold in what views added to t's region buffer.
      const region = pendingRegions?.get(t);
      if (region) {
        pendingRegions!.delete(t);
        const rt = new Tensor(region, t.shape);
        accumulate(grads, t, rt, users);
        if (users) {
          users.drop(rt); // addGradRegion's hold
          users.free();
        }
      }
      const g = grads.get(t);
      if (!node || !g || !isNeeded(t)) continue;
      // From here g may flow on as another tensor's gradient (identity rules return
      // it as is, add gives it to both inputs): it is no longer ours to add into.
      ownedSums.delete(g);
      users?.beginNode();
      const gs = node.backward(g);
      for (let i = 0; i < node.inputs.length; i++) {
        const inp = node.inputs[i];
        const gi = gs[i];
        if (!gi || !inp.requiresGrad || !isNeeded(inp)) continue;
        if (!shapesEqual(gi.shape, inp.shape)) {
          throw new Error(`${node.op} backward: gradient shape ${fmtShape(gi.shape)} != input shape ${fmtShape(inp.shape)}`);
        }
        accumulate(grads, inp, gi, users);
      }
      // Free intermediate gradients early unless the caller asked for them.
      if ((targets !== null && !targets.has(t)) || (targets === null && t.node)) {
        grads.delete(t);
        users?.drop(g);
      }
      users?.endNode();
      if (free) {
        node.inputs = [];
        node.backward = freedBackward(node.op);
        order.length = k; // t is done: the sweep no longer holds it
      }
    }
  } finally {
    gradEnabled = prev;
    pendingRegions = prevPending;
    regionUsers = prevUsers;
  }
  return grads;
}

/**
 * Per-tensor gradient buffers that views (slice, select, split, chunk) add into during
 * a backward sweep that records no graph. Taking T time steps of a [T, ...] tensor
 * would otherwise give T zero-padded full-size gradients and T full-size adds (O(T^2)
 * work and memory in an RNN unroll); this way each step writes only its own region.
 */
let pendingRegions: Map<Tensor, Float32Array> | null = null;
/** The running sweep's GradUsers (region buffers outlive the rule that made them). */
let regionUsers: GradUsers | null = null;

/**
 * For a view's backward: add its gradient straight into `x`'s gradient buffer with
 * `write` and return true; false when not possible (a graph of the gradient is being
 * recorded, or no sweep is running), and the view must return a full-size gradient.
 */
export function addGradRegion(x: Tensor, write: (buf: Float32Array) => void): boolean {
  if (pendingRegions === null || gradEnabled || x.dtype !== 'float32') return false;
  let buf = pendingRegions.get(x);
  if (!buf) {
    buf = allocF32(x.size);
    pendingRegions.set(x, buf);
    regionUsers?.hold(buf.buffer);
  }
  write(buf);
  return true;
}

/** Sums that accumulate() made itself in a non-recording sweep: nobody else holds them. */
const ownedSums = new WeakSet<Tensor>();

function accumulate(grads: Map<Tensor, Tensor>, t: Tensor, g: Tensor, users: GradUsers | null): void {
  const cur = grads.get(t);
  if (!cur) {
    grads.set(t, g);
    users?.use(g);
  } else if (!gradEnabled && ownedSums.has(cur) && !g.requiresGrad) {
    // Add in place (a weight used at every time step collects T gradients).
    const acc = cur.data as Float32Array;
    backend().addStrided(g.f32('backward'), acc, 0, [1], [acc.length]);
  } else {
    const sum = E.add(cur, g);
    if (!gradEnabled) ownedSums.add(sum);
    grads.set(t, sum);
    users?.use(sum);
    users?.drop(cur);
  }
}

/**
 * Counts, for each pooled array made during a backward sweep, its users: gradient-map
 * entries and pending region buffers. An array nobody uses any more goes back to the
 * pool at once: a consumed gradient (dropped from the map), or a temporary that a
 * backward rule made and did not return (nothing outside the sweep ever saw either).
 */
class GradUsers {
  private readonly counts = new Map<ArrayBufferLike, number>();
  private pending: ArrayBufferLike[] = [];
  private logStart = 0;

  constructor(private readonly since: number) {}

  /** A map entry now uses g's storage. */
  use(g: Tensor): void {
    this.hold(g.data.buffer);
  }

  hold(b: ArrayBufferLike): void {
    if (P.lentSince(b, this.since)) this.counts.set(b, (this.counts.get(b) ?? 0) + 1);
  }

  /**
   * Whether g is a whole contiguous array that this sweep made and that only one map
   * entry uses (so nothing else can see it: it may become a leaf's .grad as it is).
   */
  soleUser(g: Tensor): boolean {
    return this.counts.get(g.data.buffer) === 1 && g.offset === 0 && g.size === g.data.length && g.isContiguous() && g.dtype === 'float32';
  }

  /** An entry using g's storage is gone. */
  drop(g: Tensor): void {
    const b = g.data.buffer;
    const n = this.counts.get(b);
    if (n === undefined) return;
    if (n > 1) this.counts.set(b, n - 1);
    else {
      this.counts.delete(b);
      this.pending.push(b);
    }
  }

  /** A backward rule starts: the arrays lent from here on are its own. */
  beginNode(): void {
    this.logStart = P.lendingLog().length;
  }

  /** The rule's results are in the map: give back its temporaries and what was dropped. */
  endNode(): void {
    const log = P.lendingLog();
    for (let i = this.logStart; i < log.length; i++) this.pending.push(log[i].buffer);
    this.free();
  }

  /** Release what no entry uses (checked now: an array may have been re-entered since). */
  free(): void {
    for (const b of this.pending) if (!this.counts.has(b)) P.releaseEarly(b, this.since);
    this.pending = [];
  }
}
