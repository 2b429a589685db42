/**
 * Engine benchmark: GEMM GFLOPS of the genlab backends (native, wasm, js) and of
 * PyTorch (a python subprocess timing torch.mm, when /usr/bin/python3 has torch) on
 * the shapes that dominate training: square 256/512/1024, a conv layer's forward,
 * weight-gradient and input-gradient products, an LSTM gate product and an MLP layer;
 * the per-op overhead of small ops (x.add(y) on 16 elements, broadcasting, a scalar
 * operand, exp, sum, with autograd recording); and the fused primitives against their
 * unfused composites (src/engine/ops/fused.ts: LSTM/GRU cell steps, a 2-layer LSTM
 * forward+backward, causal attention forward+backward). Medians over repetitions
 * (the overhead rows: the best of 15 batches, less sensitive to a busy machine).
 *
 *   npm run bench:engine               table
 *   npm run bench:engine -- --json     [{name, backend, gflops} | {name, backend, ns}]
 *   npm run bench:engine -- --crossover   js vs native vs wasm at small sizes (the
 *                                         thresholds in native.ts and wasm.ts)
 *   npm run bench:engine -- --ops      only the per-op overhead and fused rows
 *
 * GENLAB_THREADS sets the native thread count (default: all cores).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Rng, hasBackend, randn, withBackend, backend, backendError, grad, LSTM } from '../src/index.js';
import type { Backend, BackendName, Tensor } from '../src/index.js';
// The unfused composites are not public API: imported from their modules.
import { lstmCellStep, lstmCellStepComposite, gruCellStep, gruCellStepComposite } from '../src/nn/rnn.js';
import { scaledDotProductAttention, scaledDotProductAttentionComposite } from '../src/nn/attention.js';

interface GemmShape {
  name: string;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** js is slow: only shapes with this flag run on it. */
  small: boolean;
}

const SHAPES: GemmShape[] = [
  { name: 'square 256', M: 256, N: 256, K: 256, transA: false, transB: false, small: true },
  { name: 'square 512', M: 512, N: 512, K: 512, transA: false, transB: false, small: true },
  { name: 'square 1024', M: 1024, N: 1024, K: 1024, transA: false, transB: false, small: false },
  { name: 'conv fwd 64x288 . 288x12544', M: 64, N: 12544, K: 288, transA: false, transB: false, small: false },
  { name: 'conv wgrad 64x12544 . (288x12544)^T', M: 64, N: 288, K: 12544, transA: false, transB: true, small: false },
  { name: 'conv igrad (64x288)^T . 64x12544', M: 288, N: 12544, K: 64, transA: true, transB: false, small: false },
  { name: 'lstm 2048x256 . 256x1024', M: 2048, N: 1024, K: 256, transA: false, transB: false, small: false },
  { name: 'mlp 4096x128 . 128x128', M: 4096, N: 128, K: 128, transA: false, transB: false, small: true },
];

type Row =
  | { name: string; backend: string; gflops: number }
  | { name: string; backend: string; ns: number }
  | { name: string; backend: string; us: number; compositeUs: number }
  | { name: string; backend: string; ms: number };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Median seconds of fn over at least `minReps` runs and about `budget` seconds. */
function timeIt(fn: () => void, minReps = 5, budget = 0.5): number {
  fn(); // warm-up (pool threads, packing buffers, JIT)
  const ts: number[] = [];
  const start = process.hrtime.bigint();
  while (ts.length < minReps || (ts.length < 200 && Number(process.hrtime.bigint() - start) / 1e9 < budget)) {
    const t0 = process.hrtime.bigint();
    fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(ts);
}

function operands(s: GemmShape, rng: Rng): { A: Float32Array; B: Float32Array; C: Float32Array } {
  const A = randn([s.M * s.K], rng).values() as Float32Array;
  const B = randn([s.K * s.N], rng).values() as Float32Array;
  return { A, B, C: new Float32Array(s.M * s.N) };
}

function gemmGflops(b: Backend, s: GemmShape, rng: Rng): number {
  const { A, B, C } = operands(s, rng);
  const lda = s.transA ? s.M : s.K;
  const ldb = s.transB ? s.K : s.N;
  const sec = timeIt(() => b.gemm(s.transA, s.transB, s.M, s.N, s.K, A, 0, lda, B, 0, ldb, 0, C, 0, s.N));
  return (2 * s.M * s.N * s.K) / sec / 1e9;
}

function backendObject(name: BackendName): Backend {
  return withBackend(name, () => backend());
}

/** ns per small op through the public API: the best of 15 batches of 20,000 calls. */
function opOverheads(name: BackendName, rng: Rng): [string, number][] {
  return withBackend(name, () => {
    const x = randn([16], rng);
    const y = randn([16], rng);
    const x44 = randn([4, 4], rng);
    const y4 = randn([4], rng);
    const xg = randn([16], rng).requiresGrad_();
    const cases: [string, () => Tensor][] = [
      ['x.add(y), 16 elements', () => x.add(y)],
      ['x.add(y), 16 elements, x requires grad', () => xg.add(y)],
      ['x.add(y), [4,4] + [4]', () => x44.add(y4)],
      ['x.mul(2), 16 elements', () => x.mul(2)],
      ['x.exp(), 16 elements', () => x.exp()],
      ['x.sum(), 16 elements', () => x.sum()],
    ];
    return cases.map(([label, f]): [string, number] => {
      let best = Infinity;
      for (let k = 0; k < 15; k++) {
        const reps = 20000;
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < reps; i++) f();
        best = Math.min(best, Number(process.hrtime.bigint() - t0) / reps);
      }
      return [label, best];
    });
  });
}

/** Microseconds of fused vs composite forward+backward workloads on one backend. */
function fusedVsComposite(name: BackendName, rng: Rng): [string, number, number][] {
  return withBackend(name, () => {
    const rows: [string, number, number][] = [];
    const us = (f: () => void): number => timeIt(f, 3, 0.5) * 1e6;
    {
      const B = 32, H = 128, T = 16;
      const gi = randn([B, 4 * H], rng), h = randn([B, H], rng), c = randn([B, H], rng);
      const w = randn([4 * H, H], rng, 0, 0.05).requiresGrad_(), b = randn([4 * H], rng).requiresGrad_();
      const run = (step: typeof lstmCellStep) => () => {
        let hh = h, cc = c;
        for (let t = 0; t < T; t++) [hh, cc] = step(gi, hh, cc, w, b);
        grad(hh.sum(), [w, b]);
      };
      rows.push([`LSTM cell x${T} steps B=${B} H=${H}, fwd+bwd`, us(run(lstmCellStep)), us(run(lstmCellStepComposite))]);
      const gi3 = randn([B, 3 * H], rng), w3 = randn([3 * H, H], rng, 0, 0.05).requiresGrad_(), b3 = randn([3 * H], rng).requiresGrad_();
      const runG = (step: typeof gruCellStep) => () => {
        let hh = h;
        for (let t = 0; t < T; t++) hh = step(gi3, hh, w3, b3);
        grad(hh.sum(), [w3, b3]);
      };
      rows.push([`GRU cell x${T} steps B=${B} H=${H}, fwd+bwd`, us(runG(gruCellStep)), us(runG(gruCellStepComposite))]);
    }
    {
      const [B, nh, L, d] = [8, 4, 128, 32];
      const q = randn([B, nh, L, d], rng).requiresGrad_(), k = randn([B, nh, L, d], rng).requiresGrad_(), v = randn([B, nh, L, d], rng).requiresGrad_();
      const run = (f: typeof scaledDotProductAttention) => () => {
        const [o] = f(q, k, v, { causal: true });
        grad(o.sum(), [q, k, v]);
      };
      rows.push([`causal attention B=${B} nh=${nh} L=${L} d=${d}, fwd+bwd`, us(run(scaledDotProductAttention)), us(run(scaledDotProductAttentionComposite))]);
    }
    return rows;
  });
}

/** Milliseconds of a 2-layer LSTM forward+backward (the sequence primitive), T=64 B=32 H=256. */
function lstmLayerMs(name: BackendName, rng: Rng): number {
  return withBackend(name, () => {
    const lstm = new LSTM(64, 256, rng, { numLayers: 2 });
    const x = randn([64, 32, 64], rng);
    const params = lstm.parameters();
    return timeIt(() => {
      const [out] = lstm.forward(x);
      grad(out.sum(), params);
    }, 3, 2) * 1e3;
  });
}

const TORCH_SCRIPT = `
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
out = []
for name, M, N, K, tA, tB in json.loads(sys.argv[2]):
    a = torch.randn(K, M).t() if tA else torch.randn(M, K)
    b = torch.randn(N, K).t() if tB else torch.randn(K, N)
    c = torch.empty(M, N)
    torch.mm(a, b, out=c)
    ts = []
    start = time.perf_counter()
    while len(ts) < 5 or (len(ts) < 200 and time.perf_counter() - start < 0.5):
        t = time.perf_counter(); torch.mm(a, b, out=c); ts.append(time.perf_counter() - t)
    ts.sort()
    out.append([name, 2 * M * N * K / ts[len(ts) // 2] / 1e9])
print(json.dumps(out))
`;

/** PyTorch GFLOPS per shape, or null when python3 with torch is unavailable. */
function torchGflops(threads: number, env: Record<string, string>): Map<string, number> | null {
  const py = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const shapes = SHAPES.map((s) => [s.name, s.M, s.N, s.K, s.transA, s.transB]);
  const r = spawnSync(py, ['-c', TORCH_SCRIPT, String(threads), JSON.stringify(shapes)], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 300_000,
  });
  if (r.status !== 0) return null;
  try {
    return new Map(JSON.parse(r.stdout.trim().split('\n').pop() ?? '[]') as [string, number][]);
  } catch {
    return null;
  }
}

// The raw addon, for the crossover sweep only (imported lazily: the benchmark
// otherwise uses the public API).
let rawAddon: import('../src/engine/backends/native.js').NativeAddon | null = null;
function nativeRaw(): import('../src/engine/backends/native.js').NativeAddon {
  if (!rawAddon) throw new Error('native addon not loaded');
  return rawAddon;
}

/** js vs native (raw addon) vs wasm (thresholds off) at small sizes. */
function crossover(): void {
  const rng = new Rng(0);
  const js = backendObject('js');
  const wasm = hasBackend('wasm') ? backendObject('wasm') : null;
  const us = (f: () => void, reps: number): string => ((timeIt(() => { for (let i = 0; i < reps; i++) f(); }, 5, 0.1) / reps) * 1e6).toFixed(2);
  console.log('gemm n^3: microseconds per call, js / native / wasm');
  for (const n of [4, 8, 12, 16, 24, 32, 48]) {
    const s: GemmShape = { name: '', M: n, N: n, K: n, transA: false, transB: false, small: true };
    const { A, B, C } = operands(s, rng);
    const tj = us(() => js.gemm(false, false, n, n, n, A, 0, n, B, 0, n, 0, C, 0, n), 100);
    const tn = rawAddon ? us(() => nativeRaw().gemm(false, false, n, n, n, A, 0, n, B, 0, n, 0, C, 0, n), 100) : '-';
    const tw = wasm ? us(() => wasm.gemm(false, false, n, n, n, A, 0, n, B, 0, n, 0, C, 0, n), 100) : '-';
    console.log(`  ${n}^3 = ${n * n * n}: js ${tj}, native ${tn}, wasm ${tw}`);
  }
  console.log('n elements: microseconds per call (x + y | exp(x)), js / native / wasm');
  const meta = new Int32Array([1, 0, 1, 1]);
  for (const n of [16, 32, 64, 128, 256, 512, 1024]) {
    const a = randn([n], rng).values() as Float32Array;
    const b = randn([n], rng).values() as Float32Array;
    const o = new Float32Array(n);
    meta[1] = n;
    const aj = us(() => js.binary('add', a, 0, [1], b, 0, [1], o, [n]), 1000);
    const an = rawAddon ? us(() => nativeRaw().binary(0, a, 0, b, 0, o, meta), 1000) : '-';
    const aw = wasm ? us(() => wasm.binary('add', a, 0, [1], b, 0, [1], o, [n]), 1000) : '-';
    const ej = us(() => js.unary('exp', a, 0, o, n, 0, 0), 1000);
    const en = rawAddon ? us(() => nativeRaw().unary(2, a, 0, o, n, 0, 0), 1000) : '-';
    const ew = wasm ? us(() => wasm.unary('exp', a, 0, o, n, 0, 0), 1000) : '-';
    console.log(`  n=${n}: add ${aj} / ${an} / ${aw} | exp ${ej} / ${en} / ${ew}`);
  }
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  if (process.argv.includes('--crossover')) {
    if (hasBackend('native')) rawAddon = (await import('../src/engine/backends/native.js')).nativeAddon();
    if (hasBackend('wasm')) {
      // Thresholds off, so the wasm column measures the module at every size.
      const w = await import('../src/engine/backends/wasm.js');
      w.WASM_THRESHOLDS.gemm = 0;
      w.WASM_THRESHOLDS.elementwise = 0;
    }
    crossover();
    return;
  }
  const rows: Row[] = [];
  const log = (r: Row): void => {
    rows.push(r);
    if (!json) {
      const v = 'gflops' in r ? `${r.gflops.toFixed(1)} GFLOPS` : 'ns' in r ? `${r.ns.toFixed(0)} ns`
        : 'us' in r ? `fused ${r.us.toFixed(0)} us, composite ${r.compositeUs.toFixed(0)} us (${(r.compositeUs / r.us).toFixed(2)}x)`
          : `${r.ms.toFixed(0)} ms`;
      console.log(`${r.name.padEnd(56)} ${r.backend.padEnd(8)} ${v}`);
    }
  };
  const rng = new Rng(0);
  const backends = (['native', 'wasm', 'js'] as const).filter((b) => hasBackend(b));
  if (!json) {
    for (const b of ['native', 'wasm'] as const) if (!hasBackend(b)) console.log(`(${b} unavailable: ${backendError(b)})`);
  }
  const opsOnly = process.argv.includes('--ops');
  for (const s of opsOnly ? [] : SHAPES) {
    for (const b of backends) {
      if (b === 'js' && !s.small) continue;
      log({ name: s.name, backend: b, gflops: gemmGflops(backendObject(b), s, rng) });
    }
  }
  for (const [label, threads, env] of opsOnly ? [] : [['torch', 2, {}], ['torch-1t', 1, { OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' }]] as const) {
    const t = torchGflops(threads, env);
    if (!t) {
      if (!json) console.log(`(${label}: /usr/bin/python3 with torch unavailable)`);
      break;
    }
    for (const s of SHAPES) {
      const g = t.get(s.name);
      if (g !== undefined) log({ name: s.name, backend: label, gflops: g });
    }
  }
  for (const b of backends) for (const [label, ns] of opOverheads(b, rng)) log({ name: label, backend: b, ns });
  for (const b of backends) {
    for (const [label, us, compositeUs] of fusedVsComposite(b, rng)) log({ name: label, backend: b, us, compositeUs });
  }
  for (const b of backends) {
    if (b !== 'js') log({ name: '2-layer LSTM T=64 B=32 H=256, fwd+bwd', backend: b, ms: lstmLayerMs(b, rng) });
  }
  if (json) console.log(JSON.stringify(rows));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
