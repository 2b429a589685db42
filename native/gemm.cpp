// Packed, cache-blocked single-precision GEMM (Goto / BLIS scheme):
//   for jc (NC columns of C) / pc (KC of K): pack op(B) into panels of NR columns
//     for ic (MC rows): pack op(A) into panels of MR rows
//       for jr / ir: an MR x NR register-tile microkernel over the packed panels.
// Packing absorbs all transpose combinations, lda/ldb/ldc and offsets, so the
// microkernels see only contiguous panels. One microkernel per target: AVX-512
// (6 x 64, zmm FMA), AVX2+FMA (6 x 16), wasm simd128 (6 x 8, mul+add), portable C.
// Multi-threading splits C into per-thread column (or row) ranges, each an
// independent sub-GEMM with its own packing buffers.
// References: Goto & van de Geijn, "Anatomy of high-performance matrix
// multiplication" (TOMS 2008); Van Zee & van de Geijn, "BLIS" (TOMS 2015).
#include "common.h"

#if defined(__x86_64__) && !GL_WASM
#include <immintrin.h>
#include <stdlib.h>
#endif
#if GL_WASM
#include <wasm_simd128.h>
#endif

namespace gl {
namespace {

constexpr long KC_MAX = 384;   // K block; a K of at most KC_MAX is one block
constexpr long KC_SPLIT = 256; // larger K is split into equal blocks of about this
constexpr long NC = 1024;      // columns of packed B per block (KC x NC lives in L2/L3)
constexpr long MC = 144;       // rows of packed A per block (MC x KC lives in L2)
constexpr int MR_MAX = 8;
constexpr int NR_MAX = 64;

// A microkernel computes the MR x (nv * VL) tile C = (load ? C : 0) + Ap . Bp over kc.
typedef void (*Ukr)(int nv, long kc, const float* a, const float* b, float* c, long ldc, bool load);

struct Kernel {
  const char* name;
  int mr, vl, nvMax;  // tile rows, floats per vector, vectors per row
  Ukr ukr;
};

// ---------------------------------------------------------------- microkernels

// Portable: 4 x 16, one "vector" of 4 floats per nv.
[[maybe_unused]] void ukrScalar(int nv, long kc, const float* GL_RESTRICT a, const float* GL_RESTRICT b, float* GL_RESTRICT c,
               long ldc, bool load) {
  const int w = nv * 4;
  float acc[4][16] = {};
  for (long k = 0; k < kc; k++) {
    const float* bk = b + k * w;
    for (int r = 0; r < 4; r++) {
      const float av = a[k * 4 + r];
      for (int j = 0; j < w; j++) acc[r][j] += av * bk[j];
    }
  }
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < w; j++) c[r * ldc + j] = load ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

#if defined(__x86_64__) && !GL_WASM
template <int NV>
__attribute__((target("avx512f,fma"))) void ukr512T(long kc, const float* GL_RESTRICT a, const float* GL_RESTRICT b,
                                                    float* GL_RESTRICT c, long ldc, bool load) {
  __m512 acc[6][NV];
  for (int r = 0; r < 6; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int r = 0; r < 6; r++) _mm_prefetch((const char*)(c + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (long k = 0; k < kc; k++) {
    __m512 bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + k * (NV * 16) + v * 16);
    _mm_prefetch((const char*)(b + (k + 8) * (NV * 16)), _MM_HINT_T0);
    for (int r = 0; r < 6; r++) {
      const __m512 av = _mm512_set1_ps(a[k * 6 + r]);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < 6; r++)
    for (int v = 0; v < NV; v++) {
      float* p = c + r * ldc + v * 16;
      _mm512_storeu_ps(p, load ? _mm512_add_ps(_mm512_loadu_ps(p), acc[r][v]) : acc[r][v]);
    }
}

__attribute__((target("avx512f,fma"))) void ukr512(int nv, long kc, const float* a, const float* b, float* c,
                                                   long ldc, bool load) {
  switch (nv) {
    case 1: ukr512T<1>(kc, a, b, c, ldc, load); break;
    case 2: ukr512T<2>(kc, a, b, c, ldc, load); break;
    case 3: ukr512T<3>(kc, a, b, c, ldc, load); break;
    default: ukr512T<4>(kc, a, b, c, ldc, load); break;
  }
}

template <int NV>
__attribute__((target("avx2,fma"))) void ukr256T(long kc, const float* GL_RESTRICT a, const float* GL_RESTRICT b,
                                                 float* GL_RESTRICT c, long ldc, bool load) {
  __m256 acc[6][NV];
  for (int r = 0; r < 6; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (long k = 0; k < kc; k++) {
    __m256 bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = _mm256_loadu_ps(b + k * (NV * 8) + v * 8);
    for (int r = 0; r < 6; r++) {
      const __m256 av = _mm256_broadcast_ss(a + k * 6 + r);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < 6; r++)
    for (int v = 0; v < NV; v++) {
      float* p = c + r * ldc + v * 8;
      _mm256_storeu_ps(p, load ? _mm256_add_ps(_mm256_loadu_ps(p), acc[r][v]) : acc[r][v]);
    }
}

__attribute__((target("avx2,fma"))) void ukr256(int nv, long kc, const float* a, const float* b, float* c, long ldc,
                                                bool load) {
  if (nv == 1) ukr256T<1>(kc, a, b, c, ldc, load);
  else ukr256T<2>(kc, a, b, c, ldc, load);
}
#endif

#if GL_WASM
#ifndef GL_WASM_MR
#define GL_WASM_MR 4
#endif
#ifndef GL_WASM_UNROLL
#define GL_WASM_UNROLL 1
#endif
#ifndef GL_WASM_NV
#define GL_WASM_NV 2
#endif
template <int MR, int NV>
void ukrSimdT(long kc, const float* GL_RESTRICT a, const float* GL_RESTRICT b, float* GL_RESTRICT c, long ldc,
              bool load) {
  v128_t acc[MR][NV];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = wasm_f32x4_splat(0.f);
#pragma clang loop unroll_count(GL_WASM_UNROLL)
  for (long k = 0; k < kc; k++) {
    v128_t bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = wasm_v128_load(b + k * (NV * 4) + v * 4);
    for (int r = 0; r < MR; r++) {
      const v128_t av = wasm_v128_load32_splat(a + k * MR + r);
      for (int v = 0; v < NV; v++) acc[r][v] = wasm_f32x4_add(acc[r][v], wasm_f32x4_mul(av, bv[v]));
    }
  }
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) {
      float* p = c + r * ldc + v * 4;
      wasm_v128_store(p, load ? wasm_f32x4_add(wasm_v128_load(p), acc[r][v]) : acc[r][v]);
    }
}

void ukrSimd(int nv, long kc, const float* a, const float* b, float* c, long ldc, bool load) {
  switch (nv) {
    case 1: ukrSimdT<GL_WASM_MR, 1>(kc, a, b, c, ldc, load); break;
#if GL_WASM_NV >= 2
    case 2: ukrSimdT<GL_WASM_MR, 2>(kc, a, b, c, ldc, load); break;
#endif
#if GL_WASM_NV >= 3
    case 3: ukrSimdT<GL_WASM_MR, 3>(kc, a, b, c, ldc, load); break;
#endif
#if GL_WASM_NV >= 4
    default: ukrSimdT<GL_WASM_MR, 4>(kc, a, b, c, ldc, load); break;
#endif
  }
}
#endif

const Kernel& pickKernel() {
#if GL_WASM
  static const Kernel simd = {"simd128", GL_WASM_MR, 4, GL_WASM_NV, ukrSimd};
  return simd;
#else
  static const Kernel scalar = {"scalar", 4, 4, 4, ukrScalar};
#if defined(__x86_64__)
  static const Kernel k512 = {"avx512", 6, 16, 4, ukr512};
  static const Kernel k256 = {"avx2", 6, 8, 2, ukr256};
  static const Kernel* chosen = nullptr;
  if (!chosen) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) chosen = &k512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) chosen = &k256;
    else chosen = &scalar;
  }
  return *chosen;
#else
  return scalar;
#endif
#endif
}

// ---------------------------------------------------------------- packing

// op(A) rows [i0, i0+mc), cols [k0, k0+kc) into panels of mr rows: dst[p][k][r], zero rows past M.
void packA(const Kernel& kr, bool tA, const float* A, long lda, long i0, long mc, long k0, long kc, float* dst) {
  const int mr = kr.mr;
  for (long p = 0; p < mc; p += mr) {
    const long rows = mc - p < mr ? mc - p : mr;
    float* d = dst + p * kc;
    if (!tA) {
      for (int r = 0; r < mr; r++) {
        if (r < rows) {
          const float* src = A + (i0 + p + r) * lda + k0;
          for (long k = 0; k < kc; k++) d[k * mr + r] = src[k];
        } else {
          for (long k = 0; k < kc; k++) d[k * mr + r] = 0.f;
        }
      }
    } else {
      for (long k = 0; k < kc; k++) {
        const float* src = A + (k0 + k) * lda + i0 + p;
        float* dk = d + k * mr;
        int r = 0;
        for (; r < rows; r++) dk[r] = src[r];
        for (; r < mr; r++) dk[r] = 0.f;
      }
    }
  }
}

// op(B) rows [k0, k0+kc), cols [j0, j0+nc) into panels of NR columns (the last one
// rounded up to whole vectors, zero-padded): panel at dst + jr*kc, dst[k][j].
void packB(const Kernel& kr, bool tB, const float* B, long ldb, long k0, long kc, long j0, long nc, float* dst) {
  const long NR = (long)kr.vl * kr.nvMax;
  for (long jr = 0; jr < nc; jr += NR) {
    const long n = nc - jr < NR ? nc - jr : NR;
    const long w = (n + kr.vl - 1) / kr.vl * kr.vl;
    float* d = dst + jr * kc;
    if (!tB) {
      for (long k = 0; k < kc; k++) {
        const float* src = B + (k0 + k) * ldb + j0 + jr;
        float* dk = d + k * w;
        long j = 0;
        for (; j < n; j++) dk[j] = src[j];
        for (; j < w; j++) dk[j] = 0.f;
      }
    } else {
      // B is stored N x K: read rows of B contiguously, 16 k at a time, so the 16
      // destination rows being written stay in L1.
      for (long kb = 0; kb < kc; kb += 16) {
        const long ke = kc - kb < 16 ? kc - kb : 16;
        for (long j = 0; j < n; j++) {
          const float* src = B + (j0 + jr + j) * ldb + k0 + kb;
          for (long k = 0; k < ke; k++) d[(kb + k) * w + j] = src[k];
        }
        for (long j = n; j < w; j++)
          for (long k = 0; k < ke; k++) d[(kb + k) * w + j] = 0.f;
      }
    }
  }
}

// ---------------------------------------------------------------- driver

struct Buffers {
  float* a;
  float* b;
};

#if GL_WASM
alignas(16) float wasmBufA[MC * KC_MAX];
alignas(16) float wasmBufB[NC * KC_MAX];
Buffers buffers() { return {wasmBufA, wasmBufB}; }
#else
Buffers buffers() {
  // One pair per thread (pool threads are persistent), allocated on first use.
  static thread_local Buffers buf = {nullptr, nullptr};
  if (!buf.a) {
    buf.a = (float*)aligned_alloc(64, sizeof(float) * (MC + 16) * KC_MAX);
    buf.b = (float*)aligned_alloc(64, sizeof(float) * (NC + 64) * KC_MAX);
  }
  return buf;
}
#endif

void gemmSerial(bool tA, bool tB, long M, long N, long K, const float* A, long lda, const float* B, long ldb,
                bool accumulate, float* C, long ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) C[i * ldc + j] = 0.f;
    return;
  }
  const Kernel& kr = pickKernel();
  const Buffers buf = buffers();
  const long NR = (long)kr.vl * kr.nvMax;
  const long mr = kr.mr;
  const long nkb = K <= KC_MAX ? 1 : (K + KC_SPLIT - 1) / KC_SPLIT;
  const long KC = (K + nkb - 1) / nkb;
  const long mcMax = MC / mr * mr;
  float tmp[MR_MAX * NR_MAX];
  for (long jc = 0; jc < N; jc += NC) {
    const long nc = N - jc < NC ? N - jc : NC;
    for (long pc = 0; pc < K; pc += KC) {
      const long kc = K - pc < KC ? K - pc : KC;
      packB(kr, tB, B, ldb, pc, kc, jc, nc, buf.b);
      const bool load = accumulate || pc > 0;
      for (long ic = 0; ic < M; ic += mcMax) {
        const long mc = M - ic < mcMax ? M - ic : mcMax;
        packA(kr, tA, A, lda, ic, mc, pc, kc, buf.a);
        for (long jr = 0; jr < nc; jr += NR) {
          const long n = nc - jr < NR ? nc - jr : NR;
          const int nv = (int)((n + kr.vl - 1) / kr.vl);
          const long w = (long)nv * kr.vl;
          const float* bp = buf.b + jr * kc;
          for (long ir = 0; ir < mc; ir += mr) {
            const long m = mc - ir < mr ? mc - ir : mr;
            const float* ap = buf.a + ir * kc;
            float* cp = C + (ic + ir) * ldc + jc + jr;
            if (m == mr && n == w) {
              kr.ukr(nv, kc, ap, bp, cp, ldc, load);
            } else {
              kr.ukr(nv, kc, ap, bp, tmp, w, false);
              for (long r = 0; r < m; r++)
                for (long j = 0; j < n; j++) cp[r * ldc + j] = load ? cp[r * ldc + j] + tmp[r * w + j] : tmp[r * w + j];
            }
          }
        }
      }
    }
  }
}

struct GemmTask {
  bool tA, tB, accumulate, splitN;
  long M, N, K, lda, ldb, ldc, step;
  const float* A;
  const float* B;
  float* C;
};

void gemmTask(void* ctx, int tid, int nt) {
  const GemmTask& t = *(const GemmTask*)ctx;
  (void)nt;
  if (t.splitN) {
    const long j0 = tid * t.step;
    if (j0 >= t.N) return;
    const long n = t.N - j0 < t.step ? t.N - j0 : t.step;
    const float* Bj = t.tB ? t.B + j0 * t.ldb : t.B + j0;
    gemmSerial(t.tA, t.tB, t.M, n, t.K, t.A, t.lda, Bj, t.ldb, t.accumulate, t.C + j0, t.ldc);
  } else {
    const long i0 = tid * t.step;
    if (i0 >= t.M) return;
    const long m = t.M - i0 < t.step ? t.M - i0 : t.step;
    const float* Ai = t.tA ? t.A + i0 : t.A + i0 * t.lda;
    gemmSerial(t.tA, t.tB, m, t.N, t.K, Ai, t.lda, t.B, t.ldb, t.accumulate, t.C + i0 * t.ldc, t.ldc);
  }
}

}  // namespace

const char* gemmKernelName() { return pickKernel().name; }

void gemm(bool transA, bool transB, long M, long N, long K, const float* A, long lda, const float* B, long ldb,
          float beta, float* C, long ldc) {
  const bool accumulate = beta != 0.f;
  int nt = numThreads();
  const double flops = 2.0 * (double)M * (double)N * (double)K;
  // Below ~1 MFLOP a second thread costs more in wake-up than it saves.
  if (flops < 1.5e6) nt = 1;
  if (nt > 1) {
    const Kernel& kr = pickKernel();
    GemmTask t = {transA, transB, accumulate, false, M, N, K, lda, ldb, ldc, 0, A, B, C};
    // Split the larger side into whole tiles so every thread gets work.
    t.splitN = N >= M || M < (long)kr.mr * nt;
    const long side = t.splitN ? N : M;
    const long unit = t.splitN ? kr.vl : kr.mr;
    const long units = (side + unit - 1) / unit;
    if (units < nt) nt = (int)units;
    t.step = (units + nt - 1) / nt * unit;
    if (nt > 1) {
      parallel(nt, gemmTask, &t);
      return;
    }
  }
  gemmSerial(transA, transB, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
}

}  // namespace gl
