/** The native backend: the C++ Node-API addon built from native/ (not built yet). */
import type { Backend } from './backend.js';

export function loadNative(): Backend | null {
  throw new Error('native addon not built');
}
