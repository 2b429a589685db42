/** Metrics: image (classifier features: FID-proxy, KID, precision/recall), 2-D (MMD, grid KL/JS), likelihoods, sequences. */
export * from './evaluate.js';
export * from './image_metrics.js';
export * from './mmd.js';
export * from './likelihood.js';
export { referenceIds, greedyVsBeam, seq2seqEvaluator } from './sequence_metrics.js';
export * from './text_metrics.js';
export { densityGrid, flowPointMetrics } from './flow_metrics.js';
export type { DensityModel } from './flow_metrics.js';
export * from './diffusion_metrics.js';
