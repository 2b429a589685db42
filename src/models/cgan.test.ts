/** CGAN and ACGAN: conformance with class-conditional sampling; labels are honoured. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor } from '../engine/index.js';
import { conformance } from '../../test/model_conformance.js';
import { ConditionalGAN } from './cgan.js';

conformance('cgan', { data: 'mnist', limit: 64, lossFalls: false, steps: 3, conditional: true });
conformance('acgan', { data: 'mnist', limit: 64, lossFalls: false, steps: 3, conditional: true });

test('conditional sampling: given labels are returned, default labels cycle 0..9, and labels change the images', () => {
  const info = { name: 'mnist', kind: 'image' as const, shape: [1, 28, 28], numClasses: 10 };
  const m = new ConditionalGAN('acgan', { latentDim: 4, baseChannels: 4, embedDim: 4 }, new Rng(0), info).eval();
  const s = m.sample(12, new Rng(1));
  assert.equal(s.kind, 'image');
  if (s.kind !== 'image') return;
  assert.deepEqual(Array.from(s.labels!.values()), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
  const a = m.sample(2, new Rng(1), new Tensor(new Int32Array([3, 3]), [2]));
  const b = m.sample(2, new Rng(1), new Tensor(new Int32Array([7, 7]), [2]));
  if (a.kind !== 'image' || b.kind !== 'image') return;
  assert.deepEqual(Array.from(a.labels!.values()), [3, 3]);
  assert.notDeepEqual(Array.from(a.images.values()), Array.from(b.images.values()));
  assert.throws(() => new ConditionalGAN('cgan', {}, new Rng(0), { name: 'x', kind: 'image', shape: [1, 28, 28] }), /labelled/);
});
