/**
 * TensorFlow.js peer of bench/models.ts for two reference models, dcgan and lstm-lm,
 * on the pure-JS CPU backend of `@tensorflow/tfjs` (a devDependency; no native or
 * downloaded binaries). Same layers, parameter counts, batch and data shapes and Adam
 * settings as genlab's and PyTorch's versions, in TensorFlow.js's own NHWC layout
 * (transposed convolutions with 'same' padding are PyTorch's k4 s2 p1).
 * Differences, all small next to the step cost: BatchNorm keeps no running averages,
 * and the DCGAN generator runs forward twice per step (once for the D step, once
 * inside the G step's tape; genlab and PyTorch reuse one forward).
 * tf.js optimizers: https://js.tensorflow.org/api/latest/#train.adam
 */
import * as tf from '@tensorflow/tfjs';

// tf.js prints its "install tfjs-node" hint through the console; stdout is the
// harness protocol, so everything tf.js says goes to stderr.
console.log = console.error;
console.warn = console.error;
console.info = console.error;

/** Same shape as bench/models.ts's BenchCase. */
export interface TfjsCase {
  nParams: number;
  run(): number;
  items: number;
  unit: 'samples';
}

const SEED = 1234;

function variable(shape: number[], fanIn: number, seed: number): tf.Variable {
  const k = 1 / Math.sqrt(fanIn);
  return tf.variable(tf.randomUniform(shape, -k, k, 'float32', seed));
}

function count(vars: tf.Variable[]): number {
  return vars.reduce((n, v) => n + v.size, 0);
}

/** Batch norm over every axis but the last (channels), batch statistics. */
function batchNorm(x: tf.Tensor, gamma: tf.Variable, beta: tf.Variable): tf.Tensor {
  const axes = x.shape.map((_, i) => i).slice(0, -1);
  const { mean, variance } = tf.moments(x, axes);
  return x.sub(mean).mul(tf.rsqrt(variance.add(1e-5))).mul(gamma).add(beta);
}

/** One optimizer step on `vars`; returns the loss value. */
function step(opt: tf.Optimizer, vars: tf.Variable[], f: () => tf.Scalar): number {
  const cost = opt.minimize(f, true, vars)!;
  const v = cost.dataSync()[0];
  cost.dispose();
  return v;
}

function dcgan(): TfjsCase {
  const B = 64;
  let s = SEED;
  // Generator: Linear 64->6272, BN, ReLU, ConvT 128->64, BN, ReLU, ConvT 64->1, Tanh.
  const gFcW = variable([64, 6272], 64, s++);
  const gFcB = variable([6272], 64, s++);
  const gBn0 = [tf.variable(tf.ones([128])), tf.variable(tf.zeros([128]))];
  const gUp1W = variable([4, 4, 64, 128], 64 * 16, s++); // [kh, kw, out, in]
  const gUp1B = variable([64], 64 * 16, s++);
  const gBn1 = [tf.variable(tf.ones([64])), tf.variable(tf.zeros([64]))];
  const gUp2W = variable([4, 4, 1, 64], 16, s++);
  const gUp2B = variable([1], 16, s++);
  const gVars = [gFcW, gFcB, ...gBn0, gUp1W, gUp1B, ...gBn1, gUp2W, gUp2B];
  // Discriminator: Conv 1->64, LeakyReLU, Conv 64->128, BN, LeakyReLU, Linear 6272->1.
  const dC1W = variable([4, 4, 1, 64], 16, s++); // [kh, kw, in, out]
  const dC1B = variable([64], 16, s++);
  const dC2W = variable([4, 4, 64, 128], 64 * 16, s++);
  const dC2B = variable([128], 64 * 16, s++);
  const dBn2 = [tf.variable(tf.ones([128])), tf.variable(tf.zeros([128]))];
  const dFcW = variable([6272, 1], 6272, s++);
  const dFcB = variable([1], 6272, s++);
  const dVars = [dC1W, dC1B, dC2W, dC2B, ...dBn2, dFcW, dFcB];

  const G = (z: tf.Tensor2D): tf.Tensor4D => {
    let h: tf.Tensor = z.matMul(gFcW).add(gFcB).reshape([B, 7, 7, 128]);
    h = batchNorm(h, gBn0[0], gBn0[1]).relu();
    h = tf.conv2dTranspose(h as tf.Tensor4D, gUp1W as tf.Tensor4D, [B, 14, 14, 64], 2, 'same').add(gUp1B);
    h = batchNorm(h, gBn1[0], gBn1[1]).relu();
    return tf.conv2dTranspose(h as tf.Tensor4D, gUp2W as tf.Tensor4D, [B, 28, 28, 1], 2, 'same').add(gUp2B).tanh() as tf.Tensor4D;
  };
  const D = (x: tf.Tensor4D): tf.Tensor2D => {
    let h: tf.Tensor = tf.leakyRelu(tf.conv2d(x, dC1W as tf.Tensor4D, 2, 'same').add(dC1B), 0.2);
    h = tf.leakyRelu(batchNorm(tf.conv2d(h as tf.Tensor4D, dC2W as tf.Tensor4D, 2, 'same').add(dC2B), dBn2[0], dBn2[1]), 0.2);
    return h.reshape([B, 6272]).matMul(dFcW).add(dFcB) as tf.Tensor2D;
  };
  const optG = tf.train.adam(2e-4, 0.5, 0.999, 1e-8);
  const optD = tf.train.adam(2e-4, 0.5, 0.999, 1e-8);
  const real = tf.randomUniform([B, 28, 28, 1], -1, 1, 'float32', SEED) as tf.Tensor4D;
  const one = tf.ones([B, 1]);
  const zero = tf.zeros([B, 1]);
  return {
    nParams: count(gVars) + count(dVars), items: B, unit: 'samples',
    run: () => {
      const z = tf.randomNormal([B, 64], 0, 1, 'float32', SEED + 1) as tf.Tensor2D;
      const fake = tf.tidy(() => G(z));
      const lossD = step(optD, dVars, () =>
        tf.losses.sigmoidCrossEntropy(one, D(real)).add(tf.losses.sigmoidCrossEntropy(zero, D(fake))) as tf.Scalar);
      step(optG, gVars, () => tf.losses.sigmoidCrossEntropy(one, D(G(z))) as tf.Scalar);
      tf.dispose([z, fake]);
      return lossD;
    },
  };
}

function lstmLm(): TfjsCase {
  const B = 32;
  const T = 128;
  const H = 256;
  let s = SEED;
  const emb = tf.variable(tf.randomNormal([65, 128], 0, 1, 'float32', s++));
  const layers = [128, H].map((inSize) => ({
    wIh: variable([inSize, 4 * H], H, s++), // gates i, f, g, o
    wHh: variable([H, 4 * H], H, s++),
    bIh: variable([4 * H], H, s++),
    bHh: variable([4 * H], H, s++),
  }));
  const headW = variable([H, 65], H, s++);
  const headB = variable([65], H, s++);
  const vars = [emb, ...layers.flatMap((l) => [l.wIh, l.wHh, l.bIh, l.bHh]), headW, headB];
  const opt = tf.train.adam(2e-3, 0.9, 0.999, 1e-8);
  const ids = tf.randomUniform([T, B], 0, 65, 'int32', SEED) as tf.Tensor2D;
  const targets = tf.oneHot(tf.randomUniform([T * B], 0, 65, 'int32', SEED + 1) as tf.Tensor1D, 65);
  const forward = (): tf.Tensor2D => {
    let x: tf.Tensor = tf.gather(emb, ids); // (T, B, 128)
    for (const l of layers) {
      const inSize = x.shape[2]!;
      // Input projection of every time step in one matmul, then the recurrence.
      const xp = tf.unstack(x.reshape([T * B, inSize]).matMul(l.wIh).add(l.bIh).reshape([T, B, 4 * H]));
      let h: tf.Tensor = tf.zeros([B, H]);
      let c: tf.Tensor = tf.zeros([B, H]);
      const hs: tf.Tensor[] = [];
      for (let t = 0; t < T; t++) {
        const gates = xp[t].add(h.matMul(l.wHh)).add(l.bHh);
        const [i, f, g, o] = tf.split(gates, 4, 1);
        c = f.sigmoid().mul(c).add(i.sigmoid().mul(g.tanh()));
        h = o.sigmoid().mul(c.tanh());
        hs.push(h);
      }
      x = tf.stack(hs); // (T, B, H)
    }
    return x.reshape([T * B, H]).matMul(headW).add(headB) as tf.Tensor2D;
  };
  return {
    nParams: count(vars), items: B, unit: 'samples',
    run: () => step(opt, vars, () => tf.losses.softmaxCrossEntropy(targets, forward()) as tf.Scalar),
  };
}

export const TFJS_CASES: Record<string, () => TfjsCase> = { 'dcgan': dcgan, 'lstm-lm': lstmLm };

/** Backend and version, after selecting the CPU backend. */
export async function tfjsInfo(): Promise<Record<string, unknown>> {
  await tf.setBackend('cpu');
  await tf.ready();
  return { backend: tf.getBackend(), version: tf.version.tfjs };
}
