/**
 * Flow layers: every layer inverts its forward to float tolerance, its log-determinant
 * matches a brute-force autograd Jacobian on vectors and small images, the LU 1x1
 * convolution equals the dense convolution, actnorm's data-dependent init normalises
 * its batch, and the dequantization + logit transform has the right correction.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor, randn, conv2d, noGrad, tensor } from '../engine/index.js';
import { Module } from './module.js';
import {
  ActNorm, InvConv1x1, AffineCoupling, MaskedAffineCoupling, BatchNormFlow, Reverse, FlowSequence, CouplingMLP, CouplingConvNet,
  checkerboardMask, couplingSplit, squeeze2d, unsqueeze2d, dequantizeLogit, logitToImage, bruteForceLogDet, logAbsDet, luDecompose,
  invertMatrix, SIGMOID_SCALE_MIN, fitBatchNormStatistics,
} from './flows.js';
import type { FlowLayer } from './flows.js';

/** Add noise to every parameter, so zero-initialised nets give non-trivial maps. */
function perturb(m: Module, seed: number, scale = 0.3): void {
  const rng = new Rng(seed);
  for (const p of m.parameters()) {
    const d = p.data as Float32Array;
    for (let i = 0; i < p.size; i++) d[p.offset + i] += scale * rng.normal();
  }
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape]);
  const x = a.values();
  const y = b.values();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

function checkLayer(name: string, layer: FlowLayer, x: Tensor, tol = 1e-4): void {
  const { y, logdet } = layer.forward(x);
  assert.ok(maxAbsDiff(y, x) > 1e-3, `${name}: forward is the identity; the test would be vacuous`);
  const back = noGrad(() => layer.inverse(y));
  assert.ok(maxAbsDiff(back, x) < tol, `${name}: inverse(forward(x)) differs by ${maxAbsDiff(back, x)}`);
  const brute = bruteForceLogDet((v) => layer.forward(v).y, x);
  const ld = logdet.values();
  assert.equal(ld.length, x.shape[0]);
  for (let b = 0; b < brute.length; b++) {
    assert.ok(Math.abs(ld[b] - brute[b]) < 1e-3 * Math.max(1, Math.abs(brute[b])), `${name}: logdet ${ld[b]} vs brute-force ${brute[b]} (example ${b})`);
  }
}

const rng = new Rng(0);
const vec = randn([3, 4], new Rng(1)); // 3 vectors of dimension 4
const img = randn([2, 4, 2, 2], new Rng(2)); // 2 images, 4 channels, 2x2
const img1 = randn([2, 1, 4, 4], new Rng(3)); // 2 images, 1 channel, 4x4

test('ActNorm: inverts, exact logdet, init gives zero mean and unit variance per channel on the init batch', () => {
  const an = new ActNorm(4);
  const x = randn([16, 4, 3, 3], new Rng(4)).mul(3).add(1.5);
  const { y } = an.forward(x);
  assert.equal(an.initialized.item(), 1);
  const mean = y.mean([0, 2, 3]).values();
  const v = y.var([0, 2, 3], false, 0).values();
  for (let c = 0; c < 4; c++) {
    assert.ok(Math.abs(mean[c]) < 1e-4, `channel ${c} mean ${mean[c]}`);
    assert.ok(Math.abs(v[c] - 1) < 1e-3, `channel ${c} variance ${v[c]}`);
  }
  // Initialised once only, and saved in the state dict.
  const logs = Array.from(an.logs.values());
  an.forward(randn([16, 4, 3, 3], new Rng(5)));
  assert.deepEqual(Array.from(an.logs.values()), logs);
  assert.ok('initialized' in an.stateDict());
  checkLayer('ActNorm image', an, img);
  const av = new ActNorm(4);
  av.forward(vec.mul(2));
  checkLayer('ActNorm vector', av, vec);
});

test('InvConv1x1 (LU): inverts, exact logdet on vectors and images', () => {
  checkLayer('InvConv1x1 vector', new InvConv1x1(4, rng), vec);
  const ic = new InvConv1x1(4, rng);
  perturb(ic, 6, 0.2);
  checkLayer('InvConv1x1 image', ic, img);
  checkLayer('InvConv1x1 2-D', new InvConv1x1(2, rng), randn([3, 2], new Rng(7)));
});

test('InvConv1x1: the LU layer equals the dense 1x1 convolution with W = P L U, logdet = H W log|det W|', () => {
  const C = 4;
  const ic = new InvConv1x1(C, rng);
  perturb(ic, 8, 0.2);
  // Dense W from the stored factors, in float64, independent of weight().
  const P = ic.p.values();
  const Lp = ic.lower.values();
  const Up = ic.upper.values();
  const s = ic.logS.values();
  const sg = ic.signS.values();
  const L = new Float64Array(C * C);
  const U = new Float64Array(C * C);
  for (let i = 0; i < C; i++) {
    for (let j = 0; j < C; j++) {
      L[i * C + j] = j < i ? Lp[i * C + j] : i === j ? 1 : 0;
      U[i * C + j] = j > i ? Up[i * C + j] : i === j ? sg[i] * Math.exp(s[i]) : 0;
    }
  }
  const mm = (a: ArrayLike<number>, b: ArrayLike<number>): Float64Array => {
    const o = new Float64Array(C * C);
    for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) for (let k = 0; k < C; k++) o[i * C + j] += a[i * C + k] * b[k * C + j];
    return o;
  };
  const W = mm(P, mm(L, U));
  const x = randn([2, C, 3, 5], new Rng(9));
  const dense = conv2d(x, new Tensor(Float32Array.from(W), [C, C, 1, 1]));
  const { y, logdet } = ic.forward(x);
  assert.ok(maxAbsDiff(y, dense) < 1e-4, `LU conv differs from dense conv by ${maxAbsDiff(y, dense)}`);
  const want = 15 * logAbsDet(W, C);
  for (const v of logdet.values()) assert.ok(Math.abs(v - want) < 1e-3, `logdet ${v} vs 15 log|det W| = ${want}`);
  // Initialised from a rotation: |det W| = 1, and P is a permutation.
  const fresh = new InvConv1x1(6, new Rng(10));
  assert.ok(Math.abs(fresh.logS.sum().item()) < 1e-4);
  assert.deepEqual(Array.from(fresh.p.sum(0).values()), [1, 1, 1, 1, 1, 1]);
});

test('luDecompose and invertMatrix: A = P L U and A A^-1 = I', () => {
  const n = 5;
  const r = new Rng(11);
  const A = Float64Array.from({ length: n * n }, () => r.normal());
  const { P, L, U } = luDecompose(A, n);
  const inv = invertMatrix(A, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let plu = 0;
      let eye = 0;
      for (let k = 0; k < n; k++) {
        let lu = 0;
        for (let m = 0; m < n; m++) lu += L[k * n + m] * U[m * n + j];
        plu += P[i * n + k] * lu;
        eye += A[i * n + k] * inv[k * n + j];
      }
      assert.ok(Math.abs(plu - A[i * n + j]) < 1e-10);
      assert.ok(Math.abs(eye - (i === j ? 1 : 0)) < 1e-10);
    }
  }
});

test('AffineCoupling (channel split; tanh and sigmoid scales, both parities): inverts, exact logdet', () => {
  for (const scale of ['tanh', 'sigmoid'] as const) {
    for (const parity of [0, 1]) {
      const { cond, transformed } = couplingSplit(4, parity);
      const cv = new AffineCoupling(4, new CouplingMLP(cond, 8, 2, 2 * transformed, rng), { parity, scale });
      perturb(cv, 12 + parity);
      checkLayer(`AffineCoupling vector ${scale} parity ${parity}`, cv, vec);
      const ci = new AffineCoupling(4, new CouplingConvNet(cond, 6, 2 * transformed, rng), { parity, scale });
      perturb(ci, 14 + parity);
      checkLayer(`AffineCoupling image ${scale} parity ${parity}`, ci, img);
    }
  }
  // Odd channel counts and 2-D points (one dimension conditions the other).
  const { cond, transformed } = couplingSplit(3, 1);
  assert.deepEqual([cond, transformed], [2, 1]);
  const c2 = new AffineCoupling(2, new CouplingMLP(1, 8, 1, 2, rng), { scale: 'sigmoid' });
  perturb(c2, 16);
  checkLayer('AffineCoupling 2-D', c2, randn([3, 2], new Rng(17)));
});

test('AffineCoupling sigmoid: the scale is floored at SIGMOID_SCALE_MIN in both directions (bounded inverse gain, exact logdet)', () => {
  const c = new AffineCoupling(4, new CouplingMLP(2, 8, 1, 4, rng), { scale: 'sigmoid' });
  perturb(c, 26);
  const last = (c.net as CouplingMLP).layers.at(-1)!;
  const b = last.bias!.data as Float32Array;
  b[last.bias!.offset] = -200; // sigmoid(-198) underflows to 0 in float32
  b[last.bias!.offset + 1] = -200;
  const x = randn([3, 4], new Rng(27));
  const { y, logdet } = c.forward(x);
  for (const v of logdet.values()) assert.ok(Math.abs(v - 2 * Math.log(SIGMOID_SCALE_MIN)) < 1e-4, `logdet ${v}`);
  checkLayer('AffineCoupling sigmoid at the floor', c, x);
  // The inverse of a large value grows by at most 1/SIGMOID_SCALE_MIN (plus the shift), never to Inf.
  const big = noGrad(() => c.inverse(y.mul(1e6))).values();
  for (const v of big) assert.ok(Number.isFinite(v) && Math.abs(v) < 1e6 / SIGMOID_SCALE_MIN * 10, `inverse gave ${v}`);
});

test('MaskedAffineCoupling (checkerboard on a 1x4x4 image; alternating mask on vectors): inverts, exact logdet', () => {
  for (const parity of [0, 1]) {
    const ci = new MaskedAffineCoupling(1, checkerboardMask(4, 4, parity), new CouplingConvNet(1, 6, 2, rng));
    perturb(ci, 18 + parity);
    checkLayer(`checkerboard coupling parity ${parity}`, ci, img1);
    const { y } = ci.forward(img1);
    // Masked positions pass through unchanged.
    const m = checkerboardMask(4, 4, parity);
    assert.ok(maxAbsDiff(y.mul(m), img1.mul(m)) < 1e-6);
  }
  const mask = new Tensor(Float32Array.from([1, 0, 1, 0]), [1, 4]);
  const cv = new MaskedAffineCoupling(4, mask, new CouplingMLP(4, 8, 2, 8, rng));
  perturb(cv, 20);
  checkLayer('masked coupling vector', cv, vec);
});

test('squeeze2d / unsqueeze2d: inverse of each other, 2x2 blocks become channels', () => {
  const x = randn([2, 3, 4, 6], new Rng(21));
  const s = squeeze2d(x);
  assert.deepEqual([...s.shape], [2, 12, 2, 3]);
  assert.equal(maxAbsDiff(unsqueeze2d(s), x), 0);
  // Channel c*4 + 2*dy + dx at (i, j) is pixel (2i + dy, 2j + dx) of channel c.
  const xv = x.values();
  const sv = s.values();
  const at = (b: number, c: number, i: number, j: number): number => xv[((b * 3 + c) * 4 + i) * 6 + j];
  assert.equal(sv[((1 * 12 + (2 * 4 + 3)) * 2 + 1) * 3 + 2], at(1, 2, 3, 5));
  assert.throws(() => squeeze2d(randn([1, 1, 3, 4], rng)), /even/);
});

test('BatchNormFlow (eval mode), Reverse and FlowSequence: invert, exact logdet', () => {
  const bn = new BatchNormFlow(4);
  for (let i = 0; i < 20; i++) bn.forward(randn([32, 4], new Rng(30 + i)).mul(2).add(1)); // running statistics
  perturb(bn, 22, 0.2);
  bn.eval();
  checkLayer('BatchNormFlow', bn, vec);
  // In training the batch statistics normalise the batch.
  bn.train();
  const { y } = bn.forward(randn([64, 4], new Rng(23)).mul(5));
  const yv = y.sub(bn.beta).mul(bn.logGamma.neg().exp());
  for (const v of yv.mean(0).values()) assert.ok(Math.abs(v) < 1e-4);
  checkLayer('Reverse', new Reverse(), vec);
  const seq = new FlowSequence([new InvConv1x1(4, rng), new Reverse(), new AffineCoupling(4, new CouplingMLP(2, 8, 1, 4, rng), { scale: 'tanh' })]);
  perturb(seq, 24, 0.2);
  checkLayer('FlowSequence', seq, vec);
});

test('fitBatchNormStatistics: each batch norm gets the exact statistics of its input over all chunks, predecessors included', () => {
  const bn1 = new BatchNormFlow(4);
  const bn2 = new BatchNormFlow(4);
  const seq = new FlowSequence([bn1, new InvConv1x1(4, rng), new AffineCoupling(4, new CouplingMLP(2, 8, 1, 4, rng), { scale: 'tanh' }), bn2]);
  perturb(seq, 28, 0.2);
  const data = randn([300, 4], new Rng(29)).mul(tensor([[3, 0.01, 1, 2]])).add(tensor([[1, -2, 0, 5]]));
  const chunks = [data.slice(0, 0, 128), data.slice(0, 128, 256), data.slice(0, 256, 300)];
  fitBatchNormStatistics(seq, chunks);
  assert.equal(seq.training, true, 'training mode restored');
  // bn1 has the data's own statistics (float64 reference).
  const v = data.values();
  for (let i = 0; i < 4; i++) {
    let mu = 0;
    let m2 = 0;
    for (let r = 0; r < 300; r++) mu += v[r * 4 + i] / 300;
    for (let r = 0; r < 300; r++) m2 += (v[r * 4 + i] - mu) ** 2 / 300;
    assert.ok(Math.abs(bn1.runningMean.values()[i] - mu) < 1e-4 * Math.max(1, Math.abs(mu)));
    assert.ok(Math.abs(bn1.runningVar.values()[i] - m2) < 1e-4 * m2, `var ${bn1.runningVar.values()[i]} vs ${m2}`);
  }
  // bn2 sees the data through bn1's new statistics: in eval mode its output is
  // standardised up to its own exp(log_gamma) and beta.
  seq.eval();
  const y = noGrad(() => seq.forward(data).y).sub(bn2.beta).mul(bn2.logGamma.neg().exp());
  for (const mu of y.mean(0).values()) assert.ok(Math.abs(mu) < 1e-3, `mean ${mu}`);
  for (const s2 of y.var(0, false, 0).values()) assert.ok(Math.abs(s2 - 1) < 1e-3, `variance ${s2}`);
});

test('dequantizeLogit: mid-bin values invert to (pixel + 0.5)/256; logdet is the exact correction to the [0, 256) scale', () => {
  const alpha = 0.05;
  const x = new Tensor(Float32Array.from([0, 1 / 255, 128 / 255, 1]), [1, 4]);
  const { y, logdet } = dequantizeLogit(x, alpha, null);
  const back = logitToImage(y, alpha).values();
  const pixels = [0, 1, 128, 255];
  let want = 0;
  pixels.forEach((p, i) => {
    const u = (p + 0.5) / 256;
    assert.ok(Math.abs(back[i] - u) < 1e-5);
    const s = alpha + (1 - 2 * alpha) * u;
    want += Math.log((1 - 2 * alpha) / (s * (1 - s))) - Math.log(256);
  });
  assert.ok(Math.abs(logdet.item() - want) < 1e-3, `${logdet.item()} vs ${want}`);
  // With noise, values stay inside their pixel's bin.
  const r = dequantizeLogit(x, alpha, new Rng(25));
  const u = logitToImage(r.y, alpha).values();
  pixels.forEach((p, i) => assert.ok(u[i] * 256 >= p - 1e-3 && u[i] * 256 <= p + 1 + 1e-3, `pixel ${p}: ${u[i] * 256}`));
});
