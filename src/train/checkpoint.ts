/**
 * Checkpoint folders, written atomically. A checkpoint is a folder:
 *   model.safetensors      weights (PyTorch state_dict names and layouts, loadable there)
 *   optimizer.safetensors  optimizer tensors (moments, EMA shadows, ...)
 *   optimizer.json         optimizer JSON state (step counts, hyper-parameters, ...)
 *   rng.json               the generator's state
 *   checkpoint.json        manifest, written last: format version, step, resolved config,
 *                          timestamps, extra, and the size and sha256 of every file
 *
 * Atomic replacement: everything is written into the sibling `<dir>.tmp-<pid>`, each file
 * and the folder fsynced; then `<dir>` (if any) is renamed to `<dir>.old`, the new folder
 * renamed to `<dir>`, and `<dir>.old` deleted, fsyncing the parent after each rename.
 * A crash at any point leaves either `<dir>` or `<dir>.old` complete, and `loadCheckpoint`
 * falls back to `<dir>.old` when `<dir>` is missing. The manifest's hashes catch files
 * altered or truncated afterwards. (The same rename protocol as
 * https://lwn.net/Articles/457667/ on ensuring data reaches disk.)
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import type { RngState } from '../engine/rng.js';
import { encodeSafetensors, decodeSafetensors, writeFileSynced } from '../io/safetensors.js';
import type { TensorMap } from '../io/safetensors.js';

export const CHECKPOINT_VERSION = 1;

/** A missing, incomplete or corrupt checkpoint, or one that cannot be written safely. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Optimizer state as JSON plus named tensors (an `OptimizerStateDict`, or a trainer's bundle of several). */
export interface CheckpointOptimizerState {
  state: unknown;
  tensors: TensorMap;
}

/** What a checkpoint holds. */
export interface CheckpointState {
  /** Model weights by state_dict name. */
  weights: TensorMap;
  /** Optimizer state, or an object with `stateDict()` (an `Optimizer`). */
  optimizer: CheckpointOptimizerState | { stateDict(): CheckpointOptimizerState };
  /** The generator (or its state) to resume the random stream from. */
  rng: Rng | RngState;
  /** Number of training steps done. */
  step: number;
  /** The resolved run configuration (JSON). */
  config: Record<string, unknown>;
  /** Anything else JSON to restore (data order, best metric, ...). */
  extra?: Record<string, unknown>;
}

/** A loaded checkpoint. */
export interface LoadedCheckpoint {
  /** The folder actually read (`<dir>.old` when recovered). */
  path: string;
  /** True when `<dir>` was missing and the previous checkpoint `<dir>.old` was read. */
  recovered: boolean;
  weights: Map<string, Tensor>;
  optimizer: { state: unknown; tensors: Map<string, Tensor> };
  rng: RngState;
  step: number;
  config: Record<string, unknown>;
  extra: Record<string, unknown>;
  /** ISO times: `savedAt` (this save) and `firstSavedAt` (first save into this folder). */
  timestamps: { savedAt: string; firstSavedAt: string };
  version: number;
}

/** Stages of `saveCheckpoint`, reported to `onPhase` (for logging, and for crash tests). */
export type CheckpointPhase = 'written' | 'old-moved' | 'renamed' | 'done';

export interface SaveCheckpointOptions {
  /** Called after each stage; an exception thrown here aborts the save at that point. */
  onPhase?: (phase: CheckpointPhase) => void;
}

interface Manifest {
  format: 'genlab-checkpoint';
  version: number;
  step: number;
  config: Record<string, unknown>;
  extra: Record<string, unknown>;
  timestamps: { savedAt: string; firstSavedAt: string };
  files: Record<string, { bytes: number; sha256: string }>;
}

const FILES = ['model.safetensors', 'optimizer.safetensors', 'optimizer.json', 'rng.json'] as const;

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** fsync a folder so renames and new entries in it are durable (not supported everywhere). */
function fsyncDir(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return; // Windows cannot open folders; there renames are durable on their own.
  }
  try {
    fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EPERM' && code !== 'EISDIR' && code !== 'EBADF') throw e;
  } finally {
    closeSync(fd);
  }
}

function jsonText(what: string, v: unknown): string {
  const text = JSON.stringify(v, (key, val: unknown) => {
    if (typeof val === 'number' && !Number.isFinite(val)) {
      throw new CheckpointError(`saveCheckpoint: ${what} holds ${val} at key '${key}', which JSON cannot represent`);
    }
    return val;
  });
  return text === undefined ? 'null' : text;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Save a checkpoint folder atomically (see the file header). Synchronous, so a training
 * loop can call it between steps and on Ctrl-C.
 * @example
 * saveCheckpoint('runs/vae/checkpoint', { weights: model.stateDict(), optimizer: opt, rng, step, config });
 */
export function saveCheckpoint(dir: string, s: CheckpointState, opts: SaveCheckpointOptions = {}): void {
  const target = resolve(dir);
  const parent = dirname(target);
  const tmp = `${target}.tmp-${process.pid}`;
  const old = `${target}.old`;
  if (!Number.isInteger(s.step) || s.step < 0) throw new CheckpointError(`saveCheckpoint ${target}: step must be a non-negative integer, got ${s.step}`);
  for (const p of [target, old]) {
    if (existsSync(p) && !existsSync(join(p, 'checkpoint.json'))) {
      throw new CheckpointError(`saveCheckpoint: ${p} exists and is not a genlab checkpoint (no checkpoint.json); refusing to replace it`);
    }
  }
  // Serialise everything before touching the disk: a bad tensor or NaN in the config fails here.
  const opt = 'stateDict' in s.optimizer ? s.optimizer.stateDict() : s.optimizer;
  const rngState = s.rng instanceof Rng ? s.rng.getState() : s.rng;
  const files: Record<(typeof FILES)[number], Uint8Array> = {
    'model.safetensors': encodeSafetensors(s.weights, { format: 'pt' }),
    'optimizer.safetensors': encodeSafetensors(opt.tensors),
    'optimizer.json': Buffer.from(jsonText('the optimizer state', opt.state), 'utf8'),
    'rng.json': Buffer.from(jsonText('the rng state', { format: 'genlab-rng', version: 1, state: rngState }), 'utf8'),
  };
  const now = new Date().toISOString();
  let firstSavedAt = now;
  for (const p of [target, old]) {
    try {
      const prev = JSON.parse(readFileSync(join(p, 'checkpoint.json'), 'utf8')) as Partial<Manifest>;
      if (typeof prev.timestamps?.firstSavedAt === 'string') {
        firstSavedAt = prev.timestamps.firstSavedAt;
        break;
      }
    } catch {
      // No previous checkpoint (or an unreadable one): this is the first save.
    }
  }
  const manifest: Manifest = {
    format: 'genlab-checkpoint',
    version: CHECKPOINT_VERSION,
    step: s.step,
    config: s.config,
    extra: s.extra ?? {},
    timestamps: { savedAt: now, firstSavedAt },
    files: Object.fromEntries(FILES.map((f) => [f, { bytes: files[f].length, sha256: sha256(files[f]) }])),
  };
  const manifestText = jsonText('the config or extra', manifest);

  mkdirSync(parent, { recursive: true });
  // Temporary folders of crashed earlier saves (their process is gone) are garbage.
  const prefix = `${basename(target)}.tmp-`;
  for (const name of readdirSync(parent)) {
    const pid = Number(name.slice(prefix.length));
    if (name.startsWith(prefix) && Number.isInteger(pid) && pid > 0 && (pid === process.pid || !isAlive(pid))) {
      rmSync(join(parent, name), { recursive: true, force: true });
    }
  }
  let renamed = false;
  try {
    mkdirSync(tmp);
    for (const f of FILES) writeFileSynced(join(tmp, f), files[f]);
    writeFileSynced(join(tmp, 'checkpoint.json'), manifestText);
    fsyncDir(tmp);
    opts.onPhase?.('written');
    if (existsSync(target)) {
      // `target` is complete (it only ever appears by renaming a complete folder), so a
      // leftover `.old` is stale.
      rmSync(old, { recursive: true, force: true });
      renameSync(target, old);
      fsyncDir(parent);
      opts.onPhase?.('old-moved');
    }
    renameSync(tmp, target);
    renamed = true;
    fsyncDir(parent);
    opts.onPhase?.('renamed');
    rmSync(old, { recursive: true, force: true });
    fsyncDir(parent);
    opts.onPhase?.('done');
  } catch (e) {
    if (!renamed) rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

function isRngState(v: unknown): v is RngState {
  const s = (v as RngState | null)?.s;
  return Array.isArray(s) && s.length === 4 && s.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32);
}

/**
 * Load a checkpoint folder, checking every file against the manifest. When `dir` is
 * missing but `<dir>.old` exists (a crash during the last save), loads that instead and
 * sets `recovered`. Errors name the folder and the missing or corrupt file.
 * @example
 * const ck = loadCheckpoint('runs/vae/checkpoint');
 * model.loadStateDict(ck.weights); opt.loadStateDict(ck.optimizer as OptimizerStateDict); rng.setState(ck.rng);
 */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const target = resolve(dir);
  let path = target;
  let recovered = false;
  if (!existsSync(target)) {
    if (!existsSync(`${target}.old`)) throw new CheckpointError(`loadCheckpoint: no checkpoint at ${target} (and no ${basename(target)}.old to recover)`);
    path = `${target}.old`;
    recovered = true;
  }
  const fail = (msg: string): never => {
    throw new CheckpointError(`checkpoint ${path}: ${msg}`);
  };
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(path, name));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return fail(code === 'ENOENT' ? `${name} is missing` : `cannot read ${name} (${code ?? String(e)})`);
    }
  };
  const parse = (name: string, bytes: Uint8Array): unknown => {
    try {
      return JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch (e) {
      return fail(`${name} is corrupt (invalid JSON: ${e instanceof Error ? e.message : String(e)})`);
    }
  };
  const mBytes = read('checkpoint.json');
  const m = parse('checkpoint.json', mBytes) as Partial<Manifest> | null;
  if (!m || m.format !== 'genlab-checkpoint') fail('checkpoint.json is not a genlab checkpoint manifest');
  const man = m as Manifest;
  if (typeof man.version !== 'number' || man.version > CHECKPOINT_VERSION) {
    fail(`checkpoint.json has format version ${String(man.version)}; this genlab reads up to ${CHECKPOINT_VERSION}`);
  }
  if (!Number.isInteger(man.step) || man.step < 0) fail(`checkpoint.json has an invalid step ${String(man.step)}`);
  if (typeof man.files !== 'object' || man.files === null) fail('checkpoint.json lists no files');
  const bytes = {} as Record<(typeof FILES)[number], Buffer>;
  for (const f of FILES) {
    const want = man.files[f];
    if (!want) fail(`checkpoint.json does not list ${f}`);
    const b = read(f);
    if (b.length !== want.bytes) fail(`${f} is corrupt: ${b.length} bytes, the manifest says ${want.bytes} (truncated or altered)`);
    const h = sha256(b);
    if (h !== want.sha256) fail(`${f} is corrupt: sha256 ${h} does not match the manifest's ${want.sha256}`);
    bytes[f] = b;
  }
  // The hashes matched, so a decoding error here means the writer itself was wrong;
  // decodeSafetensors names the file either way.
  const weights = decodeSafetensors(bytes['model.safetensors'], join(path, 'model.safetensors')).tensors;
  const optTensors = decodeSafetensors(bytes['optimizer.safetensors'], join(path, 'optimizer.safetensors')).tensors;
  const optState = parse('optimizer.json', bytes['optimizer.json']);
  const rngDoc = parse('rng.json', bytes['rng.json']) as { format?: string; state?: unknown } | null;
  if (rngDoc?.format !== 'genlab-rng' || !isRngState(rngDoc.state)) fail('rng.json does not hold a generator state');
  return {
    path,
    recovered,
    weights,
    optimizer: { state: optState, tensors: optTensors },
    rng: (rngDoc as { state: RngState }).state,
    step: man.step,
    config: man.config ?? {},
    extra: man.extra ?? {},
    timestamps: man.timestamps,
    version: man.version,
  };
}
