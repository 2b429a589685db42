/**
 * Adam (Kingma & Ba 2015, https://arxiv.org/abs/1412.6980), its AMSGrad variant (Reddi
 * et al. 2018, https://openreview.net/forum?id=ryQu7f-RZ) and AdamW (decoupled weight
 * decay, Loshchilov & Hutter 2019, https://arxiv.org/abs/1711.05101), as torch.optim.Adam
 * and torch.optim.AdamW:
 *   1. g <- g + weightDecay * p (Adam)    or    p <- p * (1 - lr * weightDecay) (AdamW)
 *   2. m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2
 *   3. vmax <- max(vmax, v) (amsgrad)
 *   4. p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * Without amsgrad the update runs in the backend's fused `adam` kernel.
 */
import type { Tensor } from '../engine/tensor.js';
import { backend } from '../engine/backends/index.js';
import { Optimizer, checkBool, checkRange } from './optimizer.js';
import type { BaseOptions, ParamGroup, ParamState, ParamsInput } from './optimizer.js';

export interface AdamOptions extends BaseOptions {
  /** Decay rates of the first and second moment estimates. */
  betas: [number, number];
  /** Added to the denominator (outside the square root) for stability. */
  eps: number;
  /** L2 penalty added to the gradient (Adam) or decoupled decay rate (AdamW). */
  weightDecay: number;
  /** Use the running maximum of the second moment (AMSGrad). */
  amsgrad: boolean;
}

export const ADAM_DEFAULTS: AdamOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false };

/**
 * @example
 * const opt = new Adam(params, { lr: 2e-4, betas: [0.5, 0.999] });
 */
export class Adam extends Optimizer<AdamOptions> {
  readonly type: string = 'Adam';
  protected readonly bufferNames = ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'] as const;
  /** Decoupled (AdamW) or L2 (Adam) weight decay. */
  protected readonly decoupled: boolean = false;

  constructor(params: ParamsInput<AdamOptions>, opts: Partial<AdamOptions> = {}, defaults: AdamOptions = ADAM_DEFAULTS, who = 'Adam') {
    super(params, { ...defaults, ...opts }, who);
  }

  protected validate(o: AdamOptions, who: string): void {
    checkRange(who, 'lr', o.lr, 0);
    if (!Array.isArray(o.betas) || o.betas.length !== 2) throw new TypeError(`${who}: betas must be a pair [beta1, beta2], got ${String(o.betas)}`);
    checkRange(who, 'betas[0]', o.betas[0], 0, 1);
    checkRange(who, 'betas[1]', o.betas[1], 0, 1);
    checkRange(who, 'eps', o.eps, 0);
    checkRange(who, 'weightDecay', o.weightDecay, 0);
    checkBool(who, 'amsgrad', o.amsgrad);
  }

  protected update(p: Float32Array, g: Float32Array, o: ParamGroup<AdamOptions>, st: ParamState, param: Tensor): void {
    const { lr, eps, weightDecay, amsgrad } = o;
    const [beta1, beta2] = o.betas;
    const m = this.buffer(st, 'exp_avg', param);
    const v = this.buffer(st, 'exp_avg_sq', param);
    const t = st.step;
    if (!amsgrad) {
      backend().adam(p, g, m, v, p.length, lr, beta1, beta2, eps, weightDecay, this.decoupled, t);
      return;
    }
    const vmax = this.buffer(st, 'max_exp_avg_sq', param);
    const stepSize = lr / (1 - Math.pow(beta1, t));
    const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, t));
    for (let i = 0; i < p.length; i++) {
      let gi = g[i];
      if (weightDecay !== 0) {
        if (this.decoupled) p[i] *= 1 - lr * weightDecay;
        else gi += weightDecay * p[i];
      }
      m[i] = beta1 * m[i] + (1 - beta1) * gi;
      v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
      if (v[i] > vmax[i]) vmax[i] = v[i];
      p[i] -= (stepSize * m[i]) / (Math.sqrt(vmax[i]) / bc2Sqrt + eps);
    }
  }
}

export const ADAMW_DEFAULTS: AdamOptions = { ...ADAM_DEFAULTS, weightDecay: 1e-2 };

/**
 * Adam with decoupled weight decay (torch.optim.AdamW; default weightDecay 0.01).
 * @example
 * const opt = new AdamW(params, { lr: 3e-4, weightDecay: 0.1 });
 */
export class AdamW extends Adam {
  override readonly type: string = 'AdamW';
  protected override readonly decoupled: boolean = true;

  constructor(params: ParamsInput<AdamOptions>, opts: Partial<AdamOptions> = {}) {
    super(params, opts, ADAMW_DEFAULTS, 'AdamW');
  }
}
