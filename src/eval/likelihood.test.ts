/** Likelihood helpers: stable log-mean-exp, IS log-likelihood from log weights, bits/dim. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../engine/index.js';
import { logMeanExp, importanceSampledLogLikelihood, bitsPerDim } from './likelihood.js';

test('logMeanExp is exact and stable; IS log-likelihood per column; bits/dim', () => {
  assert.ok(Math.abs(logMeanExp([Math.log(1), Math.log(3)]) - Math.log(2)) < 1e-12);
  assert.ok(Math.abs(logMeanExp([-1000, -1000]) + 1000) < 1e-9);
  assert.ok(Math.abs(logMeanExp([1000, 1000 + Math.log(3)]) - (1000 + Math.log(2))) < 1e-9);
  assert.equal(logMeanExp([]), -Infinity);
  assert.equal(logMeanExp([-Infinity, -Infinity]), -Infinity);
  // log weights [k = 2, B = 2]
  const w = new Tensor(Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4)]), [2, 2]);
  const r = importanceSampledLogLikelihood(w);
  assert.ok(Math.abs(r[0] - Math.log(2)) < 1e-6 && Math.abs(r[1] - Math.log(3)) < 1e-6);
  assert.ok(Math.abs(bitsPerDim(784 * Math.LN2, 784) - 1) < 1e-12);
});
