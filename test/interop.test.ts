/**
 * Interop with PyTorch both ways: a state_dict that PyTorch wrote as safetensors
 * (scripts/fixtures/interop.py) loads into the equivalent genlab modules and gives
 * PyTorch's outputs; the file genlab writes has exactly PyTorch's names and shapes,
 * and, where /usr/bin/python3 has torch, loads into torch with strict=True.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  Module, Conv2d, BatchNorm2d, Sequential, Linear, ReLU, LSTM, Rng, Tensor, loadSafetensors, saveSafetensors, decodeSafetensors,
  encodeSafetensors, noGrad,
} from '../src/index.js';
import { ROOT, fixture, fromFixture, assertClose } from './helpers.js';
import type { FixtureTensor } from './helpers.js';

class Net extends Module {
  conv: Conv2d;
  bn: BatchNorm2d;
  head: Sequential;
  lstm: LSTM;
  constructor(rng: Rng) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(1, 4, 3, rng, { padding: 1 }));
    this.bn = this.registerModule('bn', new BatchNorm2d(4));
    this.head = this.registerModule('head', new Sequential(new Linear(64, 8, rng), new ReLU(), new Linear(8, 3, rng)));
    this.lstm = this.registerModule('lstm', new LSTM(3, 5, rng, { numLayers: 2, batchFirst: true }));
  }
  forward(x: Tensor, seq: Tensor): [Tensor, Tensor] {
    const h = this.bn.forward(this.conv.forward(x)).relu().flatten(1);
    return [this.head.forward(h), this.lstm.forward(seq)[0]];
  }
}

interface Interop {
  keys: [string, number[], string][];
  x: FixtureTensor;
  seq: FixtureTensor;
  y1: FixtureTensor;
  y2: FixtureTensor;
}

const fx = fixture<Interop>('interop');
const torchFile = join(ROOT, 'test', 'fixtures', 'interop_torch.safetensors');

test('a PyTorch state_dict loads into genlab and gives PyTorch outputs', () => {
  const net = new Net(new Rng(5));
  net.loadStateDict(loadSafetensors(torchFile).tensors);
  net.eval();
  const [y1, y2] = noGrad(() => net.forward(fromFixture(fx.x), fromFixture(fx.seq)));
  assertClose(y1, fx.y1, 1e-5, 1e-6, 'head output');
  assertClose(y2, fx.y2, 1e-5, 1e-6, 'lstm output');
});

test('genlab writes PyTorch names and shapes; torch loads it strictly', () => {
  const net = new Net(new Rng(5));
  net.loadStateDict(loadSafetensors(torchFile).tensors);
  const sd = net.stateDict();
  assert.deepEqual(Object.keys(sd), fx.keys.map(([k]) => k), 'state_dict keys and order');
  const back = decodeSafetensors(encodeSafetensors(sd));
  for (const [k, shape] of fx.keys) assert.deepEqual([...back.tensors.get(k)!.shape], shape, k);
  const file = join(mkdtempSync(join(tmpdir(), 'genlab-interop-')), 'genlab.safetensors');
  saveSafetensors(file, sd);
  const py = spawnSync('/usr/bin/python3', [join(ROOT, 'scripts', 'fixtures', 'interop.py'), file], { encoding: 'utf8' });
  if (py.error || /No module named 'torch'/.test(py.stderr ?? '')) return; // torch is optional
  assert.equal(py.status, 0, py.stderr);
  assert.match(py.stdout, /OK/);
});
