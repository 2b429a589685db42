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
import type { Tensor } from '../engine/tensor.js';
import type { Tokenizer } from '../data/tokenizer.js';

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
