/** U-Net denoiser: shapes, parameter names, time and label embeddings reach the output. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng, Tensor, randn, noGrad } from '../../engine/index.js';
import { normal_ } from '../../nn/init.js';
import { UNet, timestepEmbedding } from './unet.js';
import type { UNetOptions } from './unet.js';

const OPTS: UNetOptions = { inChannels: 1, channels: [8, 16, 16], numResBlocks: 2, timeEmbedDim: 32, groups: 4, nHead: 2, dropout: 0, numClasses: 10 };

/** Give the zero-initialised output convs small random weights, so every path matters. */
function perturb(net: UNet, rng: Rng): void {
  for (const [, p] of net.namedParameters()) if (Array.from(p.values()).every((v) => v === 0) && p.rank > 1) normal_(p, rng, 0, 0.05);
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = a.values();
  const y = b.values();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe('UNet', () => {
  test('timestep embedding: sin/cos of t 10000^(-i/(half-1))', () => {
    const e = timestepEmbedding([0, 3], 8).values();
    assert.deepEqual(Array.from(e.slice(0, 8)), [0, 0, 0, 0, 1, 1, 1, 1]);
    for (let i = 0; i < 4; i++) {
      const w = 10000 ** (-i / 3);
      assert.ok(Math.abs(e[8 + i] - Math.sin(3 * w)) < 1e-6);
      assert.ok(Math.abs(e[12 + i] - Math.cos(3 * w)) < 1e-6);
    }
    assert.throws(() => timestepEmbedding([1], 7), /even/);
  });

  test('output is shaped like the input at 28x28 with three levels; diffusers-style names', () => {
    const net = new UNet(OPTS, new Rng(0));
    const y = noGrad(() => net.forward(randn([2, 1, 28, 28], new Rng(1)), [3, 700], new Tensor(Int32Array.from([1, 10]), [2])));
    assert.deepEqual(y.shape, [2, 1, 28, 28]);
    assert.ok(Array.from(y.values()).every(Number.isFinite));
    const names = net.namedParameters().map(([n]) => n);
    for (const n of [
      'embedding.time_embedding.linear_1.weight', 'embedding.class_embedding.weight', 'conv_in.weight',
      'down_blocks.0.resnets.1.conv2.weight', 'down_blocks.2.attentions.1.qkv.weight', 'downsamplers.1.weight',
      'up_blocks.0.resnets.0.conv_shortcut.weight', 'up_blocks.1.resnets.1.time_emb_proj.weight', 'conv_norm_out.weight', 'conv_out.bias',
    ]) assert.ok(names.includes(n), `missing ${n}`);
    // Attention only at the lowest level; the class table has a null row.
    assert.ok(!names.some((n) => n.startsWith('down_blocks.0.attentions') || n.startsWith('up_blocks')  && n.includes('attentions')));
    assert.deepEqual(net.embed.classEmbedding!.weight.shape, [11, 32]);
    assert.throws(() => net.checkInput([1, 1, 30, 30]), /divisible by 4/);
  });

  test('blocks start as the identity (zero-initialised output convs), yet gradients reach every weight', () => {
    const net = new UNet({ ...OPTS, channels: [8, 16], nHead: 1 }, new Rng(0));
    const x = randn([2, 1, 8, 8], new Rng(2));
    const a = noGrad(() => net.forward(x, [0, 0], null));
    const b = noGrad(() => net.forward(x, [999, 999], null));
    assert.equal(maxAbsDiff(a, b), 0, 'at init the output should not depend on t');
    net.forward(x, [5, 500], new Tensor(Int32Array.from([2, 3]), [2])).square().sum().backward();
    const noGrad_ = net.namedParameters().filter(([, p]) => p.grad === null).map(([n]) => n);
    assert.deepEqual(noGrad_, [], `parameters without gradient: ${noGrad_.join(', ')}`);
  });

  test('the time embedding and the label change the output', () => {
    const net = new UNet(OPTS, new Rng(0));
    perturb(net, new Rng(5));
    const x = randn([2, 1, 28, 28], new Rng(1));
    const y = new Tensor(Int32Array.from([4, 4]), [2]);
    noGrad(() => {
      const base = net.forward(x, [10, 10], y);
      assert.ok(maxAbsDiff(base, net.forward(x, [900, 900], y)) > 1e-3, 't has no effect');
      assert.ok(maxAbsDiff(base, net.forward(x, [10, 10], new Tensor(Int32Array.from([7, 10]), [2]))) > 1e-3, 'label has no effect');
      // Rows are independent: the second row's t does not change the first row's output.
      const mixed = net.forward(x, [10, 900], y);
      assert.ok(maxAbsDiff(base.slice(0, 0, 1), mixed.slice(0, 0, 1)) < 1e-5);
    });
  });
});
