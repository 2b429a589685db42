/**
 * Tokenizers: characters, words, and byte-pair encoding (Sennrich et al. 2016,
 * "Neural Machine Translation of Rare Words with Subword Units"; the greedy
 * merge-by-rank encoder of GPT-2). Every tokenizer has optional special tokens
 * (<pad>, <bos>, <eos>, <unk>) at fixed low ids, and saves to JSON so a checkpoint can
 * rebuild it.
 */

export const SPECIALS = ['<pad>', '<bos>', '<eos>', '<unk>'] as const;
export type Special = (typeof SPECIALS)[number];

export interface TokenizerJSON {
  kind: 'char' | 'word' | 'bpe';
  vocab: string[];
  specials: boolean;
  merges?: [string, string][];
  lowercase?: boolean;
}

export interface Tokenizer {
  readonly vocabSize: number;
  /** Ids of the special tokens, or -1 when the tokenizer has none. */
  readonly pad: number;
  readonly bos: number;
  readonly eos: number;
  readonly unk: number;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** The string of one token id. */
  token(id: number): string;
  toJSON(): TokenizerJSON;
}

abstract class VocabTokenizer implements Tokenizer {
  protected readonly vocab: string[];
  protected readonly index = new Map<string, number>();
  readonly specials: boolean;

  constructor(vocab: string[], specials: boolean) {
    this.specials = specials;
    this.vocab = specials ? [...SPECIALS, ...vocab.filter((t) => !(SPECIALS as readonly string[]).includes(t))] : [...vocab];
    this.vocab.forEach((t, i) => this.index.set(t, i));
  }
  get vocabSize(): number {
    return this.vocab.length;
  }
  get pad(): number {
    return this.specials ? 0 : -1;
  }
  get bos(): number {
    return this.specials ? 1 : -1;
  }
  get eos(): number {
    return this.specials ? 2 : -1;
  }
  get unk(): number {
    return this.specials ? 3 : -1;
  }
  token(id: number): string {
    const t = this.vocab[id];
    if (t === undefined) throw new RangeError(`tokenizer: id ${id} is outside the vocabulary of ${this.vocab.length}`);
    return t;
  }
  protected lookup(t: string, where: string): number {
    const id = this.index.get(t);
    if (id !== undefined) return id;
    if (this.unk >= 0) return this.unk;
    throw new Error(`tokenizer: ${JSON.stringify(t)} in ${where} is not in the vocabulary (build it with specials for <unk>)`);
  }
  protected isSpecial(id: number): boolean {
    return this.specials && id < SPECIALS.length;
  }
  abstract encode(text: string): number[];
  abstract decode(ids: readonly number[]): string;
  abstract toJSON(): TokenizerJSON;
}

/**
 * One token per character (Unicode code point).
 * @example
 * const tok = CharTokenizer.fromText('hello world');
 * tok.decode(tok.encode('hello')) === 'hello';
 */
export class CharTokenizer extends VocabTokenizer {
  static fromText(text: string | string[], opts: { specials?: boolean } = {}): CharTokenizer {
    const set = new Set<string>();
    for (const t of Array.isArray(text) ? text : [text]) for (const ch of t) set.add(ch);
    return new CharTokenizer([...set].sort(), opts.specials ?? false);
  }
  encode(text: string): number[] {
    return Array.from(text, (ch) => this.lookup(ch, 'text'));
  }
  decode(ids: readonly number[]): string {
    return ids.filter((i) => !this.isSpecial(i)).map((i) => this.token(i)).join('');
  }
  toJSON(): TokenizerJSON {
    return { kind: 'char', vocab: this.vocab.slice(this.specials ? SPECIALS.length : 0), specials: this.specials };
  }
}

const WORD_RE = /[A-Za-z0-9\u00C0-\u024F]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]/gu;

/** Split text into words and single punctuation marks. */
export function splitWords(text: string, lowercase = true): string[] {
  return (lowercase ? text.toLowerCase() : text).match(WORD_RE) ?? [];
}

/** One token per word or punctuation mark; rare words map to <unk>. */
export class WordTokenizer extends VocabTokenizer {
  readonly lowercase: boolean;
  constructor(vocab: string[], lowercase = true) {
    super(vocab, true);
    this.lowercase = lowercase;
  }
  static fromText(text: string | string[], opts: { maxVocab?: number; minCount?: number; lowercase?: boolean } = {}): WordTokenizer {
    const counts = new Map<string, number>();
    const lower = opts.lowercase ?? true;
    for (const t of Array.isArray(text) ? text : [text]) for (const w of splitWords(t, lower)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const words = [...counts.entries()]
      .filter(([, c]) => c >= (opts.minCount ?? 1))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, opts.maxVocab ?? Infinity)
      .map(([w]) => w);
    return new WordTokenizer(words, lower);
  }
  encode(text: string): number[] {
    return splitWords(text, this.lowercase).map((w) => this.lookup(w, 'text'));
  }
  decode(ids: readonly number[]): string {
    let out = '';
    for (const i of ids) {
      if (this.isSpecial(i) && i !== this.unk) continue;
      const w = this.token(i);
      out += out === '' || /^[^\w<]/.test(w) ? w : ' ' + w;
    }
    return out;
  }
  toJSON(): TokenizerJSON {
    return { kind: 'word', vocab: this.vocab.slice(SPECIALS.length), specials: true, lowercase: this.lowercase };
  }
}

/**
 * Byte-pair encoding over characters: starts from the characters of the corpus and
 * learns `numMerges` merges of the most frequent adjacent pair (within words, with
 * the leading space kept on the word as GPT-2 does).
 */
export class BpeTokenizer extends VocabTokenizer {
  readonly merges: [string, string][];
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  constructor(vocab: string[], merges: [string, string][], specials = true) {
    super(vocab, specials);
    this.merges = merges;
    merges.forEach(([a, b], i) => this.ranks.set(a + '\u0000' + b, i));
  }

  static train(text: string | string[], opts: { numMerges?: number; specials?: boolean } = {}): BpeTokenizer {
    const numMerges = opts.numMerges ?? 500;
    const wordCounts = new Map<string, number>();
    const chars = new Set<string>();
    for (const t of Array.isArray(text) ? text : [text]) {
      for (const w of t.match(/ ?[^\s]+|\s+/gu) ?? []) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
      for (const ch of t) chars.add(ch);
    }
    const words = [...wordCounts.entries()].map(([w, c]) => ({ sym: Array.from(w), c }));
    const merges: [string, string][] = [];
    const vocab = [...chars].sort();
    for (let m = 0; m < numMerges; m++) {
      const pairs = new Map<string, number>();
      for (const { sym, c } of words) {
        for (let i = 0; i + 1 < sym.length; i++) {
          const k = sym[i] + '\u0000' + sym[i + 1];
          pairs.set(k, (pairs.get(k) ?? 0) + c);
        }
      }
      let best = '';
      let bestC = 1;
      for (const [k, c] of pairs) if (c > bestC || (c === bestC && best !== '' && k < best)) [best, bestC] = [k, c];
      if (best === '') break;
      const [a, b] = best.split('\u0000');
      merges.push([a, b]);
      vocab.push(a + b);
      for (const w of words) w.sym = mergePair(w.sym, a, b);
    }
    return new BpeTokenizer(vocab, merges, opts.specials ?? true);
  }

  private encodeWord(w: string): number[] {
    const hit = this.cache.get(w);
    if (hit) return hit;
    let sym = Array.from(w);
    for (;;) {
      let bestRank = Infinity;
      let bestI = -1;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = this.ranks.get(sym[i] + '\u0000' + sym[i + 1]);
        if (r !== undefined && r < bestRank) [bestRank, bestI] = [r, i];
      }
      if (bestI < 0) break;
      const [a, b] = this.merges[bestRank];
      sym = mergePair(sym, a, b);
    }
    const ids = sym.map((s) => this.lookup(s, JSON.stringify(w)));
    if (this.cache.size < 100000) this.cache.set(w, ids);
    return ids;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const w of text.match(/ ?[^\s]+|\s+/gu) ?? []) out.push(...this.encodeWord(w));
    return out;
  }
  decode(ids: readonly number[]): string {
    return ids.filter((i) => !this.isSpecial(i)).map((i) => this.token(i)).join('');
  }
  toJSON(): TokenizerJSON {
    return { kind: 'bpe', vocab: this.vocab.slice(this.specials ? SPECIALS.length : 0), specials: this.specials, merges: this.merges };
  }
}

function mergePair(sym: string[], a: string, b: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < sym.length; i++) {
    if (i + 1 < sym.length && sym[i] === a && sym[i + 1] === b) {
      out.push(a + b);
      i++;
    } else out.push(sym[i]);
  }
  return out;
}

/** Rebuild a tokenizer saved with toJSON(). */
export function tokenizerFromJSON(j: TokenizerJSON): Tokenizer {
  if (!j || !Array.isArray(j.vocab)) throw new Error('tokenizer JSON: missing vocab');
  switch (j.kind) {
    case 'char': return new CharTokenizer(j.vocab, j.specials);
    case 'word': return new WordTokenizer(j.vocab, j.lowercase ?? true);
    case 'bpe': return new BpeTokenizer(j.vocab, j.merges ?? [], j.specials);
    default: throw new Error(`tokenizer JSON: unknown kind ${JSON.stringify((j as { kind: unknown }).kind)}`);
  }
}
