/**
 * The engine's speed shortcuts against the plain rules: slice/select/split gradients
 * added into one buffer per sliced tensor, gradient sums accumulated in place (a
 * createGraph sweep takes neither shortcut, so the two must give the same numbers;
 * finite differences check the shortcut path itself), and op results carved from
 * slabs (zeroed, disjoint).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, grad, allocF32, emptyF32 } from '../tensor.js';
import { Rng } from '../rng.js';
import { randn } from './random.js';
import { stack } from './shape_ops.js';
import { assertClose, checkGradFD } from '../../../test/helpers.js';

function both(f: (x: Tensor) => Tensor, x0: Tensor, extra: (x: Tensor, y: Tensor) => Tensor[] = () => []): void {
  const run = (createGraph: boolean): (Tensor | null)[] => {
    const x = x0.detach().clone().requiresGrad_();
    const y = f(x);
    return grad(y, [x, ...extra(x, y)], { createGraph, allowUnused: true });
  };
  const fast = run(false), plain = run(true);
  fast.forEach((g, i) => assertClose(g!, plain[i]!.detach(), 1e-6, 1e-6, `gradient ${i}`));
}

test('time steps, overlapping and strided slices accumulate like zero-padded gradients', () => {
  const rng = new Rng(1);
  const x0 = randn([6, 3, 4], rng);
  // Every time step, used twice, plus overlapping and strided slices of the same tensor.
  const f = (x: Tensor): Tensor => {
    const steps = Array.from({ length: 6 }, (_, t) => x.index(0, t).mul(t + 1));
    const s = stack(steps, 0).mul(x).sum();
    const o = x.slice(0, 1, 5).sum().add(x.slice(0, 0, 6, 2).mul(3).sum()).add(x.index(0, 2).square().sum());
    const [a, b] = x.chunk(2, -1);
    return s.add(o).add(a.mul(b).sum());
  };
  both(f, x0);
  checkGradFD(f, [x0]);
});

test('in-place sums never alias another tensor\'s gradient', () => {
  const rng = new Rng(2);
  const x0 = randn([5], rng);
  // a's gradient is a sum (three consumers); add hands that same object to both of
  // its inputs, and b = a.clone() passes it on as is. Asking for a's and b's gradients
  // too makes any aliasing visible.
  let a: Tensor | null = null;
  let b: Tensor | null = null;
  const f = (x: Tensor): Tensor => {
    a = x.mul(3);
    b = a.clone();
    const c = a.add(b); // gradient g goes to a and b as one object
    return c.mul(c).sum().add(a.sum()).add(b.mul(2).sum()).add(a.square().sum());
  };
  both(f, x0, () => [a!, b!]);
  const x = x0.detach().clone().requiresGrad_();
  const y = f(x);
  const [gx, ga, gb] = grad(y, [x, a!, b!]);
  // Analytic: c = a + b = 2a (b = a); y = c^2 + a + 2b + a^2. dy/db = 2c + 2; dy/da
  // (total, through b too) = 2c + 1 + 2a + dy/db; dy/dx = 3 dy/da.
  const av = (a! as Tensor).values(), cv = Array.from(av, (v) => 2 * v);
  const want = (fn: (i: number) => number): Tensor => new Tensor(Float32Array.from({ length: 5 }, (_, i) => fn(i)), [5]);
  assertClose(gb!, want((i) => 2 * cv[i] + 2), 1e-5, 1e-5, 'db');
  assertClose(ga!, want((i) => 4 * cv[i] + 3 + 2 * av[i]), 1e-5, 1e-5, 'da');
  assertClose(gx!, want((i) => 3 * (4 * cv[i] + 3 + 2 * av[i])), 1e-5, 1e-4, 'dx');
  assert.notEqual(ga, gb);
  // t's gradient is a sum; add hands it to p and q as their first gradient; q then
  // gets more (in either sweep order): p's must not change with it.
  for (const order of [0, 1]) {
    const g = (x: Tensor): Tensor => {
      const p = x.mul(2), q = x.mul(3);
      const t = p.add(q);
      const tUse = t.sum().add(t.mul(2).sum());
      const qUse = q.mul(q).sum().add(p.mul(0.5).sum());
      return order === 0 ? tUse.add(qUse) : qUse.add(tUse);
    };
    both(g, x0);
    // dy/dx = 3 (2 + 3) + 2 * 9 x + 0.5 * 2
    const xx = x0.detach().clone().requiresGrad_();
    const [d] = grad(g(xx), [xx]);
    assertClose(d!, new Tensor(Float32Array.from(x0.values(), (v) => 16 + 18 * v), [5]), 1e-5, 1e-5, `order ${order}`);
  }
});

test('slab-allocated results start zeroed and never overlap', () => {
  const arrays: Float32Array[] = [];
  // Enough to span several slabs, with sizes on both sides of the slab limit.
  for (let i = 0; i < 400; i++) {
    const n = [1, 17, 100, 1000, 4096, 4097, 333][i % 7];
    const a = allocF32(n);
    assert.equal(a.length, n);
    assert.ok(a.every((v) => v === 0), `array ${i} starts zeroed`);
    a.fill(i + 1);
    arrays.push(a);
  }
  arrays.forEach((a, i) => assert.ok(a.every((v) => v === i + 1), `array ${i} kept its values`));
});

test('emptyF32 results are 16-byte aligned and never overlap, small or large', () => {
  const arrays: Float32Array[] = [];
  for (let i = 0; i < 60; i++) {
    const n = [0, 5, 4096, 4097, 100000][i % 5];
    const a = emptyF32(n);
    assert.equal(a.length, n);
    assert.equal(a.byteOffset % 16, 0, `array ${i} aligned`);
    a.fill(i + 1);
    arrays.push(a);
  }
  arrays.forEach((a, i) => assert.ok(a.every((v) => v === i + 1), `array ${i} kept its values`));
});
