/**
 * Neural Turing Machine (Graves, Wayne & Danihelka 2014, "Neural Turing Machines",
 * arXiv:1410.5401) and an LSTM baseline, for the algorithmic tasks copy, repeat-copy
 * and associative recall (the task generator lives here so that models can draw
 * fresh inputs; src/train/task_data.ts turns it into a data source).
 *
 * One NTM step (sec. 3), for each head, from the controller output h_t:
 *   1. content weights    w^c_t(i) = softmax_i(beta_t K[k_t, M_t(i)]), K = cosine similarity (eqs. 5-6)
 *   2. interpolation      w^g_t = g_t w^c_t + (1 - g_t) w_{t-1}                          (eq. 7)
 *   3. convolutional shift w~_t(i) = sum_j w^g_t(j) s_t(i - j)  (circular, shifts -1..1) (eq. 8)
 *   4. sharpening         w_t(i) = w~_t(i)^gamma_t / sum_j w~_t(j)^gamma_t, gamma >= 1    (eq. 9)
 * Read heads read r_t = sum_i w_t(i) M_t(i) (eq. 2) before the write heads erase and add:
 *   M~_t(i) = M_{t-1}(i) [1 - w_t(i) e_t],  M_t(i) = M~_t(i) + w_t(i) a_t (eqs. 3-4).
 * Implementation choices follow Collier & Beel 2018 ("Implementing Neural Turing
 * Machines", arXiv:1807.08518): memory initialised to a small constant (1e-6), learned
 * initial read vectors, initial head weights focused on location 0, gradient clipping.
 * The loss is binary cross-entropy on the output phase (mask), in nats per sequence.
 */
import { Tensor, noGrad } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { concat, stack } from '../engine/ops/shape_ops.js';
import { softplus } from '../engine/ops/elementwise.js';
import { memoryRead, memoryWrite, ntmHeadAddressing } from '../engine/ops/memory.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import { LSTM, LSTMCell } from '../nn/rnn.js';
import type { Batch, DataInfo, GenerativeModel, LossOutput, SampleOptions, Samples } from './contract.js';
import { registerModel } from './registry.js';
import type { Config } from './registry.js';

// ---------------------------------------------------------------------------
// The algorithmic tasks (Graves et al. 2014, sec. 4).

export const ALGORITHMIC_TASKS = ['copy', 'repeat-copy', 'assoc-recall'] as const;
export type AlgorithmicTask = (typeof ALGORITHMIC_TASKS)[number];

/** Size parameters of an algorithmic task. */
export interface TaskSpec {
  /** Width of each input vector (8 for copy, 6 for recall in the paper). */
  bits: number;
  /** Sequence length range for copy / repeat-copy; number of items for recall. */
  minLen: number;
  maxLen: number;
  /** Largest repeat count (repeat-copy). */
  maxRepeats: number;
  /** Vectors per item (recall). */
  itemLen: number;
}

export const TASK_DEFAULTS: Record<AlgorithmicTask, TaskSpec> = {
  copy: { bits: 8, minLen: 1, maxLen: 20, maxRepeats: 1, itemLen: 1 },
  'repeat-copy': { bits: 8, minLen: 1, maxLen: 10, maxRepeats: 10, itemLen: 1 },
  'assoc-recall': { bits: 6, minLen: 2, maxLen: 6, maxRepeats: 1, itemLen: 3 },
};

/** Time steps an example of size `len` needs (repeat-copy: with `reps` repeats). */
export function taskSteps(task: AlgorithmicTask, s: TaskSpec, len: number, reps = s.maxRepeats): number {
  if (task === 'copy') return 2 * len + 1;
  if (task === 'repeat-copy') return len + 1 + len * reps + 1;
  return len * (s.itemLen + 1) + 1 + s.itemLen + 1 + s.itemLen;
}

/** Output width of a task (repeat-copy adds the end-marker channel). */
export function taskOutDim(task: AlgorithmicTask, s: TaskSpec): number {
  return task === 'repeat-copy' ? s.bits + 1 : s.bits;
}

/**
 * n examples with sizes drawn uniformly from [minLen, maxLen] (or all `fixedLen`),
 * padded to the longest length of that range: x [n, T, bits + 2] (bits, then two
 * control channels), y [n, T, outDim], mask [n, T] (1 on the output phase), len [n].
 *   copy: bits, a delimiter (channel bits), then blank input while the model writes them back.
 *   repeat-copy: bits, a delimiter with the repeat count R / maxRepeats on channel
 *     bits + 1; output the sequence R times, then an end marker (channel bits of y).
 *   assoc-recall: items of itemLen vectors, each after an item delimiter (channel
 *     bits); a query delimiter (channel bits + 1), a query item, the query delimiter
 *     again; output the item that followed the query.
 * @example
 * const b = generateTask('copy', 4, TASK_DEFAULTS.copy, new Rng(0)); // b.x [4, 41, 10]
 */
export function generateTask(task: AlgorithmicTask, n: number, s: TaskSpec, rng: Rng, fixedLen?: number): Batch {
  const lo = fixedLen ?? s.minLen;
  const hi = fixedLen ?? s.maxLen;
  const T = taskSteps(task, s, hi);
  const inDim = s.bits + 2;
  const outDim = taskOutDim(task, s);
  const x = new Float32Array(n * T * inDim);
  const y = new Float32Array(n * T * outDim);
  const mask = new Float32Array(n * T);
  const lens = new Int32Array(n);
  const vec = (): number[] => Array.from({ length: s.bits }, () => (rng.uniform() < 0.5 ? 1 : 0));
  for (let i = 0; i < n; i++) {
    const L = rng.int(lo, hi + 1);
    lens[i] = L;
    const X = (t: number, c: number, v: number): void => void (x[(i * T + t) * inDim + c] = v);
    const putX = (t: number, v: number[]): void => v.forEach((b, c) => X(t, c, b));
    const putY = (t: number, v: number[]): void => {
      v.forEach((b, c) => (y[(i * T + t) * outDim + c] = b));
      mask[i * T + t] = 1;
    };
    if (task === 'copy' || task === 'repeat-copy') {
      const seq = Array.from({ length: L }, vec);
      seq.forEach((v, t) => putX(t, v));
      X(L, s.bits, 1);
      if (task === 'copy') {
        seq.forEach((v, t) => putY(L + 1 + t, v));
      } else {
        const R = rng.int(1, s.maxRepeats + 1);
        X(L, s.bits + 1, R / s.maxRepeats);
        for (let r = 0; r < R; r++) seq.forEach((v, t) => putY(L + 1 + r * L + t, [...v, 0]));
        putY(L + 1 + R * L, [...new Array<number>(s.bits).fill(0), 1]);
      }
    } else {
      const items = Array.from({ length: L }, () => Array.from({ length: s.itemLen }, vec));
      let t = 0;
      for (const item of items) {
        X(t++, s.bits, 1);
        for (const v of item) putX(t++, v);
      }
      const q = rng.int(0, L - 1); // any item but the last
      X(t++, s.bits + 1, 1);
      for (const v of items[q]) putX(t++, v);
      X(t++, s.bits + 1, 1);
      for (const v of items[q + 1]) putY(t++, v);
    }
  }
  return { x: new Tensor(x, [n, T, inDim]), y: new Tensor(y, [n, T, outDim]), mask: new Tensor(mask, [n, T]), len: new Tensor(lens, [n]) };
}

// ---------------------------------------------------------------------------
// Addressing (sec. 3.3), each step a function on batched tensors.

/** Content weights (eqs. 5-6): memory [B, N, M], key [B, M], beta [B, 1] -> [B, N]. */
export function contentWeights(memory: Tensor, key: Tensor, beta: Tensor): Tensor {
  const dot = memory.matmul(key.unsqueeze(2)).squeeze(2); // (B, N)
  const memNorm = memory.square().sum(2).add(1e-8).sqrt(); // (B, N)
  const keyNorm = key.square().sum(1, true).add(1e-8).sqrt(); // (B, 1)
  const cos = dot.div(memNorm.mul(keyNorm));
  return cos.mul(beta).softmax(1);
}

/** Interpolation gate (eq. 7): g [B, 1] in [0, 1]. */
export function interpolate(wContent: Tensor, wPrev: Tensor, g: Tensor): Tensor {
  return wContent.mul(g).add(wPrev.mul(g.neg().add(1)));
}

/** Circular convolution (eq. 8) with shift weights s [B, 2R + 1] over shifts -R..R. */
export function circularShift(w: Tensor, s: Tensor): Tensor {
  const N = w.shape[1];
  const R = (s.shape[1] - 1) / 2;
  let out: Tensor | null = null;
  for (let k = -R; k <= R; k++) {
    // roll(w, k)(i) = w(i - k): the weight moves k places forward.
    const m = ((k % N) + N) % N;
    const rolled = m === 0 ? w : concat([w.slice(1, N - m, N), w.slice(1, 0, N - m)], 1);
    const term = rolled.mul(s.slice(1, k + R, k + R + 1));
    out = out ? out.add(term) : term;
  }
  return out!;
}

/** Sharpening (eq. 9): gamma [B, 1] >= 1. */
export function sharpen(w: Tensor, gamma: Tensor): Tensor {
  const p = w.add(1e-12).log().mul(gamma).exp();
  return p.div(p.sum(1, true));
}

// ---------------------------------------------------------------------------
// Config.

export interface NtmConfig {
  type: 'ntm' | 'lstm-seq';
  /** NTM controller: 'lstm' or 'mlp' (feed-forward, one hidden layer). */
  controller: string;
  /** Controller width (LSTM baseline: width of each layer). */
  hiddenDim: number;
  /** LSTM baseline: stacked layers (the paper's baseline: 3 x 256). */
  nLayer: number;
  /** Memory locations N. */
  memN: number;
  /** Width of each memory location M. */
  memM: number;
  /** Read heads. */
  readHeads: number;
  /** Write heads. */
  writeHeads: number;
  /** Shifts allowed: -shiftRange..shiftRange. */
  shiftRange: number;
  /** Task sizes (read by the data source; 0 = the task's default): input width, lengths / items, repeats, examples generated. */
  taskBits: number;
  taskMinLen: number;
  taskMaxLen: number;
  taskMaxRepeats: number;
  taskExamples: number;
}

export const NTM_DEFAULTS: Config = {
  controller: 'lstm', hiddenDim: 100, nLayer: 1, memN: 128, memM: 20, readHeads: 1, writeHeads: 1, shiftRange: 1,
  taskBits: 0, taskMinLen: 0, taskMaxLen: 0, taskMaxRepeats: 0, taskExamples: 20000,
};
export const LSTM_SEQ_DEFAULTS: Config = { ...NTM_DEFAULTS, hiddenDim: 256, nLayer: 3 };
export const NTM_CHOICES = { controller: ['lstm', 'mlp'] } as const;

const TASK_TINY = { taskMaxLen: 5, taskExamples: 512 };
export const NTM_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { hiddenDim: 32, memN: 16, memM: 8, ...TASK_TINY }, train: { steps: 100, batchSize: 16, lr: 3e-3 } },
  small: { model: { hiddenDim: 100, memN: 64, memM: 20 }, train: { steps: 8000, batchSize: 32, lr: 1e-3, clipNorm: 10, evalEvery: 1000 } },
};
export const LSTM_SEQ_PRESETS: Record<string, { model?: Config; train?: Config }> = {
  tiny: { model: { hiddenDim: 32, nLayer: 1, ...TASK_TINY }, train: { steps: 100, batchSize: 16, lr: 3e-3 } },
  // 5000 steps: ~17 min at the 4.9 steps/s measured on an idle machine (8000 took 27).
  small: { model: { hiddenDim: 256, nLayer: 3 }, train: { steps: 5000, batchSize: 32, lr: 1e-3, clipNorm: 10, evalEvery: 1000 } },
};

// ---------------------------------------------------------------------------
// The models.

/** Task facts a model reads from DataInfo.extra. */
function taskOf(type: string, data: DataInfo): { task: AlgorithmicTask; spec: TaskSpec; inDim: number; outDim: number } {
  const e = data.extra ?? {};
  if (data.kind !== 'sequence' || !(ALGORITHMIC_TASKS as readonly string[]).includes(e.task as string)) {
    throw new Error(`${type}: needs an algorithmic sequence task (${ALGORITHMIC_TASKS.join(', ')}), got data '${data.name}'`);
  }
  const task = e.task as AlgorithmicTask;
  const spec = { ...TASK_DEFAULTS[task], ...(e as Partial<TaskSpec>) };
  return { task, spec, inDim: data.shape[1], outDim: e.outDim as number };
}

/** Shared loss, evaluation and sampling of models mapping x [B, T, in] to logits [B, T, out]. */
abstract class SequenceTaskModel extends Module implements GenerativeModel {
  abstract readonly type: 'ntm' | 'lstm-seq';
  readonly config: NtmConfig;
  protected readonly task: AlgorithmicTask;
  protected readonly spec: TaskSpec;
  protected readonly inDim: number;
  protected readonly outDim: number;

  constructor(type: 'ntm' | 'lstm-seq', config: Config, data: DataInfo) {
    super();
    this.config = { ...((type === 'ntm' ? NTM_DEFAULTS : LSTM_SEQ_DEFAULTS) as unknown as NtmConfig), ...(config as unknown as NtmConfig), type };
    const t = taskOf(type, data);
    this.task = t.task;
    this.spec = t.spec;
    this.inDim = t.inDim;
    this.outDim = t.outDim;
  }

  /** Output logits [B, T, outDim] for inputs x [B, T, inDim]. */
  abstract forwardLogits(x: Tensor): Tensor;

  /** Masked binary cross-entropy per sequence [B] (nats), from logits. */
  private bcePerSequence(logits: Tensor, y: Tensor, mask: Tensor): Tensor {
    const bce = softplus(logits).sub(logits.mul(y)); // = BCEWithLogits(l, y)
    return bce.sum(2).mul(mask).sum(1);
  }

  loss(batch: Batch): LossOutput {
    const B = batch.x.shape[0];
    const logits = this.forwardLogits(batch.x);
    const perSeq = this.bcePerSequence(logits, batch.y, batch.mask);
    const loss = perSeq.sum().div(B);
    const errs = noGrad(() => this.bitErrors(logits, batch.y, batch.mask));
    return { loss, metrics: { bitsPerSeq: loss.item() / Math.LN2, bitErrors: errs.reduce((a, b) => a + b, 0) / B } };
  }

  /** Wrong bits per sequence (thresholding sigmoid at 0.5) on the masked steps. */
  private bitErrors(logits: Tensor, y: Tensor, mask: Tensor): number[] {
    const [B, T, C] = logits.shape;
    const l = logits.contiguous().f32();
    const t = y.contiguous().f32();
    const m = mask.contiguous().f32();
    const out = new Array<number>(B).fill(0);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < T; s++) {
        if (m[b * T + s] === 0) continue;
        for (let c = 0; c < C; c++) {
          const i = (b * T + s) * C + c;
          if ((l[i] > 0 ? 1 : 0) !== t[i]) out[b]++;
        }
      }
    }
    return out;
  }

  /**
   * Bit errors and cross-entropy (bits) per sequence, overall and per test size
   * (`bitErrors@20`, ...): generalisation to longer sequences (sec. 4.1).
   */
  evaluate(test: Batch, _rng: Rng, opts: { quick?: boolean } = {}): Record<string, number> {
    return noGrad(() => {
      const allLens = test.len.i32();
      // Quick: at most 16 examples of each test size.
      const seen = new Map<number, number>();
      const keep = Array.from(allLens.keys()).filter((i) => {
        const c = seen.get(allLens[i]) ?? 0;
        seen.set(allLens[i], c + 1);
        return !opts.quick || c < 16;
      });
      const n = keep.length;
      const lens = keep.map((i) => allLens[i]);
      const errs: number[] = [];
      const bits: number[] = [];
      for (let i = 0; i < n; i += 64) {
        const idx = new Tensor(Int32Array.from(keep.slice(i, i + 64)), [Math.min(64, n - i)]);
        const mask0 = test.mask.indexSelect(0, idx);
        // The models are causal: steps after the chunk's last output step can be cut.
        const mv = mask0.f32();
        const T0 = mask0.shape[1];
        let T = 0;
        for (let k = 0; k < mv.length; k++) if (mv[k] !== 0) T = Math.max(T, (k % T0) + 1);
        const mask = mask0.slice(1, 0, Math.max(1, T));
        const y = test.y.indexSelect(0, idx).slice(1, 0, Math.max(1, T));
        const logits = this.forwardLogits(test.x.indexSelect(0, idx).slice(1, 0, Math.max(1, T)).contiguous());
        errs.push(...this.bitErrors(logits, y, mask));
        bits.push(...Array.from(this.bcePerSequence(logits, y, mask).values(), (v) => v / Math.LN2));
      }
      const out: Record<string, number> = {
        bitErrors: errs.reduce((a, b) => a + b, 0) / n,
        bitsPerSeq: bits.reduce((a, b) => a + b, 0) / n,
        perfect: errs.filter((e) => e === 0).length / n,
        examples: n,
      };
      for (const L of [...new Set(lens)].sort((a, b) => a - b)) {
        const idx = lens.map((l, i) => (l === L ? i : -1)).filter((i) => i >= 0);
        out[`bitErrors@${L}`] = idx.reduce((a, i) => a + errs[i], 0) / idx.length;
        out[`bitsPerSeq@${L}`] = idx.reduce((a, i) => a + bits[i], 0) / idx.length;
      }
      return out;
    });
  }

  /**
   * Run the model on n fresh task inputs (size `opts.length`, default the training
   * maximum) and show target and output bit rows as text.
   */
  sample(n: number, rng: Rng, _cond?: Tensor, opts: SampleOptions = {}): Samples {
    return noGrad(() => {
      const len = typeof opts.length === 'number' ? opts.length : this.spec.maxLen;
      const b = generateTask(this.task, n, this.spec, rng, len);
      const p = this.forwardLogits(b.x).sigmoid().f32();
      const y = b.y.f32();
      const m = b.mask.f32();
      const [, T, C] = b.y.shape;
      const texts: string[] = [];
      for (let i = 0; i < n; i++) {
        const want: string[] = [];
        const got: string[] = [];
        for (let t = 0; t < T; t++) {
          if (m[i * T + t] === 0) continue;
          let w = '';
          let g = '';
          for (let c = 0; c < C; c++) {
            w += y[(i * T + t) * C + c] > 0.5 ? '1' : '0';
            g += p[(i * T + t) * C + c] > 0.5 ? '1' : '0';
          }
          want.push(w);
          got.push(g);
        }
        texts.push(`${this.task} length ${len}\ntarget: ${want.join(' ')}\noutput: ${got.join(' ')}`);
      }
      return { kind: 'text', texts } as Samples;
    });
  }
}

/** The controller: LSTM cell or a one-hidden-layer feed-forward net. */
class Controller extends Module {
  readonly lstm: LSTMCell | null;
  readonly fc: Linear | null;
  constructor(kind: string, inDim: number, H: number, rng: Rng) {
    super();
    this.lstm = this.registerModule('lstm', kind === 'lstm' ? new LSTMCell(inDim, H, rng) : null);
    this.fc = this.registerModule('fc', kind === 'lstm' ? null : new Linear(inDim, H, rng));
  }
  /** One step: input [B, in], state -> (h [B, H], new state). */
  step(x: Tensor, state: [Tensor, Tensor] | null): [Tensor, [Tensor, Tensor] | null] {
    if (this.lstm) {
      const [h, c] = this.lstm.forward(x, state);
      return [h, [h, c]];
    }
    return [this.fc!.forward(x).relu(), null];
  }
}

/**
 * One head's slice of the controller projection: the addressing block (key, then the
 * pre-activations of beta, g, shift and gamma; activated inside ntmHeadAddressing) and,
 * for write heads, the erase and add vectors.
 */
interface HeadParams {
  head: Tensor;
  erase?: Tensor;
  add?: Tensor;
}

export class NTM extends SequenceTaskModel {
  readonly type = 'ntm';
  readonly controller: Controller;
  /** All heads' parameters in one projection: per head M + 1 + 1 + (2R + 1) + 1 (+ 2M for writes). */
  readonly headProj: Linear;
  readonly outProj: Linear;
  /** Learned initial read vectors [readHeads, M]. */
  readonly initRead: Tensor;
  private readonly headSizes: number[];

  constructor(config: Config, rng: Rng, data: DataInfo) {
    super('ntm', config, data);
    const c = this.config;
    const M = c.memM;
    const nShift = 2 * c.shiftRange + 1;
    if (!(c.memN >= nShift && c.readHeads >= 1 && c.writeHeads >= 1)) throw new Error('ntm: needs memN >= 2 shiftRange + 1, readHeads >= 1, writeHeads >= 1');
    const base = M + 3 + nShift;
    this.headSizes = [...new Array<number>(c.readHeads).fill(base), ...new Array<number>(c.writeHeads).fill(base + 2 * M)];
    this.controller = this.registerModule('controller', new Controller(c.controller, this.inDim + c.readHeads * M, c.hiddenDim, rng));
    this.headProj = this.registerModule('head_proj', new Linear(c.hiddenDim, this.headSizes.reduce((a, b) => a + b, 0), rng));
    this.outProj = this.registerModule('out_proj', new Linear(c.hiddenDim + c.readHeads * M, this.outDim, rng));
    const r0 = new Float32Array(c.readHeads * M);
    for (let i = 0; i < r0.length; i++) r0[i] = 0.01 * rng.normal();
    this.initRead = this.registerParameter('init_read', new Tensor(r0, [c.readHeads, M]));
  }

  private splitHeads(p: Tensor): HeadParams[] {
    const M = this.config.memM;
    const width = M + 3 + 2 * this.config.shiftRange + 1;
    const out: HeadParams[] = [];
    let o = 0;
    for (const size of this.headSizes) {
      const hp: HeadParams = { head: p.slice(1, o, o + width) };
      if (size > width) {
        hp.erase = p.slice(1, o + width, o + width + M).sigmoid();
        hp.add = p.slice(1, o + width + M, o + width + 2 * M).tanh();
      }
      o += size;
      out.push(hp);
    }
    return out;
  }

  /**
   * Head weighting w_t from its parameters, the memory and w_{t-1} (steps 1-4): one
   * fused primitive computing beta = softplus, g = sigmoid, shift = softmax, gamma =
   * 1 + softplus of the raw outputs, then sharpen(circularShift(interpolate(contentWeights(...)))).
   */
  private address(h: HeadParams, memory: Tensor, wPrev: Tensor): Tensor {
    return ntmHeadAddressing(memory, h.head, wPrev);
  }

  forwardLogits(x: Tensor): Tensor {
    const c = this.config;
    const [B, T] = x.shape;
    const N = c.memN;
    const M = c.memM;
    const nHeads = c.readHeads + c.writeHeads;
    let memory = new Tensor(new Float32Array(B * N * M).fill(1e-6), [B, N, M]);
    const w0 = new Float32Array(B * N);
    for (let b = 0; b < B; b++) w0[b * N] = 1;
    let weights: Tensor[] = Array.from({ length: nHeads }, () => new Tensor(w0, [B, N]));
    let reads: Tensor[] = Array.from({ length: c.readHeads }, (_, r) => this.initRead.slice(0, r, r + 1).expand([B, M]));
    let state: [Tensor, Tensor] | null = null;
    const outs: Tensor[] = [];
    for (let t = 0; t < T; t++) {
      const [h, s] = this.controller.step(concat([x.index(1, t), ...reads], 1), state);
      state = s;
      const heads = this.splitHeads(this.headProj.forward(h));
      const nextW: Tensor[] = [];
      // Reads first, from M_{t-1}.
      reads = [];
      for (let r = 0; r < c.readHeads; r++) {
        const w = this.address(heads[r], memory, weights[r]);
        nextW.push(w);
        reads.push(memoryRead(memory, w)); // (B, M)
      }
      for (let k = c.readHeads; k < nHeads; k++) {
        const hp = heads[k];
        const w = this.address(hp, memory, weights[k]);
        nextW.push(w);
        memory = memoryWrite(memory, w, hp.erase!, hp.add!); // (B, N, M)
      }
      weights = nextW;
      outs.push(this.outProj.forward(concat([h, ...reads], 1)));
    }
    return stack(outs, 1); // (B, T, out)
  }
}

/** The LSTM baseline of sec. 4: stacked LSTM, linear readout. */
export class LstmSeq extends SequenceTaskModel {
  readonly type = 'lstm-seq';
  readonly lstm: LSTM;
  readonly outProj: Linear;
  constructor(config: Config, rng: Rng, data: DataInfo) {
    super('lstm-seq', config, data);
    this.lstm = this.registerModule('lstm', new LSTM(this.inDim, this.config.hiddenDim, rng, { numLayers: this.config.nLayer, batchFirst: true }));
    this.outProj = this.registerModule('out_proj', new Linear(this.config.hiddenDim, this.outDim, rng));
  }
  forwardLogits(x: Tensor): Tensor {
    const [h] = this.lstm.forward(x); // (B, T, H)
    return this.outProj.forward(h);
  }
}

registerModel({
  type: 'ntm',
  description: 'Neural Turing Machine (LSTM or feed-forward controller, content + location addressing) on copy / repeat-copy / recall',
  data: ['sequence'],
  defaultData: 'copy',
  defaults: NTM_DEFAULTS,
  presets: NTM_PRESETS,
  choices: NTM_CHOICES,
  create: (config, rng, data) => new NTM(config, rng, data),
});

registerModel({
  type: 'lstm-seq',
  description: 'LSTM baseline for the NTM tasks (stacked LSTM, sigmoid outputs)',
  data: ['sequence'],
  defaultData: 'copy',
  defaults: LSTM_SEQ_DEFAULTS,
  presets: LSTM_SEQ_PRESETS,
  choices: NTM_CHOICES,
  create: (config, rng, data) => new LstmSeq(config, rng, data),
});
