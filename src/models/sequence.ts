/**
 * The interface decoding strategies need from an autoregressive token model
 * (src/sample/decoding.ts: greedy, temperature, top-k, top-p, beam search). A model
 * that implements `TokenModel` keeps its own incremental state (an RNN's hidden
 * state, a Transformer's key/value cache, a seq2seq decoder's state and encoder
 * memory) inside an opaque `DecodeState`; the decoder only asks for the next-token
 * log-probabilities of every row and tells the model which tokens were chosen.
 *
 * Protocol, for n rows decoded in parallel:
 *   1. `s = m.startDecoding(n, {prompt, source})` feeds <bos> (when the tokenizer has
 *      one) and the prompt tokens, and computes the distribution of the next token.
 *   2. `m.nextLogProbs(s)` -> [rows, V] float32 log-probabilities (log-softmax of the
 *      logits, no temperature; decoders apply their own).
 *   3. `s = m.advance(s, tokens, beamIndices)`: first, when `beamIndices` is given, row
 *      r of the new state continues row `beamIndices[r]` of the old one (beam search
 *      reorders, duplicates or drops hypotheses; the number of rows may change);
 *      then `tokens[r]` is appended to row r. Repeat from 2.
 * A state is used linearly: after `advance`, only the returned state is valid.
 *
 * Reference: the same split as Hugging Face's `generate()` (model forward with
 * `past_key_values` + logits processors + search loop) and fairseq's
 * `SequenceGenerator` with `reorder_incremental_state`.
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { SampleOptions } from './contract.js';

/** A model's incremental decoding state (models add their own fields). */
export interface DecodeState {
  /** Number of rows (hypotheses) in this state. */
  readonly rows: number;
  /** Tokens consumed so far per row, including <bos> and the prompt. */
  readonly length: number;
}

export interface StartDecodingOptions {
  /** Token ids of a prefix shared by every row (without <bos>; the model adds it). */
  prompt?: readonly number[];
  /** Source token ids [rows, S] int32, for conditional (sequence-to-sequence) models. */
  source?: Tensor;
}

/**
 * An autoregressive model over a token vocabulary that decoders can drive step by step.
 * @example
 * let s = model.startDecoding(2, { prompt: model.tokenizer.encode('Ca') });
 * const lp = model.nextLogProbs(s);            // [2, V]
 * s = model.advance(s, Int32Array.of(5, 7));  // append one token per row
 */
export interface TokenModel {
  /** The tokenizer of the model's vocabulary (rebuilt from the data's TokenizerJSON). */
  readonly tokenizer: Tokenizer;
  /** Vocabulary size V (the width of `nextLogProbs`). */
  readonly vocabSize: number;
  /** Start-of-sequence id, or -1 when sequences start without one. */
  readonly bosId: number;
  /** End-of-sequence id, or -1 when the model never ends a sequence by itself. */
  readonly eosId: number;
  /** Padding id, or -1 (never to be generated). */
  readonly padId: number;
  /** The longest sequence (including <bos>) the model was trained on, if limited. */
  readonly maxLength?: number;
  /**
   * Conditional models: the source ids [1, S] of a source text (for `--prompt` of a
   * sequence-to-sequence model, where the prompt is the input to translate or copy).
   */
  encodeSource?(text: string): Tensor;
  startDecoding(rows: number, opts?: StartDecodingOptions): DecodeState;
  /** Log-probabilities of the next token of every row: [rows, V] float32. */
  nextLogProbs(state: DecodeState): Tensor;
  /** Reorder rows by `beamIndices` (when given), then append `tokens[r]` to row r. */
  advance(state: DecodeState, tokens: Int32Array, beamIndices?: Int32Array): DecodeState;
}

/** Whether a model implements the decoding interface. */
export function isTokenModel(m: unknown): m is TokenModel {
  const t = m as Partial<TokenModel> | null;
  return !!t && typeof t.startDecoding === 'function' && typeof t.nextLogProbs === 'function' && typeof t.advance === 'function' && !!t.tokenizer;
}

/** Token ids a decoder must never emit: <pad>, <bos>, <unk> (those that exist). */
export function bannedTokens(m: TokenModel): number[] {
  return [m.padId, m.bosId, m.tokenizer.unk].filter((t, i, a) => t >= 0 && a.indexOf(t) === i);
}

/** The first tokens of a sequence without <bos>: the prompt, or a newline (nanoGPT's sample.py). */
export function startTokens(tok: Tokenizer, bos: number, prompt: readonly number[] | undefined): number[] {
  if (bos >= 0) return [bos, ...(prompt ?? [])];
  if (prompt && prompt.length > 0) return [...prompt];
  try {
    const nl = tok.encode('\n');
    if (nl.length > 0) return nl;
  } catch {
    // No newline in the vocabulary: start from token 0.
  }
  return [0];
}

/**
 * Plain ancestral sampling with temperature, the models' own `sample()` (the full set of
 * strategies is in src/sample/decoding.ts). opts: temperature (default 1; 0 = greedy),
 * maxLen (new tokens, default `defaultMaxLen`), prompt (text every sample starts with).
 * Returns the prompt plus the generated text, up to <eos>.
 */
export function ancestralSample(m: TokenModel, n: number, rng: Rng, opts: SampleOptions = {}, defaultMaxLen = 200): string[] {
  const temperature = opts.temperature === undefined ? 1 : Number(opts.temperature);
  const maxLen = opts.maxLen === undefined ? defaultMaxLen : Number(opts.maxLen);
  if (!(temperature >= 0)) throw new RangeError(`sample: temperature must be >= 0, got ${opts.temperature}`);
  if (!(Number.isInteger(maxLen) && maxLen >= 0)) throw new RangeError(`sample: maxLen must be a non-negative integer, got ${opts.maxLen}`);
  const promptText = opts.prompt === undefined ? '' : String(opts.prompt);
  const prompt = promptText ? m.tokenizer.encode(promptText) : undefined;
  const banned = bannedTokens(m);
  return noGrad(() => {
    const out: number[][] = Array.from({ length: n }, () => []);
    const done = new Uint8Array(n);
    let s = m.startDecoding(n, { prompt });
    const V = m.vocabSize;
    for (let t = 0; t < maxLen; t++) {
      const lp = Float32Array.from(m.nextLogProbs(s).f32('sample'));
      for (let r = 0; r < n; r++) for (const b of banned) lp[r * V + b] = -Infinity;
      const next = new Int32Array(n);
      for (let r = 0; r < n; r++) {
        const row = lp.subarray(r * V, (r + 1) * V);
        next[r] = temperature === 0 ? argmaxOf(row) : drawFrom(row, temperature, rng);
      }
      let live = 0;
      for (let r = 0; r < n; r++) {
        if (done[r]) {
          next[r] = m.eosId >= 0 ? m.eosId : next[r];
          continue;
        }
        if (next[r] === m.eosId) done[r] = 1;
        else {
          out[r].push(next[r]);
          live++;
        }
      }
      if (live === 0 || t === maxLen - 1) break;
      s = m.advance(s, next);
    }
    return out.map((ids) => promptText + m.tokenizer.decode(ids));
  });
}

/** Index of the largest value (the first one on ties). */
export function argmaxOf(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** One draw from softmax(logp / temperature) (logp may hold -Infinity). */
export function drawFrom(logp: ArrayLike<number>, temperature: number, rng: Rng): number {
  let m = -Infinity;
  for (let i = 0; i < logp.length; i++) if (logp[i] > m) m = logp[i];
  if (!Number.isFinite(m)) throw new RangeError('sample: every token has probability zero');
  const p = new Float64Array(logp.length);
  let total = 0;
  for (let i = 0; i < logp.length; i++) total += p[i] = Math.exp((logp[i] - m) / temperature);
  let u = rng.uniform() * total;
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u < 0 && p[i] > 0) return i;
  }
  return argmaxOf(logp);
}

/** Rows `idx` of every tensor in a list (beam reordering of per-row state). */
export function selectRows(ts: Tensor[], idx: Int32Array, axis = 0): Tensor[] {
  const it = new Tensor(idx, [idx.length]);
  return ts.map((t) => t.indexSelect(axis, it));
}

/** A conductor's state: one plan per row (models add their own fields). */
export interface PlanState {
  readonly rows: number;
  /** Segments generated so far. */
  readonly segment: number;
}

/**
 * A two-level generator (MusicVAE's conductor, Roberts et al. 2018, arXiv:1803.05428;
 * HRED, Serban et al. 2016): a top level turns the segments so far into the code of
 * the next segment, and a bottom-level `TokenModel` decodes that segment's tokens
 * conditioned on its code. Hierarchical sampling (src/sample/hierarchical.ts) drives it
 * with any decoding strategy for the segments.
 */
export interface HierarchicalModel {
  /** Segments per sequence the model was trained on. */
  readonly segments: number;
  /** The conductor before the first segment: the first segment's code for `rows` rows. */
  startPlan(rows: number): PlanState;
  /** A decoder of the next segment, conditioned on the current codes (of `rowsOf` only, when given). */
  segmentDecoder(plan: PlanState, rowsOf?: Int32Array): TokenModel;
  /** Feed the generated segments (token ids without <bos>/<eos>, one per row) to the conductor. */
  endSegment(plan: PlanState, segments: readonly (readonly number[])[]): PlanState;
  /** How segment texts join into one text. */
  readonly separator: string;
}

export function isHierarchicalModel(m: unknown): m is HierarchicalModel {
  const h = m as Partial<HierarchicalModel> | null;
  return !!h && typeof h.startPlan === 'function' && typeof h.segmentDecoder === 'function' && typeof h.endSegment === 'function';
}
