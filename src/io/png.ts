/**
 * PNG images without a browser: encode/decode through the `pngjs` package, image grids
 * of model samples, and reading a user's folder of PNGs into an image tensor.
 * Pixel data crosses this module as RGBA bytes or as NCHW float tensors in [0, 1].
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import pngjs from 'pngjs';
import { Tensor } from '../engine/tensor.js';
import { fmtShape } from '../engine/shape.js';

const { PNG } = pngjs;

/** An RGBA image, 4 bytes per pixel, row-major. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export function encodePng(img: RgbaImage): Uint8Array {
  const png = new PNG({ width: img.width, height: img.height });
  png.data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  return PNG.sync.write(png);
}

export function decodePng(bytes: Uint8Array, file = '<buffer>'): RgbaImage {
  try {
    const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return { width: png.width, height: png.height, data: new Uint8Array(png.data) };
  } catch (e) {
    throw new Error(`${file}: not a readable PNG (${(e as Error).message})`);
  }
}

/** Write a PNG atomically (temporary name, then rename), creating the folder. */
export function writePng(path: string, img: RgbaImage): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, encodePng(img));
  renameSync(tmp, path);
}

export function readPng(path: string): RgbaImage {
  return decodePng(readFileSync(path), path);
}

/**
 * Tile images [N, C, H, W] (C = 1 or 3, values in [0, 1], clamped) into one RGBA grid
 * with `pad` pixels of `background` between tiles.
 * @example
 * writePng('samples.png', imageGrid(samples, { cols: 8 }));
 */
export function imageGrid(images: Tensor, opts: { cols?: number; pad?: number; background?: number; scale?: number } = {}): RgbaImage {
  if (images.rank !== 4 || (images.shape[1] !== 1 && images.shape[1] !== 3)) {
    throw new Error(`imageGrid: expected images [N, 1|3, H, W], got ${fmtShape(images.shape)}`);
  }
  const [N, C, H, W] = images.shape;
  const cols = Math.max(1, Math.min(opts.cols ?? Math.ceil(Math.sqrt(N)), N));
  const rows = Math.max(1, Math.ceil(N / cols));
  const pad = opts.pad ?? 2;
  const s = opts.scale ?? 1;
  const width = cols * (W * s + pad) + pad;
  const height = rows * (H * s + pad) + pad;
  const data = new Uint8Array(width * height * 4);
  const bg = Math.round((opts.background ?? 0.5) * 255);
  for (let i = 0; i < width * height; i++) {
    data.set([bg, bg, bg, 255], i * 4);
  }
  const v = images.f32('imageGrid');
  const byte = (x: number): number => (Number.isNaN(x) ? 0 : Math.round(Math.min(1, Math.max(0, x)) * 255));
  for (let n = 0; n < N; n++) {
    const ox = pad + (n % cols) * (W * s + pad);
    const oy = pad + Math.floor(n / cols) * (H * s + pad);
    for (let y = 0; y < H * s; y++) {
      for (let x = 0; x < W * s; x++) {
        const sy = Math.floor(y / s);
        const sx = Math.floor(x / s);
        const p = ((oy + y) * width + ox + x) * 4;
        for (let c = 0; c < 3; c++) {
          const ch = C === 1 ? 0 : c;
          data[p + c] = byte(v[((n * C + ch) * H + sy) * W + sx]);
        }
        data[p + 3] = 255;
      }
    }
  }
  return { width, height, data };
}

/**
 * Every .png in a folder (sorted by name) as [N, C, H, W] floats in [0, 1]; C = 1 when
 * `grayscale` (luma), else 3. All images must have the same size; errors name the file.
 */
export function loadPngFolder(dir: string, opts: { grayscale?: boolean } = {}): Tensor {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => extname(f).toLowerCase() === '.png').sort();
  } catch {
    throw new Error(`${dir}: not a readable folder`);
  }
  if (files.length === 0) throw new Error(`${dir}: no .png files`);
  const C = opts.grayscale ? 1 : 3;
  let H = 0;
  let W = 0;
  let out = new Float32Array(0);
  files.forEach((f, n) => {
    const path = join(dir, f);
    const img = readPng(path);
    if (n === 0) {
      H = img.height;
      W = img.width;
      out = new Float32Array(files.length * C * H * W);
    } else if (img.height !== H || img.width !== W) {
      throw new Error(`${path}: image is ${img.width}x${img.height}, the first image ${files[0]} is ${W}x${H}`);
    }
    for (let i = 0; i < H * W; i++) {
      const r = img.data[i * 4] / 255;
      const g = img.data[i * 4 + 1] / 255;
      const b = img.data[i * 4 + 2] / 255;
      if (C === 1) out[n * H * W + i] = 0.299 * r + 0.587 * g + 0.114 * b;
      else {
        out[(n * 3 + 0) * H * W + i] = r;
        out[(n * 3 + 1) * H * W + i] = g;
        out[(n * 3 + 2) * H * W + i] = b;
      }
    }
  });
  return new Tensor(out, [files.length, C, H, W]);
}
