/** Public surface of src/io: safetensors reading and writing. */
export {
  encodeSafetensors, decodeSafetensors, saveSafetensors, loadSafetensors, readSafetensorsHeader, writeFileSynced,
  SafetensorsError, MAX_HEADER_BYTES,
} from './safetensors.js';
export type { SafetensorsDType, SafetensorsEntry, SafetensorsHeader, SafetensorsContent, TensorMap } from './safetensors.js';
