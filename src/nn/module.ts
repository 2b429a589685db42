/**
 * `Module`, the base of every layer and model, with PyTorch's naming and state rules
 * (torch.nn.Module, https://pytorch.org/docs/stable/generated/torch.nn.Module.html).
 *
 * Parameters, buffers and child modules are registered explicitly under their PyTorch
 * names (`this.weight = this.registerParameter('weight', w)`), because TypeScript
 * fields are camelCase while checkpoint keys are snake_case (`in_proj_weight`,
 * `running_mean`). Registration order is the order of `namedParameters()` and of
 * `stateDict()` keys, exactly as attribute-assignment order in torch, so a genlab
 * state dict loads into the equivalent torch module and back. Loading copies values
 * into the existing tensors in place, so optimizers that hold parameter references
 * stay valid. Sequential and ModuleList name their children '0', '1', ...
 */
import { Tensor } from '../engine/tensor.js';
import { DTypeError, fmtShape, shapesEqual } from '../engine/shape.js';

/** A state dict: dotted PyTorch key -> tensor (detached, sharing the module's storage). */
export type StateDict = Record<string, Tensor>;

export interface LoadStateDictOptions {
  /** Require the keys to match exactly (PyTorch's default, true). Shapes must always match. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** Thrown by `loadStateDict`; its message lists every missing, unexpected and mis-shaped key. */
export class StateDictError extends Error {
  constructor(
    message: string,
    readonly missingKeys: string[],
    readonly unexpectedKeys: string[],
    readonly mismatchedKeys: string[],
  ) {
    super(message);
    this.name = 'StateDictError';
  }
}

/** A module whose forward maps one tensor to one tensor (what Sequential chains). */
export interface TensorModule extends Module {
  forward(x: Tensor): Tensor;
}

function checkName(owner: string, kind: string, name: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('.')) {
    throw new Error(`${owner}.register${kind}: name must be a non-empty string without '.', got ${JSON.stringify(name)}`);
  }
}

/**
 * Base class of layers and models.
 * @example
 * class MLP extends Module {
 *   fc1: Linear; fc2: Linear;
 *   constructor(rng: Rng) {
 *     super();
 *     this.fc1 = this.registerModule('fc1', new Linear(2, 16, rng));
 *     this.fc2 = this.registerModule('fc2', new Linear(16, 1, rng));
 *   }
 *   forward(x: Tensor): Tensor { return this.fc2.forward(this.fc1.forward(x).relu()); }
 * }
 * const m = new MLP(new Rng(0));
 * m.namedParameters().map(([n]) => n); // ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
 */
export class Module {
  /** Training mode (dropout active, batch norm uses batch statistics). */
  training = true;
  readonly #params = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #nonPersistent = new Set<string>();
  readonly #children = new Map<string, Module | null>();

  /**
   * Register a parameter under `name` (null declares an absent one, as `bias=False`).
   * The stored tensor is a float32 leaf with requiresGrad and its own contiguous
   * storage (a copy is made when `t` is a view); it is returned, so assign the result.
   */
  registerParameter<T extends Tensor | null>(name: string, t: T): T {
    const owner = this.constructor.name;
    checkName(owner, 'Parameter', name);
    if (this.#buffers.has(name) || this.#children.has(name)) throw new Error(`${owner}.registerParameter: '${name}' is already a buffer or child module`);
    if (t === null) {
      this.#params.set(name, null);
      return t;
    }
    if (t.dtype !== 'float32') throw new DTypeError(`${owner}.registerParameter('${name}'): parameters must be float32, got ${t.dtype}`);
    if (t.node !== null) throw new Error(`${owner}.registerParameter('${name}'): tensor is the result of an op; pass a leaf (use .detach())`);
    const own = ownsStorage(t) ? t : copyOf(t);
    own.requiresGrad = true;
    this.#params.set(name, own);
    return own as T;
  }

  /**
   * Register a buffer: state that is saved and loaded but not trained (BatchNorm's
   * running_mean). Non-persistent buffers are left out of `stateDict()`.
   */
  registerBuffer<T extends Tensor | null>(name: string, t: T, persistent = true): T {
    const owner = this.constructor.name;
    checkName(owner, 'Buffer', name);
    if (this.#params.has(name) || this.#children.has(name)) throw new Error(`${owner}.registerBuffer: '${name}' is already a parameter or child module`);
    const own = t === null ? null : ownsStorage(t) && t.node === null ? t : copyOf(t);
    this.#buffers.set(name, own);
    if (persistent) this.#nonPersistent.delete(name);
    else this.#nonPersistent.add(name);
    return own as T;
  }

  /** Register a child module; its parameters get the prefix `name.`. Returns the child. */
  registerModule<M extends Module | null>(name: string, m: M): M {
    const owner = this.constructor.name;
    checkName(owner, 'Module', name);
    if (this.#params.has(name) || this.#buffers.has(name)) throw new Error(`${owner}.registerModule: '${name}' is already a parameter or buffer`);
    if (m !== null && !(m instanceof Module)) throw new TypeError(`${owner}.registerModule('${name}'): not a Module`);
    this.#children.set(name, m);
    return m;
  }

  /** The parameter registered as `name` on this module (not its children). */
  getParameter(name: string): Tensor | null {
    if (!this.#params.has(name)) throw new Error(`${this.constructor.name}: no parameter '${name}'`);
    return this.#params.get(name) ?? null;
  }

  /** The buffer registered as `name` on this module (not its children). */
  getBuffer(name: string): Tensor | null {
    if (!this.#buffers.has(name)) throw new Error(`${this.constructor.name}: no buffer '${name}'`);
    return this.#buffers.get(name) ?? null;
  }

  /** Direct children in registration order. */
  namedChildren(): [string, Module][] {
    this.#checkFields();
    const out: [string, Module][] = [];
    for (const [n, m] of this.#children) if (m) out.push([n, m]);
    return out;
  }

  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module ('') and every descendant, depth first, each once. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const walk = (m: Module, p: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([p, m]);
      for (const [n, c] of m.namedChildren()) walk(c, p ? `${p}.${n}` : n);
    };
    walk(this, prefix);
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /**
   * Parameters with dotted names, in PyTorch's order (own parameters, then children
   * in registration order). A parameter shared by two modules is listed once.
   */
  namedParameters(prefix = '', recurse = true): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const mods: [string, Module][] = recurse ? this.namedModules(prefix) : [[prefix, this]];
    for (const [p, m] of mods) {
      for (const [n, t] of m.#params) {
        if (!t || seen.has(t)) continue;
        seen.add(t);
        out.push([p ? `${p}.${n}` : n, t]);
      }
    }
    return out;
  }

  parameters(recurse = true): Tensor[] {
    return this.namedParameters('', recurse).map(([, t]) => t);
  }

  /** Buffers with dotted names (BatchNorm: running_mean, running_var, num_batches_tracked). */
  namedBuffers(prefix = '', recurse = true): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const mods: [string, Module][] = recurse ? this.namedModules(prefix) : [[prefix, this]];
    for (const [p, m] of mods) {
      for (const [n, t] of m.#buffers) {
        if (!t || seen.has(t)) continue;
        seen.add(t);
        out.push([p ? `${p}.${n}` : n, t]);
      }
    }
    return out;
  }

  buffers(recurse = true): Tensor[] {
    return this.namedBuffers('', recurse).map(([, t]) => t);
  }

  /** [key, the registered tensor itself] for every state entry, in state-dict order. */
  #stateEntries(prefix: string, out: [string, Tensor][]): [string, Tensor][] {
    for (const [n, t] of this.#params) if (t) out.push([prefix + n, t]);
    for (const [n, t] of this.#buffers) if (t && !this.#nonPersistent.has(n)) out.push([prefix + n, t]);
    for (const [n, c] of this.namedChildren()) c.#stateEntries(`${prefix}${n}.`, out);
    return out;
  }

  /**
   * Parameters and persistent buffers under PyTorch's keys (own entries first, then
   * children), as detached tensors that share storage with the module. Shared
   * (tied) parameters appear under every key, as in torch.
   * @example
   * const sd = model.stateDict(); // { '0.weight': Tensor, '0.bias': Tensor, ... }
   */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [k, t] of this.#stateEntries('', [])) out[k] = t.detach();
    return out;
  }

  /**
   * Copy values from `sd` (a Record or Map of tensors) into this module's parameters
   * and buffers, in place. Throws one StateDictError naming every missing, unexpected
   * (when strict) and mis-shaped key; nothing is copied when it throws.
   */
  loadStateDict(sd: StateDict | Map<string, Tensor>, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = opts.strict ?? true;
    const given = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const entries = this.#stateEntries('', []);
    const expected = new Set(entries.map(([k]) => k));
    const missingKeys: string[] = [];
    const mismatched: string[] = [];
    const lines: string[] = [];
    for (const [k, t] of entries) {
      const src = given.get(k);
      if (src === undefined) {
        missingKeys.push(k);
        if (strict) lines.push(`missing key "${k}" (expected shape ${fmtShape(t.shape)})`);
      } else if (!(src instanceof Tensor)) {
        mismatched.push(k);
        lines.push(`value for "${k}" is not a Tensor`);
      } else if (!shapesEqual(src.shape, t.shape)) {
        mismatched.push(k);
        lines.push(`size mismatch for "${k}": state dict has ${fmtShape(src.shape)}, module has ${fmtShape(t.shape)}`);
      }
    }
    const unexpectedKeys = [...given.keys()].filter((k) => !expected.has(k));
    if (strict) for (const k of unexpectedKeys) lines.push(`unexpected key "${k}" (shape ${fmtShape(given.get(k)?.shape ?? [])})`);
    if (lines.length > 0) {
      throw new StateDictError(
        `loadStateDict(${this.constructor.name}): ${lines.length} problem${lines.length > 1 ? 's' : ''}:\n  ${lines.join('\n  ')}`,
        missingKeys, unexpectedKeys, mismatched,
      );
    }
    for (const [k, t] of entries) {
      const src = given.get(k);
      if (src) t.data.set(src.values(), t.offset);
    }
    return { missingKeys, unexpectedKeys };
  }

  /** Set training mode on this module and every descendant; returns this. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode (dropout off, batch norm uses running statistics); returns this. */
  eval(): this {
    return this.train(false);
  }

  /** Clear the gradient of every parameter (PyTorch's set_to_none=True). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Turn gradient tracking of every parameter on or off (freezing); returns this. */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  /** Number of scalar parameters (each shared parameter counted once). */
  numParameters(onlyTrainable = false): number {
    let n = 0;
    for (const p of this.parameters()) if (!onlyTrainable || p.requiresGrad) n += p.size;
    return n;
  }

  /** Call `fn` on every descendant and then this module (as torch's apply); returns this. */
  apply(fn: (m: Module) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  /** One-line description of this module's settings, shown by toString (override). */
  extraRepr(): string {
    return '';
  }

  /** A tree like torch's module repr. */
  toString(): string {
    const kids = this.namedChildren();
    const head = `${this.constructor.name}(${this.extraRepr()}`;
    if (kids.length === 0) return `${head})`;
    const body = kids.map(([n, m]) => `  (${n}): ${m.toString().split('\n').join('\n  ')}`);
    return `${head}\n${body.join('\n')}\n)`;
  }

  /**
   * Catch the common mistake of assigning a child module or a trainable tensor to a
   * field without registering it (it would silently be left out of parameters()).
   */
  #checkFields(): void {
    // Registered anywhere below this module (a field may alias a grandchild or a
    // child's parameter, e.g. tied weights); walked through the maps directly.
    let known: { mods: Set<Module>; params: Set<Tensor> } | null = null;
    const collect = (): { mods: Set<Module>; params: Set<Tensor> } => {
      const mods = new Set<Module>();
      const params = new Set<Tensor>();
      const walk = (m: Module): void => {
        if (mods.has(m)) return;
        mods.add(m);
        for (const t of m.#params.values()) if (t) params.add(t);
        for (const c of m.#children.values()) if (c) walk(c);
      };
      walk(this);
      return { mods, params };
    };
    const check = (field: string, v: unknown): void => {
      if (v instanceof Module) {
        known ??= collect();
        if (!known.mods.has(v)) {
          throw new Error(
            `${this.constructor.name}: field '${field}' holds a ${v.constructor.name} that is not registered; ` +
              `use this.registerModule(name, module) (or keep it in a #private field if it is not a child)`,
          );
        }
      } else if (v instanceof Tensor && v.requiresGrad && v.node === null) {
        known ??= collect();
        if (!known.params.has(v)) {
          throw new Error(
            `${this.constructor.name}: field '${field}' holds a trainable tensor ${fmtShape(v.shape)} that is not registered; ` +
              `use this.registerParameter(name, tensor)`,
          );
        }
      }
    };
    for (const [field, v] of Object.entries(this)) {
      if (Array.isArray(v)) v.forEach((e, i) => check(`${field}[${i}]`, e));
      else check(field, v);
    }
  }
}

function ownsStorage(t: Tensor): boolean {
  return t.isContiguous() && t.offset === 0 && t.data.length === t.size;
}

function copyOf(t: Tensor): Tensor {
  const v = t.values();
  const data = t.dtype === 'int32' ? Int32Array.from(v) : Float32Array.from(v);
  return new Tensor(data, t.shape);
}

/**
 * Modules applied in order; children are named '0', '1', ... as torch.nn.Sequential.
 * @example
 * const net = new Sequential(new Linear(2, 8, rng), new ReLU(), new Linear(8, 1, rng));
 * const y = net.forward(x);
 */
export class Sequential extends Module {
  readonly #layers: TensorModule[] = [];

  constructor(...layers: TensorModule[]) {
    super();
    for (const l of layers) this.append(l);
  }

  /** Add a module at the end (named by its position); returns this. */
  append(m: TensorModule): this {
    this.registerModule(String(this.#layers.length), m);
    this.#layers.push(m);
    return this;
  }

  get length(): number {
    return this.#layers.length;
  }

  /** The i-th module (negative counts from the end). */
  at(i: number): TensorModule {
    const m = this.#layers.at(i);
    if (!m) throw new RangeError(`Sequential.at: index ${i} out of range for ${this.#layers.length} modules`);
    return m;
  }

  [Symbol.iterator](): Iterator<TensorModule> {
    return this.#layers[Symbol.iterator]();
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.#layers) y = m.forward(y);
    return y;
  }
}

/** A list of modules registered as '0', '1', ... (torch.nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    this.registerModule(String(this.#items.length), m);
    this.#items.push(m);
    return this;
  }

  get length(): number {
    return this.#items.length;
  }

  at(i: number): M {
    const m = this.#items.at(i);
    if (!m) throw new RangeError(`ModuleList.at: index ${i} out of range for ${this.#items.length} modules`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }
}
