/**
 * Seeded random numbers. Every random op in genlab takes an `Rng`, so one seed
 * reproduces a run exactly on every backend. The generator is xoshiro128**
 * (Blackman & Vigna, https://prng.di.unimi.it/), seeded through splitmix32; normals
 * come from the Box-Muller transform, and the spare normal is part of the state.
 */

/** Serializable generator state (four 32-bit words plus the cached normal). */
export interface RngState {
  s: [number, number, number, number];
  spare: number | null;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  /**
   * @example
   * const rng = new Rng(42);
   * const u = rng.uniform(); // in [0, 1)
   */
  constructor(seed = 0) {
    this.seed(seed);
  }

  /** Reset the generator to the stream of `seed` (any integer or float). */
  seed(seed: number): void {
    let x = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
    // A seed above 2^32 keeps its high bits.
    x = (x ^ Math.floor(seed / 4294967296)) >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
    this.spare = null;
  }

  /** Next raw 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal sample. */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Uniform integer in [low, high). */
  int(low: number, high: number): number {
    const span = high - low;
    if (!(span > 0)) throw new RangeError(`Rng.int: empty range [${low}, ${high})`);
    if (span <= 4294967296) {
      // Rejection sampling removes modulo bias.
      const limit = 4294967296 - (4294967296 % span);
      let x = this.nextU32();
      while (x >= limit) x = this.nextU32();
      return low + (x % span);
    }
    return low + Math.floor(this.uniform() * span);
  }

  /** A new generator whose stream is derived from this one (advances this one). */
  fork(): Rng {
    const child = new Rng(0);
    child.s0 = this.nextU32();
    child.s1 = this.nextU32();
    child.s2 = this.nextU32();
    child.s3 = this.nextU32() | 1;
    return child;
  }

  getState(): RngState {
    return { s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0], spare: this.spare };
  }

  setState(state: RngState): void {
    if (!state || !Array.isArray(state.s) || state.s.length !== 4 || state.s.some((v) => !Number.isInteger(v))) {
      throw new TypeError('Rng.setState: expected {s: [four 32-bit integers], spare}');
    }
    [this.s0, this.s1, this.s2, this.s3] = state.s.map((v) => v >>> 0) as [number, number, number, number];
    this.spare = state.spare ?? null;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
