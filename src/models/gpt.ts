/**
 * GPT: a decoder-only Transformer language model (Radford et al. 2018/2019, "Language
 * Models are Unsupervised Multitask Learners"), written after Karpathy's nanoGPT
 * `model.py`: token (+ learned position) embeddings, nLayer pre-LayerNorm blocks of
 * causal self-attention and a GELU MLP (4x), a final LayerNorm, and an output layer
 * tied to the token embedding (Press & Wolf 2017). Rotary position embeddings
 * (Su et al. 2021, "RoFormer", arXiv:2104.09864; the rotate-half form of GPT-NeoX) can
 * replace the learned ones. Initialisation as GPT-2: N(0, 0.02), residual projections
 * N(0, 0.02 / sqrt(2 nLayer)), zero biases.
 *
 * Decoding keeps a key/value cache per layer (implements TokenModel, models/sequence.ts):
 * each step runs one token through the network; beams reorder the cache rows. Past
 * blockSize tokens the context slides: with rotary positions the oldest cached keys are
 * dropped; with learned positions the cache is rebuilt from the last blockSize/2 tokens.
 * State-dict names follow nanoGPT (transformer.wte, transformer.h.0.attn.c_attn, ...).
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { concat } from '../engine/ops/shape_ops.js';
import { Module, ModuleList } from '../nn/module.js';
import { Linear, Embedding, dropout } from '../nn/layers.js';
import { LayerNorm } from '../nn/norm.js';
import { scaledDotProductAttention } from '../nn/attention.js';
import { crossEntropy } from '../nn/losses.js';
import { normal_, zeros_ } from '../nn/init.js';
import { tokenizerFromJSON } from '../data/tokenizer.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, SampleOptions, Samples } from './contract.js';
import { registerModel } from './registry.js';
import type { Config } from './registry.js';
import { ancestralSample, startTokens } from './sequence.js';
import type { DecodeState, StartDecodingOptions, TokenModel } from './sequence.js';

export interface GptConfig {
  type: 'gpt';
  /** Transformer blocks. */
  nLayer: number;
  /** Attention heads per block (dModel must be divisible by it). */
  nHead: number;
  /** Width of the residual stream. */
  dModel: number;
  /** Longest context (tokens); the data's windows are blockSize + 1 wide. */
  blockSize: number;
  /** Dropout on embeddings, attention weights and residual branches (training only). */
  dropout: number;
  /** Biases in the Linear and LayerNorm layers (nanoGPT's `bias`). */
  bias: boolean;
  /** 'learned' absolute position embeddings (GPT-2) or 'rotary' (RoFormer). */
  positions: string;
  /** Tie the output layer to the token embedding. */
  tieWeights: boolean;
  /** Tokenizer the text data source builds: 'char', 'word' or 'bpe'. */
  tokenizer: string;
}

export const GPT_DEFAULTS: Config = {
  nLayer: 4, nHead: 4, dModel: 128, blockSize: 128, dropout: 0.1, bias: true, positions: 'learned', tieWeights: true, tokenizer: 'char',
};

export const GPT_CHOICES = { positions: ['learned', 'rotary'], tokenizer: ['char', 'word', 'bpe'] } as const;

export const GPT_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { nLayer: 2, nHead: 2, dModel: 32, blockSize: 32, dropout: 0 }, train: { steps: 100, batchSize: 16, lr: 3e-3 } },
  // The CPU recipe for Moby-Dick (nanoGPT's shakespeare_char recipe scaled down): AdamW
  // with weight decay, linear warm-up then cosine decay to minLr, gradient clipping,
  // rotary positions, no dropout (under one epoch of data there is little to regularise).
  // Measured on the 2-core machine: ~0.5 s a step, so 1700 steps fit the 15-minute
  // budget with the cosine schedule completing (test loss 1.446 nats/char after 1656
  // steps of a 1900-step schedule); on a busier machine lower train.steps.
  small: {
    model: { nLayer: 4, nHead: 4, dModel: 128, blockSize: 128, dropout: 0, positions: 'rotary' },
    train: {
      steps: 1700, batchSize: 32, lr: 3e-3, optimizer: 'adamw', weightDecay: 0.1, beta2: 0.99,
      schedule: 'cosine', warmupSteps: 100, minLr: 3e-4, clipNorm: 1, logEvery: 50, evalEvery: 500, ckptEvery: 500,
    },
  },
};

/** Per-layer keys and values of the cached positions, each (B, nh, S, hd). */
interface LayerCache {
  k: Tensor | null;
  v: Tensor | null;
}

/** cos/sin tables of rotary embeddings for positions [offset, offset + T): each (T, hd/2). */
class Rotary {
  private cos = new Float32Array(0);
  private sin = new Float32Array(0);
  private len = 0;
  constructor(private readonly headDim: number) {}

  private grow(n: number): void {
    if (n <= this.len) return;
    const half = this.headDim / 2;
    const len = Math.max(n, 2 * this.len);
    this.cos = new Float32Array(len * half);
    this.sin = new Float32Array(len * half);
    for (let p = 0; p < len; p++) {
      for (let i = 0; i < half; i++) {
        const theta = p * Math.pow(10000, (-2 * i) / this.headDim);
        this.cos[p * half + i] = Math.cos(theta);
        this.sin[p * half + i] = Math.sin(theta);
      }
    }
    this.len = len;
  }

  /** Rotate x (B, nh, T, hd) at positions offset..offset+T-1 (rotate-half form). */
  apply(x: Tensor, offset: number): Tensor {
    const T = x.shape[2];
    const half = this.headDim / 2;
    this.grow(offset + T);
    const cos = new Tensor(this.cos.slice(offset * half, (offset + T) * half), [T, half]);
    const sin = new Tensor(this.sin.slice(offset * half, (offset + T) * half), [T, half]);
    const x1 = x.slice(-1, 0, half);
    const x2 = x.slice(-1, half);
    return concat([x1.mul(cos).sub(x2.mul(sin)), x1.mul(sin).add(x2.mul(cos))], -1);
  }
}

class CausalSelfAttention extends Module {
  readonly cAttn: Linear;
  readonly cProj: Linear;
  constructor(private readonly cfg: GptConfig, private readonly rotary: Rotary | null, rng: Rng) {
    super();
    this.cAttn = this.registerModule('c_attn', new Linear(cfg.dModel, 3 * cfg.dModel, rng, { bias: cfg.bias }));
    this.cProj = this.registerModule('c_proj', new Linear(cfg.dModel, cfg.dModel, rng, { bias: cfg.bias }));
  }

  /** x (B, T, C); `pos` is the position of x's first token; `cache` is extended in place. */
  forward(x: Tensor, pos: number, cache: LayerCache | null, rng: Rng | undefined): Tensor {
    const [B, T, C] = x.shape;
    const nh = this.cfg.nHead;
    const hd = C / nh;
    const heads = (t: Tensor): Tensor => t.reshape([B, T, nh, hd]).transpose(1, 2); // (B, nh, T, hd)
    const [q0, k0, v0] = this.cAttn.forward(x).chunk(3, -1);
    let q = heads(q0);
    let k = heads(k0);
    let v = heads(v0);
    if (this.rotary) {
      q = this.rotary.apply(q, pos);
      k = this.rotary.apply(k, pos);
    }
    if (cache) {
      if (cache.k && cache.v) {
        k = concat([cache.k, k], 2);
        v = concat([cache.v, v], 2);
      }
      cache.k = k;
      cache.v = v;
    }
    // softmax(q k^T / sqrt(hd)) v, query i seeing keys up to its own position (the
    // fused kernel when there is no attention dropout).
    const [att] = scaledDotProductAttention(q, k, v, { causal: true, dropoutP: this.cfg.dropout, rng, training: this.training });
    const y = att.transpose(1, 2).reshape([B, T, C]); // (B, T, C)
    return this.cProj.forward(y);
  }
}

class Mlp extends Module {
  readonly cFc: Linear;
  readonly cProj: Linear;
  constructor(cfg: GptConfig, rng: Rng) {
    super();
    this.cFc = this.registerModule('c_fc', new Linear(cfg.dModel, 4 * cfg.dModel, rng, { bias: cfg.bias }));
    this.cProj = this.registerModule('c_proj', new Linear(4 * cfg.dModel, cfg.dModel, rng, { bias: cfg.bias }));
  }
  forward(x: Tensor): Tensor {
    return this.cProj.forward(this.cFc.forward(x).gelu());
  }
}

class Block extends Module {
  readonly ln1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln2: LayerNorm;
  readonly mlp: Mlp;
  constructor(private readonly cfg: GptConfig, rotary: Rotary | null, rng: Rng) {
    super();
    this.ln1 = this.registerModule('ln_1', new LayerNorm(cfg.dModel, { bias: cfg.bias }));
    this.attn = this.registerModule('attn', new CausalSelfAttention(cfg, rotary, rng));
    this.ln2 = this.registerModule('ln_2', new LayerNorm(cfg.dModel, { bias: cfg.bias }));
    this.mlp = this.registerModule('mlp', new Mlp(cfg, rng));
  }
  forward(x: Tensor, pos: number, cache: LayerCache | null, rng: Rng | undefined): Tensor {
    const p = this.training ? this.cfg.dropout : 0;
    const drop = (t: Tensor): Tensor => (p > 0 ? dropout(t, p, rng, true) : t);
    x = x.add(drop(this.attn.forward(this.ln1.forward(x), pos, cache, rng)));
    return x.add(drop(this.mlp.forward(this.ln2.forward(x))));
  }
}

/** nanoGPT's `transformer` ModuleDict: wte, wpe, h, ln_f. */
class Trunk extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding | null;
  readonly h: ModuleList<Block>;
  readonly lnF: LayerNorm;
  constructor(cfg: GptConfig, vocabSize: number, rotary: Rotary | null, rng: Rng) {
    super();
    this.wte = this.registerModule('wte', new Embedding(vocabSize, cfg.dModel, rng));
    this.wpe = this.registerModule('wpe', cfg.positions === 'learned' ? new Embedding(cfg.blockSize, cfg.dModel, rng) : null);
    this.h = this.registerModule('h', new ModuleList(Array.from({ length: cfg.nLayer }, () => new Block(cfg, rotary, rng))));
    this.lnF = this.registerModule('ln_f', new LayerNorm(cfg.dModel, { bias: cfg.bias }));
  }
}

interface GptState extends DecodeState {
  caches: LayerCache[];
  /** Position of the next token (for rotary: absolute; learned: index into wpe). */
  pos: number;
  /** Tokens fed so far, per row (for rebuilding the cache past blockSize). */
  history: number[][];
  logProbs: Tensor;
}

export class GPT extends Module implements GenerativeModel, TokenModel {
  readonly type = 'gpt';
  readonly config: GptConfig;
  readonly transformer: Trunk;
  readonly lmHead: Linear | null;
  readonly tokenizer: Tokenizer;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly maxLength: number | undefined;

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(GPT_DEFAULTS as unknown as GptConfig), ...(config as unknown as GptConfig), type: 'gpt' };
    const c = this.config;
    if (!data.tokenizer) throw new Error(`gpt: data ${data.name} has no tokenizer (use text data such as moby-dick or names)`);
    if (!(Number.isInteger(c.nHead) && c.nHead >= 1 && c.dModel % c.nHead === 0)) throw new Error(`gpt: dModel ${c.dModel} must be divisible by nHead ${c.nHead}`);
    if (c.positions === 'rotary' && (c.dModel / c.nHead) % 2 !== 0) throw new Error(`gpt: rotary positions need an even head size, got ${c.dModel / c.nHead}`);
    if (data.shape[0] - 1 > c.blockSize) throw new Error(`gpt: data sequences of ${data.shape[0] - 1} tokens exceed blockSize ${c.blockSize}`);
    this.tokenizer = tokenizerFromJSON(data.tokenizer);
    this.vocabSize = this.tokenizer.vocabSize;
    this.bosId = this.tokenizer.bos;
    this.eosId = this.tokenizer.eos;
    this.padId = this.tokenizer.pad;
    this.maxLength = data.extra?.format === 'lines' ? data.shape[0] - 1 : undefined;
    const rotary = c.positions === 'rotary' ? new Rotary(c.dModel / c.nHead) : null;
    this.transformer = this.registerModule('transformer', new Trunk(c, this.vocabSize, rotary, rng));
    this.lmHead = this.registerModule('lm_head', c.tieWeights ? null : new Linear(c.dModel, this.vocabSize, rng, { bias: false }));
    // GPT-2 initialisation.
    const residualStd = 0.02 / Math.sqrt(2 * c.nLayer);
    for (const [name, p] of this.namedParameters()) {
      if (name.endsWith('c_proj.weight')) normal_(p, rng, 0, residualStd);
      else if (name.endsWith('.weight') && p.rank === 2) normal_(p, rng, 0, 0.02);
      else if (name.endsWith('.bias')) zeros_(p);
    }
  }

  /** Logits (B, T, V) of idx (B, T) int32 whose first token sits at `pos`. */
  forward(idx: Tensor, opts: { pos?: number; caches?: LayerCache[] | null; rng?: Rng } = {}): Tensor {
    const [B, T] = idx.shape;
    const pos = opts.pos ?? 0;
    const tr = this.transformer;
    let x = tr.wte.forward(idx); // (B, T, C)
    if (tr.wpe) {
      if (pos + T > this.config.blockSize) throw new RangeError(`gpt: positions up to ${pos + T} exceed blockSize ${this.config.blockSize}`);
      const p = new Int32Array(T).map((_, i) => pos + i);
      x = x.add(tr.wpe.forward(new Tensor(p, [T])));
    }
    if (this.training && this.config.dropout > 0) x = dropout(x, this.config.dropout, opts.rng, true);
    for (let l = 0; l < this.config.nLayer; l++) x = tr.h.at(l).forward(x, pos, opts.caches ? opts.caches[l] : null, opts.rng);
    x = tr.lnF.forward(x);
    const logits = this.lmHead ? this.lmHead.forward(x) : x.reshape([B * T, this.config.dModel]).matmul(tr.wte.weight.transpose(0, 1));
    return logits.reshape([B, T, this.vocabSize]);
  }

  /** Summed next-token NLL (nats) over non-pad targets, and their count. */
  private nll(x: Tensor, rng: Rng | undefined, reduction: 'mean' | 'sum'): { loss: Tensor; count: number } {
    const [B, W] = x.shape;
    const T = W - 1;
    const input = x.slice(1, 0, T);
    const target = x.slice(1, 1, W).contiguous().reshape([B * T]);
    const logits = this.forward(input.contiguous(), { rng }).reshape([B * T, this.vocabSize]);
    const ignoreIndex = this.padId >= 0 ? this.padId : -100;
    let count = B * T;
    if (this.padId >= 0) {
      count = 0;
      for (const t of target.i32()) if (t !== this.padId) count++;
    }
    return { loss: crossEntropy(logits, target, { ignoreIndex, reduction }), count };
  }

  loss(batch: Batch, rng: Rng): LossOutput {
    const { loss } = this.nll(batch.x, rng, 'mean');
    return { loss, metrics: { nll: loss.item() } };
  }

  /** Test loss in nats per token (nats/char for the character tokenizer), perplexity, bits per token. */
  evaluate(test: Batch, _rng: Rng, opts: { quick?: boolean } = {}): Record<string, number> {
    return noGrad(() => {
      const N = test.x.shape[0];
      const n = opts.quick ? Math.min(N, 64) : N;
      let total = 0;
      let count = 0;
      for (let i = 0; i < n; i += 32) {
        const r = this.nll(test.x.slice(0, i, Math.min(n, i + 32)), undefined, 'sum');
        total += r.loss.item();
        count += r.count;
      }
      const loss = total / Math.max(1, count);
      return { loss, perplexity: Math.exp(loss), bitsPerToken: loss / Math.LN2, tokens: count };
    });
  }

  sample(n: number, rng: Rng, _cond?: Tensor, opts: SampleOptions = {}): Samples {
    const wasTraining = this.training;
    this.eval();
    try {
      return { kind: 'text', texts: ancestralSample(this, n, rng, opts, this.maxLength ?? 2 * this.config.blockSize) };
    } finally {
      if (wasTraining) this.train();
    }
  }

  // ---- TokenModel: incremental decoding with a key/value cache --------------------------

  private feed(s: GptState, ids: number[][]): GptState {
    const rows = ids.length;
    const T = ids[0].length;
    const flat = new Int32Array(rows * T);
    ids.forEach((r, i) => flat.set(r, i * T));
    const logits = this.forward(new Tensor(flat, [rows, T]), { pos: s.pos, caches: s.caches }); // (rows, T, V)
    const last = logits.slice(1, T - 1, T).reshape([rows, this.vocabSize]);
    return { ...s, rows, length: s.length + T, pos: s.pos + T, logProbs: last.logSoftmax(-1) };
  }

  private fresh(rows: number): GptState {
    const caches = Array.from({ length: this.config.nLayer }, () => ({ k: null, v: null }));
    return { rows, length: 0, pos: 0, caches, history: Array.from({ length: rows }, () => []), logProbs: new Tensor(new Float32Array(0), [rows, 0]) };
  }

  startDecoding(rows: number, opts: StartDecodingOptions = {}): DecodeState {
    return noGrad(() => {
      let start = startTokens(this.tokenizer, this.bosId, opts.prompt);
      // A prompt longer than the context keeps its end.
      if (start.length > this.config.blockSize) start = start.slice(start.length - this.config.blockSize);
      const s = this.fresh(rows);
      const ids = Array.from({ length: rows }, () => [...start]);
      return { ...this.feed(s, ids), history: ids.map((r) => [...r]) } as GptState;
    });
  }

  nextLogProbs(state: DecodeState): Tensor {
    return (state as GptState).logProbs;
  }

  advance(state: DecodeState, tokens: Int32Array, beamIndices?: Int32Array): DecodeState {
    return noGrad(() => {
      let s = state as GptState;
      if (beamIndices) {
        const it = new Tensor(Int32Array.from(beamIndices), [beamIndices.length]);
        s = {
          ...s,
          rows: beamIndices.length,
          caches: s.caches.map((c) => ({ k: c.k ? c.k.indexSelect(0, it) : null, v: c.v ? c.v.indexSelect(0, it) : null })),
          history: Array.from(beamIndices, (b) => [...s.history[b]]),
        };
      }
      if (tokens.length !== s.rows) throw new RangeError(`gpt.advance: ${tokens.length} tokens for ${s.rows} rows`);
      const history = s.history.map((h, r) => [...h, tokens[r]]);
      const B = this.config.blockSize;
      if (s.pos + 1 > B && !this.transformer.wpe) {
        // Rotary: keep the last B - 1 cached positions (relative positions are unchanged).
        s = { ...s, caches: s.caches.map((c) => ({ k: c.k!.slice(2, c.k!.shape[2] - (B - 1)), v: c.v!.slice(2, c.v!.shape[2] - (B - 1)) })) };
      } else if (s.pos + 1 > B) {
        // Learned positions: rebuild the cache from the last B/2 tokens.
        const keep = Math.max(1, Math.floor(B / 2));
        const recent = history.map((h) => h.slice(h.length - keep));
        return { ...this.feed(this.fresh(s.rows), recent), length: s.length + 1, history } as GptState;
      }
      const next = this.feed(s, Array.from(tokens, (t) => [t]));
      return { ...next, history } as GptState;
    });
  }
}

registerModel({
  type: 'gpt',
  description: 'Decoder-only Transformer language model (nanoGPT: pre-LN, causal attention, learned or rotary positions, tied weights, KV-cache decoding)',
  data: ['text'],
  defaultData: 'moby-dick',
  defaults: GPT_DEFAULTS,
  presets: GPT_PRESETS,
  choices: GPT_CHOICES,
  create: (config, rng, data) => new GPT(config, rng, data),
});
