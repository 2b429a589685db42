/** Public surface of src/optim: optimizers, learning-rate schedules, gradient clipping, EMA. */
export { Optimizer } from './optimizer.js';
export type {
  BaseOptions, HyperValue, ParamsInput, ParamGroupInput, ParamGroup, OptimizerStateJSON, OptimizerStateDict,
} from './optimizer.js';
export { SGD, SGD_DEFAULTS } from './sgd.js';
export type { SGDOptions } from './sgd.js';
export { Adam, AdamW, ADAM_DEFAULTS, ADAMW_DEFAULTS } from './adam.js';
export type { AdamOptions } from './adam.js';
export { RMSprop, RMSPROP_DEFAULTS } from './rmsprop.js';
export type { RMSpropOptions } from './rmsprop.js';
export { constantLR, stepLR, cosineLR, linearWarmup, LRScheduler } from './schedules.js';
export type { Schedule, HasParamGroups } from './schedules.js';
export { clipGradNorm, clipGradValue } from './clip.js';
export type { ClipGradNormOptions } from './clip.js';
export { EMA } from './ema.js';
export type { EMAOptions, EMAStateJSON } from './ema.js';
