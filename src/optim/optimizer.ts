/**
 * The optimizer base class: parameter groups, `step()` / `zeroGrad()`, and a state dict
 * split into plain JSON (hyper-parameters, step counts) and named tensors (moments), so
 * a checkpoint can store the JSON as optimizer.json and the tensors as safetensors.
 *
 * Semantics follow torch.optim.Optimizer
 * (https://pytorch.org/docs/stable/optim.html): parameters are float32 leaf tensors
 * updated in place, a parameter whose `.grad` is null is skipped, per-group options
 * override the defaults, and the state is keyed by the parameter's position over all
 * groups (torch's integer ids), with torch's buffer names (`exp_avg`, `momentum_buffer`).
 */
import { Tensor } from '../engine/tensor.js';

/** A hyper-parameter value that survives JSON (betas are a pair). */
export type HyperValue = number | boolean | number[];

/** Options every optimizer has. */
export interface BaseOptions {
  /** Learning rate (set by an `LRScheduler` during training). */
  lr: number;
}

/** What an optimizer takes: tensors, named tensors, or parameter groups with overrides. */
export type ParamsInput<O> =
  | Iterable<Tensor>
  | Iterable<readonly [string, Tensor]>
  | Iterable<ParamGroupInput<O>>;

/** One parameter group as given to the constructor: its params and option overrides. */
export type ParamGroupInput<O> = { params: Iterable<Tensor> | Iterable<readonly [string, Tensor]> } & Partial<O>;

/** A resolved parameter group: every option filled in. */
export type ParamGroup<O> = O & {
  params: Tensor[];
  /** Parameter names where they were given (null otherwise); used to check a loaded state. */
  names: (string | null)[];
};

/** JSON half of an optimizer's state (optimizer.json in a checkpoint). */
export interface OptimizerStateJSON {
  format: 'genlab-optimizer';
  version: 1;
  /** Class name: 'SGD', 'Adam', 'AdamW', 'RMSprop'. */
  type: string;
  /** Each group's options and the global indices of its parameters. */
  paramGroups: ({ params: number[] } & Record<string, HyperValue>)[];
  /** Shape of every parameter, by global index (checked on load). */
  paramShapes: number[][];
  /** Name of every parameter where known (checked on load when both sides have one). */
  paramNames: (string | null)[];
  /** Update count of each parameter that has state, by global index. */
  steps: Record<string, number>;
}

/**
 * An optimizer's state: JSON plus tensors named `<param index>.<buffer>`, e.g.
 * `0.exp_avg`, `3.momentum_buffer` (torch's `state[i][buffer]`). The tensors are the
 * optimizer's own buffers, not copies: save them, do not modify them.
 */
export interface OptimizerStateDict {
  state: OptimizerStateJSON;
  tensors: Map<string, Tensor>;
}

/** Per-parameter state: update count and named buffers shaped like the parameter. */
export interface ParamState {
  step: number;
  buffers: Map<string, Tensor>;
}

/** The float32 storage of a contiguous tensor (a zero-copy view for in-place updates). */
export function storageOf(t: Tensor, what: string): Float32Array {
  if (t.dtype !== 'float32') throw new TypeError(`${what}: expected float32, got ${t.dtype} of shape [${t.shape.join(', ')}]`);
  if (!t.isContiguous()) throw new TypeError(`${what}: tensor of shape [${t.shape.join(', ')}] is not contiguous; updates need its storage`);
  return (t.data as Float32Array).subarray(t.offset, t.offset + t.size);
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function isTensorPair(x: unknown): x is readonly [string, Tensor] {
  return Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && x[1] instanceof Tensor;
}

function splitNamed(items: Iterable<Tensor> | Iterable<readonly [string, Tensor]>, who: string): { params: Tensor[]; names: (string | null)[] } {
  const params: Tensor[] = [];
  const names: (string | null)[] = [];
  for (const it of items as Iterable<unknown>) {
    if (it instanceof Tensor) {
      params.push(it);
      names.push(null);
    } else if (isTensorPair(it)) {
      params.push(it[1]);
      names.push(it[0]);
    } else {
      throw new TypeError(`${who}: expected Tensor or [name, Tensor] entries in params`);
    }
  }
  return { params, names };
}

export abstract class Optimizer<O extends BaseOptions> {
  /** Class name, stored in the state dict and checked on load. */
  abstract readonly type: string;
  readonly defaults: O;
  readonly paramGroups: ParamGroup<O>[] = [];
  /** State of each parameter that has been updated at least once. */
  protected readonly state = new Map<Tensor, ParamState>();

  constructor(params: ParamsInput<O>, defaults: O, who: string) {
    this.defaults = { ...defaults };
    const items = [...(params as Iterable<unknown>)];
    if (items.length === 0) throw new Error(`${who}: got an empty parameter list`);
    const isGroup = (x: unknown): x is ParamGroupInput<O> =>
      typeof x === 'object' && x !== null && !(x instanceof Tensor) && !Array.isArray(x) && 'params' in x;
    const groups: ParamGroupInput<O>[] = isGroup(items[0])
      ? items.map((g, i) => {
          if (!isGroup(g)) throw new TypeError(`${who}: param group ${i} must be an object with 'params'`);
          return g;
        })
      : [{ params: items as Tensor[] } as unknown as ParamGroupInput<O>];
    const seen = new Set<Tensor>();
    groups.forEach((g, gi) => {
      for (const key of Object.keys(g)) {
        if (key !== 'params' && !(key in defaults)) {
          throw new Error(`${who}: param group ${gi} has unknown option '${key}' (known: ${Object.keys(defaults).join(', ')})`);
        }
      }
      const { params: gParams, names } = splitNamed(g.params, who);
      if (gParams.length === 0) throw new Error(`${who}: param group ${gi} is empty`);
      gParams.forEach((p, i) => {
        const label = `${who}: param ${names[i] ?? i} of group ${gi} (shape ${shapeStr(p.shape)})`;
        if (p.dtype !== 'float32') throw new TypeError(`${label} is ${p.dtype}; only float32 tensors can be optimized`);
        if (p.node !== null) throw new Error(`${label} is not a leaf tensor (it was computed by an op); optimize leaves`);
        if (!p.isContiguous()) throw new Error(`${label} is not contiguous; optimizers update the storage in place`);
        if (seen.has(p)) throw new Error(`${label} appears more than once`);
        seen.add(p);
      });
      const { params: _drop, ...overrides } = g;
      const group = { ...this.defaults, ...overrides, params: gParams, names } as ParamGroup<O>;
      this.validate(group, `${who} (group ${gi})`);
      this.paramGroups.push(group);
    });
  }

  /** Check one group's options; throws with the option's name. */
  protected abstract validate(group: O, who: string): void;

  /** Buffer names this optimizer keeps per parameter (torch's state keys). */
  protected abstract readonly bufferNames: readonly string[];

  /**
   * Update one parameter in place. `p` is the parameter's storage, `g` its gradient
   * (read-only), `st` its state with `step` already incremented.
   */
  protected abstract update(p: Float32Array, g: Float32Array, group: ParamGroup<O>, st: ParamState, param: Tensor): void;

  /** Learning rate of the first group; setting it sets every group's lr. */
  get lr(): number {
    return this.paramGroups[0].lr;
  }

  set lr(v: number) {
    for (const g of this.paramGroups) g.lr = v;
  }

  /** Every parameter, in global-index order. */
  params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /**
   * One update of every parameter that has a gradient.
   * @example
   * const opt = new Adam(model.parameters(), { lr: 1e-3 });
   * opt.zeroGrad(); loss.backward(); opt.step();
   */
  step(): void {
    for (const group of this.paramGroups) {
      for (const param of group.params) {
        if (param.grad === null) continue;
        const grad = param.grad;
        if (grad.size !== param.size || grad.shape.length !== param.shape.length || grad.shape.some((d, i) => d !== param.shape[i])) {
          throw new Error(`${this.type}.step: gradient shape ${shapeStr(grad.shape)} does not match parameter shape ${shapeStr(param.shape)}`);
        }
        let st = this.state.get(param);
        if (!st) {
          st = { step: 0, buffers: new Map() };
          this.state.set(param, st);
        }
        st.step++;
        this.update(storageOf(param, `${this.type}.step`), grad.f32(`${this.type}.step`), group, st, param);
      }
    }
  }

  /**
   * Clear every parameter's gradient: set it to null (default, as torch 2's
   * `set_to_none=True`), or fill it with zeros.
   */
  zeroGrad(setToNone = true): void {
    for (const p of this.params()) {
      if (setToNone || p.grad === null) p.grad = null;
      else if (p.grad.isContiguous() && !p.grad.requiresGrad) storageOf(p.grad, `${this.type}.zeroGrad`).fill(0);
      else p.grad = new Tensor(new Float32Array(p.size), p.shape);
    }
  }

  /** The buffer `name` of `param`'s state, created as zeros on first use. */
  protected buffer(st: ParamState, name: string, param: Tensor): Float32Array {
    let b = st.buffers.get(name);
    if (!b) {
      b = new Tensor(new Float32Array(param.size), param.shape);
      st.buffers.set(name, b);
    }
    return b.data as Float32Array;
  }

  /** The optimizer state as JSON plus named tensors (see `OptimizerStateDict`). */
  stateDict(): OptimizerStateDict {
    const all = this.params();
    const index = new Map(all.map((p, i) => [p, i]));
    const tensors = new Map<string, Tensor>();
    const steps: Record<string, number> = {};
    for (const [p, st] of this.state) {
      const i = index.get(p)!;
      steps[String(i)] = st.step;
      for (const [name, t] of st.buffers) tensors.set(`${i}.${name}`, t);
    }
    let k = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const { params, names: _names, ...opts } = g;
      const out: { params: number[] } & Record<string, HyperValue> = { ...(opts as Record<string, HyperValue>), params: params.map(() => k++) };
      for (const [key, v] of Object.entries(out)) if (Array.isArray(v)) out[key] = [...v];
      return out;
    });
    return {
      state: {
        format: 'genlab-optimizer',
        version: 1,
        type: this.type,
        paramGroups,
        paramShapes: all.map((p) => [...p.shape]),
        paramNames: this.paramGroups.flatMap((g) => g.names),
        steps,
      },
      tensors,
    };
  }

  /**
   * Restore a state from `stateDict()` (possibly read back from JSON and safetensors).
   * Group options (lr included) are restored as torch does. Checks the optimizer type,
   * group sizes, parameter shapes and names, and every tensor's name and shape; on
   * error nothing is changed.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const who = `${this.type}.loadStateDict`;
    const s = sd?.state;
    if (!s || s.format !== 'genlab-optimizer' || !Array.isArray(s.paramGroups)) {
      throw new Error(`${who}: not a genlab optimizer state (missing format/paramGroups)`);
    }
    if (s.version !== 1) throw new Error(`${who}: unsupported state version ${String(s.version)}`);
    if (s.type !== this.type) throw new Error(`${who}: state was saved by ${s.type}, not ${this.type}`);
    if (s.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`${who}: state has ${s.paramGroups.length} param groups, optimizer has ${this.paramGroups.length}`);
    }
    const all = this.params();
    const names = this.paramGroups.flatMap((g) => g.names);
    let k = 0;
    s.paramGroups.forEach((g, gi) => {
      const n = this.paramGroups[gi].params.length;
      if (!Array.isArray(g.params) || g.params.length !== n) {
        throw new Error(`${who}: group ${gi} has ${g.params?.length} params in the state, ${n} in the optimizer`);
      }
      g.params.forEach((idx, j) => {
        if (idx !== k + j) throw new Error(`${who}: group ${gi} lists param index ${idx} at position ${j}, expected ${k + j}`);
      });
      k += n;
    });
    if (!Array.isArray(s.paramShapes) || s.paramShapes.length !== all.length) {
      throw new Error(`${who}: state describes ${s.paramShapes?.length} params, optimizer has ${all.length}`);
    }
    all.forEach((p, i) => {
      const want = s.paramShapes[i];
      const label = `param ${i}${names[i] ? ` ('${names[i]}')` : ''}`;
      if (!Array.isArray(want) || want.length !== p.shape.length || want.some((d, j) => d !== p.shape[j])) {
        throw new Error(`${who}: ${label} has shape ${shapeStr(p.shape)}, the state was saved for ${shapeStr(want ?? [])}`);
      }
      const savedName = s.paramNames?.[i] ?? null;
      if (savedName !== null && names[i] !== null && savedName !== names[i]) {
        throw new Error(`${who}: param ${i} is '${names[i]}', the state was saved for '${savedName}'`);
      }
    });
    // Build the new state completely before replacing the old one.
    const next = new Map<Tensor, ParamState>();
    for (const [key, step] of Object.entries(s.steps ?? {})) {
      const i = Number(key);
      if (!Number.isInteger(i) || i < 0 || i >= all.length) throw new Error(`${who}: step count for unknown param index '${key}'`);
      if (!Number.isInteger(step) || step < 0) throw new Error(`${who}: step count of param ${i} is ${step}, not a non-negative integer`);
      next.set(all[i], { step, buffers: new Map() });
    }
    for (const [key, t] of sd.tensors) {
      const m = /^(\d+)\.(.+)$/.exec(key);
      if (!m) throw new Error(`${who}: unexpected state tensor '${key}' (expected '<index>.<buffer>')`);
      const i = Number(m[1]);
      const buf = m[2];
      if (i >= all.length) throw new Error(`${who}: state tensor '${key}' refers to param ${i}, optimizer has ${all.length}`);
      if (!this.bufferNames.includes(buf)) {
        throw new Error(`${who}: state tensor '${key}': ${this.type} has no buffer '${buf}' (known: ${this.bufferNames.join(', ')})`);
      }
      const p = all[i];
      if (t.dtype !== 'float32') throw new Error(`${who}: state tensor '${key}' is ${t.dtype}, expected float32`);
      if (t.shape.length !== p.shape.length || t.shape.some((d, j) => d !== p.shape[j])) {
        throw new Error(`${who}: state tensor '${key}' has shape ${shapeStr(t.shape)}, param ${i} has shape ${shapeStr(p.shape)}`);
      }
      const st = next.get(p);
      if (!st) throw new Error(`${who}: state tensor '${key}' has no step count for param ${i}`);
      st.buffers.set(buf, new Tensor(Float32Array.from(t.f32(who)), p.shape));
    }
    const groups = s.paramGroups.map((g, gi) => {
      const { params: _p, ...opts } = g;
      const merged = { ...this.paramGroups[gi] } as ParamGroup<O>;
      for (const [key, v] of Object.entries(opts)) {
        if (!(key in this.defaults)) throw new Error(`${who}: group ${gi} has unknown option '${key}'`);
        (merged as unknown as Record<string, unknown>)[key] = Array.isArray(v) ? [...v] : v;
      }
      this.validate(merged, `${who} (group ${gi})`);
      return merged;
    });
    groups.forEach((g, gi) => Object.assign(this.paramGroups[gi], g));
    this.state.clear();
    for (const [p, st] of next) this.state.set(p, st);
  }
}

/** Throw unless `v` is a finite number >= lo (and < hi when given), naming the option. */
export function checkRange(who: string, name: string, v: unknown, lo: number, hi = Infinity, hiInclusive = false): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || (hiInclusive ? v > hi : v >= hi)) {
    const range = hi === Infinity ? `>= ${lo}` : `in [${lo}, ${hi}${hiInclusive ? ']' : ')'}`;
    throw new RangeError(`${who}: ${name} must be a number ${range}, got ${String(v)}`);
  }
}

/** Throw unless `v` is a boolean. */
export function checkBool(who: string, name: string, v: unknown): void {
  if (typeof v !== 'boolean') throw new TypeError(`${who}: ${name} must be a boolean, got ${String(v)}`);
}
