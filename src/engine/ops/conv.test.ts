/**
 * Tests for conv.ts: outputs and gradients against PyTorch fixtures
 * (scripts/fixtures/conv.py -> test/fixtures/conv.json) on every available backend,
 * double backward, finite differences on tiny shapes, the agreement of the batched and
 * per-image GEMM paths, and error messages.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, tensor, grad, enableGrad, randn, Rng, hasBackend, withBackend, concat, slice,
  conv2d, conv1d, convTranspose2d, maxPool2d, maxPool2dWithIndices, avgPool2d, upsample,
} from '../index.js';
import type { BackendName, Conv2dOptions, ConvTranspose2dOptions, Conv1dOptions, AvgPool2dOptions, UpsampleOptions } from '../index.js';
import { assertClose, checkGradFD, fixture, fromFixture } from '../../../test/helpers.js';
import type { FixtureTensor } from '../../../test/helpers.js';

interface Case {
  kind: 'conv2d' | 'conv1d' | 'convTranspose2d' | 'maxPool2d' | 'avgPool2d' | 'upsample';
  opts: Record<string, unknown>;
  k?: number | [number, number];
  x: FixtureTensor;
  w?: FixtureTensor;
  b?: FixtureTensor;
  y?: FixtureTensor;
  gy: FixtureTensor;
  gx: FixtureTensor;
  gw?: FixtureTensor;
  gb?: FixtureTensor;
  vw?: FixtureTensor;
  ggx?: FixtureTensor;
  ggw?: FixtureTensor;
  ggy?: FixtureTensor;
  indices?: FixtureTensor;
}

const cases = fixture<{ cases: Record<string, Case> }>('conv').cases;
const backends = (['js', 'wasm', 'native'] as BackendName[]).filter(hasBackend);
const RTOL = 1e-4;
const ATOL = 1e-4;

function apply(c: Case, x: Tensor, w: Tensor | null, b: Tensor | null): Tensor {
  switch (c.kind) {
    case 'conv2d': return conv2d(x, w!, b, c.opts as Conv2dOptions);
    case 'conv1d': return conv1d(x, w!, b, c.opts as Conv1dOptions);
    case 'convTranspose2d': return convTranspose2d(x, w!, b, c.opts as ConvTranspose2dOptions);
    case 'maxPool2d': return maxPool2d(x, c.k!, c.opts);
    case 'avgPool2d': return avgPool2d(x, c.k!, c.opts as AvgPool2dOptions);
    case 'upsample': return upsample(x, c.opts as UpsampleOptions);
  }
}

for (const be of backends) {
  for (const [name, c] of Object.entries(cases)) {
    if (name.startsWith('double_')) continue;
    test(`${c.kind} ${name} matches PyTorch: output and gradients (${be})`, () => {
      withBackend(be, () => {
        const x = fromFixture(c.x).requiresGrad_();
        const w = c.w ? fromFixture(c.w).requiresGrad_() : null;
        const b = c.b ? fromFixture(c.b).requiresGrad_() : null;
        const y = apply(c, x, w, b);
        assertClose(y, c.y!, RTOL, ATOL, `${name} output`);
        const inputs = [x, w, b].filter((t): t is Tensor => t !== null);
        const gs = grad(y.mul(fromFixture(c.gy)).sum(), inputs);
        assertClose(gs[0]!, c.gx, RTOL, ATOL, `${name} grad input`);
        if (w) assertClose(gs[1]!, c.gw!, RTOL, ATOL, `${name} grad weight`);
        if (b) assertClose(gs[2]!, c.gb!, RTOL, ATOL, `${name} grad bias`);
        if (c.indices) {
          const { indices } = maxPool2dWithIndices(x, c.k!, c.opts);
          assert.equal(indices.dtype, 'int32');
          assert.deepEqual(Array.from(indices.values()), c.indices.data, `${name} argmax indices`);
        }
      });
    });
  }

  for (const name of ['double_conv2d', 'double_convT']) {
    test(`${name}: double backward matches torch.autograd.grad(create_graph=True) (${be})`, () => {
      withBackend(be, () => {
        const c = cases[name];
        const x = fromFixture(c.x).requiresGrad_();
        const w = fromFixture(c.w!).requiresGrad_();
        const gy = fromFixture(c.gy).requiresGrad_();
        const y = c.kind === 'conv2d' ? conv2d(x, w, null, c.opts as Conv2dOptions) : convTranspose2d(x, w, null, c.opts as ConvTranspose2dOptions);
        const [gx, gw] = grad(y.mul(gy).sum(), [x, w], { createGraph: true });
        assertClose(gx!, c.gx, RTOL, ATOL, 'first-order grad input');
        assertClose(gw!, c.gw!, RTOL, ATOL, 'first-order grad weight');
        const s = gx!.mul(gx!).sum().add(gw!.mul(fromFixture(c.vw!)).sum());
        const [ggx, ggw, ggy] = grad(s, [x, w, gy]);
        assertClose(ggx!, c.ggx!, RTOL, 1e-3, 'second-order grad input');
        assertClose(ggw!, c.ggw!, RTOL, 1e-3, 'second-order grad weight');
        assertClose(ggy!, c.ggy!, RTOL, 1e-3, 'second-order grad of the upstream gradient');
      });
    });
  }

  test(`batched and per-image GEMM paths agree (${be})`, () => {
    withBackend(be, () => {
      // Batch 3 with a small output takes the one-GEMM-over-the-batch path; each image
      // alone takes the per-image path.
      const rng = new Rng(7);
      const opts = { stride: 2, padding: 1, groups: 2 };
      const x = randn([3, 4, 7, 7], rng).requiresGrad_();
      const w = randn([6, 2, 3, 3], rng).requiresGrad_();
      const gy = randn([3, 6, 4, 4], rng);
      const y = conv2d(x, w, null, opts);
      const [gx, gw] = grad(y.mul(gy).sum(), [x, w]);
      const parts = [0, 1, 2].map((n) => {
        const xn = slice(x, 0, n, n + 1).detach().requiresGrad_();
        const wn = w.detach().requiresGrad_();
        const yn = conv2d(xn, wn, null, opts);
        const [gxn, gwn] = grad(yn.mul(slice(gy, 0, n, n + 1)).sum(), [xn, wn]);
        return { yn, gxn: gxn!, gwn: gwn! };
      });
      assertClose(y, concat(parts.map((p) => p.yn), 0), 1e-5, 1e-5, 'output');
      assertClose(gx!, concat(parts.map((p) => p.gxn), 0), 1e-5, 1e-5, 'grad input');
      assertClose(gw!, parts[0].gwn.add(parts[1].gwn).add(parts[2].gwn), 1e-4, 1e-4, 'grad weight');
      // The same for a transposed convolution (its input side is the small one).
      // Five 32x32 images make chunks of 2, 2 and 1 (GEMMs of about 2048 columns).
      const xl = randn([5, 2, 32, 32], rng).requiresGrad_();
      const wl = randn([3, 2, 3, 3], rng).requiresGrad_();
      const gl = randn([5, 3, 32, 32], rng);
      const yl = conv2d(xl, wl, null, { padding: 1 });
      const [gxl, gwl] = grad(yl.mul(gl).sum(), [xl, wl]);
      let gwSum: Tensor | null = null;
      for (let n = 0; n < 5; n++) {
        const xn = slice(xl, 0, n, n + 1).detach().requiresGrad_();
        const wn = wl.detach().requiresGrad_();
        const yn = conv2d(xn, wn, null, { padding: 1 });
        assertClose(slice(yl, 0, n, n + 1), yn, 1e-5, 1e-5, `chunked output, image ${n}`);
        const [gxn, gwn] = grad(yn.mul(slice(gl, 0, n, n + 1)).sum(), [xn, wn]);
        assertClose(slice(gxl!, 0, n, n + 1), gxn!, 1e-5, 1e-5, `chunked grad input, image ${n}`);
        gwSum = gwSum ? gwSum.add(gwn!) : gwn!;
      }
      assertClose(gwl!, gwSum!, 1e-4, 1e-4, 'chunked grad weight');
      // The same for a transposed convolution (its input side is the small one).
      const z = randn([3, 4, 3, 3], rng).requiresGrad_();
      const wt = randn([4, 3, 4, 4], rng);
      const yt = convTranspose2d(z, wt, null, { stride: 2, padding: 1 });
      const one = [0, 1, 2].map((n) => convTranspose2d(slice(z, 0, n, n + 1), wt, null, { stride: 2, padding: 1 }));
      assertClose(yt, concat(one, 0), 1e-5, 1e-5, 'convTranspose2d output');
    });
  });
}

test('finite differences: conv2d with stride, padding, groups and bias', () => {
  const rng = new Rng(1);
  checkGradFD((x, w, b) => conv2d(x, w, b, { stride: 2, padding: 1, groups: 2 }).tanh(),
    [randn([2, 2, 5, 5], rng), randn([4, 1, 3, 3], rng).mul(0.3), randn([4], rng)]);
});

test('finite differences: conv1d with dilation', () => {
  const rng = new Rng(2);
  checkGradFD((x, w) => conv1d(x, w, null, { dilation: 2, padding: 2 }).tanh(), [randn([2, 2, 6], rng), randn([3, 2, 3], rng).mul(0.3)]);
});

test('finite differences: convTranspose2d with outputPadding and groups', () => {
  const rng = new Rng(3);
  checkGradFD((x, w, b) => convTranspose2d(x, w, b, { stride: 2, padding: 1, outputPadding: 1, groups: 2 }).tanh(),
    [randn([2, 4, 3, 3], rng), randn([4, 1, 3, 3], rng).mul(0.3), randn([2], rng)]);
});

test('finite differences: the weight-gradient primitive (through double backward)', () => {
  const rng = new Rng(4);
  const v = randn([2, 4, 3, 3], rng);
  // gw = conv2dWeightGrad(x, v) is bilinear; differentiate it in x (and v via a conv).
  const f = (x: Tensor, w: Tensor): Tensor =>
    enableGrad(() => {
      const y = conv2d(x, w, null, { stride: 2, padding: 1 });
      const [gw] = grad(y.tanh().mul(v).sum(), [w], { createGraph: true });
      return gw!;
    });
  checkGradFD(f, [randn([2, 2, 5, 5], rng), randn([4, 2, 3, 3], rng).mul(0.3)]);
});

test('finite differences: pooling and upsampling', () => {
  const rng = new Rng(5);
  // Values 0.1 apart so no max-pool window changes its argmax within eps.
  const perm = Array.from({ length: 2 * 2 * 5 * 5 }, (_, i) => ((i * 37) % 100) * 0.1 - 5);
  checkGradFD((x) => maxPool2d(x, 3, { stride: 2, padding: 1 }), [tensor(perm, [2, 2, 5, 5])]);
  checkGradFD((x) => avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false, ceilMode: true }), [randn([1, 2, 6, 6], rng)]);
  checkGradFD((x) => upsample(x, { size: [5, 7], mode: 'bilinear' }).tanh(), [randn([1, 2, 3, 4], rng)]);
  checkGradFD((x) => upsample(x, { scaleFactor: 2 }).tanh(), [randn([1, 2, 2, 3], rng)]);
});

test('pooling gradients are differentiable in the upstream gradient', () => {
  const rng = new Rng(6);
  const x = randn([2, 3, 6, 6], rng).requiresGrad_();
  const v = randn([2, 3, 3, 3], rng).requiresGrad_();
  const u = randn([2, 3, 6, 6], rng);
  // gx is linear in v (gx = A^T v), so d<gx, u>/dv = A u: pooling applied to u.
  const [gx] = grad(maxPool2d(x, 2).mul(v).sum(), [x], { createGraph: true });
  const [gv] = grad(gx!.mul(u).sum(), [v]);
  const { indices } = maxPool2dWithIndices(x, 2);
  const picked = u.reshape([6, 36]).gather(1, indices.reshape([6, 9])).reshape([2, 3, 3, 3]);
  assertClose(gv!, picked, 1e-6, 1e-6, 'max pool double backward');
  const [ga] = grad(avgPool2d(x, 2).mul(v).sum(), [x], { createGraph: true });
  const [gva] = grad(ga!.mul(u).sum(), [v]);
  assertClose(gva!, avgPool2d(u, 2), 1e-5, 1e-6, 'avg pool double backward');
  for (const mode of ['nearest', 'bilinear'] as const) {
    const vu = randn([2, 3, 9, 10], rng).requiresGrad_();
    const [gu] = grad(upsample(x, { size: [9, 10], mode }).mul(vu).sum(), [x], { createGraph: true });
    const [gvu] = grad(gu!.mul(u).sum(), [vu]);
    assertClose(gvu!, upsample(u, { size: [9, 10], mode }), 1e-5, 1e-6, `${mode} upsample double backward`);
  }
});

test('max pooling treats padding as -inf and propagates NaN', () => {
  const x = tensor([-5, -4, -3, -2], [1, 1, 2, 2]);
  assert.deepEqual(maxPool2d(x, 2, { stride: 1, padding: 1 }).toArray(), [-5, -4, -4, -3, -2, -2, -3, -2, -2]);
  const y = tensor([1, NaN, 3, 2], [1, 1, 2, 2]);
  assert.ok(Number.isNaN(maxPool2d(y, 2).item()));
  const z = tensor([-Infinity, -Infinity, -Infinity, -Infinity], [1, 1, 2, 2]);
  const { indices } = maxPool2dWithIndices(z, 2, { stride: 1, padding: 1 });
  assert.deepEqual(Array.from(indices.values()), [0, 0, 1, 0, 0, 1, 2, 2, 3], 'all -inf windows report their first real element');
});

test('errors name the op and the shapes', () => {
  const x = tensor(new Float32Array(2 * 4 * 5 * 5), [2, 4, 5, 5]);
  const w = tensor(new Float32Array(6 * 2 * 3 * 3), [6, 2, 3, 3]);
  assert.throws(() => conv2d(x.reshape([8, 5, 5]), w), /conv2d: input must be 4-D \[N, C, H, W\], got \[8,5,5\]/);
  assert.throws(() => conv2d(x, w), /conv2d: weight \[6,2,3,3\] with groups 1 expects 2 input channels, input \[2,4,5,5\] has 4/);
  assert.throws(() => conv2d(x, tensor(new Float32Array(5 * 2 * 9), [5, 2, 3, 3]), null, { groups: 2 }), /conv2d: groups 2 does not divide the 5 output channels/);
  assert.throws(() => conv2d(x, w, null, { groups: 3 }), /conv2d: groups 3 does not divide the 4 channels of input \[2,4,5,5\]/);
  assert.throws(() => conv2d(x, w, tensor([1, 2]), { groups: 2 }), /conv2d: bias must be \[6\]/);
  assert.throws(() => conv2d(x, w, null, { groups: 2, dilation: 3 }), /conv2d: output size -1x-1 is too small \(input \[2,4,5,5\], kernel 3x3, stride 1, padding 0, dilation 3\)/);
  assert.throws(() => conv2d(x, w, null, { groups: 2, stride: 0 }), /conv2d: stride must be an integer >= 1/);
  assert.throws(() => conv1d(x, w), /conv1d: input must be 3-D/);
  assert.throws(() => convTranspose2d(x, w), /convTranspose2d: weight \[6,2,3,3\] expects 6 input channels, input \[2,4,5,5\] has 4/);
  assert.throws(() => convTranspose2d(x, tensor(new Float32Array(4 * 2 * 9), [4, 2, 3, 3]), null, { stride: 2, outputPadding: 2 }),
    /convTranspose2d: outputPadding 2 must be smaller than stride or dilation/);
  assert.throws(() => maxPool2d(x, 2, { padding: 2 }), /maxPool2d: padding 2 must be at most half the kernel size 2/);
  assert.throws(() => maxPool2d(x, 7), /maxPool2d: output size 0x0 is too small/);
  assert.throws(() => avgPool2d(x, 2, { dilation: 2 }), /avgPool2d: dilation is not supported/);
  assert.throws(() => upsample(x, { scaleFactor: 2, size: [3, 3] }), /upsample: give exactly one of size and scaleFactor/);
  assert.throws(() => upsample(x, { scaleFactor: 2, alignCorners: true }), /upsample: alignCorners can only be set with mode 'bilinear'/);
  assert.throws(() => upsample(x.reshape([8, 5, 5]), { scaleFactor: 2 }), /upsample: input must be 4-D/);
});
