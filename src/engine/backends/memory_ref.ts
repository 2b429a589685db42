/**
 * Reference (js) kernels of the external-memory primitives of src/engine/ops/memory.ts:
 * Neural Turing Machine addressing (Graves, Wayne & Danihelka 2014, arXiv:1410.5401,
 * eqs. 5-9) and memory read / erase-add write (eqs. 2-4), each with its backward.
 * native/memory.cpp has the same loops; the tests compare both with the composites.
 */
import type { Backend } from './backend.js';

type MemoryKernels = Pick<Backend, 'ntmAddress' | 'ntmAddressBackward' | 'memoryRead' | 'memoryReadBackward' | 'memoryWrite' | 'memoryWriteBackward'>;

const EPS_NORM = 1e-8;
const EPS_LOG = 1e-12;

export const memoryKernels: MemoryKernels = {
  ntmAddress(mem, key, beta, g, wPrev, shift, gamma, B, N, M, S, w, act) {
    const R = (S - 1) >> 1;
    const A = 5 * N + 1;
    for (let b = 0; b < B; b++) {
      const a = b * A, ko = b * M, wo = b * N;
      const cos = a, mn = a + N, wc = a + 2 * N, wg = a + 3 * N, ws = a + 4 * N;
      let kk = 0;
      for (let j = 0; j < M; j++) kk += key[ko + j] * key[ko + j];
      const kn = Math.fround(Math.sqrt(kk + EPS_NORM));
      act[a + 5 * N] = kn;
      // 1. Cosine similarity and softmax(beta K) (eqs. 5-6).
      const be = beta[b];
      let zMax = -Infinity;
      for (let i = 0; i < N; i++) {
        const mo = (b * N + i) * M;
        let dot = 0, mm = 0;
        for (let j = 0; j < M; j++) {
          const m = mem[mo + j];
          dot += m * key[ko + j];
          mm += m * m;
        }
        const n = Math.fround(Math.sqrt(mm + EPS_NORM));
        act[mn + i] = n;
        act[cos + i] = dot / (n * kn);
        const z = be * act[cos + i];
        if (z > zMax) zMax = z;
      }
      let zs = 0;
      for (let i = 0; i < N; i++) {
        const e = Math.exp(be * act[cos + i] - zMax);
        act[wc + i] = e;
        zs += e;
      }
      // 2. Interpolation (eq. 7).
      const gg = g[b];
      for (let i = 0; i < N; i++) {
        act[wc + i] /= zs;
        act[wg + i] = gg * act[wc + i] + (1 - gg) * wPrev[wo + i];
      }
      // 3. Circular shift (eq. 8): w~(i) = sum_k w^g(i - k) s(k), k = -R..R.
      for (let i = 0; i < N; i++) {
        let v = 0;
        for (let k = 0; k < S; k++) v += act[wg + ((((i - k + R) % N) + N) % N)] * shift[b * S + k];
        act[ws + i] = v;
      }
      // 4. Sharpening (eq. 9) as softmax(gamma log w~).
      const ga = gamma[b];
      let uMax = -Infinity;
      for (let i = 0; i < N; i++) {
        const u = ga * Math.log(act[ws + i] + EPS_LOG);
        w[wo + i] = u;
        if (u > uMax) uMax = u;
      }
      let us = 0;
      for (let i = 0; i < N; i++) {
        const e = Math.exp(w[wo + i] - uMax);
        w[wo + i] = e;
        us += e;
      }
      for (let i = 0; i < N; i++) w[wo + i] /= us;
    }
  },

  ntmAddressBackward(mem, key, beta, g, wPrev, shift, gamma, act, w, dw, B, N, M, S, dmem, dkey, dbeta, dg, dwPrev, dshift, dgamma) {
    const R = (S - 1) >> 1;
    const A = 5 * N + 1;
    const dws = new Float64Array(N);
    const dwg = new Float64Array(N);
    const dz = new Float64Array(N);
    for (let b = 0; b < B; b++) {
      const a = b * A, ko = b * M, wo = b * N;
      const cos = a, mn = a + N, wc = a + 2 * N, wg = a + 3 * N, ws = a + 4 * N;
      const kn = act[a + 5 * N];
      const be = beta[b], gg = g[b], ga = gamma[b];
      // 4. Sharpening.
      let dot = 0;
      for (let i = 0; i < N; i++) dot += dw[wo + i] * w[wo + i];
      let dga = 0;
      for (let i = 0; i < N; i++) {
        const d = (dw[wo + i] - dot) * w[wo + i];
        const x = act[ws + i] + EPS_LOG;
        dga += d * Math.log(x);
        dws[i] = (d * ga) / x;
      }
      dgamma[b] = dga;
      // 3. Shift: dw^g(j) = sum_k dw~(j + k) s(k); ds(k) = sum_i dw~(i) w^g(i - k).
      for (let j = 0; j < N; j++) {
        let v = 0;
        for (let k = 0; k < S; k++) v += dws[(((j + k - R) % N) + N) % N] * shift[b * S + k];
        dwg[j] = v;
      }
      for (let k = 0; k < S; k++) {
        let v = 0;
        for (let i = 0; i < N; i++) v += dws[i] * act[wg + ((((i - k + R) % N) + N) % N)];
        dshift[b * S + k] = v;
      }
      // 2. Interpolation.
      let dgg = 0;
      for (let i = 0; i < N; i++) {
        dgg += dwg[i] * (act[wc + i] - wPrev[wo + i]);
        dwPrev[wo + i] = (1 - gg) * dwg[i];
      }
      dg[b] = dgg;
      // 1. Softmax(beta K), then the cosine.
      let s2 = 0;
      for (let i = 0; i < N; i++) s2 += gg * dwg[i] * act[wc + i];
      let dbe = 0, sc = 0;
      for (let i = 0; i < N; i++) {
        const d = act[wc + i] * (gg * dwg[i] - s2);
        dbe += d * act[cos + i];
        dz[i] = be * d; // d cos(i)
        sc += dz[i] * act[cos + i];
      }
      dbeta[b] = dbe;
      for (let j = 0; j < M; j++) dkey[ko + j] = (-sc * key[ko + j]) / (kn * kn);
      for (let i = 0; i < N; i++) {
        const mo = (b * N + i) * M;
        const n = act[mn + i];
        const p = dz[i] / (n * kn), q = (dz[i] * act[cos + i]) / (n * n);
        for (let j = 0; j < M; j++) {
          dkey[ko + j] += p * mem[mo + j];
          if (dmem) dmem[mo + j] += p * key[ko + j] - q * mem[mo + j];
        }
      }
    }
  },

  memoryRead(mem, w, B, N, M, r) {
    for (let b = 0; b < B; b++) {
      const ro = b * M;
      for (let j = 0; j < M; j++) r[ro + j] = 0;
      for (let i = 0; i < N; i++) {
        const wi = w[b * N + i], mo = (b * N + i) * M;
        for (let j = 0; j < M; j++) r[ro + j] += wi * mem[mo + j];
      }
    }
  },

  memoryReadBackward(mem, w, dr, B, N, M, dmem, dw) {
    for (let b = 0; b < B; b++) {
      const ro = b * M;
      for (let i = 0; i < N; i++) {
        const wi = w[b * N + i], mo = (b * N + i) * M;
        let v = 0;
        for (let j = 0; j < M; j++) {
          v += dr[ro + j] * mem[mo + j];
          if (dmem) dmem[mo + j] += wi * dr[ro + j];
        }
        dw[b * N + i] = v;
      }
    }
  },

  memoryWrite(mem, w, e, a, B, N, M, out) {
    for (let b = 0; b < B; b++) {
      const ro = b * M;
      for (let i = 0; i < N; i++) {
        const wi = w[b * N + i], mo = (b * N + i) * M;
        for (let j = 0; j < M; j++) out[mo + j] = mem[mo + j] * (1 - wi * e[ro + j]) + wi * a[ro + j];
      }
    }
  },

  memoryWriteBackward(mem, w, e, a, dout, B, N, M, dmem, dw, de, da) {
    for (let b = 0; b < B; b++) {
      const ro = b * M;
      for (let j = 0; j < M; j++) de[ro + j] = da[ro + j] = 0;
      for (let i = 0; i < N; i++) {
        const wi = w[b * N + i], mo = (b * N + i) * M;
        let v = 0;
        for (let j = 0; j < M; j++) {
          const d = dout[mo + j], m = mem[mo + j];
          v += d * (a[ro + j] - m * e[ro + j]);
          de[ro + j] -= d * m * wi;
          da[ro + j] += d * wi;
          if (dmem) dmem[mo + j] += d * (1 - wi * e[ro + j]);
        }
        dw[b * N + i] = v;
      }
    }
  },
};
