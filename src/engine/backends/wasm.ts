/**
 * The wasm backend: the C++ kernels of native/ compiled to wasm32+simd128
 * (native/genlab.wasm, rebuilt by scripts/build_wasm.mjs and committed). For machines
 * where the addon cannot be built, and for browsers. Single-threaded. Each call copies
 * its inputs into an arena in the module's linear memory (grown as needed), runs the
 * kernel and copies the results out; tiny inputs stay in js. Kernels without a wasm
 * version (sin, cos, pow, copy, cumsum, gather...) come from js.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backend.js';
import { convBackwardDataVia, convBackwardWeightVia, convForwardVia } from './conv_ref.js';
import { gemmEpilogue, headStart, jsBackend } from './js.js';
import { BINARY_CODES, REDUCE_CODES, UNARY_CODES } from './native.js';

/** The module's exports (native/wasm_api.cpp); pointers are byte offsets into memory. */
interface WasmExports {
  memory: WebAssembly.Memory;
  heap_base(): number;
  gemm(tA: number, tB: number, M: number, N: number, K: number, A: number, lda: number, B: number, ldb: number,
    beta: number, C: number, ldc: number): void;
  unary(op: number, x: number, out: number, n: number, p0: number, p1: number): number;
  binary(op: number, a: number, b: number, out: number, meta: number): number;
  reduce(op: number, x: number, outer: number, len: number, inner: number, out: number): void;
  softmax(x: number, outer: number, len: number, inner: number, log: number, out: number): void;
  im2col(x: number, C: number, H: number, W: number, kh: number, kw: number, sh: number, sw: number, ph: number,
    pw: number, dh: number, dw: number, oh: number, ow: number, cols: number): void;
  col2im(cols: number, C: number, H: number, W: number, kh: number, kw: number, sh: number, sw: number, ph: number,
    pw: number, dh: number, dw: number, oh: number, ow: number, x: number): void;
  adam(param: number, grad: number, m: number, v: number, n: number, lr: number, beta1: number, beta2: number,
    eps: number, weightDecay: number, decoupled: number, step: number): void;
  norm_rows(x: number, R: number, N: number, eps: number, y: number, rstd: number): void;
  norm_rows_backward(y: number, rstd: number, g: number, R: number, N: number, dx: number): void;
  lstm_cell(gates: number, c: number, B: number, H: number, h2: number, c2: number, act: number): void;
  lstm_cell_backward(act: number, c: number, dh: number, dc2: number, B: number, H: number, dgates: number, dc: number): void;
  gru_cell(gi: number, gh: number, h: number, B: number, H: number, h2: number, act: number): void;
  gru_cell_backward(act: number, h: number, dh2: number, B: number, H: number, dgi: number, dgh: number, dh: number): void;
  attention(q: number, k: number, v: number, mask: number, maskStride: number, BH: number, L: number, S: number, D: number,
    Dv: number, scale: number, causalOffset: number, out: number, p: number): void;
  attention_backward(q: number, k: number, v: number, p: number, dout: number, dp: number, BH: number, L: number, S: number,
    D: number, Dv: number, scale: number, dq: number, dk: number, dv: number, scratch: number): void;
  ntm_address(mem: number, key: number, beta: number, g: number, wPrev: number, shift: number, gamma: number, B: number,
    N: number, M: number, S: number, w: number, act: number): void;
  ntm_address_backward(mem: number, key: number, beta: number, g: number, wPrev: number, shift: number, gamma: number,
    act: number, w: number, dw: number, B: number, N: number, M: number, S: number, dmem: number, dkey: number, dbeta: number,
    dg: number, dwPrev: number, dshift: number, dgamma: number, scratch: number): void;
  memory_read(mem: number, w: number, B: number, N: number, M: number, r: number): void;
  memory_read_backward(mem: number, w: number, dr: number, B: number, N: number, M: number, dmem: number, dw: number): void;
  memory_write(mem: number, w: number, e: number, a: number, B: number, N: number, M: number, out: number): void;
  memory_write_backward(mem: number, w: number, e: number, a: number, dout: number, B: number, N: number, M: number,
    dmem: number, dw: number, de: number, da: number): void;
}

/**
 * Below these sizes js is faster than copying into wasm and back. Measured on the
 * project's 2-core Zen 4: GEMM 8^3 js 1.3 / wasm 1.0 us, 12^3 js 3.9 / wasm 0.46 us;
 * x + y at 64 elements js 336 / wasm 781 ns, at 128 js 530 / wasm 351 ns; exp and
 * sum cross over near 64. Tests set them to 0 to reach every path.
 */
export const WASM_THRESHOLDS = {
  /** M*N*K of a GEMM. */
  gemm: 512,
  /** Elements of an elementwise op, reduction, softmax, im2col or Adam update. */
  elementwise: 128,
  /** B*H of a fused LSTM/GRU cell. */
  cell: 32,
  /** BH*L*S*(D+Dv) of an attention call. */
  attention: 512,
};

function findModule(): string | null {
  const env = process.env.GENLAB_WASM_PATH;
  if (env) return env;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'native', 'genlab.wasm');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

/** A bump allocator over the module's memory above __heap_base, reset per call. */
class Arena {
  private top = 0;
  private f32View: Float32Array;
  private i32View: Int32Array;

  constructor(private readonly ex: WasmExports, private readonly base: number) {
    this.f32View = new Float32Array(ex.memory.buffer);
    this.i32View = new Int32Array(ex.memory.buffer);
  }

  reset(): void {
    this.top = this.base;
  }

  /** Reserve n 4-byte elements (16-byte aligned); returns the byte offset. */
  alloc(n: number): number {
    const p = (this.top + 15) & ~15;
    this.top = p + Math.max(n, 0) * 4;
    return p;
  }

  /**
   * Grow memory to cover every allocation; call before taking views. False when the
   * module cannot hold them (wasm32 stops at 4 GiB): the caller then uses js.
   */
  commit(): boolean {
    const have = this.ex.memory.buffer.byteLength;
    if (this.top > have) {
      if (this.top > 0xffff0000) return false;
      try {
        this.ex.memory.grow(Math.ceil((this.top - have) / 65536));
      } catch {
        return false;
      }
    }
    if (this.f32View.buffer !== this.ex.memory.buffer) {
      this.f32View = new Float32Array(this.ex.memory.buffer);
      this.i32View = new Int32Array(this.ex.memory.buffer);
    }
    return true;
  }

  get f32(): Float32Array {
    return this.f32View;
  }

  get i32(): Int32Array {
    return this.i32View;
  }
}

let exportsCache: WasmExports | null = null;
let loadError = '';

function wasmExports(): WasmExports {
  if (exportsCache) return exportsCache;
  if (loadError) throw new Error(loadError);
  const path = findModule();
  if (!path) {
    loadError = 'wasm module not found (native/genlab.wasm; rebuild with `npm run build:wasm`)';
    throw new Error(loadError);
  }
  try {
    const mod = new WebAssembly.Module(readFileSync(path));
    exportsCache = new WebAssembly.Instance(mod, {}).exports as unknown as WasmExports;
  } catch (e) {
    loadError = `wasm module ${path} failed to load: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`;
    throw new Error(loadError);
  }
  return exportsCache;
}

/** Extent of a rows x cols matrix with row stride ld. */
function extent(rows: number, cols: number, ld: number): number {
  return rows <= 0 || cols <= 0 ? 0 : (rows - 1) * ld + cols;
}

/** Operand o of a head layout copied to contiguous [BH, rows, cols]. */
function packHeads(src: Float32Array, layout: Int32Array, o: number, BH: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(BH * rows * cols), ld = layout[3 + 3 * o];
  for (let bh = 0; bh < BH; bh++) {
    const s = headStart(layout, o, bh);
    for (let r = 0; r < rows; r++) out.set(src.subarray(s + r * ld, s + r * ld + cols), (bh * rows + r) * cols);
  }
  return out;
}

/** Contiguous [BH, rows, cols] written to operand o of a head layout. */
function unpackHeads(src: Float32Array, dst: Float32Array, layout: Int32Array, o: number, BH: number, rows: number, cols: number): void {
  const ld = layout[3 + 3 * o];
  for (let bh = 0; bh < BH; bh++) {
    const s = headStart(layout, o, bh);
    for (let r = 0; r < rows; r++) dst.set(src.subarray((bh * rows + r) * cols, (bh * rows + r + 1) * cols), s + r * ld);
  }
}

/** Build the wasm backend: js kernels with the wasm ones laid over them. */
export function loadWasm(): Backend {
  const ex = wasmExports();
  const mem = new Arena(ex, ex.heap_base());
  const T = WASM_THRESHOLDS;
  const noWasm = new Set(['sin', 'cos']);

  /** Copy src[off, off + n) into a fresh arena block (after commit). */
  const put = (ptr: number, src: Float32Array, off: number, n: number): void => {
    if (n > 0) mem.f32.set(src.subarray(off, off + n), ptr >> 2);
  };
  const get = (ptr: number, dst: Float32Array, off: number, n: number): void => {
    if (n > 0) dst.set(mem.f32.subarray(ptr >> 2, (ptr >> 2) + n), off);
  };

  /**
   * Run a kernel on arena copies of `arrays` (null: pointer 0): 'in' arrays are copied
   * in, 'out' copied back, 'inout' both. False (nothing run) when memory cannot grow.
   */
  const viaArena = (arrays: [Float32Array | null, number, 'in' | 'out' | 'inout'][], kernel: (ptrs: number[]) => void): boolean => {
    mem.reset();
    const ptrs = arrays.map(([a, n]) => (a ? mem.alloc(n) : 0));
    if (!mem.commit()) return false;
    arrays.forEach(([a, n, mode], i) => {
      if (a && mode !== 'out') put(ptrs[i], a, 0, n);
    });
    kernel(ptrs);
    arrays.forEach(([a, n, mode], i) => {
      if (a && mode !== 'in') get(ptrs[i], a, 0, n);
    });
    return true;
  };

  const overrides: Partial<Backend> = {
    ntmAddress(m, key, beta, g, wPrev, shift, gamma, B, N, M, S, w, act) {
      const ok = B * N * M >= T.elementwise && viaArena([
        [m, B * N * M, 'in'], [key, B * M, 'in'], [beta, B, 'in'], [g, B, 'in'], [wPrev, B * N, 'in'], [shift, B * S, 'in'],
        [gamma, B, 'in'], [w, B * N, 'out'], [act, B * (5 * N + 1), 'out'],
      ], (p) => ex.ntm_address(p[0], p[1], p[2], p[3], p[4], p[5], p[6], B, N, M, S, p[7], p[8]));
      if (!ok) jsBackend.ntmAddress(m, key, beta, g, wPrev, shift, gamma, B, N, M, S, w, act);
    },

    ntmAddressBackward(m, key, beta, g, wPrev, shift, gamma, act, w, dw, B, N, M, S, dmem, dkey, dbeta, dg, dwPrev, dshift, dgamma) {
      const ok = B * N * M >= T.elementwise && viaArena([
        [m, B * N * M, 'in'], [key, B * M, 'in'], [beta, B, 'in'], [g, B, 'in'], [wPrev, B * N, 'in'], [shift, B * S, 'in'],
        [gamma, B, 'in'], [act, B * (5 * N + 1), 'in'], [w, B * N, 'in'], [dw, B * N, 'in'], [dmem, B * N * M, 'inout'],
        [dkey, B * M, 'out'], [dbeta, B, 'out'], [dg, B, 'out'], [dwPrev, B * N, 'out'], [dshift, B * S, 'out'], [dgamma, B, 'out'],
        [new Float32Array(2 * B * N), 2 * B * N, 'in'],
      ], (p) => ex.ntm_address_backward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], B, N, M, S, p[10], p[11],
        p[12], p[13], p[14], p[15], p[16], p[17]));
      if (!ok) jsBackend.ntmAddressBackward(m, key, beta, g, wPrev, shift, gamma, act, w, dw, B, N, M, S, dmem, dkey, dbeta, dg, dwPrev, dshift, dgamma);
    },

    memoryRead(m, w, B, N, M, r) {
      const ok = B * N * M >= T.elementwise && viaArena([[m, B * N * M, 'in'], [w, B * N, 'in'], [r, B * M, 'out']],
        (p) => ex.memory_read(p[0], p[1], B, N, M, p[2]));
      if (!ok) jsBackend.memoryRead(m, w, B, N, M, r);
    },

    memoryReadBackward(m, w, dr, B, N, M, dmem, dw) {
      const ok = B * N * M >= T.elementwise && viaArena([
        [m, B * N * M, 'in'], [w, B * N, 'in'], [dr, B * M, 'in'], [dmem, B * N * M, 'inout'], [dw, B * N, 'out'],
      ], (p) => ex.memory_read_backward(p[0], p[1], p[2], B, N, M, p[3], p[4]));
      if (!ok) jsBackend.memoryReadBackward(m, w, dr, B, N, M, dmem, dw);
    },

    memoryWrite(m, w, e, a, B, N, M, out) {
      const ok = B * N * M >= T.elementwise && viaArena([
        [m, B * N * M, 'in'], [w, B * N, 'in'], [e, B * M, 'in'], [a, B * M, 'in'], [out, B * N * M, 'out'],
      ], (p) => ex.memory_write(p[0], p[1], p[2], p[3], B, N, M, p[4]));
      if (!ok) jsBackend.memoryWrite(m, w, e, a, B, N, M, out);
    },

    memoryWriteBackward(m, w, e, a, dout, B, N, M, dmem, dw, de, da) {
      const ok = B * N * M >= T.elementwise && viaArena([
        [m, B * N * M, 'in'], [w, B * N, 'in'], [e, B * M, 'in'], [a, B * M, 'in'], [dout, B * N * M, 'in'],
        [dmem, B * N * M, 'inout'], [dw, B * N, 'out'], [de, B * M, 'out'], [da, B * M, 'out'],
      ], (p) => ex.memory_write_backward(p[0], p[1], p[2], p[3], p[4], B, N, M, p[5], p[6], p[7], p[8]));
      if (!ok) jsBackend.memoryWriteBackward(m, w, e, a, dout, B, N, M, dmem, dw, de, da);
    },

    unary(op, x, xOff, out, n, p0, p1) {
      if (n < T.elementwise || noWasm.has(op)) return jsBackend.unary(op, x, xOff, out, n, p0, p1);
      mem.reset();
      const px = mem.alloc(n), po = mem.alloc(n);
      if (!mem.commit()) return jsBackend.unary(op, x, xOff, out, n, p0, p1);
      put(px, x, xOff, n);
      ex.unary(UNARY_CODES[op], px, po, n, p0, p1);
      get(po, out, 0, n);
    },

    binary(op, a, aOff, aStrides, b, bOff, bStrides, out, shape) {
      const rank = shape.length;
      let n = 1;
      for (let d = 0; d < rank; d++) n *= shape[d];
      if (n < T.elementwise || op === 'pow' || rank > 16) {
        return jsBackend.binary(op, a, aOff, aStrides, b, bOff, bStrides, out, shape);
      }
      // The element ranges each input touches (strides may be negative).
      let aLo = 0, aHi = 0, bLo = 0, bHi = 0;
      for (let d = 0; d < rank; d++) {
        const sa = aStrides[d] * (shape[d] - 1), sb = bStrides[d] * (shape[d] - 1);
        if (sa < 0) aLo += sa; else aHi += sa;
        if (sb < 0) bLo += sb; else bHi += sb;
      }
      const na = aHi - aLo + 1, nb = bHi - bLo + 1;
      mem.reset();
      const pa = mem.alloc(na), pb = mem.alloc(nb), po = mem.alloc(n), pm = mem.alloc(1 + 3 * rank);
      if (!mem.commit()) return jsBackend.binary(op, a, aOff, aStrides, b, bOff, bStrides, out, shape);
      put(pa, a, aOff + aLo, na);
      put(pb, b, bOff + bLo, nb);
      const i32 = mem.i32, m = pm >> 2;
      i32[m] = rank;
      for (let d = 0; d < rank; d++) {
        i32[m + 1 + d] = shape[d];
        i32[m + 1 + rank + d] = aStrides[d];
        i32[m + 1 + 2 * rank + d] = bStrides[d];
      }
      ex.binary(BINARY_CODES[op], pa - aLo * 4, pb - bLo * 4, po, pm);
      get(po, out, 0, n);
    },

    reduce(op, x, outer, len, inner, out) {
      const n = outer * len * inner;
      if (n < T.elementwise) return jsBackend.reduce(op, x, outer, len, inner, out);
      mem.reset();
      const px = mem.alloc(n), po = mem.alloc(outer * inner);
      if (!mem.commit()) return jsBackend.reduce(op, x, outer, len, inner, out);
      put(px, x, 0, n);
      ex.reduce(REDUCE_CODES[op], px, outer, len, inner, po);
      get(po, out, 0, outer * inner);
    },

    softmax(x, outer, len, inner, log, out) {
      const n = outer * len * inner;
      if (n < T.elementwise) return jsBackend.softmax(x, outer, len, inner, log, out);
      mem.reset();
      const px = mem.alloc(n), po = mem.alloc(n);
      if (!mem.commit()) return jsBackend.softmax(x, outer, len, inner, log, out);
      put(px, x, 0, n);
      ex.softmax(px, outer, len, inner, log ? 1 : 0, po);
      get(po, out, 0, n);
    },

    gemm(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc, epi) {
      if (M * N * K < T.gemm) return jsBackend.gemm(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc, epi);
      const na = transA ? extent(K, M, lda) : extent(M, K, lda);
      const nb = transB ? extent(N, K, ldb) : extent(K, N, ldb);
      const nc = extent(M, N, ldc);
      mem.reset();
      const pa = mem.alloc(na), pb = mem.alloc(nb), pc = mem.alloc(nc);
      if (!mem.commit()) return jsBackend.gemm(transA, transB, M, N, K, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc, epi);
      put(pa, A, aOff, na);
      put(pb, B, bOff, nb);
      // C comes in when accumulating, or when its rows have gaps that the copy back
      // must preserve.
      if (beta !== 0 || ldc !== N) put(pc, C, cOff, nc);
      ex.gemm(transA ? 1 : 0, transB ? 1 : 0, M, N, K, pa, lda, pb, ldb, beta, pc, ldc);
      get(pc, C, cOff, nc);
      // (The module has no epilogue: a JS pass after the product.)
      if (epi) gemmEpilogue(C, cOff, ldc, M, N, epi);
    },

    gemmBatched(transA, transB, batch, M, N, K, A, aOff, aStride, lda, B, bOff, bStride, ldb, beta, C, cOff, cStride, ldc) {
      // (The module runs one thread: the items one after another.)
      for (let i = 0; i < batch; i++) {
        overrides.gemm!(transA, transB, M, N, K, A, aOff + i * aStride, lda, B, bOff + i * bStride, ldb, beta, C, cOff + i * cStride, ldc);
      }
    },

    im2col(x, xOff, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols) {
      const nc = C * kh * kw * oh * ow, nx = C * H * W;
      if (nc < T.elementwise) return jsBackend.im2col(x, xOff, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols);
      mem.reset();
      const px = mem.alloc(nx), pc = mem.alloc(nc);
      if (!mem.commit()) return jsBackend.im2col(x, xOff, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols);
      put(px, x, xOff, nx);
      ex.im2col(px, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, pc);
      get(pc, cols, 0, nc);
    },

    col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x, xOff) {
      const nc = C * kh * kw * oh * ow, nx = C * H * W;
      if (nc < T.elementwise) return jsBackend.col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x, xOff);
      mem.reset();
      const pc = mem.alloc(nc), px = mem.alloc(nx);
      if (!mem.commit()) return jsBackend.col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x, xOff);
      put(pc, cols, 0, nc);
      put(px, x, xOff, nx);
      ex.col2im(pc, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, px);
      get(px, x, xOff, nx);
    },

    adam(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled, step) {
      if (n < T.elementwise) return jsBackend.adam(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled, step);
      mem.reset();
      const pp = mem.alloc(n), pg = mem.alloc(n), pm = mem.alloc(n), pv = mem.alloc(n);
      if (!mem.commit()) return jsBackend.adam(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled, step);
      put(pp, param, 0, n);
      put(pg, grad, 0, n);
      put(pm, m, 0, n);
      put(pv, v, 0, n);
      ex.adam(pp, pg, pm, pv, n, lr, beta1, beta2, eps, weightDecay, decoupled ? 1 : 0, step);
      get(pp, param, 0, n);
      get(pm, m, 0, n);
      get(pv, v, 0, n);
    },

    normRows(x, R, N, eps, y, rstd) {
      const n = R * N;
      if (n < T.elementwise || N < 1) return jsBackend.normRows(x, R, N, eps, y, rstd);
      mem.reset();
      const px = mem.alloc(n), py = mem.alloc(n), pr = mem.alloc(R);
      if (!mem.commit()) return jsBackend.normRows(x, R, N, eps, y, rstd);
      put(px, x, 0, n);
      ex.norm_rows(px, R, N, eps, py, pr);
      get(py, y, 0, n);
      get(pr, rstd, 0, R);
    },

    normRowsBackward(y, rstd, g, R, N, dx) {
      const n = R * N;
      if (n < T.elementwise || N < 1) return jsBackend.normRowsBackward(y, rstd, g, R, N, dx);
      mem.reset();
      const py = mem.alloc(n), pr = mem.alloc(R), pg = mem.alloc(n), pd = mem.alloc(n);
      if (!mem.commit()) return jsBackend.normRowsBackward(y, rstd, g, R, N, dx);
      put(py, y, 0, n);
      put(pr, rstd, 0, R);
      put(pg, g, 0, n);
      ex.norm_rows_backward(py, pr, pg, R, N, pd);
      get(pd, dx, 0, n);
    },

    lstmCell(gates, c, B, H, h2, c2, act) {
      const n = B * H;
      if (n < T.cell) return jsBackend.lstmCell(gates, c, B, H, h2, c2, act);
      mem.reset();
      const pg = mem.alloc(4 * n), pc = mem.alloc(n), ph = mem.alloc(n), pc2 = mem.alloc(n), pa = mem.alloc(5 * n);
      if (!mem.commit()) return jsBackend.lstmCell(gates, c, B, H, h2, c2, act);
      put(pg, gates, 0, 4 * n);
      put(pc, c, 0, n);
      ex.lstm_cell(pg, pc, B, H, ph, pc2, pa);
      get(ph, h2, 0, n);
      get(pc2, c2, 0, n);
      get(pa, act, 0, 5 * n);
    },

    lstmCellBackward(act, c, dh, dc2, B, H, dgates, dc) {
      const n = B * H;
      if (n < T.cell) return jsBackend.lstmCellBackward(act, c, dh, dc2, B, H, dgates, dc);
      mem.reset();
      const pa = mem.alloc(5 * n), pc = mem.alloc(n), pdh = mem.alloc(n), pdc2 = mem.alloc(n), pdg = mem.alloc(4 * n), pdc = mem.alloc(n);
      if (!mem.commit()) return jsBackend.lstmCellBackward(act, c, dh, dc2, B, H, dgates, dc);
      put(pa, act, 0, 5 * n);
      put(pc, c, 0, n);
      put(pdh, dh, 0, n);
      put(pdc2, dc2, 0, n);
      ex.lstm_cell_backward(pa, pc, pdh, pdc2, B, H, pdg, pdc);
      get(pdg, dgates, 0, 4 * n);
      get(pdc, dc, 0, n);
    },

    gruCell(gi, gh, h, B, H, h2, act) {
      const n = B * H;
      if (n < T.cell) return jsBackend.gruCell(gi, gh, h, B, H, h2, act);
      mem.reset();
      const pgi = mem.alloc(3 * n), pgh = mem.alloc(3 * n), ph = mem.alloc(n), ph2 = mem.alloc(n), pa = mem.alloc(4 * n);
      if (!mem.commit()) return jsBackend.gruCell(gi, gh, h, B, H, h2, act);
      put(pgi, gi, 0, 3 * n);
      put(pgh, gh, 0, 3 * n);
      put(ph, h, 0, n);
      ex.gru_cell(pgi, pgh, ph, B, H, ph2, pa);
      get(ph2, h2, 0, n);
      get(pa, act, 0, 4 * n);
    },

    gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh) {
      const n = B * H;
      if (n < T.cell) return jsBackend.gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh);
      mem.reset();
      const pa = mem.alloc(4 * n), ph = mem.alloc(n), pd = mem.alloc(n), pgi = mem.alloc(3 * n), pgh = mem.alloc(3 * n), pdh = mem.alloc(n);
      if (!mem.commit()) return jsBackend.gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh);
      put(pa, act, 0, 4 * n);
      put(ph, h, 0, n);
      put(pd, dh2, 0, n);
      ex.gru_cell_backward(pa, ph, pd, B, H, pgi, pgh, pdh);
      get(pgi, dgi, 0, 3 * n);
      get(pgh, dgh, 0, 3 * n);
      get(pdh, dh, 0, n);
    },

    attention(q, k, v, mask, maskStride, BH, L, S, D, Dv, scale, causalOffset, out, p, layout) {
      if (BH * L * S * (D + Dv) < T.attention) return jsBackend.attention(q, k, v, mask, maskStride, BH, L, S, D, Dv, scale, causalOffset, out, p, layout);
      if (layout) {
        // The wasm kernel reads contiguous heads: copy them out and the result back.
        const o = new Float32Array(BH * L * Dv);
        overrides.attention!(packHeads(q, layout, 0, BH, L, D), packHeads(k, layout, 1, BH, S, D), packHeads(v, layout, 2, BH, S, Dv),
          mask, maskStride, BH, L, S, D, Dv, scale, causalOffset, o, p, null);
        unpackHeads(o, out, layout, 3, BH, L, Dv);
        return;
      }
      const nm = mask ? (BH - 1) * maskStride + L * S : 0;
      mem.reset();
      const pq = mem.alloc(BH * L * D), pk = mem.alloc(BH * S * D), pv = mem.alloc(BH * S * Dv), pm = mem.alloc(nm);
      const po = mem.alloc(BH * L * Dv), pp = mem.alloc(BH * L * S);
      if (!mem.commit()) return jsBackend.attention(q, k, v, mask, maskStride, BH, L, S, D, Dv, scale, causalOffset, out, p);
      put(pq, q, 0, BH * L * D);
      put(pk, k, 0, BH * S * D);
      put(pv, v, 0, BH * S * Dv);
      if (mask) put(pm, mask, 0, nm);
      ex.attention(pq, pk, pv, mask ? pm : 0, maskStride, BH, L, S, D, Dv, scale, causalOffset, po, pp);
      get(po, out, 0, BH * L * Dv);
      get(pp, p, 0, BH * L * S);
    },

    attentionBackward(q, k, v, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv, layout) {
      if (BH * L * S * (D + Dv) < T.attention) return jsBackend.attentionBackward(q, k, v, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv, layout);
      if (layout) {
        const g = (x: Float32Array | null, n: number): Float32Array | null => x && new Float32Array(n);
        const cq = g(dq, BH * L * D), ck = g(dk, BH * S * D), cv = g(dv, BH * S * Dv);
        overrides.attentionBackward!(packHeads(q, layout, 0, BH, L, D), packHeads(k, layout, 1, BH, S, D), packHeads(v, layout, 2, BH, S, Dv),
          p, dout && packHeads(dout, layout, 3, BH, L, Dv), dp, BH, L, S, D, Dv, scale, cq, ck, cv, null);
        if (dq) unpackHeads(cq!, dq, layout, 4, BH, L, D);
        if (dk) unpackHeads(ck!, dk, layout, 5, BH, S, D);
        if (dv && dout) unpackHeads(cv!, dv, layout, 6, BH, S, Dv);
        return;
      }
      const nq = BH * L * D, nk = BH * S * D, nv = BH * S * Dv, np = BH * L * S, no = BH * L * Dv;
      mem.reset();
      const pq = mem.alloc(nq), pk = mem.alloc(nk), pv = mem.alloc(nv), pp = mem.alloc(np);
      const pdo = mem.alloc(dout ? no : 0), pdp = mem.alloc(dp ? np : 0);
      const pdq = mem.alloc(dq ? nq : 0), pdk = mem.alloc(dk ? nk : 0), pdv = mem.alloc(dv ? nv : 0), ps = mem.alloc(np);
      if (!mem.commit()) return jsBackend.attentionBackward(q, k, v, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv);
      put(pq, q, 0, nq);
      put(pk, k, 0, nk);
      put(pv, v, 0, nv);
      put(pp, p, 0, np);
      if (dout) put(pdo, dout, 0, no);
      if (dp) put(pdp, dp, 0, np);
      ex.attention_backward(pq, pk, pv, pp, dout ? pdo : 0, dp ? pdp : 0, BH, L, S, D, Dv, scale, dq ? pdq : 0, dk ? pdk : 0,
        dv && dout ? pdv : 0, ps);
      if (dq) get(pdq, dq, 0, nq);
      if (dk) get(pdk, dk, 0, nk);
      if (dv && dout) get(pdv, dv, 0, nv);
    },
  };
  // Convolutions: im2col + GEMM over this backend's own kernels.
  const be: Backend = { ...jsBackend, name: 'wasm', ...overrides };
  be.conv2dForward = (x, w, bias, g, y) => convForwardVia(be, x, w, bias, g, y);
  be.conv2dBackwardData = (y, w, g, x, overwrite) => convBackwardDataVia(be, y, w, g, x, overwrite);
  be.conv2dBackwardWeight = (x, y, g, dw) => convBackwardWeightVia(be, x, y, g, dw);
  return be;
}
