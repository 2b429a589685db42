/** The engine's public surface: tensors, autograd, ops, random numbers, backends. */
export { Tensor, noGrad, enableGrad, isGradEnabled, grad, tidy, keep, setCheckNumerics, NumericsError, fromOp } from './tensor.js';
export type { DType, TensorInit, GradOptions, BackwardFn } from './tensor.js';
export { Rng } from './rng.js';
export type { RngState } from './rng.js';
export { ShapeError, DTypeError, sizeOf, stridesOf, broadcastShapes } from './shape.js';
export type { Shape } from './shape.js';
export { tensor, full, zeros, ones, zerosLike, onesLike, arange, linspace, eye } from './creation.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/shape_ops.js';
export * from './ops/matmul.js';
export * from './ops/indexing.js';
export * from './ops/random.js';
export * from './ops/conv.js';
export * from './ops/fused.js';
export * from './ops/memory.js';
export { backend, setBackend, withBackend, hasBackend, backendError } from './backends/index.js';
export type { Backend, BackendName } from './backends/index.js';
