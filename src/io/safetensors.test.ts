/**
 * safetensors: a file written by scripts/fixtures/safetensors.py (the reference layout,
 * many dtypes) loads with the right names, shapes and values; genlab writes exactly the
 * bytes the script computed independently; hostile files fail with errors naming the
 * file, the tensor and the problem.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, tensor } from '../engine/index.js';
import { ROOT, fixture, fromFixture, assertClose } from '../../test/helpers.js';
import type { FixtureTensor } from '../../test/helpers.js';
import { encodeSafetensors, decodeSafetensors, saveSafetensors, loadSafetensors, readSafetensorsHeader, SafetensorsError } from './safetensors.js';

interface Fx {
  torchFile: {
    path: string; sha256: string; metadata: Record<string, string>; order: string[];
    tensors: Record<string, FixtureTensor & { fileDtype: string }>;
  };
  genlabWrite: { metadata: Record<string, string>; tensors: Record<string, FixtureTensor>; hex: string; sha256: string };
  genlabPlain: { hex: string; sha256: string };
}
const fx = fixture<Fx>('safetensors');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

test('a reference-layout file of 13 dtypes loads with the right names, shapes and values', () => {
  const path = join(ROOT, 'test', 'fixtures', fx.torchFile.path);
  assert.equal(sha256(readFileSync(path)), fx.torchFile.sha256, 'fixture file changed; rerun scripts/fixtures/safetensors.py');
  const { tensors, metadata, dtypes } = loadSafetensors(path);
  assert.deepEqual(metadata, fx.torchFile.metadata);
  assert.deepEqual([...tensors.keys()], fx.torchFile.order, 'tensors in file order');
  for (const [name, want] of Object.entries(fx.torchFile.tensors)) {
    const t = tensors.get(name)!;
    assert.equal(dtypes.get(name), want.fileDtype, `${name} file dtype`);
    assert.equal(t.dtype, want.dtype, `${name} dtype`);
    assertClose(t, fromFixture(want), 0, 0, `tensor ${name}`);
  }
});

test('genlab writes the exact bytes of the reference layout', () => {
  const w = fx.genlabWrite;
  // Insert in an order different from the file's to check the sorting.
  const names = Object.keys(w.tensors).reverse();
  const tensors = new Map(names.map((n) => [n, fromFixture(w.tensors[n])]));
  const bytes = encodeSafetensors(tensors, w.metadata);
  assert.equal(Buffer.from(bytes).toString('hex'), w.hex);
  assert.equal(sha256(bytes), w.sha256);
  const plain = encodeSafetensors({ y: tensor([[4, 5]], undefined, 'int32'), x: tensor([1, 2, 3]) });
  assert.equal(sha256(plain), fx.genlabPlain.sha256);
  assert.equal(Buffer.from(plain).toString('hex'), fx.genlabPlain.hex);
  // And reads them back.
  const back = decodeSafetensors(bytes);
  assert.deepEqual(back.metadata, w.metadata);
  for (const n of names) assertClose(back.tensors.get(n)!, w.tensors[n], 0, 0, n);
  assert.ok(Object.is(back.tensors.get('bias')!.toArray()[1], -0), '-0 survives');
});

test('views (transposed, sliced) are written in row-major order; save/load through a file', () => {
  const base = tensor([[1, 2, 3], [4, 5, 6]]);
  const dir = mkdtempSync(join(tmpdir(), 'genlab-st-'));
  try {
    const path = join(dir, 'v.safetensors');
    saveSafetensors(path, { t: base.T, s: base.slice(1, 1, 3) });
    assert.deepEqual(readdirSync(dir), ['v.safetensors'], 'no temporary file left behind');
    const { tensors } = loadSafetensors(path);
    assert.deepEqual(tensors.get('t')!.toList(), [[1, 4], [2, 5], [3, 6]]);
    assert.deepEqual(tensors.get('s')!.toList(), [[2, 3], [5, 6]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('encode refuses bad names, non-tensors and non-string metadata', () => {
  assert.throws(() => encodeSafetensors({ __metadata__: tensor([1]) }), /invalid tensor name '__metadata__'/);
  assert.throws(() => encodeSafetensors({ a: [1, 2] as unknown as Tensor }), /'a' is not a Tensor/);
  assert.throws(() => encodeSafetensors({ a: tensor([1]) }, { n: 3 as unknown as string }), /metadata 'n' must be a string/);
});

// ---- Hostile files ---------------------------------------------------------------------

/** A file with header text `json` (padded with spaces) and `data` bytes; `n` overrides the length field. */
function file(json: string | Uint8Array, data: Uint8Array | number = 0, n?: bigint): Uint8Array {
  let h = typeof json === 'string' ? Buffer.from(json, 'utf8') : Buffer.from(json);
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, n ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}
const entry = (dtype: string, shape: unknown, offs: unknown): string => JSON.stringify({ dtype, shape, data_offsets: offs });
const good = file(`{"a":${entry('F32', [2], [0, 8])},"b":${entry('I32', [1], [8, 12])}}`, 12);

const HOSTILE: [string, Uint8Array, RegExp][] = [
  ['empty file', new Uint8Array(0), /truncated file: 0 bytes/],
  ['5 bytes', new Uint8Array(5), /truncated file: 5 bytes/],
  ['header length past the end', good.slice(0, 30), /header length \d+ runs past the end of the file \(30 bytes\)/],
  ['absurd header length 2^63', file('{}', 0, 1n << 63n), /exceeds the 100000000-byte limit/],
  ['header length 2^64 - 1', file('{}', 0, (1n << 64n) - 1n), /exceeds the 100000000-byte limit/],
  ['header length 0', file('', 8, 0n), /too small/],
  ['invalid JSON', file('{"a": {"dtype": '), /header is not valid JSON/],
  ['not an object', file('["a"]'), /does not start with '\{'/],
  ['invalid UTF-8', file(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /not valid UTF-8/],
  ['offsets past the end', file(`{"a":${entry('F32', [2], [4, 12])}}`, 8), /tensor 'a': data_offsets \[4, 12\] run past the end of the data \(8 bytes\)/],
  ['truncated data', good.slice(0, good.length - 4), /tensor 'b': data_offsets \[8, 12\] run past the end/],
  ['offsets not matching shape', file(`{"a":${entry('F32', [3], [0, 8])}}`, 12), /tensor 'a': data_offsets \[0, 8\] hold 8 bytes, but F32 shape \[3\] needs 12/],
  ['overlap', file(`{"a":${entry('F32', [2], [0, 8])},"b":${entry('F32', [2], [4, 12])}}`, 12), /tensor 'b': .* overlap tensor 'a'/],
  ['gap', file(`{"a":${entry('F32', [1], [0, 4])},"b":${entry('F32', [1], [8, 12])}}`, 12), /tensor 'b': .* leave a gap after byte 4/],
  ['trailing bytes', file(`{"a":${entry('F32', [1], [0, 4])}}`, 8), /cover 4 bytes of data but the file has 8/],
  ['duplicate name', file(`{"a":${entry('F32', [1], [0, 4])},"a":${entry('F32', [1], [4, 8])}}`, 8), /leave a gap|cover/],
  ['unknown dtype', file(`{"a":${entry('Q4', [1], [0, 4])}}`, 4), /tensor 'a': unsupported dtype "Q4"/],
  ['fp8 dtype', file(`{"a":${entry('F8_E4M3', [4], [0, 4])}}`, 4), /tensor 'a': unsupported dtype "F8_E4M3"/],
  ['negative dimension', file(`{"a":${entry('F32', [-1], [0, 4])}}`, 4), /tensor 'a': shape \[-1\] has an invalid dimension -1/],
  ['fractional dimension', file(`{"a":${entry('F32', [1.5], [0, 4])}}`, 4), /invalid dimension 1.5/],
  ['dimension above 2^53', file(`{"a":${entry('F32', [1e300], [0, 4])}}`, 4), /invalid dimension 1e\+300/],
  ['element count overflow', file(`{"a":${entry('F64', [4294967296, 4294967296, 4294967296], [0, 8])}}`, 8), /tensor 'a': shape .* needs more than the 8 bytes/],
  ['shape not an array', file(`{"a":${entry('F32', 4, [0, 4])}}`, 4), /tensor 'a': shape is not an array/],
  ['bad data_offsets', file(`{"a":${entry('F32', [1], [0])}}`, 4), /tensor 'a': data_offsets \[0\] is not a pair/],
  ['reversed data_offsets', file(`{"a":${entry('F32', [0], [4, 0])}}`, 4), /ends before it begins/],
  ['entry not an object', file('{"a":3}'), /tensor 'a': entry is not an object/],
  ['metadata not strings', file('{"__metadata__":{"k":1}}'), /__metadata__ entry 'k' is not a string/],
];

for (const [what, bytes, re] of HOSTILE) {
  test(`hostile file: ${what}`, () => {
    assert.throws(() => decodeSafetensors(bytes, 'bad.safetensors'), (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
      assert.match(e.message, /^safetensors bad\.safetensors: /);
      assert.match(e.message, re);
      return true;
    });
  });
}

test('hostile file: the good base file itself decodes', () => {
  const { tensors } = decodeSafetensors(good);
  assert.deepEqual([...tensors.keys()], ['a', 'b']);
  assert.equal(readSafetensorsHeader(good).dataStart, good.length - 12);
});

test('values that do not fit are refused: I64/U64/U32 beyond int32, F64 beyond float32', () => {
  const i64 = new Uint8Array(16);
  new DataView(i64.buffer).setBigInt64(8, 2147483648n, true);
  assert.throws(() => decodeSafetensors(file(`{"a":${entry('I64', [2], [0, 16])}}`, i64), 'x.st'), /x\.st: tensor 'a': I64 value 2147483648 at flat index 1 does not fit in int32/);
  const neg = new Uint8Array(8);
  new DataView(neg.buffer).setBigInt64(0, -2147483649n, true);
  assert.throws(() => decodeSafetensors(file(`{"a":${entry('I64', [1], [0, 8])}}`, neg)), /I64 value -2147483649 .* does not fit/);
  const u64 = new Uint8Array(8).fill(0xff);
  assert.throws(() => decodeSafetensors(file(`{"a":${entry('U64', [1], [0, 8])}}`, u64)), /U64 value 18446744073709551615/);
  const u32 = new Uint8Array([0, 0, 0, 0x80]);
  assert.throws(() => decodeSafetensors(file(`{"a":${entry('U32', [1], [0, 4])}}`, u32)), /U32 value 2147483648/);
  const f64 = new Uint8Array(8);
  new DataView(f64.buffer).setFloat64(0, 1e39, true);
  assert.throws(() => decodeSafetensors(file(`{"a":${entry('F64', [1], [0, 8])}}`, f64)), /F64 value 1e\+39 at flat index 0 overflows float32/);
  // In range, negative I64 is fine.
  new DataView(neg.buffer).setBigInt64(0, -5n, true);
  assert.deepEqual(decodeSafetensors(file(`{"a":${entry('I64', [1], [0, 8])}}`, neg)).tensors.get('a')!.toArray(), [-5]);
});

test('loadSafetensors names the path of a missing or corrupt file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'genlab-st-'));
  try {
    const path = join(dir, 'bad.safetensors');
    assert.throws(() => loadSafetensors(path), new RegExp(`safetensors ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read`));
    writeFileSync(path, good.slice(0, 20));
    assert.throws(() => loadSafetensors(path), /bad\.safetensors: header length \d+ runs past the end/);
    assert.ok(existsSync(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
