/**
 * Module: parameter and state-dict names equal torch's (fixture), loadStateDict errors,
 * modes, gradients, registration checks.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, Rng, randn, zeros } from '../index.js';
import { Module, Sequential, ModuleList, StateDictError } from './module.js';
import { Linear, ReLU, Dropout, ConvTranspose2d } from './layers.js';
import { BatchNorm1d, LayerNorm } from './norm.js';
import { LSTM, GRU } from './rnn.js';
import { MultiheadAttention } from './attention.js';
import { assertClose, fixture } from '../../test/helpers.js';

type Names = [string, number[]][];
const names = fixture<{ names: Record<string, Names> }>('nn_layers').names;

function nested(rng: Rng): Sequential {
  return new Sequential(
    new Linear(2, 3, rng), new ReLU(), new Sequential(new Linear(3, 3, rng), new BatchNorm1d(3)), new LayerNorm(3), new Linear(3, 1, rng),
  );
}

const shapes = (list: [string, Tensor][]): Names => list.map(([n, t]) => [n, [...t.shape]]);

test('namedParameters and stateDict keys, order and shapes equal torch for a nested Sequential', () => {
  const m = nested(new Rng(0));
  assert.deepEqual(shapes(m.namedParameters()), names.nested_parameters);
  assert.deepEqual(shapes(Object.entries(m.stateDict())), names.nested_state);
  assert.deepEqual(m.namedBuffers().map(([n]) => n), ['2.1.running_mean', '2.1.running_var', '2.1.num_batches_tracked']);
  assert.equal(m.numParameters(), names.nested_parameters.reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0));
});

test('recurrent, attention and transposed-conv parameter names equal torch', () => {
  const rng = new Rng(1);
  assert.deepEqual(shapes(new LSTM(3, 4, rng, { numLayers: 2, bidirectional: true }).namedParameters()), names.lstm_parameters);
  assert.deepEqual(shapes(new GRU(3, 4, rng, { bias: false }).namedParameters()), names.gru_parameters);
  assert.deepEqual(shapes(new MultiheadAttention(8, 2, rng).namedParameters()), names.mha_parameters);
  assert.deepEqual(shapes(new ConvTranspose2d(4, 6, 3, rng, { groups: 2 }).namedParameters()), names.conv_transpose_parameters);
});

test('loadStateDict names every missing, unexpected and mis-shaped key in one error, and copies nothing then', () => {
  const m = nested(new Rng(0));
  const before = m.stateDict()['0.weight'].toArray();
  const sd = nested(new Rng(5)).stateDict();
  delete sd['4.bias'];
  sd['9.weight'] = zeros([2]);
  sd['3.weight'] = zeros([4]);
  let err: unknown;
  try {
    m.loadStateDict(sd);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof StateDictError, 'expected a StateDictError');
  assert.match(err.message, /missing key "4\.bias"/);
  assert.match(err.message, /unexpected key "9\.weight"/);
  assert.match(err.message, /size mismatch for "3\.weight": state dict has \[4\], module has \[3\]/);
  assert.deepEqual(err.missingKeys, ['4.bias']);
  assert.deepEqual(err.unexpectedKeys, ['9.weight']);
  assert.deepEqual(err.mismatchedKeys, ['3.weight']);
  assert.deepEqual(m.stateDict()['0.weight'].toArray(), before);

  // Non-strict: missing and unexpected keys are reported, shapes must still match.
  assert.throws(() => m.loadStateDict(sd, { strict: false }), /size mismatch for "3\.weight"/);
  delete sd['3.weight'];
  const r = m.loadStateDict(sd, { strict: false });
  assert.deepEqual(r, { missingKeys: ['3.weight', '4.bias'], unexpectedKeys: ['9.weight'] });
  assert.deepEqual(m.stateDict()['0.weight'].toArray(), sd['0.weight'].toArray());
});

test('stateDict round trip gives the same outputs; loading keeps parameter identity', () => {
  const a = nested(new Rng(0));
  const b = nested(new Rng(1));
  const x = randn([4, 2], new Rng(2));
  a.eval();
  b.eval();
  const params = b.parameters();
  b.loadStateDict(new Map(Object.entries(a.stateDict())));
  assert.deepEqual(b.parameters(), params, 'the same tensor objects (optimizers keep working)');
  assertClose(b.forward(x), a.forward(x), 0, 0);
  // The state dict shares storage with the module but is cut from the graph.
  const w = a.stateDict()['0.weight'];
  assert.equal(w.requiresGrad, false);
  assert.equal(w.data, a.namedParameters()[0][1].data);
});

test('train/eval reach every descendant; zeroGrad clears gradients; requiresGrad_ freezes', () => {
  const m = new Sequential(new Linear(2, 2, new Rng(0)), new Dropout(0.5, new Rng(4)), new Sequential(new BatchNorm1d(2)));
  m.eval();
  assert.ok(m.modules().every((c) => !c.training));
  m.train();
  assert.ok(m.modules().every((c) => c.training));
  m.forward(randn([3, 2], new Rng(1)).requiresGrad_()).sum().backward();
  assert.ok(m.parameters().every((p) => p.grad !== null));
  m.zeroGrad();
  assert.ok(m.parameters().every((p) => p.grad === null));
  m.requiresGrad_(false);
  assert.equal(m.numParameters(true), 0);
  assert.equal(m.numParameters(), 2 * 2 + 2 + 2 + 2);
});

test('shared parameters are listed once but saved under every key; unregistered fields are caught', () => {
  class Tied extends Module {
    a: Linear;
    b: Linear;
    constructor(rng: Rng) {
      super();
      this.a = this.registerModule('a', new Linear(3, 3, rng));
      this.b = this.registerModule('b', new Linear(3, 3, rng, { bias: false }));
      this.b.weight = this.b.registerParameter('weight', this.a.weight);
    }
  }
  const t = new Tied(new Rng(0));
  assert.deepEqual(t.namedParameters().map(([n]) => n), ['a.weight', 'a.bias']);
  assert.deepEqual(Object.keys(t.stateDict()), ['a.weight', 'a.bias', 'b.weight']);

  class Forgot extends Module {
    fc: Linear;
    constructor() {
      super();
      this.fc = new Linear(2, 2, new Rng(0));
    }
  }
  assert.throws(() => new Forgot().parameters(), /field 'fc' holds a Linear that is not registered/);
  // Aliases of registered descendants (a grandchild, a child's weight) are fine.
  class Alias extends Module {
    body: Sequential;
    last: Linear;
    headWeight: Tensor;
    constructor(rng: Rng) {
      super();
      this.body = this.registerModule('body', new Sequential(new Linear(2, 2, rng), new Linear(2, 2, rng)));
      this.last = this.body.at(-1) as Linear;
      this.headWeight = this.last.weight;
    }
  }
  assert.equal(new Alias(new Rng(0)).parameters().length, 4);
  class ForgotParam extends Module {
    pos = randn([4], new Rng(0)).requiresGrad_();
  }
  assert.throws(() => new ForgotParam().parameters(), /field 'pos' holds a trainable tensor \[4\]/);
});

test('ModuleList names children by position; registration rejects bad names and non-leaves', () => {
  const rng = new Rng(0);
  const l = new ModuleList([new Linear(1, 2, rng), new Linear(2, 1, rng)]);
  assert.deepEqual(l.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '1.weight', '1.bias']);
  assert.equal([...l].length, 2);
  const m = new Module();
  assert.throws(() => m.registerParameter('a.b', zeros([1])), /without '\.'/);
  const x = tensor([1, 2]).requiresGrad_();
  assert.throws(() => m.registerParameter('w', x.mul(2)), /pass a leaf/);
  assert.match(nested(rng).toString(), /\(2\): Sequential\(\n {4}\(0\): Linear\(in_features=3, out_features=3, bias=true\)/);
});
