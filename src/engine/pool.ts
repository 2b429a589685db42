/**
 * Buffer reuse inside `tidy` scopes (tensor.ts): the storage of op results made inside
 * a scope goes back to a free list when the scope ends, and the next scope's ops take
 * their arrays from that list instead of asking for new ones.
 *
 * Why: a training step makes a few hundred MB of activations and gradients. Left to the
 * garbage collector, every new ArrayBuffer counts as external memory, so V8 runs a
 * scavenge every ~10 MB and a mark-compact every ~50 MB, and its concurrent marker takes
 * the second core from the kernels' thread pool (gpt: ~27 scavenges and ~6 mark-compacts
 * a step). With the arrays reused, a steady training loop allocates almost nothing.
 *
 * What is pooled: arrays of more than SLAB_MAX floats (each has its own ArrayBuffer, the
 * key of every lookup here), made by emptyF32/allocF32 while a scope is open. Smaller
 * results stay slab-allocated and garbage-collected. Outside any scope nothing changes.
 *
 * Safety: when a scope ends, every tensor made inside it whose storage is released is
 * poisoned: reading its data throws an error that names the tidy scope, so a tensor kept
 * by mistake fails loudly instead of reading another tensor's numbers. Arrays referenced
 * by the scope's result or by keep() are handed to the enclosing scope (or, at the
 * outermost level, back to the garbage collector). Backward sweeps also give arrays back
 * early (releaseEarly): gradients and temporaries only the sweep itself ever held.
 *
 * Memory: a free array left untouched for a whole outermost scope is dropped (a
 * low-water mark per size), so the pool holds about one step's arrays.
 */

/** Arrays up to this many floats are carved from slabs (tensor.ts) and never pooled. */
export const SLAB_MAX = 1 << 12;

/** What the pool tracks of a tensor: only its storage (kept structural to avoid a cycle). */
interface Stored {
  readonly data: ArrayLike<number> & { readonly buffer: ArrayBufferLike };
  readonly shape: readonly number[];
  /** Drop the storage: reading `data` throws releasedError afterwards. */
  release(): void;
}

interface Scope {
  /** Pooled arrays lent to this scope and not yet returned. */
  arrays: Set<Float32Array>;
  /** Tensors made in this scope over pooled storage. */
  tensors: Stored[];
  /** Storage that keep() asked to survive the scope. */
  kept: ArrayBufferLike[];
  /** Buffers given back during the scope (early releases by backward sweeps). */
  released: Set<ArrayBufferLike>;
  /** Every lending in order (an array lent twice appears twice). */
  log: Float32Array[];
}

const stack: Scope[] = [];
/** Number of open scopes (read by the Tensor constructor on every construction). */
export let scopeDepth = 0;
/** Every lent pooled array by its buffer, with the serial number of its lending. */
const lent = new Map<ArrayBufferLike, { array: Float32Array; serial: number }>();
let serial = 0;
/** Free arrays by length, and the fewest each list held since the last trim. */
const free = new Map<number, Float32Array[]>();
const lowWater = new Map<number, number>();

const UNINIT: ((bytes: number) => Uint8Array) | null =
  typeof Buffer === 'function' && typeof Buffer.allocUnsafeSlow === 'function' ? Buffer.allocUnsafeSlow : null;

/** GENLAB_POOL=off: scopes lend nothing; every array is left to the garbage collector. */
const OFF = typeof process === 'object' && process.env?.GENLAB_POOL === 'off';

/**
 * A pooled array of n floats lent to the innermost scope (zeroed when `zero`, otherwise
 * with undefined contents), or null when no scope is open or n is slab-sized.
 */
export function takeF32(n: number, zero: boolean): Float32Array | null {
  if (scopeDepth === 0 || n <= SLAB_MAX || OFF) return null;
  const list = free.get(n);
  let a: Float32Array;
  if (list !== undefined && list.length > 0) {
    a = list.pop()!;
    if (list.length < lowWater.get(n)!) lowWater.set(n, list.length);
    if (zero) a.fill(0);
  } else if (zero || UNINIT === null) {
    a = new Float32Array(n);
  } else {
    const b = UNINIT(n * 4);
    a = new Float32Array(b.buffer, b.byteOffset, n);
  }
  lent.set(a.buffer, { array: a, serial: ++serial });
  const s = stack[scopeDepth - 1];
  s.arrays.add(a);
  s.log.push(a);
  return a;
}

/** Record a tensor made while a scope is open (only those over pooled storage matter). */
export function trackTensor(t: Stored): void {
  if (lent.has(t.data.buffer)) stack[scopeDepth - 1].tensors.push(t);
}

/** The innermost scope's lendings in order (for a backward sweep to find its temporaries). */
export function lendingLog(): readonly Float32Array[] {
  return scopeDepth > 0 ? stack[scopeDepth - 1].log : [];
}

/** The lending serial number now: arrays lent later have larger numbers. */
export function lendingSerial(): number {
  return serial;
}

/**
 * Give back the pooled array under `buffer` at once, if it was lent after `since` to the
 * innermost scope (for a backward sweep's consumed gradients, which nothing else holds).
 */
export function releaseEarly(buffer: ArrayBufferLike, since: number): void {
  const e = lent.get(buffer);
  if (e === undefined || e.serial <= since) return;
  const s = stack[scopeDepth - 1];
  if (!s.arrays.delete(e.array)) return;
  lent.delete(buffer);
  s.released.add(buffer);
  pushFree(e.array);
}

/** Whether `buffer` is a pooled array lent after `since` (so a sweep may count its users). */
export function lentSince(buffer: ArrayBufferLike, since: number): boolean {
  const e = lent.get(buffer);
  return e !== undefined && e.serial > since;
}

/** Ask the innermost scope (if any) to let `buffer` outlive it. */
export function keepBuffer(buffer: ArrayBufferLike): void {
  if (scopeDepth > 0) stack[scopeDepth - 1].kept.push(buffer);
}

export function openScope(): void {
  stack.push({ arrays: new Set(), tensors: [], kept: [], released: new Set(), log: [] });
  scopeDepth = stack.length;
}

/**
 * End the innermost scope: arrays under `keep` (and keep()'s) pass to the enclosing
 * scope; the rest return to the free lists and the tensors over them are poisoned.
 * `abandon` (the scope's callback threw): release nothing, hand everything up.
 */
export function closeScope(keep: Iterable<ArrayBufferLike>, abandon = false): void {
  const s = stack.pop()!;
  scopeDepth = stack.length;
  const parent = scopeDepth > 0 ? stack[scopeDepth - 1] : null;
  const keepSet = new Set<ArrayBufferLike>(keep);
  for (const b of s.kept) keepSet.add(b);
  const released = s.released;
  for (const a of s.arrays) {
    if (abandon || keepSet.has(a.buffer)) {
      if (parent !== null) parent.arrays.add(a);
      else lent.delete(a.buffer);
    } else {
      lent.delete(a.buffer);
      released.add(a.buffer);
      pushFree(a);
    }
  }
  for (const t of s.tensors) {
    const b = t.data.buffer;
    if (released.has(b) && !keepSet.has(b)) t.release();
    else if (parent !== null && lent.has(b)) parent.tensors.push(t);
  }
  if (parent === null) trim();
}

function pushFree(a: Float32Array): void {
  let list = free.get(a.length);
  if (list === undefined) {
    list = [];
    free.set(a.length, list);
    lowWater.set(a.length, 0);
  }
  list.push(a);
}

/** Drop the free arrays no scope needed since the last trim; restart the marks. */
function trim(): void {
  for (const [n, list] of free) {
    const idle = Math.min(lowWater.get(n)!, list.length);
    if (idle > 0) list.splice(0, idle);
    if (list.length === 0) {
      free.delete(n);
      lowWater.delete(n);
    } else {
      lowWater.set(n, list.length);
    }
  }
}

/** Floats held in the free lists now (for tests and diagnostics). */
export function pooledFloats(): number {
  let n = 0;
  for (const [len, list] of free) n += len * list.length;
  return n;
}

/** The error that reading a released tensor's storage throws. */
export function releasedError(shape: readonly number[]): Error {
  return new Error(
    `tensor of shape [${shape.join(', ')}] was released when the tidy() scope that made it ended; ` +
      'return it from the tidy callback or keep() it to use it afterwards',
  );
}
