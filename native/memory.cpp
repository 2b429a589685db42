// External-memory kernels: Neural Turing Machine addressing (Graves, Wayne & Danihelka
// 2014, arXiv:1410.5401, eqs. 5-9: cosine content weights, softmax with beta,
// interpolation with g, circular shift, sharpening with gamma) and the memory read and
// erase/add write (eqs. 2-4), each with its backward. src/engine/backends/memory_ref.ts
// has the reference loops; src/engine/ops/memory.ts the ops and the composites they are
// tested against. Included from kernels.cpp (parallelFor).
// Freestanding like the rest (the wasm build has no libc): fmath.h's exp / log.

namespace gl {
namespace {

constexpr float kEpsNorm = 1e-8f;
constexpr float kEpsLog = 1e-12f;

static inline long wrap(long i, long N) {
  i %= N;
  return i < 0 ? i + N : i;
}

// sum_j a[j] b[j] with four partial sums (a single chain would be latency-bound).
static inline float dotf(const float* GL_RESTRICT a, const float* GL_RESTRICT b, long M) {
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  long j = 0;
  for (; j + 4 <= M; j += 4) {
    s0 += a[j] * b[j];
    s1 += a[j + 1] * b[j + 1];
    s2 += a[j + 2] * b[j + 2];
    s3 += a[j + 3] * b[j + 3];
  }
  for (; j < M; j++) s0 += a[j] * b[j];
  return (s0 + s1) + (s2 + s3);
}

GL_CLONES void ntmAddressRows(const float* GL_RESTRICT mem, const float* GL_RESTRICT key, const float* beta,
                              const float* g, const float* GL_RESTRICT wPrev, const float* GL_RESTRICT shift,
                              const float* gamma, long N, long M, long S, long b0, long b1, float* GL_RESTRICT w,
                              float* GL_RESTRICT act) {
  const long R = (S - 1) / 2, A = 5 * N + 1;
  for (long b = b0; b < b1; b++) {
    float* a = act + b * A;
    float *cos = a, *mn = a + N, *wc = a + 2 * N, *wg = a + 3 * N, *ws = a + 4 * N;
    const float* k = key + b * M;
    const float* wp = wPrev + b * N;
    const float* s = shift + b * S;
    float* wb = w + b * N;
    const float kn = __builtin_sqrtf(dotf(k, k, M) + kEpsNorm);
    a[5 * N] = kn;
    // 1. Cosine similarity, softmax(beta K) (eqs. 5-6).
    const float be = beta[b];
    float zMax = -__builtin_inff();
    for (long i = 0; i < N; i++) {
      const float* m = mem + (b * N + i) * M;
      const float n = __builtin_sqrtf(dotf(m, m, M) + kEpsNorm);
      mn[i] = n;
      cos[i] = dotf(m, k, M) / (n * kn);
      const float z = be * cos[i];
      zMax = z > zMax ? z : zMax;
    }
    // (Transcendental loops carry no reduction, so that they vectorize.)
    for (long i = 0; i < N; i++) wc[i] = fexp(be * cos[i] - zMax);
    float zs = 0.f;
    for (long i = 0; i < N; i++) zs += wc[i];
    // 2. Interpolation (eq. 7).
    const float gg = g[b], zInv = 1.f / zs;
    for (long i = 0; i < N; i++) {
      wc[i] *= zInv;
      wg[i] = gg * wc[i] + (1.f - gg) * wp[i];
    }
    // 3. Circular shift (eq. 8): w~(i) = sum_k w^g(i - k) s(k), k = -R..R; x runs over
    // (i - k) mod N without a division.
    for (long i = 0, x0 = wrap(R, N); i < N; i++, x0 = x0 + 1 == N ? 0 : x0 + 1) {
      float v = 0.f;
      for (long q = 0, x = x0; q < S; q++, x = x == 0 ? N - 1 : x - 1) v += wg[x] * s[q];
      ws[i] = v;
    }
    // 4. Sharpening (eq. 9) as softmax(gamma log w~).
    const float ga = gamma[b];
    for (long i = 0; i < N; i++) wb[i] = ga * flog(ws[i] + kEpsLog);
    float uMax = -__builtin_inff();
    for (long i = 0; i < N; i++) uMax = wb[i] > uMax ? wb[i] : uMax;
    for (long i = 0; i < N; i++) wb[i] = fexp(wb[i] - uMax);
    float us = 0.f;
    for (long i = 0; i < N; i++) us += wb[i];
    const float uInv = 1.f / us;
    for (long i = 0; i < N; i++) wb[i] *= uInv;
  }
}

// tmp: 2N floats per row b (dw~, dw^g).
GL_CLONES void ntmAddressBackRows(const float* GL_RESTRICT mem, const float* GL_RESTRICT key, const float* beta,
                                  const float* g, const float* GL_RESTRICT wPrev, const float* GL_RESTRICT shift,
                                  const float* gamma, const float* GL_RESTRICT act, const float* GL_RESTRICT w,
                                  const float* GL_RESTRICT dw, long N, long M, long S, long b0, long b1,
                                  float* GL_RESTRICT dmem, float* GL_RESTRICT dkey, float* dbeta, float* dg,
                                  float* GL_RESTRICT dwPrev, float* GL_RESTRICT dshift, float* dgamma,
                                  float* GL_RESTRICT tmp) {
  const long R = (S - 1) / 2, A = 5 * N + 1;
  for (long b = b0; b < b1; b++) {
    float *dws = tmp + b * 2 * N, *dwg = dws + N;
    const float* a = act + b * A;
    const float *cos = a, *mn = a + N, *wc = a + 2 * N, *wg = a + 3 * N, *ws = a + 4 * N;
    const float kn = a[5 * N];
    const float be = beta[b], gg = g[b], ga = gamma[b];
    const float* k = key + b * M;
    const float* s = shift + b * S;
    const float* wb = w + b * N;
    const float* dwb = dw + b * N;
    // 4. Sharpening.
    const float dot = dotf(dwb, wb, N);
    // dwg holds log(w~ + eps) for a moment (a loop without reduction vectorizes).
    for (long i = 0; i < N; i++) dwg[i] = flog(ws[i] + kEpsLog);
    float dga = 0.f;
    for (long i = 0; i < N; i++) {
      const float d = (dwb[i] - dot) * wb[i];
      dga += d * dwg[i];
      dws[i] = d * ga / (ws[i] + kEpsLog);
    }
    dgamma[b] = dga;
    // 3. Shift: dw^g(j) = sum_k dw~(j + k) s(k); ds(k) = sum_i dw~(i) w^g(i - k).
    for (long j = 0, x0 = wrap(-R, N); j < N; j++, x0 = x0 + 1 == N ? 0 : x0 + 1) {
      float v = 0.f;
      for (long q = 0, x = x0; q < S; q++, x = x + 1 == N ? 0 : x + 1) v += dws[x] * s[q];
      dwg[j] = v;
    }
    for (long q = 0; q < S; q++) {
      float v = 0.f;
      for (long i = 0, y = wrap(R - q, N); i < N; i++, y = y + 1 == N ? 0 : y + 1) v += dws[i] * wg[y];
      dshift[b * S + q] = v;
    }
    // 2. Interpolation.
    float dgg = 0.f, s2 = 0.f;
    for (long i = 0; i < N; i++) {
      dgg += dwg[i] * (wc[i] - wPrev[b * N + i]);
      dwPrev[b * N + i] = (1.f - gg) * dwg[i];
      s2 += gg * dwg[i] * wc[i];
    }
    dg[b] = dgg;
    // 1. Softmax(beta K), then the cosine; dz(i) = d cos(i) reuses dws.
    float* dz = dws;
    float dbe = 0.f, sc = 0.f;
    for (long i = 0; i < N; i++) {
      const float d = wc[i] * (gg * dwg[i] - s2);
      dbe += d * cos[i];
      dz[i] = be * d;
      sc += dz[i] * cos[i];
    }
    dbeta[b] = dbe;
    float* dk = dkey + b * M;
    const float kc = -sc / (kn * kn);
    for (long j = 0; j < M; j++) dk[j] = kc * k[j];
    for (long i = 0; i < N; i++) {
      const float* m = mem + (b * N + i) * M;
      const float n = mn[i];
      const float p = dz[i] / (n * kn), q = dz[i] * cos[i] / (n * n);
      for (long j = 0; j < M; j++) dk[j] += p * m[j];
      if (dmem) {
        float* dm = dmem + (b * N + i) * M;
        for (long j = 0; j < M; j++) dm[j] += p * k[j] - q * m[j];
      }
    }
  }
}

// sum_j a[j] b[j] c[j], four partial sums.
static inline float dot3(const float* GL_RESTRICT a, const float* GL_RESTRICT b, const float* GL_RESTRICT c, long M) {
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  long j = 0;
  for (; j + 4 <= M; j += 4) {
    s0 += a[j] * b[j] * c[j];
    s1 += a[j + 1] * b[j + 1] * c[j + 1];
    s2 += a[j + 2] * b[j + 2] * c[j + 2];
    s3 += a[j + 3] * b[j + 3] * c[j + 3];
  }
  for (; j < M; j++) s0 += a[j] * b[j] * c[j];
  return (s0 + s1) + (s2 + s3);
}

GL_CLONES void memReadRows(const float* GL_RESTRICT mem, const float* GL_RESTRICT w, long N, long M, long b0, long b1,
                           float* GL_RESTRICT r) {
  for (long b = b0; b < b1; b++) {
    float* rb = r + b * M;
    for (long j = 0; j < M; j++) rb[j] = 0.f;
    for (long i = 0; i < N; i++) {
      const float wi = w[b * N + i];
      const float* m = mem + (b * N + i) * M;
      for (long j = 0; j < M; j++) rb[j] += wi * m[j];
    }
  }
}

GL_CLONES void memReadBackRows(const float* GL_RESTRICT mem, const float* GL_RESTRICT w, const float* GL_RESTRICT dr,
                               long N, long M, long b0, long b1, float* GL_RESTRICT dmem, float* GL_RESTRICT dw) {
  for (long b = b0; b < b1; b++) {
    const float* d = dr + b * M;
    for (long i = 0; i < N; i++) {
      const float wi = w[b * N + i];
      const float* m = mem + (b * N + i) * M;
      dw[b * N + i] = dotf(d, m, M);
      if (dmem) {
        float* dm = dmem + (b * N + i) * M;
        for (long j = 0; j < M; j++) dm[j] += wi * d[j];
      }
    }
  }
}

GL_CLONES void memWriteRows(const float* GL_RESTRICT mem, const float* GL_RESTRICT w, const float* GL_RESTRICT e,
                            const float* GL_RESTRICT ad, long N, long M, long b0, long b1, float* GL_RESTRICT out) {
  for (long b = b0; b < b1; b++) {
    const float* eb = e + b * M;
    const float* ab = ad + b * M;
    for (long i = 0; i < N; i++) {
      const float wi = w[b * N + i];
      const float* m = mem + (b * N + i) * M;
      float* o = out + (b * N + i) * M;
      for (long j = 0; j < M; j++) o[j] = m[j] * (1.f - wi * eb[j]) + wi * ab[j];
    }
  }
}

GL_CLONES void memWriteBackRows(const float* GL_RESTRICT mem, const float* GL_RESTRICT w, const float* GL_RESTRICT e,
                                const float* GL_RESTRICT ad, const float* GL_RESTRICT dout, long N, long M, long b0,
                                long b1, float* GL_RESTRICT dmem, float* GL_RESTRICT dw, float* GL_RESTRICT de,
                                float* GL_RESTRICT da) {
  for (long b = b0; b < b1; b++) {
    const float* eb = e + b * M;
    const float* ab = ad + b * M;
    float* deb = de + b * M;
    float* dab = da + b * M;
    for (long j = 0; j < M; j++) deb[j] = dab[j] = 0.f;
    for (long i = 0; i < N; i++) {
      const float wi = w[b * N + i];
      const float* m = mem + (b * N + i) * M;
      const float* d = dout + (b * N + i) * M;
      // dw(i) = d . a - (d * m) . e
      dw[b * N + i] = dotf(d, ab, M) - dot3(d, m, eb, M);
      for (long j = 0; j < M; j++) {
        deb[j] -= d[j] * m[j] * wi;
        dab[j] += d[j] * wi;
      }
      if (dmem) {
        float* dm = dmem + (b * N + i) * M;
        for (long j = 0; j < M; j++) dm[j] += d[j] * (1.f - wi * eb[j]);
      }
    }
  }
}

}  // namespace

void ntmAddress(const float* mem, const float* key, const float* beta, const float* g, const float* wPrev,
                const float* shift, const float* gamma, long B, long N, long M, long S, float* w, float* act) {
  parallelFor(B, (double)B * N * (3 * M + S + 30), [&](long lo, long hi) {
    ntmAddressRows(mem, key, beta, g, wPrev, shift, gamma, N, M, S, lo, hi, w, act);
  });
}

void ntmAddressBackward(const float* mem, const float* key, const float* beta, const float* g, const float* wPrev,
                        const float* shift, const float* gamma, const float* act, const float* w, const float* dw,
                        long B, long N, long M, long S, float* dmem, float* dkey, float* dbeta, float* dg,
                        float* dwPrev, float* dshift, float* dgamma, float* scratch) {
  parallelFor(B, (double)B * N * (4 * M + 2 * S + 30), [&](long lo, long hi) {
    ntmAddressBackRows(mem, key, beta, g, wPrev, shift, gamma, act, w, dw, N, M, S, lo, hi, dmem, dkey, dbeta, dg,
                       dwPrev, dshift, dgamma, scratch);
  });
}

void memoryRead(const float* mem, const float* w, long B, long N, long M, float* r) {
  parallelFor(B, (double)B * N * M * 2, [&](long lo, long hi) { memReadRows(mem, w, N, M, lo, hi, r); });
}

void memoryReadBackward(const float* mem, const float* w, const float* dr, long B, long N, long M, float* dmem,
                        float* dw) {
  parallelFor(B, (double)B * N * M * 3, [&](long lo, long hi) { memReadBackRows(mem, w, dr, N, M, lo, hi, dmem, dw); });
}

void memoryWrite(const float* mem, const float* w, const float* e, const float* a, long B, long N, long M,
                 float* out) {
  parallelFor(B, (double)B * N * M * 4, [&](long lo, long hi) { memWriteRows(mem, w, e, a, N, M, lo, hi, out); });
}

void memoryWriteBackward(const float* mem, const float* w, const float* e, const float* a, const float* dout, long B,
                         long N, long M, float* dmem, float* dw, float* de, float* da) {
  parallelFor(B, (double)B * N * M * 8, [&](long lo, long hi) {
    memWriteBackRows(mem, w, e, a, dout, N, M, lo, hi, dmem, dw, de, da);
  });
}

}  // namespace gl
