/**
 * Masked layers: MADE connectivity (output d depends only on inputs earlier in the
 * ordering, checked through the Jacobian) and PixelCNN kernels (an output pixel sees
 * only pixels above and to its left, and itself only for type B).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, Rng, grad, randn } from '../engine/index.js';
import { madeMasks, MaskedLinear, MaskedConv2d, pixelCnnMask } from './masked.js';

/** |d out[o] / d x[i]| > 0 for a single example, via one backward per output. */
function dependsOn(f: (x: Tensor) => Tensor, x: Tensor, nOut: number): boolean[][] {
  const dep: boolean[][] = [];
  for (let o = 0; o < nOut; o++) {
    const xi = x.detach();
    xi.requiresGrad = true;
    const y = f(xi).reshape([-1]);
    const sel = new Float32Array(y.size);
    sel[o] = 1;
    const [g] = grad(y.mul(new Tensor(sel, y.shape)).sum(), [xi]);
    dep.push(Array.from(g!.values()).map((v) => v !== 0));
  }
  return dep;
}

test('madeMasks: shapes, degrees, and the autoregressive Jacobian of a 3-layer MADE', () => {
  const rng = new Rng(3);
  for (const ordering of ['natural', 'random', 'reverse'] as const) {
    const D = 6;
    const { masks, inputDegrees } = madeMasks(D, [16, 12], { ordering, rng, hiddenDegrees: ordering === 'random' ? 'random' : 'sequential' });
    assert.deepEqual(masks.map((m) => m.shape), [[16, 6], [12, 16], [6, 12]]);
    assert.deepEqual([...inputDegrees].sort(), [1, 2, 3, 4, 5, 6]);
    const l1 = new MaskedLinear(D, 16, rng, { mask: masks[0] });
    const l2 = new MaskedLinear(16, 12, rng, { mask: masks[1] });
    const l3 = new MaskedLinear(12, D, rng, { mask: masks[2] });
    const f = (x: Tensor): Tensor => l3.forward(l2.forward(l1.forward(x).tanh()).tanh());
    const dep = dependsOn(f, randn([1, D], rng), D);
    for (let o = 0; o < D; o++) {
      for (let i = 0; i < D; i++) {
        const allowed = inputDegrees[i] < inputDegrees[o];
        if (!allowed) assert.equal(dep[o][i], false, `${ordering}: output ${o} depends on input ${i}`);
      }
    }
    // The connectivity is not vacuous: the last output in the ordering sees some input.
    const last = inputDegrees.indexOf(D);
    assert.ok(dep[last].some(Boolean), `${ordering}: last output sees nothing`);
  }
});

test('madeMasks: sequential hidden degrees reach every input when units are fewer than inputs', () => {
  // 784 inputs, 500 hidden units (the MADE MNIST layer): every input but the last must
  // feed some hidden unit, else later pixels never see it (a 104-nat MADE, not ~90).
  const D = 784;
  const { masks } = madeMasks(D, [500]);
  const m0 = masks[0].toList() as number[][];
  for (let i = 0; i < D - 1; i++) assert.ok(m0.some((row) => row[i] === 1), `input ${i} feeds no hidden unit`);
  // Output d sees inputs up to d-1 through the hidden layer: the last output sees input D-2.
  const { hiddenDegrees } = madeMasks(D, [500]);
  assert.equal(Math.max(...hiddenDegrees[0]), D - 1);
  assert.equal(Math.min(...hiddenDegrees[0]), 1);
});

test('madeMasks: output multiple and context columns', () => {
  const { masks } = madeMasks(3, [5], { outputMultiple: 2, contextDim: 2 });
  assert.deepEqual(masks[0].shape, [5, 5]);
  assert.deepEqual(masks[1].shape, [6, 5]);
  const m0 = masks[0].toList() as number[][];
  // Context columns (degree 0) feed every hidden unit.
  for (const row of m0) assert.deepEqual(row.slice(3), [1, 1]);
  // Output c*D + d has the mask of output d.
  const m1 = masks[1].toList() as number[][];
  for (let d = 0; d < 3; d++) assert.deepEqual(m1[d], m1[3 + d]);
  // The first input in the ordering sees no hidden unit (its conditional is unconditional).
  assert.deepEqual(m1[0], [0, 0, 0, 0, 0]);
  assert.throws(() => madeMasks(3, [4], { ordering: [1, 1, 2] }), /ordering/);
  assert.throws(() => madeMasks(3, [4], { ordering: 'random' }), /rng/);
});

test('MaskedLinear: state dict has weight, bias, mask; setMask checks shape', () => {
  const l = new MaskedLinear(4, 3, new Rng(0));
  assert.deepEqual(Object.keys(l.stateDict()), ['weight', 'bias', 'mask']);
  assert.throws(() => l.setMask(new Tensor(new Float32Array(4), [2, 2])), /setMask/);
});

test('pixelCnnMask: type A hides the centre, type B keeps it', () => {
  const a = pixelCnnMask('A', 1, 1, 3, 3).toList() as number[][][][];
  const b = pixelCnnMask('B', 1, 1, 3, 3).toList() as number[][][][];
  assert.deepEqual(a[0][0], [[1, 1, 1], [1, 0, 0], [0, 0, 0]]);
  assert.deepEqual(b[0][0], [[1, 1, 1], [1, 1, 0], [0, 0, 0]]);
  // Colour groups: at the centre, group g sees groups < g (A) or <= g (B).
  const c = pixelCnnMask('A', 3, 3, 1, 1, 3).toList() as number[][][][];
  assert.deepEqual(c.map((o) => o.map((i) => i[0][0])), [[0, 0, 0], [1, 0, 0], [1, 1, 0]]);
});

test('MaskedConv2d stack: output pixel depends only on earlier pixels (A then B)', () => {
  const rng = new Rng(1);
  const H = 5;
  const W = 5;
  const c1 = new MaskedConv2d('A', 1, 4, 3, rng, { padding: 1 });
  const c2 = new MaskedConv2d('B', 4, 4, 3, rng, { padding: 1 });
  const c3 = new MaskedConv2d('B', 4, 1, 1, rng);
  const f = (x: Tensor): Tensor => c3.forward(c2.forward(c1.forward(x).relu()).relu());
  const dep = dependsOn(f, randn([1, 1, H, W], rng), H * W);
  for (let o = 0; o < H * W; o++) {
    for (let i = o; i < H * W; i++) assert.equal(dep[o][i], false, `pixel ${o} depends on pixel ${i}`);
  }
  // Receptive field is real: the bottom-right pixel sees its left neighbour and the one above.
  assert.ok(dep[H * W - 1][H * W - 2] && dep[H * W - 1][H * W - 1 - W]);
  assert.deepEqual(Object.keys(c1.stateDict()), ['weight', 'bias', 'mask']);
});
