import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../engine/rng.js';
import { tensor } from '../engine/creation.js';
import {
  TOY_NAMES, sampleToy, toyLogDensity, parseIdx, loadMnist, binarize, loadMobyDick, loadFirstNames, loadCmudict,
  loadSotu, loadCsv, loadSmilesFile, loadBuiltinSmiles, CharTokenizer, WordTokenizer, BpeTokenizer, tokenizerFromJSON,
  splitIndices, BatchSampler, loadFashionMnist,
} from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'genlab-data-'));

test('toys: seeded, finite, and the mixtures integrate to ~1', () => {
  for (const name of TOY_NAMES) {
    const a = sampleToy(name, 300, new Rng(3)).values();
    const b = sampleToy(name, 300, new Rng(3)).values();
    assert.deepEqual(a, b, `${name} is not reproducible`);
    assert.ok(a.every(Number.isFinite), `${name} has non-finite points`);
    const spread = Math.max(...a) - Math.min(...a);
    assert.ok(spread > 1 && spread < 20, `${name} spread ${spread}`);
  }
  // Riemann sum of exp(log p) over [-6, 6]^2.
  for (const name of ['8gaussians', '25gaussians', 'checkerboard'] as const) {
    const h = 0.05;
    const pts: number[] = [];
    for (let x = -6 + h / 2; x < 6; x += h) for (let y = -6 + h / 2; y < 6; y += h) pts.push(x, y);
    const lp = toyLogDensity(name, tensor(Float32Array.from(pts), [pts.length / 2, 2]));
    let mass = 0;
    for (const v of lp) mass += Math.exp(v) * h * h;
    assert.ok(Math.abs(mass - 1) < 0.02, `${name} density integrates to ${mass}`);
    // Samples lie where the density is positive.
    const s = toyLogDensity(name, sampleToy(name, 200, new Rng(1)));
    assert.ok(s.every((v) => v > -50), `${name} samples in a zero-density region`);
  }
});

test('IDX parser: good file, and errors that name the file', () => {
  const good = Uint8Array.from([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
  const a = parseIdx(good, 'x.idx');
  assert.deepEqual(a.dims, [2, 3]);
  assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6]);
  assert.throws(() => parseIdx(good.subarray(0, 15), 'trunc.idx'), /trunc\.idx: IDX dims 2x3 need 6 bytes/);
  assert.throws(() => parseIdx(Uint8Array.from([1, 2, 3, 4]), 'bad.idx'), /bad\.idx: not an IDX file/);
});

test('MNIST: 60k/10k, labels 0-9, values in [0, 1]', () => {
  const te = loadMnist('test');
  assert.deepEqual(te.images.shape, [10000, 1, 28, 28]);
  assert.deepEqual([...te.labels.values().subarray(0, 5)], [7, 2, 1, 0, 4]);
  const v = te.images.values();
  assert.ok(v.every((x) => x >= 0 && x <= 1));
  assert.equal(loadMnist('train', 100).images.shape[0], 100);
  const b = binarize(te.images.slice(0, 0, 10)).values();
  assert.ok(b.every((x) => x === 0 || x === 1));
  const s1 = binarize(te.images.slice(0, 0, 10), 'stochastic', new Rng(1)).values();
  const s2 = binarize(te.images.slice(0, 0, 10), 'stochastic', new Rng(1)).values();
  assert.deepEqual(s1, s2);
});

test('Fashion-MNIST: loads, or names the apt package', () => {
  try {
    assert.equal(loadFashionMnist('test', 10).images.shape[0], 10);
  } catch (e) {
    assert.match((e as Error).message, /apt-get install dataset-fashion-mnist/);
  }
});

test('text corpora load', () => {
  const md = loadMobyDick();
  assert.ok(md.length >= 135);
  assert.match(md[0].text, /Call me Ishmael/);
  const names = loadFirstNames();
  assert.ok(names.length > 5000 && names.includes('Abigail'));
  const cmu = loadCmudict();
  assert.ok(cmu.length > 100000);
  assert.deepEqual(cmu.find((p) => p.word === 'aachen')?.phonemes, ['AA1', 'K', 'AH0', 'N']);
  assert.ok(loadSotu().length > 200);
});

test('user files: CSV and SMILES errors name file and line', () => {
  const csv = join(tmp, 'a.csv');
  writeFileSync(csv, 'x,y\n1,2\n3,oops\n');
  assert.throws(() => loadCsv(csv), new RegExp(`a\\.csv:3: column 2 is not a number`));
  writeFileSync(csv, 'x,y\n1,2\n3,4\n');
  assert.deepEqual(loadCsv(csv).rows, [[1, 2], [3, 4]]);
  const smi = join(tmp, 'm.smi');
  writeFileSync(smi, 'CCO ethanol\nC1=CC=CC=C1\nCC(C\n');
  assert.throws(() => loadSmilesFile(smi), /m\.smi:3: unbalanced parentheses/);
  assert.throws(() => loadCsv(join(tmp, 'missing.csv')), /missing\.csv: no such file/);
  assert.ok(loadBuiltinSmiles().length >= 14000);
});

test('tokenizers round-trip and save to JSON', () => {
  const text = 'the cat sat on the mat. the end!';
  const c = CharTokenizer.fromText(text);
  assert.equal(c.decode(c.encode('the mat')), 'the mat');
  assert.throws(() => c.encode('zebra'), /"z" in text is not in the vocabulary/);
  const w = WordTokenizer.fromText(text);
  assert.equal(w.decode(w.encode('the cat sat.')), 'the cat sat.');
  assert.equal(w.encode('zebra')[0], w.unk);
  const b = BpeTokenizer.train(text.repeat(5), { numMerges: 20 });
  assert.equal(b.decode(b.encode(text)), text);
  assert.ok(b.encode(text).length < text.length, 'BPE compresses');
  const b2 = tokenizerFromJSON(JSON.parse(JSON.stringify(b.toJSON())));
  assert.deepEqual(b2.encode(text), b.encode(text));
});

test('splits are disjoint and cover everything; the sampler resumes exactly', () => {
  const s = splitIndices(1000, { val: 0.1, test: 0.2 }, 7);
  const all = new Set([...s.train, ...s.val, ...s.test]);
  assert.equal(all.size, 1000);
  assert.equal(s.train.length + s.val.length + s.test.length, 1000);
  assert.equal(s.test.length, 200);
  const a = new BatchSampler(50, 8, 3);
  const seq = Array.from({ length: 20 }, () => [...a.next()]);
  const b = new BatchSampler(50, 8, 3);
  for (let i = 0; i < 7; i++) b.next();
  const st = b.getState();
  const c = new BatchSampler(50, 8, 3);
  c.setState(st);
  assert.deepEqual(Array.from({ length: 13 }, () => [...c.next()]), seq.slice(7));
});
