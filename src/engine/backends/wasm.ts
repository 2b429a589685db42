/** The wasm backend: the same C++ kernels compiled to wasm32+simd128 (not built yet). */
import type { Backend } from './backend.js';

export function loadWasm(): Backend | null {
  throw new Error('wasm module not built');
}
