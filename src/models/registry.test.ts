/**
 * Registry: preset layers (with per-data refinements) and config resolution.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import './index.js';
import { modelEntry, presetLayers, resolveConfig } from './registry.js';
import type { ModelEntry } from './registry.js';

const fake: ModelEntry = {
  type: 'fake', description: '', data: ['points'], defaultData: 'moons', defaults: { width: 8, depth: 2 },
  presets: { small: { model: { width: 64 }, train: { steps: 5000 }, forData: { mnist: { model: { depth: 3 }, train: { steps: 1200 } } } } },
  create: () => { throw new Error('unused'); },
};

test('presetLayers: the per-data refinement applies only to its data set, and CLI keys still win', () => {
  const m = presetLayers(fake, 'small', 'mnist');
  assert.deepEqual(resolveConfig('model', fake.defaults, undefined, ...m.model), { width: 64, depth: 3 });
  assert.deepEqual(resolveConfig('train', { steps: 1, lr: 1 }, undefined, ...m.train, { steps: '7' }), { steps: 7, lr: 1 });
  const t = presetLayers(fake, 'small', 'moons');
  assert.deepEqual(resolveConfig('model', fake.defaults, undefined, ...t.model), { width: 64, depth: 2 });
  assert.deepEqual(resolveConfig('train', { steps: 1 }, undefined, ...t.train), { steps: 5000 });
  assert.deepEqual(presetLayers(fake, undefined, 'mnist'), { model: [], train: [] });
  assert.throws(() => presetLayers(fake, 'huge', 'mnist'), /no preset 'huge'; presets: small/);
});

test('every registered preset refines only known keys', () => {
  for (const type of ['realnvp', 'glow', 'maf', 'ddpm']) {
    const e = modelEntry(type);
    for (const [name, p] of Object.entries(e.presets)) {
      for (const data of Object.keys(p.forData ?? {})) {
        const l = presetLayers(e, name, data);
        assert.doesNotThrow(() => resolveConfig('model', e.defaults, e.choices, ...l.model), `${type} ${name} ${data}`);
      }
    }
  }
});
