/**
 * A small U-Net denoiser eps_theta(x_t, t[, y]) for 1x28x28 images, after the DDPM
 * network (Ho et al. 2020, arXiv:2006.11239, appendix B; PixelCNN++-style U-Net of
 * Ronneberger et al. 2015, arXiv:1505.04597) cut down to MNIST size:
 *
 * - time: sinusoidal embedding of t (Vaswani et al. 2017, sec. 3.5; DDPM's
 *   `get_timestep_embedding`) through a 2-layer MLP with SiLU; optional class label
 *   embedding (with one extra "null" label for classifier-free guidance, Ho & Salimans
 *   2022, arXiv:2207.12598) added to it;
 * - levels of channels `channels` (32/64/128 at 28/14/7 by default), each with
 *   `numResBlocks` residual blocks: GroupNorm, SiLU, 3x3 conv, + projected time
 *   embedding, GroupNorm, SiLU, dropout, 3x3 conv (zero-initialised, so every block
 *   starts as the identity, as DDPM's code), and a 1x1 shortcut where channels change;
 * - single-layer self-attention over the positions after every residual block of the
 *   lowest level (7x7);
 * - stride-2 3x3 conv down, nearest x2 upsampling + 3x3 conv up, and one skip per level
 *   (the encoder's last activation at that resolution, concatenated on channels).
 *
 * Parameter names follow diffusers where a counterpart exists (conv_in, time_embedding.
 * linear_1, norm1, conv1, time_emb_proj, conv_shortcut, conv_norm_out, conv_out).
 */
import { Tensor } from '../../engine/tensor.js';
import type { Rng } from '../../engine/rng.js';
import { concat } from '../../engine/ops/shape_ops.js';
import { upsample } from '../../engine/ops/conv.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Linear, Conv2d, Embedding, dropout } from '../../nn/layers.js';
import { GroupNorm } from '../../nn/norm.js';
import { scaledDotProductAttention } from '../../nn/attention.js';
import { zeros_ } from '../../nn/init.js';

/**
 * Sinusoidal embedding [B, dim] of timesteps t [B]: sin(t w_i), cos(t w_i) with
 * w_i = 10000^(-i / (dim/2 - 1)), i < dim/2 (DDPM's get_timestep_embedding).
 * @example
 * timestepEmbedding([0, 500], 128).shape; // [2, 128]
 */
export function timestepEmbedding(t: ArrayLike<number>, dim: number): Tensor {
  if (dim % 2 !== 0 || dim < 4) throw new RangeError(`timestepEmbedding: dim must be even and >= 4, got ${dim}`);
  const half = dim / 2;
  const B = t.length;
  const out = new Float32Array(B * dim);
  const k = Math.log(10000) / (half - 1);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < half; i++) {
      const a = t[b] * Math.exp(-k * i);
      out[b * dim + i] = Math.sin(a);
      out[b * dim + half + i] = Math.cos(a);
    }
  }
  return new Tensor(out, [B, dim]);
}

/** Sinusoid -> Linear -> SiLU -> Linear, plus an optional label embedding (last id = null label). */
export class TimeLabelEmbedding extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly classEmbedding: Embedding | null;
  constructor(readonly sinusoidDim: number, outDim: number, numClasses: number, rng: Rng) {
    super();
    const tm = this.registerModule('time_embedding', new Module());
    this.linear1 = tm.registerModule('linear_1', new Linear(sinusoidDim, outDim, rng));
    this.linear2 = tm.registerModule('linear_2', new Linear(outDim, outDim, rng));
    this.classEmbedding = this.registerModule('class_embedding', numClasses > 0 ? new Embedding(numClasses + 1, outDim, rng) : null);
  }
  /** t [B] timesteps; y [B] int32 labels (numClasses = null) or null. */
  forward(t: ArrayLike<number>, y: Tensor | null): Tensor {
    let e = this.linear2.forward(this.linear1.forward(timestepEmbedding(t, this.sinusoidDim)).silu());
    if (this.classEmbedding && y) e = e.add(this.classEmbedding.forward(y));
    return e; // (B, outDim)
  }
}

/** GroupNorm-SiLU-conv, + time embedding, GroupNorm-SiLU-dropout-conv, + shortcut. */
export class ResBlock extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  constructor(inC: number, outC: number, tembDim: number, groups: number, readonly dropoutP: number, rng: Rng) {
    super();
    this.norm1 = this.registerModule('norm1', new GroupNorm(groups, inC));
    this.conv1 = this.registerModule('conv1', new Conv2d(inC, outC, 3, rng, { padding: 1 }));
    this.timeEmbProj = this.registerModule('time_emb_proj', new Linear(tembDim, outC, rng));
    this.norm2 = this.registerModule('norm2', new GroupNorm(groups, outC));
    this.conv2 = this.registerModule('conv2', new Conv2d(outC, outC, 3, rng, { padding: 1 }));
    zeros_(this.conv2.weight);
    zeros_(this.conv2.bias!);
    this.convShortcut = this.registerModule('conv_shortcut', inC !== outC ? new Conv2d(inC, outC, 1, rng) : null);
  }
  forward(x: Tensor, temb: Tensor, rng?: Rng): Tensor {
    const [B, C] = [x.shape[0], this.conv1.outChannels];
    let h = this.conv1.forward(this.norm1.forward(x, 'silu'));
    h = h.add(this.timeEmbProj.forward(temb.silu()).reshape([B, C, 1, 1]));
    h = this.norm2.forward(h, 'silu');
    if (this.dropoutP > 0 && this.training) h = dropout(h, this.dropoutP, rng, true);
    h = this.conv2.forward(h);
    return h.add(this.convShortcut ? this.convShortcut.forward(x) : x);
  }
}

/** Self-attention over the H*W positions: x + proj_out(attn(qkv(GroupNorm(x)))). */
export class AttnBlock extends Module {
  readonly groupNorm: GroupNorm;
  readonly qkv: Linear;
  readonly projOut: Linear;
  constructor(readonly channels: number, readonly nHead: number, groups: number, rng: Rng) {
    super();
    if (channels % nHead !== 0) throw new RangeError(`AttnBlock: ${channels} channels are not divisible into ${nHead} heads`);
    this.groupNorm = this.registerModule('group_norm', new GroupNorm(groups, channels));
    this.qkv = this.registerModule('qkv', new Linear(channels, 3 * channels, rng));
    this.projOut = this.registerModule('proj_out', new Linear(channels, channels, rng));
    zeros_(this.projOut.weight);
    zeros_(this.projOut.bias!);
  }
  forward(x: Tensor): Tensor {
    const [B, C, H, W] = x.shape;
    const nh = this.nHead;
    const h = this.groupNorm.forward(x).reshape([B, C, H * W]).transpose(1, 2); // (B, HW, C)
    const qkv = this.qkv.forward(h).reshape([B, H * W, 3, nh, C / nh]).permute([2, 0, 3, 1, 4]); // (3, B, nh, HW, hs)
    const [q, k, v] = [qkv.index(0, 0), qkv.index(0, 1), qkv.index(0, 2)];
    const [a] = scaledDotProductAttention(q, k, v); // (B, nh, HW, hs)
    const o = this.projOut.forward(a.transpose(1, 2).reshape([B, H * W, C])); // (B, HW, C)
    return x.add(o.transpose(1, 2).reshape([B, C, H, W]));
  }
}

export interface UNetOptions {
  inChannels: number;
  /** Channels of each level; each level after the first halves the resolution. */
  channels: number[];
  numResBlocks: number;
  /** Width of the sinusoidal time features (the MLP maps them to 4 x channels[0]). */
  timeEmbedDim: number;
  /** GroupNorm groups. */
  groups: number;
  /** Attention heads at the lowest level (0: no attention). */
  nHead: number;
  dropout: number;
  /** Class-conditional with this many classes (0: unconditional). */
  numClasses: number;
}

/** A level: its residual blocks and, at the lowest level, an attention block after each. */
class Level extends Module {
  readonly res: ModuleList<ResBlock>;
  readonly attn: ModuleList<AttnBlock> | null;
  constructor(inC: number, outC: number, o: UNetOptions, tembDim: number, withAttn: boolean, rng: Rng) {
    super();
    this.res = this.registerModule('resnets', new ModuleList<ResBlock>());
    for (let r = 0; r < o.numResBlocks; r++) this.res.append(new ResBlock(r === 0 ? inC : outC, outC, tembDim, o.groups, o.dropout, rng));
    this.attn = this.registerModule('attentions', withAttn ? new ModuleList<AttnBlock>() : null);
    if (this.attn) for (let r = 0; r < o.numResBlocks; r++) this.attn.append(new AttnBlock(outC, o.nHead, o.groups, rng));
  }
  forward(h: Tensor, temb: Tensor, rng?: Rng): Tensor {
    for (let r = 0; r < this.res.length; r++) {
      h = this.res.at(r).forward(h, temb, rng);
      if (this.attn) h = this.attn.at(r).forward(h);
    }
    return h;
  }
}

/**
 * The U-Net: x [B, C, H, W], t [B] timesteps, y [B] labels -> output shaped like x.
 * @example
 * const net = new UNet({ inChannels: 1, channels: [32, 64, 128], numResBlocks: 2, timeEmbedDim: 128,
 *   groups: 8, nHead: 1, dropout: 0, numClasses: 0 }, rng);
 * net.forward(x, [10, 500], null); // x [2, 1, 28, 28] -> [2, 1, 28, 28]
 */
export class UNet extends Module {
  readonly embed: TimeLabelEmbedding;
  readonly convIn: Conv2d;
  readonly down: ModuleList<Level>;
  readonly downsamplers: ModuleList<Conv2d>;
  readonly upsamplers: ModuleList<Conv2d>;
  readonly up: ModuleList<Level>;
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(readonly opts: UNetOptions, rng: Rng) {
    super();
    const c = opts.channels;
    const L = c.length;
    if (L < 1) throw new RangeError('UNet: channels must name at least one level');
    const tembDim = 4 * c[0];
    this.embed = this.registerModule('embedding', new TimeLabelEmbedding(opts.timeEmbedDim, tembDim, opts.numClasses, rng));
    this.convIn = this.registerModule('conv_in', new Conv2d(opts.inChannels, c[0], 3, rng, { padding: 1 }));
    this.down = this.registerModule('down_blocks', new ModuleList<Level>());
    this.downsamplers = this.registerModule('downsamplers', new ModuleList<Conv2d>());
    this.upsamplers = this.registerModule('upsamplers', new ModuleList<Conv2d>());
    this.up = this.registerModule('up_blocks', new ModuleList<Level>());
    for (let l = 0; l < L; l++) {
      this.down.append(new Level(l === 0 ? c[0] : c[l - 1], c[l], opts, tembDim, l === L - 1 && L > 1 && opts.nHead > 0, rng));
      if (l < L - 1) this.downsamplers.append(new Conv2d(c[l], c[l], 3, rng, { stride: 2, padding: 1 }));
    }
    // Decoder levels L-2 .. 0 (stored in that order): upsample from level l+1, concat level l's skip.
    for (let l = L - 2; l >= 0; l--) {
      this.upsamplers.append(new Conv2d(c[l + 1], c[l + 1], 3, rng, { padding: 1 }));
      this.up.append(new Level(c[l + 1] + c[l], c[l], opts, tembDim, false, rng));
    }
    this.normOut = this.registerModule('conv_norm_out', new GroupNorm(opts.groups, c[0]));
    this.convOut = this.registerModule('conv_out', new Conv2d(c[0], opts.inChannels, 3, rng, { padding: 1 }));
  }

  /** The resolutions must halve exactly: H and W divisible by 2^(levels - 1). */
  checkInput(shape: readonly number[]): void {
    const f = 2 ** (this.opts.channels.length - 1);
    if (shape.length !== 4 || shape[1] !== this.opts.inChannels || shape[2] % f !== 0 || shape[3] % f !== 0) {
      throw new RangeError(`UNet: input [${shape}] must be [B, ${this.opts.inChannels}, H, W] with H and W divisible by ${f}`);
    }
  }

  forward(x: Tensor, t: ArrayLike<number>, y: Tensor | null, rng?: Rng): Tensor {
    const temb = this.embed.forward(t, y); // (B, 4 c0)
    const L = this.opts.channels.length;
    let h = this.convIn.forward(x);
    const skips: Tensor[] = [];
    for (let l = 0; l < L; l++) {
      h = this.down.at(l).forward(h, temb, rng);
      if (l < L - 1) {
        skips.push(h); // (B, c_l, H/2^l, W/2^l)
        h = this.downsamplers.at(l).forward(h);
      }
    }
    for (let i = 0; i < L - 1; i++) {
      const l = L - 2 - i;
      h = this.upsamplers.at(i).forward(upsample(h, { scaleFactor: 2 }));
      h = this.up.at(i).forward(concat([h, skips[l]], 1), temb, rng); // in: (B, c_{l+1} + c_l, ...)
    }
    return this.convOut.forward(this.normOut.forward(h, 'silu'));
  }
}
