/**
 * Small raster plots written as PNG without a browser: 2-D scatter plots (data vs
 * samples), line plots (loss curves), and heat maps (densities). A 3x5 pixel font
 * draws tick labels, titles and legends; everything is drawn into an RGBA buffer.
 */
import type { RgbaImage } from './png.js';

type Rgb = [number, number, number];

export const COLORS: Rgb[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127],
];

// 3x5 glyphs, rows top to bottom, '#' = ink.
const GLYPHS: Record<string, string> = {
  '0': '###,#.#,#.#,#.#,###', '1': '.#.,##.,.#.,.#.,###', '2': '###,..#,###,#..,###', '3': '###,..#,.##,..#,###',
  '4': '#.#,#.#,###,..#,..#', '5': '###,#..,###,..#,###', '6': '###,#..,###,#.#,###', '7': '###,..#,.#.,.#.,.#.',
  '8': '###,#.#,###,#.#,###', '9': '###,#.#,###,..#,###', '-': '...,...,###,...,...', '.': '...,...,...,...,.#.',
  '+': '...,.#.,###,.#.,...', ':': '...,.#.,...,.#.,...', '/': '..#,..#,.#.,#..,#..', '(': '.#.,#..,#..,#..,.#.',
  ')': '.#.,..#,..#,..#,.#.', '=': '...,###,...,###,...', '_': '...,...,...,...,###', ',': '...,...,...,.#.,#..',
  a: '...,##.,.##,#.#,###', b: '#..,###,#.#,#.#,###', c: '...,###,#..,#..,###', d: '..#,###,#.#,#.#,###',
  e: '###,#.#,###,#..,###', f: '.##,#..,###,#..,#..', g: '###,#.#,###,..#,##.', h: '#..,###,#.#,#.#,#.#',
  i: '.#.,...,.#.,.#.,.#.', j: '..#,...,..#,#.#,###', k: '#..,#.#,##.,#.#,#.#', l: '##.,.#.,.#.,.#.,###',
  m: '...,###,###,#.#,#.#', n: '...,##.,#.#,#.#,#.#', o: '...,###,#.#,#.#,###', p: '...,###,#.#,###,#..',
  q: '...,###,#.#,###,..#', r: '...,###,#..,#..,#..', s: '...,.##,#..,..#,##.', t: '#..,###,#..,#..,.##',
  u: '...,#.#,#.#,#.#,###', v: '...,#.#,#.#,#.#,.#.', w: '...,#.#,#.#,###,###', x: '...,#.#,.#.,#.#,#.#',
  y: '...,#.#,###,..#,##.', z: '...,###,..#,#..,###', ' ': '...,...,...,...,...',
};

export class Canvas implements RgbaImage {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number, bg: Rgb = [255, 255, 255]) {
    this.data = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) this.data.set([bg[0], bg[1], bg[2], 255], i * 4);
  }
  /** Alpha-blend one pixel. */
  set(x: number, y: number, c: Rgb, alpha = 1): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const p = (y * this.width + x) * 4;
    for (let k = 0; k < 3; k++) this.data[p + k] = Math.round(this.data[p + k] * (1 - alpha) + c[k] * alpha);
  }
  rect(x0: number, y0: number, w: number, h: number, c: Rgb, alpha = 1): void {
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) this.set(x, y, c, alpha);
  }
  /** Bresenham line. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, alpha = 1): void {
    x0 = Math.round(x0); y0 = Math.round(y0); x1 = Math.round(x1); y1 = Math.round(y1);
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    for (let guard = 0; guard < 100000; guard++) {
      this.set(x0, y0, c, alpha);
      if (x0 === x1 && y0 === y1) break;
      const e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; y0 += sy; }
    }
  }
  /** Text in the 3x5 font at integer `scale`; unknown characters draw as blanks. */
  text(x: number, y: number, s: string, c: Rgb = [0, 0, 0], scale = 2): void {
    let cx = x;
    for (const ch of s.toLowerCase()) {
      const g = GLYPHS[ch];
      if (g) {
        g.split(',').forEach((row, ry) => {
          for (let rx = 0; rx < 3; rx++) if (row[rx] === '#') this.rect(cx + rx * scale, y + ry * scale, scale, scale, c);
        });
      }
      cx += 4 * scale;
    }
  }
}

export function textWidth(s: string, scale = 2): number {
  return s.length * 4 * scale;
}

function fmtTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1).replace('e+', 'e');
  return String(+v.toPrecision(3));
}

/** "Nice" tick positions covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || 1;
  const raw = span / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(+v.toPrecision(12));
  return out;
}

interface Frame {
  canvas: Canvas;
  px: (x: number) => number;
  py: (y: number) => number;
}

function frame(w: number, h: number, xr: [number, number], yr: [number, number], title?: string, logY = false): Frame {
  const canvas = new Canvas(w, h);
  const left = 70;
  const right = w - 20;
  const top = title ? 34 : 16;
  const bottom = h - 36;
  const px = (x: number): number => left + ((x - xr[0]) / (xr[1] - xr[0] || 1)) * (right - left);
  const ty = (y: number): number => (logY ? Math.log10(Math.max(y, 1e-30)) : y);
  const [y0, y1] = [ty(yr[0]), ty(yr[1])];
  const py = (y: number): number => bottom - ((ty(y) - y0) / (y1 - y0 || 1)) * (bottom - top);
  const grey: Rgb = [225, 225, 225];
  for (const t of ticks(xr[0], xr[1])) {
    canvas.line(px(t), top, px(t), bottom, grey);
    const s = fmtTick(t);
    canvas.text(px(t) - textWidth(s) / 2, bottom + 8, s);
  }
  const yt = logY ? ticks(y0, y1).map((e) => Math.pow(10, e)) : ticks(yr[0], yr[1]);
  for (const t of yt) {
    canvas.line(left, py(t), right, py(t), grey);
    const s = fmtTick(t);
    canvas.text(left - textWidth(s) - 6, py(t) - 5, s);
  }
  canvas.line(left, bottom, right, bottom, [0, 0, 0]);
  canvas.line(left, top, left, bottom, [0, 0, 0]);
  if (title) canvas.text(left, 10, title, [0, 0, 0], 3);
  return { canvas, px, py };
}

function legend(c: Canvas, labels: string[]): void {
  labels.forEach((l, i) => {
    const y = 40 + i * 16;
    const x = c.width - 30 - textWidth(l);
    c.rect(x - 16, y, 10, 10, COLORS[i % COLORS.length]);
    c.text(x, y, l);
  });
}

function range(vals: number[], padFrac = 0.05): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of vals) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) return [lo - 1, hi + 1];
  const p = (hi - lo) * padFrac;
  return [lo - p, hi + p];
}

export interface Series {
  label: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
}

/**
 * Scatter plot of point sets (e.g. data vs samples), each in its own colour.
 * @example
 * writePng('scatter.png', scatterPlot([{label: 'data', x, y}, {label: 'samples', x: sx, y: sy}]));
 */
export function scatterPlot(series: Series[], opts: { width?: number; height?: number; title?: string } = {}): RgbaImage {
  const xs = series.flatMap((s) => Array.from(s.x));
  const ys = series.flatMap((s) => Array.from(s.y));
  const f = frame(opts.width ?? 560, opts.height ?? 560, range(xs), range(ys), opts.title);
  series.forEach((s, k) => {
    const c = COLORS[k % COLORS.length];
    for (let i = 0; i < s.x.length; i++) {
      if (!Number.isFinite(s.x[i]) || !Number.isFinite(s.y[i])) continue;
      f.canvas.rect(Math.round(f.px(s.x[i])) - 1, Math.round(f.py(s.y[i])) - 1, 3, 3, c, 0.5);
    }
  });
  legend(f.canvas, series.map((s) => s.label));
  return f.canvas;
}

/** Line plot (loss curves); `logY` for losses spanning decades. */
export function linePlot(series: Series[], opts: { width?: number; height?: number; title?: string; logY?: boolean } = {}): RgbaImage {
  const xs = series.flatMap((s) => Array.from(s.x));
  const ys = series.flatMap((s) => Array.from(s.y)).filter((v) => !opts.logY || v > 0);
  const logY = (opts.logY ?? false) && ys.length > 0;
  const yr = logY ? ([Math.min(...ys), Math.max(...ys)] as [number, number]) : range(ys);
  const f = frame(opts.width ?? 640, opts.height ?? 400, range(xs, 0), yr, opts.title, logY);
  series.forEach((s, k) => {
    const c = COLORS[k % COLORS.length];
    let prev: [number, number] | null = null;
    for (let i = 0; i < s.x.length; i++) {
      if (!Number.isFinite(s.y[i]) || (logY && s.y[i] <= 0)) { prev = null; continue; }
      const p: [number, number] = [f.px(s.x[i]), f.py(s.y[i])];
      if (prev) f.canvas.line(prev[0], prev[1], p[0], p[1], c);
      else f.canvas.set(p[0], p[1], c);
      prev = p;
    }
  });
  legend(f.canvas, series.map((s) => s.label));
  return f.canvas;
}

/** Heat map of values [rows, cols] (row 0 at the top), viridis-like colours. */
export function heatMap(values: ArrayLike<number>, rows: number, cols: number, opts: { scale?: number; title?: string } = {}): RgbaImage {
  const s = opts.scale ?? 4;
  const top = opts.title ? 24 : 0;
  const c = new Canvas(cols * s, rows * s + top);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < rows * cols; i++) if (Number.isFinite(values[i])) { lo = Math.min(lo, values[i]); hi = Math.max(hi, values[i]); }
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < cols; q++) {
      const v = values[r * cols + q];
      const t = Number.isFinite(v) ? (v - lo) / (hi - lo || 1) : 0;
      c.rect(q * s, top + r * s, s, s, viridis(t));
    }
  }
  if (opts.title) c.text(4, 4, opts.title, [0, 0, 0], 3);
  return c;
}

function viridis(t: number): Rgb {
  const stops: Rgb[] = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((k) => Math.round(stops[i][k] * (1 - f) + stops[i + 1][k] * f)) as Rgb;
}
