/**
 * Sample-based metrics of text models, registered with `registerEvaluator` so that
 * `genlab eval` adds them to the models' own test NLL:
 * - one-item-per-row data (names): novelty, the share of samples that are not in the
 *   training set (makemore's check that a model does not just recite its data), and
 *   uniqueness, the share of distinct samples;
 * - segmented data (name-runs, hier-lm): novelty and uniqueness of the segments, and the
 *   share of adjacent segments in alphabetical order and sharing their first letter
 *   (every training run is sorted, and nearly all its neighbours share a first letter,
 *   so a model that plans its segments keeps them close; for unrelated names the first
 *   is about 0.5 and the second about 0.07).
 */
import { Rng } from '../engine/rng.js';
import type { Tensor } from '../engine/tensor.js';
import { tokenizerFromJSON } from '../data/tokenizer.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { DataSource, GenerativeModel } from '../models/contract.js';
import { registerEvaluator } from './evaluate.js';

/** Rows of <bos> item <eos> <pad>... as strings (the last axis is the sequence). */
export function decodeRows(x: Tensor, tok: Tokenizer): string[] {
  const W = x.shape[x.rank - 1];
  const v = x.i32('decodeRows');
  const out: string[] = [];
  for (let i = 0; i < v.length / W; i++) {
    const ids: number[] = [];
    for (let j = 0; j < W; j++) {
      const t = v[i * W + j];
      if (t === tok.eos) break;
      ids.push(t);
    }
    out.push(tok.decode(ids));
  }
  return out;
}

/** Share of samples not in `train`, and share of distinct samples. */
export function noveltyStats(samples: readonly string[], train: ReadonlySet<string>): { novelty: number; uniqueness: number } {
  if (samples.length === 0) return { novelty: 0, uniqueness: 0 };
  const novel = samples.filter((s) => !train.has(s)).length;
  return { novelty: novel / samples.length, uniqueness: new Set(samples).size / samples.length };
}

function textSamples(model: GenerativeModel, n: number, seed: number): string[] {
  const s = model.sample(n, new Rng(seed));
  if (s.kind !== 'text') throw new Error(`text metrics: ${model.type} returned ${s.kind} samples`);
  return s.texts;
}

/** Novelty and uniqueness of line samples (names), for models trained on 'lines' data. */
export function lineMetrics(model: GenerativeModel, data: DataSource, opts: { quick: boolean; seed: number }): Record<string, number> {
  if (data.info.extra?.format !== 'lines' || !data.info.tokenizer) return {};
  const tok = tokenizerFromJSON(data.info.tokenizer);
  const train = new Set(decodeRows(data.train.x, tok));
  const samples = textSamples(model, opts.quick ? 200 : 1000, opts.seed + 1);
  const { novelty, uniqueness } = noveltyStats(samples, train);
  return { novelty, uniqueness, meanSampleLength: samples.reduce((a, s) => a + s.length, 0) / samples.length };
}

/** Segment novelty and adjacent-pair alphabetical order, for segmented data (name-runs). */
export function segmentMetrics(model: GenerativeModel, data: DataSource, opts: { quick: boolean; seed: number }): Record<string, number> {
  if (data.info.extra?.format !== 'segments' || !data.info.tokenizer) return {};
  const tok = tokenizerFromJSON(data.info.tokenizer);
  const train = new Set(decodeRows(data.train.x, tok));
  const texts = textSamples(model, opts.quick ? 50 : 250, opts.seed + 1);
  const runs = texts.map((t) => t.split(', '));
  const segs = runs.flat();
  let ordered = 0;
  let shared = 0;
  let pairs = 0;
  for (const r of runs) {
    for (let i = 1; i < r.length; i++) {
      pairs++;
      if (r[i - 1] <= r[i]) ordered++;
      if (r[i - 1] !== '' && r[i - 1][0] === r[i][0]) shared++;
    }
  }
  const { novelty, uniqueness } = noveltyStats(segs, train);
  return {
    segmentNovelty: novelty, segmentUniqueness: uniqueness,
    orderedPairs: pairs ? ordered / pairs : 0, sharedFirstLetter: pairs ? shared / pairs : 0,
  };
}

registerEvaluator('rnn-lm', lineMetrics);
registerEvaluator('gpt', lineMetrics);
registerEvaluator('hier-lm', segmentMetrics);
