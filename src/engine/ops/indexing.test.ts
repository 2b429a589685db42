/**
 * Indexing ops (gather, scatterAdd, indexSelect, indexAdd, embedding, oneHot) against
 * PyTorch (test/fixtures/engine_ops.json from scripts/fixtures/engine_ops.py) and
 * finite differences, on every backend present.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { tensor, scatterAdd, indexAdd, embedding, oneHot, gather, DTypeError, ShapeError, grad } from '../index.js';
import { opSuite, assertClose } from '../../../test/helpers.js';

opSuite('indexing', (check) => {
  check('gather of transposed', [[4, 3], [3, 2]], (x, i) => x.T.gather(1, i));
  check('gather axis 1', [[3, 4], [3, 2]], (x, i) => x.gather(1, i));
  check('gather axis 0', [[3, 4], [2, 4]], (x, i) => x.gather(0, i));
  check('gather smaller index', [[3, 4], [2, 1]], (x, i) => x.gather(1, i));
  check('gather 3d', [[2, 3, 4], [2, 1, 4]], (x, i) => x.gather(1, i));
  check('scatterAdd', [[3, 4], [3, 3], [3, 3]], (x, i, s) => scatterAdd(x, 1, i, s));
  check('scatterAdd axis 0', [[3, 2], [4, 2], [4, 2]], (x, i, s) => scatterAdd(x, 0, i, s));
  check('indexSelect', [[4, 3], [3]], (x, i) => x.indexSelect(0, i));
  check('indexSelect axis 1', [[2, 4], [3]], (x, i) => x.indexSelect(1, i));
  check('indexAdd', [[4, 3], [3], [3, 3]], (x, i, s) => indexAdd(x, 0, i, s));
  check('embedding', [[5, 3], [2, 2]], (w, i) => embedding(w, i));
  check('oneHot', [[2, 2]], (i) => oneHot(i, 4));

  // Second derivatives through the backward of indexing ops.
  check('double: gather then square', [[3, 4], [3, 2]], (x, i) => x.gather(1, i).square());
  check('double: scatterAdd then square', [[3, 4], [3, 3], [3, 3]], (x, i, s) => scatterAdd(x, 1, i, s).square());
  check('double: indexSelect then square', [[4, 3], [3]], (x, i) => x.indexSelect(0, i).square());
  check('double: indexAdd then square', [[4, 3], [3], [3, 3]], (x, i, s) => indexAdd(x, 0, i, s).square());
  check('double: embedding then square', [[5, 3], [2, 2]], (w, i) => embedding(w, i).square());
});

test('indexing: double backward through gather', () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]).requiresGrad_();
  const idx = tensor([[2, 2], [0, 1]], undefined, 'int32');
  // d/dx sum(gather(x)^2) = 2 x at the gathered positions (twice where repeated).
  const [g] = grad(gather(x, 1, idx).square().sum(), [x], { createGraph: true });
  assertClose(g!, tensor([[0, 0, 12], [8, 10, 0]]));
  const [gg] = grad(g!.sum(), [x]);
  assertClose(gg!, tensor([[0, 0, 4], [2, 2, 0]]));
});

test('indexing: toInt truncates toward zero and toFloat casts back', () => {
  const i = tensor([-1.7, -0.2, 0.5, 2.9]).toInt();
  assert.equal(i.dtype, 'int32');
  assert.deepEqual(i.toArray(), [-1, 0, 0, 2]);
  assert.equal(i.toFloat().dtype, 'float32');
  assert.throws(() => tensor([NaN]).toInt(), /toInt: non-finite/);
});

test('indexing: errors name the op, the dtype and the bad index', () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  assert.throws(() => x.gather(1, tensor([[0], [1]])), (e: Error) => e instanceof DTypeError && /gather: index must be an int32/.test(e.message) && /float32/.test(e.message));
  assert.throws(() => x.gather(1, tensor([[3], [0]], undefined, 'int32')), (e: Error) => e instanceof RangeError && /gather: index 3 is out of range for axis 1 of size 3/.test(e.message));
  assert.throws(() => x.gather(1, tensor([0, 1], undefined, 'int32')), (e: Error) => e instanceof ShapeError && /gather: index rank 1 != input rank 2/.test(e.message));
  assert.throws(() => x.indexSelect(0, tensor([-1], undefined, 'int32')), /indexSelect: index -1 is out of range/);
  assert.throws(() => oneHot(tensor([4], undefined, 'int32'), 4), /oneHot: index 4 is out of range/);
  assert.throws(() => embedding(tensor([1, 2, 3]), tensor([0], undefined, 'int32')), /embedding: weight must be \[vocab, dim\], got \[3\]/);
  assert.throws(() => scatterAdd(x, 1, tensor([[0], [1]], undefined, 'int32'), tensor([[1, 2]])), /scatterAdd: src shape \[1,2\] must equal index shape \[2,1\]/);
});
