// Builds the native addon native/build/genlab.node with a direct g++ call (no
// node-gyp: it would download Node's headers). Headers come from GENLAB_NODE_INCLUDE,
// npm's `nodedir` config, or the running node's prefix (<prefix>/include/node).
// Never -march=native: the GEMM picks AVX-512 / AVX2 / scalar kernels at run time,
// and elementwise loops get AVX-512 / AVX2 clones (target_clones). -fno-trapping-math
// lets the vectorizer turn the NaN/Inf selects in native/fmath.h into blends.
// `--optional` (used by `npm install`): a failed build prints one line and exits 0,
// leaving the wasm/js backends in charge. CXX overrides the compiler.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'native');
const OUT = join(SRC, 'build');
const SOURCES = ['addon.cpp', 'gemm.cpp', 'kernels.cpp', 'pool.cpp'];
const optional = process.argv.includes('--optional');
const verbose = process.argv.includes('--verbose');

function nodeInclude() {
  const candidates = [
    process.env.GENLAB_NODE_INCLUDE,
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  const found = candidates.find((d) => existsSync(join(d, 'node_api.h')));
  if (!found) throw new Error(`node_api.h not found (looked in ${candidates.join(', ')}; set GENLAB_NODE_INCLUDE)`);
  return found;
}

function run(cmd, args) {
  return new Promise((res, rej) => {
    if (verbose) console.log([cmd, ...args].join(' '));
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', (e) => rej(new Error(`${cmd}: ${e.message}`)));
    p.on('close', (code) => {
      if (err && (verbose || code !== 0)) process.stderr.write(err);
      code === 0 ? res() : rej(new Error(`${cmd} exited with ${code}`));
    });
  });
}

async function build() {
  if (process.platform === 'win32') throw new Error('the direct g++ build supports Linux and macOS only');
  const cxx = process.env.CXX || 'g++';
  const inc = nodeInclude();
  mkdirSync(OUT, { recursive: true });
  const flags = ['-O3', '-std=c++17', '-fPIC', '-fno-math-errno', '-fno-trapping-math', '-fvisibility=hidden', '-Wall', '-pthread', `-I${inc}`];
  // Compile objects in parallel, then link.
  const jobs = Math.max(1, Math.min(SOURCES.length, cpus().length));
  const queue = [...SOURCES];
  const objs = SOURCES.map((s) => join(OUT, s.replace(/\.cpp$/, '.o')));
  await Promise.all(Array.from({ length: jobs }, async () => {
    for (let s = queue.shift(); s; s = queue.shift()) {
      await run(cxx, [...flags, '-c', join(SRC, s), '-o', join(OUT, s.replace(/\.cpp$/, '.o'))]);
    }
  }));
  const link = process.platform === 'darwin' ? ['-bundle', '-undefined', 'dynamic_lookup'] : ['-shared'];
  // Link to a temporary name and rename, so a running process never sees half a file.
  const tmp = join(OUT, `genlab.node.${process.pid}`);
  await run(cxx, [...link, '-pthread', ...objs, '-o', tmp]);
  renameSync(tmp, join(OUT, 'genlab.node'));
}

const t0 = Date.now();
build().then(
  () => console.log(`genlab: native addon built (native/build/genlab.node, ${((Date.now() - t0) / 1000).toFixed(1)} s)`),
  (e) => {
    if (optional) {
      console.log(`genlab: native addon not built (${e.message.split('\n')[0]}); the wasm/js backends will be used`);
      process.exit(0);
    }
    console.error(`genlab: native addon build failed: ${e.message}`);
    process.exit(1);
  },
);
