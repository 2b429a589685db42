/**
 * Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2
 * weight decay, exactly as torch.optim.SGD
 * (https://pytorch.org/docs/stable/generated/torch.optim.SGD.html):
 *   g <- g + weightDecay * p
 *   b <- g (first step), else momentum * b + (1 - dampening) * g
 *   g <- g + momentum * b (nesterov), else b
 *   p <- p - lr * g
 * Nesterov momentum: Sutskever et al. 2013, "On the importance of initialization and
 * momentum in deep learning".
 */
import type { Tensor } from '../engine/tensor.js';
import { Optimizer, checkBool, checkRange } from './optimizer.js';
import type { BaseOptions, ParamGroup, ParamState, ParamsInput } from './optimizer.js';

export interface SGDOptions extends BaseOptions {
  /** Momentum factor (0: plain SGD). */
  momentum: number;
  /** Dampening of the gradient added to the momentum buffer. */
  dampening: number;
  /** L2 penalty added to the gradient. */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). */
  nesterov: boolean;
}

export const SGD_DEFAULTS: Omit<SGDOptions, 'lr'> = { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };

/**
 * @example
 * const opt = new SGD(params, { lr: 0.1, momentum: 0.9 });
 */
export class SGD extends Optimizer<SGDOptions> {
  readonly type = 'SGD';
  protected readonly bufferNames = ['momentum_buffer'] as const;

  constructor(params: ParamsInput<SGDOptions>, opts: Partial<SGDOptions> & { lr: number }) {
    super(params, { ...SGD_DEFAULTS, ...opts }, 'SGD');
  }

  protected validate(o: SGDOptions, who: string): void {
    checkRange(who, 'lr', o.lr, 0);
    checkRange(who, 'momentum', o.momentum, 0);
    checkRange(who, 'dampening', o.dampening, 0);
    checkRange(who, 'weightDecay', o.weightDecay, 0);
    checkBool(who, 'nesterov', o.nesterov);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      throw new RangeError(`${who}: nesterov momentum needs momentum > 0 and dampening 0 (got momentum ${o.momentum}, dampening ${o.dampening})`);
    }
  }

  protected update(p: Float32Array, g: Float32Array, o: ParamGroup<SGDOptions>, st: ParamState, param: Tensor): void {
    const { lr, momentum, dampening, weightDecay, nesterov } = o;
    const n = p.length;
    if (momentum === 0) {
      for (let i = 0; i < n; i++) p[i] -= lr * (g[i] + weightDecay * p[i]);
      return;
    }
    const first = !st.buffers.has('momentum_buffer');
    const buf = this.buffer(st, 'momentum_buffer', param);
    for (let i = 0; i < n; i++) {
      const d = Math.fround(g[i] + weightDecay * p[i]);
      // torch clones the first gradient into the buffer (no dampening on step 1).
      buf[i] = first ? d : momentum * buf[i] + (1 - dampening) * d;
      p[i] -= lr * (nesterov ? d + momentum * buf[i] : buf[i]);
    }
  }
}
