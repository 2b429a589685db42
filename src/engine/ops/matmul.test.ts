/**
 * Batched broadcasting matmul against PyTorch (test/fixtures/engine_ops.json from
 * scripts/fixtures/engine_ops.py) and finite differences, on every backend present:
 * 1-D operands, transposed/sliced/expanded/flipped views, 5-D batches, empty sizes.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { tensor, matmul, matmulBias, randn, grad, Rng, Tensor, noGrad, ShapeError, DTypeError, hasBackend, withBackend } from '../index.js';
import { opSuite, assertClose } from '../../../test/helpers.js';

opSuite('matmul', (check) => {
  check('matmul nan', [[2, 3], [3, 2]], (a, b) => a.matmul(b));
  check('matmul 2d', [[3, 4], [4, 5]], (a, b) => a.matmul(b));
  check('matmul batched', [[2, 3, 4], [2, 4, 5]], (a, b) => a.matmul(b));
  check('matmul broadcast batch', [[2, 1, 3, 4], [3, 4, 2]], (a, b) => a.matmul(b));
  check('matmul batch x 2d', [[2, 3, 4], [4, 5]], (a, b) => a.matmul(b));
  check('matmul 2d x batch', [[3, 4], [2, 4, 5]], (a, b) => a.matmul(b));
  check('matmul 1d x 2d', [[4], [4, 5]], (a, b) => a.matmul(b));
  check('matmul 2d x 1d', [[3, 4], [4]], (a, b) => a.matmul(b));
  check('matmul 1d x 1d', [[4], [4]], (a, b) => a.matmul(b));
  check('matmul 3d x 1d', [[2, 3, 4], [4]], (a, b) => a.matmul(b));
  check('matmul 1d x 3d', [[4], [2, 4, 3]], (a, b) => a.matmul(b));
  check('matmul a.T', [[4, 3], [4, 5]], (a, b) => a.T.matmul(b));
  check('matmul b.T', [[3, 4], [5, 4]], (a, b) => a.matmul(b.T));
  check('matmul a.T b.T', [[4, 3], [5, 4]], (a, b) => a.T.matmul(b.T));
  check('matmul batched transposed', [[2, 4, 3], [2, 5, 4]], (a, b) => a.transpose(1, 2).matmul(b.transpose(1, 2)));
  check('matmul permuted batch', [[3, 2, 4], [4, 5]], (a, b) => a.permute(1, 0, 2).matmul(b));
  check('matmul sliced columns', [[3, 8], [4, 5]], (a, b) => a.slice(1, 0, undefined, 2).matmul(b));
  check('matmul sliced rows', [[6, 4], [4, 5]], (a, b) => a.slice(0, 1, 4).matmul(b));
  check('matmul expanded', [[1, 3, 4], [2, 4, 5]], (a, b) => a.expand(2, 3, 4).matmul(b));
  check('matmul expanded rows', [[1, 4], [4, 5]], (a, b) => a.expand(3, 4).matmul(b));
  check('matmul flipped', [[3, 4], [4, 5]], (a, b) => a.flip(1).matmul(b.flip(0)));
  check('matmul single row', [[1, 4], [4, 1]], (a, b) => a.matmul(b));
  check('matmul 5-D', [[2, 1, 2, 3, 4], [2, 1, 4, 2]], (a, b) => a.matmul(b));
  check('matmul empty k', [[3, 0], [0, 2]], (a, b) => a.matmul(b));
  check('matmul empty m', [[0, 3], [3, 2]], (a, b) => a.matmul(b));
  check('matmul empty batch', [[0, 2, 3], [3, 2]], (a, b) => a.matmul(b));

  // Second derivatives through the backward of matmul variants.
  check('double: batched transposed matmul then square', [[2, 4, 3], [2, 5, 4]], (a, b) => a.transpose(1, 2).matmul(b.transpose(1, 2)).square());
  check('double: 1d x 3d matmul then tanh', [[4], [2, 4, 3]], (a, b) => a.matmul(b).tanh());
});

/** Plain triple loop over row-major arrays: the reference for larger products. */
function refMatmul(a: ArrayLike<number>, b: ArrayLike<number>, M: number, K: number, N: number): Float32Array {
  const c = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
      c[i * N + j] = s;
    }
  }
  return c;
}

test('matmul: larger odd sizes (past any kernel blocking) agree with a triple loop on every backend', () => {
  const rng = new Rng(7);
  for (const [M, K, N] of [[67, 129, 35], [1, 300, 17], [130, 5, 1]]) {
    const a = randn([M, K], rng);
    const b = randn([K, N], rng);
    const want = tensor(refMatmul(a.toArray(), b.toArray(), M, K, N), [M, N]);
    for (const be of ['js', 'native', 'wasm'] as const) {
      if (!hasBackend(be)) continue;
      withBackend(be, () => {
        assertClose(noGrad(() => a.matmul(b)), want, 1e-4, 1e-4, `${be} ${M}x${K}x${N}`);
        // The same product through transposed views (GEMM transpose flags).
        const at = a.T.clone().T;
        const bt = b.T.clone().T;
        assertClose(noGrad(() => at.matmul(bt)), want, 1e-4, 1e-4, `${be} transposed ${M}x${K}x${N}`);
      });
    }
  }
});

test('matmul: errors name the op, the shapes and the dtype', () => {
  assert.throws(() => matmul(tensor([[1, 2, 3]]), tensor([[1, 2]])), (e: Error) => e instanceof ShapeError && /matmul/.test(e.message) && /\[1,3\]/.test(e.message) && /\[1,2\]/.test(e.message));
  assert.throws(() => matmul(tensor(1), tensor([1])), (e: Error) => e instanceof ShapeError && /matmul.*0-D/.test(e.message));
  assert.throws(() => matmul(tensor([[1, 2]], undefined, 'int32'), tensor([[1], [2]])), (e: Error) => e instanceof DTypeError && /matmul/.test(e.message) && /int32/.test(e.message));
  assert.throws(() => matmul(randn([2, 2, 3], new Rng(0)), randn([3, 3, 2], new Rng(0))), (e: Error) => e instanceof ShapeError && /matmul/.test(e.message));
});

test('matmulBias = matmul + add: values, gradients and second-order gradients, fast path and fallbacks, every backend', () => {
  for (const be of ['js', 'native', 'wasm'] as const) {
    if (!hasBackend(be)) continue;
    withBackend(be, () => {
      const rng = new Rng(21);
      // [a shape, b shape (as given to matmulBias), take b as a transposed view]
      const cases: [number[], number[], boolean][] = [
        [[7, 5], [5, 9], false], // 2-D, plain b
        [[2, 3, 5], [9, 5], true], // batched a, b = w.T as in a Linear (the fast path)
        [[4, 33, 40], [70, 40], true], // big enough for the native GEMM
        [[3, 5], [5, 4], false],
      ];
      for (const [as, bs, tb] of cases) {
        for (const act of [undefined, 'relu'] as const) {
          const a0 = randn(as, rng), w0 = randn(bs, rng), c0 = randn([2 * (tb ? bs[0] : bs[1])], rng);
          const what = `${be} ${JSON.stringify(as)} x ${JSON.stringify(bs)}${tb ? '^T' : ''} ${act ?? ''}`;
          const make = (fused: boolean) => {
            // The bias a strided view half the time (the epilogue then reads a copy).
            const a = a0.clone().requiresGrad_(), w = w0.clone().requiresGrad_(), cc = c0.clone().requiresGrad_();
            const c = tb ? cc.slice(0, 0, undefined, 2) : cc.slice(0, 0, bs[1]);
            const b = tb ? w.T : w;
            const z = fused ? matmulBias(a, b, c, act) : matmul(a, b).add(c);
            return { a, w, cc, y: fused || !act ? z : z.relu() };
          };
          const run = (fused: boolean) => {
            const { a, w, cc, y } = make(fused);
            const gy = randn(y.shape, new Rng(3));
            const gs = grad(y.mul(gy).sum(), [a, w, cc], { createGraph: true });
            const second = grad(gs.reduce((s: Tensor, g) => s.add(g!.square().sum()), tensor(0)), [a, w], { allowUnused: true });
            return [y, ...gs, ...second] as (Tensor | null)[];
          };
          const f = run(true), r = run(false);
          f.forEach((t, i) => assertClose(t!, r[i]!, 1e-5, 1e-5, `${what}: output ${i}`));
          // A plain backward (no graph recorded) takes the kernels' path.
          const leaves = [true, false].map((fused) => {
            const { a, w, cc, y } = make(fused);
            y.mul(randn(y.shape, new Rng(3))).sum().backward();
            return [a.grad!, w.grad!, cc.grad!];
          });
          leaves[0].forEach((t, i) => assertClose(t, leaves[1][i], 1e-5, 1e-5, `${what}: backward ${i}`));
        }
      }
      // A transposed batch view of a, and a batched b, take the fallback with the same values.
      const a = randn([2, 5, 3], rng), b3 = randn([2, 5, 4], rng), c = randn([4], rng);
      assertClose(matmulBias(a.transpose(1, 2), randn([5, 4], new Rng(1)), c), matmul(a.transpose(1, 2), randn([5, 4], new Rng(1))).add(c), 1e-5, 1e-6, `${be} transposed a`);
      assertClose(matmulBias(a.transpose(1, 2), b3, c), matmul(a.transpose(1, 2), b3).add(c), 1e-5, 1e-6, `${be} batched b`);
    });
  }
});
