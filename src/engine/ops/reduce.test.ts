/**
 * Reductions, cumulative sums, softmax and log-softmax against PyTorch
 * (test/fixtures/engine_ops.json from scripts/fixtures/engine_ops.py) and finite
 * differences, on every backend present.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { tensor, sumTo, ShapeError, DTypeError } from '../index.js';
import { opSuite, assertClose } from '../../../test/helpers.js';

const noFD = { fd: false };

opSuite('reduce', (check) => {
  check('sum all', [[3, 4]], (x) => x.sum());
  check('sum axis 1', [[2, 3, 4]], (x) => x.sum(1));
  check('sum axes 0,2 keepDim', [[2, 3, 4]], (x) => x.sum([0, 2], true));
  check('sum axis -1', [[2, 3, 4]], (x) => x.sum(-1));
  check('sum 0-D', [[]], (x) => x.sum());
  check('sum 5-D axes 1,3', [[2, 2, 3, 2, 2]], (x) => x.sum([1, 3]));
  check('sum 0-D axis 0', [[]], (x) => x.sum(0));
  check('max 0-D axis 0', [[]], (x) => x.max(0));
  check('softmax 0-D', [[]], (x) => x.softmax(0));
  check('cumsum 0-D', [[]], (x) => x.cumsum(0));
  check('mean 5-D keepDim', [[2, 1, 3, 2, 2]], (x) => x.mean([0, 4], true));
  check('logSumExp 5-D', [[2, 2, 1, 2, 3]], (x) => x.logSumExp([1, 4]));
  check('softmax 5-D axis 2', [[2, 1, 3, 2, 2]], (x) => x.softmax(2));
  check('mean all', [[3, 4]], (x) => x.mean());
  check('mean axis 0 keepDim', [[3, 4]], (x) => x.mean(0, true));
  check('mean axes -1,-2', [[2, 3, 4]], (x) => x.mean([-1, -2]));
  check('var all', [[3, 4]], (x) => x.var());
  check('var axis 1', [[3, 5]], (x) => x.var(1));
  check('var axis 0 keepDim', [[4, 3]], (x) => x.var(0, true));
  check('max all', [[3, 4]], (x) => x.max());
  check('max axis 1', [[2, 3, 4]], (x) => x.max(1));
  check('max axes 0,2 keepDim', [[2, 3, 4]], (x) => x.max([0, 2], true));
  check('max ties', [[2, 3]], (x) => x.max(1), noFD);
  check('min axis 0', [[3, 4]], (x) => x.min(0));
  check('min axis -1 keepDim', [[3, 4]], (x) => x.min(-1, true));
  check('argmax all', [[3, 4]], (x) => x.argmax());
  check('argmax axis 1', [[3, 4]], (x) => x.argmax(1));
  check('argmax axis 0 keepDim', [[3, 4]], (x) => x.argmax(0, true));
  check('argmin axis 1', [[3, 4]], (x) => x.argmin(1));
  check('logSumExp all', [[3, 4]], (x) => x.logSumExp([0, 1]));
  check('logSumExp axis 1', [[3, 4]], (x) => x.logSumExp(1));
  check('logSumExp axis 0 keepDim', [[3, 4]], (x) => x.logSumExp(0, true));
  // Float32 spacing at 1000 is 6e-5, too coarse for eps = 1e-2 differences.
  check('logSumExp large', [[2, 3]], (x) => x.logSumExp(1), { fdEps: 0.25, fdRtol: 5e-2, fdAtol: 2e-2 });
  check('logSumExp -inf row', [[2, 2]], (x) => x.logSumExp(1));
  check('logSumExp inf', [[3, 2]], (x) => x.logSumExp(1));
  check('softmax -inf entries', [[2, 3]], (x) => x.softmax(1));
  check('logSoftmax -inf entries', [[2, 3]], (x) => x.logSoftmax(1));
  check('cumsum axis 0', [[3, 4]], (x) => x.cumsum(0));
  check('cumsum axis 1', [[2, 3, 4]], (x) => x.cumsum(1));
  check('cumsum axis -1', [[2, 3, 4]], (x) => x.cumsum(-1));
  check('softmax axis -1', [[3, 4]], (x) => x.softmax(-1));
  check('softmax axis 1', [[2, 3, 4]], (x) => x.softmax(1));
  check('softmax axis 0', [[3, 4]], (x) => x.softmax(0));
  check('logSoftmax axis -1', [[3, 4]], (x) => x.logSoftmax(-1));
  check('logSoftmax axis 1', [[2, 3, 4]], (x) => x.logSoftmax(1));

  // Empty dimensions.
  check('sum over empty axis', [[2, 0, 3]], (x) => x.sum(1));
  check('sum of empty', [[0, 3]], (x) => x.sum(1));
  check('softmax empty rows', [[0, 4]], (x) => x.softmax(-1));
  check('cumsum empty', [[2, 0]], (x) => x.cumsum(1));
  check('logSumExp over empty axis', [[2, 0]], (x) => x.logSumExp(1));

  // NaN in, NaN out; extreme logits stay finite.
  check('sum nan', [[2, 3]], (x) => x.sum(1), noFD);
  check('max nan', [[2, 3]], (x) => x.max(1));
  check('min nan', [[2, 3]], (x) => x.min(1));
  check('softmax nan', [[2, 3]], (x) => x.softmax(1));
  check('logSoftmax extreme', [[2, 3]], (x) => x.logSoftmax(1));
  check('softmax extreme', [[2, 3]], (x) => x.softmax(1));

  // Non-contiguous views fed into reductions.
  check('sum of permuted', [[2, 3, 4]], (x) => x.permute(2, 0, 1).sum(1));
  check('softmax of transposed', [[3, 4]], (x) => x.T.softmax(-1));
  check('max of sliced', [[4, 6]], (x) => x.slice(1, 0, undefined, 2).max(1));
  check('cumsum of transposed', [[3, 4]], (x) => x.T.cumsum(1));
  check('logSumExp of expanded', [[3, 1]], (x) => x.expand(3, 4).logSumExp(1));
  check('var of transposed', [[3, 4]], (x) => x.T.var(1));

  // Second derivatives through the backward of reductions.
  check('double: sum then square', [[2, 3, 4]], (x) => x.sum([0, 2]).square());
  check('double: mean keepDim then square', [[3, 4]], (x) => x.mean(1, true).square());
  check('double: max then square', [[3, 4]], (x) => x.max(1).square());
  check('double: cumsum then square', [[3, 4]], (x) => x.cumsum(1).square());
});

test('reduce: argmax breaks ties to the first index and returns int32', () => {
  const i = tensor([[1, 3, 3], [2, 2, 2]]).argmax(1);
  assert.equal(i.dtype, 'int32');
  assert.deepEqual(i.toArray(), [1, 0]);
});

test('reduce: var with correction 0 is the population variance', () => {
  assertClose(tensor([1, 2, 3, 4]).var(0, false, 0), tensor(1.25));
});

test('reduce: sumTo reduces broadcast axes', () => {
  const g = tensor([[1, 2, 3], [4, 5, 6]]);
  assertClose(sumTo(g, [3]), tensor([5, 7, 9]));
  assertClose(sumTo(g, [2, 1]), tensor([[6], [15]]));
  assertClose(sumTo(g, []), tensor(21));
});

test('reduce: errors name the op and the shape', () => {
  assert.throws(() => tensor([[1, 2]]).sum(2), (e: Error) => e instanceof ShapeError && /sum/.test(e.message) && /rank 2/.test(e.message));
  assert.throws(() => tensor([[1, 2]]).softmax(-3), (e: Error) => e instanceof ShapeError && /softmax/.test(e.message));
  assert.throws(() => tensor([2, 0], undefined, 'int32').sum(), (e: Error) => e instanceof DTypeError && /sum/.test(e.message) && /int32/.test(e.message));
  assert.throws(() => tensor(new Float32Array(0), [0, 3]).max(0), /max.*empty.*\[0,3\]/);
  assert.throws(() => tensor(new Float32Array(0), [0]).argmax(), /argmax/);
});
