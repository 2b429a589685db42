/**
 * Framework benchmark: the reference models of bench/models.ts trained for a fixed
 * number of steps in genlab and in PyTorch (bench/torch_models.py, /usr/bin/python3),
 * alternating the two in one run, plus sampling throughput (GPT with a key/value
 * cache, DDIM) and TensorFlow.js (pure-JS CPU backend, bench/tfjs/) on dcgan and lstm-lm.
 *
 *   npm run bench                       every case, table
 *   npm run bench -- --quick            fewer steps and thread settings (well under 10 minutes)
 *   npm run bench -- --json             [{model, genlab_ms, torch_ms, ratio, genlab_rss_mb, torch_rss_mb, ...}]
 *   npm run bench -- --models gpt,dcgan select cases (names below)
 *   npm run bench -- --no-tfjs          skip TensorFlow.js
 *   npm run bench -- --json-out F       also write the JSON rows to file F
 *   npm run bench -- --torch-settings openblas1,passive,openblas1+passive   (the PyTorch thread settings tried)
 *   npm run bench -- --tfjs-budget S    seconds of TensorFlow.js per case (default 900; 60 with --quick)
 *   npm run bench -- --profile gpt,dcgan [--steps 3]   where genlab's time goes: wall time per
 *       backend kernel (calls, ms, GEMM GFLOPS), autograd graph size, and a V8 CPU profile
 *       (self time by category, forward/backward/optimizer split), saved as .cpuprofile
 *
 * Method. Every framework runs in its own child process (one per case), so peak memory
 * (VmHWM from /proc/self/status) is that framework's alone, and the children never run
 * at the same time. Per case: warm-up steps in each (~2 s of genlab's: a JS runtime is
 * still compiling during its first steps); then PyTorch is tried under each
 * thread setting (torch.set_num_threads(2) always; OPENBLAS_NUM_THREADS=1 and/or
 * OMP_WAIT_POLICY=PASSIVE, because Debian's torch runs OpenMP and OpenBLAS threads on
 * the same cores) and the fastest setting is kept; then rounds alternate a few genlab
 * steps with as many PyTorch steps, and the table reports medians over all timed steps.
 * Each step re-uses a fixed synthetic batch and re-seeds its noise, so losses must fall:
 * the harness prints first and last loss of each framework and the parameter counts.
 *
 * Internal: `node dist/bench/run.js --worker genlab|tfjs --case NAME` is the child side
 * of the line protocol documented in bench/torch_models.py.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';

interface CaseSpec {
  kind: 'train' | 'sample';
  /** Warm-up calls per framework (and per PyTorch setting). */
  warmup: number;
  /** Calls per PyTorch setting in the setting probe. */
  probe: number;
  /** Calls per framework in one alternating round. */
  perRound: number;
  /**
   * Timed calls per framework: rounds continue until `target`, or stop earlier once
   * there are `min` and genlab's timed calls have taken more than `budgetS` seconds.
   */
  min: number;
  target: number;
  budgetS: number;
}

const train = (o: Partial<CaseSpec> = {}): CaseSpec => ({ kind: 'train', warmup: 3, probe: 3, perRound: 3, min: 15, target: 15, budgetS: Infinity, ...o });
const quickTrain = (o: Partial<CaseSpec> = {}): CaseSpec => train({ warmup: 1, probe: 2, perRound: 2, min: 4, target: 8, budgetS: 20, ...o });

// Warm-up: ~2 s of genlab's steps (PyTorch runs as many). V8 still compiles a JS
// program's hot functions during its first seconds (realnvp-2d's genlab step: ~30 ms
// after 3 steps, ~26 ms after 150), and a training run spends nearly all its time past
// that; a fixed count keeps the printed losses comparable from run to run.
const FULL: Record<string, CaseSpec> = {
  'dcgan': train({ warmup: 30 }),
  'conv-vae': train({ warmup: 60 }),
  'lstm-lm': train({ warmup: 10 }),
  'gpt': train({ warmup: 10 }),
  'realnvp-2d': train({ warmup: 60 }),
  'ddpm-unet': train({ warmup: 8 }),
  'ntm-copy': train({ warmup: 60 }),
  'gpt-sample': train({ kind: 'sample', warmup: 20, probe: 2 }),
  // One run is 50 U-Net forwards at batch 16 (seconds even in PyTorch): 5 runs, after
  // one warm-up run.
  'ddim-sample': train({ kind: 'sample', warmup: 1, probe: 1, perRound: 1, min: 5, target: 5 }),
};

const QUICK: Record<string, CaseSpec> = {
  'dcgan': quickTrain({ warmup: 8 }),
  'conv-vae': quickTrain({ warmup: 15 }),
  'lstm-lm': quickTrain({ warmup: 2, min: 2, perRound: 1 }),
  'gpt': quickTrain({ warmup: 2 }),
  'realnvp-2d': quickTrain({ warmup: 15 }),
  'ddpm-unet': quickTrain({ warmup: 2, min: 2, perRound: 1 }),
  'ntm-copy': quickTrain({ warmup: 15 }),
  'gpt-sample': quickTrain({ kind: 'sample', warmup: 5, probe: 1 }),
  // No warm-up: the first of the 50 forwards of a run warms the JIT.
  'ddim-sample': quickTrain({ kind: 'sample', warmup: 0, probe: 1, perRound: 1, min: 2, target: 2 }),
};

/** PyTorch thread settings tried per case (environment of the child process). */
const TORCH_SETTINGS: Record<string, Record<string, string>> = {
  'passive': { OMP_WAIT_POLICY: 'PASSIVE' },
  'openblas1': { OPENBLAS_NUM_THREADS: '1' },
  'openblas1+passive': { OPENBLAS_NUM_THREADS: '1', OMP_WAIT_POLICY: 'PASSIVE' },
};

/**
 * TensorFlow.js peer cases. A step takes minutes there, so tf.js gets a time budget per
 * case (seconds): one warm-up step, then timed steps while the budget lasts; a step
 * still running when it ends is stopped and reported as a lower bound.
 */
const TFJS_CASES = ['dcgan', 'lstm-lm'];
const TFJS_BUDGET_S = { full: 900, quick: 60 };

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PYTHON = '/usr/bin/python3';

interface Ready { ready: true; nParams: number; items: number; unit: string; [k: string]: unknown }
interface RunReply { ms: number[]; out: (number | null)[] }
interface MemReply { hwmMb: number; rssMb: number }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function memMb(): MemReply {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string): number => Number(/^(\w+):\s+(\d+)/m.exec(status.split('\n').find((l) => l.startsWith(key)) ?? '')?.[2] ?? NaN);
  return { hwmMb: kb('VmHWM:') / 1024, rssMb: kb('VmRSS:') / 1024 };
}

/** Peak RSS of another process (a child about to be stopped), MB. */
function hwmOf(pid: number | undefined): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
    return Number(line?.split(/\s+/)[1]) / 1024;
  } catch {
    return NaN;
  }
}

// ------------------------------------------------------------------ worker side

async function worker(framework: string, name: string): Promise<void> {
  const out = (o: unknown): void => void process.stdout.write(JSON.stringify(o) + '\n');
  let build: (() => { nParams: number; items: number; unit: string; run(): number; lastLoss?: () => unknown }) | undefined;
  let extra: Record<string, unknown> = {};
  if (framework === 'genlab') {
    const { GENLAB_CASES } = await import('./models.js');
    const g = await import('../src/index.js');
    build = GENLAB_CASES[name];
    extra = { backend: g.backend().name };
  } else if (framework === 'tfjs') {
    const { TFJS_CASES: cases, tfjsInfo } = await import('./tfjs/models.js');
    build = cases[name];
    extra = await tfjsInfo();
  }
  if (!build) throw new Error(`no ${framework} case '${name}'`);
  const c = build();
  out({ ready: true, nParams: c.nParams, items: c.items, unit: c.unit, ...extra });
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line) as { cmd: string; n?: number };
    if (cmd.cmd === 'run') {
      const ms: number[] = [];
      const res: (number | null)[] = [];
      for (let i = 0; i < (cmd.n ?? 1); i++) {
        const t0 = process.hrtime.bigint();
        const v = c.run();
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        res.push(Number.isNaN(v) ? null : v);
      }
      out({ ms, out: res });
    } else if (cmd.cmd === 'mem') {
      out(memMb());
    } else if (cmd.cmd === 'kernels') {
      out(await kernelTimes(c, cmd.n ?? 1));
    } else if (cmd.cmd === 'profile') {
      out(await cpuProfile(c, cmd.n ?? 1, (cmd as { path?: string }).path ?? 'genlab.cpuprofile'));
    } else if (cmd.cmd === 'exit') {
      break;
    }
  }
  process.exit(0);
}

// ------------------------------------------------------------------ profiling (worker side)

interface KernelStat { calls: number; ms: number; flops: number }
interface KernelReply { stepMs: number[]; kernels: Record<string, KernelStat>; graph: { nodes: number; ops: Record<string, number> } | null }

/**
 * Time every backend kernel call (the same object every op reaches through backend())
 * for n calls of the case: calls, wall ms and, for GEMM, flops. Nested calls are
 * counted once, in the outermost kernel.
 */
async function kernelTimes(c: { run(): number; lastLoss?: () => unknown }, n: number): Promise<KernelReply> {
  const g = await import('../src/index.js');
  const b = g.backend() as unknown as Record<string, unknown>;
  const stats: Record<string, KernelStat> = {};
  const saved: [string, unknown][] = [];
  let depth = 0;
  for (const key of Object.keys(b)) {
    const f = b[key];
    if (typeof f !== 'function') continue;
    saved.push([key, f]);
    const st: KernelStat = (stats[key] = { calls: 0, ms: 0, flops: 0 });
    b[key] = function (this: unknown, ...args: unknown[]): unknown {
      if (depth > 0) return (f as (...a: unknown[]) => unknown).apply(this, args);
      depth++;
      const t0 = process.hrtime.bigint();
      try {
        return (f as (...a: unknown[]) => unknown).apply(this, args);
      } finally {
        st.ms += Number(process.hrtime.bigint() - t0) / 1e6;
        st.calls++;
        if (key === 'gemm') st.flops += 2 * (args[2] as number) * (args[3] as number) * (args[4] as number);
        depth--;
      }
    };
  }
  const stepMs: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      c.run();
      stepMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    for (const [k, f] of saved) b[k] = f;
  }
  for (const k of Object.keys(stats)) if (stats[k].calls === 0) delete stats[k];
  return { stepMs, kernels: stats, graph: graphOf(c.lastLoss?.()) };
}

/** Autograd nodes reachable from a loss tensor, by op name. */
function graphOf(root: unknown): KernelReply['graph'] {
  type N = { node: { op: string; inputs: N[] } | null };
  if (!root || typeof root !== 'object' || !('node' in root)) return null;
  const seen = new Set<N>();
  const ops: Record<string, number> = {};
  const stack: N[] = [root as N];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t) || !t.node) continue;
    seen.add(t);
    ops[t.node.op] = (ops[t.node.op] ?? 0) + 1;
    for (const i of t.node.inputs) stack.push(i);
  }
  return { nodes: seen.size, ops };
}

/** V8 CPU profile of n calls (after the warm-up), written to `path`. */
async function cpuProfile(c: { run(): number }, n: number, path: string): Promise<{ stepMs: number[]; path: string }> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  await session.post('Profiler.start');
  const stepMs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    c.run();
    stepMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  writeFileSync(path, JSON.stringify(profile));
  return { stepMs, path };
}

// ------------------------------------------------------------------ profiling (report)

interface ProfNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

/** Where a function's self time goes, by the file it lives in. */
function category(f: ProfNode['callFrame']): string {
  const u = f.url;
  if (f.functionName === '(garbage collector)') return 'GC';
  if (f.functionName === '(program)') return 'V8 (program)';
  // Addon functions carry no URL (V8 may name them all after one template, e.g. 'noop'):
  // the kernel timers, not the profile, split them by kernel.
  if (u === '') return 'native addon calls (all kernels; see timers)';
  if (u.includes('/engine/backends/js.')) return 'js kernels (per-element JS loops)';
  if (u.includes('/engine/backends/')) return 'backend glue (native.ts/wasm.ts)';
  if (u.includes('/engine/')) return 'engine JS (op wrappers, autograd, shapes)';
  if (u.includes('/nn/') || u.includes('/optim/')) return 'nn/optim JS';
  if (u.includes('/bench/')) return 'model code (bench/models.ts)';
  return 'other JS (node internals)';
}

function analyseProfile(p: Profile, steps: number): string {
  const byId = new Map<number, ProfNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const ch of n.children ?? []) parent.set(ch, n.id);
  }
  const cat: Record<string, number> = {};
  const phase: Record<string, number> = { forward: 0, backward: 0, optimizer: 0, other: 0 };
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000; // ms until the next sample
    const n = byId.get(p.samples[i])!;
    const f = n.callFrame;
    if (f.functionName === '(idle)' || f.functionName === '(root)') continue;
    total += dt;
    const c = category(f);
    cat[c] = (cat[c] ?? 0) + dt;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? `${f.url.replace(/^.*\/dist\//, '')}:${f.lineNumber + 1}` : '[native]'}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    // Phase: the innermost of backwardImpl / Optimizer.step / the case's step on the stack.
    let ph = 'other';
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)!.callFrame;
      if (cf.functionName === 'backwardImpl') { ph = 'backward'; break; }
      if (cf.functionName === 'step' && cf.url.includes('/optim/')) { ph = 'optimizer'; break; }
      if (cf.url.includes('/bench/models.')) { ph = 'forward'; break; }
    }
    phase[ph] += dt;
  }
  const pct = (x: number): string => `${((100 * x) / total).toFixed(1)}%`;
  const per = (x: number): string => `${(x / steps).toFixed(1)} ms`;
  const lines: string[] = [];
  lines.push(`  sampled main-thread time ${per(total)}/step`);
  lines.push(`  phase: ${Object.entries(phase).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${per(v)} (${pct(v)})`).join(', ')}`);
  lines.push('  self time by category:');
  for (const [k, v] of Object.entries(cat).sort((a, b) => b[1] - a[1])) if (v / total > 0.005) lines.push(`    ${k.padEnd(46)} ${per(v).padStart(10)}  ${pct(v).padStart(6)}`);
  lines.push('  top functions (self time):');
  for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`    ${per(v).padStart(10)}  ${pct(v).padStart(6)}  ${k}`);
  return lines.join('\n');
}

async function profileCase(name: string, steps: number, dir: string): Promise<void> {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  const c = nodeChild('genlab', name);
  try {
    const ready = await c.read<Ready>();
    const w = await c.run(FULL[name]?.kind === 'sample' ? 1 : 2);
    const k = await c.request<KernelReply>({ cmd: 'kernels', n: steps });
    const path = resolve(dir, `${name}.cpuprofile`);
    const pr = await c.request<{ stepMs: number[]; path: string }>({ cmd: 'profile', n: steps, path });
    const stepMs = median(k.stepMs);
    const lines: string[] = [];
    lines.push(`## ${name} (genlab, ${String(ready.backend)}; warm-up ${w.ms.map((x) => x.toFixed(0)).join(', ')} ms; ${steps} steps: median ${stepMs.toFixed(0)} ms with kernel timers, ${median(pr.stepMs).toFixed(0)} ms under the CPU profiler; load ${loadavg()[0].toFixed(1)})`);
    const ks = Object.entries(k.kernels).sort((a, b) => b[1].ms - a[1].ms);
    const kernelMs = ks.reduce((a, [, s]) => a + s.ms, 0) / steps;
    lines.push(`  backend kernels (wall, per step): ${kernelMs.toFixed(1)} ms of ${stepMs.toFixed(1)} ms = ${((100 * kernelMs) / stepMs).toFixed(0)}%; the rest (${(stepMs - kernelMs).toFixed(1)} ms) is JS outside kernels: op wrappers, autograd, allocation, GC`);
    for (const [kname, s] of ks) {
      const gf = s.flops ? `, ${(s.flops / steps / 1e9).toFixed(2)} GFLOP/step at ${(s.flops / (s.ms * 1e6)).toFixed(1)} GFLOPS` : '';
      lines.push(`    ${kname.padEnd(12)} ${(s.ms / steps).toFixed(1).padStart(8)} ms  ${String(Math.round(s.calls / steps)).padStart(7)} calls  ${((1000 * s.ms) / s.calls).toFixed(1).padStart(8)} us/call${gf}`);
    }
    if (k.graph) {
      const top = Object.entries(k.graph.ops).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([o, n]) => `${o} ${n}`).join(', ');
      lines.push(`  autograd graph of one loss: ${k.graph.nodes} nodes (${top})`);
    }
    const prof = JSON.parse(readFileSync(path, 'utf8')) as Profile;
    lines.push(analyseProfile(prof, steps));
    lines.push(`  profile: ${path}`);
    console.log(lines.join('\n'));
  } finally {
    await c.close();
  }
}

// ------------------------------------------------------------------ parent side

class TimeoutError extends Error {
  constructor(label: string) {
    super(`${label}: time budget exhausted`);
  }
}

/** A child process speaking the line protocol. */
class Child {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  #stderr = '';

  constructor(readonly label: string, cmd: string, args: string[], env: Record<string, string> = {}) {
    this.proc = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env } });
    this.proc.stdin.on('error', () => undefined); // a stopped child: reported by read()
    this.proc.stderr.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    });
    this.#lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  async read<T>(timeoutMs = Infinity): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => reject(new TimeoutError(this.label)), Math.max(0, timeoutMs));
    });
    const r = await Promise.race([this.#lines.next(), timeout]).finally(() => clearTimeout(timer));
    if (r.done) throw new Error(`${this.label} exited (code ${this.proc.exitCode}):\n${this.#stderr.trim()}`);
    return JSON.parse(r.value) as T;
  }

  async request<T>(cmd: object, timeoutMs = Infinity): Promise<T> {
    this.proc.stdin.write(JSON.stringify(cmd) + '\n');
    return this.read<T>(timeoutMs);
  }

  run(n: number, timeoutMs = Infinity): Promise<RunReply> {
    return this.request<RunReply>({ cmd: 'run', n }, timeoutMs);
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    if (this.proc.killed) {
      await done;
      return;
    }
    this.proc.stdin.write(JSON.stringify({ cmd: 'exit' }) + '\n');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(t);
  }
}

function nodeChild(framework: 'genlab' | 'tfjs', name: string): Child {
  return new Child(`${framework} ${name}`, process.execPath, [fileURLToPath(import.meta.url), '--worker', framework, '--case', name]);
}

function torchChild(name: string, setting: string): Child {
  return new Child(`torch[${setting}] ${name}`, PYTHON, ['bench/torch_models.py', '--case', name, '--threads', '2'], TORCH_SETTINGS[setting]);
}

export interface Row {
  model: string;
  kind: 'train' | 'sample';
  /** Median ms per step (training) or per sampling run. */
  genlab_ms: number;
  torch_ms: number;
  ratio: number;
  genlab_rss_mb: number;
  torch_rss_mb: number;
  unit: string;
  items: number;
  genlab_per_s: number;
  torch_per_s: number;
  torch_setting: string;
  torch_probe_ms: Record<string, number>;
  params_genlab: number;
  params_torch: number;
  genlab_loss: [number | null, number | null];
  torch_loss: [number | null, number | null];
  timed_steps: number;
  genlab_backend: string;
  /** 1-minute load average at the start and end of the case (the machine is shared). */
  load_1m: [number, number];
  tfjs_ms?: number;
  /** True when tf.js did not finish one step within its budget: tfjs_ms is a lower bound. */
  tfjs_lower_bound?: boolean;
  tfjs_rss_mb?: number;
  tfjs_steps?: number;
  tfjs_params?: number;
  tfjs_loss?: [number | null, number | null];
  error?: string;
}

const log = (s: string): void => void process.stderr.write(s + '\n');

async function benchCase(name: string, spec: CaseSpec, settings: string[]): Promise<Row> {
  const g = nodeChild('genlab', name);
  const torches = settings.map((s) => ({ s, c: torchChild(name, s) }));
  const all = [g, ...torches.map((t) => t.c)];
  const load0 = loadavg()[0];
  try {
    const gr = await g.read<Ready>();
    const trs = await Promise.all(torches.map((t) => t.c.read<Ready>()));
    // 1. Warm-up (first loss of each framework recorded here).
    const gw = await g.run(spec.warmup);
    let tw: RunReply | null = null;
    for (const t of torches) {
      const r = await t.c.run(spec.warmup);
      tw ??= r;
    }
    // 2. Probe the PyTorch thread settings; keep the fastest. A setting whose call takes
    //    over 3x the best median so far is stopped there (under load, spinning OpenMP
    //    threads can make a setting 10-50x slower).
    const probe: Record<string, number> = {};
    let bestMs = Infinity;
    for (const t of torches) {
      const ms: number[] = [];
      try {
        for (let i = 0; i < spec.probe; i++) {
          const r = await t.c.run(1, 3 * bestMs);
          ms.push(r.ms[0]);
          if (r.ms[0] > 3 * bestMs) break;
        }
        probe[t.s] = median(ms);
      } catch (e) {
        if (!(e instanceof TimeoutError)) throw e;
        t.c.proc.kill('SIGKILL');
        probe[t.s] = Infinity;
      }
      bestMs = Math.min(bestMs, probe[t.s]);
    }
    const best = torches.reduce((a, b) => (probe[b.s] < probe[a.s] ? b : a));
    for (const t of torches) if (t !== best) await t.c.close();
    const tc = best.c;
    // 3. Alternating timed rounds (who goes first alternates too).
    const gms: number[] = [];
    const tms: number[] = [];
    let gLast: number | null = null;
    let tLast: number | null = null;
    for (let r = 0; gms.length < spec.target; r++) {
      if (gms.length >= spec.min && gms.reduce((a, b) => a + b, 0) > spec.budgetS * 1000) break;
      const n = Math.min(spec.perRound, spec.target - gms.length);
      const order: [Child, number[], 'g' | 't'][] = [[g, gms, 'g'], [tc, tms, 't']];
      if (r % 2) order.reverse();
      for (const [c, acc, who] of order) {
        const rep = await c.run(n);
        acc.push(...rep.ms);
        if (who === 'g') gLast = rep.out[rep.out.length - 1];
        else tLast = rep.out[rep.out.length - 1];
      }
    }
    const gm = await g.request<MemReply>({ cmd: 'mem' });
    const tm = await tc.request<MemReply>({ cmd: 'mem' });
    const genlab_ms = median(gms);
    const torch_ms = median(tms);
    const tr = trs[torches.indexOf(best)];
    return {
      model: name, kind: spec.kind, genlab_ms, torch_ms, ratio: genlab_ms / torch_ms,
      genlab_rss_mb: gm.hwmMb, torch_rss_mb: tm.hwmMb, unit: gr.unit, items: gr.items,
      genlab_per_s: (gr.items * 1000) / genlab_ms, torch_per_s: (tr.items * 1000) / torch_ms,
      torch_setting: best.s, torch_probe_ms: probe, params_genlab: gr.nParams, params_torch: tr.nParams,
      genlab_loss: [gw.out[0], gLast], torch_loss: [tw!.out[0], tLast], timed_steps: gms.length,
      genlab_backend: String(gr.backend ?? '?'), load_1m: [load0, loadavg()[0]],
    };
  } finally {
    for (const c of all) await c.close().catch(() => undefined);
  }
}

interface TfjsResult { ms: number; steps: number; lowerBound: boolean; rss: number; params: number; loss: [number | null, number | null]; info: string }

async function benchTfjs(name: string, budgetS: number): Promise<TfjsResult> {
  const c = nodeChild('tfjs', name);
  const t0 = Date.now();
  const left = (): number => budgetS * 1000 - (Date.now() - t0);
  try {
    const ready = await c.read<Ready>();
    const info = `tfjs ${String(ready.version)} backend ${String(ready.backend)}`;
    const ms: number[] = [];
    const out: (number | null)[] = [];
    let lowerBound = false;
    let hwm = NaN;
    while (left() > 0) {
      const s0 = Date.now();
      try {
        const r = await c.run(1, left());
        ms.push(r.ms[0]);
        out.push(r.out[0]);
      } catch (e) {
        if (!(e instanceof TimeoutError)) throw e;
        if (ms.length === 0) {
          ms.push(Date.now() - s0);
          lowerBound = true;
        }
        hwm = hwmOf(c.proc.pid);
        c.proc.kill('SIGKILL');
        break;
      }
    }
    const m = c.proc.killed ? { hwmMb: hwm } : await c.request<MemReply>({ cmd: 'mem' });
    // The first step is the warm-up; it stands for the step time only when it is all there is.
    const timed = ms.length > 1 ? ms.slice(1) : ms;
    return { ms: median(timed), steps: timed.length, lowerBound, rss: m.hwmMb, params: ready.nParams, loss: [out[0] ?? null, out[out.length - 1] ?? null], info };
  } finally {
    await c.close();
  }
}

function fmt(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '-';
  return x >= 100 ? x.toFixed(0) : x.toFixed(digits);
}

function lossCheck(r: Row): string {
  const ok = (l: [number | null, number | null]): string => {
    const [a, b] = l;
    if (a === null || b === null) return 'n/a';
    if (!Number.isFinite(a) || !Number.isFinite(b)) return 'NOT FINITE';
    return `${a.toFixed(3)}->${b.toFixed(3)}${b < a ? '' : ' (no fall)'}`;
  };
  return `genlab ${ok(r.genlab_loss)}, torch ${ok(r.torch_loss)}`;
}

function table(rows: Row[]): string {
  const lines: string[] = [];
  const head = ['model', 'genlab ms', 'torch ms', 'genlab/torch', 'genlab /s', 'torch /s', 'genlab MB', 'torch MB', 'torch setting', 'params g/t'];
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`| ${head.map(() => '---').join(' | ')} |`);
  for (const r of rows) {
    if (r.error) {
      lines.push(`| ${r.model} | error: ${r.error.split('\n')[0]} |`);
      continue;
    }
    lines.push(`| ${[
      r.model, fmt(r.genlab_ms), fmt(r.torch_ms), r.ratio.toFixed(2),
      `${fmt(r.genlab_per_s)} ${r.unit}`, `${fmt(r.torch_per_s)} ${r.unit}`,
      fmt(r.genlab_rss_mb, 0), fmt(r.torch_rss_mb, 0), r.torch_setting,
      r.params_genlab === r.params_torch ? `${r.params_genlab}` : `${r.params_genlab}/${r.params_torch} MISMATCH`,
    ].join(' | ')} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (f: string): boolean => argv.includes(f);
  const opt = (f: string): string | undefined => {
    const i = argv.indexOf(f);
    return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(f + '='))?.slice(f.length + 1);
  };
  if (flag('--worker')) return worker(opt('--worker')!, opt('--case')!);
  if (flag('--profile')) {
    const which = opt('--profile')!.split(',');
    for (const n of which) if (!FULL[n]) throw new Error(`unknown model '${n}'`);
    for (const n of which) await profileCase(n, Number(opt('--steps') ?? 3), opt('--profile-dir') ?? '/tmp/genlab-bench-prof');
    return;
  }
  const quick = flag('--quick');
  const specs = quick ? QUICK : FULL;
  const names = opt('--models')?.split(',').map((s) => s.trim()).filter(Boolean) ?? Object.keys(specs);
  for (const n of names) if (!specs[n]) throw new Error(`unknown model '${n}'; known: ${Object.keys(specs).join(', ')}`);
  const settings = opt('--torch-settings')?.split(',') ?? (quick ? ['passive', 'openblas1'] : Object.keys(TORCH_SETTINGS));
  for (const s of settings) if (!TORCH_SETTINGS[s]) throw new Error(`unknown torch setting '${s}'; known: ${Object.keys(TORCH_SETTINGS).join(', ')}`);
  const tfjsBudget = Number(opt('--tfjs-budget') ?? (quick ? TFJS_BUDGET_S.quick : TFJS_BUDGET_S.full));
  const withTfjs = !flag('--no-tfjs');

  const jsonOut = opt('--json-out');
  const t0 = Date.now();
  log(`genlab framework benchmark: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}, ${quick ? 'quick' : 'full'}`);
  const rows: Row[] = [];
  for (const name of names) {
    const s = specs[name];
    log(`- ${name}: ${s.warmup} warm-up, probe ${settings.join('/')} x ${s.probe}, timed ${s.min === s.target ? s.target : `${s.min}-${s.target}`} x ${s.perRound} per round ...`);
    try {
      const r = await benchCase(name, s, settings);
      rows.push(r);
      if (jsonOut) writeFileSync(jsonOut, JSON.stringify(rows, null, 1) + '\n');
      log(`  genlab ${fmt(r.genlab_ms)} ms [${r.genlab_backend}], torch ${fmt(r.torch_ms)} ms [${r.torch_setting}; probe ${Object.entries(r.torch_probe_ms).map(([k, v]) => `${k} ${Number.isFinite(v) ? fmt(v) : 'stopped'}`).join(', ')}], ratio ${r.ratio.toFixed(2)}; params ${r.params_genlab}/${r.params_torch}; loss ${lossCheck(r)}`);
    } catch (e) {
      log(`  FAILED: ${(e as Error).message}`);
      rows.push({ model: name, error: (e as Error).message } as Row);
    }
  }
  if (withTfjs) {
    for (const name of TFJS_CASES) {
      const row = rows.find((r) => r.model === name && !r.error);
      if (!row) continue;
      log(`- tfjs ${name}: steps while a ${tfjsBudget} s budget lasts (first is warm-up) ...`);
      try {
        const t = await benchTfjs(name, tfjsBudget);
        Object.assign(row, { tfjs_ms: t.ms, tfjs_lower_bound: t.lowerBound, tfjs_rss_mb: t.rss, tfjs_steps: t.steps, tfjs_params: t.params, tfjs_loss: t.loss });
        log(`  ${t.info}: ${t.lowerBound ? '> ' : ''}${fmt(t.ms)} ms/step over ${t.steps} step(s), peak ${fmt(t.rss, 0)} MB, params ${t.params}, loss ${t.loss.map((l) => l?.toFixed(3)).join('->')}`);
      } catch (e) {
        log(`  tfjs FAILED: ${(e as Error).message}`);
      }
    }
  }
  log(`total ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(rows, null, 1) + '\n');
  if (flag('--json')) {
    process.stdout.write(JSON.stringify(rows, null, 1) + '\n');
    return;
  }
  console.log(table(rows));
  const tf = rows.filter((r) => r.tfjs_ms !== undefined);
  if (tf.length) {
    console.log('\n| model | tfjs ms (cpu) | genlab ms | torch ms | tfjs/genlab | tfjs MB | tfjs params | tfjs steps |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of tf) {
      const lb = r.tfjs_lower_bound ? '> ' : '';
      console.log(`| ${r.model} | ${lb}${fmt(r.tfjs_ms)} | ${fmt(r.genlab_ms)} | ${fmt(r.torch_ms)} | ${lb}${(r.tfjs_ms! / r.genlab_ms).toFixed(1)} | ${fmt(r.tfjs_rss_mb, 0)} | ${r.tfjs_params} | ${r.tfjs_lower_bound ? 'none finished' : r.tfjs_steps} |`);
    }
  }
  console.log('\nLoss check (first warm-up step -> last timed step, fixed batch):');
  for (const r of rows) if (!r.error && r.kind === 'train') console.log(`  ${r.model}: ${lossCheck(r)}`);
}

main().catch((e) => {
  log(String((e as Error).stack ?? e));
  process.exit(1);
});
