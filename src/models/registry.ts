/**
 * Model registry: maps a `type` string to its defaults, presets and constructor, and
 * resolves a config from defaults + preset + dotted overrides with errors that name
 * the offending key and list the valid ones (nanoGPT's configurator, made strict).
 */
import type { Rng } from '../engine/rng.js';
import type { DataInfo, DataKind, GenerativeModel } from './contract.js';

export type ConfigValue = number | string | boolean | number[];
export type Config = Record<string, ConfigValue>;

/**
 * A named preset. `forData` refines it for one built-in data set, e.g. fewer steps on
 * MNIST than on the 2-D toys so that `small` keeps its time budget on both.
 */
export interface Preset {
  model?: Config;
  train?: Config;
  forData?: Record<string, { model?: Config; train?: Config }>;
}

export interface ModelEntry {
  type: string;
  description: string;
  /** Kinds of data the model trains on, and the built-in set used by default. */
  data: DataKind[];
  defaultData: string;
  defaults: Config;
  /** Named presets: partial overrides of `defaults` (and of the trainer's config). */
  presets: Record<string, Preset>;
  /** Allowed values of string fields, for error messages. */
  choices?: Record<string, readonly string[]>;
  create(config: Config, rng: Rng, data: DataInfo): GenerativeModel;
}

const entries = new Map<string, ModelEntry>();

export function registerModel(e: ModelEntry): void {
  if (entries.has(e.type)) throw new Error(`registerModel: type '${e.type}' is already registered`);
  entries.set(e.type, e);
}

export function modelEntry(type: string): ModelEntry {
  const e = entries.get(type);
  if (!e) throw new Error(`unknown model type '${type}'; known types: ${[...entries.keys()].sort().join(', ')}`);
  return e;
}

export function modelTypes(): string[] {
  return [...entries.keys()].sort();
}

/** Error for a bad config key or value; `usage` marks a user error (exit code 2). */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parse a command-line string into the type of `like` (the default's type). */
export function coerce(section: string, key: string, raw: string | ConfigValue, like: ConfigValue, choices?: readonly string[]): ConfigValue {
  const where = `${section}.${key}`;
  if (typeof raw !== 'string') {
    if (typeof raw !== typeof like || Array.isArray(raw) !== Array.isArray(like)) {
      throw new ConfigError(`${where}: expected ${describe(like)}, got ${JSON.stringify(raw)}`);
    }
    return raw;
  }
  if (typeof like === 'number') {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v)) throw new ConfigError(`${where}: expected a number, got ${JSON.stringify(raw)}`);
    return v;
  }
  if (typeof like === 'boolean') {
    if (raw === 'true' || raw === '1' || raw === '') return true;
    if (raw === 'false' || raw === '0') return false;
    throw new ConfigError(`${where}: expected true or false, got ${JSON.stringify(raw)}`);
  }
  if (Array.isArray(like)) {
    const parts = raw.split(',').map((s) => Number(s.trim()));
    if (parts.some((v) => !Number.isFinite(v))) throw new ConfigError(`${where}: expected comma-separated numbers, got ${JSON.stringify(raw)}`);
    return parts;
  }
  if (choices && !choices.includes(raw)) throw new ConfigError(`${where}: ${JSON.stringify(raw)} is not one of ${choices.join(', ')}`);
  return raw;
}

function describe(v: ConfigValue): string {
  return Array.isArray(v) ? 'a list of numbers' : typeof v === 'number' ? 'a number' : typeof v === 'boolean' ? 'true or false' : 'a string';
}

/**
 * The preset layers for a run: the preset's model/train overrides, then its
 * refinement for `data` when it has one. Unknown preset names are errors that list
 * the model's presets.
 */
export function presetLayers(entry: ModelEntry, name: string | undefined, data: string): { model: Config[]; train: Config[] } {
  if (name === undefined) return { model: [], train: [] };
  const p = entry.presets[name];
  if (!p) throw new Error(`model ${entry.type} has no preset '${name}'; presets: ${Object.keys(entry.presets).join(', ')}`);
  const d = p.forData?.[data];
  return { model: [p.model ?? {}, d?.model ?? {}], train: [p.train ?? {}, d?.train ?? {}] };
}

/**
 * defaults <- preset <- overrides, checking every key against the defaults.
 * @example
 * resolveConfig('model', VAE_DEFAULTS, undefined, { latentDim: '16' }) // latentDim: 16
 */
export function resolveConfig(
  section: string, defaults: Config, choices: Record<string, readonly string[]> | undefined,
  ...layers: (Record<string, string | ConfigValue> | undefined)[]
): Config {
  const out: Config = { ...defaults };
  for (const layer of layers) {
    if (!layer) continue;
    for (const [k, v] of Object.entries(layer)) {
      if (!(k in defaults)) {
        throw new ConfigError(`unknown key ${section}.${k}; valid keys: ${Object.keys(defaults).map((x) => `${section}.${x}`).join(', ')}`);
      }
      out[k] = coerce(section, k, v, defaults[k], choices?.[k]);
    }
  }
  return out;
}
