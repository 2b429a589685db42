/** Built-in and user data sets, tokenizers and batching. */
export * from './toy2d.js';
export * from './mnist.js';
export * from './text.js';
export * from './tokenizer.js';
export * from './batching.js';
