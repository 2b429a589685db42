/**
 * Elementwise ops against PyTorch (test/fixtures/engine_ops.json, written by
 * scripts/fixtures/engine_ops.py) and finite differences, on every backend present.
 * One line per case, as tinygrad's test/test_ops.py.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  tensor, where, erf, reciprocal, sign, step, DTypeError, ShapeError, Rng, randn, noGrad,
} from '../index.js';
import { opSuite, assertClose } from '../../../test/helpers.js';

const noFD = { fd: false };

opSuite('elementwise', (check) => {
  // Unary.
  check('neg', [[3, 4]], (x) => x.neg());
  check('abs', [[3, 4]], (x) => x.abs());
  check('exp', [[3, 4]], (x) => x.exp());
  check('log', [[3, 4]], (x) => x.log());
  check('log1p', [[3, 4]], (x) => x.log1p());
  check('sqrt', [[3, 4]], (x) => x.sqrt());
  check('rsqrt', [[3, 4]], (x) => x.rsqrt());
  check('sin', [[3, 4]], (x) => x.sin());
  check('cos', [[3, 4]], (x) => x.cos());
  check('tanh', [[3, 4]], (x) => x.tanh());
  check('sigmoid', [[3, 4]], (x) => x.sigmoid());
  check('relu', [[3, 4]], (x) => x.relu());
  check('leakyRelu', [[3, 4]], (x) => x.leakyRelu(0.1));
  check('leakyRelu default slope', [[3, 4]], (x) => x.leakyRelu());
  check('elu', [[3, 4]], (x) => x.elu());
  check('elu alpha 0.5', [[3, 4]], (x) => x.elu(0.5));
  check('gelu', [[3, 4]], (x) => x.gelu());
  check('gelu wide range', [[1, 10]], (x) => x.gelu());
  check('silu', [[3, 4]], (x) => x.silu());
  check('softplus', [[3, 4]], (x) => x.softplus());
  check('clamp', [[3, 4]], (x) => x.clamp(-0.5, 0.7));
  check('erf', [[3, 4]], (x) => erf(x));
  check('square', [[3, 4]], (x) => x.square());
  check('reciprocal', [[3, 4]], (x) => reciprocal(x));

  // Binary, with broadcasting, 0-D and 5-D shapes, and plain numbers.
  check('add', [[3, 4], [3, 4]], (a, b) => a.add(b));
  check('sub', [[3, 4], [3, 4]], (a, b) => a.sub(b));
  check('mul', [[3, 4], [3, 4]], (a, b) => a.mul(b));
  check('div', [[3, 4], [3, 4]], (a, b) => a.div(b));
  check('pow', [[3, 4], [3, 4]], (a, b) => a.pow(b));
  check('pow scalar exponent', [[3, 4]], (a) => a.pow(3));
  check('maximum', [[3, 4], [3, 4]], (a, b) => a.maximum(b));
  check('minimum', [[3, 4], [3, 4]], (a, b) => a.minimum(b));
  check('maximum ties', [[4], [4]], (a, b) => a.maximum(b));
  check('add broadcast row', [[3, 4], [4]], (a, b) => a.add(b));
  check('add broadcast both', [[3, 1], [1, 4]], (a, b) => a.add(b));
  check('sub broadcast 3d', [[2, 1, 4], [3, 1]], (a, b) => a.sub(b));
  check('mul broadcast scalar tensor', [[2, 3], []], (a, b) => a.mul(b));
  check('div broadcast', [[2, 3, 4], [3, 1]], (a, b) => a.div(b));
  check('pow broadcast', [[2, 3], [3]], (a, b) => a.pow(b));
  check('maximum broadcast', [[3, 4], [4]], (a, b) => a.maximum(b));
  check('add 0-D', [[], []], (a, b) => a.add(b));
  check('exp 0-D', [[]], (x) => x.exp());
  check('add 5-D broadcast', [[2, 1, 3, 1, 2], [1, 2, 1, 2, 1]], (a, b) => a.add(b));
  check('mul 5-D', [[1, 2, 2, 3, 2], [1, 2, 2, 3, 2]], (a, b) => a.mul(b));
  check('tanh 5-D', [[2, 1, 2, 3, 2]], (x) => x.tanh());
  check('add scalar number', [[3, 4]], (a) => a.add(2.5));
  check('rsub scalar number', [[3, 4]], (a) => tensor(1).sub(a));
  check('rdiv scalar number', [[3, 4]], (a) => tensor(2).div(a));
  check('add empty', [[0, 3], [3]], (a, b) => a.add(b));
  check('exp empty', [[0]], (x) => x.exp());

  // Comparisons (float masks) and where.
  check('eq', [[4], [4]], (a, b) => a.eq(b));
  check('ne', [[4], [4]], (a, b) => a.ne(b));
  check('lt', [[2, 2], [2]], (a, b) => a.lt(b));
  check('le', [[2, 2], [2]], (a, b) => a.le(b));
  check('gt', [[2, 2], [2]], (a, b) => a.gt(b));
  check('ge', [[2, 2], [2]], (a, b) => a.ge(b));
  check('where', [[3, 4], [3, 4], [3, 4]], (c, a, b) => where(c, a, b));
  check('where broadcast', [[3, 1], [4], [3, 4]], (c, a, b) => where(c, a, b));
  check('where hides inf branch', [[3]], (x) => where(x.gt(0), x.log(), 0), noFD);

  // NaN in, NaN out; extreme values stay finite where the maths is.
  check('add nan', [[2, 3], [3]], (a, b) => a.add(b), noFD);
  check('exp nan', [[2, 3]], (x) => x.exp(), noFD);
  check('maximum nan', [[3], [3]], (a, b) => a.maximum(b));
  check('relu nan', [[3]], (x) => x.relu());
  check('exp extreme', [[5]], (x) => x.exp(), noFD);
  check('log zero', [[3]], (x) => x.log());
  check('sigmoid extreme', [[5]], (x) => x.sigmoid());
  check('softplus extreme', [[6]], (x) => x.softplus());
  check('tanh extreme', [[4]], (x) => x.tanh());
  check('silu extreme', [[3]], (x) => x.silu());

  // Non-contiguous views fed into ops.
  check('exp of transposed', [[3, 4]], (x) => x.T.exp());
  check('add transposed views', [[3, 4], [4, 3]], (a, b) => a.T.add(b));
  check('mul sliced', [[4, 6], [2, 3]], (a, b) => a.slice(0, 0, undefined, 2).slice(1, 1, 4).mul(b));
  check('add expanded', [[1, 4], [3, 4]], (a, b) => a.expand(3, 4).add(b));
  check('tanh of flipped', [[3, 4]], (x) => x.flip(0).tanh());

  // Second derivatives through the backward of linear and masked ops.
  check('double: relu then square', [[3, 4]], (x) => x.relu().square());
  check('double: leakyRelu then square', [[3, 4]], (x) => x.leakyRelu(0.1).square());
  check('double: clamp then square', [[3, 4]], (x) => x.clamp(-0.5, 0.7).square());
  check('double: abs then square', [[3, 4]], (x) => x.abs().square());
  check('double: maximum then square', [[3, 4], [4]], (a, b) => a.maximum(b).square());
  check('double: where then square', [[3, 4], [3, 4], [4]], (c, a, b) => where(c, a, b).square());
  check('double: sub broadcast then square', [[2, 3], [3]], (a, b) => a.sub(b).square());
});

test('elementwise: extreme values are exact where PyTorch is', () => {
  assert.equal(tensor([100]).exp().item(), Infinity);
  assert.equal(tensor([0]).log().item(), -Infinity);
  const s = tensor([100, -100]).sigmoid().toArray();
  assert.equal(s[0], 1);
  assert.ok(s[1] > 0 && s[1] < 1e-40, `sigmoid(-100) = ${s[1]}`);
  const sp = tensor([100, -100]).softplus().toArray();
  assert.equal(sp[0], 100);
  assert.ok(sp[1] > 0 && sp[1] < 1e-40, `softplus(-100) = ${sp[1]}`);
});

test('elementwise: sign and step are constant masks without gradient', () => {
  const x = tensor([-2, 0, 3, NaN]).requiresGrad_();
  assertClose(sign(x), tensor([-1, 0, 1, NaN]));
  assertClose(step(x), tensor([0, 0, 1, NaN]));
  assert.equal(sign(x).requiresGrad, false);
});

test('elementwise: errors name the op, the shapes and the dtype', () => {
  assert.throws(() => tensor([[1, 2, 3]]).add(tensor([1, 2])), (e: Error) => e instanceof ShapeError && /add/.test(e.message) && /\[1,3\]/.test(e.message) && /\[2\]/.test(e.message));
  assert.throws(() => tensor([1, 2], undefined, 'int32').mul(tensor([1, 2])), (e: Error) => e instanceof DTypeError && /mul/.test(e.message) && /int32/.test(e.message));
  assert.throws(() => tensor([1, 2], undefined, 'int32').exp(), (e: Error) => e instanceof DTypeError && /exp/.test(e.message) && /int32/.test(e.message));
  assert.throws(() => tensor([1]).clamp(2, 1), /clamp/);
  // Comparisons accept int32 (labels against predictions).
  assertClose(tensor([1, 2, 3], undefined, 'int32').eq(tensor([1, 0, 3])), tensor([1, 0, 1]));
});

test('elementwise: ops on 1000-element tensors agree with a float64 reference', () => {
  const x = randn([1000], new Rng(3));
  const v = x.toArray();
  const y = noGrad(() => x.gelu().add(x.mul(x).sigmoid()));
  const ref = v.map((t) => 0.5 * t * (1 + erfRef(t / Math.SQRT2)) + 1 / (1 + Math.exp(-t * t)));
  assertClose(y, tensor(ref), 1e-5, 1e-6);
});

/** erf from Abramowitz-Stegun 7.1.26 is too coarse; use a series/continued fraction. */
function erfRef(x: number): number {
  // Series to 60 terms (enough for |x| < 5 in float64).
  const s = Math.sign(x);
  const z = Math.abs(x);
  if (z > 5) return s;
  let sum = 0;
  let term = z;
  for (let n = 0; n < 100; n++) {
    sum += term / (2 * n + 1);
    term *= (-z * z) / (n + 1);
  }
  return (s * 2 * sum) / Math.sqrt(Math.PI);
}
