/**
 * Fused primitives for models with an external memory: Neural Turing Machine addressing
 * (Graves, Wayne & Danihelka 2014, "Neural Turing Machines", arXiv:1410.5401, eqs. 5-9:
 * content weights, interpolation, circular shift, sharpening) and the memory read and
 * erase/add write (eqs. 2-4). An NTM step otherwise issues some thirty small ops per head,
 * each with its autograd node; here each is one kernel (backends: ntmAddress, memoryRead,
 * memoryWrite; native/memory.cpp) with a hand-written backward.
 *
 * Double backward: when the gradient itself is being recorded (createGraph), the
 * backward closures rerun the composite (the *Ops functions below, the definitions the
 * tests compare with) and differentiate it, so second derivatives stay correct.
 */
import { backend } from '../backends/index.js';
import { Tensor, addGradRegion, allocF32, fromOp, isGradEnabled } from '../tensor.js';
import { ShapeError, fmtShape } from '../shape.js';
import { concat } from './shape_ops.js';
import { compositeGrads, saveBuffer, recording } from './fused.js';

/**
 * The memory's gradient: run `kernel` (which adds into its argument) on the sweep's
 * shared gradient buffer of `memory` when there is one (every op reading a memory then
 * adds into one array) and return null; else on a fresh zeroed array, returned as a tensor.
 */
function memoryGrad(memory: Tensor, kernel: (dmem: Float32Array | null) => void): Tensor | null {
  if (!memory.requiresGrad) {
    kernel(null);
    return null;
  }
  if (addGradRegion(memory, kernel)) return null;
  const dmem = allocF32(memory.size);
  kernel(dmem);
  return new Tensor(dmem, memory.shape);
}

function memoryShape(op: string, memory: Tensor): [number, number, number] {
  if (memory.rank !== 3 || memory.dtype !== 'float32') throw new ShapeError(`${op}: memory should be float32 [B, N, M], got ${memory.dtype} ${fmtShape(memory.shape)}`);
  return [memory.shape[0], memory.shape[1], memory.shape[2]];
}

function expectSize(op: string, name: string, t: Tensor, size: number, what: string): void {
  if (t.size !== size || t.dtype !== 'float32') throw new ShapeError(`${op}: ${name} should be float32 ${what}, got ${t.dtype} ${fmtShape(t.shape)}`);
}

/**
 * One head's weighting w_t [B, N] (Graves et al. 2014, eqs. 5-9) from memory [B, N, M],
 * key [B, M], beta [B, 1] (> 0), g [B, 1] in [0, 1], wPrev [B, N], shift [B, 2R + 1]
 * (weights of shifts -R..R) and gamma [B, 1] (>= 1):
 *   w^c = softmax(beta cos(memory(i), key)), w^g = g w^c + (1 - g) wPrev,
 *   w~(i) = sum_k w^g(i - k) shift(k), w = w~^gamma / sum w~^gamma.
 * Norms get 1e-8 under the square root and w~ gets 1e-12 inside the log, as the composite.
 * @example
 * const w = ntmAddressing(memory, key, beta, g, wPrev, shift, gamma); // (B, N)
 */
export function ntmAddressing(memory: Tensor, key: Tensor, beta: Tensor, g: Tensor, wPrev: Tensor, shift: Tensor, gamma: Tensor): Tensor {
  const op = 'ntmAddressing';
  const [B, N, M] = memoryShape(op, memory);
  const S = shift.rank === 2 ? shift.shape[1] : -1;
  expectSize(op, 'key', key, B * M, `[${B}, ${M}]`);
  for (const [name, t] of [['beta', beta], ['g', g], ['gamma', gamma]] as const) expectSize(op, name, t, B, `[${B}, 1]`);
  expectSize(op, 'wPrev', wPrev, B * N, `[${B}, ${N}]`);
  if (S < 1 || S % 2 !== 1 || shift.shape[0] !== B) throw new ShapeError(`${op}: shift should be [${B}, 2R + 1], got ${fmtShape(shift.shape)}`);
  const inputs = [memory, key, beta, g, wPrev, shift, gamma];
  const vs = inputs.map((t) => t.f32(op));
  const keep = recording(inputs);
  const w = allocF32(B * N);
  const act = saveBuffer(B * (5 * N + 1), keep);
  backend().ntmAddress(vs[0], vs[1], vs[2], vs[3], vs[4], vs[5], vs[6], B, N, M, S, w, act);
  return fromOp(op, w, [B, N], inputs, (dw) => {
    if (isGradEnabled()) return compositeGrads(inputs, dw, (xs) => ntmAddressingOps(xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], xs[6]));
    const out = [B * M, B, B, B * N, B * S, B].map((n) => allocF32(n));
    const dwv = dw.f32(op);
    const dmem = memoryGrad(memory, (dm) => backend().ntmAddressBackward(vs[0], vs[1], vs[2], vs[3], vs[4], vs[5], vs[6], act, w, dwv,
      B, N, M, S, dm, out[0], out[1], out[2], out[3], out[4], out[5]));
    return [dmem, ...out.map((d, i) => (inputs[i + 1].requiresGrad ? new Tensor(d, inputs[i + 1].shape) : null))];
  });
}

/** ntmAddressing written with differentiable tensor ops (the definition). */
export function ntmAddressingOps(memory: Tensor, key: Tensor, beta: Tensor, g: Tensor, wPrev: Tensor, shift: Tensor, gamma: Tensor): Tensor {
  const [B, N, M] = memory.shape;
  const k = key.reshape([B, M]);
  // 1. Content weights (eqs. 5-6).
  const dot = memory.matmul(k.unsqueeze(2)).squeeze(2); // (B, N)
  const memNorm = memory.square().sum(2).add(1e-8).sqrt(); // (B, N)
  const keyNorm = k.square().sum(1, true).add(1e-8).sqrt(); // (B, 1)
  const wc = dot.div(memNorm.mul(keyNorm)).mul(beta.reshape([B, 1])).softmax(1);
  // 2. Interpolation (eq. 7).
  const gg = g.reshape([B, 1]);
  const wg = wc.mul(gg).add(wPrev.reshape([B, N]).mul(gg.neg().add(1)));
  // 3. Circular shift (eq. 8): roll(w, k)(i) = w(i - k).
  const R = (shift.shape[1] - 1) / 2;
  let ws: Tensor | null = null;
  for (let s = -R; s <= R; s++) {
    const m = ((s % N) + N) % N;
    const rolled = m === 0 ? wg : concat([wg.slice(1, N - m, N), wg.slice(1, 0, N - m)], 1);
    const term = rolled.mul(shift.slice(1, s + R, s + R + 1));
    ws = ws ? ws.add(term) : term;
  }
  // 4. Sharpening (eq. 9).
  const p = ws!.add(1e-12).log().mul(gamma.reshape([B, 1])).exp();
  return p.div(p.sum(1, true));
}

const softplus = (v: number): number => (v > 20 ? v : Math.log1p(Math.exp(v))); // torch's threshold 20
const sigmoid = (v: number): number => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));

/**
 * ntmAddressing from a head's raw outputs, head [B, M + 3 + S] = (key, beta~, g~, shift~,
 * gamma~) (Graves et al. 2014, sec. 3.3.1-3.3.2): beta = softplus(beta~), g =
 * sigmoid(g~), shift = softmax(shift~), gamma = 1 + softplus(gamma~). One autograd node
 * in place of five slices, five activations and the addressing.
 * @example
 * const w = ntmHeadAddressing(memory, proj.slice(1, 0, M + 6), wPrev); // (B, N); shifts -1..1
 */
export function ntmHeadAddressing(memory: Tensor, head: Tensor, wPrev: Tensor): Tensor {
  const op = 'ntmHeadAddressing';
  const [B, N, M] = memoryShape(op, memory);
  const P = head.rank === 2 ? head.shape[1] : -1;
  const S = P - M - 3;
  if (head.rank !== 2 || head.shape[0] !== B || S < 1 || S % 2 !== 1 || head.dtype !== 'float32') {
    throw new ShapeError(`${op}: head should be float32 [${B}, ${M} + 3 + 2R + 1], got ${head.dtype} ${fmtShape(head.shape)}`);
  }
  expectSize(op, 'wPrev', wPrev, B * N, `[${B}, ${N}]`);
  const hv = head.f32(op), mv = memory.f32(op), wpv = wPrev.f32(op);
  // The activations, B (M + 3 + S) numbers: plain loops.
  const key = allocF32(B * M), beta = allocF32(B), g = allocF32(B), gamma = allocF32(B);
  const shift = allocF32(B * S);
  for (let b = 0; b < B; b++) {
    const o = b * P;
    for (let j = 0; j < M; j++) key[b * M + j] = hv[o + j];
    beta[b] = softplus(hv[o + M]);
    g[b] = sigmoid(hv[o + M + 1]);
    let mx = -Infinity;
    for (let k = 0; k < S; k++) mx = Math.max(mx, hv[o + M + 2 + k]);
    let z = 0;
    for (let k = 0; k < S; k++) z += Math.exp(hv[o + M + 2 + k] - mx);
    for (let k = 0; k < S; k++) shift[b * S + k] = Math.exp(hv[o + M + 2 + k] - mx) / z;
    gamma[b] = 1 + softplus(hv[o + M + 2 + S]);
  }
  const inputs = [memory, head, wPrev];
  const keep = recording(inputs);
  const w = allocF32(B * N);
  const act = saveBuffer(B * (5 * N + 1), keep);
  backend().ntmAddress(mv, key, beta, g, wpv, shift, gamma, B, N, M, S, w, act);
  return fromOp(op, w, [B, N], inputs, (dw) => {
    if (isGradEnabled()) return compositeGrads(inputs, dw, (xs) => ntmHeadAddressingOps(xs[0], xs[1], xs[2]));
    const [dkey, dbeta, dg, dwPrev, dshift, dgamma] = [B * M, B, B, B * N, B * S, B].map((n) => allocF32(n));
    const dwv = dw.f32(op);
    const dmem = memoryGrad(memory, (dm) => backend().ntmAddressBackward(mv, key, beta, g, wpv, shift, gamma, act, w, dwv,
      B, N, M, S, dm, dkey, dbeta, dg, dwPrev, dshift, dgamma));
    let dhead: Tensor | null = null;
    if (head.requiresGrad) {
      const dh = allocF32(B * P);
      for (let b = 0; b < B; b++) {
        const o = b * P;
        for (let j = 0; j < M; j++) dh[o + j] = dkey[b * M + j];
        dh[o + M] = hv[o + M] > 20 ? dbeta[b] : dbeta[b] * sigmoid(hv[o + M]);
        dh[o + M + 1] = dg[b] * g[b] * (1 - g[b]);
        let sd = 0;
        for (let k = 0; k < S; k++) sd += dshift[b * S + k] * shift[b * S + k];
        for (let k = 0; k < S; k++) dh[o + M + 2 + k] = shift[b * S + k] * (dshift[b * S + k] - sd);
        const gt = hv[o + M + 2 + S];
        dh[o + M + 2 + S] = gt > 20 ? dgamma[b] : dgamma[b] * sigmoid(gt);
      }
      dhead = new Tensor(dh, head.shape);
    }
    return [dmem, dhead, wPrev.requiresGrad ? new Tensor(dwPrev, wPrev.shape) : null];
  });
}

/** ntmHeadAddressing with differentiable ops. */
export function ntmHeadAddressingOps(memory: Tensor, head: Tensor, wPrev: Tensor): Tensor {
  const M = memory.shape[2];
  const S = head.shape[1] - M - 3;
  const part = (o: number, n: number): Tensor => head.slice(1, o, o + n);
  return ntmAddressingOps(memory, part(0, M), part(M, 1).softplus(), part(M + 1, 1).sigmoid(), wPrev,
    part(M + 2, S).softmax(1), part(M + 2 + S, 1).softplus().add(1));
}

/**
 * Read r [B, M] = sum_i w(i) memory(i) (eq. 2) from memory [B, N, M] and w [B, N].
 * @example
 * const r = memoryRead(memory, w); // (B, M)
 */
export function memoryRead(memory: Tensor, w: Tensor): Tensor {
  const op = 'memoryRead';
  const [B, N, M] = memoryShape(op, memory);
  expectSize(op, 'w', w, B * N, `[${B}, ${N}]`);
  const mv = memory.f32(op), wv = w.f32(op);
  const r = allocF32(B * M);
  backend().memoryRead(mv, wv, B, N, M, r);
  return fromOp(op, r, [B, M], [memory, w], (dr) => {
    if (isGradEnabled()) return compositeGrads([memory, w], dr, (xs) => memoryReadOps(xs[0], xs[1]));
    const dw = allocF32(B * N);
    const drv = dr.f32(op);
    const dmem = memoryGrad(memory, (dm) => backend().memoryReadBackward(mv, wv, drv, B, N, M, dm, dw));
    return [dmem, w.requiresGrad ? new Tensor(dw, w.shape) : null];
  });
}

/** memoryRead with differentiable ops. */
export function memoryReadOps(memory: Tensor, w: Tensor): Tensor {
  const [B, N] = memory.shape;
  return w.reshape([B, 1, N]).matmul(memory).squeeze(1);
}

/**
 * Erase then add (eqs. 3-4): memory [B, N, M], w [B, N], erase e and add a [B, M] ->
 * memory(i) (1 - w(i) e) + w(i) a [B, N, M].
 * @example
 * const m2 = memoryWrite(memory, w, erase, add);
 */
export function memoryWrite(memory: Tensor, w: Tensor, erase: Tensor, add: Tensor): Tensor {
  const op = 'memoryWrite';
  const [B, N, M] = memoryShape(op, memory);
  expectSize(op, 'w', w, B * N, `[${B}, ${N}]`);
  expectSize(op, 'erase', erase, B * M, `[${B}, ${M}]`);
  expectSize(op, 'add', add, B * M, `[${B}, ${M}]`);
  const inputs = [memory, w, erase, add];
  const vs = inputs.map((t) => t.f32(op));
  const out = allocF32(B * N * M);
  backend().memoryWrite(vs[0], vs[1], vs[2], vs[3], B, N, M, out);
  return fromOp(op, out, memory.shape, inputs, (dout) => {
    if (isGradEnabled()) return compositeGrads(inputs, dout, (xs) => memoryWriteOps(xs[0], xs[1], xs[2], xs[3]));
    const dw = allocF32(B * N), de = allocF32(B * M), da = allocF32(B * M);
    const dv = dout.f32(op);
    const dmem = memoryGrad(memory, (dm) => backend().memoryWriteBackward(vs[0], vs[1], vs[2], vs[3], dv, B, N, M, dm, dw, de, da));
    return [dmem, ...[dw, de, da].map((d, i) => (inputs[i + 1].requiresGrad ? new Tensor(d, inputs[i + 1].shape) : null))];
  });
}

/** memoryWrite with differentiable ops. */
export function memoryWriteOps(memory: Tensor, w: Tensor, erase: Tensor, add: Tensor): Tensor {
  const [B, N, M] = memory.shape;
  const wCol = w.reshape([B, N, 1]);
  return memory.mul(wCol.mul(erase.reshape([B, 1, M])).neg().add(1)).add(wCol.mul(add.reshape([B, 1, M])));
}
