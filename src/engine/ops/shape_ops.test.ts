/**
 * Shape ops (views and copies) against PyTorch (test/fixtures/engine_ops.json from
 * scripts/fixtures/engine_ops.py) and finite differences, on every backend present.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { tensor, concat, stack, split, chunk, arange, ShapeError } from '../index.js';
import { opSuite, assertClose } from '../../../test/helpers.js';

opSuite('shape_ops', (check) => {
  check('reshape', [[2, 3, 4]], (x) => x.reshape(4, 6));
  check('reshape -1', [[2, 3, 4]], (x) => x.reshape([2, -1]));
  check('reshape of transposed', [[3, 4]], (x) => x.T.reshape(-1));
  check('reshape to 0-D', [[1, 1]], (x) => x.reshape([]));
  check('flatten', [[2, 3, 4]], (x) => x.flatten(1));
  check('squeeze', [[2, 1, 3, 1]], (x) => x.squeeze());
  check('squeeze axis', [[2, 1, 3, 1]], (x) => x.squeeze(1));
  check('unsqueeze', [[2, 3]], (x) => x.unsqueeze(1));
  check('unsqueeze -1', [[2, 3]], (x) => x.unsqueeze(-1));
  check('permute', [[2, 3, 4]], (x) => x.permute(2, 0, 1));
  check('permute 5-D', [[2, 1, 3, 2, 2]], (x) => x.permute(4, 2, 0, 3, 1));
  check('transpose', [[2, 3, 4]], (x) => x.transpose(0, 2));
  check('transpose default', [[2, 3, 4]], (x) => x.transpose());
  check('expand', [[3, 1]], (x) => x.expand(2, 3, 4));
  check('expand -1', [[1, 4]], (x) => x.expand(3, -1));
  check('slice', [[5, 4]], (x) => x.slice(0, 1, 4));
  check('slice step', [[4, 7]], (x) => x.slice(1, 1, 6, 2));
  check('slice negative', [[6, 3]], (x) => x.slice(0, -4, -1));
  check('slice clamps', [[4, 3]], (x) => x.slice(0, 2, 100));
  check('slice of slice', [[8, 3]], (x) => x.slice(0, 1, 7, 2).slice(0, 1));
  check('index', [[3, 4]], (x) => x.index(1, 2));
  check('index negative', [[3, 4, 2]], (x) => x.index(0, -1));
  check('split sizes', [[2, 5]], (x) => split(x, [2, 3], 1));
  check('split equal', [[5, 2]], (x) => x.split(2, 0));
  check('chunk', [[2, 6]], (x) => chunk(x, 3, 1));
  check('concat', [[2, 3], [2, 2]], (a, b) => concat([a, b], 1));
  check('concat axis 0 three', [[1, 3], [2, 3], [1, 3]], (a, b, c) => concat([a, b, c], 0));
  check('concat with empty', [[2, 3], [0, 3]], (a, b) => concat([a, b], 0));
  check('concat views', [[3, 2], [4, 2]], (a, b) => concat([a.T, b.T.slice(1, 0, undefined, 2)], 1));
  check('stack', [[2, 3], [2, 3], [2, 3]], (a, b, c) => stack([a, b, c], 1));
  check('stack axis -1', [[2, 3], [2, 3]], (a, b) => stack([a, b], -1));
  check('stack 0-D', [[], []], (a, b) => stack([a, b]));
  check('pad last', [[2, 3]], (x) => x.pad([1, 2]));
  check('pad 2 axes', [[2, 3, 4]], (x) => x.pad([1, 0, 2, 1]));
  check('pad value', [[2, 3]], (x) => x.pad([0, 1, 1, 0], -2.5));
  check('flip', [[3, 4]], (x) => x.flip(1));
  check('clone of expanded', [[3, 1]], (x) => x.expand(3, 4).clone());

  // Second derivatives through the backward of views and copies.
  check('double: slice step then square', [[4, 7]], (x) => x.slice(1, 1, 6, 2).square());
  check('double: index then square', [[3, 4]], (x) => x.index(1, 2).square());
  check('double: reshape of transposed then square', [[3, 4]], (x) => x.T.reshape(-1).square());
  check('double: expand then square', [[3, 1]], (x) => x.expand(2, 3, 4).square());
  check('double: permute then square', [[2, 3, 4]], (x) => x.permute(2, 0, 1).square());
  check('double: concat then square', [[2, 3], [2, 2]], (a, b) => concat([a, b], 1).square());
  check('double: stack then square', [[2, 3], [2, 3]], (a, b) => stack([a, b], 1).square());
  check('double: pad then square', [[2, 3]], (x) => x.pad([1, 2, 0, 1]).square());
  check('double: flip then square', [[3, 4]], (x) => x.flip(1).square());
  check('double: split then square', [[2, 5]], (x) => split(x, [2, 3], 1).map((t) => t.square()));
});

test('shape_ops: views share storage, copies do not', () => {
  const x = arange(12).reshape(3, 4);
  assert.equal(x.T.data, x.data);
  assert.equal(x.slice(1, 1, 3).data, x.data);
  assert.equal(x.expand(2, 3, 4).data, x.data);
  assert.notEqual(x.T.clone().data, x.data);
  assert.equal(x.T.isContiguous(), false);
  // Reshaping a non-contiguous view copies, in row-major order of the view.
  assert.deepEqual(x.T.reshape(-1).toArray(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
});

test('shape_ops: int32 tensors go through views and concat', () => {
  const i = tensor([[1, 2], [3, 4]], undefined, 'int32');
  const c = concat([i.T, i], 0);
  assert.equal(c.dtype, 'int32');
  assert.deepEqual(c.toArray(), [1, 3, 2, 4, 1, 2, 3, 4]);
});

test('shape_ops: errors name the op and the shapes', () => {
  const x = arange(6).reshape(2, 3);
  assert.throws(() => x.reshape(4, 2), (e: Error) => e instanceof ShapeError && /reshape/.test(e.message) && /\[2,3\]/.test(e.message) && /\[4,2\]/.test(e.message));
  assert.throws(() => x.reshape(-1, -1), /reshape: only one dimension can be -1/);
  assert.throws(() => x.permute(0), /permute.*\[2,3\]/);
  assert.throws(() => x.expand(4, 3, 2), /expand: cannot expand \[2,3\] to \[4,3,2\]/);
  assert.throws(() => concat([x, arange(4).reshape(2, 2)], 0), (e: Error) => e instanceof ShapeError && /concat/.test(e.message) && /\[2,3\]/.test(e.message) && /\[2,2\]/.test(e.message));
  assert.throws(() => stack([x, x.T]), /stack.*\[2,3\].*\[3,2\]/);
  assert.throws(() => split(x, [1, 1], 1), /split.*sum to 2/);
  assert.throws(() => x.index(0, 2), /index: 2 is out of range for axis 0 of shape \[2,3\]/);
  assert.throws(() => x.slice(2, 0), /slice: axis 2 is out of range/);
  assert.throws(() => x.pad([1, 1, 1, 1, 1, 1]), /pad/);
  assert.throws(() => concat([tensor(1), tensor(2)]), /concat: 0-D tensors.*use stack/);
});

test('shape_ops: splitting an empty axis gives one empty piece, as torch.split', () => {
  const parts = split(tensor(new Float32Array(0), [0, 2]), 2, 0);
  assert.equal(parts.length, 1);
  assert.deepEqual(parts[0].shape, [0, 2]);
});

test('shape_ops: squeeze of a non-unit axis and transpose of 1-D are identities', () => {
  const x = arange(3);
  assertClose(x.squeeze(0), x);
  assertClose(x.T, x);
  assert.deepEqual(tensor(5).unsqueeze(0).shape, [1]);
});

test('shape_ops: reshape views strided storage when the strides allow, and copies otherwise', () => {
  const base = arange(60).reshape(2, 5, 6);
  const cases: [string, () => ReturnType<typeof arange>, number[], boolean][] = [
    // A chunk of the last axis (attention's q of a [B, T, 3E] projection): split its axis.
    ['chunk split', () => chunk(base, 3, -1)[1], [2, 5, 1, 2], true],
    ['chunk merge leading', () => chunk(base, 3, -1)[2], [10, 2], true],
    ['chunk merge last', () => chunk(base, 3, -1)[0], [2, 10], false],
    ['slice middle', () => base.slice(1, 1, 4), [2, 3, 3, 2], true],
    ['slice middle merge', () => base.slice(1, 1, 4), [6, 6], false],
    ['transposed', () => base.transpose(1, 2), [2, 30], false],
    ['transposed unit axes', () => base.transpose(1, 2), [2, 1, 6, 5, 1], true],
    ['step slice', () => base.slice(2, 0, 6, 2), [2, 5, 3, 1], true],
  ];
  for (const [name, make, shape, isView] of cases) {
    const x = make();
    const r = x.reshape(shape);
    assert.deepEqual(r.shape, shape, name);
    assert.deepEqual(r.toArray(), x.clone().reshape(shape).toArray(), name);
    assert.equal(r.data === base.data, isView, `${name}: view ${isView}`);
  }
  // Gradients through a strided view reshape reach the right elements of the base.
  const w = tensor(Array.from({ length: 60 }, (_, i) => i / 10), [2, 5, 6]).requiresGrad_();
  const weights = arange(20).reshape(2, 5, 1, 2);
  chunk(w, 3, -1)[1].reshape([2, 5, 1, 2]).mul(weights).sum().backward();
  const g = w.grad!.toArray();
  for (let b = 0; b < 2; b++) {
    for (let t = 0; t < 5; t++) {
      assert.deepEqual(g.slice((b * 5 + t) * 6, (b * 5 + t + 1) * 6), [0, 0, 10 * b + 2 * t, 10 * b + 2 * t + 1, 0, 0]);
    }
  }
});
