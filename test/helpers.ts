/**
 * Shared test helpers: golden fixtures written by scripts/fixtures/*.py (PyTorch),
 * closeness assertions that name the worst element, and finite-difference gradient
 * checks. Tests never need torch: they read the committed JSON.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Tensor, tensor, grad, noGrad, concat, hasBackend, withBackend } from '../src/engine/index.js';
import type { BackendName } from '../src/engine/index.js';

/** Repository root (tests run from dist/test, sources live two levels up). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A tensor stored in a fixture: {shape, data} (data flat, row-major), optional dtype. */
export interface FixtureTensor {
  shape: number[];
  data: (number | string)[];
  dtype?: 'float32' | 'int32';
}

const cache = new Map<string, unknown>();

/** Load test/fixtures/<name>.json (written by scripts/fixtures/<name>.py). */
export function fixture<T = Record<string, unknown>>(name: string): T {
  if (!cache.has(name)) {
    const path = join(ROOT, 'test', 'fixtures', `${name}.json`);
    cache.set(name, JSON.parse(readFileSync(path, 'utf8')));
  }
  return cache.get(name) as T;
}

/** Decode a fixture tensor; the strings "nan", "inf", "-inf" stand for those values. */
export function fromFixture(f: FixtureTensor): Tensor {
  const vals = f.data.map((v) => (typeof v === 'number' ? v : v === 'nan' ? NaN : v === 'inf' ? Infinity : -Infinity));
  return f.dtype === 'int32' ? tensor(Int32Array.from(vals), f.shape) : tensor(Float32Array.from(vals), f.shape);
}

/**
 * Assert two tensors (or a tensor and a fixture) agree elementwise:
 * |a - b| <= atol + rtol * |b|, NaN matching NaN and Inf matching Inf.
 */
export function assertClose(actual: Tensor, expected: Tensor | FixtureTensor, rtol = 1e-4, atol = 1e-5, what = 'value'): void {
  const exp = expected instanceof Tensor ? expected : fromFixture(expected);
  assert.deepEqual([...actual.shape], [...exp.shape], `${what}: shape ${JSON.stringify(actual.shape)} != ${JSON.stringify(exp.shape)}`);
  const a = actual.values();
  const b = exp.values();
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (Number.isNaN(y) || Number.isNaN(x)) {
      if (Number.isNaN(x) !== Number.isNaN(y)) {
        worst = i;
        worstErr = Infinity;
        break;
      }
      continue;
    }
    if (!Number.isFinite(y) || !Number.isFinite(x)) {
      if (x !== y) {
        worst = i;
        worstErr = Infinity;
        break;
      }
      continue;
    }
    const err = Math.abs(x - y) - (atol + rtol * Math.abs(y));
    if (err > worstErr) {
      worstErr = err;
      worst = i;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: element ${worst} is ${a[worst]}, expected ${b[worst]} (rtol ${rtol}, atol ${atol}, shape ${JSON.stringify(actual.shape)})`);
  }
}

/**
 * Central finite differences of sum(f(inputs) * w) for a fixed random weighting w,
 * compared with autograd. Float32 engine, so eps and tolerances are loose; use smooth
 * points (away from kinks).
 */
export function checkGradFD(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], eps = 1e-2, rtol = 2e-2, atol = 2e-3): void {
  const xs = inputs.map((x) => x.detach().clone().requiresGrad_());
  const y0 = f(...xs);
  // A fixed, deterministic weighting makes the check cover every output element.
  const w = tensor(Float32Array.from({ length: y0.size }, (_, i) => Math.sin(i * 1.7 + 0.3) + 1.1), y0.shape);
  const scalarOf = (ys: Tensor): number => {
    const v = ys.values();
    const wv = w.values();
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i] * wv[i];
    return s;
  };
  const gs = grad(y0.mul(w).sum(), xs, { allowUnused: true });
  xs.forEach((x, k) => {
    const data = x.data as Float32Array;
    const fd = new Float32Array(x.size);
    for (let i = 0; i < x.size; i++) {
      const orig = data[x.offset + i];
      data[x.offset + i] = orig + eps;
      const up = noGrad(() => scalarOf(f(...xs)));
      data[x.offset + i] = orig - eps;
      const down = noGrad(() => scalarOf(f(...xs)));
      data[x.offset + i] = orig;
      fd[i] = (up - down) / (2 * eps);
    }
    const g = gs[k] ?? tensor(new Float32Array(x.size), x.shape);
    assertClose(g, tensor(fd, x.shape), rtol, atol, `finite-difference gradient of input ${k}`);
  });
}

// ---- Op suite (tinygrad's test_ops style) ---------------------------------------------

/**
 * One case of test/fixtures/engine_ops.json (scripts/fixtures/engine_ops.py): inputs,
 * torch's outputs, the output weighting w, the gradients of sum(out * w) for the inputs
 * with `rg` set, and for some cases second derivatives: the gradient of
 * sum_i sum(grad_i * v_i), the first gradients taken with create_graph=True.
 */
export interface OpCase {
  group: string;
  inputs: FixtureTensor[];
  rg: boolean[];
  out: FixtureTensor | FixtureTensor[];
  w?: FixtureTensor[];
  grads?: (FixtureTensor | null)[];
  v?: FixtureTensor[];
  grads2?: (FixtureTensor | null)[];
}

export interface CheckOpOptions {
  /** Tolerances of the forward values (default rtol 1e-5, atol 1e-5). */
  rtol?: number;
  atol?: number;
  /** Tolerances of the gradients against torch (default 1e-4, 1e-5; x10 for second derivatives). */
  gradRtol?: number;
  gradAtol?: number;
  /** Run finite differences too (default true when the case has gradients). */
  fd?: boolean;
  fdEps?: number;
  fdRtol?: number;
  fdAtol?: number;
}

export type OpFn = (...xs: Tensor[]) => Tensor | Tensor[];
export type CheckOp = (name: string, shapes: number[][], fn: OpFn, opts?: CheckOpOptions) => void;

const checkedCases = new Set<string>();

/** Every op case of the fixture, by name. */
export function opCases(): Record<string, OpCase> {
  return fixture<{ cases: Record<string, OpCase> }>('engine_ops').cases;
}

/** sum_i sum(a_i * b_i) as a scalar tensor. */
function weightedSum(as: Tensor[], bs: Tensor[]): Tensor {
  let s: Tensor | null = null;
  as.forEach((a, i) => {
    const t = a.mul(bs[i]).sum();
    s = s === null ? t : s.add(t);
  });
  return s!;
}

function compareGrads(gs: (Tensor | null)[], want: (FixtureTensor | null)[], rtol: number, atol: number, what: string): void {
  gs.forEach((g, k) => {
    const w = want[k];
    if (w === null || w === undefined) {
      // Torch found no dependence: genlab must give null or zeros.
      if (g !== null) assert.ok(g.toArray().every((v) => v === 0), `${what} ${k}: torch has none, genlab has ${g}`);
      return;
    }
    assert.ok(g !== null, `${what} ${k}: genlab returned none`);
    assertClose(g!, w, rtol, atol, `${what} ${k}`);
  });
}

/**
 * Check the op case `name` (tinygrad's helper_test_op): run `fn` on the fixture's inputs
 * (`shapes` must match them, so a stale fixture fails loudly), compare the outputs
 * with torch, the gradients of sum(out * w) with torch's, second derivatives where the
 * fixture has them, and the gradients with central finite differences.
 * @example
 * checkOp('softmax axis 1', [[2, 3, 4]], (x) => x.softmax(1));
 */
export function checkOp(name: string, shapes: number[][], fn: OpFn, opts: CheckOpOptions = {}): void {
  const c = opCases()[name];
  assert.ok(c, `no fixture case '${name}' (run scripts/fixtures/engine_ops.py)`);
  checkedCases.add(name);
  assert.deepEqual(c.inputs.map((t) => t.shape), shapes, `${name}: input shapes differ from the fixture`);
  const xs = c.inputs.map((t, i) => (c.rg[i] ? fromFixture(t).requiresGrad_() : fromFixture(t)));
  const outs = (y: Tensor | Tensor[]): Tensor[] => (Array.isArray(y) ? y : [y]);
  const y = fn(...xs);
  const want = Array.isArray(c.out) ? c.out : [c.out];
  assert.equal(outs(y).length, want.length, `${name}: number of outputs`);
  outs(y).forEach((o, k) => {
    if (want[k].dtype === 'int32') assert.equal(o.dtype, 'int32', `${name}: output ${k} dtype`);
    assertClose(o, want[k], opts.rtol ?? 1e-5, opts.atol ?? 1e-5, `${name}: output ${k}`);
  });
  if (!c.grads || !c.w) return;

  const gIn = xs.filter((_, i) => c.rg[i]);
  const gWant = c.grads.filter((_, i) => c.rg[i]);
  const ws = c.w.map(fromFixture);
  const gradRtol = opts.gradRtol ?? 1e-4;
  const gradAtol = opts.gradAtol ?? 1e-5;
  const double = c.grads2 !== undefined && c.v !== undefined;
  const gs = grad(weightedSum(outs(y), ws), gIn, { allowUnused: true, createGraph: double });
  compareGrads(gs, gWant, gradRtol, gradAtol, `${name}: gradient of input`);

  if (double) {
    const vs = c.v!.map(fromFixture);
    const used = gs.map((g, i) => [g, vs[i]] as const).filter(([g]) => g !== null && g.requiresGrad);
    assert.ok(used.length > 0, `${name}: first gradients are not differentiable (createGraph)`);
    const gg = grad(weightedSum(used.map(([g]) => g!), used.map(([, v]) => v)), gIn, { allowUnused: true });
    compareGrads(gg, c.grads2!, gradRtol * 10, gradAtol * 10, `${name}: second derivative of input`);
  }

  if (opts.fd === false) return;
  // Finite differences over the float inputs that require grad; the rest stay fixed.
  const f = (...fl: Tensor[]): Tensor => {
    let k = 0;
    const all = xs.map((x, i) => (c.rg[i] ? fl[k++] : x));
    const ys = outs(fn(...all));
    return ys.length === 1 ? ys[0] : concatFlat(ys);
  };
  checkGradFD(f, gIn.map((x) => x.detach()), opts.fdEps, opts.fdRtol, opts.fdAtol);
}

function concatFlat(ys: Tensor[]): Tensor {
  return concat(ys.map((t) => t.reshape([-1])), 0);
}

/** The backends present on this machine, js first. */
export function testBackends(): BackendName[] {
  return (['js', 'native', 'wasm'] as const).filter((b) => hasBackend(b));
}

/**
 * Register an op suite: `cases(check)` declares one line per case; the suite runs on
 * every backend present, then asserts every fixture case of `group` was checked.
 */
export function opSuite(group: string, cases: (check: CheckOp) => void): void {
  for (const be of testBackends()) {
    describe(`${group} ops on ${be}`, () => {
      cases((name, shapes, fn, opts) => {
        checkedCases.add(name);
        test(name, () => withBackend(be, () => checkOp(name, shapes, fn, opts)));
      });
    });
  }
  test(`${group}: every fixture case of the group has a test line`, () => {
    const missing = Object.entries(opCases())
      .filter(([n, c]) => c.group === group && !checkedCases.has(n))
      .map(([n]) => n);
    assert.deepEqual(missing, [], `fixture cases of group ${group} without a test line`);
  });
}
