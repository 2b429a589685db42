/**
 * MADE: conformance on MNIST, the autoregressive property through the Jacobian of the
 * logits, and the exact NLL as the sum of per-pixel binary cross-entropies.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, Rng, grad, bernoulli, rand } from '../engine/index.js';
import { bceWithLogits } from '../nn/losses.js';
import { conformance } from '../../test/model_conformance.js';
import { MADE } from './made.js';
import type { DataInfo } from './contract.js';
import type { Config } from './registry.js';

conformance('made', { data: 'mnist', limit: 128 });

const info: DataInfo = { name: 'toy', kind: 'image', shape: [1, 3, 4] };

for (const cfg of [{ hiddenDims: [16, 16] }, { hiddenDims: [16], numMasks: 3, orderAgnostic: true }] as Config[]) {
  test(`made: logit d does not depend on inputs >= d in the ordering (${JSON.stringify(cfg)})`, () => {
    const m = new MADE(cfg, new Rng(0), info);
    const D = 12;
    const x0 = bernoulli(rand([1, 1, 3, 4], new Rng(1)).mul(0).add(0.5), new Rng(2));
    let seenAny = false;
    for (let step = 0; step < ((cfg.numMasks as number | undefined) ?? 1); step++) {
      m.loss({ x: x0 }, new Rng(0), { step, totalSteps: 3 }); // loads mask set `step`
      const deg = (m as unknown as { maskSets: { inputDegrees: Int32Array }[] }).maskSets[step].inputDegrees;
      for (let d = 0; d < D; d++) {
        const x = x0.detach();
        x.requiresGrad = true;
        const [g] = grad(m.logits(x).slice(1, d, d + 1).sum(), [x]);
        const gv = g!.values();
        for (let i = 0; i < D; i++) {
          if (deg[i] >= deg[d]) assert.equal(gv[i], 0, `mask ${step}: logit ${d} depends on input ${i}`);
          else if (gv[i] !== 0) seenAny = true;
        }
      }
    }
    assert.ok(seenAny, 'no logit depends on any input');
  });
}

test('made: NLL equals the sum of per-pixel BCE, and evaluate reports it in nats', () => {
  const m = new MADE({ hiddenDims: [8] }, new Rng(0), info);
  const x = bernoulli(rand([5, 1, 3, 4], new Rng(3)), new Rng(4));
  const bce = bceWithLogits(m.logits(x), x.reshape([5, 12]), { reduction: 'sum' }).item() / 5;
  const nll = -m.logProb(x).mean().item();
  assert.ok(Math.abs(nll - bce) < 1e-4, `${nll} vs ${bce}`);
  const ev = m.evaluate({ x: new Tensor(x.f32().slice(), x.shape) });
  // evaluate binarizes dynamically with a fixed seed; a binary input stays binary.
  assert.ok(Math.abs(ev.nll - bce) < 1e-4, `${ev.nll} vs ${bce}`);
  assert.ok(Math.abs(ev.bitsPerDim - bce / 12 / Math.LN2) < 1e-5);
});
