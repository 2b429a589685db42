/**
 * Latent-space tools for models with a N(0, I) prior (VAE, CVAE, GAN, DCGAN, CGAN,
 * ACGAN: anything implementing `LatentModel` of models/vae.ts):
 * - linear and spherical interpolation between latents (slerp: Shoemake 1985; its
 *   use for GAN latents: White 2016, "Sampling Generative Networks",
 *   arXiv:1609.04468), decoded into strips of images;
 * - a grid over a 2-D latent at the prior's quantiles (Kingma & Welling 2014, fig. 4);
 * - encode/decode reconstructions for models with an encoder.
 * Each returns data-space tensors (images [N, C, H, W] in [0, 1]) ready for imageGrid;
 * `latentSamples` maps `--sample.interpolate=slerp`, `--sample.grid`,
 * `--sample.reconstruct` options to Samples.
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { randn } from '../engine/ops/random.js';
import { takeRows } from '../data/batching.js';
import type { Batch, GenerativeModel, SampleOptions, Samples } from '../models/contract.js';
import type { LatentModel } from '../models/vae.js';

export type InterpolationMode = 'lerp' | 'slerp';

/** Whether a model offers the latent interface. */
export function isLatentModel(m: unknown): m is LatentModel {
  const x = m as Partial<LatentModel> | null;
  return !!x && typeof x.latentDim === 'number' && typeof x.decodeLatent === 'function';
}

/**
 * Points between latents a and b (each [L]) at t = 0, 1/(steps-1), ..., 1:
 * lerp (1 - t) a + t b, or slerp sin((1 - t) W)/sin W a + sin(t W)/sin W b with W the
 * angle between a and b (falling back to lerp when they are nearly parallel).
 * @example
 * const zs = interpolateLatents(z0, z1, 8, 'slerp'); // Float64Array[] of length 8
 */
export function interpolateLatents(a: ArrayLike<number>, b: ArrayLike<number>, steps: number, mode: InterpolationMode = 'slerp'): Float64Array[] {
  if (a.length !== b.length) throw new Error(`interpolate: latents of sizes ${a.length} and ${b.length}`);
  if (!(Number.isInteger(steps) && steps >= 2)) throw new Error(`interpolate: steps must be an integer >= 2, got ${steps}`);
  const L = a.length;
  let na = 0;
  let nb = 0;
  let dot = 0;
  for (let i = 0; i < L; i++) {
    na += a[i] * a[i];
    nb += b[i] * b[i];
    dot += a[i] * b[i];
  }
  const cos = Math.max(-1, Math.min(1, dot / Math.sqrt(na * nb || 1)));
  const omega = Math.acos(cos);
  const useSlerp = mode === 'slerp' && Math.sin(omega) > 1e-6;
  const out: Float64Array[] = [];
  for (let s = 0; s < steps; s++) {
    const t = s / (steps - 1);
    const wa = useSlerp ? Math.sin((1 - t) * omega) / Math.sin(omega) : 1 - t;
    const wb = useSlerp ? Math.sin(t * omega) / Math.sin(omega) : t;
    const z = new Float64Array(L);
    for (let i = 0; i < L; i++) z[i] = wa * a[i] + wb * b[i];
    out.push(z);
  }
  return out;
}

function latentTensor(zs: Float64Array[], L: number): Tensor {
  const data = new Float32Array(zs.length * L);
  zs.forEach((z, i) => data.set(z, i * L));
  return new Tensor(data, [zs.length, L]);
}

/** Labels [n] (all `cls`, or undefined for unconditional use). */
function labels(n: number, cls: number | undefined): Tensor | undefined {
  return cls === undefined ? undefined : new Tensor(new Int32Array(n).fill(cls), [n]);
}

export interface InterpolationOptions {
  /** Images per strip (default 10). */
  steps?: number;
  /** Strips, each between two fresh prior draws (default 1). */
  rows?: number;
  mode?: InterpolationMode;
  /** Class of every image (conditional models; default: row r uses class r mod K). */
  cls?: number;
  /** Fixed end points [L] (default: drawn from the prior with rng). */
  from?: ArrayLike<number>;
  to?: ArrayLike<number>;
}

/**
 * Strips of decoded images along interpolations between prior draws:
 * [rows * steps, C, H, W], row-major (one strip per row of an imageGrid with cols = steps).
 * @example
 * const strip = latentInterpolation(model, new Rng(0), { steps: 10, rows: 4, mode: 'slerp' });
 * writePng('interp.png', imageGrid(strip, { cols: 10 }));
 */
export function latentInterpolation(model: LatentModel, rng: Rng, opts: InterpolationOptions = {}): Tensor {
  const steps = opts.steps ?? 10;
  const rows = opts.rows ?? 1;
  const L = model.latentDim;
  const zs: Float64Array[] = [];
  const ys: number[] = [];
  for (let r = 0; r < rows; r++) {
    const a = opts.from && r === 0 ? opts.from : randn([L], rng).values();
    const b = opts.to && r === 0 ? opts.to : randn([L], rng).values();
    zs.push(...interpolateLatents(a, b, steps, opts.mode ?? 'slerp'));
    if (model.numClasses) for (let s = 0; s < steps; s++) ys.push(opts.cls ?? r % model.numClasses);
  }
  const cond = model.numClasses ? new Tensor(Int32Array.from(ys), [ys.length]) : undefined;
  return model.decodeLatent(latentTensor(zs, L), cond);
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`normalQuantile: p must be in (0, 1), got ${p}`);
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  let x: number;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p > 1 - lo) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  return x;
}

export interface GridOptions {
  /** Images per side (default 15). */
  size?: number;
  /** The two latent coordinates varied (default [0, 1]); the others stay 0. */
  dims?: [number, number];
  /** Class of every image (conditional models; default 0). */
  cls?: number;
}

/**
 * Decoded images over a size x size grid of a 2-D latent slice at the prior's
 * quantiles Phi^-1((i + 0.5) / size): [size^2, C, H, W], first coordinate down the rows.
 * @example
 * writePng('manifold.png', imageGrid(latentGrid(vae, { size: 20 }), { cols: 20 }));
 */
export function latentGrid(model: LatentModel, opts: GridOptions = {}): Tensor {
  const size = opts.size ?? 15;
  const [d0, d1] = opts.dims ?? [0, 1];
  const L = model.latentDim;
  if (L < 2 && d1 !== d0) throw new Error(`latentGrid: the model's latent has ${L} dimension(s); a grid needs 2`);
  if (d0 >= L || d1 >= L || d0 < 0 || d1 < 0) throw new Error(`latentGrid: dims [${d0}, ${d1}] out of range for latentDim ${L}`);
  const q = Array.from({ length: size }, (_, i) => normalQuantile((i + 0.5) / size));
  const z = new Float32Array(size * size * L);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      z[(i * size + j) * L + d0] = q[i];
      z[(i * size + j) * L + d1] = q[j];
    }
  }
  const cond = model.numClasses ? labels(size * size, opts.cls ?? 0) : undefined;
  return model.decodeLatent(new Tensor(z, [size * size, L]), cond);
}

/**
 * Originals followed by their reconstructions decode(E[z|x]): [2N, C, H, W] (an
 * imageGrid with cols = N shows originals above reconstructions).
 * @example
 * const pairs = reconstructions(vae, testImages.slice(0, 0, 8));
 */
export function reconstructions(model: LatentModel, x: Tensor, cond?: Tensor): Tensor {
  if (!model.encodeToLatent) throw new Error('reconstructions: this model has no encoder');
  return noGrad(() => {
    const rec = model.decodeLatent(model.encodeToLatent!(x, cond), cond);
    const out = new Float32Array(x.size * 2);
    out.set(x.values());
    out.set(rec.values(), x.size);
    return new Tensor(out, [2 * x.shape[0], ...x.shape.slice(1)]);
  });
}

/**
 * The latent tools as `genlab sample` options: `interpolate` ('lerp' | 'slerp', with
 * `steps`, `rows`), `grid` (true or the side length), `reconstruct` (true or the count;
 * needs `data` with test images, and labels for conditional models). Returns null
 * when no latent option is set.
 * @example
 * const s = latentSamples(model, rng, { interpolate: 'slerp', steps: 8, rows: 4 });
 */
export function latentSamples(
  model: GenerativeModel, rng: Rng, opts: SampleOptions, ctx: { data?: Batch; cls?: number } = {},
): Samples | null {
  const want = opts.interpolate !== undefined || opts.grid !== undefined || opts.reconstruct !== undefined;
  if (!want) return null;
  if (!isLatentModel(model)) throw new Error(`${model.type}: latent tools need a model with a latent prior (vae, cvae, gan, dcgan, cgan, acgan)`);
  const num = (v: string | number | boolean | undefined, dflt: number): number => (typeof v === 'number' ? v : dflt);
  const wrap = (t: Tensor): Samples => (t.rank === 2 ? { kind: 'points', points: t } : { kind: 'image', images: t });
  if (opts.interpolate !== undefined) {
    const mode = opts.interpolate === true ? 'slerp' : String(opts.interpolate);
    if (mode !== 'lerp' && mode !== 'slerp') throw new Error(`interpolate: expected lerp or slerp, got ${mode}`);
    return wrap(latentInterpolation(model, rng, { mode, steps: num(opts.steps, 10), rows: num(opts.rows, 1), cls: ctx.cls }));
  }
  if (opts.grid !== undefined) return wrap(latentGrid(model, { size: num(opts.grid, 15), cls: ctx.cls }));
  if (!ctx.data) throw new Error('reconstruct: needs data (the run\'s test images)');
  const n = Math.min(num(opts.reconstruct, 8), ctx.data.x.shape[0]);
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  const x = takeRows(ctx.data.x, idx);
  const y = ctx.data.y && model.numClasses ? takeRows(ctx.data.y, idx) : undefined;
  return wrap(reconstructions(model, x, y));
}
