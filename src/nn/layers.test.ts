/**
 * Layers against PyTorch: for each case of scripts/fixtures/nn_layers.py, load torch's
 * state dict, run the layer, and compare the outputs, the gradients of
 * sum(out_i * w_i) for the inputs and every parameter, and the buffers afterwards.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, Rng, conv2d, grad, enableGrad, randn } from '../index.js';
import type { Module } from './module.js';
import { linear, Linear, Conv1d, Conv2d, ConvTranspose2d, Embedding, GELU, Softplus, LeakyReLU, ELU, SiLU, Dropout } from './layers.js';
import { BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm, layerNorm } from './norm.js';
import { RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell } from './rnn.js';
import { MultiheadAttention } from './attention.js';
import { assertClose, checkGradFD, fixture, fromFixture } from '../../test/helpers.js';
import type { FixtureTensor } from '../../test/helpers.js';

interface LayerCase {
  state: Record<string, FixtureTensor>;
  train: boolean;
  inputs: (FixtureTensor | null)[];
  weights: FixtureTensor[];
  outputs: FixtureTensor[];
  grad_inputs: (FixtureTensor | null)[];
  grads: Record<string, FixtureTensor>;
  state_after: Record<string, FixtureTensor>;
}

const cases = fixture<{ layers: Record<string, LayerCase> }>('nn_layers').layers;
const rng = new Rng(0);

/** Conv ops may still be stubs while they are being written; their cases skip until then. */
const convMissing = ((): string | false => {
  try {
    conv2d(tensor(new Float32Array(1), [1, 1, 1, 1]), tensor(new Float32Array(1), [1, 1, 1, 1]));
    return false;
  } catch (e) {
    return e instanceof Error && e.message.includes('not implemented') ? 'conv ops not implemented yet' : false;
  }
})();

type Run<M extends Module> = (m: M, ...xs: Tensor[]) => Tensor | (Tensor | null)[];

function flat(o: Tensor | (Tensor | null)[] | [Tensor, Tensor]): Tensor[] {
  if (o instanceof Tensor) return [o];
  const out: Tensor[] = [];
  for (const e of o) if (e) out.push(...flat(e as Tensor | Tensor[]));
  return out;
}

function checkCase<M extends Module>(name: string, make: () => M, run: Run<M>, rtol = 1e-4, atol = 2e-5, skip: string | false = false): void {
  test(`${name} matches torch (outputs, gradients, buffers)`, { skip }, () => {
    const c = cases[name];
    assert.ok(c, `fixture case ${name} missing`);
    const m = make();
    const sd: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(c.state)) sd[k] = fromFixture(v);
    m.loadStateDict(sd);
    m.train(c.train);
    const xs = c.inputs.map((f) => {
      const t = fromFixture(f!);
      return t.dtype === 'float32' ? t.requiresGrad_() : t;
    });
    const outs = flat(run(m, ...xs));
    assert.equal(outs.length, c.outputs.length, `${name}: number of outputs`);
    outs.forEach((o, i) => assertClose(o, c.outputs[i], rtol, atol, `${name} output ${i}`));
    let loss: Tensor | null = null;
    outs.forEach((o, i) => {
      const term = o.mul(fromFixture(c.weights[i])).sum();
      loss = loss ? loss.add(term) : term;
    });
    loss!.backward();
    c.grad_inputs.forEach((g, i) => {
      if (g) assertClose(xs[i].grad!, g, rtol, atol, `${name} grad of input ${i}`);
    });
    const params = new Map(m.namedParameters());
    assert.deepEqual([...params.keys()].sort(), Object.keys(c.grads).sort(), `${name}: parameter names`);
    for (const [k, g] of Object.entries(c.grads)) assertClose(params.get(k)!.grad!, g, rtol, atol, `${name} grad of ${k}`);
    const after = m.stateDict();
    for (const [k, v] of Object.entries(c.state_after)) assertClose(after[k], v, rtol, atol, `${name} ${k} after the step`);
  });
}

checkCase('linear', () => new Linear(3, 4, rng), (m, x) => m.forward(x));
checkCase('linear_nobias', () => new Linear(3, 2, rng, { bias: false }), (m, x) => m.forward(x));
checkCase('conv1d', () => new Conv1d(2, 3, 3, rng, { stride: 2, padding: 1 }), (m, x) => m.forward(x), 1e-4, 2e-5, convMissing);
checkCase('conv2d', () => new Conv2d(2, 4, 3, rng, { padding: 1 }), (m, x) => m.forward(x), 1e-4, 2e-5, convMissing);
checkCase('conv2d_groups', () => new Conv2d(4, 4, [3, 2], rng, { stride: [2, 1], padding: [1, 0], dilation: [1, 2], groups: 2 }), (m, x) => m.forward(x), 1e-4, 2e-5, convMissing);
checkCase('conv_transpose2d', () => new ConvTranspose2d(3, 2, 3, rng, { stride: 2, padding: 1, outputPadding: 1 }), (m, x) => m.forward(x), 1e-4, 2e-5, convMissing);
checkCase('bn1d_train', () => new BatchNorm1d(3), (m, x) => m.forward(x));
checkCase('bn1d_train_3d', () => new BatchNorm1d(3), (m, x) => m.forward(x));
checkCase('bn1d_eval', () => new BatchNorm1d(3), (m, x) => m.forward(x));
checkCase('bn2d_train', () => new BatchNorm2d(2), (m, x) => m.forward(x));
checkCase('bn2d_eval', () => new BatchNorm2d(2), (m, x) => m.forward(x));
checkCase('bn2d_momentum_none', () => new BatchNorm2d(2, { momentum: null }), (m, x) => m.forward(x));
checkCase('layernorm', () => new LayerNorm(3), (m, x) => m.forward(x));
checkCase('layernorm_2d', () => new LayerNorm([4, 3]), (m, x) => m.forward(x));
checkCase('groupnorm', () => new GroupNorm(2, 4), (m, x) => m.forward(x));
checkCase('embedding', () => new Embedding(6, 3, rng, { paddingIdx: 1 }), (m, ids) => m.forward(ids));
checkCase('act_gelu', () => new GELU(), (m, x) => m.forward(x));
checkCase('act_gelu_tanh', () => new GELU('tanh'), (m, x) => m.forward(x));
checkCase('act_softplus_beta2', () => new Softplus(2), (m, x) => m.forward(x));
checkCase('act_leaky', () => new LeakyReLU(0.2), (m, x) => m.forward(x));
checkCase('act_elu', () => new ELU(0.5), (m, x) => m.forward(x));
checkCase('act_silu', () => new SiLU(), (m, x) => m.forward(x));

checkCase('rnn_tanh', () => new RNN(3, 4, rng, { numLayers: 2 }), (m, x, h) => m.forward(x, h));
checkCase('rnn_relu_unbatched', () => new RNN(3, 4, rng, { nonlinearity: 'relu' }), (m, x) => m.forward(x));
checkCase('lstm', () => new LSTM(3, 4, rng, { numLayers: 2, bidirectional: true }), (m, x, h, c) => {
  const [out, [hN, cN]] = m.forward(x, [h, c]);
  return [out, hN, cN];
});
checkCase('lstm_batch_first', () => new LSTM(3, 4, rng, { batchFirst: true }), (m, x) => {
  const [out, [hN, cN]] = m.forward(x);
  return [out, hN, cN];
});
checkCase('gru', () => new GRU(3, 4, rng, { numLayers: 2, bidirectional: true, batchFirst: true }), (m, x, h) => m.forward(x, h));
checkCase('rnn_cell', () => new RNNCell(3, 4, rng), (m, x, h) => m.forward(x, h));
checkCase('lstm_cell', () => new LSTMCell(3, 4, rng), (m, x, h, c) => m.forward(x, [h, c]));
checkCase('gru_cell', () => new GRUCell(3, 4, rng), (m, x, h) => m.forward(x, h));

checkCase('mha_causal_padding', () => new MultiheadAttention(8, 2, rng, { batchFirst: true }), (m, x, causal, kpm) =>
  m.forward(x, x, x, { attnMask: causal, keyPaddingMask: kpm }));
checkCase('mha_causal', () => new MultiheadAttention(8, 2, rng, { batchFirst: true }), (m, x) => m.forward(x, x, x, { causal: true }));
checkCase('mha_cross_heads', () => new MultiheadAttention(8, 2, rng), (m, q, k, v) => m.forward(q, k, v, { averageAttnWeights: false }));

test('Dropout: identity in eval, zeroes about p and rescales in training, needs an Rng', () => {
  const x = tensor(new Float32Array(4000).fill(1), [4000]);
  const d = new Dropout(0.25, new Rng(3));
  const y = d.forward(x).values();
  let zerosCount = 0;
  for (const v of y) {
    if (v === 0) zerosCount++;
    else assert.ok(Math.abs(v - 1 / 0.75) < 1e-6);
  }
  assert.ok(Math.abs(zerosCount / 4000 - 0.25) < 0.03, `dropped fraction ${zerosCount / 4000}`);
  d.eval();
  assert.equal(d.forward(x), x);
  assert.throws(() => new Dropout(0.5).forward(x), /needs an Rng/);
  assert.throws(() => new Dropout(1.5), /probability/);
});

test('layer shape errors name the layer and the shapes', () => {
  assert.throws(() => new Linear(3, 4, rng).forward(tensor([[1, 2]])), /Linear\(3, 4\).*\[1,2\]/);
  assert.throws(() => new LayerNorm(5).forward(tensor([[1, 2]])), /layerNorm.*\[1,2\].*\[5\]/);
  assert.throws(() => new BatchNorm1d(3).forward(tensor([[1, 2, 3]])), /more than 1 value per channel/);
  assert.throws(() => new Embedding(4, 2, rng).forward(tensor([1, 2])), /int32/);
});

test('double backward through layers: a WGAN-GP gradient penalty has correct parameter gradients', () => {
  const rng = new Rng(8);
  const x = randn([3, 4], rng);
  // penalty(w1) = sum_i ||d critic(x_i) / d x_i||^2, critic = linear(layerNorm(leakyRelu(linear(x, w1))))
  const w2 = randn([1, 5], rng);
  const penalty = (w1: Tensor): Tensor =>
    enableGrad(() => {
      const xr = x.detach().requiresGrad_();
      const h = layerNorm(linear(xr, w1).leakyRelu(0.2), [5], null, null);
      const [g] = grad(linear(h, w2).sum(), [xr], { createGraph: true });
      return g!.square().sum();
    });
  checkGradFD(penalty, [randn([5, 4], rng)], 1e-2, 3e-2, 3e-3);
});

test('Linear with activation relu = Linear then relu (with and without bias); other activations are refused', () => {
  const rng = new Rng(31);
  const x = randn([6, 5], rng);
  for (const bias of [true, false]) {
    const fc = new Linear(5, 40, rng, { bias });
    assertClose(fc.forward(x, { activation: 'relu' }), fc.forward(x).relu(), 1e-6, 1e-6, `bias ${bias}`);
    assertClose(linear(x, fc.weight, fc.bias, { activation: 'relu' }), linear(x, fc.weight, fc.bias).relu(), 1e-6, 1e-6, `functional, bias ${bias}`);
  }
  const fc = new Linear(5, 4, rng);
  assert.throws(() => linear(x, fc.weight, fc.bias, { activation: 'gelu' as 'relu' }), /linear: activation must be 'relu' or absent, got "gelu"/);
});
