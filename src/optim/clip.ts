/**
 * Gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_: scale all
 * gradients together so their total norm is at most maxNorm (Pascanu et al. 2013, "On
 * the difficulty of training recurrent neural networks", https://arxiv.org/abs/1211.5063),
 * or clamp each element. Gradients are changed in place; params without a grad are skipped.
 */
import { Tensor } from '../engine/tensor.js';
import { storageOf } from './optimizer.js';

function withGrads(params: Tensor | Iterable<Tensor>): Tensor[] {
  const list = params instanceof Tensor ? [params] : [...params];
  return list.filter((p) => p.grad !== null);
}

/** The gradient's own storage when it is a plain contiguous tensor, else a fresh copy set as the grad. */
function ownedGrad(p: Tensor, who: string): Float32Array {
  const g = p.grad!;
  if (g.isContiguous() && !g.requiresGrad && g.dtype === 'float32') return storageOf(g, who);
  const copy = new Tensor(Float32Array.from(g.f32(who)), g.shape);
  p.grad = copy;
  return copy.data as Float32Array;
}

export interface ClipGradNormOptions {
  /** Order of the norm: 2 (default), 1, any p > 0, or Infinity for the max-abs norm. */
  normType?: number;
  /** Throw when the total norm is NaN or Inf instead of scaling by it. */
  errorIfNonfinite?: boolean;
}

/**
 * Scale every gradient by min(1, maxNorm / (totalNorm + 1e-6)) where totalNorm is the
 * norm of all gradients concatenated. Returns totalNorm (before clipping).
 * @example
 * loss.backward();
 * const norm = clipGradNorm(model.parameters(), 1.0);
 * opt.step();
 */
export function clipGradNorm(params: Tensor | Iterable<Tensor>, maxNorm: number, opts: ClipGradNormOptions = {}): number {
  const normType = opts.normType ?? 2;
  if (!(normType > 0)) throw new RangeError(`clipGradNorm: normType must be > 0 or Infinity, got ${normType}`);
  if (!(maxNorm >= 0)) throw new RangeError(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  const ps = withGrads(params);
  if (ps.length === 0) return 0;
  let total = 0;
  for (const p of ps) {
    const g = p.grad!.f32('clipGradNorm');
    if (normType === Infinity) {
      for (let i = 0; i < g.length; i++) {
        const a = Math.abs(g[i]);
        // NaN must win, as torch's max.
        if (a > total || Number.isNaN(a)) total = a;
      }
    } else if (normType === 2) {
      for (let i = 0; i < g.length; i++) total += g[i] * g[i];
    } else {
      for (let i = 0; i < g.length; i++) total += Math.pow(Math.abs(g[i]), normType);
    }
  }
  if (normType !== Infinity) total = normType === 2 ? Math.sqrt(total) : Math.pow(total, 1 / normType);
  if (!Number.isFinite(total) && opts.errorIfNonfinite) {
    throw new Error(
      `clipGradNorm: the total norm of order ${normType} of the gradients of ${ps.length} parameters is ${total}; ` +
        'the gradients are non-finite (pass errorIfNonfinite: false to scale them anyway)',
    );
  }
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  // torch multiplies even when coef is 1 (a no-op); skipping it keeps the gradients bit-exact.
  if (coef !== 1) {
    const c = Math.fround(coef);
    for (const p of ps) {
      const g = ownedGrad(p, 'clipGradNorm');
      for (let i = 0; i < g.length; i++) g[i] *= c;
    }
  }
  return total;
}

/**
 * Clamp every gradient element to [-clipValue, clipValue].
 * @example
 * clipGradValue(model.parameters(), 0.5);
 */
export function clipGradValue(params: Tensor | Iterable<Tensor>, clipValue: number): void {
  if (!(clipValue >= 0)) throw new RangeError(`clipGradValue: clipValue must be >= 0, got ${clipValue}`);
  for (const p of withGrads(params)) {
    const g = ownedGrad(p, 'clipGradValue');
    for (let i = 0; i < g.length; i++) {
      if (g[i] > clipValue) g[i] = clipValue;
      else if (g[i] < -clipValue) g[i] = -clipValue;
    }
  }
}
