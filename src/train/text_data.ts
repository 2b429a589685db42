/**
 * Text data sources for sequence models (being written): built-in corpora and user
 * text files turned into token tensors.
 */
import type { DataOptions, DataSource } from './data_source.js';

/** Names of the built-in text data sets accepted by --data. */
export function textDataNames(): string[] {
  return [];
}

export function loadTextSource(spec: string, opts: DataOptions): DataSource {
  throw new Error(`text data '${spec}' is not available yet (${JSON.stringify(opts)})`);
}
