/**
 * tidy scopes and the buffer pool behind them (pool.ts): what survives a scope, what is
 * released and fails loudly when read, reuse of storage, nesting, errors, trimming, and
 * backward sweeps inside a scope (early release of consumed gradients) against the same
 * sweeps outside one. Tensors here exceed the pool's 4096-float threshold on purpose.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, Rng, concat, grad, keep, randn, tidy } from '../index.js';
import { pooledFloats } from './pool.js';

const rng = new Rng(7);
const x = randn([64, 100], rng); // 6400 floats: pooled inside a scope
const RELEASED = /shape \[64, 100\] was released when the tidy\(\) scope that made it ended/;

test('tidy: the result survives; other tensors made inside are released and reading them throws', () => {
  let inner: Tensor | null = null;
  const r = tidy(() => {
    inner = x.mul(2);
    return inner.add(1);
  });
  const want = x.toArray().map((v) => Math.fround(Math.fround(v * 2) + 1));
  assert.deepEqual(r.toArray(), want);
  assert.throws(() => inner!.toArray(), RELEASED);
  assert.throws(() => inner!.add(1), RELEASED);
  assert.equal(x.toArray().length, 6400); // made outside: untouched
});

test('tidy: the next scope reuses released storage, never a result that is still held', () => {
  let a1: unknown, a2: unknown;
  tidy(() => {
    a1 = x.mul(3).data;
    return 0;
  });
  tidy(() => {
    a2 = x.mul(4).data;
    return 0;
  });
  assert.equal(a1, a2, 'same array reused');
  const held = tidy(() => ({ y: x.mul(5), list: [x.mul(6)] }));
  for (let i = 0; i < 3; i++) tidy(() => x.mul(7).add(x).sum().item());
  assert.deepEqual(held.y.toArray(), x.toArray().map((v) => Math.fround(v * 5)));
  assert.deepEqual(held.list[0].toArray(), x.toArray().map((v) => Math.fround(v * 6)));
});

test('tidy: keep() lets a tensor outlive the scope; views of a kept array survive with it', () => {
  let k: Tensor | null = null;
  let view: Tensor | null = null;
  tidy(() => {
    const t = keep(x.mul(2));
    view = t.reshape([100, 64]).transpose(0, 1);
    k = t;
    return null;
  });
  for (let i = 0; i < 2; i++) tidy(() => x.mul(9).sum().item());
  assert.equal(k!.toArray()[5], Math.fround(x.toArray()[5] * 2));
  assert.deepEqual(view!.shape, [64, 100]);
  view!.toArray(); // readable
});

test('tidy: nested scopes hand kept storage to the enclosing scope, which releases it', () => {
  let fromInner: Tensor | null = null;
  let innerTemp: Tensor | null = null;
  const out = tidy(() => {
    fromInner = tidy(() => {
      innerTemp = x.add(1);
      return innerTemp.mul(2);
    });
    assert.throws(() => innerTemp!.toArray(), RELEASED);
    fromInner.toArray(); // alive inside the outer scope
    return fromInner.sum();
  });
  assert.throws(() => fromInner!.toArray(), RELEASED);
  assert.ok(Math.abs(out.item() - x.toArray().reduce((s, v) => s + (v + 1) * 2, 0)) < 1e-1);
});

test('tidy: a callback that throws releases nothing and rethrows', () => {
  let t: Tensor | null = null;
  assert.throws(
    () =>
      tidy(() => {
        t = x.mul(2);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(t!.toArray()[3], Math.fround(x.toArray()[3] * 2));
});

test('tidy: free arrays of a size no scope asked for are dropped at the next outermost end', () => {
  tidy(() => randn([70, 100], rng).mul(2).sum().item()); // 7000-float arrays
  const afterA = pooledFloats();
  assert.ok(afterA >= 7000);
  tidy(() => randn([80, 100], rng).mul(2).sum().item()); // only 8000-float arrays used
  const afterB = pooledFloats();
  assert.equal(afterB % 8000, 0, `pool should hold only 8000-float arrays now, holds ${afterB} floats`);
});

/** A small net whose backward exercises every path of the sweep's bookkeeping. */
function netLoss(w1: Tensor, w2: Tensor, b: Tensor, inp: Tensor): Tensor {
  const h = inp.matmul(w1).add(b).relu(); // [64, 128]
  const [h1, h2] = h.chunk(2, 1); // views: gradients through regions
  const mixed = concat([h2, h1], 1).mul(h); // h used twice: accumulation
  const y = mixed.matmul(w2).matmul(w2.transpose(0, 1)); // w2 used twice
  const r = y.reshape([128, 64]).slice(0, 10, 120).tanh();
  return r.square().mean().add(h.mean());
}

test('tidy: backward inside a scope gives the same gradients as outside, and .grad survives', () => {
  const r = new Rng(3);
  const mk = (): Tensor[] => [randn([100, 128], r).mul(0.1), randn([128, 96], r).mul(0.1), randn([128], r), randn([64, 100], r)];
  const init = mk();
  const run = (scoped: boolean): number[][] => {
    const [w1, w2, b] = init.slice(0, 3).map((t) => t.clone().requiresGrad_());
    const out: number[][] = [];
    for (let it = 0; it < 3; it++) {
      const step = (): number => {
        for (const p of [w1, w2, b]) p.zeroGrad();
        const loss = netLoss(w1, w2, b, init[3].mul(it + 1));
        loss.backward();
        return loss.item();
      };
      const l = scoped ? tidy(step) : step();
      out.push([l, ...w1.grad!.toArray().slice(0, 50), ...w2.grad!.toArray().slice(-50), ...b.grad!.toArray()]);
    }
    return out;
  };
  assert.deepEqual(run(true), run(false));
});

test('tidy: grad() inside a scope returns gradients that survive it', () => {
  const w = randn([100, 64], rng).requiresGrad_();
  const outside = grad(x.matmul(w).tanh().sum(), [w])[0]!.toArray();
  const [g] = tidy(() => grad(x.matmul(w).tanh().sum(), [w]));
  for (let i = 0; i < 2; i++) tidy(() => x.matmul(w).sum().item());
  assert.deepEqual(g!.toArray(), outside);
});

test('tidy: a view gradient buffer survives the backward rules that run between its writes', () => {
  const r = new Rng(5);
  const x0 = randn([64, 128], r);
  const c = randn([64, 64], r);
  const run = (scoped: boolean): number[] => {
    const x = x0.clone().requiresGrad_();
    const body = (): number => {
      const [a, b] = x.chunk(2, 1); // both halves add into one region buffer of x's shape
      // Each branch makes [64, 128] temporaries in its backward, the region buffer's size.
      const fa = concat([a, a.mul(c)], 1).tanh().square().sum();
      const fb = concat([b.mul(c), b], 1).sigmoid().square().sum();
      const loss = fa.add(fb);
      loss.backward();
      return loss.item();
    };
    const l = scoped ? tidy(body) : body();
    return [l, ...x.grad!.toArray()];
  };
  const want = run(false);
  for (let i = 0; i < 2; i++) assert.deepEqual(run(true), want);
});

test('tidy: an async callback is refused with a clear error, and its tensors stay usable', async () => {
  let t: Tensor | null = null;
  assert.throws(
    () =>
      tidy(async () => {
        t = x.mul(2);
        return 1;
      }),
    /tidy: the callback returned a Promise/,
  );
  assert.equal(t!.toArray()[1], Math.fround(x.toArray()[1] * 2));
});

test('tidy: leaves given one gradient array each own separate buffers, and later backwards add into each', () => {
  const r = new Rng(8);
  const w = randn([64, 100], r);
  const a = randn([64, 100], r).requiresGrad_(), b = randn([64, 100], r).requiresGrad_();
  const c = randn([64, 100], r).requiresGrad_(); // its gradient is made for it alone: taken as is
  const step = (): number => {
    const loss = a.add(b).mul(w).sum().add(c.mul(w).mul(2).sum());
    loss.backward();
    return loss.item();
  };
  tidy(step);
  assert.notEqual(a.grad!.data.buffer, b.grad!.data.buffer, 'a and b share no buffer');
  const want = w.toArray();
  assert.deepEqual(a.grad!.toArray(), want);
  assert.deepEqual(b.grad!.toArray(), want);
  assert.deepEqual(c.grad!.toArray(), want.map((v) => Math.fround(v * 2)));
  tidy(step); // accumulates in place: twice the gradient
  for (let i = 0; i < 2; i++) tidy(() => x.mul(3).sum().item()); // reuse the pool meanwhile
  assert.deepEqual(a.grad!.toArray(), want.map((v) => Math.fround(v * 2)));
  assert.deepEqual(b.grad!.toArray(), want.map((v) => Math.fround(v * 2)));
  assert.deepEqual(c.grad!.toArray(), want.map((v) => Math.fround(Math.fround(v * 2) * 2)));
});
