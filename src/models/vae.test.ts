/** VAE: conformance (MLP and conv); the importance-sampled NLL against exact log p(x). */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor, noGrad } from '../engine/index.js';
import { conformance } from '../../test/model_conformance.js';
import { VAE } from './vae.js';
import { Adam } from '../optim/index.js';

conformance('vae', { data: 'mnist', limit: 128 });
conformance('vae', { data: 'mnist', limit: 64, modelOverrides: { arch: 'conv' }, steps: 20 });

/**
 * log p(x) of a VAE with a 1-D or 2-D latent by quadrature over z (trapezoid on
 * [-9, 9]^L), for every binary image of a few pixels; the IS estimate with large k
 * must agree, and the exact probabilities must sum to 1.
 */
for (const L of [1, 2]) {
  test(`IS-NLL (k = 4000) of a tiny VAE with latentDim ${L} matches numerical integration of log p(x)`, () => {
    const D = 3;
    const info = { name: 'bits', kind: 'image' as const, shape: [1, 1, D] };
    const vae = new VAE({ hiddenDim: 8, latentDim: L, binarize: 'none' }, new Rng(7), info);
    const xs = Array.from({ length: 2 ** D }, (_, k) => Array.from({ length: D }, (_, d) => (k >> d) & 1));
    const X = new Tensor(Float32Array.from(xs.flat()), [xs.length, 1, 1, D]);
    // A little training makes q(z|x) a useful proposal (the estimate is consistent for any q).
    const opt = new Adam(vae.parameters(), { lr: 1e-2 });
    for (let s = 0; s < 100; s++) {
      opt.zeroGrad();
      vae.loss({ x: X }, new Rng(s)).loss.backward();
      opt.step();
    }
    // Grid over z.
    const G = L === 1 ? 2001 : 161;
    const lo = -9;
    const h = 18 / (G - 1);
    const M = G ** L;
    const z = new Float32Array(M * L);
    const w = new Float64Array(M); // quadrature weight * N(z; 0, I)
    for (let i = 0; i < M; i++) {
      let wt = 1;
      let idx = i;
      for (let l = 0; l < L; l++) {
        const g = idx % G;
        idx = Math.floor(idx / G);
        const v = lo + g * h;
        z[i * L + l] = v;
        wt *= (g === 0 || g === G - 1 ? 0.5 : 1) * h * Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
      }
      w[i] = wt;
    }
    const logits = noGrad(() => vae.decode(new Tensor(z, [M, L]))).values(); // (M, 1, 1, D)
    const exact = xs.map((x) => {
      let p = 0;
      for (let i = 0; i < M; i++) {
        let lp = 0;
        for (let d = 0; d < D; d++) {
          const l = logits[i * D + d];
          lp += x[d] * l - Math.max(l, 0) - Math.log1p(Math.exp(-Math.abs(l)));
        }
        p += w[i] * Math.exp(lp);
      }
      return Math.log(p);
    });
    const total = exact.reduce((s, v) => s + Math.exp(v), 0);
    assert.ok(Math.abs(total - 1) < 1e-6, `exact probabilities sum to ${total}`);
    const { logpx, elbo } = vae.logLikelihoodIS(X, 4000, new Rng(1));
    for (let k = 0; k < xs.length; k++) {
      assert.ok(Math.abs(logpx[k] - exact[k]) < 0.02, `x = ${xs[k]}: IS ${logpx[k]} vs exact ${exact[k]}`);
      assert.ok(Number.isFinite(elbo[k]));
    }
    // evaluate() reports the mean NLL over the test examples.
    const r = vae.evaluate({ x: X }, new Rng(2));
    const meanNll = -exact.reduce((s, v) => s + v, 0) / xs.length;
    assert.ok(Math.abs(r.nll - meanNll) < 0.05, `evaluate nll ${r.nll} vs ${meanNll}`);
  });
}
