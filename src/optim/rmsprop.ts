/**
 * RMSprop (Hinton, Coursera lecture 6e; centered form: Graves 2013,
 * https://arxiv.org/abs/1308.0850), as torch.optim.RMSprop:
 *   1. g <- g + weightDecay * p
 *   2. s <- alpha s + (1 - alpha) g^2
 *   3. centered: ga <- alpha ga + (1 - alpha) g;  avg = sqrt(s - ga^2) + eps
 *      else avg = sqrt(s) + eps            (eps outside the square root, as torch)
 *   4. momentum: b <- momentum b + g / avg;  p <- p - lr b
 *      else p <- p - lr g / avg
 */
import type { Tensor } from '../engine/tensor.js';
import { Optimizer, checkBool, checkRange } from './optimizer.js';
import type { BaseOptions, ParamGroup, ParamState, ParamsInput } from './optimizer.js';

export interface RMSpropOptions extends BaseOptions {
  /** Smoothing constant of the squared-gradient average. */
  alpha: number;
  /** Added to the denominator outside the square root. */
  eps: number;
  /** L2 penalty added to the gradient. */
  weightDecay: number;
  /** Momentum factor (0: none). */
  momentum: number;
  /** Normalise by the estimated variance (subtract the squared mean gradient). */
  centered: boolean;
}

export const RMSPROP_DEFAULTS: RMSpropOptions = { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false };

/**
 * @example
 * const opt = new RMSprop(params, { lr: 5e-5 }); // WGAN's critic
 */
export class RMSprop extends Optimizer<RMSpropOptions> {
  readonly type = 'RMSprop';
  protected readonly bufferNames = ['square_avg', 'momentum_buffer', 'grad_avg'] as const;

  constructor(params: ParamsInput<RMSpropOptions>, opts: Partial<RMSpropOptions> = {}) {
    super(params, { ...RMSPROP_DEFAULTS, ...opts }, 'RMSprop');
  }

  protected validate(o: RMSpropOptions, who: string): void {
    checkRange(who, 'lr', o.lr, 0);
    checkRange(who, 'alpha', o.alpha, 0, 1, true);
    checkRange(who, 'eps', o.eps, 0);
    checkRange(who, 'weightDecay', o.weightDecay, 0);
    checkRange(who, 'momentum', o.momentum, 0);
    checkBool(who, 'centered', o.centered);
  }

  protected update(p: Float32Array, g: Float32Array, o: ParamGroup<RMSpropOptions>, st: ParamState, param: Tensor): void {
    const { lr, alpha, eps, weightDecay, momentum, centered } = o;
    const s = this.buffer(st, 'square_avg', param);
    const ga = centered ? this.buffer(st, 'grad_avg', param) : null;
    const buf = momentum > 0 ? this.buffer(st, 'momentum_buffer', param) : null;
    for (let i = 0; i < p.length; i++) {
      const gi = Math.fround(g[i] + weightDecay * p[i]);
      s[i] = alpha * s[i] + (1 - alpha) * gi * gi;
      let avg: number;
      if (ga) {
        ga[i] = alpha * ga[i] + (1 - alpha) * gi;
        avg = Math.sqrt(Math.fround(s[i] - ga[i] * ga[i])) + eps;
      } else {
        avg = Math.sqrt(s[i]) + eps;
      }
      avg = Math.fround(avg);
      if (buf) {
        buf[i] = momentum * buf[i] + gi / avg;
        p[i] -= lr * buf[i];
      } else {
        p[i] -= (lr * gi) / avg;
      }
    }
  }
}
