/**
 * Recurrent layers beyond the torch fixtures (layers.test.ts): layouts agree, cells
 * equal one step of the unroll, finite differences, errors, dropout, long sequences.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, randn, noGrad } from '../index.js';
import { RNN, LSTM, GRU, LSTMCell, GRUCell, RNNCell, lstmCellStep, gruCellStep, rnnCellStep } from './rnn.js';
import { assertClose, checkGradFD } from '../../test/helpers.js';

test('batchFirst and unbatched layouts give the same numbers as [T, B, in]', () => {
  const rng = new Rng(1);
  const seqFirst = new GRU(3, 4, rng, { numLayers: 2, bidirectional: true });
  const batchFirst = new GRU(3, 4, rng, { numLayers: 2, bidirectional: true, batchFirst: true });
  batchFirst.loadStateDict(seqFirst.stateDict());
  const x = randn([6, 2, 3], rng); // (T, B, in)
  const h0 = randn([4, 2, 4], rng);
  const [a, ha] = seqFirst.forward(x, h0);
  const [b, hb] = batchFirst.forward(x.transpose(0, 1), h0);
  assertClose(b.transpose(0, 1), a, 1e-6, 1e-6, 'output');
  assertClose(hb, ha, 1e-6, 1e-6, 'hN');
  // Unbatched [T, in] equals batch element 0.
  const [u, hu] = seqFirst.forward(x.index(1, 0), h0.index(1, 0));
  assertClose(u, a.index(1, 0), 1e-6, 1e-6, 'unbatched output');
  assertClose(hu, ha.index(1, 0), 1e-6, 1e-6, 'unbatched hN');
});

test('a cell with the first layer weights equals a one-step unroll', () => {
  const rng = new Rng(2);
  const x = randn([3, 5], rng);
  const h = randn([3, 4], rng);
  const c = randn([3, 4], rng);
  const lstm = new LSTM(5, 4, rng);
  const cell = new LSTMCell(5, 4, rng);
  cell.loadStateDict({
    weight_ih: lstm.getParameter('weight_ih_l0')!, weight_hh: lstm.getParameter('weight_hh_l0')!,
    bias_ih: lstm.getParameter('bias_ih_l0')!, bias_hh: lstm.getParameter('bias_hh_l0')!,
  });
  const [out, [hN, cN]] = lstm.forward(x.unsqueeze(0), [h.unsqueeze(0), c.unsqueeze(0)]);
  const [h1, c1] = cell.forward(x, [h, c]);
  assertClose(out.index(0, 0), h1, 1e-6, 1e-6, 'h');
  assertClose(hN.index(0, 0), h1, 1e-6, 1e-6, 'hN');
  assertClose(cN.index(0, 0), c1, 1e-6, 1e-6, 'cN');
  // Unbatched cells equal batch element 0; the default state is zeros.
  const gru = new GRUCell(5, 4, rng);
  const batched = gru.forward(x, h);
  assertClose(gru.forward(x.index(0, 0), h.index(0, 0)), batched.index(0, 0), 1e-6, 1e-6, 'unbatched GRUCell');
  assertClose(gru.forward(x), gru.forward(x, h.mul(0)), 0, 0, 'default zero state');
});

test('finite differences through the step functions', () => {
  const rng = new Rng(3);
  checkGradFD((gi, h, c, w, b) => lstmCellStep(gi, h, c, w, b)[1].add(lstmCellStep(gi, h, c, w, b)[0]), [
    randn([2, 12], rng), randn([2, 3], rng), randn([2, 3], rng), randn([12, 3], rng, 0, 0.5), randn([12], rng),
  ]);
  checkGradFD((gi, h, w, b) => gruCellStep(gi, h, w, b), [randn([2, 9], rng), randn([2, 3], rng), randn([9, 3], rng, 0, 0.5), randn([9], rng)]);
  checkGradFD((gi, h, w) => rnnCellStep(gi, h, w, null), [randn([2, 3], rng), randn([2, 3], rng), randn([3, 3], rng, 0, 0.5)]);
});

test('shape errors name the layer, the shapes and the expected layout', () => {
  const rng = new Rng(4);
  const lstm = new LSTM(3, 4, rng, { numLayers: 2 });
  assert.throws(() => lstm.forward(randn([5, 2, 3], rng), [randn([1, 2, 4], rng), randn([2, 2, 4], rng)]), /LSTM: h0 \[1,2,4\] should be \[2, 2, 4\]/);
  assert.throws(() => lstm.forward(randn([5, 2, 7], rng)), /LSTM: input \[5,2,7\] should end in input_size 3/);
  assert.throws(() => new RNNCell(3, 4, rng).forward(randn([2, 3], rng), randn([3, 4], rng)), /RNNCell: state \[3,4\] should be \[2, 4\]/);
});

test('inter-layer dropout: active only in training, needs an Rng, seeded', () => {
  const rng = new Rng(5);
  const rnn = new RNN(3, 8, rng, { numLayers: 2, dropout: 0.5 });
  const x = randn([4, 2, 3], rng);
  assert.throws(() => rnn.forward(x), /needs an Rng/);
  const [a] = rnn.forward(x, null, { rng: new Rng(1) });
  const [b] = rnn.forward(x, null, { rng: new Rng(1) });
  const [c] = rnn.forward(x, null, { rng: new Rng(2) });
  assertClose(a, b, 0, 0);
  assert.notDeepEqual(a.toArray(), c.toArray());
  rnn.eval();
  const [d] = rnn.forward(x);
  const [e] = rnn.forward(x);
  assertClose(d, e, 0, 0);
});

test('a 300-step LSTM unrolls and backpropagates (deep graphs do not overflow the stack)', () => {
  const rng = new Rng(6);
  const lstm = new LSTM(2, 3, rng);
  const [out] = lstm.forward(randn([300, 1, 2], rng));
  out.sum().backward();
  const g = lstm.getParameter('weight_hh_l0')!.grad!;
  assert.ok(g.toArray().every(Number.isFinite));
  assert.equal(noGrad(() => lstm.forward(randn([3, 1, 2], rng))[0]).requiresGrad, false);
});
