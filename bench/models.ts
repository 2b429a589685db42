/**
 * The reference models of the framework benchmark (bench/run.ts), written with genlab's
 * public API. bench/torch_models.py defines the same networks layer for layer in
 * PyTorch (same parameter counts, same batch and data shapes, Adam), and bench/tfjs/
 * two of them in TensorFlow.js. Inputs are synthetic tensors of the right shapes, fixed
 * for the whole run; each step re-seeds its own random numbers, so every step sees the
 * same batch and the same noise and the loss falls from step to step (the harness
 * checks it), while the work per step is that of a real training step.
 *
 * Training cases (one call = forward, backward, Adam update):
 *   dcgan       Radford et al. 2015, https://arxiv.org/abs/1511.06434 (a D step and a G step)
 *   conv-vae    Kingma & Welling 2013, https://arxiv.org/abs/1312.6114
 *   lstm-lm     character LSTM language model (Embedding, 2-layer LSTM 256, Linear)
 *   gpt         Radford et al. 2019 / nanoGPT (pre-LayerNorm, tied embeddings)
 *   realnvp-2d  Dinh et al. 2016, https://arxiv.org/abs/1605.08803
 *   ddpm-unet   Ho et al. 2020, https://arxiv.org/abs/2006.11239 (epsilon MSE, T = 1000)
 *   ntm-copy    Graves et al. 2014, https://arxiv.org/abs/1410.5401 (copy task)
 * Sampling cases (one call = one sampling run):
 *   gpt-sample  256 tokens at batch 1 with a key/value cache
 *   ddim-sample Song et al. 2020, https://arxiv.org/abs/2010.02502 (eta = 0, 50 steps, 16 images)
 */
import {
  Adam, BatchNorm2d, Conv2d, ConvTranspose2d, Embedding, GroupNorm, KVCache, LSTM, LSTMCell, LayerNorm, Linear, Module,
  MultiheadAttention, Rng, Tensor, arange, bceWithLogits, categorical, concat, crossEntropy, full, gaussianKL, memoryRead,
  memoryWrite, mseLoss, noGrad, normal_, ntmHeadAddressing, ones, rand, randint, randn, stack, tensor, tidy, upsample, zeros,
} from '../src/index.js';

/** One benchmark case, built and ready to run. */
export interface BenchCase {
  /** Number of parameters (trained ones for training cases; used ones for sampling). */
  nParams: number;
  /** One unit of work; returns the loss for training cases, NaN for sampling. */
  run(): number;
  /** Items per call: training samples per step, or tokens / images per sampling run. */
  items: number;
  /** What `items` counts. */
  unit: 'samples' | 'tokens' | 'images';
  /** Training cases: the loss tensor of the last step (its graph is the step's forward). */
  lastLoss?: () => Tensor | null;
}

const SEED = 1234;
/** Linear layers followed by a ReLU run it in their GEMM's epilogue (nn.Linear's option). */
const RELU = { activation: 'relu' } as const;

/** A training case from a model, an optimizer-owning step and the batch size. */
function trainCase(nParams: number, batch: number, step: () => Tensor): BenchCase {
  let last: Tensor | null = null;
  return { nParams, items: batch, unit: 'samples', run: () => tidy(() => (last = step()).item()), lastLoss: () => last };
}

function adamStep(opt: Adam, loss: Tensor): void {
  opt.zeroGrad();
  loss.backward();
  opt.step();
}

// ---------------------------------------------------------------- dcgan

class DcganG extends Module {
  fc: Linear; bn0: BatchNorm2d; up1: ConvTranspose2d; bn1: BatchNorm2d; up2: ConvTranspose2d;
  constructor(rng: Rng) {
    super();
    this.fc = this.registerModule('fc', new Linear(64, 7 * 7 * 128, rng));
    this.bn0 = this.registerModule('bn0', new BatchNorm2d(128));
    this.up1 = this.registerModule('up1', new ConvTranspose2d(128, 64, 4, rng, { stride: 2, padding: 1 }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(64));
    this.up2 = this.registerModule('up2', new ConvTranspose2d(64, 1, 4, rng, { stride: 2, padding: 1 }));
  }
  forward(z: Tensor): Tensor {
    let h = this.fc.forward(z).reshape([z.shape[0], 128, 7, 7]); // (B, 128, 7, 7)
    h = this.bn0.forward(h).relu();
    h = this.bn1.forward(this.up1.forward(h)).relu(); // (B, 64, 14, 14)
    return this.up2.forward(h).tanh(); // (B, 1, 28, 28)
  }
}

class DcganD extends Module {
  c1: Conv2d; c2: Conv2d; bn2: BatchNorm2d; fc: Linear;
  constructor(rng: Rng) {
    super();
    this.c1 = this.registerModule('c1', new Conv2d(1, 64, 4, rng, { stride: 2, padding: 1 }));
    this.c2 = this.registerModule('c2', new Conv2d(64, 128, 4, rng, { stride: 2, padding: 1 }));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(128));
    this.fc = this.registerModule('fc', new Linear(6272, 1, rng));
  }
  forward(x: Tensor): Tensor {
    let h = this.c1.forward(x).leakyRelu(0.2); // (B, 64, 14, 14)
    h = this.bn2.forward(this.c2.forward(h)).leakyRelu(0.2); // (B, 128, 7, 7)
    return this.fc.forward(h.reshape([x.shape[0], 6272])); // (B, 1)
  }
}

function dcgan(): BenchCase {
  const B = 64;
  const rng = new Rng(SEED);
  const G = new DcganG(rng);
  const D = new DcganD(rng);
  const optG = new Adam(G.parameters(), { lr: 2e-4, betas: [0.5, 0.999] });
  const optD = new Adam(D.parameters(), { lr: 2e-4, betas: [0.5, 0.999] });
  const real = rand([B, 1, 28, 28], rng, -1, 1);
  const one = ones([B, 1]);
  const zero = zeros([B, 1]);
  const stepRng = new Rng(SEED);
  return trainCase(G.numParameters() + D.numParameters(), B, () => {
    stepRng.seed(SEED + 1);
    const z = randn([B, 64], stepRng);
    const fake = G.forward(z);
    // 1. Discriminator: real -> 1, fake (detached) -> 0.
    const lossD = bceWithLogits(D.forward(real), one).add(bceWithLogits(D.forward(fake.detach()), zero));
    adamStep(optD, lossD);
    // 2. Generator: non-saturating loss, fake -> 1, through the updated D.
    const lossG = bceWithLogits(D.forward(fake), one);
    adamStep(optG, lossG);
    return lossD;
  });
}

// ---------------------------------------------------------------- conv-vae

class ConvVae extends Module {
  e1: Conv2d; e2: Conv2d; eFc: Linear; dFc: Linear; d1: ConvTranspose2d; d2: ConvTranspose2d;
  constructor(rng: Rng) {
    super();
    this.e1 = this.registerModule('e1', new Conv2d(1, 32, 4, rng, { stride: 2, padding: 1 }));
    this.e2 = this.registerModule('e2', new Conv2d(32, 64, 4, rng, { stride: 2, padding: 1 }));
    this.eFc = this.registerModule('e_fc', new Linear(3136, 2 * 16, rng));
    this.dFc = this.registerModule('d_fc', new Linear(16, 3136, rng));
    this.d1 = this.registerModule('d1', new ConvTranspose2d(64, 32, 4, rng, { stride: 2, padding: 1 }));
    this.d2 = this.registerModule('d2', new ConvTranspose2d(32, 1, 4, rng, { stride: 2, padding: 1 }));
  }
  loss(x: Tensor, rng: Rng): Tensor {
    const B = x.shape[0];
    const h = this.e2.forward(this.e1.forward(x).relu()).relu().reshape([B, 3136]); // (B, 64*7*7)
    const [mu, logvar] = this.eFc.forward(h).chunk(2, 1); // (B, 16) each
    const z = mu.add(logvar.mul(0.5).exp().mul(randn([B, 16], rng)));
    const g = this.dFc.forward(z, RELU).reshape([B, 64, 7, 7]);
    const logits = this.d2.forward(this.d1.forward(g).relu()); // (B, 1, 28, 28)
    // Negative ELBO per image: Bernoulli reconstruction (summed over pixels) + KL.
    const rec = bceWithLogits(logits, x, { reduction: 'sum' }).div(B);
    return rec.add(gaussianKL(mu, logvar));
  }
}

function convVae(): BenchCase {
  const B = 128;
  const rng = new Rng(SEED);
  const m = new ConvVae(rng);
  const opt = new Adam(m.parameters(), { lr: 1e-3 });
  const x = rand([B, 1, 28, 28], rng);
  const stepRng = new Rng(SEED);
  return trainCase(m.numParameters(), B, () => {
    stepRng.seed(SEED + 1);
    const loss = m.loss(x, stepRng);
    adamStep(opt, loss);
    return loss;
  });
}

// ---------------------------------------------------------------- lstm-lm

class LstmLm extends Module {
  emb: Embedding; lstm: LSTM; head: Linear;
  constructor(rng: Rng) {
    super();
    this.emb = this.registerModule('emb', new Embedding(65, 128, rng));
    this.lstm = this.registerModule('lstm', new LSTM(128, 256, rng, { numLayers: 2, batchFirst: true }));
    this.head = this.registerModule('head', new Linear(256, 65, rng));
  }
  forward(ids: Tensor): Tensor {
    const [out] = this.lstm.forward(this.emb.forward(ids)); // (B, T, 256)
    return this.head.forward(out); // (B, T, 65)
  }
}

function lstmLm(): BenchCase {
  const B = 32;
  const T = 128;
  const rng = new Rng(SEED);
  const m = new LstmLm(rng);
  const opt = new Adam(m.parameters(), { lr: 2e-3 });
  const ids = randint(0, 65, [B, T], rng);
  const targets = randint(0, 65, [B * T], rng);
  return trainCase(m.numParameters(), B, () => {
    const loss = crossEntropy(m.forward(ids).reshape([B * T, 65]), targets);
    adamStep(opt, loss);
    return loss;
  });
}

// ---------------------------------------------------------------- gpt

interface GptConfig { vocabSize: number; nLayer: number; nHead: number; dModel: number; blockSize: number }
const GPT: GptConfig = { vocabSize: 65, nLayer: 4, nHead: 4, dModel: 128, blockSize: 128 };

class GptBlock extends Module {
  ln1: LayerNorm; attn: MultiheadAttention; ln2: LayerNorm; fc: Linear; proj: Linear;
  constructor(c: GptConfig, rng: Rng) {
    super();
    this.ln1 = this.registerModule('ln_1', new LayerNorm(c.dModel));
    this.attn = this.registerModule('attn', new MultiheadAttention(c.dModel, c.nHead, rng, { batchFirst: true }));
    this.ln2 = this.registerModule('ln_2', new LayerNorm(c.dModel));
    this.fc = this.registerModule('fc', new Linear(c.dModel, 4 * c.dModel, rng));
    this.proj = this.registerModule('proj', new Linear(4 * c.dModel, c.dModel, rng));
  }
  forward(x: Tensor, cache?: KVCache): Tensor {
    const h = this.ln1.forward(x);
    const [a] = this.attn.forward(h, h, h, { causal: true, needWeights: false, cache });
    x = x.add(a);
    return x.add(this.proj.forward(this.fc.forward(this.ln2.forward(x)).gelu()));
  }
}

class Gpt extends Module {
  wte: Embedding; wpe: Embedding; blocks: GptBlock[]; lnF: LayerNorm;
  constructor(readonly c: GptConfig, rng: Rng) {
    super();
    this.wte = this.registerModule('wte', new Embedding(c.vocabSize, c.dModel, rng));
    this.wpe = this.registerModule('wpe', new Embedding(c.blockSize, c.dModel, rng));
    // GPT-2's N(0, 0.02) for the embeddings (N(0, 1) with tied weights gives logits of std ~11).
    normal_(this.wte.weight, rng, 0, 0.02);
    normal_(this.wpe.weight, rng, 0, 0.02);
    this.blocks = [];
    for (let i = 0; i < c.nLayer; i++) this.blocks.push(this.registerModule(`h${i}`, new GptBlock(c, rng)));
    this.lnF = this.registerModule('ln_f', new LayerNorm(c.dModel));
  }
  /** ids [B, T] at positions pos0.. -> logits [B, T, vocab] (tied output embedding). */
  forward(ids: Tensor, pos0 = 0, caches?: KVCache[]): Tensor {
    const T = ids.shape[1];
    let x = this.wte.forward(ids).add(this.wpe.forward(arange(pos0, pos0 + T, 1, 'int32'))); // (B, T, C)
    this.blocks.forEach((b, i) => (x = b.forward(x, caches?.[i])));
    return this.lnF.forward(x).matmul(this.wte.weight.T); // (B, T, V)
  }
}

function gpt(): BenchCase {
  const B = 32;
  const T = GPT.blockSize;
  const rng = new Rng(SEED);
  const m = new Gpt(GPT, rng);
  const opt = new Adam(m.parameters(), { lr: 1e-3 });
  const ids = randint(0, 65, [B, T], rng);
  const targets = randint(0, 65, [B * T], rng);
  return trainCase(m.numParameters(), B, () => {
    const loss = crossEntropy(m.forward(ids).reshape([B * T, GPT.vocabSize]), targets);
    adamStep(opt, loss);
    return loss;
  });
}

/** 256 tokens at batch 1 from one start token; positions need blockSize 256. */
function gptSample(): BenchCase {
  const N = 256;
  const m = new Gpt({ ...GPT, blockSize: N }, new Rng(SEED));
  m.eval();
  const rng = new Rng(SEED);
  return {
    nParams: m.numParameters(), items: N, unit: 'tokens',
    run: () => noGrad(() => {
      rng.seed(SEED + 1);
      const caches = m.blocks.map(() => new KVCache());
      let tok = tensor([0], [1, 1], 'int32');
      for (let t = 0; t < N; t++) {
        const logits = m.forward(tok, t, caches).reshape([1, GPT.vocabSize]);
        tok = categorical(logits, rng).reshape([1, 1]);
      }
      return NaN;
    }),
  };
}

// ---------------------------------------------------------------- realnvp-2d

class Mlp2 extends Module {
  l1: Linear; l2: Linear; l3: Linear;
  constructor(rng: Rng, readonly tanhOut: boolean) {
    super();
    this.l1 = this.registerModule('0', new Linear(2, 256, rng));
    this.l2 = this.registerModule('2', new Linear(256, 256, rng));
    this.l3 = this.registerModule('4', new Linear(256, 2, rng));
  }
  forward(x: Tensor): Tensor {
    const y = this.l3.forward(this.l2.forward(this.l1.forward(x, RELU), RELU));
    return this.tanhOut ? y.tanh() : y;
  }
}

class RealNvp2d extends Module {
  s: Mlp2[] = []; t: Mlp2[] = []; masks: Tensor[] = [];
  constructor(rng: Rng) {
    super();
    for (let k = 0; k < 8; k++) {
      this.s.push(this.registerModule(`s${k}`, new Mlp2(rng, true)));
      this.t.push(this.registerModule(`t${k}`, new Mlp2(rng, false)));
      this.masks.push(tensor(k % 2 === 0 ? [1, 0] : [0, 1], [1, 2]));
    }
  }
  /** -mean log p(x): data -> latent through the couplings, log-det of eq. (6). */
  nll(x: Tensor): Tensor {
    let logDet: Tensor | null = null;
    for (let k = 0; k < 8; k++) {
      const b = this.masks[k];
      const nb = b.neg().add(1); // 1 - b
      const xm = x.mul(b);
      const s = this.s[k].forward(xm).mul(nb);
      const t = this.t[k].forward(xm).mul(nb);
      x = xm.add(nb.mul(x.mul(s.exp()).add(t))); // eq. (9)
      const ld = s.sum(1);
      logDet = logDet ? logDet.add(ld) : ld;
    }
    const logPz = x.square().sum(1).mul(-0.5).sub(Math.log(2 * Math.PI)); // N(0, I) in 2-D
    return logPz.add(logDet!).mean().neg();
  }
}

function realNvp2d(): BenchCase {
  const B = 512;
  const rng = new Rng(SEED);
  const m = new RealNvp2d(rng);
  const opt = new Adam(m.parameters(), { lr: 1e-3 });
  const x = randn([B, 2], rng).mul(tensor([2, 0.5], [1, 2])).add(tensor([0, 1], [1, 2]));
  return trainCase(m.numParameters(), B, () => {
    const loss = m.nll(x);
    adamStep(opt, loss);
    return loss;
  });
}

// ---------------------------------------------------------------- ddpm-unet

const TEMB = 128;

function timestepEmbedding(t: Tensor): Tensor {
  const half = TEMB / 2;
  const freqs = arange(0, half).mul(-Math.log(10000) / half).exp().reshape([1, half]);
  const args = t.reshape([t.shape[0], 1]).mul(freqs); // (B, 64)
  return concat([args.sin(), args.cos()], 1); // (B, 128)
}

class ResBlock extends Module {
  gn1: GroupNorm; conv1: Conv2d; temb: Linear; gn2: GroupNorm; conv2: Conv2d; skip: Conv2d | null;
  constructor(cin: number, cout: number, rng: Rng) {
    super();
    this.gn1 = this.registerModule('gn1', new GroupNorm(8, cin));
    this.conv1 = this.registerModule('conv1', new Conv2d(cin, cout, 3, rng, { padding: 1 }));
    this.temb = this.registerModule('temb', new Linear(TEMB, cout, rng));
    this.gn2 = this.registerModule('gn2', new GroupNorm(8, cout));
    this.conv2 = this.registerModule('conv2', new Conv2d(cout, cout, 3, rng, { padding: 1 }));
    this.skip = this.registerModule('skip', cin === cout ? null : new Conv2d(cin, cout, 1, rng));
  }
  forward(x: Tensor, temb: Tensor): Tensor {
    let h = this.conv1.forward(this.gn1.forward(x, 'silu'));
    h = h.add(this.temb.forward(temb.silu()).reshape([x.shape[0], -1, 1, 1]));
    h = this.conv2.forward(this.gn2.forward(h, 'silu'));
    return (this.skip ? this.skip.forward(x) : x).add(h);
  }
}

class AttnBlock extends Module {
  gn: GroupNorm; qkv: Conv2d; proj: Conv2d;
  constructor(readonly ch: number, rng: Rng) {
    super();
    this.gn = this.registerModule('gn', new GroupNorm(8, ch));
    this.qkv = this.registerModule('qkv', new Conv2d(ch, 3 * ch, 1, rng));
    this.proj = this.registerModule('proj', new Conv2d(ch, ch, 1, rng));
  }
  forward(x: Tensor): Tensor {
    const [B, C, H, W] = x.shape;
    const [q, k, v] = this.qkv.forward(this.gn.forward(x)).reshape([B, 3 * C, H * W]).chunk(3, 1); // (B, C, HW) each
    const attn = q.transpose(1, 2).matmul(k).mul(1 / Math.sqrt(C)).softmax(-1); // (B, HW, HW)
    const out = v.matmul(attn.transpose(1, 2)).reshape([B, C, H, W]);
    return x.add(this.proj.forward(out));
  }
}

/** One U-Net stage: residual blocks, each optionally followed by attention. */
class Stage extends Module {
  res: ResBlock[] = []; attn: (AttnBlock | null)[] = [];
  constructor(chans: [number, number][], withAttn: boolean, rng: Rng) {
    super();
    chans.forEach(([a, b], i) => {
      this.res.push(this.registerModule(`res${i}`, new ResBlock(a, b, rng)));
      this.attn.push(withAttn ? this.registerModule(`attn${i}`, new AttnBlock(b, rng)) : null);
    });
  }
  forward(x: Tensor, temb: Tensor): Tensor {
    this.res.forEach((r, i) => {
      x = r.forward(x, temb);
      const a = this.attn[i];
      if (a) x = a.forward(x);
    });
    return x;
  }
}

/** 1x28x28 U-Net: 32/64/128 channels at 28/14/7, attention at 7x7, one skip per level. */
class UNet extends Module {
  t1: Linear; t2: Linear; convIn: Conv2d;
  down0: Stage; ds0: Conv2d; down1: Stage; ds1: Conv2d; down2: Stage;
  up2: Stage; us2: Conv2d; up1: Stage; us1: Conv2d; up0: Stage; gnOut: GroupNorm; convOut: Conv2d;
  constructor(rng: Rng) {
    super();
    this.t1 = this.registerModule('t1', new Linear(TEMB, TEMB, rng));
    this.t2 = this.registerModule('t2', new Linear(TEMB, TEMB, rng));
    this.convIn = this.registerModule('conv_in', new Conv2d(1, 32, 3, rng, { padding: 1 }));
    this.down0 = this.registerModule('down0', new Stage([[32, 32], [32, 32]], false, rng));
    this.ds0 = this.registerModule('ds0', new Conv2d(32, 32, 3, rng, { stride: 2, padding: 1 }));
    this.down1 = this.registerModule('down1', new Stage([[32, 64], [64, 64]], false, rng));
    this.ds1 = this.registerModule('ds1', new Conv2d(64, 64, 3, rng, { stride: 2, padding: 1 }));
    this.down2 = this.registerModule('down2', new Stage([[64, 128], [128, 128]], true, rng));
    this.up2 = this.registerModule('up2', new Stage([[256, 128], [128, 128]], true, rng));
    this.us2 = this.registerModule('us2', new Conv2d(128, 128, 3, rng, { padding: 1 }));
    this.up1 = this.registerModule('up1', new Stage([[192, 64], [64, 64]], false, rng));
    this.us1 = this.registerModule('us1', new Conv2d(64, 64, 3, rng, { padding: 1 }));
    this.up0 = this.registerModule('up0', new Stage([[96, 32], [32, 32]], false, rng));
    this.gnOut = this.registerModule('gn_out', new GroupNorm(8, 32));
    this.convOut = this.registerModule('conv_out', new Conv2d(32, 1, 3, rng, { padding: 1 }));
  }
  /** x [B, 1, 28, 28], t float [B] -> predicted noise [B, 1, 28, 28]. */
  forward(x: Tensor, t: Tensor): Tensor {
    const temb = this.t2.forward(this.t1.forward(timestepEmbedding(t)).silu()); // (B, 128)
    const s0 = this.down0.forward(this.convIn.forward(x), temb); // (B, 32, 28, 28)
    const s1 = this.down1.forward(this.ds0.forward(s0), temb); // (B, 64, 14, 14)
    const s2 = this.down2.forward(this.ds1.forward(s1), temb); // (B, 128, 7, 7)
    // No middle block: at the bottom level the up stage takes the down stage's output and its skip, the same tensor.
    let h = this.up2.forward(concat([s2, s2], 1), temb); // (B, 128, 7, 7)
    h = this.us2.forward(upsample(h, { scaleFactor: 2 })); // (B, 128, 14, 14)
    h = this.up1.forward(concat([h, s1], 1), temb); // (B, 64, 14, 14)
    h = this.us1.forward(upsample(h, { scaleFactor: 2 })); // (B, 64, 28, 28)
    h = this.up0.forward(concat([h, s0], 1), temb); // (B, 32, 28, 28)
    return this.convOut.forward(this.gnOut.forward(h, 'silu'));
  }
}

/** Linear betas 1e-4 .. 0.02 over T = 1000 steps; returns alphasCumprod. */
function alphasCumprod(T = 1000): Float64Array {
  const out = new Float64Array(T);
  let prod = 1;
  for (let i = 0; i < T; i++) {
    const beta = 1e-4 + ((0.02 - 1e-4) * i) / (T - 1);
    prod *= 1 - beta;
    out[i] = prod;
  }
  return out;
}

function ddpmUnet(): BenchCase {
  const B = 32;
  const rng = new Rng(SEED);
  const m = new UNet(rng);
  const opt = new Adam(m.parameters(), { lr: 2e-4 });
  const ab = alphasCumprod();
  const x0 = rand([B, 1, 28, 28], rng, -1, 1);
  const stepRng = new Rng(SEED);
  return trainCase(m.numParameters(), B, () => {
    stepRng.seed(SEED + 1);
    const t = randint(0, 1000, [B], stepRng);
    const tv = t.values();
    const sa = new Float32Array(B);
    const sb = new Float32Array(B);
    for (let i = 0; i < B; i++) {
      sa[i] = Math.sqrt(ab[tv[i]]);
      sb[i] = Math.sqrt(1 - ab[tv[i]]);
    }
    const noise = randn([B, 1, 28, 28], stepRng);
    // q(x_t | x_0), eq. (4): sqrt(alphaBar) x_0 + sqrt(1 - alphaBar) eps
    const xt = x0.mul(tensor(sa, [B, 1, 1, 1])).add(noise.mul(tensor(sb, [B, 1, 1, 1])));
    const loss = mseLoss(m.forward(xt, t.toFloat()), noise);
    adamStep(opt, loss);
    return loss;
  });
}

/** DDIM (eta = 0) with 50 of the 1000 steps: 16 images per run. */
function ddimSample(): BenchCase {
  const n = 16;
  const S = 50;
  const m = new UNet(new Rng(SEED));
  m.eval();
  const ab = alphasCumprod();
  const rng = new Rng(SEED);
  return {
    nParams: m.numParameters(), items: n, unit: 'images',
    run: () => noGrad(() => {
      rng.seed(SEED + 1);
      let x = randn([n, 1, 28, 28], rng);
      for (let i = S - 1; i >= 0; i--) {
        const t = i * (1000 / S);
        const abT = ab[t];
        const abPrev = i > 0 ? ab[t - 1000 / S] : 1;
        const xt = x;
        x = tidy(() => {
          const eps = m.forward(xt, full([n], t));
          // eq. (12) with sigma = 0: predicted x_0, then the deterministic step to t_prev.
          const x0 = xt.sub(eps.mul(Math.sqrt(1 - abT))).mul(1 / Math.sqrt(abT));
          return x0.mul(Math.sqrt(abPrev)).add(eps.mul(Math.sqrt(1 - abPrev)));
        });
      }
      return NaN;
    }),
  };
}

// ---------------------------------------------------------------- ntm-copy

const NTM = { bits: 8, len: 20, N: 128, M: 20, hidden: 100, batch: 16 };

/**
 * Head parameters: key M, beta, g, shift 3, gamma (+ erase M, add M for the write head).
 * Addressing (3.3.1 content weights, eqs. 5-6; 3.3.2 interpolation, circular shift over
 * -1, 0, +1 and sharpening, eqs. 7-9) is genlab's fused primitive, as in src/models/ntm.ts:
 * it applies beta = softplus, g = sigmoid, shift = softmax, gamma = 1 + softplus to the
 * raw outputs itself (cosine norms get 1e-8 under the root; sharpening is w~^gamma / sum,
 * taken as a softmax of gamma log(w~ + 1e-12)). The PyTorch twin writes the maths out op
 * by op, with its epsilons placed slightly differently (|m| |k| + 1e-8; pow, then sum +
 * 1e-16): the same work, values equal up to those epsilons.
 */
function addressing(p: Tensor, mem: Tensor, wPrev: Tensor): Tensor {
  return ntmHeadAddressing(mem, p.slice(1, 0, NTM.M + 6), wPrev); // (B, N)
}

class Ntm extends Module {
  cell: LSTMCell; readHead: Linear; writeHead: Linear; out: Linear;
  constructor(rng: Rng) {
    super();
    const { bits, M, hidden } = NTM;
    this.cell = this.registerModule('controller', new LSTMCell(bits + 1 + M, hidden, rng));
    this.readHead = this.registerModule('read_head', new Linear(hidden, M + 6, rng));
    this.writeHead = this.registerModule('write_head', new Linear(hidden, M + 6 + 2 * M, rng));
    this.out = this.registerModule('out', new Linear(hidden + M, bits, rng));
  }
  /** x [T, B, bits+1] -> output logits [T, B, bits]. */
  forward(x: Tensor): Tensor {
    const { N, M, hidden } = NTM;
    const [T, B] = x.shape;
    let mem = full([B, N, M], 1e-6);
    let h = zeros([B, hidden]);
    let c = zeros([B, hidden]);
    let r = zeros([B, M]);
    let wr = zeros([B, N]);
    let ww = zeros([B, N]);
    const outs: Tensor[] = [];
    for (let t = 0; t < T; t++) {
      [h, c] = this.cell.forward(concat([x.index(0, t), r], 1), [h, c]);
      // Read (from the memory before this step's write).
      wr = addressing(this.readHead.forward(h), mem, wr);
      r = memoryRead(mem, wr); // (B, M), eq. (2)
      // Write: erase then add, eq. (3)-(4).
      const pw = this.writeHead.forward(h);
      ww = addressing(pw, mem, ww);
      const e = pw.slice(1, M + 6, 2 * M + 6).sigmoid(); // (B, M)
      const a = pw.slice(1, 2 * M + 6, 3 * M + 6).tanh();
      mem = memoryWrite(mem, ww, e, a); // (B, N, M)
      outs.push(this.out.forward(concat([h, r], 1)));
    }
    return stack(outs, 0);
  }
}

function ntmCopy(): BenchCase {
  const { bits, len, batch: B } = NTM;
  const T = 2 * len + 1;
  const rng = new Rng(SEED);
  const m = new Ntm(rng);
  const opt = new Adam(m.parameters(), { lr: 1e-3 });
  // Input: len random 8-bit vectors, a delimiter on channel 8, then len blank steps.
  const seq = rand([len, B, bits], rng).gt(0.5).toFloat(); // (len, B, bits)
  const x = concat([
    concat([seq, zeros([len, B, 1])], 2),
    concat([zeros([1, B, bits]), ones([1, B, 1])], 2),
    zeros([len, B, bits + 1]),
  ], 0); // (T, B, bits+1)
  return trainCase(m.numParameters(), B, () => {
    const y = m.forward(x).slice(0, len + 1, T); // (len, B, bits)
    const loss = bceWithLogits(y, seq);
    adamStep(opt, loss);
    return loss;
  });
}

/** Every case by name. Training cases first, then sampling. */
export const GENLAB_CASES: Record<string, () => BenchCase> = {
  'dcgan': dcgan,
  'conv-vae': convVae,
  'lstm-lm': lstmLm,
  'gpt': gpt,
  'realnvp-2d': realNvp2d,
  'ddpm-unet': ddpmUnet,
  'ntm-copy': ntmCopy,
  'gpt-sample': gptSample,
  'ddim-sample': ddimSample,
};
