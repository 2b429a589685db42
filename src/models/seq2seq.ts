/**
 * Sequence-to-sequence models trained with teacher forcing (cross-entropy on the next
 * target token), for spelling -> phonemes (CMUdict) and the keyword summarisation proxy:
 *
 * - arch 'transformer': Vaswani et al. 2017, "Attention Is All You Need"
 *   (arXiv:1706.03762): encoder self-attention, decoder causal self-attention then
 *   cross-attention, position-wise MLPs; pre-LayerNorm residual blocks (Xiong et al.
 *   2020, arXiv:2002.04745) and learned position embeddings. Decoding caches the
 *   decoder's self-attention keys and values (nn KVCache).
 * - arch 'lstm': an LSTM encoder and an LSTM decoder with attention and input feeding
 *   (Luong, Pham & Manning 2015, arXiv:1508.04025): score 'luong' is the "general"
 *   h_t^T W_a h_s (eq. 8), 'bahdanau' the additive v_a^T tanh(W_1 h_s + W_2 h_t)
 *   (Bahdanau, Cho & Bengio 2015, arXiv:1409.0473, eq. 6, with the current state as
 *   in Luong's "concat"); attentional state h~_t = tanh(W_c [c_t; h_t]) (eq. 5).
 *
 * The model implements TokenModel (src/models/sequence.ts) over the target vocabulary,
 * with the source passed to `startDecoding`, so the decoders of src/sample drive it.
 * `evaluate` decodes the held-out sources greedily and reports sequence accuracy, the
 * token error rate (Levenshtein distance / reference length: the phoneme error rate
 * on CMUdict) and corpus BLEU-4 (Papineni et al. 2002); src/eval/sequence_metrics.ts
 * adds beam-search figures.
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import { concat } from '../engine/ops/shape_ops.js';
import { where } from '../engine/ops/elementwise.js';
import { Module } from '../nn/module.js';
import { Linear, Embedding, Dropout } from '../nn/layers.js';
import { LayerNorm } from '../nn/norm.js';
import { LSTM, LSTMCell } from '../nn/rnn.js';
import { MultiheadAttention, KVCache } from '../nn/attention.js';
import { crossEntropy } from '../nn/losses.js';
import { tokenizerFromJSON } from '../data/tokenizer.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, SampleOptions, Samples } from './contract.js';
import type { DecodeState, StartDecodingOptions, TokenModel } from './sequence.js';
import { registerModel } from './registry.js';
import type { Config } from './registry.js';

export interface Seq2SeqConfig {
  type: 'seq2seq';
  /** 'transformer' or 'lstm' (with attention). */
  arch: string;
  /** LSTM attention score: 'luong' (general, bilinear) or 'bahdanau' (additive). */
  attention: string;
  /** Width of embeddings and of the Transformer's residual stream. */
  dModel: number;
  /** Attention heads (Transformer). */
  nHead: number;
  /** Layers of the encoder and of the decoder. */
  nLayer: number;
  /** LSTM state width (also the attention width). */
  hiddenDim: number;
  /** Dropout in training (residual branches, embeddings). */
  dropout: number;
  /** Label smoothing of the training cross-entropy (Szegedy et al. 2016). */
  labelSmoothing: number;
  /** CMUdict: keep stress digits on vowels (read by the data source). */
  stress: boolean;
  /** Held-out pairs decoded by `evaluate` (0 = all; quick evaluation caps it at 200). */
  evalExamples: number;
}

export const SEQ2SEQ_DEFAULTS: Config = {
  arch: 'transformer', attention: 'luong', dModel: 128, nHead: 4, nLayer: 3, hiddenDim: 256, dropout: 0.1, labelSmoothing: 0, stress: false, evalExamples: 0,
};
export const SEQ2SEQ_CHOICES = { arch: ['transformer', 'lstm'], attention: ['luong', 'bahdanau'] } as const;
export const SEQ2SEQ_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { dModel: 32, nHead: 2, nLayer: 1, hiddenDim: 32, dropout: 0 }, train: { steps: 100, batchSize: 16, lr: 3e-3 } },
  // 2500 steps: ~19 min at the 2.2 steps/s measured on an idle machine (6000 took 45).
  small: { model: { dModel: 128, nHead: 4, nLayer: 2, hiddenDim: 256, dropout: 0.1 }, train: { steps: 2500, batchSize: 64, lr: 1e-3, schedule: 'cosine', warmupSteps: 200, clipNorm: 1, evalEvery: 1250 } },
};

// ---------------------------------------------------------------------------
// Sequence metrics (also used by src/eval/sequence_metrics.ts).

/**
 * Levenshtein distance between two token sequences (insertions, deletions and
 * substitutions each cost 1).
 * @example
 * editDistance([1, 2, 3], [1, 3]); // 1
 */
export function editDistance(a: readonly (number | string)[], b: readonly (number | string)[]): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/**
 * Corpus BLEU (Papineni et al. 2002): geometric mean of the clipped n-gram precisions
 * for n = 1..maxN, summed over the corpus before dividing (eq. 1-2), times the brevity
 * penalty exp(1 - r/c) when the candidates are shorter than the references. One
 * reference per candidate; 0 when some order has no match (no smoothing). In [0, 1].
 * @example
 * corpusBleu([['the', 'cat']], [['the', 'cat']], 2); // 1
 */
export function corpusBleu(candidates: readonly (readonly (number | string)[])[], references: readonly (readonly (number | string)[])[], maxN = 4): number {
  const match = new Array<number>(maxN).fill(0);
  const total = new Array<number>(maxN).fill(0);
  let c = 0;
  let r = 0;
  for (let k = 0; k < candidates.length; k++) {
    const cand = candidates[k];
    const ref = references[k];
    c += cand.length;
    r += ref.length;
    for (let n = 1; n <= maxN; n++) {
      const counts = new Map<string, number>();
      for (let i = 0; i + n <= ref.length; i++) {
        const g = ref.slice(i, i + n).join('\u0001');
        counts.set(g, (counts.get(g) ?? 0) + 1);
      }
      for (let i = 0; i + n <= cand.length; i++) {
        const g = cand.slice(i, i + n).join('\u0001');
        const left = counts.get(g) ?? 0;
        if (left > 0) {
          match[n - 1]++;
          counts.set(g, left - 1);
        }
        total[n - 1]++;
      }
    }
  }
  if (c === 0 || match.some((m, i) => m === 0 || total[i] === 0)) return 0;
  const logP = match.reduce((a, m, i) => a + Math.log(m / total[i]), 0) / maxN;
  const bp = c > r ? 1 : Math.exp(1 - r / c);
  return bp * Math.exp(logP);
}

/** Accuracy, token error rate and BLEU-4 of hypotheses against references (token ids, no specials). */
export function sequenceScores(hyps: readonly number[][], refs: readonly number[][]): { seqAcc: number; ter: number; bleu: number } {
  let exact = 0;
  let edits = 0;
  let len = 0;
  for (let i = 0; i < hyps.length; i++) {
    const e = editDistance(hyps[i], refs[i]);
    edits += e;
    len += refs[i].length;
    if (e === 0) exact++;
  }
  return { seqAcc: exact / Math.max(1, hyps.length), ter: edits / Math.max(1, len), bleu: corpusBleu(hyps, refs) };
}

// ---------------------------------------------------------------------------
// Transformer blocks (pre-LN).

class FeedForward extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(d: number, rng: Rng) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(d, 4 * d, rng));
    this.fc2 = this.registerModule('fc2', new Linear(4 * d, d, rng));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x).gelu());
  }
}

class EncoderLayer extends Module {
  readonly ln1: LayerNorm;
  readonly attn: MultiheadAttention;
  readonly ln2: LayerNorm;
  readonly mlp: FeedForward;
  readonly drop: Dropout;
  constructor(d: number, nHead: number, p: number, rng: Rng) {
    super();
    this.ln1 = this.registerModule('ln1', new LayerNorm(d));
    this.attn = this.registerModule('attn', new MultiheadAttention(d, nHead, rng, { batchFirst: true }));
    this.ln2 = this.registerModule('ln2', new LayerNorm(d));
    this.mlp = this.registerModule('mlp', new FeedForward(d, rng));
    this.drop = this.registerModule('drop', new Dropout(p));
  }
  forward(x: Tensor, srcPad: Tensor, rng?: Rng): Tensor {
    const h = this.ln1.forward(x);
    x = x.add(this.drop.forward(this.attn.forward(h, h, h, { keyPaddingMask: srcPad, needWeights: false })[0], rng));
    return x.add(this.drop.forward(this.mlp.forward(this.ln2.forward(x)), rng));
  }
}

class DecoderLayer extends Module {
  readonly ln1: LayerNorm;
  readonly selfAttn: MultiheadAttention;
  readonly ln2: LayerNorm;
  readonly crossAttn: MultiheadAttention;
  readonly ln3: LayerNorm;
  readonly mlp: FeedForward;
  readonly drop: Dropout;
  constructor(d: number, nHead: number, p: number, rng: Rng) {
    super();
    this.ln1 = this.registerModule('ln1', new LayerNorm(d));
    this.selfAttn = this.registerModule('self_attn', new MultiheadAttention(d, nHead, rng, { batchFirst: true }));
    this.ln2 = this.registerModule('ln2', new LayerNorm(d));
    this.crossAttn = this.registerModule('cross_attn', new MultiheadAttention(d, nHead, rng, { batchFirst: true }));
    this.ln3 = this.registerModule('ln3', new LayerNorm(d));
    this.mlp = this.registerModule('mlp', new FeedForward(d, rng));
    this.drop = this.registerModule('drop', new Dropout(p));
  }
  /** x [B, L, d] new positions; with a cache, self-attention also sees the cached ones. */
  forward(x: Tensor, memory: Tensor, srcPad: Tensor, cache?: KVCache, rng?: Rng): Tensor {
    const h = this.ln1.forward(x);
    x = x.add(this.drop.forward(this.selfAttn.forward(h, h, h, { causal: true, cache, needWeights: false })[0], rng));
    const q = this.ln2.forward(x);
    x = x.add(this.drop.forward(this.crossAttn.forward(q, memory, memory, { keyPaddingMask: srcPad, needWeights: false })[0], rng));
    return x.add(this.drop.forward(this.mlp.forward(this.ln3.forward(x)), rng));
  }
}

// ---------------------------------------------------------------------------
// The model.

/** Incremental decoding state: encoder memory and per-architecture decoder state. */
interface Seq2SeqState extends DecodeState {
  rows: number;
  length: number;
  /** Encoder outputs [rows, S, d] and source padding [rows, S] (1 = pad). */
  memory: Tensor;
  srcPad: Tensor;
  /** Log-probabilities of the next token [rows, V]. */
  logProbs: Tensor;
  /** Transformer: one self-attention cache per decoder layer. */
  caches?: KVCache[];
  /** LSTM: (h, c) per layer, the attentional state h~, and the projected keys. */
  lstm?: { hc: [Tensor, Tensor][]; attnVec: Tensor; keys: Tensor };
}

export class Seq2Seq extends Module implements GenerativeModel, TokenModel {
  readonly type = 'seq2seq';
  readonly config: Seq2SeqConfig;
  readonly tokenizer: Tokenizer;
  readonly sourceTokenizer: Tokenizer;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly maxLength: number;
  private readonly srcLen: number;
  private readonly mods: Record<string, Module> = {};
  private readonly encLayers: EncoderLayer[] = [];
  private readonly decLayers: DecoderLayer[] = [];
  private readonly cells: LSTMCell[] = [];
  /** The Rng of the current training step, for dropout (unset outside `loss`). */
  private stepRng: Rng | undefined;

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(SEQ2SEQ_DEFAULTS as unknown as Seq2SeqConfig), ...(config as unknown as Seq2SeqConfig), type: 'seq2seq' };
    const c = this.config;
    if (!data.tokenizer || !data.targetTokenizer) throw new Error(`seq2seq: data '${data.name}' has no source/target tokenizers (use cmudict or mobydick-keywords)`);
    this.sourceTokenizer = tokenizerFromJSON(data.tokenizer);
    this.tokenizer = tokenizerFromJSON(data.targetTokenizer);
    if (this.tokenizer.bos < 0 || this.tokenizer.eos < 0) throw new Error('seq2seq: the target tokenizer needs <bos> and <eos>');
    this.vocabSize = this.tokenizer.vocabSize;
    this.bosId = this.tokenizer.bos;
    this.eosId = this.tokenizer.eos;
    this.padId = this.tokenizer.pad;
    this.srcLen = data.shape[0];
    this.maxLength = (data.extra?.targetLength as number | undefined) ?? 32;
    const d = c.arch === 'transformer' ? c.dModel : c.hiddenDim;
    if (c.arch === 'transformer' && d % c.nHead !== 0) throw new Error(`seq2seq: dModel ${d} must be divisible by nHead ${c.nHead}`);
    const reg = <M extends Module>(name: string, m: M): M => (this.mods[name] = this.registerModule(name, m));
    reg('src_emb', new Embedding(this.sourceTokenizer.vocabSize, c.dModel, rng));
    reg('tgt_emb', new Embedding(this.vocabSize, c.dModel, rng));
    reg('drop', new Dropout(c.dropout));
    if (c.arch === 'transformer') {
      reg('src_pos', new Embedding(this.srcLen, d, rng));
      reg('tgt_pos', new Embedding(this.maxLength, d, rng));
      for (let i = 0; i < c.nLayer; i++) this.encLayers.push(this.registerModule(`enc${i}`, new EncoderLayer(d, c.nHead, c.dropout, rng)));
      for (let i = 0; i < c.nLayer; i++) this.decLayers.push(this.registerModule(`dec${i}`, new DecoderLayer(d, c.nHead, c.dropout, rng)));
      reg('enc_ln', new LayerNorm(d));
      reg('dec_ln', new LayerNorm(d));
    } else {
      const H = c.hiddenDim;
      reg('encoder', new LSTM(c.dModel, H, rng, { numLayers: c.nLayer, batchFirst: true }));
      reg('bridge', new Linear(H, H, rng));
      for (let i = 0; i < c.nLayer; i++) this.cells.push(this.registerModule(`cell${i}`, new LSTMCell(i === 0 ? c.dModel + H : H, H, rng)));
      if (c.attention === 'bahdanau') {
        reg('attn_src', new Linear(H, H, rng, { bias: false }));
        reg('attn_tgt', new Linear(H, H, rng));
        reg('attn_v', new Linear(H, 1, rng, { bias: false }));
      } else {
        reg('attn_w', new Linear(H, H, rng, { bias: false }));
      }
      reg('attn_out', new Linear(2 * H, H, rng, { bias: false }));
    }
    reg('head', new Linear(d, this.vocabSize, rng));
  }

  private m<T extends Module>(name: string): T {
    return this.mods[name] as T;
  }

  /** Encoder outputs [B, S, d] and the padding mask [B, S] (float32, 1 = pad). */
  encode(src: Tensor): { memory: Tensor; srcPad: Tensor } {
    const S = src.shape[1];
    const srcPad = src.eq(this.sourceTokenizer.pad).toFloat(); // (B, S), 1 = pad
    let x = this.m<Embedding>('src_emb').forward(src); // (B, S, dModel)
    if (this.config.arch === 'transformer') {
      x = x.add(this.m<Embedding>('src_pos').forward(new Tensor(Int32Array.from({ length: S }, (_, i) => i), [S])));
      x = this.m<Dropout>('drop').forward(x, this.stepRng);
      for (const l of this.encLayers) x = l.forward(x, srcPad, this.stepRng);
      return { memory: this.m<LayerNorm>('enc_ln').forward(x), srcPad };
    }
    const [out] = this.m<LSTM>('encoder').forward(this.m<Dropout>('drop').forward(x, this.stepRng)); // (B, S, H)
    return { memory: out, srcPad };
  }

  /** Transformer decoder on target positions [B, L] starting at `offset`: logits [B, L, V]. */
  private decodeTransformer(tgt: Tensor, memory: Tensor, srcPad: Tensor, offset: number, caches?: KVCache[]): Tensor {
    const L = tgt.shape[1];
    if (offset + L > this.maxLength) throw new Error(`seq2seq: target longer than the ${this.maxLength} positions the model has`);
    let x = this.m<Embedding>('tgt_emb').forward(tgt).add(this.m<Embedding>('tgt_pos').forward(new Tensor(Int32Array.from({ length: L }, (_, i) => offset + i), [L])));
    x = this.m<Dropout>('drop').forward(x, this.stepRng);
    this.decLayers.forEach((l, i) => (x = l.forward(x, memory, srcPad, caches?.[i], this.stepRng)));
    return this.m<Linear>('head').forward(this.m<LayerNorm>('dec_ln').forward(x));
  }

  /** Initial LSTM decoder state: h = tanh(W mean_s h_s) in every layer, c = 0, h~ = 0. */
  private lstmInit(memory: Tensor, srcPad: Tensor): NonNullable<Seq2SeqState['lstm']> {
    const [B, , H] = memory.shape;
    const keep = srcPad.eq(0).toFloat().unsqueeze(2); // (B, S, 1)
    const mean = memory.mul(keep).sum(1).div(keep.sum(1).clamp(1, Infinity)); // (B, H)
    const h = this.m<Linear>('bridge').forward(mean).tanh();
    const zero = new Tensor(new Float32Array(B * H), [B, H]);
    const keys = this.config.attention === 'bahdanau' ? this.m<Linear>('attn_src').forward(memory) : this.m<Linear>('attn_w').forward(memory); // (B, S, H)
    return { hc: this.cells.map(() => [h, zero] as [Tensor, Tensor]), attnVec: zero, keys };
  }

  /** One LSTM decoder step with attention: token ids [B] -> logits [B, V] and the new state. */
  private lstmStep(tok: Tensor, st: NonNullable<Seq2SeqState['lstm']>, memory: Tensor, srcPad: Tensor): { logits: Tensor; st: NonNullable<Seq2SeqState['lstm']> } {
    const emb = this.m<Dropout>('drop').forward(this.m<Embedding>('tgt_emb').forward(tok), this.stepRng); // (B, dModel)
    let inp = concat([emb, st.attnVec], 1); // input feeding
    const hc: [Tensor, Tensor][] = [];
    this.cells.forEach((cell, i) => {
      const [h, c] = cell.forward(inp, st.hc[i]);
      hc.push([h, c]);
      inp = h;
    });
    const h = inp; // (B, H)
    let scores: Tensor; // (B, S)
    if (this.config.attention === 'bahdanau') {
      const e = st.keys.add(this.m<Linear>('attn_tgt').forward(h).unsqueeze(1)).tanh(); // (B, S, H)
      scores = this.m<Linear>('attn_v').forward(e).squeeze(2);
    } else {
      scores = st.keys.matmul(h.unsqueeze(2)).squeeze(2);
    }
    const a = where(srcPad.ne(0), -Infinity, scores).softmax(1); // (B, S)
    const ctx = a.unsqueeze(1).matmul(memory).squeeze(1); // (B, H)
    const attnVec = this.m<Linear>('attn_out').forward(concat([ctx, h], 1)).tanh();
    const logits = this.m<Linear>('head').forward(this.m<Dropout>('drop').forward(attnVec, this.stepRng));
    return { logits, st: { hc, attnVec, keys: st.keys } };
  }

  /** Teacher-forced logits [B, U - 1, V] for targets y [B, U] (<bos> ... <eos> <pad>...). */
  forwardLogits(src: Tensor, y: Tensor): Tensor {
    const { memory, srcPad } = this.encode(src);
    const inp = y.slice(1, 0, y.shape[1] - 1);
    if (this.config.arch === 'transformer') return this.decodeTransformer(inp, memory, srcPad, 0);
    let st = this.lstmInit(memory, srcPad);
    const outs: Tensor[] = [];
    for (let t = 0; t < inp.shape[1]; t++) {
      const r = this.lstmStep(inp.index(1, t).contiguous(), st, memory, srcPad);
      outs.push(r.logits.unsqueeze(1));
      st = r.st;
    }
    return concat(outs, 1);
  }

  loss(batch: Batch, rng?: Rng): LossOutput {
    this.stepRng = rng;
    let logits: Tensor;
    try {
      logits = this.forwardLogits(batch.x, batch.y);
    } finally {
      this.stepRng = undefined;
    }
    const target = batch.y.slice(1, 1).contiguous(); // (B, U - 1)
    const V = this.vocabSize;
    const loss = crossEntropy(logits.reshape([-1, V]), target.reshape([-1]), { ignoreIndex: this.padId, labelSmoothing: this.config.labelSmoothing });
    return { loss, metrics: { ce: loss.item() } };
  }

  // --- TokenModel -----------------------------------------------------------

  startDecoding(rows: number, opts: StartDecodingOptions = {}): DecodeState {
    const src = opts.source;
    if (!src || src.shape[0] !== rows) throw new Error(`seq2seq.startDecoding: needs a source of [${rows}, S] token ids`);
    const { memory, srcPad } = this.encode(src);
    let s: Seq2SeqState = { rows, length: 0, memory, srcPad, logProbs: memory };
    if (this.config.arch === 'transformer') s.caches = this.decLayers.map(() => new KVCache());
    else s.lstm = this.lstmInit(memory, srcPad);
    s = this.feed(s, new Int32Array(rows).fill(this.bosId));
    for (const t of opts.prompt ?? []) s = this.feed(s, new Int32Array(rows).fill(t));
    return s;
  }

  nextLogProbs(state: DecodeState): Tensor {
    return (state as Seq2SeqState).logProbs;
  }

  advance(state: DecodeState, tokens: Int32Array, beamIndices?: Int32Array): DecodeState {
    let s = state as Seq2SeqState;
    if (beamIndices) {
      const idx = new Tensor(Int32Array.from(beamIndices), [beamIndices.length]);
      const pick = (t: Tensor): Tensor => t.indexSelect(0, idx);
      s = {
        ...s,
        rows: beamIndices.length,
        memory: pick(s.memory),
        srcPad: pick(s.srcPad),
        caches: s.caches?.map((c) => {
          const n = new KVCache();
          if (c.k && c.v) n.append(pick(c.k), pick(c.v));
          return n;
        }),
        lstm: s.lstm && { hc: s.lstm.hc.map(([h, c]) => [pick(h), pick(c)] as [Tensor, Tensor]), attnVec: pick(s.lstm.attnVec), keys: pick(s.lstm.keys) },
      };
    }
    return this.feed(s, tokens);
  }

  /** Append one token per row and compute the next distribution. */
  private feed(s: Seq2SeqState, tokens: Int32Array): Seq2SeqState {
    const tok = new Tensor(Int32Array.from(tokens), [s.rows]);
    if (this.config.arch === 'transformer') {
      const logits = this.decodeTransformer(tok.reshape([s.rows, 1]), s.memory, s.srcPad, s.length, s.caches);
      return { ...s, length: s.length + 1, logProbs: logits.squeeze(1).logSoftmax(1) };
    }
    const r = this.lstmStep(tok, s.lstm!, s.memory, s.srcPad);
    return { ...s, length: s.length + 1, lstm: r.st, logProbs: r.logits.logSoftmax(1) };
  }

  /** Greedy decoding of sources [B, S]: target ids without <bos>/<eos>, one list per row. */
  greedy(src: Tensor, maxLen = this.maxLength - 1): number[][] {
    return noGrad(() => {
      const B = src.shape[0];
      const out: number[][] = Array.from({ length: B }, () => []);
      const done = new Array<boolean>(B).fill(false);
      let s = this.startDecoding(B, { source: src });
      for (let t = 0; t < maxLen && done.some((d) => !d); t++) {
        const best = this.nextLogProbs(s).argmax(1).i32();
        const toks = Int32Array.from(best);
        for (let b = 0; b < B; b++) {
          if (done[b]) continue;
          if (toks[b] === this.eosId) done[b] = true;
          else out[b].push(toks[b]);
        }
        if (t + 1 < maxLen) s = this.advance(s, toks);
      }
      return out;
    });
  }

  /** Reference target ids of y [B, U] without specials. */
  references(y: Tensor): number[][] {
    const U = y.shape[1];
    const v = y.contiguous().i32();
    return Array.from({ length: y.shape[0] }, (_, b) => Array.from(v.subarray(b * U, (b + 1) * U)).filter((t) => t !== this.padId && t !== this.bosId && t !== this.eosId));
  }

  /** Greedy outputs for the sources of `opts.prompt` (or a fixed list), as text "source -> output". */
  sample(n: number, _rng: Rng, _cond?: Tensor, opts: SampleOptions = {}): Samples {
    return noGrad(() => {
      // Sources from --prompt: for a character-level source each word is one source
      // (spelling -> phonemes), for a word-level source '|' separates sources.
      const charLevel = this.sourceTokenizer.toJSON().kind === 'char';
      const prompt = typeof opts.prompt === 'string' ? opts.prompt : '';
      const given = prompt.split(charLevel ? /[,|\s]+/ : '|').map((w) => w.trim()).filter(Boolean);
      const fallback = charLevel
        ? ['cat', 'machine', 'telephone', 'river', 'genlab', 'quixotic', 'phoneme', 'zebra']
        : ['call me ishmael some years ago never mind how long precisely having little or no money in my purse'];
      const words = given.length > 0 ? given : fallback;
      const srcRows = Array.from({ length: n }, (_, i) => this.sourceTokenizer.encode(words[i % words.length].toLowerCase()).slice(0, this.srcLen));
      const S = Math.min(this.srcLen, Math.max(1, ...srcRows.map((r) => r.length)));
      const src = new Int32Array(srcRows.length * S).fill(Math.max(0, this.sourceTokenizer.pad));
      srcRows.forEach((r, i) => src.set(r.slice(0, S), i * S));
      const hyps = this.greedy(new Tensor(src, [srcRows.length, S]));
      const texts = hyps.map((h, i) => `${this.sourceTokenizer.decode(srcRows[i])} -> ${this.tokenizer.decode(h)}`);
      return { kind: 'text', texts } as Samples;
    });
  }

  /**
   * Greedy decoding of the held-out pairs: sequence accuracy, token error rate (the
   * phoneme error rate on CMUdict), BLEU-4, and the teacher-forced cross-entropy.
   */
  evaluate(test: Batch, _rng: Rng, opts: { quick?: boolean } = {}): Record<string, number> {
    return noGrad(() => {
      let n = test.x.shape[0];
      if (this.config.evalExamples > 0) n = Math.min(n, this.config.evalExamples);
      if (opts.quick) n = Math.min(n, 200);
      const hyps: number[][] = [];
      const refs: number[][] = [];
      let ce = 0;
      for (let i = 0; i < n; i += 256) {
        const j = Math.min(n, i + 256);
        const x = test.x.slice(0, i, j);
        const y = test.y.slice(0, i, j);
        hyps.push(...this.greedy(x));
        refs.push(...this.references(y));
        ce += this.loss({ x, y }).loss.item() * (j - i);
      }
      const s = sequenceScores(hyps, refs);
      return { seqAcc: s.seqAcc, ter: s.ter, bleu: s.bleu, ce: ce / n, examples: n };
    });
  }
}

registerModel({
  type: 'seq2seq',
  description: 'Encoder-decoder (Transformer, or LSTM with Luong/Bahdanau attention) for spelling -> phonemes and other pairs',
  data: ['text', 'sequence'],
  defaultData: 'cmudict',
  defaults: SEQ2SEQ_DEFAULTS,
  presets: SEQ2SEQ_PRESETS,
  choices: SEQ2SEQ_CHOICES,
  create: (config, rng, data) => new Seq2Seq(config, rng, data),
});
