#!/usr/bin/env node
/**
 * The `genlab` command: list, train, sample, eval, info. Uses the public API only.
 * Exit codes: 0 done, 1 error, 2 usage (bad command, flag, key or value).
 */
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import {
  Rng, Tensor, modelEntry, modelTypes, resolveConfig, presetLayers, ConfigError, Trainer, TRAIN_DEFAULTS, TRAIN_CHOICES, TrainingError,
  loadDataSource, builtinData, evaluateRun, latentSamples, isHierarchicalModel, hierarchicalSamples, isTokenModel, decodeSamples,
  densityGrid, heatMap, readMetrics, fmtMetrics, loadCheckpoint, writePng, imageGrid, scatterPlot, linePlot,
} from '../index.js';
import type { GenerativeModel, RunConfig, Samples, DataSource, DataInfo, Config, SampleOptions, DensityModel } from '../index.js';
import { parseArgs, UsageError } from './args.js';
import type { ParsedArgs } from './args.js';

const HELP: Record<string, string> = {
  main: `genlab: train, sample and evaluate generative models

Usage: genlab <command> [options]

Commands:
  list [--json]              models, presets and data sets
  train <type> [options]     train a model (genlab train --help)
  sample <dir> [options]     draw samples from a trained run
  eval <dir> [--json]        metrics on held-out data
  info <dir> [--json]        config, parameters, steps and metrics of a run

Example:
  genlab train vae --data mnist --preset tiny --out runs/vae
  genlab sample runs/vae --n 64 --out samples.png`,
  train: `Usage: genlab train <type> [--data NAME|PATH] [--preset NAME] [--steps N] [--out DIR]
                    [--seed S] [--resume DIR] [--quiet] [--model.KEY=VALUE ...] [--train.KEY=VALUE ...]

  --data NAME|PATH   built-in data set (genlab list) or a folder of PNGs / a CSV of points
  --preset NAME      a named preset of the model (tiny, small, ...)
  --steps N          number of training steps (same as --train.steps)
  --out DIR          run folder (default runs/<type>)
  --seed S           random seed (default 0)
  --resume DIR       continue the run in DIR from its checkpoint (same config)
  --quiet            no progress display
Keys: genlab list shows each model's keys; unknown keys are errors.`,
  sample: `Usage: genlab sample <dir> [--n N] [--out FILE] [--seed S] [--cols C] [--class K]
                     [--prompt TEXT] [--sample.KEY=VALUE ...]

  Writes a PNG: an image grid for image models, a scatter plot (data vs samples)
  for 2-D models; prints text for sequence models (and writes it beside --out).
  --class K            class label for conditional models
  --prompt TEXT        prefix for sequence models
  --sample.KEY=VALUE   settings, e.g.
      sequence models:  temperature, topK, topP, greedy, beam, lengthPenalty, groups,
                        diversity, maxLen, stop (--sample.temperature=0.8 --sample.topK=40)
      latent models:    interpolate=lerp|slerp (steps, rows), grid=N, reconstruct=N
      diffusion:        sampler=ddpm|ddim, steps, eta, guidance, strip
      flows:            temperature, density=N (a heat map of p(x) for 2-D data)`,
  eval: `Usage: genlab eval <dir> [--json] [--quick] [--seed S]

  Evaluates the model on the held-out split of its data (e.g. VAE: negative ELBO and
  importance-sampled NLL in nats). --quick uses a subset and fewer samples.`,
  info: `Usage: genlab info <dir> [--json]

  Prints the run's config, parameter count, steps done and the latest metrics.`,
  list: `Usage: genlab list [--json]`,
};

/** Where the command writes; tests pass their own sinks to `main`. */
export interface CliIO {
  out(s: string): void;
  err(s: string): void;
}

const STDIO: CliIO = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
};

let io: CliIO = STDIO;

function out(s: string): void {
  io.out(s + '\n');
}

function readRunConfig(dir: string): RunConfig & { dataInfo: DataInfo } {
  const p = join(dir, 'run.json');
  if (!existsSync(dir)) throw new UsageError(`${dir}: no such run folder`);
  if (!existsSync(p)) throw new Error(`${dir}: not a genlab run folder (no run.json)`);
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as RunConfig & { dataInfo: DataInfo };
  } catch (e) {
    throw new Error(`${p}: corrupt run config (${(e as Error).message})`);
  }
}

/** Rebuild a run's model and load its latest checkpoint. */
function loadRun(dir: string): { cfg: RunConfig & { dataInfo: DataInfo }; model: GenerativeModel; step: number } {
  const cfg = readRunConfig(dir);
  const entry = modelEntry(cfg.type);
  const model = entry.create(cfg.model, new Rng(cfg.seed), cfg.dataInfo);
  const ck = loadCheckpoint(join(dir, 'checkpoint'));
  model.loadStateDict(ck.weights);
  // A run trained with --train.ema samples and evaluates with the averaged weights.
  const ema: Record<string, Tensor> = {};
  for (const [k, v] of ck.optimizer.tensors) if (k.startsWith('ema.')) ema[k.slice(4)] = v;
  if (Object.keys(ema).length > 0) model.loadStateDict({ ...model.stateDict(), ...ema });
  model.eval();
  return { cfg, model, step: ck.step };
}

function writeSamples(path: string, s: Samples, data: DataSource | null, cols?: number): string {
  if (s.kind === 'image') {
    writePng(path, imageGrid(s.images, { cols, scale: 2 }));
    return `wrote ${s.images.shape[0]} samples to ${path}`;
  }
  if (s.kind === 'points') {
    const series = [];
    if (data) {
      const d = data.test.x.slice(0, 0, s.points.shape[0]).values();
      series.push({ label: 'data', x: Array.from(d.filter((_, i) => i % 2 === 0)), y: Array.from(d.filter((_, i) => i % 2 === 1)) });
    }
    const p = s.points.values();
    series.push({ label: 'samples', x: Array.from(p.filter((_, i) => i % 2 === 0)), y: Array.from(p.filter((_, i) => i % 2 === 1)) });
    writePng(path, scatterPlot(series, { title: data?.info.name }));
    return `wrote a scatter plot of ${s.points.shape[0]} samples to ${path}`;
  }
  writeFileSync(path.replace(/\.png$/, '.txt'), s.texts.join('\n') + '\n');
  return s.texts.join('\n');
}

function lossCurve(dir: string): void {
  const rows = readMetrics(dir).filter((r) => r.split === 'train' && typeof r.loss === 'number');
  if (rows.length < 2) return;
  const x = rows.map((r) => r.step as number);
  const y = rows.map((r) => r.loss as number);
  writePng(join(dir, 'loss.png'), linePlot([{ label: 'train loss', x, y }], { title: 'loss', logY: y.every((v) => v > 0) }));
}

async function cmdTrain(a: ParsedArgs): Promise<void> {
  a.allow(['data', 'preset', 'steps', 'out', 'seed', 'resume', 'quiet', 'limit']);
  let cfg: RunConfig & { dataInfo?: DataInfo };
  let outDir: string;
  const resumeDir = a.str('resume');
  if (resumeDir) {
    const old = readRunConfig(resumeDir);
    if (a.positional[0] && a.positional[0] !== old.type) throw new UsageError(`--resume ${resumeDir} is a ${old.type} run, not ${a.positional[0]}`);
    if (Object.keys(a.model).length) throw new UsageError('--resume keeps the model config; --model.* keys cannot change it');
    const train = resolveConfig('train', TRAIN_DEFAULTS, TRAIN_CHOICES, old.train, a.train, a.has('steps') ? { steps: a.str('steps')! } : undefined);
    cfg = { ...old, train };
    if (a.has('limit') && a.int('limit') !== old.limit) throw new UsageError('--resume keeps the data; --limit cannot change it');
    outDir = resumeDir;
  } else {
    const type = a.positional[0];
    if (!type) throw new UsageError('train: which model? (genlab list shows the types)');
    const entry = modelEntry(type);
    const presetName = a.str('preset');
    if (presetName !== undefined && !entry.presets[presetName]) throw new UsageError(`train: model ${type} has no preset '${presetName}'; presets: ${Object.keys(entry.presets).join(', ')}`);
    const dataName = a.str('data') ?? entry.defaultData;
    const layers = presetLayers(entry, presetName, dataName);
    const model = resolveConfig('model', entry.defaults, entry.choices, ...layers.model, a.model);
    const train = resolveConfig('train', TRAIN_DEFAULTS, TRAIN_CHOICES, ...layers.train, a.train, a.has('steps') ? { steps: a.str('steps')! } : undefined);
    const seed = a.int('seed') ?? 0;
    cfg = { type, model, train, data: dataName, seed, limit: a.int('limit') };
    outDir = a.str('out') ?? join('runs', type);
  }
  const entry = modelEntry(cfg.type);
  const data = loadDataSource(cfg.data, entry.data, { seed: cfg.seed, limit: cfg.limit, model: cfg.model });
  const model = entry.create(cfg.model, new Rng(cfg.seed), data.info);
  mkdirSync(outDir, { recursive: true });
  const runCfg = { ...cfg, dataInfo: data.info };
  writeFileSync(join(outDir, 'run.json'), JSON.stringify(runCfg, null, 2) + '\n');
  const trainer = new Trainer({
    model, runConfig: cfg, data, outDir, verbose: !a.bool('quiet'),
    onSample: (step, m, rng) => {
      m.eval();
      const k = cfg.train.numSamples as number;
      if (k > 0) writeSamples(join(outDir, 'samples', `step-${String(step).padStart(6, '0')}.png`), m.sample(k, rng), data, 8);
      m.train();
    },
  });
  if (resumeDir) trainer.restore();
  const n = model.parameters().reduce((s, p) => s + p.size, 0);
  if (!a.bool('quiet')) io.err(`genlab: training ${cfg.type} (${n.toLocaleString('en')} parameters) on ${cfg.data} into ${outDir}\n`);
  const res = await trainer.run();
  lossCurve(outDir);
  model.eval();
  const k = cfg.train.numSamples as number;
  const msg = k > 0
    ? trainer.withEma(() => writeSamples(join(outDir, 'samples.png'), model.sample(k, new Rng(cfg.seed + 1)), data, 8))
    : 'no samples drawn (train.numSamples=0)';
  out(`${res.interrupted ? 'interrupted' : 'trained'} ${res.step} steps; last: ${fmtMetrics(res.lastMetrics)}`);
  out(`checkpoint: ${trainer.checkpointDir}; ${msg}`);
  if (res.interrupted) process.exitCode = 130;
}

/** --sample.KEY=VALUE as numbers and booleans where they parse, plus --prompt. */
function sampleOptions(a: ParsedArgs): SampleOptions {
  const opts: SampleOptions = {};
  for (const [k, v] of Object.entries(a.sample)) {
    opts[k] = v === 'true' ? true : v === 'false' ? false : v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  const prompt = a.str('prompt');
  if (prompt !== undefined) opts.prompt = prompt;
  return opts;
}

function cmdSample(a: ParsedArgs): void {
  a.allow(['n', 'out', 'seed', 'cols', 'class', 'prompt']);
  const dir = a.positional[0];
  if (!dir) throw new UsageError('sample: which run folder?');
  const { cfg, model } = loadRun(dir);
  const n = a.int('n') ?? 64;
  if (n < 1) throw new UsageError('--n must be at least 1');
  let cond: Tensor | undefined;
  const cls = a.int('class');
  if (cls !== undefined) {
    const k = cfg.dataInfo.numClasses;
    if (k === undefined) throw new UsageError(`--class: ${cfg.type} on ${cfg.data} has no classes`);
    if (cls < 0 || cls >= k) throw new UsageError(`--class must be in 0..${k - 1}, got ${cls}`);
    cond = new Tensor(new Int32Array(n).fill(cls), [n]);
  }
  const rng = new Rng(a.int('seed') ?? 0);
  const opts = sampleOptions(a);
  const outPath = resolve(a.str('out') ?? join(dir, 'samples.png'));
  let data: DataSource | null = null;
  const getData = (): DataSource => (data ??= loadDataSource(cfg.data, [cfg.dataInfo.kind], { seed: cfg.seed, limit: cfg.limit, model: cfg.model }));
  if (opts.density !== undefined) {
    out(writeDensity(outPath, model, getData(), opts));
    return;
  }
  const latentKeys = ['interpolate', 'grid', 'reconstruct'].filter((k) => opts[k] !== undefined);
  let s: Samples;
  if (latentKeys.length > 0) {
    const needData = opts.reconstruct !== undefined;
    s = latentSamples(model, rng, opts, { data: needData ? getData().test : undefined, cls })!;
  } else if (isHierarchicalModel(model)) {
    s = { kind: 'text', texts: hierarchicalSamples(model, n, rng, opts) };
  } else if (isTokenModel(model) && !(model.encodeSource && opts.prompt === undefined)) {
    s = { kind: 'text', texts: decodeSamples(model, n, rng, opts) };
  } else {
    s = model.sample(n, rng, cond, opts);
  }
  if (s.kind === 'points') getData();
  const cols = a.int('cols') ?? (opts.interpolate !== undefined ? Number(opts.steps ?? 10) : opts.grid !== undefined ? Number(opts.grid === true ? 15 : opts.grid) : undefined);
  out(writeSamples(outPath, s, data, cols));
}

/** --sample.density: a heat map of a 2-D density model's p(x) over the data's range. */
function writeDensity(path: string, model: GenerativeModel, data: DataSource, opts: SampleOptions): string {
  if (!('logProb' in model) || data.info.kind !== 'points' || data.info.shape[0] !== 2) {
    throw new UsageError(`--sample.density needs a 2-D density model (realnvp, glow, maf on a 2-D toy); this is ${model.type} on ${data.info.name}`);
  }
  const pts = data.test.x.values();
  let m = 0;
  for (const v of pts) m = Math.max(m, Math.abs(v));
  const range: [number, number] = [-m * 1.1, m * 1.1];
  const n = typeof opts.density === 'number' ? opts.density : 160;
  const logp = densityGrid(model as unknown as DensityModel, range, n);
  const p = logp.map((v) => Math.exp(v));
  writePng(path, heatMap(p, n, n, { scale: Math.max(1, Math.floor(480 / n)), title: `${model.type} density` }));
  return `wrote a ${n}x${n} density map over [${range[0].toFixed(2)}, ${range[1].toFixed(2)}]^2 to ${path}`;
}

function cmdEval(a: ParsedArgs): void {
  a.allow(['json', 'quick', 'seed']);
  const dir = a.positional[0];
  if (!dir) throw new UsageError('eval: which run folder?');
  const { cfg, model, step } = loadRun(dir);
  const data = loadDataSource(cfg.data, [cfg.dataInfo.kind], { seed: cfg.seed, limit: cfg.limit, model: cfg.model });
  const metrics = evaluateRun(model, data, { quick: a.bool('quick'), seed: a.int('seed') ?? 0 });
  if (a.bool('json')) out(JSON.stringify({ type: cfg.type, data: cfg.data, step, ...metrics }));
  else out(`${cfg.type} on ${cfg.data} (test split, step ${step}): ${fmtMetrics(metrics)}`);
}

function cmdInfo(a: ParsedArgs): void {
  a.allow(['json']);
  const dir = a.positional[0];
  if (!dir) throw new UsageError('info: which run folder?');
  const { cfg, model, step } = loadRun(dir);
  const params = model.parameters().reduce((s, p) => s + p.size, 0);
  const metrics = readMetrics(dir);
  const lastTrain = [...metrics].reverse().find((r) => r.split === 'train') ?? null;
  const lastTest = [...metrics].reverse().find((r) => r.split === 'test') ?? null;
  if (a.bool('json')) {
    out(JSON.stringify({ type: cfg.type, data: cfg.data, seed: cfg.seed, step, parameters: params, model: cfg.model, train: cfg.train, lastTrain, lastTest }));
    return;
  }
  out(`${cfg.type} on ${cfg.data}, seed ${cfg.seed}: ${step} / ${cfg.train.steps} steps, ${params.toLocaleString('en')} parameters`);
  out(`model: ${JSON.stringify(cfg.model)}`);
  out(`train: ${JSON.stringify(cfg.train)}`);
  if (lastTrain) out(`last train metrics: ${JSON.stringify(lastTrain)}`);
  if (lastTest) out(`last test metrics: ${JSON.stringify(lastTest)}`);
}

function cmdList(a: ParsedArgs): void {
  a.allow(['json']);
  const models = modelTypes().map((t) => {
    const e = modelEntry(t);
    return { type: t, description: e.description, data: e.data, defaultData: e.defaultData, presets: Object.keys(e.presets), keys: e.defaults as Config };
  });
  const data = builtinData();
  if (a.bool('json')) {
    out(JSON.stringify({ models, data, trainKeys: TRAIN_DEFAULTS }));
    return;
  }
  out('Models:');
  for (const m of models) {
    out(`  ${m.type.padEnd(10)} ${m.description}`);
    out(`  ${''.padEnd(10)} data: ${m.data.join(', ')} (default ${m.defaultData}); presets: ${m.presets.join(', ')}`);
    out(`  ${''.padEnd(10)} keys: ${Object.entries(m.keys).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  out('Data sets:');
  for (const [k, v] of Object.entries(data)) if (v.length) out(`  ${k.padEnd(10)} ${v.join(', ')}`);
  out(`Trainer keys (--train.KEY): ${Object.entries(TRAIN_DEFAULTS).map(([k, v]) => `${k}=${v}`).join(' ')}`);
}

export async function main(argv: string[], sink: CliIO = STDIO): Promise<number> {
  const [cmd, ...rest] = argv;
  io = sink;
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      out(HELP.main);
      return cmd ? 0 : 2;
    }
    const a = parseArgs(rest);
    if (a.bool('help') || a.has('h')) {
      if (!HELP[cmd]) throw new UsageError(`unknown command '${cmd}'`);
      out(HELP[cmd]);
      return 0;
    }
    switch (cmd) {
      case 'train': await cmdTrain(a); break;
      case 'sample': cmdSample(a); break;
      case 'eval': cmdEval(a); break;
      case 'info': cmdInfo(a); break;
      case 'list': cmdList(a); break;
      default: throw new UsageError(`unknown command '${cmd}'; commands: list, train, sample, eval, info`);
    }
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError || err instanceof ConfigError || /^unknown (model type|sample option)|^sample\.\w+: /.test(err.message)) {
      io.err(`genlab: ${err.message}\n(see genlab ${HELP[cmd] ? cmd + ' ' : ''}--help)\n`);
      return 2;
    }
    io.err(`genlab: ${err instanceof TrainingError ? '' : 'error: '}${err.message}\n`);
    if (process.env.GENLAB_DEBUG) io.err(`${err.stack}\n`);
    return 1;
  }
}

// Run when executed as the bin (not when imported by tests).
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // `genlab info DIR | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
