/**
 * Fused primitives for the hot loops of recurrent and attention models: the pointwise
 * part of an LSTM and a GRU step, and scaled dot-product attention. Each is one kernel
 * (backends: lstmCell, gruCell, attention; native/fused.cpp) in place of a chain of
 * elementwise ops, with a fused backward that works from activations saved in the
 * forward. Formulas as torch.nn.LSTM / torch.nn.GRU (gate orders i,f,g,o and r,z,n,
 * with b_hn inside the reset product) and torch.nn.functional.scaled_dot_product_attention.
 *
 * Double backward: when the gradient itself is being recorded (`grad(...,
 * {createGraph: true})`), the backward closures switch to the same formulas written
 * with differentiable tensor ops, so second derivatives stay correct (WGAN-GP through
 * a recurrent critic). The composites in src/nn/rnn.ts and src/nn/attention.ts are the
 * definitions these are tested against (fused.test.ts).
 */
import { backend } from '../backends/index.js';
import { Tensor, allocF32, emptyF32, fromOp, grad, isGradEnabled, noGrad } from '../tensor.js';
import { ShapeError, fmtShape, shapesEqual } from '../shape.js';
import { add, mul, sub, square, sigmoid, tanh, where, rsqrt } from './elementwise.js';
import { concat, expand, reshape, select, transpose } from './shape_ops.js';
import { matmul } from './matmul.js';
import { softmax, sum, sumTo } from './reduce.js';
import { arange } from '../creation.js';
import { gt } from './elementwise.js';

/**
 * Activations of a forward made without autograd go to one reused buffer (they are
 * never read after the op returns; memory.ts shares it).
 */
let scratch = new Float32Array(0);
export function saveBuffer(n: number, keep: boolean): Float32Array {
  if (keep) return allocF32(n);
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch.subarray(0, n);
}

/** Whether an op on these inputs records a graph. */
export function recording(inputs: Tensor[]): boolean {
  if (!isGradEnabled()) return false;
  for (const t of inputs) if (t.requiresGrad) return true;
  return false;
}

/**
 * The pointwise LSTM step: gates [..., 4H] = W_ih x + b_ih + W_hh h + b_hh (order i, f,
 * g, o), c [..., H] -> [h', c'] with c' = sigmoid(f) c + sigmoid(i) tanh(g) and
 * h' = sigmoid(o) tanh(c').
 * @example
 * const [h2, c2] = lstmCell(gi.add(linear(h, wHh, bHh)), c);
 */
export function lstmCell(gates: Tensor, c: Tensor): [Tensor, Tensor] {
  const H = c.shape[c.rank - 1];
  if (c.rank < 1 || gates.rank !== c.rank || !shapesEqual(gates.shape.slice(0, -1), c.shape.slice(0, -1)) || gates.shape[gates.rank - 1] !== 4 * H) {
    throw new ShapeError(`lstmCell: gates ${fmtShape(gates.shape)} should be [..., 4H] for c ${fmtShape(c.shape)} [..., H]`);
  }
  const n = c.size;
  const B = H > 0 ? n / H : 0;
  const gv = gates.f32('lstmCell');
  const cv = c.f32('lstmCell');
  const keep = recording([gates, c]);
  const out = allocF32(2 * n); // h' then c'
  const act = saveBuffer(5 * n, keep);
  backend().lstmCell(gv, cv, B, H, out.subarray(0, n), out.subarray(n), act);
  const y = fromOp('lstmCell', out, [2, ...c.shape], [gates, c], (g) => {
    if (isGradEnabled()) return lstmCellGradOps(gates, c, g);
    const gg = g.f32('lstmCell backward');
    const dg = allocF32(4 * n);
    const dc = allocF32(n);
    backend().lstmCellBackward(act, cv, gg.subarray(0, n), gg.subarray(n), B, H, dg, dc);
    return [new Tensor(dg, gates.shape), c.requiresGrad ? new Tensor(dc, c.shape) : null];
  });
  return [select(y, 0, 0), select(y, 0, 1)];
}

/** lstmCell's gradient with differentiable ops (for createGraph). g: [2, B, H]. */
function lstmCellGradOps(gates: Tensor, c: Tensor, g: Tensor): [Tensor, Tensor] {
  const [ai, af, ag, ao] = gates.chunk(4, -1);
  const i = sigmoid(ai), f = sigmoid(af), gt_ = tanh(ag), o = sigmoid(ao);
  const tc = tanh(add(mul(f, c), mul(i, gt_)));
  const dh = select(g, 0, 0), dc2 = select(g, 0, 1);
  const dct = add(dc2, mul(mul(dh, o), sub(1, square(tc))));
  const dsig = (s: Tensor): Tensor => mul(s, sub(1, s));
  const dgates = concat([
    mul(mul(dct, gt_), dsig(i)),
    mul(mul(dct, c), dsig(f)),
    mul(mul(dct, i), sub(1, square(gt_))),
    mul(mul(dh, tc), dsig(o)),
  ], -1);
  return [dgates, mul(dct, f)];
}

/**
 * The pointwise GRU step: gi = W_ih x + b_ih and gh = W_hh h + b_hh [..., 3H] (order r,
 * z, n), h [..., H] -> h' = (1 - z) n + z h, n = tanh(gi_n + r gh_n).
 * @example
 * const h2 = gruCell(gi, linear(h, wHh, bHh), h);
 */
export function gruCell(gi: Tensor, gh: Tensor, h: Tensor): Tensor {
  const H = h.shape[h.rank - 1];
  if (h.rank < 1 || !shapesEqual(gi.shape, gh.shape) || gi.rank !== h.rank || !shapesEqual(gi.shape.slice(0, -1), h.shape.slice(0, -1)) ||
    gi.shape[gi.rank - 1] !== 3 * H) {
    throw new ShapeError(`gruCell: gi ${fmtShape(gi.shape)} and gh ${fmtShape(gh.shape)} should be [..., 3H] for h ${fmtShape(h.shape)} [..., H]`);
  }
  const n = h.size;
  const B = H > 0 ? n / H : 0;
  const hv = h.f32('gruCell');
  const keep = recording([gi, gh, h]);
  const out = allocF32(n);
  const act = saveBuffer(4 * n, keep);
  backend().gruCell(gi.f32('gruCell'), gh.f32('gruCell'), hv, B, H, out, act);
  return fromOp('gruCell', out, h.shape, [gi, gh, h], (g) => {
    if (isGradEnabled()) return gruCellGradOps(gi, gh, h, g);
    const dgi = allocF32(3 * n);
    const dgh = allocF32(3 * n);
    const dh = allocF32(n);
    backend().gruCellBackward(act, hv, g.f32('gruCell backward'), B, H, dgi, dgh, dh);
    return [
      gi.requiresGrad ? new Tensor(dgi, gi.shape) : null,
      gh.requiresGrad ? new Tensor(dgh, gh.shape) : null,
      h.requiresGrad ? new Tensor(dh, h.shape) : null,
    ];
  });
}

/** gruCell's gradient with differentiable ops (for createGraph). */
function gruCellGradOps(gi: Tensor, gh: Tensor, h: Tensor, g: Tensor): [Tensor, Tensor, Tensor] {
  const [ri, zi, ni] = gi.chunk(3, -1);
  const [rh, zh, nh] = gh.chunk(3, -1);
  const r = sigmoid(add(ri, rh));
  const z = sigmoid(add(zi, zh));
  const nn = tanh(add(ni, mul(r, nh)));
  const dn = mul(mul(g, sub(1, z)), sub(1, square(nn)));
  const dz = mul(mul(g, sub(h, nn)), mul(z, sub(1, z)));
  const dr = mul(mul(dn, nh), mul(r, sub(1, r)));
  return [concat([dr, dz, dn], -1), concat([dr, dz, mul(dn, r)], -1), mul(g, z)];
}

export interface FusedAttentionOptions {
  /** Multiplies q k^T (default 1 / sqrt(D)). */
  scale?: number;
  /**
   * Causal masking: key j is blocked for query i when j > i + causalOffset (the offset is
   * the number of positions already cached, S - L for self-attention). null: none.
   */
  causalOffset?: number | null;
  /** Additive float mask broadcasting to [..., L, S] (-Infinity blocks); no gradient. */
  mask?: Tensor | null;
}

/**
 * Whether `attention` can take these operands: float32, equal batch dimensions, and a
 * mask that is float32, broadcasts to [..., L, S] and needs no gradient.
 */
export function canFuseAttention(q: Tensor, k: Tensor, v: Tensor, mask?: Tensor | null): boolean {
  if (q.dtype !== 'float32' || k.dtype !== 'float32' || v.dtype !== 'float32') return false;
  if (q.rank < 2 || k.rank !== q.rank || v.rank !== q.rank) return false;
  for (let d = 0; d < q.rank - 2; d++) if (q.shape[d] !== k.shape[d] || q.shape[d] !== v.shape[d]) return false;
  if (k.shape[k.rank - 1] !== q.shape[q.rank - 1] || v.shape[v.rank - 2] !== k.shape[k.rank - 2]) return false;
  if (mask) {
    if (mask.dtype !== 'float32' || mask.requiresGrad || mask.rank > q.rank) return false;
    const L = q.shape[q.rank - 2], S = k.shape[k.rank - 2];
    const full = [...q.shape.slice(0, -2), L, S];
    const off = full.length - mask.rank;
    for (let d = 0; d < mask.rank; d++) if (mask.shape[d] !== 1 && mask.shape[d] !== full[off + d]) return false;
  }
  return true;
}

/**
 * softmax(scale q k^T + mask) v in one primitive per batch*head, on q [..., L, D],
 * k [..., S, D], v [..., S, Dv] (same batch dims). Returns [out [..., L, Dv], weights
 * [..., L, S]]; both carry gradients (to q, k, v and to q, k).
 * @example
 * const [y, w] = attention(q, k, v, { causalOffset: 0 }); // causal self-attention
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: FusedAttentionOptions = {}): [Tensor, Tensor] {
  const mask = opts.mask ?? null;
  if (!canFuseAttention(q, k, v, mask)) {
    throw new ShapeError(
      `attention: needs float32 q [..., L, D], k [..., S, D], v [..., S, Dv] with equal batch dims and a float mask without grad ` +
        `broadcasting to [..., L, S]; got q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}` +
        (mask ? `, mask ${mask.dtype} ${fmtShape(mask.shape)}` : ''),
    );
  }
  const r = q.rank;
  const batch = q.shape.slice(0, -2);
  let BH = 1;
  for (const d of batch) BH *= d;
  const L = q.shape[r - 2], D = q.shape[r - 1], S = k.shape[r - 2], Dv = v.shape[r - 1];
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const causal = opts.causalOffset ?? -1;
  if (!Number.isInteger(causal)) throw new RangeError(`attention: causalOffset must be an integer, got ${opts.causalOffset}`);
  // [B, H, rows, cols] operands are read in place through head layouts (backend.ts,
  // attention) when their columns are contiguous: heads split from a projection's
  // [B, T, H * cols] output need no copy. Results (and input gradients) are written
  // [B, rows, H, cols], so merging the heads back is a free view too.
  const heads = r === 4 && [q, k, v].every(inPlace);
  const H = heads ? q.shape[1] : 1;
  const qv = heads ? storage(q) : q.f32('attention'), kv = heads ? storage(k) : k.f32('attention');
  const vv = heads ? storage(v) : v.f32('attention');
  const lq = heads ? layoutOf(q) : contiguous(1, L, D), lk = heads ? layoutOf(k) : contiguous(1, S, D);
  const lv = heads ? layoutOf(v) : contiguous(1, S, Dv);
  // The mask as [L, S] shared by every head, or [BH, L, S].
  let mv: Float32Array | null = null;
  let maskStride = 0;
  if (mask) {
    const shared = mask.shape.slice(0, Math.max(0, mask.rank - 2)).every((d) => d === 1);
    if (shared) {
      const m2 = mask.rank >= 2 ? mask.reshape([mask.shape[mask.rank - 2], mask.shape[mask.rank - 1]]) : mask;
      mv = expand(m2, [L, S]).f32('attention');
    } else {
      mv = expand(mask, [...batch, L, S]).f32('attention');
      maskStride = L * S;
    }
  }
  const out = emptyF32(BH * L * Dv);
  const p = emptyF32(BH * L * S);
  const lo = heads ? interleaved(H, L, Dv) : contiguous(1, L, Dv);
  backend().attention(qv, kv, vv, mv, maskStride, BH, L, S, D, Dv, scale, causal, out, p, heads ? headLayout(H, [lq, lk, lv, lo]) : null);
  // A result written with layout l as a tensor of shape [..., rows, cols].
  const result = (data: Float32Array, shape: readonly number[], l: Layout): Tensor =>
    heads ? new Tensor(data, shape, { strides: [l.sB, l.sH, l.ld, 1] }) : new Tensor(data, shape);
  const grads = (g: Tensor | null, dp: Float32Array | null): (Tensor | null)[] => {
    const gHeads = heads && g !== null && inPlace(g);
    const dout = g === null ? null : gHeads ? storage(g) : g.f32('attention backward');
    const ldo = gHeads ? layoutOf(g!) : contiguous(H, L, Dv);
    const ldq = heads ? interleaved(H, L, D) : lq, ldk = heads ? interleaved(H, S, D) : lk, ldv = heads ? interleaved(H, S, Dv) : lv;
    // Written in full by the kernel (GEMMs with beta = 0).
    const dq = q.requiresGrad ? emptyF32(BH * L * D) : null;
    const dk = k.requiresGrad ? emptyF32(BH * S * D) : null;
    const dv = dout && v.requiresGrad ? emptyF32(BH * S * Dv) : null;
    const lay = heads ? headLayout(H, [lq, lk, lv, ldo, ldq, ldk, ldv]) : null;
    backend().attentionBackward(qv, kv, vv, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv, lay);
    return [dq && result(dq, q.shape, ldq), dk && result(dk, k.shape, ldk), dv && result(dv, v.shape, ldv)];
  };
  const weights = fromOp('attentionWeights', p, [...batch, L, S], [q, k], (g) => {
    if (isGradEnabled()) return attentionGradOps(q, k, null, g, null, scale, causal, mask);
    return grads(null, g.f32('attention backward')).slice(0, 2);
  });
  const y = fromOp('attention', out, [...batch, L, Dv], [q, k, v], (g) => {
    if (isGradEnabled()) return attentionGradOps(q, k, v, null, g, scale, causal, mask);
    return grads(g, null);
  }, heads ? { strides: [lo.sB, lo.sH, lo.ld, 1], offset: 0 } : undefined);
  return [y, weights];
}

/** Where the heads of a [B, H, rows, cols] operand lie (backend.ts, attention). */
interface Layout {
  sB: number;
  sH: number;
  ld: number;
}

/** Whether t [B, H, rows, cols] can be read in place: contiguous columns, no negative or overlapping strides. */
function inPlace(t: Tensor): boolean {
  const [sB, sH, ld, sc] = t.strides;
  return t.dtype === 'float32' && sc === 1 && ld >= t.shape[3] && sH >= 0 && sB >= 0;
}

/** t's storage from its first element. */
function storage(t: Tensor): Float32Array {
  const d = t.data as Float32Array;
  return t.offset === 0 ? d : d.subarray(t.offset);
}

function layoutOf(t: Tensor): Layout {
  return { sB: t.strides[0], sH: t.strides[1], ld: t.strides[2] };
}

/** Contiguous [B, H, rows, cols]. */
function contiguous(H: number, rows: number, cols: number): Layout {
  return { sB: H * rows * cols, sH: rows * cols, ld: cols };
}

/** [B, rows, H, cols] storage seen as [B, H, rows, cols]. */
function interleaved(H: number, rows: number, cols: number): Layout {
  return { sB: rows * H * cols, sH: cols, ld: H * cols };
}

function headLayout(H: number, ls: Layout[]): Int32Array {
  const a = new Int32Array(1 + 3 * ls.length);
  a[0] = H;
  ls.forEach((l, i) => a.set([l.sB, l.sH, l.ld], 1 + 3 * i));
  return a;
}

/** The attention weights with differentiable ops (the composite). */
export function attentionWeightsOps(q: Tensor, k: Tensor, scale: number, causalOffset: number, mask: Tensor | null): Tensor {
  let s = mul(matmul(q, transpose(k, -2, -1)), scale); // (..., L, S)
  if (mask) s = add(s, mask);
  if (causalOffset >= 0) {
    const L = q.shape[q.rank - 2], S = k.shape[k.rank - 2];
    const blocked = gt(arange(0, S).reshape([1, S]), arange(0, L).add(causalOffset).reshape([L, 1]));
    s = where(blocked, -Infinity, s);
  }
  return softmax(s, -1);
}

/** Attention's gradients with differentiable ops (createGraph), from dP and/or dO. */
function attentionGradOps(
  q: Tensor, k: Tensor, v: Tensor | null, dP: Tensor | null, dO: Tensor | null, scale: number, causal: number, mask: Tensor | null,
): (Tensor | null)[] {
  const P = attentionWeightsOps(q, k, scale, causal, mask);
  let dp = dP;
  if (dO && v) {
    const fromOut = matmul(dO, transpose(v, -2, -1));
    dp = dp ? add(dp, fromOut) : fromOut;
  }
  const ds = mul(mul(P, sub(dp!, sum(mul(dp!, P), -1, true))), scale);
  const dq = q.requiresGrad ? matmul(ds, k) : null;
  const dk = k.requiresGrad ? matmul(transpose(ds, -2, -1), q) : null;
  const res: (Tensor | null)[] = [dq, dk];
  if (v) res.push(dO && v.requiresGrad ? sumTo(matmul(transpose(P, -2, -1), dO), v.shape) : null);
  return res;
}

/**
 * A whole LSTM layer direction over time as one primitive (as cuDNN's RNN): gi
 * [T, B, 4H] = W_ih x_t + b_ih for every step, h0, c0 [B, H], wHh [4H, H], bHh [4H] or
 * null; `reverse` runs from t = T-1 down to 0. Returns out [T, B, H] (h of every step,
 * at its time index) and the final [hN, cN]. The backward runs the steps in reverse
 * with the fused cell kernel and forms dW_hh as one GEMM over all T*B rows.
 */
export function lstmSequence(
  gi: Tensor, h0: Tensor, c0: Tensor, wHh: Tensor, bHh: Tensor | null, reverse = false,
): { out: Tensor; hN: Tensor; cN: Tensor } {
  const [T, B, G] = gi.rank === 3 ? gi.shape : [-1, -1, -1];
  const H = h0.shape[h0.rank - 1];
  if (gi.rank !== 3 || G !== 4 * H || !shapesEqual(h0.shape, [B, H]) || !shapesEqual(c0.shape, [B, H]) ||
    !shapesEqual(wHh.shape, [4 * H, H]) || (bHh && !shapesEqual(bHh.shape, [4 * H]))) {
    throw new ShapeError(
      `lstmSequence: expected gi [T, B, 4H], h0 and c0 [B, H], wHh [4H, H], bHh [4H]; got gi ${fmtShape(gi.shape)}, ` +
        `h0 ${fmtShape(h0.shape)}, c0 ${fmtShape(c0.shape)}, wHh ${fmtShape(wHh.shape)}${bHh ? `, bHh ${fmtShape(bHh.shape)}` : ''}`,
    );
  }
  const bk = backend();
  const n = B * H;
  const h0v = h0.f32('lstmSequence'), c0v = c0.f32('lstmSequence'), wv = wHh.f32('lstmSequence');
  const inputs = bHh ? [gi, h0, c0, wHh, bHh] : [gi, h0, c0, wHh];
  const keep = recording(inputs);
  // y: h of every step [T, B, H], then cN [B, H].
  const y = allocF32((T + 1) * n);
  const cAll = keep ? allocF32(T * n) : allocF32(2 * n);
  const act = keep ? allocF32(T * 5 * n) : saveBuffer(5 * n, false);
  // Every step's gates, gi_t + b_hh (+ h_prev W_hh^T below): a buffer of our own, made
  // in one vectorized pass; the steps then accumulate into it in place.
  const gates = bHh ? noGrad(() => add(gi.detach(), bHh.detach())).f32('lstmSequence') : gi.f32('lstmSequence').slice();
  const step = (s: number): number => (reverse ? T - 1 - s : s);
  for (let s = 0; s < T; s++) {
    const t = step(s);
    const hPrev = s === 0 ? h0v : y.subarray(step(s - 1) * n, step(s - 1) * n + n);
    const cPrev = s === 0 ? c0v : keep ? cAll.subarray(step(s - 1) * n, step(s - 1) * n + n) : cAll.subarray(((s - 1) & 1) * n, ((s - 1) & 1) * n + n);
    const cOut = keep ? cAll.subarray(t * n, t * n + n) : cAll.subarray((s & 1) * n, (s & 1) * n + n);
    // gates_t += h_prev W_hh^T
    bk.gemm(false, true, B, 4 * H, H, hPrev, 0, H, wv, 0, H, 1, gates, t * 4 * n, 4 * H);
    bk.lstmCell(gates.subarray(t * 4 * n, (t + 1) * 4 * n), cPrev, B, H, y.subarray(t * n, t * n + n), cOut, keep ? act.subarray(t * 5 * n, (t + 1) * 5 * n) : act);
    if (s === T - 1) y.set(cOut, T * n);
  }
  if (T === 0) {
    y.set(c0v, 0);
  }
  const Y = fromOp('lstmSequence', y, [T + 1, B, H], inputs, (g) => {
    if (isGradEnabled()) return compositeGrads(inputs, g, (xs) => lstmSequenceOps(xs[0], xs[1], xs[2], xs[3], xs[4] ?? null, reverse));
    const gv = g.f32('lstmSequence backward');
    const dgates = emptyF32(T * 4 * n);
    // Two buffers each for d h and d c, swapped every step (one is read, one written).
    let dhNext = new Float32Array(n), dhSpare = new Float32Array(n);
    let dcNext: Float32Array = gv.slice(T * n, T * n + n), dcPrev: Float32Array = new Float32Array(n);
    const dh = new Float32Array(n);
    for (let s = T - 1; s >= 0; s--) {
      const t = step(s);
      const cPrev = s === 0 ? c0v : cAll.subarray(step(s - 1) * n, step(s - 1) * n + n);
      for (let i = 0; i < n; i++) dh[i] = gv[t * n + i] + dhNext[i];
      const dg = dgates.subarray(t * 4 * n, (t + 1) * 4 * n);
      bk.lstmCellBackward(act.subarray(t * 5 * n, (t + 1) * 5 * n), cPrev, dh, dcNext, B, H, dg, dcPrev);
      // d h_prev = dgates_t W_hh
      bk.gemm(false, false, B, H, 4 * H, dg, 0, 4 * H, wv, 0, H, 0, dhSpare, 0, H);
      [dhNext, dhSpare] = [dhSpare, dhNext];
      [dcNext, dcPrev] = [dcPrev, dcNext];
    }
    return [
      gi.requiresGrad ? new Tensor(dgates, gi.shape) : null,
      h0.requiresGrad ? new Tensor(dhNext, h0.shape) : null,
      c0.requiresGrad ? new Tensor(T === 0 ? gv.slice(0, n) : dcNext, c0.shape) : null,
      wHh.requiresGrad ? new Tensor(weightGrad(dgates, y, h0v, T, B, H, 4 * H, reverse), wHh.shape) : null,
      ...(bHh ? [bHh.requiresGrad ? new Tensor(biasGrad(dgates, T * B, 4 * H), bHh.shape) : null] : []),
    ];
  });
  const out = Y.slice(0, 0, T);
  return { out, hN: T > 0 ? select(out, 0, reverse ? 0 : T - 1) : h0, cN: select(Y, 0, T) };
}

/**
 * A whole GRU layer direction over time as one primitive: gi [T, B, 3H] = W_ih x_t +
 * b_ih, h0 [B, H], wHh [3H, H], bHh [3H] or null. Returns out [T, B, H] and hN.
 */
export function gruSequence(gi: Tensor, h0: Tensor, wHh: Tensor, bHh: Tensor | null, reverse = false): { out: Tensor; hN: Tensor } {
  const [T, B, G] = gi.rank === 3 ? gi.shape : [-1, -1, -1];
  const H = h0.shape[h0.rank - 1];
  if (gi.rank !== 3 || G !== 3 * H || !shapesEqual(h0.shape, [B, H]) || !shapesEqual(wHh.shape, [3 * H, H]) ||
    (bHh && !shapesEqual(bHh.shape, [3 * H]))) {
    throw new ShapeError(
      `gruSequence: expected gi [T, B, 3H], h0 [B, H], wHh [3H, H], bHh [3H]; got gi ${fmtShape(gi.shape)}, ` +
        `h0 ${fmtShape(h0.shape)}, wHh ${fmtShape(wHh.shape)}${bHh ? `, bHh ${fmtShape(bHh.shape)}` : ''}`,
    );
  }
  const bk = backend();
  const n = B * H;
  const giv = gi.f32('gruSequence'), h0v = h0.f32('gruSequence'), wv = wHh.f32('gruSequence');
  const bv = bHh ? bHh.f32('gruSequence') : null;
  const inputs = bHh ? [gi, h0, wHh, bHh] : [gi, h0, wHh];
  const keep = recording(inputs);
  const y = allocF32(T * n);
  const act = keep ? allocF32(T * 4 * n) : saveBuffer(4 * n, false);
  const gh = allocF32(3 * n);
  const step = (s: number): number => (reverse ? T - 1 - s : s);
  for (let s = 0; s < T; s++) {
    const t = step(s);
    const hPrev = s === 0 ? h0v : y.subarray(step(s - 1) * n, step(s - 1) * n + n);
    // gh = b_hh + h_prev W_hh^T
    if (bv) for (let b = 0; b < B; b++) gh.set(bv, b * 3 * H);
    bk.gemm(false, true, B, 3 * H, H, hPrev, 0, H, wv, 0, H, bv ? 1 : 0, gh, 0, 3 * H);
    bk.gruCell(giv.subarray(t * 3 * n, (t + 1) * 3 * n), gh, hPrev, B, H, y.subarray(t * n, t * n + n),
      keep ? act.subarray(t * 4 * n, (t + 1) * 4 * n) : act);
  }
  const Y = fromOp('gruSequence', y, [T, B, H], inputs, (g) => {
    if (isGradEnabled()) return compositeGrads(inputs, g, (xs) => gruSequenceOps(xs[0], xs[1], xs[2], xs[3] ?? null, reverse));
    const gv = g.f32('gruSequence backward');
    const dgi = allocF32(T * 3 * n);
    const dgh = allocF32(T * 3 * n);
    let dhNext = new Float32Array(n), dhSpare = new Float32Array(n);
    const dh = new Float32Array(n);
    const dhDirect = new Float32Array(n);
    for (let s = T - 1; s >= 0; s--) {
      const t = step(s);
      const hPrev = s === 0 ? h0v : y.subarray(step(s - 1) * n, step(s - 1) * n + n);
      for (let i = 0; i < n; i++) dh[i] = gv[t * n + i] + dhNext[i];
      const dghT = dgh.subarray(t * 3 * n, (t + 1) * 3 * n);
      bk.gruCellBackward(act.subarray(t * 4 * n, (t + 1) * 4 * n), hPrev, dh, B, H, dgi.subarray(t * 3 * n, (t + 1) * 3 * n), dghT, dhDirect);
      // d h_prev = z * dh (direct) + dgh_t W_hh
      dhSpare.set(dhDirect);
      bk.gemm(false, false, B, H, 3 * H, dghT, 0, 3 * H, wv, 0, H, 1, dhSpare, 0, H);
      [dhNext, dhSpare] = [dhSpare, dhNext];
    }
    return [
      gi.requiresGrad ? new Tensor(dgi, gi.shape) : null,
      h0.requiresGrad ? new Tensor(dhNext, h0.shape) : null,
      wHh.requiresGrad ? new Tensor(weightGrad(dgh, y, h0v, T, B, H, 3 * H, reverse), wHh.shape) : null,
      ...(bHh ? [bHh.requiresGrad ? new Tensor(biasGrad(dgh, T * B, 3 * H), bHh.shape) : null] : []),
    ];
  });
  return { out: Y, hN: T > 0 ? select(Y, 0, reverse ? 0 : T - 1) : h0 };
}

/**
 * dW_hh = sum_t dgates_t^T h_prev(t) [G, H] as two GEMMs: the steps whose h_prev is an
 * earlier output (rows of y shifted by one step), and the first step (h0).
 */
function weightGrad(dg: Float32Array, y: Float32Array, h0: Float32Array, T: number, B: number, H: number, G: number, reverse: boolean): Float32Array {
  const bk = backend();
  const dw = allocF32(G * H);
  if (T === 0) return dw;
  const n = B * H;
  const rows = (T - 1) * B;
  // Forward: step t >= 1 saw y[t-1]. Reverse: step t <= T-2 saw y[t+1].
  if (rows > 0) bk.gemm(true, false, G, H, rows, dg, reverse ? 0 : B * G, G, y, reverse ? n : 0, H, 0, dw, 0, H);
  const first = reverse ? T - 1 : 0;
  bk.gemm(true, false, G, H, B, dg, first * B * G, G, h0, 0, H, rows > 0 ? 1 : 0, dw, 0, H);
  return dw;
}

/** Column sums of a [rows, G] matrix. */
function biasGrad(dg: Float32Array, rows: number, G: number): Float32Array {
  const db = allocF32(G);
  backend().reduce('sum', dg, 1, rows, G, db);
  return db;
}

/**
 * A fused primitive's gradients with differentiable ops (createGraph): rerun the
 * composite it stands for on the inputs and differentiate that (second derivatives).
 */
export function compositeGrads(inputs: Tensor[], g: Tensor, run: (xs: Tensor[]) => Tensor): (Tensor | null)[] {
  const wanted = inputs.filter((t) => t.requiresGrad);
  const gs = grad(run(inputs), wanted, { gradOutputs: [g], createGraph: true, allowUnused: true });
  return inputs.map((t) => (t.requiresGrad ? gs[wanted.indexOf(t)] : null));
}

/** lstmSequence's packed output [T + 1, B, H] step by step with the fused cell (differentiable). */
function lstmSequenceOps(gi: Tensor, h0: Tensor, c0: Tensor, wHh: Tensor, bHh: Tensor | null, reverse: boolean): Tensor {
  const T = gi.shape[0];
  const hs = new Array<Tensor>(T);
  let h = h0, c = c0;
  for (let s = 0; s < T; s++) {
    const t = reverse ? T - 1 - s : s;
    let pre = add(select(gi, 0, t), matmul(h, transpose(wHh, 0, 1)));
    if (bHh) pre = add(pre, bHh);
    [h, c] = lstmCell(pre, c);
    hs[t] = h;
  }
  return concat([...hs.map((x) => x.reshape([1, ...x.shape])), c.reshape([1, ...c.shape])], 0);
}

/** gruSequence's output [T, B, H] step by step with the fused cell (differentiable). */
function gruSequenceOps(gi: Tensor, h0: Tensor, wHh: Tensor, bHh: Tensor | null, reverse: boolean): Tensor {
  const T = gi.shape[0];
  const hs = new Array<Tensor>(T);
  let h = h0;
  for (let s = 0; s < T; s++) {
    const t = reverse ? T - 1 - s : s;
    let gh = matmul(h, transpose(wHh, 0, 1));
    if (bHh) gh = add(gh, bHh);
    h = gruCell(select(gi, 0, t), gh, h);
    hs[t] = h;
  }
  return T > 0 ? concat(hs.map((x) => x.reshape([1, ...x.shape])), 0) : new Tensor(new Float32Array(0), [0, ...h0.shape]);
}

/**
 * (x - mean) / sqrt(var + eps) over the last axis, with the biased variance: the
 * normalising step of torch's layer_norm and group_norm, as one kernel forward and
 * one backward (dx = rstd (g - mean(g) - y mean(g y))).
 * @example
 * const y = normalizeLastAxis(x.reshape([B * T, C]), 1e-5).reshape([B, T, C]).mul(w).add(b);
 */
export function normalizeLastAxis(x: Tensor, eps: number): Tensor {
  if (x.rank < 1 || x.shape[x.rank - 1] < 1) throw new ShapeError(`normalizeLastAxis: needs a non-empty last axis, got ${fmtShape(x.shape)}`);
  const N = x.shape[x.rank - 1];
  const n = x.size;
  const R = n / N;
  const y = emptyF32(n);
  const rstd = emptyF32(R);
  backend().normRows(x.f32('normalizeLastAxis'), R, N, eps, y, rstd);
  return fromOp('normalizeLastAxis', y, x.shape, [x], (g) => {
    if (isGradEnabled()) return [normalizeGradOps(x, g, eps)];
    const dx = emptyF32(n);
    backend().normRowsBackward(y, rstd, g.f32('normalizeLastAxis backward'), R, N, dx);
    return [new Tensor(dx, x.shape)];
  });
}

/** ", weight [..], bias [..]" of the parameters given, for an affine op's error message. */
function paramShapes(weight: Tensor | null, bias: Tensor | null): string {
  return `${weight ? `, weight ${fmtShape(weight.shape)}` : ''}${bias ? `, bias ${fmtShape(bias.shape)}` : ''}`;
}

/** An affine op's inputs: x, then weight and bias where given. */
function withParams(x: Tensor, weight: Tensor | null, bias: Tensor | null): Tensor[] {
  return [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
}

/** The gradients of the weight and bias given ([n] each, null where not wanted), after x's. */
function paramGrads(weight: Tensor | null, bias: Tensor | null, dw: Float32Array | null, db: Float32Array | null, n: number): (Tensor | null)[] {
  return [...(weight ? [dw && new Tensor(dw, [n])] : []), ...(bias ? [db && new Tensor(db, [n])] : [])];
}

/**
 * LayerNorm of the rows of x [R, N] with its affine part, normalizeLastAxis(x) * weight
 * + bias (weight, bias [N] or null), as one kernel forward and one backward. Saves x,
 * the row means and 1/std rather than the normalized rows, so the result is the only
 * new [R, N] array (the composite makes three and its gradient three more).
 * @example
 * const y = layerNormAffine(x.reshape([B * T, C]), ln.weight, ln.bias, 1e-5).reshape([B, T, C]);
 */
export function layerNormAffine(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const op = 'layerNormAffine';
  const N = x.rank === 2 ? x.shape[1] : -1;
  if (N < 1 || (weight && !shapesEqual(weight.shape, [N])) || (bias && !shapesEqual(bias.shape, [N]))) {
    throw new ShapeError(
      `${op}: expected x [R, N] with N >= 1 and weight, bias [N]; got x ${fmtShape(x.shape)}` +
        paramShapes(weight, bias),
    );
  }
  const R = x.shape[0];
  const xv = x.f32(op), wv = weight ? weight.f32(op) : null, bv = bias ? bias.f32(op) : null;
  const y = emptyF32(R * N), mean = emptyF32(R), rstd = emptyF32(R);
  backend().layerNormRows(xv, R, N, eps, wv, bv, y, mean, rstd);
  const inputs = withParams(x, weight, bias);
  return fromOp(op, y, x.shape, inputs, (g) => {
    if (isGradEnabled()) {
      return compositeGrads(inputs, g, (xs) => {
        let out = normalizeLastAxis(xs[0], eps);
        if (weight) out = mul(out, xs[1]);
        return bias ? add(out, xs[xs.length - 1]) : out;
      });
    }
    const dx = x.requiresGrad ? emptyF32(R * N) : null;
    const dw = weight?.requiresGrad ? emptyF32(N) : null;
    const db = bias?.requiresGrad ? emptyF32(N) : null;
    backend().layerNormRowsBackward(xv, mean, rstd, wv, g.f32(`${op} backward`), R, N, dx, dw, db);
    return [dx && new Tensor(dx, x.shape), ...paramGrads(weight, bias, dw, db, N)];
  });
}

/**
 * GroupNorm of x [N, C, ...] in G groups with its affine part and optional SiLU as one
 * kernel each way: forward reads x (each group's row twice, the second time from cache)
 * and writes the result; the backward recomputes the normalised values from x and the
 * saved row statistics. The unfused path (normalizeLastAxis, then channelAffine) writes
 * and reads the normalised tensor in between, both ways. Gradients of gradients go
 * through that path.
 * @example
 * const h = groupNormAffine(x, 8, gn.weight, gn.bias, 1e-5, 'silu');
 */
export function groupNormAffine(
  x: Tensor, G: number, weight: Tensor | null, bias: Tensor | null, eps: number, activation: 'silu' | null = null,
): Tensor {
  const op = 'groupNorm';
  const [N, C] = x.shape;
  if (x.rank < 2 || x.size === 0 || !Number.isInteger(G) || G < 1 || C % G !== 0 ||
      (weight && !shapesEqual(weight.shape, [C])) || (bias && !shapesEqual(bias.shape, [C]))) {
    throw new ShapeError(
      `${op}: expected a non-empty x [N, C, ...] with C divisible by ${G} groups and weight, bias [C]; got x ${fmtShape(x.shape)}` +
        paramShapes(weight, bias),
    );
  }
  if (activation !== null && activation !== 'silu') throw new RangeError(`${op}: activation must be 'silu' or null, got ${JSON.stringify(activation)}`);
  const Cg = C / G, S = x.size / (N * C), act = activation === 'silu' ? 1 : 0;
  const xv = x.f32(op), wv = weight ? weight.f32(op) : null, bv = bias ? bias.f32(op) : null;
  const out = emptyF32(x.size), mean = new Float32Array(N * G), rstd = new Float32Array(N * G);
  const bk = backend();
  bk.groupNormRows(xv, N, G, Cg, S, eps, wv, bv, act, out, mean, rstd);
  const inputs = withParams(x, weight, bias);
  return fromOp(op, out, x.shape, inputs, (g) => {
    if (isGradEnabled()) {
      return compositeGrads(inputs, g, (xs) => {
        const y = reshape(normalizeLastAxis(reshape(xs[0], [N, G, Cg * S]), eps), x.shape);
        return weight || bias || activation ? channelAffine(y, weight ? xs[1] : null, bias ? xs[xs.length - 1] : null, activation) : y;
      });
    }
    const dx = emptyF32(x.size), sums = emptyF32(2 * N * C);
    bk.groupNormRowsBackward(xv, g.f32(`${op} backward`), N, G, Cg, S, mean, rstd, wv, bv, act, dx, sums);
    return affineGrads(x, weight, bias, dx, sums);
  });
}

/**
 * Training-mode BatchNorm of x [N, C, ...] (rank >= 3) with its affine part, as kernels:
 * one pass (over each channel's rows, twice from cache) for the batch mean and biased
 * variance, one channelAffine pass for y = (x - mean) rstd weight + bias, and a
 * backward of three passes (the channel sums of g and of g (x - mean), then dx), where
 * the composite makes about fifteen passes and broadcasts. Returns the statistics for the running averages.
 * Gradients of gradients go through the composite definition.
 * @example
 * const { y, mean, variance } = batchNormTrain(x, bn.weight, bn.bias, 1e-5);
 */
export function batchNormTrain(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number,
): { y: Tensor; mean: Float32Array; variance: Float32Array } {
  const op = 'batchNorm';
  const C = x.rank >= 3 ? x.shape[1] : -1;
  if (C < 1 || x.size === 0 || (weight && !shapesEqual(weight.shape, [C])) || (bias && !shapesEqual(bias.shape, [C]))) {
    throw new ShapeError(
      `${op}: expected a non-empty x [N, C, ...] of rank >= 3 and weight, bias [C]; got x ${fmtShape(x.shape)}` +
        paramShapes(weight, bias),
    );
  }
  const outer = x.shape[0], inner = x.size / (outer * C);
  const xv = x.f32(op), wv = weight ? weight.f32(op) : null, bv = bias ? bias.f32(op) : null;
  const mean = new Float32Array(C), variance = new Float32Array(C), rstd = new Float32Array(C);
  const scale = new Float32Array(C), shift = new Float32Array(C);
  const bk = backend();
  bk.batchNormStats(xv, outer, C, inner, mean, variance);
  for (let c = 0; c < C; c++) {
    rstd[c] = 1 / Math.sqrt(variance[c] + eps);
    scale[c] = rstd[c] * (wv ? wv[c] : 1);
    shift[c] = (bv ? bv[c] : 0) - mean[c] * scale[c];
  }
  const out = emptyF32(x.size);
  bk.channelAffine(xv, outer, C, inner, scale, shift, 0, out);
  const inputs = withParams(x, weight, bias);
  const y = fromOp(op, out, x.shape, inputs, (g) => {
    if (isGradEnabled()) return compositeGrads(inputs, g, (xs) => batchNormOps(xs[0], weight ? xs[1] : null, bias ? xs[xs.length - 1] : null, eps));
    const dx = x.requiresGrad ? emptyF32(x.size) : null;
    const dw = weight?.requiresGrad ? emptyF32(C) : null;
    const db = bias?.requiresGrad ? emptyF32(C) : null;
    bk.batchNormBackward(xv, g.f32(`${op} backward`), outer, C, inner, mean, rstd, wv, dx, dw, db);
    return [dx && new Tensor(dx, x.shape), ...paramGrads(weight, bias, dw, db, C)];
  });
  return { y, mean, variance };
}

/** batchNormTrain's definition in differentiable ops (its gradients of gradients go through it). */
export function batchNormOps(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const axes = [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2)];
  const perChannel = [1, x.shape[1], ...Array<number>(x.rank - 2).fill(1)];
  const d = sub(x, x.mean(axes, true));
  let y = mul(d, rsqrt(add(square(d).mean(axes, true), eps)));
  if (weight) y = mul(y, reshape(weight, perChannel));
  return bias ? add(y, reshape(bias, perChannel)) : y;
}

/**
 * act(x * weight[c] + bias[c]) over the channel axis 1 of x [N, C, ...] in one pass:
 * GroupNorm's (and BatchNorm's) affine part, optionally with the SiLU that follows it in
 * diffusion U-Nets, fused so that the activation is not another pass over memory (and
 * its gradient not two more). weight and bias [C] or null (1 and 0).
 * @example
 * const h = channelAffine(normalized, gamma, beta, 'silu'); // = silu(normalized * gamma + beta)
 */
export function channelAffine(x: Tensor, weight: Tensor | null, bias: Tensor | null, activation: 'silu' | null = null): Tensor {
  const op = 'channelAffine';
  const C = x.rank >= 2 ? x.shape[1] : -1;
  if (C < 1 || (weight && !shapesEqual(weight.shape, [C])) || (bias && !shapesEqual(bias.shape, [C]))) {
    throw new ShapeError(
      `${op}: expected x [N, C, ...] with C >= 1 and weight, bias [C]; got x ${fmtShape(x.shape)}` +
        paramShapes(weight, bias),
    );
  }
  if (activation !== null && activation !== 'silu') throw new RangeError(`${op}: activation must be 'silu' or null, got ${JSON.stringify(activation)}`);
  const outer = x.shape[0], inner = x.size / Math.max(1, outer * C), act = activation === 'silu' ? 1 : 0;
  const xv = x.f32(op), wv = weight ? weight.f32(op) : null, bv = bias ? bias.f32(op) : null;
  const y = emptyF32(x.size);
  backend().channelAffine(xv, outer, C, inner, wv, bv, act, y);
  const inputs = withParams(x, weight, bias);
  return fromOp(op, y, x.shape, inputs, (g) => {
    if (isGradEnabled()) return channelAffineGradOps(x, weight, bias, act, g);
    const dx = emptyF32(x.size);
    const sums = emptyF32(2 * outer * C);
    backend().channelAffineBackward(xv, g.f32(`${op} backward`), outer, C, inner, wv, bv, act, dx, sums);
    return affineGrads(x, weight, bias, dx, sums);
  });
}

/**
 * The gradients of a per-channel affine map's inputs (x, then weight and bias where
 * given) from dx and the kernels' per (n, channel) sums: sums[2 (n C + c)] for the
 * weight, sums[2 (n C + c) + 1] for the bias, summed over n here.
 */
function affineGrads(x: Tensor, weight: Tensor | null, bias: Tensor | null, dx: Float32Array, sums: Float32Array): (Tensor | null)[] {
  const C = x.shape[1];
  const dw = weight?.requiresGrad ? allocF32(C) : null;
  const db = bias?.requiresGrad ? allocF32(C) : null;
  for (let r = 0; r < sums.length / 2; r++) {
    if (dw) dw[r % C] += sums[2 * r];
    if (db) db[r % C] += sums[2 * r + 1];
  }
  return [x.requiresGrad ? new Tensor(dx, x.shape) : null, ...paramGrads(weight, bias, dw, db, C)];
}

/** channelAffine's gradient with differentiable ops (for createGraph). */
function channelAffineGradOps(x: Tensor, weight: Tensor | null, bias: Tensor | null, act: number, g: Tensor): (Tensor | null)[] {
  const C = x.shape[1];
  const bshape = [1, C, ...x.shape.slice(2).map(() => 1)];
  const wr = weight ? reshape(weight, bshape) : null;
  let u = wr ? mul(x, wr) : x;
  if (bias) u = add(u, reshape(bias, bshape));
  let du = g;
  if (act === 1) {
    const s = sigmoid(u);
    du = mul(g, mul(s, add(1, mul(u, sub(1, s)))));
  }
  return [
    x.requiresGrad ? (wr ? mul(du, wr) : du) : null,
    ...(weight ? [weight.requiresGrad ? reshape(sumTo(mul(du, x), bshape), [C]) : null] : []),
    ...(bias ? [bias.requiresGrad ? reshape(sumTo(du, bshape), [C]) : null] : []),
  ];
}

/** normalizeLastAxis's gradient with differentiable ops (for createGraph). */
function normalizeGradOps(x: Tensor, g: Tensor, eps: number): Tensor {
  const N = x.shape[x.rank - 1];
  const xc = sub(x, mul(sum(x, -1, true), 1 / N));
  const rs = rsqrt(add(mul(sum(square(xc), -1, true), 1 / N), eps));
  const y = mul(xc, rs);
  const mg = mul(sum(g, -1, true), 1 / N);
  const mgy = mul(sum(mul(g, y), -1, true), 1 / N);
  return mul(rs, sub(sub(g, mg), mul(y, mgy)));
}
