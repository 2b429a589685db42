/**
 * Autograd: accumulation, double backward, grad() options, error messages for misuse,
 * the numerics check, and deep graphs. Op-by-op gradients live in ops/*.test.ts.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tensor, grad, noGrad, randn, Rng, setCheckNumerics, NumericsError } from '../index.js';
import { assertClose, checkGradFD, opCases } from '../../test/helpers.js';

test('backward accumulates into leaves and respects noGrad', () => {
  const x = tensor([1, 2, 3]).requiresGrad_();
  x.mul(x).sum().backward();
  x.mul(2).sum().backward();
  assertClose(x.grad!, tensor([4, 6, 8]));
  const y = noGrad(() => x.mul(3));
  assert.equal(y.requiresGrad, false);
});

test('double backward through pow and tanh', () => {
  const a = tensor([0.5, -1, 2]).requiresGrad_();
  const [g] = grad(a.tanh().sum(), [a], { createGraph: true });
  const [gg] = grad(g!.sum(), [a]);
  // d2/dx2 tanh = -2 tanh (1 - tanh^2)
  const t = [0.5, -1, 2].map(Math.tanh);
  assertClose(gg!, tensor(t.map((v) => -2 * v * (1 - v * v))), 1e-4, 1e-6);
});

test('finite differences: matmul with broadcasting batch', () => {
  const rng = new Rng(1);
  checkGradFD((a, b) => a.matmul(b).tanh(), [randn([2, 3, 4], rng), randn([4, 5], rng)]);
});

// ---- Autograd edge cases ---------------------------------------------------------------

test('grad: allowUnused returns null for an unused input, and without it the error names the input', () => {
  const x = tensor([1, 2]).requiresGrad_();
  const y = tensor([3, 4]).requiresGrad_();
  const out = x.mul(x).sum();
  const [gx, gy] = grad(out, [x, y], { allowUnused: true });
  assertClose(gx!, tensor([2, 4]));
  assert.equal(gy, null);
  assert.throws(() => grad(x.mul(x).sum(), [x, y]), /grad: input 1 \(shape \[2\]\) was not used.*allowUnused/);
  assert.throws(() => grad(x.sum(), [tensor([1])]), /grad: an input of shape \[1\] does not require grad/);
});

test('backward: a non-scalar output needs a gradient of its shape', () => {
  const x = tensor([[1, 2], [3, 4]]).requiresGrad_();
  const y = x.mul(3);
  assert.throws(() => y.backward(), /backward: output of shape \[2,2\] is not a scalar; pass a gradient/);
  assert.throws(() => y.backward(tensor([1, 1])), /gradient shape \[2\] does not match output shape \[2,2\]/);
  y.backward(tensor([[1, 0], [2, 1]]));
  assertClose(x.grad!, tensor([[3, 0], [6, 3]]));
  assert.throws(() => noGrad(() => x.sum()).backward(), /does not require grad/);
});

test('grad: gradOutputs, several outputs, intermediate inputs and diamonds', () => {
  const x = tensor([0.5, -1, 2]).requiresGrad_();
  const h = x.mul(2); // intermediate, used twice below (a diamond)
  const a = h.sin();
  const b = h.square();
  const [gx, gh] = grad([a, b.sum()], [x, h], { gradOutputs: [tensor([1, 2, 3]), null] });
  const hv = [1, -2, 4];
  const ghWant = hv.map((v, i) => [1, 2, 3][i] * Math.cos(v) + 2 * v);
  assertClose(gh!, tensor(ghWant), 1e-5, 1e-5);
  assertClose(gx!, tensor(ghWant.map((v) => 2 * v)), 1e-5, 1e-5);
  // grad() leaves .grad alone.
  assert.equal(x.grad, null);
});

test('backward: createGraph makes .grad differentiable; repeated backward accumulates', () => {
  const x = tensor([1.5, -0.5]).requiresGrad_();
  x.pow(3).sum().backward(undefined, { createGraph: true });
  assert.equal(x.grad!.requiresGrad, true);
  const g1 = x.grad!;
  assertClose(g1, tensor([3 * 1.5 ** 2, 3 * 0.25]));
  const [gg] = grad(g1.sum(), [x]);
  assertClose(gg!, tensor([6 * 1.5, 6 * -0.5]));
  // With retainGraph the graph stays usable: a second backward through it adds up.
  const w = tensor([2, 3]).requiresGrad_();
  const loss = w.mul(w).sum();
  loss.backward(undefined, { retainGraph: true });
  loss.backward();
  assertClose(w.grad!, tensor([8, 12]));
  w.zeroGrad();
  assert.equal(w.grad, null);
  // Without it (PyTorch's default) the first backward frees the graph as it goes, and
  // a second one says so instead of returning wrong gradients.
  assert.throws(() => loss.backward(), /graph through (mul|sum) was freed by an earlier backward\(\); pass \{ retainGraph: true \}/);
});

test('backward: frees each node as the sweep passes it; grad() and createGraph keep the graph', () => {
  const x = tensor([1, 2, 3]).requiresGrad_();
  const h = x.mul(2);
  const y = h.exp().sum();
  y.backward();
  assert.deepEqual(h.node!.inputs, []);
  // grad() retains: the same graph can be differentiated again.
  const z = x.square().sum();
  const [g1] = grad(z, [x]);
  const [g2] = grad(z, [x]);
  assertClose(g1!, g2!);
  // createGraph retains by default.
  const u = x.pow(3).sum();
  u.backward(undefined, { createGraph: true });
  u.backward(undefined, { createGraph: true });
  assert.ok(x.grad !== null);
});

test('backward: after a createGraph backward, a plain backward never writes into shared gradients', () => {
  // add's backward hands the same gradient tensor (here the caller's own) to both leaves.
  const x = tensor([1, 2]).requiresGrad_();
  const y = tensor([3, 4]).requiresGrad_();
  const go = tensor([1, 1]);
  x.add(y).backward(go, { createGraph: true });
  x.mul(2).sum().backward();
  assertClose(x.grad!, tensor([3, 3]));
  assertClose(y.grad!, tensor([1, 1]));
  assertClose(go, tensor([1, 1]));
  // A gradient the user assigned is not written either.
  const mine = tensor([10, 10]);
  x.grad = mine;
  x.sum().backward();
  assertClose(x.grad!, tensor([11, 11]));
  assertClose(mine, tensor([10, 10]));
});

test('autograd: a 20000-op chain backpropagates without overflowing the stack', () => {
  const x = tensor([1]).requiresGrad_();
  let y = x;
  for (let i = 0; i < 20000; i++) y = y.mul(1.0001).add(0);
  y.sum().backward();
  assertClose(x.grad!, tensor([Math.pow(1.0001, 20000)]), 1e-3);
});

test('autograd: int32 tensors cannot require grad; noGrad results carry no graph', () => {
  assert.throws(() => tensor([1], undefined, 'int32').requiresGrad_(), /requiresGrad_: only float32/);
  const x = tensor([1, 2]).requiresGrad_();
  const y = noGrad(() => x.exp().sum());
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
  assert.equal(x.detach().requiresGrad, false);
  assert.throws(() => x.exp().requiresGrad_(false), /non-leaf/);
});

test('numerics check: setCheckNumerics(true) names the first op that makes NaN', () => {
  const x = tensor([1, 2]).requiresGrad_();
  setCheckNumerics(true);
  try {
    assert.throws(() => x.mul(0).sub(1).log(), (e: Error) => e instanceof NumericsError && /^log produced NaN/.test(e.message) && /\[2\]/.test(e.message));
    // A NaN already present in an input is not blamed on the next op.
    assert.doesNotThrow(() => tensor([NaN]).add(1));
    assert.throws(() => tensor([1]).div(0), (e: Error) => e instanceof NumericsError && /^div produced Inf/.test(e.message));
  } finally {
    setCheckNumerics(false);
  }
  assert.doesNotThrow(() => x.mul(0).sub(1).log());
});

test('numerics check: GENLAB_CHECK_NUMERICS=1 turns it on from the environment', () => {
  const index = join(dirname(fileURLToPath(import.meta.url)), '..', 'index.js');
  const code = `import { tensor } from ${JSON.stringify(pathToFileURL(index).href)};
try { tensor([1]).mul(0).sub(1).log(); process.exit(3); } catch (e) { process.exit(e.name === 'NumericsError' && /log/.test(e.message) ? 0 : 4); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, GENLAB_CHECK_NUMERICS: '1', GENLAB_BACKEND: 'js' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('double backward against torch is covered for the ops that need it', () => {
  const withSecond = Object.entries(opCases()).filter(([, c]) => c.grads2).map(([n]) => n);
  for (const op of ['tanh', 'sigmoid', 'softmax axis -1', 'logSumExp axis 1', 'matmul 2d', 'pow', 'gelu', 'div']) {
    assert.ok(withSecond.includes(op), `no second-derivative fixture for ${op}`);
  }
});
