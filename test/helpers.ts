/**
 * Shared test helpers: golden fixtures written by scripts/fixtures/*.py (PyTorch),
 * closeness assertions that name the worst element, and finite-difference gradient
 * checks. Tests never need torch: they read the committed JSON.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Tensor, tensor, grad, noGrad } from '../src/index.js';

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
