// Builds native/genlab.wasm from the same kernel sources as the native addon, with
// clang's wasm32 target and simd128 (plain mul+add: Node 20 rejects relaxed-simd).
// Freestanding: no libc, no wasi; the module exports its memory and kernels. The
// result is committed so machines without clang still get the wasm backend.
// CLANG / WASM_LD override the tools (default clang, wasm-ld, or their -14 names).
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renameSync, statSync } from 'node:fs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'native');
const SOURCES = ['wasm_api.cpp', 'gemm.cpp', 'kernels.cpp', 'pool.cpp'];

function which(names) {
  for (const n of names) {
    if (n && spawnSync(n, ['--version'], { stdio: 'ignore' }).status === 0) return n;
  }
  return null;
}

const clang = which([process.env.CLANG, 'clang', 'clang-14', 'clang-15', 'clang-16']);
if (!clang) {
  console.error('genlab: clang not found (set CLANG); native/genlab.wasm not rebuilt');
  process.exit(1);
}
const out = join(SRC, 'genlab.wasm');
const tmp = `${out}.${process.pid}`;
const args = [
  '--target=wasm32', '-msimd128', '-O3', '-std=c++17', '-ffreestanding', '-nostdlib', '-fno-builtin',
  '-fno-exceptions', '-fno-rtti', '-fno-threadsafe-statics', '-fvisibility=hidden', '-Wall',
  '-Wl,--no-entry', '-Wl,--export-dynamic', '-Wl,-z,stack-size=262144', '-Wl,--strip-all',
  ...SOURCES.map((s) => join(SRC, s)), '-o', tmp,
];
const wasmLd = which([process.env.WASM_LD, 'wasm-ld', 'wasm-ld-14']);
if (wasmLd && wasmLd !== 'wasm-ld') args.unshift(`-fuse-ld=${wasmLd}`);
const r = spawnSync(clang, args, { stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`genlab: wasm build failed (${clang} exited with ${r.status})`);
  process.exit(1);
}
renameSync(tmp, out);
console.log(`genlab: built native/genlab.wasm (${statSync(out).size} bytes)`);
