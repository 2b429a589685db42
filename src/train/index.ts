/** Training: the trainer, data sources for models, progress display, checkpoints. */
export * from './trainer.js';
export * from './data_source.js';
export * from './checkpoint.js';
export { Progress } from './progress.js';
