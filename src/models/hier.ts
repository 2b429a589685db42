/**
 * Hierarchical language model: a conductor over segments and a character decoder per
 * segment, after MusicVAE's hierarchical decoder (Roberts et al. 2018, "A Hierarchical
 * Latent Vector Model for Learning Long-Term Structure in Music", arXiv:1803.05428,
 * section 3.2) and HRED (Serban et al. 2016, "Building End-To-End Dialogue Systems
 * Using Generative Hierarchical Neural Network Models", arXiv:1507.04808):
 *   1. a segment encoder (GRU over the segment's characters) summarises each segment,
 *      s_i = GRU(segment_i) at its <eos>;
 *   2. the conductor (LSTM over segments) reads s_0..s_{i-1} (a learned start vector
 *      first) and emits the code u_i of segment i;
 *   3. the decoder (LSTM over characters) starts from h_0 = tanh(W u_i) and reads
 *      [embedding; u_i] at every step, as MusicVAE's bottom-level decoder.
 * Loss: next-character cross-entropy over every segment (padding ignored). The
 * evaluation reports the test NLL with the true codes and with the codes of another
 * sequence (rolled across the batch), which measures how much the plan matters.
 * Trained on 'name-runs' (runs of K alphabetically consecutive names).
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { zeros } from '../engine/creation.js';
import { concat } from '../engine/ops/shape_ops.js';
import { Module } from '../nn/module.js';
import { Linear, Embedding } from '../nn/layers.js';
import { GRU, LSTM } from '../nn/rnn.js';
import { crossEntropy } from '../nn/losses.js';
import { normal_ } from '../nn/init.js';
import { tokenizerFromJSON } from '../data/tokenizer.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, SampleOptions, Samples } from './contract.js';
import { registerModel } from './registry.js';
import type { Config } from './registry.js';
import { ancestralSample } from './sequence.js';
import type { DecodeState, HierarchicalModel, PlanState, StartDecodingOptions, TokenModel } from './sequence.js';

export interface HierLmConfig {
  type: 'hier-lm';
  /** Character embedding width (shared by encoder and decoder). */
  embedDim: number;
  /** Segment summary width (the encoder GRU's hidden size). */
  segDim: number;
  /** Code width (the conductor LSTM's hidden size). */
  codeDim: number;
  /** Hidden width of the character decoder LSTM. */
  hiddenDim: number;
  /** Segments per sequence (the data source cuts runs of this many names). */
  segments: number;
  /** Tokenizer the text data source builds (characters). */
  tokenizer: string;
}

export const HIER_LM_DEFAULTS: Config = { embedDim: 32, segDim: 64, codeDim: 64, hiddenDim: 128, segments: 4, tokenizer: 'char' };

export const HIER_LM_CHOICES = { tokenizer: ['char'] } as const;

export const HIER_LM_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { embedDim: 8, segDim: 16, codeDim: 16, hiddenDim: 32 }, train: { steps: 100, batchSize: 8, lr: 1e-2 } },
  // On name-runs, 800 steps (about 7 minutes on a shared 2-core machine): test NLL 1.50
  // nats/char with the true codes, 3.46 with another run's codes; 86% of adjacent
  // sampled names share their first letter (unrelated names: under 10%).
  small: {
    model: { embedDim: 32, segDim: 64, codeDim: 64, hiddenDim: 128 },
    train: { steps: 800, batchSize: 32, lr: 5e-3, schedule: 'cosine', warmupSteps: 50, minLr: 1e-4, clipNorm: 1, evalEvery: 400, ckptEvery: 400 },
  },
};

interface Plan extends PlanState {
  h: Tensor; // (1, rows, codeDim)
  c: Tensor;
  codes: Tensor; // (rows, codeDim): the code of the next segment
}

interface SegState extends DecodeState {
  h: Tensor;
  c: Tensor;
  codes: Tensor;
  logProbs: Tensor;
}

export class HierLM extends Module implements GenerativeModel, HierarchicalModel {
  readonly type = 'hier-lm';
  readonly config: HierLmConfig;
  readonly embedding: Embedding;
  readonly encoder: GRU;
  readonly conductor: LSTM;
  readonly start: Tensor;
  readonly init: Linear;
  readonly decoder: LSTM;
  readonly head: Linear;
  readonly tokenizer: Tokenizer;
  readonly segments: number;
  readonly separator = ', ';
  private readonly width: number;

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super();
    this.config = { ...(HIER_LM_DEFAULTS as unknown as HierLmConfig), ...(config as unknown as HierLmConfig), type: 'hier-lm' };
    const c = this.config;
    if (!data.tokenizer || data.shape.length !== 2) throw new Error(`hier-lm: needs segmented text data [K, L] such as name-runs, got ${data.name} [${data.shape}]`);
    this.tokenizer = tokenizerFromJSON(data.tokenizer);
    if (this.tokenizer.bos < 0) throw new Error('hier-lm: the tokenizer needs <bos>/<eos>/<pad>');
    this.segments = data.shape[0];
    this.width = data.shape[1];
    const V = this.tokenizer.vocabSize;
    this.embedding = this.registerModule('embedding', new Embedding(V, c.embedDim, rng));
    this.encoder = this.registerModule('encoder', new GRU(c.embedDim, c.segDim, rng, { batchFirst: true }));
    this.conductor = this.registerModule('conductor', new LSTM(c.segDim, c.codeDim, rng, { batchFirst: true }));
    this.start = this.registerParameter('start', normal_(zeros([c.segDim]), rng, 0, 0.1).requiresGrad_());
    this.init = this.registerModule('init', new Linear(c.codeDim, c.hiddenDim, rng));
    this.decoder = this.registerModule('decoder', new LSTM(c.embedDim + c.codeDim, c.hiddenDim, rng, { batchFirst: true }));
    this.head = this.registerModule('head', new Linear(c.hiddenDim, V, rng));
  }

  /** Summaries s (R, segDim) of segments ids (R, W) laid out <bos> ... <eos> <pad>...: the GRU output at <eos>. */
  summarize(ids: Tensor): Tensor {
    const [R, W] = ids.shape;
    const [out] = this.encoder.forward(this.embedding.forward(ids)); // (R, W, segDim)
    const v = ids.i32();
    const at = new Int32Array(R * this.config.segDim);
    for (let r = 0; r < R; r++) {
      let e = W - 1;
      for (let j = 0; j < W; j++) {
        if (v[r * W + j] === this.tokenizer.eos) {
          e = j;
          break;
        }
      }
      at.fill(e, r * this.config.segDim, (r + 1) * this.config.segDim);
    }
    return out.gather(1, new Tensor(at, [R, 1, this.config.segDim])).reshape([R, this.config.segDim]);
  }

  /** Codes u (B, K, codeDim) of every segment of x (B, K, W), each from the segments before it. */
  codes(x: Tensor): Tensor {
    const [B, K, W] = x.shape;
    const s = this.summarize(x.reshape([B * K, W])).reshape([B, K, this.config.segDim]);
    const first = this.start.reshape([1, 1, this.config.segDim]).expand([B, 1, this.config.segDim]);
    const inputs = K > 1 ? concat([first, s.slice(1, 0, K - 1)], 1) : first; // (B, K, segDim)
    const [u] = this.conductor.forward(inputs);
    return u;
  }

  /** Decoder logits (R, T, V) of ids (R, T) given codes (R, codeDim), from its initial state (or h, c). */
  decode(ids: Tensor, codes: Tensor, state?: { h: Tensor; c: Tensor }): { logits: Tensor; h: Tensor; c: Tensor } {
    const [R, T] = ids.shape;
    const e = this.embedding.forward(ids); // (R, T, E)
    const u = codes.reshape([R, 1, this.config.codeDim]).expand([R, T, this.config.codeDim]);
    const h0 = state ? state.h : this.init.forward(codes).tanh().reshape([1, R, this.config.hiddenDim]);
    const c0 = state ? state.c : zeros([1, R, this.config.hiddenDim]);
    const [out, [h, c]] = this.decoder.forward(concat([e, u], -1), [h0, c0]);
    return { logits: this.head.forward(out), h, c };
  }

  /** Summed NLL over non-pad targets and their count; `roll` decodes with another sequence's codes. */
  private nll(x: Tensor, reduction: 'mean' | 'sum', roll = 0): { loss: Tensor; count: number } {
    const [B, K, W] = x.shape;
    let u = this.codes(x); // (B, K, C)
    if (roll % B !== 0) {
      const idx = Int32Array.from({ length: B }, (_, b) => (b + roll) % B);
      u = u.indexSelect(0, new Tensor(idx, [B]));
    }
    const flat = x.reshape([B * K, W]);
    const target = flat.slice(1, 1, W).contiguous().reshape([B * K * (W - 1)]);
    const { logits } = this.decode(flat.slice(1, 0, W - 1).contiguous(), u.reshape([B * K, this.config.codeDim]));
    let count = 0;
    for (const t of target.i32()) if (t !== this.tokenizer.pad) count++;
    const loss = crossEntropy(logits.reshape([-1, this.tokenizer.vocabSize]), target, { ignoreIndex: this.tokenizer.pad, reduction });
    return { loss, count };
  }

  loss(batch: Batch): LossOutput {
    const { loss } = this.nll(batch.x, 'mean');
    return { loss, metrics: { nll: loss.item() } };
  }

  /** Test NLL per character with the true codes, with another sequence's codes, and the gap. */
  evaluate(test: Batch, _rng: Rng, opts: { quick?: boolean } = {}): Record<string, number> {
    return noGrad(() => {
      const N = test.x.shape[0];
      const n = opts.quick ? Math.min(N, 64) : N;
      let t = 0;
      let s = 0;
      let count = 0;
      for (let i = 0; i < n; i += 32) {
        const x = test.x.slice(0, i, Math.min(n, i + 32)).contiguous();
        const a = this.nll(x, 'sum');
        t += a.loss.item();
        s += this.nll(x, 'sum', Math.max(1, Math.floor(x.shape[0] / 2))).loss.item();
        count += a.count;
      }
      const nll = t / Math.max(1, count);
      const nllShuffled = s / Math.max(1, count);
      return { nll, nllShuffledCodes: nllShuffled, codeGain: nllShuffled - nll, perplexity: Math.exp(nll), tokens: count };
    });
  }

  // ---- HierarchicalModel ---------------------------------------------------------------

  private conduct(plan: { h: Tensor | null; c: Tensor | null }, s: Tensor, rows: number, segment: number): Plan {
    const [u, [h, c]] = this.conductor.forward(s.reshape([rows, 1, this.config.segDim]), plan.h && plan.c ? [plan.h, plan.c] : null);
    return { rows, segment, h, c, codes: u.reshape([rows, this.config.codeDim]) };
  }

  startPlan(rows: number): PlanState {
    return noGrad(() => this.conduct({ h: null, c: null }, this.start.reshape([1, -1]).expand([rows, this.config.segDim]).contiguous(), rows, 0));
  }

  endSegment(plan: PlanState, segments: readonly (readonly number[])[]): PlanState {
    const p = plan as Plan;
    return noGrad(() => {
      const W = Math.max(this.width, ...segments.map((s) => s.length + 2));
      const ids = new Int32Array(p.rows * W).fill(this.tokenizer.pad);
      segments.forEach((s, r) => ids.set([this.tokenizer.bos, ...s, this.tokenizer.eos], r * W));
      const s = this.summarize(new Tensor(ids, [p.rows, W]));
      return this.conduct(p, s, p.rows, p.segment + 1);
    });
  }

  segmentDecoder(plan: PlanState, rowsOf?: Int32Array): TokenModel {
    const p = plan as Plan;
    const codes = rowsOf ? p.codes.indexSelect(0, new Tensor(Int32Array.from(rowsOf), [rowsOf.length])) : p.codes;
    return new SegmentDecoder(this, codes, this.width - 1);
  }

  /** n sequences of `segments` segments (opts.segments), each sampled with temperature. */
  sample(n: number, rng: Rng, _cond?: Tensor, opts: SampleOptions = {}): Samples {
    const wasTraining = this.training;
    this.eval();
    try {
      const K = opts.segments === undefined ? this.segments : Number(opts.segments);
      const { segments: _s, ...rest } = opts;
      void _s;
      let plan = this.startPlan(n);
      const parts: string[][] = Array.from({ length: n }, () => []);
      for (let k = 0; k < K; k++) {
        const texts = ancestralSample(this.segmentDecoder(plan), n, rng, rest, this.width - 1);
        texts.forEach((t, r) => parts[r].push(t));
        plan = this.endSegment(plan, texts.map((t) => this.tokenizer.encode(t)));
      }
      return { kind: 'text', texts: parts.map((p) => p.join(this.separator)) };
    } finally {
      if (wasTraining) this.train();
    }
  }
}

/** The bottom level as a TokenModel: the character decoder conditioned on fixed codes. */
class SegmentDecoder implements TokenModel {
  readonly tokenizer: Tokenizer;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  constructor(private readonly m: HierLM, private readonly codes: Tensor, readonly maxLength: number) {
    this.tokenizer = m.tokenizer;
    this.vocabSize = m.tokenizer.vocabSize;
    this.bosId = m.tokenizer.bos;
    this.eosId = m.tokenizer.eos;
    this.padId = m.tokenizer.pad;
  }

  private feed(ids: number[][], codes: Tensor, state?: { h: Tensor; c: Tensor }, length = 0): SegState {
    const R = ids.length;
    const T = ids[0].length;
    const flat = new Int32Array(R * T);
    ids.forEach((r, i) => flat.set(r, i * T));
    const r = this.m.decode(new Tensor(flat, [R, T]), codes, state);
    const last = r.logits.slice(1, T - 1, T).reshape([R, this.vocabSize]);
    return { rows: R, length: length + T, h: r.h, c: r.c, codes, logProbs: last.logSoftmax(-1) };
  }

  startDecoding(rows: number, opts: StartDecodingOptions = {}): DecodeState {
    return noGrad(() => {
      let codes = this.codes;
      if (codes.shape[0] !== rows) {
        if (codes.shape[0] !== 1) throw new RangeError(`segment decoder: ${rows} rows for ${codes.shape[0]} codes`);
        codes = codes.expand([rows, codes.shape[1]]).contiguous();
      }
      const start = [this.bosId, ...(opts.prompt ?? [])];
      return this.feed(Array.from({ length: rows }, () => start), codes);
    });
  }

  nextLogProbs(state: DecodeState): Tensor {
    return (state as SegState).logProbs;
  }

  advance(state: DecodeState, tokens: Int32Array, beamIndices?: Int32Array): DecodeState {
    return noGrad(() => {
      let s = state as SegState;
      if (beamIndices) {
        const it = new Tensor(Int32Array.from(beamIndices), [beamIndices.length]);
        s = { ...s, rows: beamIndices.length, h: s.h.indexSelect(1, it), c: s.c.indexSelect(1, it), codes: s.codes.indexSelect(0, it) };
      }
      return this.feed(Array.from(tokens, (t) => [t]), s.codes, { h: s.h, c: s.c }, s.length);
    });
  }
}

registerModel({
  type: 'hier-lm',
  description: 'Hierarchical LM (MusicVAE-style conductor over segments + conditioned char decoder), on runs of names',
  data: ['text'],
  defaultData: 'name-runs',
  defaults: HIER_LM_DEFAULTS,
  presets: HIER_LM_PRESETS,
  choices: HIER_LM_CHOICES,
  create: (config, rng, data) => new HierLM(config, rng, data),
});
