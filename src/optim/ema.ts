/**
 * Exponential moving average of weights (Polyak averaging), the shadow copy used to
 * sample from diffusion models and GANs:
 *   shadow <- decay_t * shadow + (1 - decay_t) * param
 * With `warmup`, decay_t = min(decay, (1 + t) / (10 + t)) for the t-th update (t from 0),
 * as tf.train.ExponentialMovingAverage's num_updates, so early averages are not stuck
 * near the random initialisation. `apply()` swaps the shadow into the parameters for
 * evaluation and `restore()` swaps the training weights back.
 * References: Polyak & Juditsky 1992; Karras et al. 2018 (https://arxiv.org/abs/1710.10196).
 */
import { Tensor } from '../engine/tensor.js';
import { storageOf } from './optimizer.js';

export interface EMAOptions {
  /** Target decay (0.999 typical; 0.9999 for long diffusion runs). */
  decay?: number;
  /** Ramp the decay up as min(decay, (1 + t) / (10 + t)). */
  warmup?: boolean;
}

/** JSON half of an EMA's state; the shadow tensors are stored by parameter name. */
export interface EMAStateJSON {
  format: 'genlab-ema';
  version: 1;
  decay: number;
  warmup: boolean;
  numUpdates: number;
  names: string[];
}

/**
 * @example
 * const ema = new EMA(model.namedParameters(), { decay: 0.999, warmup: true });
 * for (...) { opt.step(); ema.update(); }
 * ema.apply(); const samples = model.sample(16, rng); ema.restore();
 */
export class EMA {
  readonly params: Tensor[];
  /** Names of the parameters (their given names, or their indices as strings). */
  readonly names: string[];
  /** The averaged weights, one per parameter. */
  readonly shadow: Tensor[];
  readonly decay: number;
  readonly warmup: boolean;
  numUpdates = 0;
  private backup: Float32Array[] | null = null;

  constructor(params: Iterable<Tensor> | Iterable<readonly [string, Tensor]>, opts: EMAOptions = {}) {
    this.decay = opts.decay ?? 0.999;
    this.warmup = opts.warmup ?? false;
    if (!(this.decay >= 0 && this.decay <= 1)) throw new RangeError(`EMA: decay must be in [0, 1], got ${this.decay}`);
    this.params = [];
    this.names = [];
    let i = 0;
    for (const it of params as Iterable<Tensor | readonly [string, Tensor]>) {
      const [name, p] = it instanceof Tensor ? [String(i), it] : it;
      storageOf(p, `EMA: param '${name}'`);
      if (this.names.includes(name)) throw new Error(`EMA: duplicate parameter name '${name}'`);
      this.params.push(p);
      this.names.push(name);
      i++;
    }
    this.shadow = this.params.map((p) => new Tensor(Float32Array.from(storageOf(p, 'EMA')), p.shape));
  }

  /** The decay the next `update()` will use. */
  currentDecay(): number {
    const t = this.numUpdates;
    return this.warmup ? Math.min(this.decay, (1 + t) / (10 + t)) : this.decay;
  }

  /** Move the shadow towards the current parameters. */
  update(): void {
    if (this.backup) throw new Error('EMA.update: the shadow is applied; call restore() first');
    const w = 1 - this.currentDecay();
    this.params.forEach((p, k) => {
      const pv = storageOf(p, 'EMA.update');
      const s = this.shadow[k].data as Float32Array;
      // torch's lerp form: s + w (p - s).
      for (let i = 0; i < s.length; i++) s[i] += w * (pv[i] - s[i]);
    });
    this.numUpdates++;
  }

  /** Restart the average at the parameters' current values (e.g. after loading weights). */
  reset(): void {
    if (this.backup) throw new Error('EMA.reset: the shadow is applied; call restore() first');
    this.params.forEach((p, k) => (this.shadow[k].data as Float32Array).set(storageOf(p, 'EMA.reset')));
    this.numUpdates = 0;
  }

  /** Copy the shadow into the parameters, keeping the training weights for `restore()`. */
  apply(): void {
    if (this.backup) throw new Error('EMA.apply: already applied; call restore() first');
    this.backup = this.params.map((p) => Float32Array.from(storageOf(p, 'EMA.apply')));
    this.params.forEach((p, k) => storageOf(p, 'EMA.apply').set(this.shadow[k].data as Float32Array));
  }

  /** Put the training weights saved by `apply()` back. */
  restore(): void {
    if (!this.backup) throw new Error('EMA.restore: apply() was not called');
    const backup = this.backup;
    this.params.forEach((p, k) => storageOf(p, 'EMA.restore').set(backup[k]));
    this.backup = null;
  }

  /** The shadow weights by parameter name (for saving as model weights). */
  shadowWeights(): Map<string, Tensor> {
    return new Map(this.names.map((n, k) => [n, this.shadow[k]]));
  }

  stateDict(): { state: EMAStateJSON; tensors: Map<string, Tensor> } {
    return {
      state: { format: 'genlab-ema', version: 1, decay: this.decay, warmup: this.warmup, numUpdates: this.numUpdates, names: [...this.names] },
      tensors: this.shadowWeights(),
    };
  }

  /** Restore the update count and the shadow (names and shapes must match). */
  loadStateDict(sd: { state: EMAStateJSON; tensors: Map<string, Tensor> }): void {
    const who = 'EMA.loadStateDict';
    if (sd?.state?.format !== 'genlab-ema') throw new Error(`${who}: not a genlab EMA state`);
    if (!Number.isInteger(sd.state.numUpdates) || sd.state.numUpdates < 0) throw new Error(`${who}: numUpdates must be a non-negative integer`);
    const missing = this.names.filter((n) => !sd.tensors.has(n));
    if (missing.length) throw new Error(`${who}: state has no shadow for ${missing.map((n) => `'${n}'`).join(', ')}`);
    const extra = [...sd.tensors.keys()].filter((n) => !this.names.includes(n));
    if (extra.length) throw new Error(`${who}: state has shadows for unknown parameters ${extra.map((n) => `'${n}'`).join(', ')}`);
    this.names.forEach((n, k) => {
      const t = sd.tensors.get(n)!;
      const p = this.params[k];
      if (t.dtype !== 'float32' || t.shape.length !== p.shape.length || t.shape.some((d, j) => d !== p.shape[j])) {
        throw new Error(`${who}: shadow '${n}' is ${t.dtype} [${t.shape.join(', ')}], parameter is float32 [${p.shape.join(', ')}]`);
      }
    });
    this.names.forEach((n, k) => (this.shadow[k].data as Float32Array).set(sd.tensors.get(n)!.f32(who)));
    this.numUpdates = sd.state.numUpdates;
  }
}
