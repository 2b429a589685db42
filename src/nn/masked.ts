/**
 * Masked layers for autoregressive models.
 *
 * - `madeMasks` and `MaskedLinear`: MADE, Germain, Gregor, Murray & Larochelle 2015,
 *   "MADE: Masked Autoencoder for Distribution Estimation", arXiv:1502.03509, sec. 4.
 *   Each input gets a degree m(d) in 1..D (an ordering), each hidden unit a degree in
 *   [min degree of the layer below, D-1]; hidden unit k sees unit k' of the layer below
 *   when m(k) >= m(k') (eq. 12), and output d sees hidden unit k when m_out(d) > m(k)
 *   (eq. 13). So output d depends only on inputs that come before d in the ordering.
 *   The masks are stored as a persistent buffer `mask` beside `weight` and `bias`,
 *   as in karpathy/pytorch-made's MaskedLinear, so a state dict carries its ordering.
 * - `MaskedConv2d`: PixelCNN, van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel
 *   Recurrent Neural Networks", arXiv:1601.06759, sec. 3.4 (figure 2). Mask type 'A'
 *   (first layer) hides the centre pixel and everything after it in raster order;
 *   type 'B' (later layers) lets the centre through. With `colorGroups` > 1 the channels
 *   split into contiguous groups (R, G, B) and at the centre pixel group g sees groups
 *   < g (type A) or <= g (type B).
 */
import { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import { ShapeError, fmtShape } from '../engine/shape.js';
import { conv2d } from '../engine/ops/conv.js';
import { Linear, linear, Conv2d } from './layers.js';
import type { Conv2dLayerOptions } from './layers.js';

/** How `madeMasks` picks the input ordering and the hidden degrees. */
export interface MadeMaskOptions {
  /**
   * Input ordering: 'natural' (input i has degree i+1), 'reverse', 'random' (a seeded
   * permutation; needs `rng`), or an explicit list of degrees 1..D, one per input.
   */
  ordering?: 'natural' | 'reverse' | 'random' | number[];
  /** Hidden degrees: 'sequential' (spread evenly over the allowed range, deterministic) or 'random' (needs `rng`). */
  hiddenDegrees?: 'sequential' | 'random';
  /** Outputs per input (e.g. 2 for MAF's mu and alpha); output c*D + d belongs to input d. Default 1. */
  outputMultiple?: number;
  /** Extra conditioning inputs appended after the D inputs, with degree 0 (seen by every unit). Default 0. */
  contextDim?: number;
  rng?: Rng;
}

/** The masks of a MADE network, each [out, in] of 0/1, in layer order (hidden layers, then output). */
export interface MadeMasks {
  /** Degree of each input, 1..D (a permutation). */
  inputDegrees: Int32Array;
  /** Degrees of each hidden layer's units. */
  hiddenDegrees: Int32Array[];
  /** One mask per layer: hiddenDims.length + 1 masks; shapes [h1, D + context], [h2, h1], ..., [D * outputMultiple, hL]. */
  masks: Tensor[];
}

function shuffle(a: Int32Array, rng: Rng): Int32Array {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/**
 * Connectivity masks of MADE (Germain et al. 2015, eqs. 12-13).
 * @example
 * const { masks } = madeMasks(784, [500], { ordering: 'natural' });
 * masks[0].shape; // [500, 784]; masks[1].shape: [784, 500]
 */
export function madeMasks(inDim: number, hiddenDims: number[], opts: MadeMaskOptions = {}): MadeMasks {
  const D = inDim;
  if (!(Number.isInteger(D) && D >= 1)) throw new Error(`madeMasks: inDim must be a positive integer, got ${inDim}`);
  const K = opts.outputMultiple ?? 1;
  const ctx = opts.contextDim ?? 0;
  const ord = opts.ordering ?? 'natural';
  let mIn: Int32Array;
  if (Array.isArray(ord)) {
    if (ord.length !== D || [...ord].sort((a, b) => a - b).some((v, i) => v !== i + 1)) {
      throw new Error(`madeMasks: ordering must list the degrees 1..${D} once each`);
    }
    mIn = Int32Array.from(ord);
  } else {
    mIn = Int32Array.from({ length: D }, (_, i) => (ord === 'reverse' ? D - i : i + 1));
    if (ord === 'random') {
      if (!opts.rng) throw new Error("madeMasks: ordering 'random' needs opts.rng");
      shuffle(mIn, opts.rng);
    }
  }
  const hidden: Int32Array[] = [];
  let prevMin = 1;
  for (const H of hiddenDims) {
    // Units of degree D would connect to no output; cap at D-1 (and 1 when D == 1, then unused).
    const lo = Math.min(prevMin, Math.max(1, D - 1));
    const hi = Math.max(lo, D - 1);
    const m = new Int32Array(H);
    for (let k = 0; k < H; k++) {
      if (opts.hiddenDegrees === 'random') {
        if (!opts.rng) throw new Error("madeMasks: hiddenDegrees 'random' needs opts.rng");
        m[k] = opts.rng.int(lo, hi + 1);
      } else {
        // Spread evenly over lo..hi, both ends included: with fewer units than degrees, cycling (k % range)
        // would leave the highest degrees (the last inputs) with no path to any output.
        m[k] = H === 1 ? lo : lo + Math.round((k * (hi - lo)) / (H - 1));
      }
    }
    hidden.push(m);
    prevMin = m.reduce((a, b) => Math.min(a, b), D);
  }
  const masks: Tensor[] = [];
  // Input layer degrees including context units (degree 0).
  let below: Int32Array = new Int32Array(D + ctx);
  below.set(mIn);
  for (const m of hidden) {
    const w = new Float32Array(m.length * below.length);
    for (let k = 0; k < m.length; k++) for (let j = 0; j < below.length; j++) w[k * below.length + j] = m[k] >= below[j] ? 1 : 0;
    masks.push(new Tensor(w, [m.length, below.length]));
    below = m;
  }
  const w = new Float32Array(K * D * below.length);
  for (let c = 0; c < K; c++) {
    for (let d = 0; d < D; d++) {
      const row = (c * D + d) * below.length;
      // With no hidden layer, `below` is the input layer itself (context degree 0 < any input).
      for (let j = 0; j < below.length; j++) w[row + j] = mIn[d] > below[j] ? 1 : 0;
    }
  }
  masks.push(new Tensor(w, [K * D, below.length]));
  return { inputDegrees: mIn, hiddenDegrees: hidden, masks };
}

/**
 * A Linear layer whose weight is multiplied by a fixed 0/1 mask: y = x (W * M)^T + b.
 * State dict keys: weight [out, in], bias [out], mask [out, in] (a persistent buffer).
 * @example
 * const { masks } = madeMasks(4, [8]);
 * const l1 = new MaskedLinear(4, 8, rng, { mask: masks[0] });
 * const h = l1.forward(x); // [B, 4] -> [B, 8]
 */
export class MaskedLinear extends Linear {
  mask: Tensor;

  constructor(inFeatures: number, outFeatures: number, rng: Rng, opts: { bias?: boolean; mask?: Tensor } = {}) {
    super(inFeatures, outFeatures, rng, { bias: opts.bias });
    const m = new Tensor(new Float32Array(outFeatures * inFeatures).fill(1), [outFeatures, inFeatures]);
    this.mask = this.registerBuffer('mask', m);
    if (opts.mask) this.setMask(opts.mask);
  }

  /** Replace the mask in place (e.g. a new ordering for order-agnostic training). */
  setMask(mask: Tensor): void {
    if (mask.shape.length !== 2 || mask.shape[0] !== this.outFeatures || mask.shape[1] !== this.inFeatures) {
      throw new ShapeError(`MaskedLinear(${this.inFeatures}, ${this.outFeatures}).setMask: mask ${fmtShape(mask.shape)} should be [${this.outFeatures}, ${this.inFeatures}]`);
    }
    const src = mask.contiguous().values();
    const dst = this.mask.data as Float32Array;
    for (let i = 0; i < dst.length; i++) dst[i] = src[i];
  }

  override forward(x: Tensor): Tensor {
    if (x.rank === 0 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new ShapeError(`MaskedLinear(${this.inFeatures}, ${this.outFeatures}): input ${fmtShape(x.shape)} should end in ${this.inFeatures}`);
    }
    return linear(x, this.weight.mul(this.mask), this.bias);
  }
}

/** PixelCNN mask type: 'A' hides the centre pixel (first layer), 'B' lets it through. */
export type PixelMaskType = 'A' | 'B';

/**
 * The [out, in, kh, kw] 0/1 mask of a PixelCNN convolution (van den Oord et al. 2016,
 * fig. 2): rows below the centre and pixels right of the centre are 0; the centre
 * is 1 for type B, 0 for type A (or, with colour groups, decided per channel group).
 */
export function pixelCnnMask(type: PixelMaskType, outC: number, inC: number, kh: number, kw: number, colorGroups = 1): Tensor {
  const m = new Float32Array(outC * inC * kh * kw);
  const ci = Math.floor(kh / 2);
  const cj = Math.floor(kw / 2);
  const group = (c: number, C: number): number => Math.floor((c * colorGroups) / C);
  for (let o = 0; o < outC; o++) {
    for (let i = 0; i < inC; i++) {
      const go = group(o, outC);
      const gi = group(i, inC);
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          let v = 0;
          if (y < ci || (y === ci && x < cj)) v = 1;
          else if (y === ci && x === cj) v = type === 'A' ? (gi < go ? 1 : 0) : gi <= go ? 1 : 0;
          m[((o * inC + i) * kh + y) * kw + x] = v;
        }
      }
    }
  }
  return new Tensor(m, [outC, inC, kh, kw]);
}

/** Options of `MaskedConv2d`: Conv2d's, plus the mask type and channel groups. */
export interface MaskedConv2dOptions extends Conv2dLayerOptions {
  /** Number of colour groups the channels split into (3 for RGB with channel masking, default 1). */
  colorGroups?: number;
}

/**
 * A Conv2d whose kernel is masked so that output pixel (i, j) sees only pixels above it
 * and to its left (and itself for type B). Use 'same' padding (k // 2) with stride 1.
 * State dict keys: weight, bias, mask.
 * @example
 * const c1 = new MaskedConv2d('A', 1, 64, 7, rng, { padding: 3 }); // [N,1,28,28] -> [N,64,28,28]
 */
export class MaskedConv2d extends Conv2d {
  readonly maskType: PixelMaskType;
  mask: Tensor;

  constructor(maskType: PixelMaskType, inChannels: number, outChannels: number, kernelSize: number | [number, number], rng: Rng, opts: MaskedConv2dOptions = {}) {
    super(inChannels, outChannels, kernelSize, rng, opts);
    if (maskType !== 'A' && maskType !== 'B') throw new Error(`MaskedConv2d: mask type must be 'A' or 'B', got ${JSON.stringify(maskType)}`);
    if (this.groups !== 1) throw new Error('MaskedConv2d: grouped convolutions are not supported');
    this.maskType = maskType;
    const [kh, kw] = this.kernelSize;
    this.mask = this.registerBuffer('mask', pixelCnnMask(maskType, outChannels, inChannels, kh, kw, opts.colorGroups ?? 1));
  }

  override forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(`MaskedConv2d(${this.inChannels}, ${this.outChannels}): expected input [N, ${this.inChannels}, H, W], got ${fmtShape(x.shape)}`);
    }
    return conv2d(x, this.weight.mul(this.mask), this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation });
  }

  override extraRepr(): string {
    return `mask_type=${this.maskType}, ${super.extraRepr()}`;
  }
}
