/**
 * Sequence-to-sequence metrics for `genlab eval`: greedy and beam-search decoding of
 * held-out source/target pairs, scored by sequence accuracy, token error rate
 * (Levenshtein distance over reference length: the phoneme error rate on CMUdict) and
 * corpus BLEU-4 with brevity penalty (Papineni et al. 2002, "BLEU: a Method for
 * Automatic Evaluation of Machine Translation").
 *
 * Decoding drives any TokenModel (src/models/sequence.ts). The evaluator's beam figures
 * come from src/sample/decoding.ts (one source at a time, width 5, GNMT length penalty
 * alpha 0.6: lp = ((5 + |y|) / 6)^alpha, Wu et al. 2016, arXiv:1609.08144, eq. 14).
 * `batchGreedyDecode` and `batchBeamSearch` here decode many sources at once (one
 * state of B * beamSize rows) for throughput. Unlike decoding.ts, the batched beam
 * considers the best 2 * beamSize extensions per step (as Hugging Face), so <eos> can
 * end a hypothesis even when it is not among the best beamSize extensions.
 */
import { Tensor } from '../engine/tensor.js';
import type { Batch, DataSource, GenerativeModel } from '../models/contract.js';
import { bannedTokens, isTokenModel } from '../models/sequence.js';
import type { TokenModel } from '../models/sequence.js';
import { sequenceScores } from '../models/seq2seq.js';
import { registerEvaluator } from './evaluate.js';
import { beamSearch } from '../sample/decoding.js';

export interface BatchDecodeOptions {
  /** Longest output, in tokens after <bos> (default: the model's maxLength - 1, else 64). */
  maxLen?: number;
}

export interface BatchBeamOptions extends BatchDecodeOptions {
  /** Hypotheses kept per source (default 5). */
  beamSize?: number;
  /** GNMT length-penalty exponent alpha (0 = raw log-probability; default 0.6). */
  lengthPenalty?: number;
}

function maxLenOf(m: TokenModel, o: BatchDecodeOptions): number {
  return o.maxLen ?? (m.maxLength ? m.maxLength - 1 : 64);
}

/**
 * Greedy decoding of sources [B, S]: the most likely token at each step until <eos>.
 * Returns token ids per row without <bos>/<eos>.
 * @example
 * const hyps = batchGreedyDecode(model, src); // number[][]
 */
export function batchGreedyDecode(m: TokenModel, source: Tensor, opts: BatchDecodeOptions = {}): number[][] {
  const B = source.shape[0];
  const maxLen = maxLenOf(m, opts);
  const out: number[][] = Array.from({ length: B }, () => []);
  const done = new Array<boolean>(B).fill(false);
  let s = m.startDecoding(B, { source });
  for (let t = 0; t < maxLen && done.some((d) => !d); t++) {
    const toks = Int32Array.from(m.nextLogProbs(s).argmax(1).i32());
    for (let b = 0; b < B; b++) {
      if (done[b]) continue;
      if (toks[b] === m.eosId) done[b] = true;
      else out[b].push(toks[b]);
    }
    if (t + 1 < maxLen) s = m.advance(s, toks);
  }
  return out;
}

interface Hyp {
  tokens: number[];
  logp: number;
}

/** GNMT length-normalised score. */
function normScore(h: Hyp, alpha: number): number {
  return alpha === 0 ? h.logp : h.logp / Math.pow((5 + h.tokens.length) / 6, alpha);
}

/**
 * Beam search over sources [B, S], all sources batched together (B * beamSize rows).
 * Returns the best finished hypothesis per source (token ids without specials) and its
 * log-probability.
 * @example
 * const { hyps } = batchBeamSearch(model, src, { beamSize: 5 });
 */
export function batchBeamSearch(m: TokenModel, source: Tensor, opts: BatchBeamOptions = {}): { hyps: number[][]; logps: number[] } {
  const B = source.shape[0];
  const K = opts.beamSize ?? 5;
  const alpha = opts.lengthPenalty ?? 0.6;
  const maxLen = maxLenOf(m, opts);
  const V = m.vocabSize;
  const banned = bannedTokens(m);
  let s = m.startDecoding(B, { source });
  // live[b]: hypotheses of source b, in the order of their rows in the state.
  let live: Hyp[][] = Array.from({ length: B }, () => [{ tokens: [], logp: 0 }]);
  const finished: Hyp[][] = Array.from({ length: B }, () => []);
  const active = new Array<boolean>(B).fill(true);
  for (let t = 0; t < maxLen; t++) {
    const lp = m.nextLogProbs(s).contiguous().f32();
    const nextLive: Hyp[][] = Array.from({ length: B }, () => []);
    const rows: number[] = [];
    const toks: number[] = [];
    let row = 0;
    for (let b = 0; b < B; b++) {
      const hs = live[b];
      const base = row;
      row += hs.length;
      if (!active[b]) continue;
      // Candidates: the best 2K continuations over this source's rows.
      const cand: { r: number; v: number; logp: number }[] = [];
      for (let i = 0; i < hs.length; i++) {
        const off = (base + i) * V;
        for (let v = 0; v < V; v++) {
          if (banned.includes(v)) continue;
          const sc = hs[i].logp + lp[off + v];
          if (cand.length < 2 * K) {
            cand.push({ r: i, v, logp: sc });
            if (cand.length === 2 * K) cand.sort((a, c) => c.logp - a.logp);
          } else if (sc > cand[cand.length - 1].logp) {
            cand[cand.length - 1] = { r: i, v, logp: sc };
            for (let j = cand.length - 1; j > 0 && cand[j].logp > cand[j - 1].logp; j--) [cand[j], cand[j - 1]] = [cand[j - 1], cand[j]];
          }
        }
      }
      cand.sort((a, c) => c.logp - a.logp);
      for (const c of cand) {
        const tokens = [...hs[c.r].tokens];
        if (c.v === m.eosId) {
          if (finished[b].length < K) finished[b].push({ tokens, logp: c.logp });
        } else if (nextLive[b].length < K) {
          tokens.push(c.v);
          nextLive[b].push({ tokens, logp: c.logp });
          rows.push(base + c.r);
          toks.push(c.v);
        }
      }
      // Done when K hypotheses have finished, or the best live one cannot overtake the
      // best finished one (log-probabilities only fall; the length bonus is bounded).
      const bestDone = finished[b].length ? Math.max(...finished[b].map((h) => normScore(h, alpha))) : -Infinity;
      const bestLive = nextLive[b].length ? Math.max(...nextLive[b].map((h) => h.logp)) : -Infinity;
      const bound = alpha === 0 ? bestLive : bestLive / Math.pow((5 + maxLen) / 6, alpha);
      if (finished[b].length >= K || nextLive[b].length === 0 || (finished[b].length > 0 && bound < bestDone)) {
        active[b] = false;
        // Drop this source's rows from the state.
        for (let k = nextLive[b].length; k > 0; k--) {
          rows.pop();
          toks.pop();
        }
        nextLive[b] = [];
      }
    }
    live = nextLive;
    if (rows.length === 0 || t + 1 >= maxLen) break;
    s = m.advance(s, Int32Array.from(toks), Int32Array.from(rows));
  }
  const hyps: number[][] = [];
  const logps: number[] = [];
  for (let b = 0; b < B; b++) {
    const pool = finished[b].length ? finished[b] : live[b];
    let best = pool[0] ?? { tokens: [], logp: -Infinity };
    for (const h of pool) if (normScore(h, alpha) > normScore(best, alpha)) best = h;
    hyps.push(best.tokens);
    logps.push(best.logp);
  }
  return { hyps, logps };
}

/** Target ids of y [B, U] without <pad>/<bos>/<eos>. */
export function referenceIds(m: TokenModel, y: Tensor): number[][] {
  const U = y.shape[1];
  const v = y.contiguous().i32();
  return Array.from({ length: y.shape[0] }, (_, b) => Array.from(v.subarray(b * U, (b + 1) * U)).filter((t) => t !== m.padId && t !== m.bosId && t !== m.eosId));
}

/**
 * Greedy (batched) and beam-search (src/sample/decoding.ts, width `beamSize`) scores of a
 * token model on the same held-out pairs.
 */
export function greedyVsBeam(m: TokenModel, test: Batch, opts: { beamSize?: number; lengthPenalty?: number; maxLen?: number; chunk?: number } = {}): Record<string, number> {
  const n = test.x.shape[0];
  const chunk = opts.chunk ?? 64;
  const width = opts.beamSize ?? 5;
  const maxLen = maxLenOf(m, opts);
  const g: number[][] = [];
  const bm: number[][] = [];
  const refs: number[][] = [];
  for (let i = 0; i < n; i += chunk) {
    const j = Math.min(n, i + chunk);
    const x = test.x.slice(0, i, j).contiguous();
    g.push(...batchGreedyDecode(m, x, { maxLen }));
    refs.push(...referenceIds(m, test.y.slice(0, i, j)));
    for (let k = i; k < j; k++) {
      const best = beamSearch(m, { width, lengthPenalty: opts.lengthPenalty ?? 0.6, source: test.x.slice(0, k, k + 1).contiguous(), maxLen, numReturn: 1 })[0];
      bm.push(best ? best.tokens : []);
    }
  }
  const sg = sequenceScores(g, refs);
  const sb = sequenceScores(bm, refs);
  return {
    greedySeqAcc: sg.seqAcc, greedyTer: sg.ter, greedyBleu: sg.bleu,
    beamSeqAcc: sb.seqAcc, beamTer: sb.ter, beamBleu: sb.bleu,
    beamSize: width, beamExamples: n,
  };
}

/** `genlab eval` for seq2seq: greedy vs beam (width 5) on up to 1000 held-out pairs (100 when quick). */
export function seq2seqEvaluator(model: GenerativeModel, data: DataSource, opts: { quick: boolean }): Record<string, number> {
  if (!isTokenModel(model) || !data.test.y) return {};
  const n = Math.min(data.test.x.shape[0], opts.quick ? 100 : 1000);
  const test: Batch = { x: data.test.x.slice(0, 0, n), y: data.test.y.slice(0, 0, n) };
  return greedyVsBeam(model, test, { beamSize: 5 });
}

registerEvaluator('seq2seq', seq2seqEvaluator);
