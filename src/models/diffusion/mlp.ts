/**
 * An MLP denoiser for low-dimensional points (the 2-D toys): the data through a
 * linear layer, `nLayer` residual blocks into which the time (and label) embedding
 * is added, and a linear read-out. The time embedding is the U-Net's (sinusoid +
 * 2-layer MLP, unet.ts), so the two denoisers differ only in their body.
 */
import type { Tensor } from '../../engine/tensor.js';
import type { Rng } from '../../engine/rng.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import { TimeLabelEmbedding } from './unet.js';

/** One residual block: h + W2 silu(W1 silu(h) + Wt silu(emb)). */
class MlpBlock extends Module {
  readonly fc1: Linear;
  readonly timeEmbProj: Linear;
  readonly fc2: Linear;
  constructor(h: number, rng: Rng) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(h, h, rng));
    this.timeEmbProj = this.registerModule('time_emb_proj', new Linear(h, h, rng));
    this.fc2 = this.registerModule('fc2', new Linear(h, h, rng));
  }
  forward(h: Tensor, emb: Tensor): Tensor {
    return h.add(this.fc2.forward(this.fc1.forward(h.silu()).add(this.timeEmbProj.forward(emb.silu())).silu()));
  }
}

export interface MlpDenoiserOptions {
  /** Data dimension D. */
  dim: number;
  hiddenDim: number;
  /** Residual blocks. */
  nLayer: number;
  /** Width of the sinusoidal time features. */
  timeEmbedDim: number;
  /** Class-conditional with this many classes (0: unconditional). */
  numClasses: number;
}

/**
 * The MLP denoiser: x [B, D], t [B], y [B] or null -> output [B, D].
 * @example
 * const net = new MlpDenoiser({ dim: 2, hiddenDim: 128, nLayer: 3, timeEmbedDim: 128, numClasses: 0 }, rng);
 * net.forward(x, [10, 500], null); // x [2, 2] -> [2, 2]
 */
export class MlpDenoiser extends Module {
  readonly embed: TimeLabelEmbedding;
  readonly inp: Linear;
  readonly blocks: ModuleList<MlpBlock>;
  readonly out: Linear;
  constructor(o: MlpDenoiserOptions, rng: Rng) {
    super();
    this.embed = this.registerModule('embedding', new TimeLabelEmbedding(o.timeEmbedDim, o.hiddenDim, o.numClasses, rng));
    this.inp = this.registerModule('inp', new Linear(o.dim, o.hiddenDim, rng));
    this.blocks = this.registerModule('blocks', new ModuleList<MlpBlock>());
    for (let i = 0; i < o.nLayer; i++) this.blocks.append(new MlpBlock(o.hiddenDim, rng));
    this.out = this.registerModule('out', new Linear(o.hiddenDim, o.dim, rng));
  }
  forward(x: Tensor, t: ArrayLike<number>, y: Tensor | null): Tensor {
    const emb = this.embed.forward(t, y);
    let h = this.inp.forward(x);
    for (const b of this.blocks) h = b.forward(h, emb);
    return this.out.forward(h.silu());
  }
}
