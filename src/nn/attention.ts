/**
 * Multi-head attention as torch.nn.MultiheadAttention (Vaswani et al. 2017, "Attention
 * Is All You Need"; torch/nn/functional.py multi_head_attention_forward), with a
 * key/value cache for incremental (token by token) decoding.
 *
 * Parameters: in_proj_weight [3E, E] (rows: query, key, value projections),
 * in_proj_bias [3E], out_proj.weight [E, E], out_proj.bias [E]; in_proj_weight is
 * xavier-uniform and the biases zero, as torch's _reset_parameters.
 *
 * Masks: `keyPaddingMask` [B, S] is boolean (nonzero = padding, never attended to),
 * whatever its dtype. `attnMask` [L, S] or [B*nh, L, S] is additive when float32 (add
 * -Infinity to block) and boolean when int32 (nonzero = blocked), as torch's float
 * and bool masks. `causal: true` blocks keys after each query's position.
 *
 * The score/softmax/value product runs as one fused primitive (src/engine/ops/fused.ts
 * `attention`: per batch*head a GEMM, the masked softmax and a GEMM, with a fused
 * backward) unless attention dropout is active; `scaledDotProductAttentionComposite`
 * is the unfused definition it is tested against.
 */
import { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import { ShapeError, fmtShape } from '../engine/shape.js';
import { zeros, arange } from '../engine/creation.js';
import { concat } from '../engine/ops/shape_ops.js';
import { gt, ne, maximum, where } from '../engine/ops/elementwise.js';
import { attention as fusedAttention, canFuseAttention } from '../engine/ops/fused.js';
import { Module } from './module.js';
import { Linear, dropout, linear } from './layers.js';
import { xavierUniform_, zeros_ } from './init.js';

/**
 * Projected keys and values of the tokens seen so far, per layer: k, v [B, nh, S, hd].
 * Pass the same cache to every decoding step; each call appends the new tokens.
 * @example
 * const cache = new KVCache();
 * for (const tok of tokens) [y] = mha.forward(tok, tok, tok, { causal: true, cache });
 */
export class KVCache {
  k: Tensor | null = null;
  v: Tensor | null = null;

  /** Number of cached positions. */
  get length(): number {
    return this.k ? this.k.shape[2] : 0;
  }

  /** Append new keys and values [B, nh, S_new, hd]; returns the full k and v. */
  append(k: Tensor, v: Tensor): [Tensor, Tensor] {
    if (this.k && this.v) {
      if (this.k.shape[0] !== k.shape[0] || this.k.shape[1] !== k.shape[1] || this.k.shape[3] !== k.shape[3]) {
        throw new ShapeError(`KVCache.append: new keys ${fmtShape(k.shape)} do not match cached ${fmtShape(this.k.shape)}`);
      }
      this.k = concat([this.k, k], 2);
      this.v = concat([this.v, v], 2);
    } else {
      this.k = k;
      this.v = v;
    }
    return [this.k, this.v!];
  }

  /** Forget every cached position. */
  reset(): void {
    this.k = null;
    this.v = null;
  }
}

export interface AttentionOptions {
  /** Boolean mask (nonzero = blocked): int32; or additive: float32. Broadcasts to [..., L, S]. */
  attnMask?: Tensor | null;
  /** Block key j for query i when j > i + offset (offset = positions already cached). */
  causal?: boolean;
  /** Dropout on the attention weights (training only; needs rng). */
  dropoutP?: number;
  rng?: Rng;
}

/**
 * Causal mask [L, S] (1 = blocked) for L queries that follow `offset` earlier positions:
 * query i sits at position offset + i and may see keys 0..offset + i.
 */
export function causalMask(L: number, S: number, offset = 0): Tensor {
  const qi = arange(0, L).add(offset).reshape([L, 1]);
  const kj = arange(0, S).reshape([1, S]);
  return gt(kj, qi);
}

/**
 * softmax(q k^T / sqrt(d) + mask) v on [..., L, d] x [..., S, d] -> [..., L, d]; also
 * returns the attention weights [..., L, S].
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions & { training?: boolean } = {}): [Tensor, Tensor] {
  const d = q.shape[q.rank - 1];
  const L = q.shape[q.rank - 2];
  const S = k.shape[k.rank - 2];
  const dropping = (opts.dropoutP ?? 0) > 0 && (opts.training ?? true);
  const m = opts.attnMask ? boolToAdditive(opts.attnMask) : null;
  if (!dropping && k.shape[k.rank - 1] === d && canFuseAttention(q, k, v, m)) {
    return fusedAttention(q, k, v, { scale: 1 / Math.sqrt(d), causalOffset: opts.causal ? S - L : null, mask: m });
  }
  return scaledDotProductAttentionComposite(q, k, v, opts);
}

/** A boolean (int32, nonzero = blocked) mask as an additive one; float masks pass through. */
function boolToAdditive(m: Tensor): Tensor {
  return m.dtype === 'int32' ? where(ne(m, 0), -Infinity, 0) : m;
}

/** scaledDotProductAttention with unfused ops (the definition; also the dropout path). */
export function scaledDotProductAttentionComposite(
  q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions & { training?: boolean } = {},
): [Tensor, Tensor] {
  const d = q.shape[q.rank - 1];
  const L = q.shape[q.rank - 2];
  const S = k.shape[k.rank - 2];
  if (k.shape[k.rank - 1] !== d) throw new ShapeError(`scaledDotProductAttention: query ${fmtShape(q.shape)} and key ${fmtShape(k.shape)} head sizes differ`);
  let scores = q.mul(1 / Math.sqrt(d)).matmul(k.transpose(-2, -1)); // (..., L, S)
  if (opts.causal) scores = where(causalMask(L, S, S - L), -Infinity, scores);
  const m = opts.attnMask;
  if (m) scores = m.dtype === 'int32' ? where(ne(m, 0), -Infinity, scores) : scores.add(m);
  let attn = scores.softmax(-1);
  if ((opts.dropoutP ?? 0) > 0 && (opts.training ?? true)) attn = dropout(attn, opts.dropoutP!, opts.rng, true);
  return [attn.matmul(v), attn];
}

export interface MultiheadAttentionOptions {
  /** Biases of the input and output projections (default true). */
  bias?: boolean;
  /** Inputs and outputs as [B, L, E] instead of [L, B, E] (default false, as torch). */
  batchFirst?: boolean;
  /** Dropout on the attention weights in training (default 0). */
  dropout?: number;
}

export interface MultiheadAttentionForwardOptions {
  /** [B, S]: nonzero marks padding keys to ignore. */
  keyPaddingMask?: Tensor | null;
  /** [L, S] or [B*nh, L, S]; float32 additive or int32 boolean (nonzero = blocked). */
  attnMask?: Tensor | null;
  /** Causal self-attention (with a cache: relative to the cached positions). */
  causal?: boolean;
  /** Return attention weights (default true, as torch). */
  needWeights?: boolean;
  /** Average the weights over heads, [B, L, S] (default true); else [B, nh, L, S]. */
  averageAttnWeights?: boolean;
  /**
   * Self-attention decoding cache: key/value are the new tokens only; their projections
   * are appended to the cache and the queries attend to every cached position.
   */
  cache?: KVCache;
  /** Random numbers for attention dropout in training. */
  rng?: Rng;
}

/**
 * Multi-head attention with packed in-projection (torch.nn.MultiheadAttention, kdim =
 * vdim = embedDim).
 * @example
 * const mha = new MultiheadAttention(32, 4, rng, { batchFirst: true });
 * const [y, w] = mha.forward(x, x, x, { causal: true }); // x [B, T, 32]
 */
export class MultiheadAttention extends Module {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly batchFirst: boolean;
  readonly dropout: number;
  inProjWeight: Tensor;
  inProjBias: Tensor | null;
  outProj: Linear;

  constructor(embedDim: number, numHeads: number, rng: Rng, opts: MultiheadAttentionOptions = {}) {
    super();
    if (!Number.isInteger(numHeads) || numHeads < 1 || embedDim % numHeads !== 0) {
      throw new RangeError(`MultiheadAttention: embed_dim ${embedDim} must be divisible by num_heads ${numHeads}`);
    }
    this.embedDim = embedDim;
    this.numHeads = numHeads;
    this.headDim = embedDim / numHeads;
    this.batchFirst = opts.batchFirst ?? false;
    this.dropout = opts.dropout ?? 0;
    const bias = opts.bias ?? true;
    // torch's registration order: in_proj_weight, in_proj_bias, out_proj.
    this.inProjWeight = this.registerParameter('in_proj_weight', zeros([3 * embedDim, embedDim]));
    this.inProjBias = this.registerParameter('in_proj_bias', bias ? zeros([3 * embedDim]) : null);
    this.outProj = this.registerModule('out_proj', new Linear(embedDim, embedDim, rng, { bias }));
    xavierUniform_(this.inProjWeight, rng);
    if (this.outProj.bias) zeros_(this.outProj.bias);
  }

  /**
   * query [L, B, E] (or [B, L, E] when batchFirst, or unbatched [L, E]); key and value
   * [S, B, E] likewise. Returns [output like query, weights or null].
   */
  forward(query: Tensor, key: Tensor, value: Tensor, opts: MultiheadAttentionForwardOptions = {}): [Tensor, Tensor | null] {
    const E = this.embedDim;
    const nh = this.numHeads;
    const hd = this.headDim;
    const name = 'MultiheadAttention';
    const unbatched = query.rank === 2;
    for (const [what, t] of [['query', query], ['key', key], ['value', value]] as const) {
      if (t.rank !== query.rank || (t.rank !== 2 && t.rank !== 3) || t.shape[t.rank - 1] !== E) {
        throw new ShapeError(`${name}: ${what} ${fmtShape(t.shape)} should be ${this.batchFirst ? '[B, L, E]' : '[L, B, E]'} or [L, E] with E = ${E}`);
      }
    }
    // Bring everything to (B, L, E).
    const toBLE = (t: Tensor): Tensor => (unbatched ? t.unsqueeze(0) : this.batchFirst ? t : t.transpose(0, 1));
    const q0 = toBLE(query);
    const k0 = toBLE(key);
    const v0 = toBLE(value);
    const B = q0.shape[0];
    const L = q0.shape[1];
    if (k0.shape[0] !== B || v0.shape[0] !== B || k0.shape[1] !== v0.shape[1]) {
      throw new ShapeError(`${name}: batch or length mismatch between query ${fmtShape(query.shape)}, key ${fmtShape(key.shape)}, value ${fmtShape(value.shape)}`);
    }

    // 1. Input projections (one matmul for self-attention).
    let q: Tensor;
    let k: Tensor;
    let v: Tensor;
    if (query === key && key === value) {
      [q, k, v] = linear(q0, this.inProjWeight, this.inProjBias).chunk(3, -1);
    } else {
      const [wq, wk, wv] = this.inProjWeight.chunk(3, 0);
      const [bq, bk, bv] = this.inProjBias ? this.inProjBias.chunk(3, 0) : [null, null, null];
      q = linear(q0, wq, bq);
      k = linear(k0, wk, bk);
      v = linear(v0, wv, bv);
    }
    const heads = (t: Tensor): Tensor => t.reshape([B, t.shape[1], nh, hd]).transpose(1, 2); // (B, nh, T, hd)
    q = heads(q);
    k = heads(k);
    v = heads(v);

    // 2. Extend the cache: queries attend to every cached position plus the new ones.
    if (opts.cache) [k, v] = opts.cache.append(k, v);
    const S = k.shape[2];

    // 3. Masks, combined into one boolean "blocked" mask and one additive mask.
    const blocks: Tensor[] = []; // 1 = blocked, each broadcasting to (B, nh, L, S)
    let additive: Tensor | null = null;
    const block = (m: Tensor): void => {
      blocks.push(m);
    };
    if (opts.causal) block(causalMask(L, S, S - L)); // (L, S)
    if (opts.keyPaddingMask) {
      const kpm = opts.keyPaddingMask;
      const want = unbatched ? [S] : [B, S];
      if (kpm.rank !== want.length || kpm.shape.some((d, i) => d !== want[i])) {
        throw new ShapeError(`${name}: keyPaddingMask ${fmtShape(kpm.shape)} should be ${fmtShape(want)}`);
      }
      block(ne(kpm, 0).reshape([B, 1, 1, S]));
    }
    if (opts.attnMask) {
      const m = opts.attnMask;
      let m4: Tensor;
      if (m.rank === 2 && m.shape[0] === L && m.shape[1] === S) m4 = m;
      else if (m.rank === 3 && m.shape[0] === B * nh && m.shape[1] === L && m.shape[2] === S) m4 = m.reshape([B, nh, L, S]);
      else throw new ShapeError(`${name}: attnMask ${fmtShape(m.shape)} should be [${L}, ${S}] or [${B * nh}, ${L}, ${S}]`);
      if (m.dtype === 'int32') block(ne(m4, 0));
      else additive = m4;
    }

    // 4. Attention per head: (B, nh, L, hd) x (B, nh, hd, S), fused unless dropping.
    let attn: Tensor;
    let ctxHeads: Tensor; // (B, nh, L, hd)
    const dropping = this.dropout > 0 && this.training;
    // One additive mask: -Infinity where blocked, plus the float mask.
    let addMask: Tensor | null = null;
    if (!dropping) {
      const nonCausal = opts.causal ? blocks.slice(1) : blocks;
      const blocked = nonCausal.length ? nonCausal.reduce((a, b) => maximum(a, b)) : null;
      addMask = blocked ? where(blocked, -Infinity, 0) : null;
      if (additive) addMask = addMask ? addMask.add(additive) : additive;
    }
    if (!dropping && canFuseAttention(q, k, v, addMask)) {
      [ctxHeads, attn] = fusedAttention(q, k, v, { scale: 1 / Math.sqrt(hd), causalOffset: opts.causal ? S - L : null, mask: addMask });
    } else {
      let scores = q.mul(1 / Math.sqrt(hd)).matmul(k.transpose(-2, -1)); // (B, nh, L, S)
      if (additive) scores = scores.add(additive);
      if (blocks.length > 0) scores = where(blocks.reduce((a, b) => maximum(a, b)), -Infinity, scores);
      attn = scores.softmax(-1);
      if (dropping) attn = dropout(attn, this.dropout, opts.rng, true);
      ctxHeads = attn.matmul(v);
    }
    const ctx = ctxHeads.transpose(1, 2).reshape([B, L, E]); // (B, L, E)
    let out = this.outProj.forward(ctx);
    out = unbatched ? out.squeeze(0) : this.batchFirst ? out : out.transpose(0, 1);

    if (!(opts.needWeights ?? true)) return [out, null];
    let w = (opts.averageAttnWeights ?? true) ? attn.mean(1) : attn; // (B, L, S) or (B, nh, L, S)
    if (unbatched) w = w.squeeze(0);
    return [out, w];
  }

  override extraRepr(): string {
    return `embed_dim=${this.embedDim}, num_heads=${this.numHeads}, batch_first=${this.batchFirst}`;
  }
}
