/**
 * Memory: a few thousand forward/backward steps of a small MLP, with a manual SGD
 * update under noGrad, must not grow the process's memory. The loop runs in a child
 * `node --expose-gc` (so the heap can be measured after a full collection), once per
 * backend present; growth between step 500 and the end must stay under loose bounds.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { testBackends } from './helpers.js';

const STEPS = 3000;

function childScript(indexUrl: string): string {
  return `
import { Rng, randn, noGrad } from ${JSON.stringify(indexUrl)};
const rng = new Rng(0);
const param = (shape, std) => randn(shape, rng, 0, std).requiresGrad_();
const W1 = param([32, 8], 0.3), b1 = param([32], 0.1), W2 = param([1, 32], 0.3), b2 = param([1], 0.1);
const params = [W1, b1, W2, b2];
const mem = () => { global.gc(); global.gc(); const m = process.memoryUsage(); return { heap: m.heapUsed, rss: m.rss, ext: m.external + m.arrayBuffers }; };
const marks = {};
let first = 0, last = 0;
for (let step = 1; step <= ${STEPS}; step++) {
  const x = randn([16, 8], rng);
  const y = x.sum(1, true).sin();
  const h = x.matmul(W1.T).add(b1).tanh();
  const loss = h.matmul(W2.T).add(b2).sub(y).square().mean();
  loss.backward();
  noGrad(() => {
    for (const p of params) {
      p.data.set(p.sub(p.grad.mul(0.05)).values());
      p.zeroGrad();
    }
  });
  if (step === 1) first = loss.item();
  last = loss.item();
  if (step === 500 || step === ${STEPS}) marks[step] = mem();
}
process.stdout.write(JSON.stringify({ marks, first, last }));
`;
}

for (const be of testBackends()) {
  test(`memory: ${STEPS} MLP training steps on ${be} do not grow the heap`, () => {
    const indexUrl = new URL('../src/engine/index.js', import.meta.url).href;
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', childScript(indexUrl)], {
      env: { ...process.env, GENLAB_BACKEND: be },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, `child failed: ${r.stderr}`);
    const { marks, first, last } = JSON.parse(r.stdout) as {
      marks: Record<string, { heap: number; rss: number; ext: number }>;
      first: number;
      last: number;
    };
    // The loop really trained (so each step did the full forward/backward/update).
    assert.ok(last < first, `loss did not fall: ${first} -> ${last}`);
    const a = marks['500'];
    const b = marks[String(STEPS)];
    const mb = (n: number): string => (n / 2 ** 20).toFixed(2);
    const growth = `heap ${mb(a.heap)} -> ${mb(b.heap)} MB, external ${mb(a.ext)} -> ${mb(b.ext)} MB, rss ${mb(a.rss)} -> ${mb(b.rss)} MB`;
    // A leak of one small tensor per step (about 100 bytes) would add 250 kB.
    assert.ok(b.heap - a.heap < 2 ** 20, `heap grew: ${growth}`);
    assert.ok(b.ext - a.ext < 2 ** 20, `typed-array memory grew: ${growth}`);
    assert.ok(b.rss - a.rss < 48 * 2 ** 20, `rss grew: ${growth}`);
  });
}
