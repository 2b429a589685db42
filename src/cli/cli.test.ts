import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { main } from './main.js';
import { readMetrics } from '../train/trainer.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { decodePng } from '../io/png.js';
import { ROOT } from '../../test/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'genlab-cli-'));
// Keep the feature classifier that `genlab eval` trains out of the user's cache.
process.env.GENLAB_CACHE_DIR = join(tmp, 'cache');
const TINY = ['--preset', 'tiny', '--limit', '600', '--quiet', '--train.logEvery=1', '--train.batchSize=32'];

/** Run main() capturing its output. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (s) => (stdout += s), err: (s) => (stderr += s) });
  process.exitCode = 0;
  return { code, stdout, stderr };
}

function trainLosses(dir: string): number[] {
  return readMetrics(dir).filter((r) => r.split === 'train').map((r) => r.loss as number);
}

test('train, sample, eval, info end to end (vae, tiny)', async () => {
  const dir = join(tmp, 'vae');
  const r = await run(['train', 'vae', '--data', 'mnist', ...TINY, '--steps', '12', '--out', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /trained 12 steps/);
  assert.ok(existsSync(join(dir, 'checkpoint')));
  const losses = trainLosses(dir);
  assert.equal(losses.length, 12);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses[11] < losses[0], `loss did not fall: ${losses[0]} -> ${losses[11]}`);

  const png = join(tmp, 's.png');
  const s = await run(['sample', dir, '--n', '16', '--cols', '4', '--out', png]);
  assert.equal(s.code, 0, s.stderr);
  const img = decodePng(readFileSync(png));
  // 4 tiles of 28*2 px plus 2 px padding around each.
  assert.equal(img.width, 4 * (56 + 2) + 2);
  assert.equal(img.height, 4 * (56 + 2) + 2);

  const e = await run(['eval', dir, '--json', '--quick']);
  assert.equal(e.code, 0, e.stderr);
  const m = JSON.parse(e.stdout);
  assert.ok(m.nll > 0 && m.nll < 800, `nll ${m.nll}`);
  assert.ok(m.negElbo >= m.nll - 1, 'the IS bound is at least as tight as the ELBO');

  const i = await run(['info', dir, '--json']);
  assert.equal(i.code, 0, i.stderr);
  const info = JSON.parse(i.stdout);
  assert.equal(info.step, 12);
  assert.ok(info.parameters > 1000);
});

test('a stopped and resumed run gives the same losses as an uninterrupted one', async () => {
  const a = join(tmp, 'full');
  const b = join(tmp, 'part');
  assert.equal((await run(['train', 'vae', ...TINY, '--steps', '10', '--out', a])).code, 0);
  assert.equal((await run(['train', 'vae', ...TINY, '--steps', '6', '--out', b])).code, 0);
  const r = await run(['train', '--resume', b, '--steps', '10', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const la = trainLosses(a);
  const lb = trainLosses(b);
  assert.equal(lb.length, 10);
  for (let k = 0; k < 10; k++) assert.ok(Math.abs(la[k] - lb[k]) <= 1e-6 * Math.abs(la[k]), `step ${k + 1}: ${la[k]} vs ${lb[k]}`);
});

test('EMA switched on when resuming averages from the loaded weights, not the initialisation', async () => {
  const dir = join(tmp, 'ema-resume');
  assert.equal((await run(['train', 'vae', ...TINY, '--steps', '6', '--out', dir])).code, 0);
  const before = loadCheckpoint(join(dir, 'checkpoint')).weights;
  // decay 1: the average never moves, so it must equal the weights it started from.
  const r = await run(['train', '--resume', dir, '--steps', '8', '--train.ema=1', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const ck = loadCheckpoint(join(dir, 'checkpoint'));
  const ema = new Map([...ck.optimizer.tensors].filter(([k]) => k.startsWith('ema.')).map(([k, v]) => [k.slice(4), v]));
  assert.ok(ema.size > 0, 'the checkpoint keeps an EMA');
  for (const [k, v] of ema) assert.deepEqual(v.toArray(), before.get(k)!.toArray(), `ema.${k} is not the resumed weights`);
});

test('bad flags, keys, values and files give clear errors and exit codes', async () => {
  let r = await run(['train', 'vae', '--model.latentDimm=3']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown key model\.latentDimm; valid keys: .*model\.latentDim/);
  r = await run(['train', 'vae', '--model.latentDim=abc']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /model\.latentDim: expected a number, got "abc"/);
  r = await run(['train', 'vae', '--model.arch=resnet']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /model\.arch: "resnet" is not one of mlp, conv/);
  r = await run(['train', 'vae', '--frobnicate', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option --frobnicate/);
  r = await run(['train', 'nosuchmodel']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown model type 'nosuchmodel'; known types: .*vae/);
  r = await run(['bogus']);
  assert.equal(r.code, 2);
  r = await run(['sample', join(tmp, 'does-not-exist')]);
  assert.equal(r.code, 2);
  const notRun = join(tmp, 'notrun');
  mkdirSync(notRun, { recursive: true });
  r = await run(['eval', notRun]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not a genlab run folder/);
  const badDir = join(tmp, 'badpngs');
  mkdirSync(badDir, { recursive: true });
  writeFileSync(join(badDir, 'a.png'), 'not a png');
  r = await run(['train', 'vae', '--data', badDir, ...TINY, '--steps', '1', '--out', join(tmp, 'x')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /a\.png: not a readable PNG/);
  r = await run(['train', 'vae', '--data', 'moons', '--steps', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /points data, but this model takes image data/);
});

test('the bin runs: --help exits 0, no command exits 2, list --json parses', () => {
  const bin = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const h = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /genlab <command>/);
  assert.equal(spawnSync(process.execPath, [bin], { encoding: 'utf8' }).status, 2);
  const l = spawnSync(process.execPath, [bin, 'list', '--json'], { encoding: 'utf8' });
  assert.equal(l.status, 0, l.stderr);
  const j = JSON.parse(l.stdout);
  assert.ok(j.models.some((m: { type: string }) => m.type === 'vae'));
  assert.ok(j.data.image.includes('mnist'));
  const t = spawnSync(process.execPath, [bin, 'train', '--help'], { encoding: 'utf8' });
  assert.equal(t.status, 0);
  assert.match(t.stdout, /--resume DIR/);
});

test('Ctrl-C (SIGINT) writes a final checkpoint and exits 130', async () => {
  const bin = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const dir = join(tmp, 'sigint');
  const child = spawn(process.execPath, [bin, 'train', 'vae', ...TINY, '--steps', '100000', '--out', dir], { stdio: 'pipe' });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  // Wait until training has logged a few steps, then interrupt.
  for (let i = 0; i < 600 && readMetricsSafe(dir) < 3; i++) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130, stdout);
  assert.match(stdout, /interrupted \d+ steps/);
  const info = await run(['info', dir, '--json']);
  const step = JSON.parse(info.stdout).step;
  assert.ok(step >= 3 && step < 100000, `checkpoint step ${step}`);
});

function readMetricsSafe(dir: string): number {
  try {
    return readMetrics(dir).length;
  } catch {
    return 0;
  }
}

test('sample options: decoding for text, latent strips, density maps', async () => {
  const lm = join(tmp, 'gpt');
  assert.equal((await run(['train', 'gpt', '--data', 'names', '--preset', 'tiny', '--steps', '3', '--quiet', '--out', lm])).code, 0);
  let r = await run(['sample', lm, '--n', '2', '--prompt', 'Ma', '--sample.maxLen=12', '--sample.beam=2', '--out', join(tmp, 'names.png')]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => l.startsWith('Ma')), r.stdout);
  assert.ok(existsSync(join(tmp, 'names.txt')));
  r = await run(['sample', lm, '--sample.nonsense=1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown sample option 'nonsense'/);

  const vae = join(tmp, 'vae');
  const strip = join(tmp, 'strip.png');
  r = await run(['sample', vae, '--sample.interpolate=lerp', '--sample.steps=5', '--sample.rows=2', '--out', strip]);
  assert.equal(r.code, 0, r.stderr);
  const img = decodePng(readFileSync(strip));
  assert.equal(img.width, 5 * (56 + 2) + 2);
  assert.equal(img.height, 2 * (56 + 2) + 2);

  const flow = join(tmp, 'flow');
  assert.equal((await run(['train', 'realnvp', '--data', '8gaussians', '--preset', 'tiny', '--steps', '3', '--quiet', '--out', flow])).code, 0);
  r = await run(['sample', flow, '--sample.density=40', '--out', join(tmp, 'density.png')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /40x40 density map/);
  r = await run(['sample', vae, '--sample.density=40']);
  assert.equal(r.code, 2);
});
