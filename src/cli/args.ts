/**
 * Command-line parsing: positionals, `--flag`, `--key value`, `--key=value`, and the
 * dotted sections `--model.key=value` / `--train.key=value` collected apart. Unknown
 * flags are usage errors that list the valid ones.
 */

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const BOOLEAN_FLAGS = new Set(['json', 'quiet', 'quick', 'help', 'h']);

export class ParsedArgs {
  readonly positional: string[] = [];
  readonly flags = new Map<string, string>();
  readonly model: Record<string, string> = {};
  readonly train: Record<string, string> = {};
  readonly sample: Record<string, string> = {};

  has(k: string): boolean {
    return this.flags.has(k);
  }
  str(k: string): string | undefined {
    return this.flags.get(k);
  }
  int(k: string): number | undefined {
    const v = this.flags.get(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n)) throw new UsageError(`--${k}: expected an integer, got ${JSON.stringify(v)}`);
    return n;
  }
  bool(k: string): boolean {
    const v = this.flags.get(k);
    return v !== undefined && v !== 'false' && v !== '0';
  }
  /** Throw a usage error for any flag not in `known` (help is always allowed). */
  allow(known: string[]): void {
    for (const k of this.flags.keys()) {
      if (k === 'help' || k === 'h') continue;
      if (!known.includes(k)) throw new UsageError(`unknown option --${k}; valid options: ${known.map((x) => '--' + x).join(', ')}`);
    }
  }
}

export function parseArgs(argv: string[]): ParsedArgs {
  const a = new ParsedArgs();
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i];
    if (!tok.startsWith('--') || tok === '--') {
      if (tok === '-h') a.flags.set('h', '');
      else a.positional.push(tok);
      continue;
    }
    const eq = tok.indexOf('=');
    let key = eq >= 0 ? tok.slice(2, eq) : tok.slice(2);
    let value: string | undefined = eq >= 0 ? tok.slice(eq + 1) : undefined;
    if (value === undefined) {
      const next = argv[i + 1];
      if (!BOOLEAN_FLAGS.has(key) && next !== undefined && !next.startsWith('--')) {
        value = next;
        i++;
      } else value = BOOLEAN_FLAGS.has(key) || key.includes('.') ? 'true' : '';
    }
    if (key === '') throw new UsageError(`empty option name in ${JSON.stringify(tok)}`);
    const dot = key.indexOf('.');
    if (dot >= 0) {
      const section = key.slice(0, dot);
      key = key.slice(dot + 1);
      if (section === 'model') a.model[key] = value;
      else if (section === 'train') a.train[key] = value;
      else if (section === 'sample') a.sample[key] = value;
      else throw new UsageError(`unknown option section --${section}.${key}; use --model.KEY, --train.KEY or --sample.KEY`);
      continue;
    }
    if (value === '' && !BOOLEAN_FLAGS.has(key)) throw new UsageError(`--${key} needs a value`);
    a.flags.set(key, value);
  }
  return a;
}
