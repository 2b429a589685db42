/**
 * Backend selection: native (the C++ addon), else wasm, else js, with one notice on
 * stderr when falling back. `GENLAB_BACKEND=native|wasm|js` forces one. Backends may
 * override only some kernels; the rest come from `js`, the reference.
 */
import type { Backend } from './backend.js';
import { jsBackend } from './js.js';
import { loadNative } from './native.js';
import { loadWasm } from './wasm.js';

export type BackendName = Backend['name'];

const cache = new Map<BackendName, Backend | null>();

function load(name: BackendName): Backend | null {
  if (!cache.has(name)) {
    let b: Backend | null = null;
    let why = '';
    try {
      if (name === 'js') b = jsBackend;
      else if (name === 'native') b = loadNative();
      else if (name === 'wasm') b = loadWasm();
    } catch (e) {
      why = e instanceof Error ? e.message : String(e);
      b = null;
    }
    if (b === null && why) loadErrors.set(name, why);
    cache.set(name, b);
  }
  return cache.get(name) ?? null;
}

const loadErrors = new Map<BackendName, string>();

/** Whether a backend can be used on this machine. */
export function hasBackend(name: BackendName): boolean {
  return load(name) !== null;
}

/** Why a backend could not be loaded, if it could not. */
export function backendError(name: BackendName): string | undefined {
  return loadErrors.get(name);
}

function pickDefault(): Backend {
  const forced = process.env.GENLAB_BACKEND;
  if (forced) {
    if (forced !== 'native' && forced !== 'wasm' && forced !== 'js') {
      throw new Error(`GENLAB_BACKEND=${forced} is not a backend; use native, wasm or js`);
    }
    const b = load(forced);
    if (!b) throw new Error(`GENLAB_BACKEND=${forced}: backend unavailable (${loadErrors.get(forced) ?? 'not built'})`);
    return b;
  }
  for (const name of ['native', 'wasm'] as const) {
    const b = load(name);
    if (b) return b;
  }
  process.stderr.write(
    `genlab: native and wasm backends unavailable (${loadErrors.get('native') ?? 'not built'}); using the slow js backend\n`,
  );
  return jsBackend;
}

let current: Backend | null = null;

/** The backend ops run on now. */
export function backend(): Backend {
  if (current === null) current = pickDefault();
  return current;
}

/** Switch backend (tests run the op suite on each). Throws if it is unavailable. */
export function setBackend(name: BackendName): void {
  const b = load(name);
  if (!b) throw new Error(`backend ${name} is unavailable (${loadErrors.get(name) ?? 'not built'})`);
  current = b;
}

/** Run fn with a backend, then restore the previous one. */
export function withBackend<T>(name: BackendName, fn: () => T): T {
  const prev = backend();
  setBackend(name);
  try {
    return fn();
  } finally {
    current = prev;
  }
}

export type { Backend };
