/**
 * Convolutions, pooling and upsampling (NCHW, PyTorch semantics).
 * Being implemented: the signatures below are the contract.
 */
import type { Tensor } from '../tensor.js';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  outputPadding?: number | [number, number];
}

export interface Conv1dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
}

export interface Pool2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
}

const todo = (op: string): never => {
  throw new Error(`${op}: not implemented yet`);
};

/** x [N, Cin, H, W], weight [Cout, Cin/groups, kh, kw], bias [Cout] -> [N, Cout, oh, ow]. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  return todo('conv2d' + x + weight + bias + opts);
}
/** x [N, Cin, L], weight [Cout, Cin/groups, k], bias [Cout] -> [N, Cout, oL]. */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv1dOptions = {}): Tensor {
  return todo('conv1d' + x + weight + bias + opts);
}
/** x [N, Cin, H, W], weight [Cin, Cout/groups, kh, kw] (PyTorch layout), bias [Cout]. */
export function convTranspose2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: ConvTranspose2dOptions = {}): Tensor {
  return todo('convTranspose2d' + x + weight + bias + opts);
}
export function maxPool2d(x: Tensor, kernelSize: number | [number, number], opts: Pool2dOptions = {}): Tensor {
  return todo('maxPool2d' + x + kernelSize + opts);
}
/** Average pooling; countIncludePad as PyTorch's default (true). */
export function avgPool2d(x: Tensor, kernelSize: number | [number, number], opts: Pool2dOptions & { countIncludePad?: boolean } = {}): Tensor {
  return todo('avgPool2d' + x + kernelSize + opts);
}
/** Upsample [N, C, H, W] by an integer scale or to a size; mode nearest or bilinear. */
export function upsample(
  x: Tensor,
  opts: { scaleFactor?: number | [number, number]; size?: [number, number]; mode?: 'nearest' | 'bilinear'; alignCorners?: boolean },
): Tensor {
  return todo('upsample' + x + opts);
}
