/**
 * 2-D toy distributions for GANs, flows and diffusion: the set popularised by FFJORD
 * (Grathwohl et al. 2019, github.com/rtqichen/ffjord `lib/toy_data.py`) and sklearn's
 * `make_moons` / `make_circles` / `make_swiss_roll`. Each has a seeded sampler; the
 * Gaussian mixtures and the checkerboard also have an exact log-density, so flows can
 * report test NLL against the truth.
 */
import { Tensor } from '../engine/tensor.js';
import type { Rng } from '../engine/rng.js';

export const TOY_NAMES = [
  'moons', 'circles', 'rings', 'spirals', 'swissroll', 'checkerboard', 'pinwheel', '8gaussians', '25gaussians',
] as const;
export type ToyName = (typeof TOY_NAMES)[number];

export function isToyName(name: string): name is ToyName {
  return (TOY_NAMES as readonly string[]).includes(name);
}

/** Mixture centres and standard deviation of the Gaussian toys. */
function mixture(name: '8gaussians' | '25gaussians'): { centers: [number, number][]; std: number } {
  if (name === '8gaussians') {
    const s = 1 / Math.SQRT2;
    const raw: [number, number][] = [[1, 0], [-1, 0], [0, 1], [0, -1], [s, s], [s, -s], [-s, s], [-s, -s]];
    // FFJORD: scale 4, noise 0.5, all divided by 1.414.
    return { centers: raw.map(([x, y]) => [(4 * x) / 1.414, (4 * y) / 1.414]), std: 0.5 / 1.414 };
  }
  const centers: [number, number][] = [];
  for (let i = -2; i <= 2; i++) for (let j = -2; j <= 2; j++) centers.push([i * 1.5, j * 1.5]);
  return { centers, std: 0.15 };
}

/**
 * n points [n, 2] from a toy distribution.
 * @example
 * const x = sampleToy('8gaussians', 512, new Rng(0));
 */
export function sampleToy(name: ToyName, n: number, rng: Rng): Tensor {
  const out = new Float32Array(2 * n);
  const set = (i: number, x: number, y: number): void => {
    out[2 * i] = x;
    out[2 * i + 1] = y;
  };
  switch (name) {
    case 'moons':
      for (let i = 0; i < n; i++) {
        const t = Math.PI * rng.uniform();
        const upper = rng.uniform() < 0.5;
        const x = upper ? Math.cos(t) : 1 - Math.cos(t);
        const y = upper ? Math.sin(t) : 0.5 - Math.sin(t);
        // Centre and scale to roughly [-2, 2].
        set(i, 2 * (x - 0.5) + 0.1 * rng.normal(), 2 * (y - 0.25) + 0.1 * rng.normal());
      }
      break;
    case 'circles':
      for (let i = 0; i < n; i++) {
        const t = 2 * Math.PI * rng.uniform();
        const r = rng.uniform() < 0.5 ? 3 : 1.5;
        set(i, r * Math.cos(t) + 0.08 * rng.normal(), r * Math.sin(t) + 0.08 * rng.normal());
      }
      break;
    case 'rings':
      // Four concentric rings of radii 0.75..3 with equal mass per unit length.
      for (let i = 0; i < n; i++) {
        const r = [0.75, 1.5, 2.25, 3][Math.min(3, Math.floor(rng.uniform() * 4))];
        const t = 2 * Math.PI * rng.uniform();
        set(i, r * Math.cos(t) + 0.08 * rng.normal(), r * Math.sin(t) + 0.08 * rng.normal());
      }
      break;
    case 'spirals':
      for (let i = 0; i < n; i++) {
        const t = Math.sqrt(rng.uniform()) * 540 * (2 * Math.PI / 360);
        const sgn = rng.uniform() < 0.5 ? -1 : 1;
        const x = -Math.cos(t) * t + rng.uniform() * 0.5;
        const y = Math.sin(t) * t + rng.uniform() * 0.5;
        set(i, (sgn * x) / 3, (sgn * y) / 3);
      }
      break;
    case 'swissroll':
      for (let i = 0; i < n; i++) {
        const t = 1.5 * Math.PI * (1 + 2 * rng.uniform());
        set(i, (t * Math.cos(t) + 0.5 * rng.normal()) / 5, (t * Math.sin(t) + 0.5 * rng.normal()) / 5);
      }
      break;
    case 'checkerboard':
      // Uniform on the 8 dark squares of a 4x4 board over [-4, 4]^2 (density 1/32).
      for (let i = 0; i < n; i++) {
        const x1 = rng.uniform() * 4 - 2;
        const base = rng.uniform() - (rng.uniform() < 0.5 ? 2 : 0);
        // Shift by floor(x1) mod 2 so that floor(x1) + floor(x2) is even.
        const x2 = base + (((Math.floor(x1) % 2) + 2) % 2);
        set(i, x1 * 2, x2 * 2);
      }
      break;
    case 'pinwheel': {
      const radialStd = 0.3;
      const tangentialStd = 0.1;
      const numClasses = 5;
      const rate = 0.25;
      for (let i = 0; i < n; i++) {
        const k = Math.floor(rng.uniform() * numClasses);
        const fx = rng.normal() * radialStd + 1;
        const fy = rng.normal() * tangentialStd;
        const angle = (2 * Math.PI * k) / numClasses + rate * Math.exp(fx);
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        set(i, 2 * (c * fx - s * fy), 2 * (s * fx + c * fy));
      }
      break;
    }
    case '8gaussians':
    case '25gaussians': {
      const { centers, std } = mixture(name);
      for (let i = 0; i < n; i++) {
        const [cx, cy] = centers[Math.floor(rng.uniform() * centers.length)];
        set(i, cx + std * rng.normal(), cy + std * rng.normal());
      }
      break;
    }
  }
  return new Tensor(out, [n, 2]);
}

/** Centres and standard deviation of a Gaussian-mixture toy (null for the others). */
export function toyMixture(name: string): { centers: [number, number][]; std: number } | null {
  return name === '8gaussians' || name === '25gaussians' ? mixture(name) : null;
}

/** Whether `toyLogDensity` knows the exact density of this toy. */
export function hasToyDensity(name: ToyName): boolean {
  return name === '8gaussians' || name === '25gaussians' || name === 'checkerboard';
}

/** Exact log p(x) per point of [n, 2] for the toys that have one (see hasToyDensity). */
export function toyLogDensity(name: ToyName, x: Tensor): Float64Array {
  const v = x.f32('toyLogDensity');
  const n = v.length / 2;
  const out = new Float64Array(n);
  if (name === 'checkerboard') {
    for (let i = 0; i < n; i++) {
      const a = v[2 * i] / 2;
      const b = v[2 * i + 1] / 2;
      const inside = a >= -2 && a < 2 && b >= -2 && b < 2 && (((Math.floor(a) + Math.floor(b)) % 2) + 2) % 2 === 0;
      out[i] = inside ? Math.log(1 / 32) : -Infinity;
    }
    return out;
  }
  if (name !== '8gaussians' && name !== '25gaussians') throw new Error(`toyLogDensity: no closed-form density for ${name}`);
  const { centers, std } = mixture(name);
  const logNorm = -Math.log(2 * Math.PI * std * std) - Math.log(centers.length);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    const terms = centers.map(([cx, cy]) => {
      const dx = v[2 * i] - cx;
      const dy = v[2 * i + 1] - cy;
      const t = -(dx * dx + dy * dy) / (2 * std * std);
      if (t > m) m = t;
      return t;
    });
    let s = 0;
    for (const t of terms) s += Math.exp(t - m);
    out[i] = m + Math.log(s) + logNorm;
  }
  return out;
}
