/**
 * Recurrent layers with PyTorch's parameter names, gate order and formulas
 * (torch/nn/modules/rnn.py, https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html):
 *
 *   RNN:  h' = act(W_ih x + b_ih + W_hh h + b_hh)                    act = tanh | relu
 *   LSTM: i, f, g, o = chunks of W_ih x + b_ih + W_hh h + b_hh       (gate order i,f,g,o)
 *         c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(c')
 *   GRU:  r, z, n_i = chunks of W_ih x + b_ih;  r_h, z_h, n_h = chunks of W_hh h + b_hh
 *         r = sigmoid(r_i + r_h);  z = sigmoid(z_i + z_h)
 *         n = tanh(n_i + r * n_h);  h' = (1 - z) * n + z * h                (gate order r,z,n)
 *
 * The one-step cell maths (`rnnCellStep`, `lstmCellStep`, `gruCellStep`) is kept
 * apart from the loop over time, and takes the input projection already computed, so
 * the unrolls project a whole sequence with one matmul per layer and direction. The
 * LSTM and GRU steps run their pointwise part as one fused primitive
 * (src/engine/ops/fused.ts: one kernel forward, one backward); the composites
 * `lstmCellStepComposite` and `gruCellStepComposite` are their definition and tests
 * check the two agree. The LSTM and GRU unrolls run each layer direction as one
 * sequence primitive (`lstmSequence`, `gruSequence`: the same fused cells, with the
 * hidden-to-hidden weight gradient formed as one GEMM over all time steps).
 * Multi-layer, bidirectional unrolls name their weights weight_ih_l{k}[_reverse],
 * weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}, all initialised U(-1/sqrt(H), 1/sqrt(H)).
 */
import { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';
import { ShapeError, fmtShape } from '../engine/shape.js';
import { zeros } from '../engine/creation.js';
import { concat, stack } from '../engine/ops/shape_ops.js';
import { lstmCell, gruCell, lstmSequence, gruSequence } from '../engine/ops/fused.js';
import { Module } from './module.js';
import { uniform_ } from './init.js';
import { dropout, linear } from './layers.js';

export type RNNNonlinearity = 'tanh' | 'relu';

/** W_hh h + b_hh (b_hh may be absent). */
function hiddenProj(h: Tensor, wHh: Tensor, bHh: Tensor | null): Tensor {
  return linear(h, wHh, bHh);
}

/**
 * One Elman RNN step. gi = W_ih x + b_ih [B, H], h [B, H] -> h' [B, H].
 */
export function rnnCellStep(gi: Tensor, h: Tensor, wHh: Tensor, bHh: Tensor | null, nonlinearity: RNNNonlinearity = 'tanh'): Tensor {
  const pre = gi.add(hiddenProj(h, wHh, bHh));
  return nonlinearity === 'tanh' ? pre.tanh() : pre.relu();
}

/**
 * One LSTM step. gi = W_ih x + b_ih [B, 4H]; h, c [B, H] -> [h', c'].
 */
export function lstmCellStep(gi: Tensor, h: Tensor, c: Tensor, wHh: Tensor, bHh: Tensor | null): [Tensor, Tensor] {
  return lstmCell(gi.add(hiddenProj(h, wHh, bHh)), c); // gates (B, 4H)
}

/** lstmCellStep with unfused ops: the definition the fused cell is tested against. */
export function lstmCellStepComposite(gi: Tensor, h: Tensor, c: Tensor, wHh: Tensor, bHh: Tensor | null): [Tensor, Tensor] {
  const gates = gi.add(hiddenProj(h, wHh, bHh)); // (B, 4H)
  const [i, f, g, o] = gates.chunk(4, -1);
  const c2 = f.sigmoid().mul(c).add(i.sigmoid().mul(g.tanh()));
  const h2 = o.sigmoid().mul(c2.tanh());
  return [h2, c2];
}

/**
 * One GRU step. gi = W_ih x + b_ih [B, 3H]; h [B, H] -> h'. b_hn stays inside the
 * reset gate's product, as torch (and cuDNN).
 */
export function gruCellStep(gi: Tensor, h: Tensor, wHh: Tensor, bHh: Tensor | null): Tensor {
  return gruCell(gi, hiddenProj(h, wHh, bHh), h);
}

/** gruCellStep with unfused ops: the definition the fused cell is tested against. */
export function gruCellStepComposite(gi: Tensor, h: Tensor, wHh: Tensor, bHh: Tensor | null): Tensor {
  const gh = hiddenProj(h, wHh, bHh); // (B, 3H)
  const [ri, zi, ni] = gi.chunk(3, -1);
  const [rh, zh, nh] = gh.chunk(3, -1);
  const r = ri.add(rh).sigmoid();
  const z = zi.add(zh).sigmoid();
  const n = ni.add(r.mul(nh)).tanh();
  // (1 - z) * n + z * h = n + z * (h - n)
  return n.add(z.mul(h.sub(n)));
}

type Mode = 'RNN_TANH' | 'RNN_RELU' | 'LSTM' | 'GRU';

function gateMultiplier(mode: Mode): number {
  return mode === 'LSTM' ? 4 : mode === 'GRU' ? 3 : 1;
}

/** Weights of one layer and direction. */
interface CellWeights {
  wIh: Tensor;
  wHh: Tensor;
  bIh: Tensor | null;
  bHh: Tensor | null;
}

/** Registers the four tensors of one cell (or one layer/direction) under `suffix`. */
function registerCell(m: Module, suffix: string, gate: number, inSize: number, hidden: number, bias: boolean, rng: Rng): CellWeights {
  const wIh = m.registerParameter(`weight_ih${suffix}`, zeros([gate, inSize]));
  const wHh = m.registerParameter(`weight_hh${suffix}`, zeros([gate, hidden]));
  const bIh = m.registerParameter(`bias_ih${suffix}`, bias ? zeros([gate]) : null);
  const bHh = m.registerParameter(`bias_hh${suffix}`, bias ? zeros([gate]) : null);
  const k = 1 / Math.sqrt(hidden);
  for (const t of [wIh, wHh, bIh, bHh]) if (t) uniform_(t, rng, -k, k);
  return { wIh, wHh, bIh, bHh };
}

export interface CellOptions {
  /** Biases b_ih and b_hh (default true). */
  bias?: boolean;
}

/** Shared checks of the cells: x [B, in] or [in] (unbatched), state [B, H] or [H]. */
abstract class CellBase extends Module {
  readonly inputSize: number;
  readonly hiddenSize: number;
  protected readonly w: CellWeights;

  constructor(mode: Mode, inputSize: number, hiddenSize: number, rng: Rng, opts: CellOptions) {
    super();
    this.inputSize = inputSize;
    this.hiddenSize = hiddenSize;
    this.w = registerCell(this, '', gateMultiplier(mode) * hiddenSize, inputSize, hiddenSize, opts.bias ?? true, rng);
  }

  get weightIh(): Tensor { return this.w.wIh; }
  get weightHh(): Tensor { return this.w.wHh; }
  get biasIh(): Tensor | null { return this.w.bIh; }
  get biasHh(): Tensor | null { return this.w.bHh; }

  /** Batched view of x and the state, plus whether to squeeze the batch axis again. */
  protected batched(x: Tensor, states: (Tensor | null | undefined)[]): { x: Tensor; states: Tensor[]; unbatched: boolean } {
    const name = this.constructor.name;
    if (x.rank !== 1 && x.rank !== 2) throw new ShapeError(`${name}: input must be [B, ${this.inputSize}] or [${this.inputSize}], got ${fmtShape(x.shape)}`);
    if (x.shape[x.rank - 1] !== this.inputSize) throw new ShapeError(`${name}: input ${fmtShape(x.shape)} should end in input_size ${this.inputSize}`);
    const unbatched = x.rank === 1;
    const xb = unbatched ? x.unsqueeze(0) : x;
    const B = xb.shape[0];
    const out = states.map((s) => {
      if (!s) return zeros([B, this.hiddenSize]);
      const sb = unbatched ? s.unsqueeze(0) : s;
      if (sb.rank !== 2 || sb.shape[0] !== B || sb.shape[1] !== this.hiddenSize) {
        throw new ShapeError(`${name}: state ${fmtShape(s.shape)} should be [${unbatched ? '' : `${B}, `}${this.hiddenSize}] for input ${fmtShape(x.shape)}`);
      }
      return sb;
    });
    return { x: xb, states: out, unbatched };
  }

  override extraRepr(): string {
    return `${this.inputSize}, ${this.hiddenSize}`;
  }
}

/** One Elman RNN step as a module (torch.nn.RNNCell). */
export class RNNCell extends CellBase {
  readonly nonlinearity: RNNNonlinearity;

  constructor(inputSize: number, hiddenSize: number, rng: Rng, opts: CellOptions & { nonlinearity?: RNNNonlinearity } = {}) {
    super(opts.nonlinearity === 'relu' ? 'RNN_RELU' : 'RNN_TANH', inputSize, hiddenSize, rng, opts);
    this.nonlinearity = opts.nonlinearity ?? 'tanh';
  }

  /** x [B, in] (or [in]), h [B, H] (zeros when omitted) -> h' [B, H]. */
  forward(x: Tensor, h?: Tensor | null): Tensor {
    const b = this.batched(x, [h]);
    const h2 = rnnCellStep(linear(b.x, this.w.wIh, this.w.bIh), b.states[0], this.w.wHh, this.w.bHh, this.nonlinearity);
    return b.unbatched ? h2.squeeze(0) : h2;
  }
}

/** One LSTM step as a module (torch.nn.LSTMCell). */
export class LSTMCell extends CellBase {
  constructor(inputSize: number, hiddenSize: number, rng: Rng, opts: CellOptions = {}) {
    super('LSTM', inputSize, hiddenSize, rng, opts);
  }

  /** x [B, in], state [h, c] each [B, H] (zeros when omitted) -> [h', c']. */
  forward(x: Tensor, state?: [Tensor, Tensor] | null): [Tensor, Tensor] {
    const b = this.batched(x, state ? [state[0], state[1]] : [null, null]);
    const [h2, c2] = lstmCellStep(linear(b.x, this.w.wIh, this.w.bIh), b.states[0], b.states[1], this.w.wHh, this.w.bHh);
    return b.unbatched ? [h2.squeeze(0), c2.squeeze(0)] : [h2, c2];
  }
}

/** One GRU step as a module (torch.nn.GRUCell). */
export class GRUCell extends CellBase {
  constructor(inputSize: number, hiddenSize: number, rng: Rng, opts: CellOptions = {}) {
    super('GRU', inputSize, hiddenSize, rng, opts);
  }

  /** x [B, in], h [B, H] (zeros when omitted) -> h' [B, H]. */
  forward(x: Tensor, h?: Tensor | null): Tensor {
    const b = this.batched(x, [h]);
    const h2 = gruCellStep(linear(b.x, this.w.wIh, this.w.bIh), b.states[0], this.w.wHh, this.w.bHh);
    return b.unbatched ? h2.squeeze(0) : h2;
  }
}

export interface RNNOptions {
  /** Stacked layers (default 1). */
  numLayers?: number;
  /** Biases (default true). */
  bias?: boolean;
  /** Input and output as [B, T, *] instead of [T, B, *] (default false, as torch). */
  batchFirst?: boolean;
  /** Dropout on the outputs of every layer but the last, in training (default 0). */
  dropout?: number;
  /** Run a second, reversed direction and concatenate (default false). */
  bidirectional?: boolean;
}

/** Per-call options of the unrolls. */
export interface RNNForwardOptions {
  /** Random numbers for inter-layer dropout (needed when dropout > 0 in training). */
  rng?: Rng;
}

/**
 * The loop over time shared by RNN, LSTM and GRU: layers x directions, each direction
 * projecting its whole input with one matmul and then stepping its cell.
 */
abstract class RNNBase extends Module {
  readonly mode: Mode;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly bidirectional: boolean;
  /** cells[layer][direction] */
  protected readonly cells: CellWeights[][] = [];

  constructor(mode: Mode, inputSize: number, hiddenSize: number, rng: Rng, opts: RNNOptions) {
    super();
    this.mode = mode;
    this.inputSize = inputSize;
    this.hiddenSize = hiddenSize;
    this.numLayers = opts.numLayers ?? 1;
    this.bias = opts.bias ?? true;
    this.batchFirst = opts.batchFirst ?? false;
    this.dropout = opts.dropout ?? 0;
    this.bidirectional = opts.bidirectional ?? false;
    if (!Number.isInteger(this.numLayers) || this.numLayers < 1) throw new RangeError(`${mode}: numLayers must be a positive integer, got ${this.numLayers}`);
    if (!(this.dropout >= 0 && this.dropout <= 1)) throw new RangeError(`${mode}: dropout must be in [0, 1], got ${this.dropout}`);
    const D = this.bidirectional ? 2 : 1;
    const gate = gateMultiplier(mode) * hiddenSize;
    // torch's order: for each layer, for each direction: w_ih, w_hh, b_ih, b_hh.
    for (let k = 0; k < this.numLayers; k++) {
      const row: CellWeights[] = [];
      for (let d = 0; d < D; d++) {
        const inSize = k === 0 ? inputSize : hiddenSize * D;
        row.push(registerCell(this, `_l${k}${d === 1 ? '_reverse' : ''}`, gate, inSize, hiddenSize, this.bias, rng));
      }
      this.cells.push(row);
    }
  }

  protected get numDirections(): number {
    return this.bidirectional ? 2 : 1;
  }

  /** Check the input and bring it to [T, B, in]; unbatched [T, in] gets B = 1. */
  protected prepInput(x: Tensor): { xs: Tensor; unbatched: boolean } {
    const name = this.constructor.name;
    if (x.rank !== 2 && x.rank !== 3) {
      throw new ShapeError(`${name}: input must be ${this.batchFirst ? '[B, T, in]' : '[T, B, in]'} or [T, in], got ${fmtShape(x.shape)}`);
    }
    if (x.shape[x.rank - 1] !== this.inputSize) throw new ShapeError(`${name}: input ${fmtShape(x.shape)} should end in input_size ${this.inputSize}`);
    if (x.rank === 2) return { xs: x.unsqueeze(1), unbatched: true };
    return { xs: this.batchFirst ? x.transpose(0, 1) : x, unbatched: false };
  }

  /** Check an initial state [L*D, B, H] (or [L*D, H] unbatched), or make zeros. */
  protected prepState(s: Tensor | null | undefined, B: number, unbatched: boolean, what: string): Tensor {
    const LD = this.numLayers * this.numDirections;
    if (!s) return zeros([LD, B, this.hiddenSize]);
    const sb = unbatched ? s.unsqueeze(1) : s;
    if (sb.rank !== 3 || sb.shape[0] !== LD || sb.shape[1] !== B || sb.shape[2] !== this.hiddenSize) {
      throw new ShapeError(
        `${this.constructor.name}: ${what} ${fmtShape(s.shape)} should be [${LD}, ${unbatched ? '' : `${B}, `}${this.hiddenSize}] ` +
          `(num_layers * num_directions, batch, hidden)`,
      );
    }
    return sb;
  }

  /**
   * Run all layers. xs [T, B, in]; h0 (and c0 for LSTM) [L*D, B, H].
   * Returns output [T, B, D*H] and the final states [L*D, B, H].
   */
  protected unroll(xs: Tensor, h0: Tensor, c0: Tensor | null, rng: Rng | undefined): { out: Tensor; hN: Tensor; cN: Tensor | null } {
    const T = xs.shape[0];
    const D = this.numDirections;
    const hs: Tensor[] = [];
    const cs: Tensor[] = [];
    let layerIn = xs;
    for (let k = 0; k < this.numLayers; k++) {
      const dirOuts: Tensor[] = [];
      for (let d = 0; d < D; d++) {
        const w = this.cells[k][d];
        const idx = k * D + d;
        const gi = linear(layerIn, w.wIh, w.bIh); // (T, B, G): the whole sequence at once
        let h = h0.index(0, idx);
        if (this.mode === 'LSTM' || this.mode === 'GRU') {
          // The whole direction as one primitive: fused cells, one dW_hh GEMM in the backward.
          if (this.mode === 'LSTM') {
            const r = lstmSequence(gi, h, c0!.index(0, idx), w.wHh, w.bHh, d === 1);
            hs.push(r.hN);
            cs.push(r.cN);
            dirOuts.push(r.out);
          } else {
            const r = gruSequence(gi, h, w.wHh, w.bHh, d === 1);
            hs.push(r.hN);
            dirOuts.push(r.out);
          }
          continue;
        }
        const steps = new Array<Tensor>(T);
        for (let s = 0; s < T; s++) {
          const t = d === 0 ? s : T - 1 - s;
          h = rnnCellStep(gi.index(0, t), h, w.wHh, w.bHh, this.mode === 'RNN_RELU' ? 'relu' : 'tanh');
          steps[t] = h;
        }
        hs.push(h);
        dirOuts.push(T > 0 ? stack(steps, 0) : zeros([0, xs.shape[1], this.hiddenSize]));
      }
      layerIn = D === 1 ? dirOuts[0] : concat(dirOuts, -1); // (T, B, D*H)
      if (k < this.numLayers - 1 && this.dropout > 0 && this.training) layerIn = dropout(layerIn, this.dropout, rng, true);
    }
    return { out: layerIn, hN: stack(hs, 0), cN: c0 ? stack(cs, 0) : null };
  }

  /** Back to the caller's layout: [B, T, *] when batchFirst, unbatched squeezed. */
  protected finishOutput(out: Tensor, unbatched: boolean): Tensor {
    if (unbatched) return out.squeeze(1);
    return this.batchFirst ? out.transpose(0, 1) : out;
  }

  override extraRepr(): string {
    const extras = [
      this.numLayers !== 1 ? `num_layers=${this.numLayers}` : '',
      this.batchFirst ? 'batch_first=True' : '',
      this.bidirectional ? 'bidirectional=True' : '',
      this.dropout ? `dropout=${this.dropout}` : '',
    ].filter(Boolean);
    return [`${this.inputSize}, ${this.hiddenSize}`, ...extras].join(', ');
  }
}

/**
 * Multi-layer Elman RNN (torch.nn.RNN).
 * @example
 * const rnn = new RNN(8, 16, rng, { numLayers: 2, batchFirst: true });
 * const [out, hN] = rnn.forward(x); // x [B, T, 8] -> out [B, T, 16], hN [2, B, 16]
 */
export class RNN extends RNNBase {
  readonly nonlinearity: RNNNonlinearity;

  constructor(inputSize: number, hiddenSize: number, rng: Rng, opts: RNNOptions & { nonlinearity?: RNNNonlinearity } = {}) {
    super(opts.nonlinearity === 'relu' ? 'RNN_RELU' : 'RNN_TANH', inputSize, hiddenSize, rng, opts);
    this.nonlinearity = opts.nonlinearity ?? 'tanh';
  }

  /** Returns [output, hN]; h0 [L*D, B, H] defaults to zeros. */
  forward(x: Tensor, h0?: Tensor | null, opts: RNNForwardOptions = {}): [Tensor, Tensor] {
    const { xs, unbatched } = this.prepInput(x);
    const h = this.prepState(h0, xs.shape[1], unbatched, 'h0');
    const r = this.unroll(xs, h, null, opts.rng);
    return [this.finishOutput(r.out, unbatched), unbatched ? r.hN.squeeze(1) : r.hN];
  }
}

/**
 * Multi-layer LSTM (torch.nn.LSTM); gate order i, f, g, o.
 * @example
 * const lstm = new LSTM(8, 16, rng, { numLayers: 2, bidirectional: true });
 * const [out, [hN, cN]] = lstm.forward(x); // x [T, B, 8] -> out [T, B, 32]
 */
export class LSTM extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, rng: Rng, opts: RNNOptions = {}) {
    super('LSTM', inputSize, hiddenSize, rng, opts);
  }

  /** Returns [output, [hN, cN]]; the initial [h0, c0] default to zeros. */
  forward(x: Tensor, state?: [Tensor, Tensor] | null, opts: RNNForwardOptions = {}): [Tensor, [Tensor, Tensor]] {
    const { xs, unbatched } = this.prepInput(x);
    const B = xs.shape[1];
    const h = this.prepState(state?.[0], B, unbatched, 'h0');
    const c = this.prepState(state?.[1], B, unbatched, 'c0');
    const r = this.unroll(xs, h, c, opts.rng);
    const cN = r.cN!;
    return [this.finishOutput(r.out, unbatched), unbatched ? [r.hN.squeeze(1), cN.squeeze(1)] : [r.hN, cN]];
  }
}

/**
 * Multi-layer GRU (torch.nn.GRU); gate order r, z, n.
 * @example
 * const gru = new GRU(8, 16, rng, { batchFirst: true });
 * const [out, hN] = gru.forward(x, h0);
 */
export class GRU extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, rng: Rng, opts: RNNOptions = {}) {
    super('GRU', inputSize, hiddenSize, rng, opts);
  }

  /** Returns [output, hN]; h0 [L*D, B, H] defaults to zeros. */
  forward(x: Tensor, h0?: Tensor | null, opts: RNNForwardOptions = {}): [Tensor, Tensor] {
    const { xs, unbatched } = this.prepInput(x);
    const h = this.prepState(h0, xs.shape[1], unbatched, 'h0');
    const r = this.unroll(xs, h, null, opts.rng);
    return [this.finishOutput(r.out, unbatched), unbatched ? r.hN.squeeze(1) : r.hN];
  }
}
