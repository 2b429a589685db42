/**
 * Hierarchical sampling: the conductor loop of MusicVAE's hierarchical decoder (Roberts
 * et al. 2018, arXiv:1803.05428, section 3.2) for any `HierarchicalModel`
 * (models/sequence.ts). For each segment k:
 *   1. the top level gives the codes of segment k (from the segments before it);
 *   2. the bottom level decodes segment k conditioned on its code, with any strategy of
 *      decoding.ts (temperature, top-k, top-p, greedy, or beam search per row);
 *   3. the generated segment goes back to the top level, which plans segment k + 1.
 */
import type { Rng } from '../engine/rng.js';
import type { HierarchicalModel } from '../models/sequence.js';
import type { SampleOptions } from '../models/contract.js';
import { beamSearch, sampleSequences } from './decoding.js';
import type { BeamOptions, SamplingOptions } from './decoding.js';

export interface HierarchicalOptions {
  /** Segments to generate (default: the model's). */
  segments?: number;
  /** Strategy of the bottom level: sampling options, or beam search when `beam` > 1. */
  sampling?: SamplingOptions;
  beam?: Omit<BeamOptions, 'numReturn'>;
}

export interface HierarchicalSample {
  /** The segments' texts joined with the model's separator. */
  text: string;
  segments: string[];
  /** Token ids of each segment. */
  tokens: number[][];
}

/**
 * n two-level samples.
 * @example
 * const out = hierarchicalSample(hier, 4, new Rng(0), { sampling: { temperature: 0.8 } });
 * out[0].segments; // ['abbe', 'abbey', 'abbi', 'abbie']
 */
export function hierarchicalSample(model: HierarchicalModel, n: number, rng: Rng, opts: HierarchicalOptions = {}): HierarchicalSample[] {
  const K = opts.segments ?? model.segments;
  if (!(Number.isInteger(K) && K >= 1)) throw new RangeError(`hierarchicalSample: segments must be a positive integer, got ${K}`);
  let plan = model.startPlan(n);
  const segs: string[][] = Array.from({ length: n }, () => []);
  const toks: number[][][] = Array.from({ length: n }, () => []);
  for (let k = 0; k < K; k++) {
    let ids: number[][];
    let texts: string[];
    if (opts.beam) {
      // Beam search runs per row, each with that row's code.
      const best = Array.from({ length: n }, (_, r) => beamSearch(model.segmentDecoder(plan, Int32Array.of(r)), { ...opts.beam!, numReturn: 1 })[0]);
      ids = best.map((d) => d.tokens);
      texts = best.map((d) => d.text);
    } else {
      const out = sampleSequences(model.segmentDecoder(plan), n, rng, opts.sampling ?? {});
      ids = out.map((d) => d.tokens);
      texts = out.map((d) => d.text);
    }
    for (let r = 0; r < n; r++) {
      segs[r].push(texts[r]);
      toks[r].push(ids[r]);
    }
    plan = model.endSegment(plan, ids);
  }
  return segs.map((s, r) => ({ text: s.join(model.separator), segments: s, tokens: toks[r] }));
}

/**
 * CLI mapping for hierarchical models: `--sample.segments`, and the options of
 * decodeSamples (temperature, topK, topP, greedy, beam, lengthPenalty, maxLen) applied
 * to every segment.
 */
export function hierarchicalSamples(model: HierarchicalModel, n: number, rng: Rng, opts: SampleOptions = {}): string[] {
  const known = ['segments', 'temperature', 'topK', 'topP', 'greedy', 'beam', 'lengthPenalty', 'lengthPenaltyKind', 'maxLen'];
  for (const k of Object.keys(opts)) if (!known.includes(k)) throw new RangeError(`unknown sample option '${k}' for a hierarchical model; valid: ${known.join(', ')}`);
  const num = (k: string): number | undefined => {
    if (opts[k] === undefined) return undefined;
    const v = Number(opts[k]);
    if (!Number.isFinite(v)) throw new RangeError(`sample.${k}: expected a number, got ${JSON.stringify(opts[k])}`);
    return v;
  };
  const greedy = opts.greedy === true || opts.greedy === 'true' || opts.greedy === 1;
  const width = num('beam') ?? 1;
  const maxLen = num('maxLen');
  const o: HierarchicalOptions = { segments: num('segments') };
  if (width > 1) {
    const kind = opts.lengthPenaltyKind === 'simple' ? 'simple' : 'gnmt';
    o.beam = { width, maxLen, lengthPenalty: num('lengthPenalty'), lengthPenaltyKind: kind };
  } else o.sampling = { temperature: greedy ? 0 : num('temperature'), topK: num('topK'), topP: num('topP'), maxLen };
  return hierarchicalSample(model, n, rng, o).map((s) => s.text);
}
