/**
 * The fused primitives (lstmCell, gruCell, attention) against the same maths written
 * with unfused ops, on every backend present: values, first gradients (through each
 * output alone and both together), and second gradients through createGraph. The
 * native/wasm size thresholds are set to 0 so even small cases reach their kernels.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, grad, noGrad } from '../tensor.js';
import { Rng } from '../rng.js';
import { randn } from './random.js';
import { tensor } from '../creation.js';
import { add, mul, sub, sigmoid, tanh, where, gt } from './elementwise.js';
import { sum } from './reduce.js';
import { matmul } from './matmul.js';
import { lstmCell, gruCell, attention, attentionWeightsOps, canFuseAttention, lstmSequence, gruSequence, normalizeLastAxis, channelAffine, layerNormAffine, batchNormTrain, groupNormAffine } from './fused.js';
import { rsqrt, square } from './elementwise.js';
import { mean } from './reduce.js';
import { concat, select, transpose } from './shape_ops.js';
import { withBackend } from '../backends/index.js';
import { NATIVE_THRESHOLDS } from '../backends/native.js';
import { WASM_THRESHOLDS } from '../backends/wasm.js';
import { assertClose, testBackends } from '../../../test/helpers.js';

NATIVE_THRESHOLDS.cell = 0;
NATIVE_THRESHOLDS.attention = 0;
WASM_THRESHOLDS.cell = 0;
WASM_THRESHOLDS.attention = 0;

function lstmComposite(gates: Tensor, c: Tensor): [Tensor, Tensor] {
  const [i, f, g, o] = gates.chunk(4, -1);
  const c2 = add(mul(sigmoid(f), c), mul(sigmoid(i), tanh(g)));
  return [mul(sigmoid(o), tanh(c2)), c2];
}

function gruComposite(gi: Tensor, gh: Tensor, h: Tensor): Tensor {
  const [ri, zi, ni] = gi.chunk(3, -1);
  const [rh, zh, nh] = gh.chunk(3, -1);
  const r = sigmoid(add(ri, rh));
  const z = sigmoid(add(zi, zh));
  const n = tanh(add(ni, mul(r, nh)));
  return add(n, mul(z, sub(h, n)));
}

function attnComposite(q: Tensor, k: Tensor, v: Tensor, causal: number, mask: Tensor | null): [Tensor, Tensor] {
  const p = attentionWeightsOps(q, k, 1 / Math.sqrt(q.shape[q.rank - 1]), causal, mask);
  return [matmul(p, v), p];
}

/** A fixed weighting so a scalar loss covers every output element. */
function weights(shape: readonly number[], seed: number): Tensor {
  let n = 1;
  for (const d of shape) n *= d;
  return tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + seed) + 0.2), shape);
}

function loss(outs: Tensor[], use: boolean[]): Tensor {
  let l: Tensor | null = null;
  outs.forEach((o, i) => {
    if (!use[i]) return;
    const t = sum(mul(o, weights(o.shape, i)));
    l = l ? add(l, t) : t;
  });
  return l!;
}

/**
 * Compare fused and composite: values, gradients for each subset of used outputs, and
 * the gradient of the squared gradient norm (double backward).
 */
function compare(
  name: string, fused: (...xs: Tensor[]) => Tensor[], composite: (...xs: Tensor[]) => Tensor[], inputs: Tensor[],
  rtol = 2e-5, atol = 2e-6,
): void {
  const lead = (): Tensor[] => inputs.map((x) => x.detach().clone().requiresGrad_());
  const xf = lead(), xc = lead();
  const yf = fused(...xf), yc = composite(...xc);
  yf.forEach((y, i) => assertClose(y, yc[i], rtol, atol, `${name}: output ${i}`));
  const n = yf.length;
  const subsets: boolean[][] = n === 1 ? [[true]] : [[true, false], [false, true], [true, true]];
  for (const use of subsets) {
    const gf = grad(loss(fused(...xf), use), xf, { allowUnused: true });
    const gc = grad(loss(composite(...xc), use), xc, { allowUnused: true });
    gf.forEach((g, i) => {
      const ref = gc[i] ?? tensor(new Float32Array(xc[i].size), xc[i].shape);
      assertClose(g ?? tensor(new Float32Array(xf[i].size), xf[i].shape), ref, rtol * 10, atol * 10, `${name}: grad of input ${i} (outputs used ${use})`);
    });
  }
  // Double backward: d/dx of |d loss / dx|^2.
  const second = (f: (...xs: Tensor[]) => Tensor[], xs: Tensor[]): (Tensor | null)[] => {
    const g1 = grad(loss(f(...xs), new Array(n).fill(true)), xs, { createGraph: true, allowUnused: true });
    let s: Tensor | null = null;
    for (const g of g1) if (g) s = s ? add(s, sum(mul(g, g))) : sum(mul(g, g));
    return grad(s!, xs, { allowUnused: true });
  };
  const sf = second(fused, xf), sc = second(composite, xc);
  sf.forEach((g, i) => {
    const zero = (x: Tensor): Tensor => tensor(new Float32Array(x.size), x.shape);
    assertClose(g ?? zero(xf[i]), sc[i] ?? zero(xc[i]), 1e-3, 1e-4, `${name}: second-order grad of input ${i}`);
  });
}

for (const be of testBackends()) {
  test(`lstmCell matches the composite on ${be}`, () => {
    withBackend(be, () => {
      const rng = new Rng(1);
      for (const [B, H] of [[3, 5], [4, 32], [1, 1]]) {
        compare(`lstm ${B}x${H}`, (g, c) => lstmCell(g, c), (g, c) => lstmComposite(g, c), [randn([B, 4 * H], rng, 0, 2), randn([B, H], rng)]);
      }
      // Leading dims other than one batch axis.
      compare('lstm [2,3,4]', (g, c) => lstmCell(g, c), (g, c) => lstmComposite(g, c), [randn([2, 3, 16], rng), randn([2, 3, 4], rng)]);
      // Saturated gates and a NaN propagate as in the composite.
      const gates = tensor(Float32Array.from([40, -40, 30, -30, 0, NaN, 1, 2]), [1, 8]);
      const c = tensor(Float32Array.from([1, -2]), [1, 2]);
      const [hf, cf] = noGrad(() => lstmCell(gates, c));
      const [hc, cc] = lstmComposite(gates, c);
      assertClose(hf, hc, 1e-6, 1e-6, 'saturated h');
      assertClose(cf, cc, 1e-6, 1e-6, 'saturated c');
    });
  });

  test(`gruCell matches the composite on ${be}`, () => {
    withBackend(be, () => {
      const rng = new Rng(2);
      for (const [B, H] of [[3, 5], [4, 32], [1, 1]]) {
        compare(`gru ${B}x${H}`, (gi, gh, h) => [gruCell(gi, gh, h)], (gi, gh, h) => [gruComposite(gi, gh, h)], [
          randn([B, 3 * H], rng, 0, 2), randn([B, 3 * H], rng, 0, 2), randn([B, H], rng),
        ]);
      }
    });
  });

  test(`attention matches the composite on ${be} (masks, causal, KV-cache offset)`, () => {
    withBackend(be, () => {
      const rng = new Rng(3);
      const B = 2, nh = 3, L = 5, S = 7, D = 4, Dv = 6;
      const cases: [string, number, () => Tensor | null, number][] = [
        ['plain', -1, () => null, L],
        ['causal self', 0, () => null, S],
        ['causal with cache offset', S - L, () => null, L],
        ['one new token after a cache', S - 1, () => null, 1],
        ['shared float mask', -1, () => randn([L, S], rng), L],
        ['per-batch padding mask', -1, () => where(gt(randn([B, 1, 1, S], rng), 0.8), -Infinity, 0), L],
        ['full mask with causal', S - L, () => randn([B, nh, L, S], rng), L],
      ];
      for (const [name, causal, mk, Lq] of cases) {
        const mask = mk();
        const q = randn([B, nh, Lq, D], rng), k = randn([B, nh, S, D], rng), v = randn([B, nh, S, Dv], rng);
        assert.ok(canFuseAttention(q, k, v, mask), name);
        compare(`attention ${name}`, (a, b, c) => attention(a, b, c, { causalOffset: causal < 0 ? null : causal, mask }),
          (a, b, c) => attnComposite(a, b, c, causal, mask), [q, k, v], 1e-4, 1e-5);
      }
      // Heads read in place from a projection's [B, T, 3 H D] output (chunk, reshape,
      // transpose: strided q, k, v), the output merged back by a transpose (so its
      // gradient arrives strided too); also one contiguous and two strided operands.
      for (const [Bq, T, H, Dh] of [[2, 6, 3, 4], [1, 9, 2, 8]]) {
        const split = (x: Tensor): Tensor[] => x.chunk(3, -1).map((t) => t.reshape([Bq, T, H, Dh]).transpose(1, 2));
        compare(`attention heads in place ${[Bq, T, H, Dh]}`, (x) => {
          const [q, k, v] = split(x);
          const [y, w] = attention(q, k, v, { causalOffset: 0 });
          return [y.transpose(1, 2), w];
        }, (x) => {
          const [q, k, v] = split(x);
          const [y, w] = attnComposite(q, k, v, 0, null);
          return [y.transpose(1, 2), w];
        }, [randn([Bq, T, 3 * H * Dh], rng)], 1e-4, 1e-5);
        compare(`attention mixed layouts ${[Bq, T, H, Dh]}`, (q, kv) => {
          const [k, v] = kv.chunk(2, -1).map((t) => t.reshape([Bq, T, H, Dh]).transpose(1, 2));
          return attention(q, k, v, { causalOffset: -1 });
        }, (q, kv) => {
          const [k, v] = kv.chunk(2, -1).map((t) => t.reshape([Bq, T, H, Dh]).transpose(1, 2));
          return attnComposite(q, k, v, -1, null);
        }, [randn([Bq, H, T, Dh], rng), randn([Bq, T, 2 * H * Dh], rng)], 1e-4, 1e-5);
      }
      // A row with every key blocked is NaN, as torch; 3-D inputs work too.
      const q = randn([2, 2, 3], rng), k = randn([2, 4, 3], rng), v = randn([2, 4, 3], rng);
      const mask = tensor(Float32Array.from([-Infinity, -Infinity, -Infinity, -Infinity, 0, 0, -Infinity, 0]), [2, 4]);
      const [of] = noGrad(() => attention(q, k, v, { mask }));
      const [oc] = attnComposite(q, k, v, -1, mask);
      assertClose(of, oc, 1e-5, 1e-6, 'blocked row');
      assert.ok(Number.isNaN(of.values()[0]) && !Number.isNaN(of.values()[3]), 'blocked row is NaN, the other finite');
    });
  });
}

/** The unrolls step by step with unfused ops: the definition of the sequence primitives. */
function lstmSeqComposite(gi: Tensor, h0: Tensor, c0: Tensor, w: Tensor, b: Tensor | null, reverse: boolean): Tensor[] {
  const T = gi.shape[0];
  const hs: Tensor[] = new Array(T);
  let h = h0, c = c0;
  for (let s = 0; s < T; s++) {
    const t = reverse ? T - 1 - s : s;
    let pre = add(select(gi, 0, t), matmul(h, transpose(w, 0, 1)));
    if (b) pre = add(pre, b);
    [h, c] = lstmComposite(pre, c);
    hs[t] = h.reshape([1, ...h.shape]);
  }
  return [concat(hs, 0), h, c];
}

function gruSeqComposite(gi: Tensor, h0: Tensor, w: Tensor, b: Tensor | null, reverse: boolean): Tensor[] {
  const T = gi.shape[0];
  const hs: Tensor[] = new Array(T);
  let h = h0;
  for (let s = 0; s < T; s++) {
    const t = reverse ? T - 1 - s : s;
    let gh = matmul(h, transpose(w, 0, 1));
    if (b) gh = add(gh, b);
    h = gruComposite(select(gi, 0, t), gh, h);
    hs[t] = h.reshape([1, ...h.shape]);
  }
  return [concat(hs, 0), h];
}

for (const be of testBackends()) {
  test(`lstmSequence and gruSequence match step-by-step composites on ${be} (both directions, with and without bias)`, () => {
    withBackend(be, () => {
      const rng = new Rng(5);
      for (const [T, B, H] of [[4, 3, 5], [3, 2, 16]]) {
        for (const reverse of [false, true]) {
          for (const bias of [true, false]) {
            const tag = `T=${T} B=${B} H=${H} reverse=${reverse} bias=${bias}`;
            const ins = [randn([T, B, 4 * H], rng), randn([B, H], rng), randn([B, H], rng), randn([4 * H, H], rng, 0, 0.4)];
            if (bias) ins.push(randn([4 * H], rng));
            compare(`lstmSequence ${tag}`, (gi, h0, c0, w, b) => {
              const r = lstmSequence(gi, h0, c0, w, b ?? null, reverse);
              return [r.out, r.hN, r.cN];
            }, (gi, h0, c0, w, b) => lstmSeqComposite(gi, h0, c0, w, b ?? null, reverse), ins, 1e-4, 1e-5);
            const gins = [randn([T, B, 3 * H], rng), randn([B, H], rng), randn([3 * H, H], rng, 0, 0.4)];
            if (bias) gins.push(randn([3 * H], rng));
            compare(`gruSequence ${tag}`, (gi, h0, w, b) => {
              const r = gruSequence(gi, h0, w, b ?? null, reverse);
              return [r.out, r.hN];
            }, (gi, h0, w, b) => gruSeqComposite(gi, h0, w, b ?? null, reverse), gins, 1e-4, 1e-5);
          }
        }
      }
    });
  });
}

for (const be of testBackends()) {
  test(`normalizeLastAxis matches the composite on ${be}`, () => {
    withBackend(be, () => {
      const rng = new Rng(6);
      const norm = (x: Tensor): Tensor => {
        const xc = sub(x, mean(x, -1, true));
        return mul(xc, rsqrt(add(mean(square(xc), -1, true), 1e-5)));
      };
      for (const shape of [[4, 7], [2, 3, 40], [1, 1], [5, 300]]) {
        compare(`normalize ${JSON.stringify(shape)}`, (x) => [normalizeLastAxis(x, 1e-5)], (x) => [norm(x)], [randn(shape, rng, 1, 3)], 1e-4, 1e-5);
      }
    });
  });
}

for (const be of testBackends()) {
  test(`channelAffine (+ SiLU) matches the composite on ${be}: weight, bias, either or none`, () => {
    withBackend(be, () => {
      const rng = new Rng(9);
      for (const [shape, act] of [[[2, 3, 5, 4], 'silu'], [[3, 4, 70], null], [[2, 5], 'silu'], [[4, 8, 6, 6], 'silu'], [[4, 16, 24, 24], 'silu']] as const) {
        const C = shape[1];
        const bshape = [1, C, ...shape.slice(2).map(() => 1)];
        const composite = (x: Tensor, w: Tensor | null, b: Tensor | null): Tensor => {
          let u = w ? mul(x, w.reshape(bshape)) : x;
          if (b) u = add(u, b.reshape(bshape));
          return act ? u.silu() : u;
        };
        const x = randn([...shape], rng, 0, 2), w = randn([C], rng, 1, 0.5), b = randn([C], rng, 0, 0.5);
        const tag = `${JSON.stringify(shape)} ${act}`;
        compare(`${tag} w+b`, (x, w, b) => [channelAffine(x, w, b, act)], (x, w, b) => [composite(x, w, b)], [x, w, b], 1e-4, 1e-5);
        compare(`${tag} w`, (x, w) => [channelAffine(x, w, null, act)], (x, w) => [composite(x, w, null)], [x, w], 1e-4, 1e-5);
        // (Without an activation or weight the map is a shift, with no second derivative to compare.)
        if (act) compare(`${tag} b`, (x, b) => [channelAffine(x, null, b, act)], (x, b) => [composite(x, null, b)], [x, b], 1e-4, 1e-5);
        if (act) compare(`${tag} none`, (x) => [channelAffine(x, null, null, act)], (x) => [composite(x, null, null)], [x], 1e-4, 1e-5);
      }
    });
  });
}

for (const be of testBackends()) {
  test(`groupNormAffine matches the composite on ${be}: SiLU or none, weight and bias or none, ranks 2-4`, () => {
    withBackend(be, () => {
      const rng = new Rng(15);
      // Small (js below the native threshold), the U-Net's [B, 32, 28, 28] in 8 groups scaled
      // down, 7x7 rows, rank 3 and rank 2 (S = 1), and an off-centre input.
      for (const [shape, G, act, centre] of [
        [[2, 4, 5, 6], 2, 'silu', 0], [[8, 32, 14, 14], 8, 'silu', 0], [[4, 16, 7, 7], 8, null, 3], [[4, 6, 10], 3, 'silu', 0], [[5, 8], 4, null, 0],
      ] as const) {
        const C = shape[1];
        const bshape = [1, C, ...shape.slice(2).map(() => 1)];
        const composite = (x: Tensor, w: Tensor | null, b: Tensor | null): Tensor => {
          const g = x.reshape([shape[0], G, -1]);
          const xc = sub(g, mean(g, -1, true));
          let y = mul(xc, rsqrt(add(mean(square(xc), -1, true), 1e-5))).reshape([...shape]);
          if (w) y = mul(y, w.reshape(bshape));
          if (b) y = add(y, b.reshape(bshape));
          return act ? y.silu() : y;
        };
        const x = randn([...shape], rng, centre, 2), w = randn([C], rng, 1, 0.5), b = randn([C], rng, 0, 0.5);
        const tag = `groupNormAffine ${JSON.stringify(shape)} G=${G} ${act}`;
        compare(`${tag} w+b`, (x, w, b) => [groupNormAffine(x, G, w, b, 1e-5, act)], (x, w, b) => [composite(x, w, b)], [x, w, b], 1e-4, 1e-5);
        compare(`${tag} none`, (x) => [groupNormAffine(x, G, null, null, 1e-5, act)], (x) => [composite(x, null, null)], [x], 1e-4, 1e-5);
      }
      assert.throws(() => groupNormAffine(randn([2, 6, 3], rng), 4, null, null, 1e-5), /groupNorm: expected a non-empty x \[N, C, \.\.\.\] with C divisible by 4 groups/);
    });
  });
}

for (const be of testBackends()) {
  test(`batchNormTrain matches the composite on ${be}: values, statistics, first and second order, weight and bias or none`, () => {
    withBackend(be, () => {
      const rng = new Rng(14);
      // Small (js below the native threshold), dcgan's [B, 128, 7, 7] scaled down, rank 3,
      // and an off-centre input (mean 5) for the variance's cancellation.
      for (const [shape, centre] of [[[4, 3, 5, 6], 0], [[16, 32, 7, 7], 0], [[6, 8, 50], 0], [[8, 16, 14, 14], 5]] as const) {
        const C = shape[1];
        const axes = [0, ...shape.slice(2).map((_, i) => i + 2)];
        const bshape = [1, C, ...shape.slice(2).map(() => 1)];
        const composite = (x: Tensor, w: Tensor | null, b: Tensor | null): Tensor => {
          const xc = sub(x, mean(x, axes, true));
          let y = mul(xc, rsqrt(add(mean(square(xc), axes, true), 1e-5)));
          if (w) y = mul(y, w.reshape(bshape));
          return b ? add(y, b.reshape(bshape)) : y;
        };
        const x = randn([...shape], rng, centre, 2), w = randn([C], rng, 1, 0.5), b = randn([C], rng, 0, 0.5);
        const tag = `batchNormTrain ${JSON.stringify(shape)}`;
        compare(`${tag} w+b`, (x, w, b) => [batchNormTrain(x, w, b, 1e-5).y], (x, w, b) => [composite(x, w, b)], [x, w, b], 1e-4, 1e-5);
        compare(`${tag} none`, (x) => [batchNormTrain(x, null, null, 1e-5).y], (x) => [composite(x, null, null)], [x], 1e-4, 1e-5);
        const { mean: m, variance: v } = batchNormTrain(x, null, null, 1e-5);
        const xc = sub(x, mean(x, axes, true));
        assertClose(tensor(m, [C]), mean(x, axes), 1e-5, 1e-5, `${tag} mean`);
        assertClose(tensor(v, [C]), mean(square(xc), axes), 1e-4, 1e-5, `${tag} variance`);
      }
      assert.throws(() => batchNormTrain(randn([4, 3], rng), null, null, 1e-5), /batchNorm: expected a non-empty x \[N, C, \.\.\.\] of rank >= 3/);
    });
  });
}

for (const be of testBackends()) {
  test(`layerNormAffine matches normalize * weight + bias on ${be}: weight, bias, either or none`, () => {
    withBackend(be, () => {
      const rng = new Rng(12);
      const norm = (x: Tensor): Tensor => {
        const xc = sub(x, mean(x, -1, true));
        return mul(xc, rsqrt(add(mean(square(xc), -1, true), 1e-5)));
      };
      const composite = (x: Tensor, w: Tensor | null, b: Tensor | null): Tensor => {
        let y = norm(x);
        if (w) y = mul(y, w);
        return b ? add(y, b) : y;
      };
      // [300, 37]: above the native threshold, N not a multiple of the 16 lanes; [64, 128]: gpt's rows.
      for (const shape of [[4, 7], [1, 1], [300, 37], [64, 128]]) {
        const N = shape[1];
        const x = randn(shape, rng, 1, 3), w = randn([N], rng, 1, 0.5), b = randn([N], rng, 0, 0.5);
        const tag = `layerNormAffine ${JSON.stringify(shape)}`;
        compare(`${tag} w+b`, (x, w, b) => [layerNormAffine(x, w, b, 1e-5)], (x, w, b) => [composite(x, w, b)], [x, w, b], 1e-4, 1e-5);
        compare(`${tag} w`, (x, w) => [layerNormAffine(x, w, null, 1e-5)], (x, w) => [composite(x, w, null)], [x, w], 1e-4, 1e-5);
        compare(`${tag} b`, (x, b) => [layerNormAffine(x, null, b, 1e-5)], (x, b) => [composite(x, null, b)], [x, b], 1e-4, 1e-5);
        compare(`${tag} none`, (x) => [layerNormAffine(x, null, null, 1e-5)], (x) => [composite(x, null, null)], [x], 1e-4, 1e-5);
      }
    });
  });
}

test('layerNormAffine names bad shapes', () => {
  const rng = new Rng(3);
  assert.throws(() => layerNormAffine(randn([2, 3, 4], rng), null, null, 1e-5), /layerNormAffine: expected x \[R, N\].*x \[2,3,4\]/);
  assert.throws(() => layerNormAffine(randn([2, 4], rng), randn([3], rng), null, 1e-5), /weight \[3\]/);
  assert.throws(() => layerNormAffine(randn([2, 4], rng), null, randn([4, 1], rng), 1e-5), /bias \[4,1\]/);
});

test('channelAffine names bad shapes and activations', () => {
  const rng = new Rng(3);
  const x = randn([2, 3, 4], rng);
  assert.throws(() => channelAffine(x, randn([4], rng), null), /channelAffine: expected x \[N, C, \.\.\.\].*weight \[4\]/);
  assert.throws(() => channelAffine(randn([5], rng), null, null), /channelAffine: .*x \[5\]/);
  assert.throws(() => channelAffine(x, null, null, 'relu' as 'silu'), /activation must be 'silu' or null/);
});

test('attention refuses operands it cannot fuse, naming the shapes', () => {
  const rng = new Rng(4);
  const q = randn([2, 3, 4], rng);
  assert.equal(canFuseAttention(q, randn([1, 5, 4], rng), randn([1, 5, 4], rng)), false, 'broadcast batch');
  assert.equal(canFuseAttention(q, randn([2, 5, 4], rng), randn([2, 5, 4], rng), randn([4, 5], rng)), false, 'bad mask');
  assert.throws(() => attention(q, randn([2, 5, 3], rng), randn([2, 5, 4], rng)), /attention: .*\[2,3,4\].*\[2,5,3\]/);
  assert.throws(() => lstmCell(randn([2, 7], rng), randn([2, 2], rng)), /lstmCell: gates \[2,7\]/);
  assert.throws(() => gruCell(randn([2, 6], rng), randn([2, 6], rng), randn([2, 3], rng)), /gruCell/);
});
