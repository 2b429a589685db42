/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON
 *   {"__metadata__": {string: string}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]}}
 * padded with spaces to a multiple of 8 bytes, then the raw little-endian row-major data,
 * offsets relative to the start of the data. Writing follows the reference
 * implementation byte for byte (tensors sorted by dtype, widest first, then by name;
 * compact JSON with `__metadata__` first), so files equal those of `safetensors.torch`.
 *
 * genlab tensors are float32 or int32: F32 and I32 are written and read as they are;
 * F64/F16/BF16 are read as float32 and I64/U64/U32/I16/U16/I8/U8/BOOL as int32, with an
 * error for a value that does not fit. Reading treats the file as hostile: every size,
 * offset and element count is checked against the actual byte length, with overflow
 * guards, before anything of a claimed size is allocated.
 */
import { readFileSync, openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync } from 'node:fs';
import { Tensor } from '../engine/tensor.js';

/** Element types of the format that genlab reads. */
export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** Bytes per element, and the rank of each dtype in the reference ordering (higher first). */
const DTYPES: Record<SafetensorsDType, { size: number; rank: number }> = {
  BOOL: { size: 1, rank: 0 }, U8: { size: 1, rank: 1 }, I8: { size: 1, rank: 2 },
  I16: { size: 2, rank: 5 }, U16: { size: 2, rank: 6 }, F16: { size: 2, rank: 7 }, BF16: { size: 2, rank: 8 },
  I32: { size: 4, rank: 9 }, U32: { size: 4, rank: 10 }, F32: { size: 4, rank: 11 },
  F64: { size: 8, rank: 12 }, I64: { size: 8, rank: 13 }, U64: { size: 8, rank: 14 },
};

/** Headers above this are refused, as the reference implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** A malformed or unsupported safetensors file; the message names the file and tensor. */
export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** Tensors by name: a Map (keeps insertion order) or a plain record. */
export type TensorMap = Map<string, Tensor> | Record<string, Tensor>;

/** One tensor's entry in a validated header. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range in the data section. */
  begin: number;
  end: number;
}

/** A validated header: entries in data order, and the metadata (null when absent). */
export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string> | null;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/** A decoded file. `dtypes` gives each tensor's dtype in the file (before conversion). */
export interface SafetensorsContent {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string> | null;
  dtypes: Map<string, SafetensorsDType>;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function entriesOf(tensors: TensorMap): [string, Tensor][] {
  return tensors instanceof Map ? [...tensors] : Object.entries(tensors);
}

/** Reverse the bytes of each `size`-byte element (big-endian hosts only). */
function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/**
 * Serialise tensors (float32 as F32, int32 as I32) and optional string metadata.
 * @example
 * const bytes = encodeSafetensors({ 'fc.weight': w, 'fc.bias': b }, { format: 'pt' });
 */
export function encodeSafetensors(tensors: TensorMap, metadata?: Record<string, string>): Uint8Array {
  const items = entriesOf(tensors).map(([name, t]) => {
    if (typeof name !== 'string' || name === '__metadata__') throw new SafetensorsError(`encodeSafetensors: invalid tensor name '${String(name)}'`);
    if (!(t instanceof Tensor)) throw new SafetensorsError(`encodeSafetensors: '${name}' is not a Tensor`);
    const dtype: SafetensorsDType = t.dtype === 'int32' ? 'I32' : 'F32';
    return { name, t, dtype };
  });
  // The reference order: dtype rank descending, then name (byte order, as Rust's str).
  const byteCmp = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  items.sort((a, b) => DTYPES[b.dtype].rank - DTYPES[a.dtype].rank || byteCmp(a.name, b.name));
  // The JSON is assembled by hand: a JS object would move integer-like names ("0", "12")
  // to the front, changing the reference key order.
  const fields: string[] = [];
  if (metadata !== undefined) {
    const m: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`encodeSafetensors: metadata '${k}' must be a string, got ${typeof v}`);
      m.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    fields.push(`"__metadata__":{${m.join(',')}}`);
  }
  let offset = 0;
  for (const it of items) {
    const n = it.t.size * 4;
    fields.push(`${JSON.stringify(it.name)}:{"dtype":"${it.dtype}","shape":[${it.t.shape.join(',')}],"data_offsets":[${offset},${offset + n}]}`);
    offset += n;
  }
  let json = Buffer.from(`{${fields.join(',')}}`, 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const it of items) {
    const v = it.t.values();
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    out.set(bytes, pos);
    if (!LITTLE_ENDIAN) swapBytes(out.subarray(pos, pos + bytes.length), 4);
    pos += bytes.length;
  }
  return out;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parse and validate the header of a safetensors file held in `bytes`. `source` (a
 * path) is put in error messages.
 */
export function readSafetensorsHeader(bytes: Uint8Array, source = '<bytes>'): SafetensorsHeader {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`safetensors ${source}: ${msg}`);
  };
  if (bytes.length < 8) fail(`truncated file: ${bytes.length} bytes, the 8-byte header length is missing`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  const n = Number(n64);
  if (8 + n > bytes.length) fail(`header length ${n} runs past the end of the file (${bytes.length} bytes): truncated`);
  if (n < 2) fail(`header length ${n} is too small to hold a JSON object`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (text[0] !== '{') fail(`header does not start with '{' (got ${JSON.stringify(text.slice(0, 16))})`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('header JSON is not an object');
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  let metadata: Record<string, string> | null = null;
  const entries: SafetensorsEntry[] = [];
  for (const [name, info] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof info !== 'object' || info === null || Array.isArray(info)) fail('__metadata__ is not an object of strings');
      const pairs = Object.entries(info as Record<string, unknown>);
      for (const [k, v] of pairs) if (typeof v !== 'string') fail(`__metadata__ entry '${k}' is not a string`);
      // fromEntries defines own properties, so a key like "__proto__" stays data.
      metadata = Object.fromEntries(pairs) as Record<string, string>;
      continue;
    }
    const where = `tensor '${name}'`;
    if (typeof info !== 'object' || info === null || Array.isArray(info)) return fail(`${where}: entry is not an object`);
    const { dtype, shape, data_offsets: offs } = info as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPES)) {
      return fail(`${where}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPES).join(', ')})`);
    }
    const dt = dtype as SafetensorsDType;
    if (!Array.isArray(shape)) return fail(`${where}: shape is not an array`);
    for (const d of shape) if (!isNonNegInt(d)) fail(`${where}: shape ${JSON.stringify(shape)} has an invalid dimension ${JSON.stringify(d)}`);
    // Element count with an overflow guard: stop as soon as it exceeds what the data could hold.
    const size = DTYPES[dt].size;
    let count = shape.includes(0) ? 0 : 1;
    if (count) {
      for (const d of shape as number[]) {
        count *= d;
        if (count * size > dataLen) {
          fail(`${where}: shape ${JSON.stringify(shape)} of ${dt} needs more than the ${dataLen} bytes of the data section`);
        }
      }
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !isNonNegInt(offs[0]) || !isNonNegInt(offs[1])) {
      return fail(`${where}: data_offsets ${JSON.stringify(offs)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`${where}: data_offsets [${begin}, ${end}] ends before it begins`);
    if (end > dataLen) fail(`${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes): truncated file`);
    if (end - begin !== count * size) {
      fail(`${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dt} shape ${JSON.stringify(shape)} needs ${count * size}`);
    }
    entries.push({ name, dtype: dt, shape: [...(shape as number[])], begin, end });
  }
  // The ranges must tile the data section exactly: no gap, no overlap, nothing after.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.begin < pos) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap tensor '${entries[i - 1].name}' (which ends at ${pos})`);
    if (e.begin > pos) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] leave a gap after byte ${pos}`);
    pos = e.end;
  }
  if (pos !== dataLen) fail(`the tensors cover ${pos} bytes of data but the file has ${dataLen} (trailing bytes or a missing tensor)`);
  return { entries, metadata, dataStart };
}

function float16ToFloat32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Convert one tensor's bytes (an aligned, little-endian copy) to a genlab tensor. */
function toTensor(e: SafetensorsEntry, buf: ArrayBuffer, source: string): Tensor {
  const n = (e.end - e.begin) / DTYPES[e.dtype].size;
  const tooBig = (i: number, v: number | bigint): never => {
    throw new SafetensorsError(`safetensors ${source}: tensor '${e.name}': ${e.dtype} value ${v} at flat index ${i} does not fit in int32`);
  };
  switch (e.dtype) {
    case 'F32':
      return new Tensor(new Float32Array(buf), e.shape);
    case 'I32':
      return new Tensor(new Int32Array(buf), e.shape);
    case 'F64': {
      const src = new Float64Array(buf);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        out[i] = src[i];
        if (!Number.isFinite(out[i]) && Number.isFinite(src[i])) {
          throw new SafetensorsError(`safetensors ${source}: tensor '${e.name}': F64 value ${src[i]} at flat index ${i} overflows float32`);
        }
      }
      return new Tensor(out, e.shape);
    }
    case 'F16': {
      const src = new Uint16Array(buf);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = float16ToFloat32(src[i]);
      return new Tensor(out, e.shape);
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const src = new Uint16Array(buf);
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return new Tensor(new Float32Array(bits.buffer), e.shape);
    }
    case 'I64':
    case 'U64': {
      // Halves (lo, hi) of each 64-bit value; it fits in int32 when hi is the sign of lo.
      const w = new Int32Array(buf);
      const out = new Int32Array(n);
      const unsigned = e.dtype === 'U64';
      for (let i = 0; i < n; i++) {
        const lo = w[2 * i];
        const hi = w[2 * i + 1];
        if (!(hi === 0 && lo >= 0) && !(hi === -1 && lo < 0 && !unsigned)) {
          const big = new DataView(buf).getBigUint64(8 * i, true);
          tooBig(i, unsigned ? big : BigInt.asIntN(64, big));
        }
        out[i] = lo;
      }
      return new Tensor(out, e.shape);
    }
    case 'U32': {
      const src = new Uint32Array(buf);
      for (let i = 0; i < n; i++) if (src[i] > 0x7fffffff) tooBig(i, src[i]);
      return new Tensor(new Int32Array(buf), e.shape);
    }
    case 'I16':
      return new Tensor(Int32Array.from(new Int16Array(buf)), e.shape);
    case 'U16':
      return new Tensor(Int32Array.from(new Uint16Array(buf)), e.shape);
    case 'I8':
      return new Tensor(Int32Array.from(new Int8Array(buf)), e.shape);
    case 'U8':
    case 'BOOL':
      return new Tensor(Int32Array.from(new Uint8Array(buf)), e.shape);
  }
}

/**
 * Decode a whole safetensors file held in memory. Floating dtypes become float32
 * tensors, integer and bool dtypes int32. `source` names the file in errors.
 * @example
 * const { tensors, metadata } = decodeSafetensors(bytes);
 */
export function decodeSafetensors(bytes: Uint8Array, source = '<bytes>'): SafetensorsContent {
  const header = readSafetensorsHeader(bytes, source);
  const tensors = new Map<string, Tensor>();
  const dtypes = new Map<string, SafetensorsDType>();
  // Keep the header's order for names (the file's order), as the Python loader.
  for (const e of header.entries) {
    // An aligned copy of exactly the validated range (Buffer.slice would be a view).
    const copy = new Uint8Array(e.end - e.begin);
    copy.set(bytes.subarray(header.dataStart + e.begin, header.dataStart + e.end));
    if (!LITTLE_ENDIAN) swapBytes(copy, DTYPES[e.dtype].size);
    tensors.set(e.name, toTensor(e, copy.buffer, source));
    dtypes.set(e.name, e.dtype);
  }
  return { tensors, metadata: header.metadata, dtypes };
}

/**
 * Write tensors to `path` as safetensors. The bytes go to a temporary sibling that is
 * fsynced and renamed over `path`, so a crash never leaves a half-written file.
 * @example
 * saveSafetensors('model.safetensors', model.stateDict(), { format: 'pt' });
 */
export function saveSafetensors(path: string, tensors: TensorMap, metadata?: Record<string, string>): void {
  const bytes = encodeSafetensors(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSynced(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing to clean up.
    }
    throw e;
  }
}

/** Write `bytes` to `path` and fsync before closing. */
export function writeFileSynced(path: string, bytes: Uint8Array | string): void {
  const fd = openSync(path, 'w');
  try {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    let done = 0;
    while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Read a safetensors file (see `decodeSafetensors`); errors name the path.
 * @example
 * const { tensors } = loadSafetensors('model.safetensors');
 */
export function loadSafetensors(path: string): SafetensorsContent {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new SafetensorsError(`safetensors ${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
  return decodeSafetensors(bytes, path);
}
