/**
 * Decoding strategies for any autoregressive token model that implements `TokenModel`
 * (models/sequence.ts: rnn-lm, gpt, seq2seq, ...):
 * - greedy (argmax) decoding;
 * - ancestral sampling with temperature, top-k (Fan et al. 2018, "Hierarchical Neural
 *   Story Generation") and top-p / nucleus filtering (Holtzman et al. 2020, "The
 *   Curious Case of Neural Text Degeneration", arXiv:1904.09751, eq. 2-3);
 * - beam search with length normalisation, either GNMT's lp(Y) = (5 + |Y|)^a / 6^a
 *   (Wu et al. 2016, arXiv:1609.08144, eq. 14) or |Y|^a, early stopping when every
 *   beam has ended, and diverse beam search (Vijayakumar et al. 2016, arXiv:1610.02424,
 *   Alg. 1): the beams are split into G groups decoded in turn at each step, and a
 *   group's scores are lowered by lambda times the number of earlier groups that chose
 *   the same token at this step (Hamming diversity).
 * Every strategy takes a prompt (text or ids), stop sequences, a maximum length and,
 * when random, an Rng, so a seed reproduces the text. `decodeSamples` maps the CLI's
 * `--sample.KEY=V` options and `--prompt` to a strategy.
 */
import { noGrad } from '../engine/tensor.js';
import type { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import type { SampleOptions } from '../models/contract.js';
import { bannedTokens } from '../models/sequence.js';
import type { DecodeState, TokenModel } from '../models/sequence.js';

/** Options shared by every strategy. */
export interface DecodeOptions {
  /** Text (encoded with the model's tokenizer) or token ids every output starts with. */
  prompt?: string | readonly number[];
  /** Source ids [1, S] for sequence-to-sequence models (repeated for every row). */
  source?: Tensor;
  /** Most new tokens per output (default 100, or the model's maxLength). */
  maxLen?: number;
  /** Generation ends (and the text is cut) where one of these strings appears. */
  stop?: readonly string[];
}

export interface SamplingOptions extends DecodeOptions {
  /** Softmax temperature (default 1); 0 means greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = off). */
  topP?: number;
}

export interface BeamOptions extends DecodeOptions {
  /** Beams in total (over all groups). */
  width: number;
  /** Length-normalisation exponent alpha (0 = plain log-probability). */
  lengthPenalty?: number;
  /** 'gnmt': ((5 + len) / 6)^alpha, 'simple': len^alpha. */
  lengthPenaltyKind?: 'gnmt' | 'simple';
  /** Diverse beam search: number of groups (width must be a multiple). Default 1. */
  groups?: number;
  /** Diversity strength lambda of diverse beam search (default 0.5 when groups > 1). */
  diversity?: number;
  /** Stop as soon as every group has `width / groups` ended hypotheses (default true). */
  earlyStop?: boolean;
  /** Hypotheses returned, best first (default width). */
  numReturn?: number;
}

/** One decoded sequence. */
export interface Decoded {
  /** Generated token ids (without the prompt, <bos> or <eos>). */
  tokens: number[];
  /** The prompt's text followed by the generated text (cut at a stop sequence). */
  text: string;
  /** Sum of the model's log-probabilities of the generated tokens (and <eos>). */
  logProb: number;
  /** Beam search: the length-normalised score that ranked it. */
  score: number;
  /** Ended by <eos> or a stop sequence (not by maxLen). */
  finished: boolean;
}

/** Mask all but the k largest entries of `logits` with -Infinity (in place; ties at the k-th value kept). */
export function applyTopK(logits: Float32Array, k: number): Float32Array {
  if (!(k > 0) || k >= logits.length) return logits;
  const kth = Float32Array.from(logits).sort((a, b) => b - a)[k - 1];
  for (let i = 0; i < logits.length; i++) if (logits[i] < kth) logits[i] = -Infinity;
  return logits;
}

/**
 * Nucleus filtering (Holtzman et al. 2020): keep the smallest set of most likely tokens
 * whose total probability under softmax(logits) is >= p; mask the rest (in place).
 */
export function applyTopP(logits: Float32Array, p: number): Float32Array {
  if (!(p < 1)) return logits;
  if (!(p > 0)) throw new RangeError(`topP must be in (0, 1], got ${p}`);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  const m = logits[order[0]];
  let z = 0;
  for (const i of order) z += Math.exp(logits[i] - m);
  let mass = 0;
  let keep = 0;
  while (keep < order.length) {
    mass += Math.exp(logits[order[keep]] - m) / z;
    keep++;
    if (mass >= p - 1e-7) break;
  }
  for (let j = keep; j < order.length; j++) logits[order[j]] = -Infinity;
  return logits;
}

function promptIds(model: TokenModel, prompt: DecodeOptions['prompt']): { ids: number[] | undefined; text: string } {
  if (prompt === undefined || (typeof prompt === 'string' && prompt === '')) return { ids: undefined, text: '' };
  if (typeof prompt === 'string') return { ids: model.tokenizer.encode(prompt), text: prompt };
  return { ids: [...prompt], text: model.tokenizer.decode(prompt) };
}

function defaultMaxLen(model: TokenModel, opts: DecodeOptions): number {
  const m = opts.maxLen ?? (model.maxLength !== undefined ? model.maxLength : 100);
  if (!(Number.isInteger(m) && m >= 0)) throw new RangeError(`maxLen must be a non-negative integer, got ${opts.maxLen}`);
  return m;
}

/** Source rows for `rows` hypotheses (the same source repeated). */
function repeatSource(source: Tensor | undefined, rows: number): Tensor | undefined {
  if (!source) return undefined;
  if (source.shape[0] === rows) return source;
  if (source.shape[0] !== 1) throw new RangeError(`decoding: source must have 1 or ${rows} rows, got ${source.shape[0]}`);
  return source.expand([rows, ...source.shape.slice(1)]).contiguous();
}

/** Where a stop sequence starts in `text`, or -1. */
function stopAt(text: string, stops: readonly string[] | undefined): number {
  if (!stops) return -1;
  let at = -1;
  for (const s of stops) {
    if (s === '') continue;
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

function finish(model: TokenModel, prefix: string, tokens: number[], logProb: number, score: number, ended: boolean, stops?: readonly string[]): Decoded {
  let text = model.tokenizer.decode(tokens);
  const at = stopAt(text, stops);
  if (at >= 0) text = text.slice(0, at);
  return { tokens, text: prefix + text, logProb, score, finished: ended || at >= 0 };
}

/**
 * Sample n sequences with temperature, top-k and top-p (temperature 0 = greedy).
 * @example
 * const out = sampleSequences(gpt, 4, new Rng(0), { prompt: 'Call me', temperature: 0.8, topP: 0.9, maxLen: 200 });
 */
export function sampleSequences(model: TokenModel, n: number, rng: Rng | null, opts: SamplingOptions = {}): Decoded[] {
  const temperature = opts.temperature ?? 1;
  if (!(temperature >= 0)) throw new RangeError(`temperature must be >= 0, got ${temperature}`);
  if (temperature > 0 && !rng) throw new Error('sampleSequences: sampling with temperature > 0 needs an Rng');
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  const maxLen = defaultMaxLen(model, opts);
  const { ids, text } = promptIds(model, opts.prompt);
  const banned = bannedTokens(model);
  const V = model.vocabSize;
  return noGrad(() => {
    const toks: number[][] = Array.from({ length: n }, () => []);
    const logp = new Float64Array(n);
    const done = new Uint8Array(n);
    let s: DecodeState = model.startDecoding(n, { prompt: ids, source: repeatSource(opts.source, n) });
    for (let t = 0; t < maxLen; t++) {
      const lp = model.nextLogProbs(s).f32('decode');
      const next = new Int32Array(n);
      for (let r = 0; r < n; r++) {
        if (done[r]) {
          next[r] = model.eosId >= 0 ? model.eosId : 0;
          continue;
        }
        const row = Float32Array.from(lp.subarray(r * V, (r + 1) * V));
        for (const b of banned) row[b] = -Infinity;
        let pick: number;
        if (temperature === 0) pick = argmax(row);
        else {
          for (let i = 0; i < V; i++) row[i] /= temperature;
          applyTopK(row, topK);
          applyTopP(row, topP);
          pick = draw(row, rng!);
        }
        next[r] = pick;
        logp[r] += lp[r * V + pick];
        if (pick === model.eosId) done[r] = 1;
        else {
          toks[r].push(pick);
          if (opts.stop && stopAt(model.tokenizer.decode(toks[r]), opts.stop) >= 0) done[r] = 2;
        }
      }
      if (done.every((d) => d > 0) || t === maxLen - 1) break;
      s = model.advance(s, next);
    }
    return toks.map((tk, r) => finish(model, text, tk, logp[r], logp[r], done[r] > 0, opts.stop));
  });
}

/** Greedy decoding: the most likely token at every step. */
export function greedyDecode(model: TokenModel, n: number, opts: DecodeOptions = {}): Decoded[] {
  return sampleSequences(model, n, null, { ...opts, temperature: 0 });
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** One draw from softmax(logits) (which may hold -Infinity). */
function draw(logits: Float32Array, rng: Rng): number {
  const m = logits[argmax(logits)];
  if (!Number.isFinite(m)) throw new RangeError('decode: every token has probability zero');
  let total = 0;
  const p = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) total += p[i] = Math.exp(logits[i] - m);
  let u = rng.uniform() * total;
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u < 0 && p[i] > 0) return i;
  }
  return argmax(logits);
}

/** Length normalisation lp(|Y|). */
export function lengthNorm(len: number, alpha: number, kind: 'gnmt' | 'simple' = 'gnmt'): number {
  if (alpha === 0) return 1;
  return kind === 'gnmt' ? Math.pow((5 + len) / 6, alpha) : Math.pow(Math.max(1, len), alpha);
}

interface Hyp {
  tokens: number[];
  logProb: number;
  /** Row of the model state holding this hypothesis. */
  row: number;
}

/**
 * Beam search (optionally diverse, with groups). Returns `numReturn` hypotheses, best
 * first by logProb / lp(|Y|) (|Y| counts <eos>).
 * @example
 * const best = beamSearch(model, { width: 5, lengthPenalty: 0.6, maxLen: 40 })[0].text;
 */
export function beamSearch(model: TokenModel, opts: BeamOptions): Decoded[] {
  const width = opts.width;
  const G = opts.groups ?? 1;
  if (!(Number.isInteger(width) && width >= 1)) throw new RangeError(`beam width must be a positive integer, got ${width}`);
  if (!(Number.isInteger(G) && G >= 1 && width % G === 0)) throw new RangeError(`beam groups ${G} must divide the width ${width}`);
  const perGroup = width / G;
  const lambda = opts.diversity ?? (G > 1 ? 0.5 : 0);
  const alpha = opts.lengthPenalty ?? 0;
  const kind = opts.lengthPenaltyKind ?? 'gnmt';
  const earlyStop = opts.earlyStop ?? true;
  const numReturn = opts.numReturn ?? width;
  const maxLen = defaultMaxLen(model, opts);
  const { ids, text } = promptIds(model, opts.prompt);
  const banned = bannedTokens(model);
  const V = model.vocabSize;
  const score = (logProb: number, len: number): number => logProb / lengthNorm(len, alpha, kind);
  return noGrad(() => {
    let s: DecodeState = model.startDecoding(1, { prompt: ids, source: repeatSource(opts.source, 1) });
    // Every group starts from the single prompt row.
    let groups: Hyp[][] = Array.from({ length: G }, () => [{ tokens: [], logProb: 0, row: 0 }]);
    const ended: Decoded[][] = Array.from({ length: G }, () => []);
    for (let t = 0; t < maxLen; t++) {
      const lp = model.nextLogProbs(s).f32('beamSearch');
      const chosenNow = new Map<number, number>(); // token -> how many earlier groups chose it this step
      const nextGroups: Hyp[][] = [];
      for (let g = 0; g < G; g++) {
        const live = groups[g];
        if (live.length === 0 || (earlyStop && ended[g].length >= perGroup)) {
          nextGroups.push([]);
          continue;
        }
        // 1. Candidate scores: log-prob of the extension, minus the diversity penalty.
        const cands: { h: Hyp; tok: number; logProb: number; rank: number }[] = [];
        for (const h of live) {
          const base = h.row * V;
          for (let v = 0; v < V; v++) {
            if (banned.includes(v)) continue;
            const l = lp[base + v];
            if (l === -Infinity) continue;
            const logProb = h.logProb + l;
            const div = lambda * (chosenNow.get(v) ?? 0);
            // Ranked by the raw log-probability (as Hugging Face's BeamSearchScorer);
            // length normalisation applies to ended hypotheses.
            cands.push({ h, tok: v, logProb, rank: logProb - div });
          }
        }
        cands.sort((a, b) => b.rank - a.rank || a.h.row - b.h.row || a.tok - b.tok);
        // 2. Fill the group's beams; <eos> and stop sequences end a hypothesis.
        const kept: Hyp[] = [];
        for (const c of cands) {
          if (kept.length >= perGroup) break;
          const tokens = c.tok === model.eosId ? c.h.tokens : [...c.h.tokens, c.tok];
          if (c.tok === model.eosId) {
            if (ended[g].length < perGroup || !earlyStop) ended[g].push(finish(model, text, tokens, c.logProb, score(c.logProb, tokens.length + 1), true, opts.stop));
            continue;
          }
          if (opts.stop && stopAt(model.tokenizer.decode(tokens), opts.stop) >= 0) {
            ended[g].push(finish(model, text, tokens, c.logProb, score(c.logProb, tokens.length), true, opts.stop));
            continue;
          }
          kept.push({ tokens, logProb: c.logProb, row: c.h.row });
        }
        for (const h of kept) chosenNow.set(h.tokens[h.tokens.length - 1], (chosenNow.get(h.tokens[h.tokens.length - 1]) ?? 0) + 1);
        nextGroups.push(kept);
      }
      // 3. Without early stopping, stop once no live beam can still beat the ended ones.
      if (!earlyStop) {
        for (let g = 0; g < G; g++) {
          if (ended[g].length < perGroup || nextGroups[g].length === 0) continue;
          const worst = Math.min(...[...ended[g]].sort((a, b) => b.score - a.score).slice(0, perGroup).map((d) => d.score));
          const bestLive = Math.max(...nextGroups[g].map((h) => h.logProb));
          // Log-probabilities only fall; with alpha = 0 a live beam can never climb back.
          if (alpha === 0 && bestLive <= worst) nextGroups[g] = [];
        }
      }
      const all = nextGroups.flat();
      if (all.length === 0 || t === maxLen - 1) {
        groups = nextGroups;
        break;
      }
      // 4. Reorder the model state: row r continues the parent row of hypothesis r.
      const beamIdx = Int32Array.from(all, (h) => h.row);
      const toks = Int32Array.from(all, (h) => h.tokens[h.tokens.length - 1]);
      s = model.advance(s, toks, beamIdx);
      let r = 0;
      groups = nextGroups.map((grp) => grp.map((h) => ({ ...h, row: r++ })));
    }
    // Beams still open at maxLen compete with the ended ones (unfinished).
    const pool = ended.flat();
    for (const grp of groups) for (const h of grp) pool.push(finish(model, text, h.tokens, h.logProb, score(h.logProb, h.tokens.length), false, opts.stop));
    pool.sort((a, b) => b.score - a.score);
    return pool.slice(0, numReturn);
  });
}

/** Keys `decodeSamples` understands (`--sample.KEY=V`). */
export const DECODE_KEYS = [
  'temperature', 'topK', 'topP', 'greedy', 'beam', 'lengthPenalty', 'lengthPenaltyKind', 'groups', 'diversity', 'earlyStop', 'maxLen', 'stop', 'prompt',
] as const;

function num(opts: SampleOptions, key: string): number | undefined {
  const v = opts[key];
  if (v === undefined) return undefined;
  const x = typeof v === 'number' ? v : typeof v === 'boolean' ? Number(v) : Number(v);
  if (typeof v === 'string' && v.trim() === '') throw new RangeError(`sample.${key}: expected a number, got ""`);
  if (!Number.isFinite(x)) throw new RangeError(`sample.${key}: expected a number, got ${JSON.stringify(v)}`);
  return x;
}

function bool(opts: SampleOptions, key: string): boolean | undefined {
  const v = opts[key];
  if (v === undefined) return undefined;
  if (v === true || v === 'true' || v === 1 || v === '1' || v === '') return true;
  if (v === false || v === 'false' || v === 0 || v === '0') return false;
  throw new RangeError(`sample.${key}: expected true or false, got ${JSON.stringify(v)}`);
}

/** A stop option: a JSON array of strings, or one string with \n, \t escapes. */
function stops(v: string | number | boolean | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const sv = String(v);
  if (sv.startsWith('[')) {
    const arr: unknown = JSON.parse(sv);
    if (!Array.isArray(arr) || !arr.every((x) => typeof x === 'string')) throw new RangeError(`sample.stop: expected a JSON array of strings, got ${sv}`);
    return arr as string[];
  }
  return [sv.replace(/\\n/g, '\n').replace(/\\t/g, '\t')];
}

/**
 * n texts from a TokenModel, choosing the strategy from CLI-style options:
 * beam (width > 1; with lengthPenalty, lengthPenaltyKind, groups, diversity, earlyStop)
 * returns the n best beams (width raised to n if smaller); greedy=true or
 * temperature=0 decodes greedily; otherwise sampling with temperature, topK, topP.
 * Common: maxLen, stop (a string or a JSON array), prompt (text that starts every
 * output; for models with `encodeSource`, the source text instead). Unknown keys are
 * errors that name the key.
 * @example
 * decodeSamples(gpt, 3, new Rng(0), { temperature: 0.8, topK: 20, maxLen: 200, prompt: 'Call me' });
 * decodeSamples(lm, 5, new Rng(0), { beam: 5, lengthPenalty: 0.6 });
 */
export function decodeSamples(model: TokenModel, n: number, rng: Rng, opts: SampleOptions = {}): string[] {
  for (const k of Object.keys(opts)) {
    if (!(DECODE_KEYS as readonly string[]).includes(k)) throw new RangeError(`unknown sample option '${k}'; valid: ${DECODE_KEYS.join(', ')}`);
  }
  const prompt = opts.prompt === undefined ? undefined : String(opts.prompt);
  const base: DecodeOptions = { maxLen: num(opts, 'maxLen'), stop: stops(opts.stop) };
  if (prompt !== undefined && model.encodeSource) base.source = model.encodeSource(prompt);
  else base.prompt = prompt;
  const width = num(opts, 'beam') ?? 1;
  if (width > 1) {
    const kind = opts.lengthPenaltyKind === undefined ? undefined : String(opts.lengthPenaltyKind);
    if (kind !== undefined && kind !== 'gnmt' && kind !== 'simple') throw new RangeError(`sample.lengthPenaltyKind: ${JSON.stringify(kind)} is not one of gnmt, simple`);
    const groups = num(opts, 'groups') ?? 1;
    const w = Math.max(width, n);
    return beamSearch(model, {
      ...base, width: Math.ceil(w / groups) * groups, numReturn: n, groups,
      lengthPenalty: num(opts, 'lengthPenalty'), lengthPenaltyKind: kind as 'gnmt' | 'simple' | undefined,
      diversity: num(opts, 'diversity'), earlyStop: bool(opts, 'earlyStop'),
    }).map((d) => d.text);
  }
  const greedy = bool(opts, 'greedy') ?? false;
  const temperature = greedy ? 0 : num(opts, 'temperature') ?? 1;
  return sampleSequences(model, n, rng, { ...base, temperature, topK: num(opts, 'topK'), topP: num(opts, 'topP') }).map((d) => d.text);
}
