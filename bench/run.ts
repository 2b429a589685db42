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
 *
 * Method. Every framework runs in its own child process (one per case), so peak memory
 * (VmHWM from /proc/self/status) is that framework's alone, and the children never run
 * at the same time. Per case: warm-up steps in each; then PyTorch is tried under each
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
import { readFileSync } from 'node:fs';
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

const FULL: Record<string, CaseSpec> = {
  'dcgan': train(),
  'conv-vae': train(),
  'lstm-lm': train(),
  'gpt': train(),
  'realnvp-2d': train(),
  'ddpm-unet': train(),
  'ntm-copy': train(),
  'gpt-sample': train({ kind: 'sample', warmup: 1, probe: 2 }),
  // One run is 50 U-Net forwards at batch 16 (seconds even in PyTorch): 5 runs.
  'ddim-sample': train({ kind: 'sample', warmup: 1, probe: 1, perRound: 1, min: 5, target: 5 }),
};

const QUICK: Record<string, CaseSpec> = {
  'dcgan': quickTrain(),
  'conv-vae': quickTrain(),
  'lstm-lm': quickTrain({ min: 2, perRound: 1 }),
  'gpt': quickTrain(),
  'realnvp-2d': quickTrain(),
  'ddpm-unet': quickTrain({ min: 2, perRound: 1 }),
  'ntm-copy': quickTrain(),
  'gpt-sample': quickTrain({ kind: 'sample', probe: 1 }),
  // No warm-up: the first of the 50 forwards of a run warms the JIT.
  'ddim-sample': quickTrain({ kind: 'sample', warmup: 0, probe: 1, perRound: 1, min: 2, target: 2 }),
};

/** PyTorch thread settings tried per case (environment of the child process). */
const TORCH_SETTINGS: Record<string, Record<string, string>> = {
  'openblas1': { OPENBLAS_NUM_THREADS: '1' },
  'passive': { OMP_WAIT_POLICY: 'PASSIVE' },
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
  let build: (() => { nParams: number; items: number; unit: string; run(): number }) | undefined;
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
    } else if (cmd.cmd === 'exit') {
      break;
    }
  }
  process.exit(0);
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
    // 2. Probe the PyTorch thread settings; keep the fastest.
    const probe: Record<string, number> = {};
    for (const t of torches) probe[t.s] = median((await t.c.run(spec.probe)).ms);
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
    const m = c.proc.signalCode !== null ? { hwmMb: hwm } : await c.request<MemReply>({ cmd: 'mem' });
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
  const quick = flag('--quick');
  const specs = quick ? QUICK : FULL;
  const names = opt('--models')?.split(',').map((s) => s.trim()).filter(Boolean) ?? Object.keys(specs);
  for (const n of names) if (!specs[n]) throw new Error(`unknown model '${n}'; known: ${Object.keys(specs).join(', ')}`);
  const settings = opt('--torch-settings')?.split(',') ?? (quick ? ['openblas1', 'passive'] : Object.keys(TORCH_SETTINGS));
  for (const s of settings) if (!TORCH_SETTINGS[s]) throw new Error(`unknown torch setting '${s}'; known: ${Object.keys(TORCH_SETTINGS).join(', ')}`);
  const tfjsBudget = Number(opt('--tfjs-budget') ?? (quick ? TFJS_BUDGET_S.quick : TFJS_BUDGET_S.full));
  const withTfjs = !flag('--no-tfjs');

  const t0 = Date.now();
  log(`genlab framework benchmark: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}, ${quick ? 'quick' : 'full'}`);
  const rows: Row[] = [];
  for (const name of names) {
    const s = specs[name];
    log(`- ${name}: ${s.warmup} warm-up, probe ${settings.join('/')} x ${s.probe}, timed ${s.min === s.target ? s.target : `${s.min}-${s.target}`} x ${s.perRound} per round ...`);
    try {
      const r = await benchCase(name, s, settings);
      rows.push(r);
      log(`  genlab ${fmt(r.genlab_ms)} ms [${r.genlab_backend}], torch ${fmt(r.torch_ms)} ms [${r.torch_setting}; probe ${Object.entries(r.torch_probe_ms).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}], ratio ${r.ratio.toFixed(2)}; params ${r.params_genlab}/${r.params_torch}; loss ${lossCheck(r)}`);
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
