/** DCGAN: conformance (BatchNorm critic and a WGAN-GP critic without BN), layer shapes. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../engine/index.js';
import { conformance } from '../../test/model_conformance.js';
import { DCGAN } from './dcgan.js';
import type { DataInfo } from './contract.js';

conformance('dcgan', { data: 'mnist', limit: 64, lossFalls: false, steps: 3 });
conformance('dcgan', { data: 'mnist', limit: 64, lossFalls: false, steps: 2, modelOverrides: { lossType: 'wgan-gp', dNorm: 'layer', nCritic: 2 } });

test('dcgan: default sizes follow the reference layout (128x7x7, 6272 -> 1)', () => {
  const m = new DCGAN({}, new Rng(0), { name: 'mnist', kind: 'image', shape: [1, 28, 28], numClasses: 10 });
  const sd = m.stateDict();
  assert.deepEqual([...sd['generator.fc.weight'].shape], [6272, 100]);
  assert.deepEqual([...sd['generator.deconv1.weight'].shape], [128, 64, 4, 4]);
  assert.deepEqual([...sd['generator.deconv2.weight'].shape], [64, 1, 4, 4]);
  assert.deepEqual([...sd['discriminator.conv1.weight'].shape], [64, 1, 4, 4]);
  assert.deepEqual([...sd['discriminator.conv2.weight'].shape], [128, 64, 4, 4]);
  assert.deepEqual([...sd['head.weight'].shape], [1, 6272]);
  assert.ok('discriminator.norm.running_mean' in sd);
});

conformance('dcgan', { data: 'mnist', limit: 64, lossFalls: false, steps: 2, modelOverrides: { baseChannels: 8, hiddenDim: 32 } });

test('dcgan: hiddenDim adds InfoGAN\'s fully connected layer to G and D', () => {
  const data: DataInfo = { name: 'mnist', kind: 'image', shape: [1, 28, 28], numClasses: 10 };
  const m = new DCGAN({ baseChannels: 8, hiddenDim: 32, latentDim: 10 }, new Rng(0), data);
  const sd = m.stateDict();
  assert.deepEqual([...sd['generator.fc_hidden.weight'].shape], [32, 10]);
  assert.deepEqual([...sd['generator.fc.weight'].shape], [16 * 49, 32]);
  assert.deepEqual([...sd['discriminator.fc_hidden.weight'].shape], [32, 16 * 49]);
  assert.ok('discriminator.norm_hidden.running_var' in sd);
  assert.deepEqual([...sd['head.weight'].shape], [1, 32]);
  assert.ok(!('generator.fc_hidden.weight' in new DCGAN({ baseChannels: 8 }, new Rng(0), data).stateDict()));
  assert.throws(() => new DCGAN({ hiddenDim: -1 }, new Rng(0), data), /hiddenDim must be an integer >= 0/);
});
