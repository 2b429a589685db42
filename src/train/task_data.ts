/**
 * Generated sequence tasks (being written): copy, repeat-copy, associative recall.
 */
import type { DataOptions, DataSource } from './data_source.js';

/** Names of the generated sequence tasks accepted by --data. */
export function taskDataNames(): string[] {
  return [];
}

export function loadTaskSource(spec: string, opts: DataOptions): DataSource {
  throw new Error(`sequence task '${spec}' is not available yet (${JSON.stringify(opts)})`);
}
