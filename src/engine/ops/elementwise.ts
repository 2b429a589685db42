/**
 * Elementwise ops: unary maths and activations, broadcasting binary arithmetic,
 * comparisons and `where`. Each primitive is one kernel call plus one gradient rule
 * written with differentiable ops (so double backward works). Gradient formulas follow
 * PyTorch's `tools/autograd/derivatives.yaml` (e.g. maximum splits ties equally).
 */
import { backend } from '../backends/index.js';
import type { ActivationGrad, BinaryOp, UnaryOp } from '../backends/backend.js';
import { Tensor, allocF32, emptyF32, fromOp, isGradEnabled, rowMajorTensor } from '../tensor.js';
import { broadcastShapes, broadcastStrides, fmtShape, shapesEqual, DTypeError } from '../shape.js';
import { sumTo } from './reduce.js';

/** A 0-D float tensor holding `v`. */
export function scalar(v: number): Tensor {
  const d = new Float32Array(1);
  d[0] = v;
  return rowMajorTensor(d, []);
}

function asTensor(v: Tensor | number): Tensor {
  return typeof v === 'number' ? scalar(v) : v;
}

/** g f'(x) for an activation f in one kernel (a backward sweep that records no graph). */
function activationGrad(kind: ActivationGrad, x: Tensor, g: Tensor, slope = 0): Tensor {
  const xv = x.f32(kind), gv = g.f32(kind);
  const out = emptyF32(xv.length);
  backend().activationGrad(kind, xv, gv, out, xv.length, slope);
  return rowMajorTensor(out, x.shape);
}

function unary(op: UnaryOp, x: Tensor, grad: ((g: Tensor, y: Tensor) => Tensor) | null, p0 = 0, p1 = 0): Tensor {
  const xv = x.f32(op);
  const out = emptyF32(xv.length);
  backend().unary(op, xv, 0, out, xv.length, p0, p1);
  // The backward closure only when a graph is being recorded (saves an allocation per op).
  if (grad === null || !x.requiresGrad || !isGradEnabled()) return fromOp(op, out, x.shape, [x], null);
  const y: Tensor = fromOp(op, out, x.shape, [x], (g) => [grad(g, y)]);
  return y;
}

export function neg(x: Tensor): Tensor {
  return unary('neg', x, (g) => neg(g));
}
export function abs(x: Tensor): Tensor {
  return unary('abs', x, (g) => mul(g, sign(x)));
}
/** Sign of x (0 at 0); not differentiable (its gradient is zero almost everywhere). */
export function sign(x: Tensor): Tensor {
  return unary('sign', x, null);
}
export function exp(x: Tensor): Tensor {
  return unary('exp', x, (g, y) => mul(g, y));
}
export function log(x: Tensor): Tensor {
  return unary('log', x, (g) => div(g, x));
}
export function log1p(x: Tensor): Tensor {
  return unary('log1p', x, (g) => div(g, add(x, 1)));
}
export function sqrt(x: Tensor): Tensor {
  return unary('sqrt', x, (g, y) => div(g, mul(y, 2)));
}
export function rsqrt(x: Tensor): Tensor {
  // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
  return unary('rsqrt', x, (g, y) => mul(g, mul(pow(y, 3), -0.5)));
}
export function sin(x: Tensor): Tensor {
  return unary('sin', x, (g) => mul(g, cos(x)));
}
export function cos(x: Tensor): Tensor {
  return unary('cos', x, (g) => mul(g, neg(sin(x))));
}
export function tanh(x: Tensor): Tensor {
  return unary('tanh', x, (g, y) => mul(g, sub(1, square(y))));
}
export function sigmoid(x: Tensor): Tensor {
  return unary('sigmoid', x, (g, y) => mul(g, mul(y, sub(1, y))));
}
export function relu(x: Tensor): Tensor {
  return unary('relu', x, (g) => reluGrad(x, g));
}

/** g relu'(x); also g relu'(y) for y = relu(x), as the two agree everywhere (NaN too). */
export function reluGrad(x: Tensor, g: Tensor): Tensor {
  return isGradEnabled() ? mul(g, step(x)) : activationGrad('relu', x, g);
}
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  // d/dx = 1 for x > 0 else slope: slope + (1 - slope) * step(x).
  return unary('leakyRelu', x, (g) => (isGradEnabled() ? mul(g, add(mul(step(x), 1 - slope), slope)) : activationGrad('leakyRelu', x, g, slope)), slope);
}
export function elu(x: Tensor, alpha = 1): Tensor {
  // d/dx = 1 for x > 0, else y + alpha.
  return unary('elu', x, (g, y) => {
    const s = step(x);
    return mul(g, add(s, mul(sub(1, s), add(y, alpha))));
  }, alpha);
}
/** Exact GELU, x * Phi(x), as PyTorch's default (approximate='none'). */
export function gelu(x: Tensor): Tensor {
  // d/dx = Phi(x) + x * phi(x)
  return unary('gelu', x, (g) => {
    // One derivative kernel unless the gradient itself is being differentiated.
    if (!isGradEnabled()) return activationGrad('gelu', x, g);
    const cdf = mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = mul(exp(mul(square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return mul(g, add(cdf, mul(x, pdf)));
  });
}
export function erf(x: Tensor): Tensor {
  return unary('erf', x, (g) => mul(g, mul(exp(neg(square(x))), 2 / Math.sqrt(Math.PI))));
}
export function silu(x: Tensor): Tensor {
  // d/dx = s * (1 + x * (1 - s)), s = sigmoid(x)
  return unary('silu', x, (g) => {
    if (!isGradEnabled()) return activationGrad('silu', x, g);
    const s = sigmoid(x);
    return mul(g, mul(s, add(mul(x, sub(1, s)), 1)));
  });
}
export function softplus(x: Tensor): Tensor {
  // Linear above PyTorch's threshold of 20.
  return unary('softplus', x, (g) => {
    const s = sigmoid(x);
    const above = gt(x, 20);
    return mul(g, add(mul(s, sub(1, above)), above));
  });
}
export function clamp(x: Tensor, min: number, max: number): Tensor {
  if (min > max) throw new RangeError(`clamp: min ${min} > max ${max}`);
  // Gradient passes where min <= x <= max, as PyTorch.
  return unary('clamp', x, (g) => mul(g, mul(ge(x, min), le(x, max))), min, max);
}
export function square(x: Tensor): Tensor {
  return unary('square', x, (g) => mul(g, mul(x, 2)));
}
export function reciprocal(x: Tensor): Tensor {
  return unary('reciprocal', x, (g, y) => mul(g, neg(square(y))));
}
/** Heaviside step (x > 0 -> 1, else 0); a constant mask, not differentiable. */
export function step(x: Tensor): Tensor {
  return unary('step', x, null);
}

type BinaryGrad = (g: Tensor, out: Tensor) => [Tensor | null, Tensor | null];

function binary(op: BinaryOp, av: Tensor | number, bv: Tensor | number, grad: ((a: Tensor, b: Tensor) => BinaryGrad) | null): Tensor {
  let a = typeof av === 'number' ? scalar(av) : av;
  let b = typeof bv === 'number' ? scalar(bv) : bv;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') {
    if (grad) throw new DTypeError(`${op}: expected float32 tensors, got ${a.dtype} ${fmtShape(a.shape)} and ${b.dtype} ${fmtShape(b.shape)}`);
    // Comparisons accept int32 (labels == predictions).
    a = a.dtype === 'int32' ? toFloatRaw(a) : a;
    b = b.dtype === 'int32' ? toFloatRaw(b) : b;
  }
  // Equal shapes (the common case) need no broadcasting: read both with their own
  // strides (a size-1 axis is only ever read at index 0, whatever its stride).
  let shape: readonly number[];
  let aStrides: readonly number[];
  let bStrides: readonly number[];
  if (shapesEqual(a.shape, b.shape)) {
    shape = a.shape;
    aStrides = a.strides;
    bStrides = b.strides;
  } else if (b.shape.length === 0) {
    // Tensor op scalar.
    shape = a.shape;
    aStrides = a.strides;
    bStrides = zeroStrides(shape.length);
  } else if (a.shape.length === 0) {
    shape = b.shape;
    aStrides = zeroStrides(shape.length);
    bStrides = b.strides;
  } else {
    shape = broadcastShapes(op, a.shape, b.shape);
    aStrides = stretch(a, shape.length);
    bStrides = stretch(b, shape.length);
  }
  let n = 1;
  for (let d = 0; d < shape.length; d++) n *= shape[d];
  const out = emptyF32(n);
  backend().binary(op, a.data as Float32Array, a.offset, aStrides, b.data as Float32Array, b.offset, bStrides, out, shape);
  if (grad === null || !(a.requiresGrad || b.requiresGrad) || !isGradEnabled()) return fromOp(op, out, shape, [a, b], null);
  const rule = grad(a, b);
  const y: Tensor = fromOp(op, out, shape, [a, b], (g) => rule(g, y));
  return y;
}

const zeroStridesByRank: number[][] = [];
/** All-zero strides of rank r (shared and never written: kernels only read strides). */
function zeroStrides(r: number): number[] {
  return (zeroStridesByRank[r] ??= new Array<number>(r).fill(0));
}

/** Strides reading t as the broadcast shape of rank r: 0 on new and size-1 axes. */
function stretch(t: Tensor, r: number): number[] {
  const out: number[] = [];
  const off = r - t.shape.length;
  for (let i = 0; i < off; i++) out.push(0);
  for (let i = 0; i < t.shape.length; i++) out.push(t.shape[i] === 1 ? 0 : t.strides[i]);
  return out;
}

function toFloatRaw(t: Tensor): Tensor {
  return new Tensor(Float32Array.from(t.values()), t.shape);
}

// Gradient rules of the hot binary ops, made once (an inline arrow is a new closure per call).
const addGrad = (a: Tensor, b: Tensor): BinaryGrad => (g) => [
  a.requiresGrad ? sumTo(g, a.shape) : null,
  b.requiresGrad ? sumTo(g, b.shape) : null,
];
const subGrad = (a: Tensor, b: Tensor): BinaryGrad => (g) => [
  a.requiresGrad ? sumTo(g, a.shape) : null,
  b.requiresGrad ? sumTo(neg(g), b.shape) : null,
];
const mulGrad = (a: Tensor, b: Tensor): BinaryGrad => (g) => [
  a.requiresGrad ? sumTo(mul(g, b), a.shape) : null,
  b.requiresGrad ? sumTo(mul(g, a), b.shape) : null,
];

export function add(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('add', a, b, addGrad);
}
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('sub', a, b, subGrad);
}
export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('mul', a, b, mulGrad);
}
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('div', a, b, (a, b) => (g) => [
    a.requiresGrad ? sumTo(div(g, b), a.shape) : null,
    // d(a/b)/db = -a / b^2
    b.requiresGrad ? sumTo(neg(div(mul(g, a), square(b))), b.shape) : null,
  ]);
}
export function pow(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('pow', a, b, (a, b) => (g, y) => [
    // d/da = b * a^(b-1)
    a.requiresGrad ? sumTo(mul(g, mul(b, pow(a, sub(b, 1)))), a.shape) : null,
    // d/db = a^b * log(a), taken as 0 where a == 0 (PyTorch's convention).
    b.requiresGrad ? sumTo(mul(g, where(eq(a, 0), scalar(0), mul(y, log(a)))), b.shape) : null,
  ]);
}
export function maximum(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('maximum', a, b, (a, b) => (g) => {
    // Ties split the gradient equally.
    const wa = add(gt(a, b), mul(eq(a, b), 0.5));
    return [a.requiresGrad ? sumTo(mul(g, wa), a.shape) : null, b.requiresGrad ? sumTo(mul(g, sub(1, wa)), b.shape) : null];
  });
}
export function minimum(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('minimum', a, b, (a, b) => (g) => {
    const wa = add(lt(a, b), mul(eq(a, b), 0.5));
    return [a.requiresGrad ? sumTo(mul(g, wa), a.shape) : null, b.requiresGrad ? sumTo(mul(g, sub(1, wa)), b.shape) : null];
  });
}

/** Comparisons give a float mask of 1 and 0 and carry no gradient. */
export function eq(a: Tensor | number, b: Tensor | number): Tensor { return binary('eq', a, b, null); }
export function ne(a: Tensor | number, b: Tensor | number): Tensor { return binary('ne', a, b, null); }
export function lt(a: Tensor | number, b: Tensor | number): Tensor { return binary('lt', a, b, null); }
export function le(a: Tensor | number, b: Tensor | number): Tensor { return binary('le', a, b, null); }
export function gt(a: Tensor | number, b: Tensor | number): Tensor { return binary('gt', a, b, null); }
export function ge(a: Tensor | number, b: Tensor | number): Tensor { return binary('ge', a, b, null); }

/**
 * Elementwise select: `cond` (nonzero = true) picks `a`, else `b`; all three broadcast.
 * Unlike cond*a + (1-cond)*b, an Inf or NaN in the branch not taken does not leak.
 */
export function where(cond: Tensor, av: Tensor | number, bv: Tensor | number): Tensor {
  const a = asTensor(av);
  const b = asTensor(bv);
  const c = cond.dtype === 'int32' ? toFloatRaw(cond) : cond;
  const shape = broadcastShapes('where', broadcastShapes('where', c.shape, a.shape), b.shape);
  let n = 1;
  for (const d of shape) n *= d;
  const bk = backend();
  const read = (t: Tensor): Float32Array => {
    const o = allocF32(n);
    bk.copy(t.data, t.offset, broadcastStrides(t.shape, t.strides, shape), o, shape);
    return o;
  };
  const cv = read(c);
  const out = read(a);
  const bvv = read(b);
  for (let i = 0; i < n; i++) if (cv[i] === 0) out[i] = bvv[i];
  return fromOp('where', out, shape, [a, b], (g) => [
    a.requiresGrad ? sumTo(where(c, g, 0), a.shape) : null,
    b.requiresGrad ? sumTo(where(c, 0, g), b.shape) : null,
  ]);
}
