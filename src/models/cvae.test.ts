/** CVAE: conformance with class-conditional sampling; the IS bound is tighter than the ELBO. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor } from '../engine/index.js';
import { conformance } from '../../test/model_conformance.js';
import { CVAE } from './cvae.js';

conformance('cvae', { data: 'mnist', limit: 128, conditional: true });

test('cvae: IS-NLL <= -ELBO (on average) and labels condition the decoder', () => {
  const info = { name: 'mnist', kind: 'image' as const, shape: [1, 4, 4], numClasses: 3 };
  const m = new CVAE({ hiddenDim: 16, latentDim: 2 }, new Rng(0), info);
  const x = new Tensor(Float32Array.from({ length: 6 * 16 }, (_, i) => ((i * 7) % 3 === 0 ? 1 : 0)), [6, 1, 4, 4]);
  const y = new Tensor(new Int32Array([0, 1, 2, 0, 1, 2]), [6]);
  const r = m.evaluate({ x, y }, new Rng(1));
  assert.ok(r.nll <= r.negElbo + 0.5, `nll ${r.nll} vs -elbo ${r.negElbo}`);
  const z = new Tensor(new Float32Array(4), [2, 2]);
  const a = m.decodeLatent(z, new Tensor(new Int32Array([0, 0]), [2])).values();
  const b = m.decodeLatent(z, new Tensor(new Int32Array([1, 1]), [2])).values();
  assert.notDeepEqual(Array.from(a), Array.from(b));
});
