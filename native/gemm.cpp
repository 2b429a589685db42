// Packed, cache-blocked single-precision GEMM (Goto / BLIS scheme):
//   for jc (NC columns of C) / pc (KC of K): pack op(B) into panels of NR columns
//     for ic (MC rows): pack op(A) into panels of MR rows
//       for jr / ir: an MR x NR register-tile microkernel over the packed panels.
// Packing absorbs all transpose combinations, lda/ldb/ldc and offsets. An operand
// whose packed copy would be used only once or twice (A with N <= 2 NR, B with M <= MC,
// both untransposed) is read in place instead, and A . B^T with few rows (weight
// gradients) is computed as C^T = B . A^T so that the large operand needs no
// transposed pack; a C of at most 4 rows or columns (one token's projections, a
// one-output layer) skips packing altogether (dot products / row axpys, "thin products"
// below). Microkernels: AVX-512 (6 x 64, zmm FMA), AVX2+FMA (6 x 16), wasm
// simd128 (4 x 8, mul+add: V8 has 16 xmm registers), portable C (4 x 16).
// Threads take column (or row) chunks of C from a shared counter; each chunk is an
// independent sub-GEMM with the thread's own packing buffers.
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

constexpr long KC_MAX = 512;   // K block; a K of at most KC_MAX is one block
constexpr long KC_SPLIT = 512; // larger K is split into equal blocks of at most this
constexpr long NC = 1024;      // columns of packed B per block (KC x NC lives in L2/L3)
constexpr long MC = 144;       // rows of packed A per block (MC x KC lives in L2)
constexpr int MR_MAX = 8;
constexpr int NR_MAX = 64;

// A microkernel computes the MR x (nv * VL) tile C = (load ? C : 0) + A . B over kc.
// A is a packed panel (element (k, r) at a[k * MR + r]) when lda == 0, else read in
// place (a[r * lda + k]); B is a packed panel (b[k * nv * VL + j]) when ldb == 0, else
// read in place (b[k * ldb + j]). Reading in place skips packing an operand that
// would be used only once or twice.
typedef void (*Ukr)(int nv, long kc, const float* a, long lda, const float* b, long ldb, float* c, long ldc, bool load);

#define GL_UKR_CASES(T, NV)                                                   \
  case NV * 4 + 0: T<NV, false, false>(kc, a, lda, b, ldb, c, ldc, load); break; \
  case NV * 4 + 1: T<NV, false, true>(kc, a, lda, b, ldb, c, ldc, load); break;  \
  case NV * 4 + 2: T<NV, true, false>(kc, a, lda, b, ldb, c, ldc, load); break;  \
  case NV * 4 + 3: T<NV, true, true>(kc, a, lda, b, ldb, c, ldc, load); break;
#define GL_UKR_MODE(nv) ((nv) * 4 + (lda ? 2 : 0) + (ldb ? 1 : 0))

struct Kernel {
  const char* name;
  int mr, vl, nvMax;  // tile rows, floats per vector, vectors per row
  Ukr ukr;
};

// ---------------------------------------------------------------- microkernels

// Portable: 4 x 16, one "vector" of 4 floats per nv.
[[maybe_unused]] void ukrScalar(int nv, long kc, const float* GL_RESTRICT a, long lda, const float* GL_RESTRICT b,
                                long ldb, float* GL_RESTRICT c, long ldc, bool load) {
  const int w = nv * 4;
  const long bs = ldb ? ldb : w;
  float acc[4][16] = {};
  for (long k = 0; k < kc; k++) {
    const float* bk = b + k * bs;
    for (int r = 0; r < 4; r++) {
      const float av = lda ? a[r * lda + k] : a[k * 4 + r];
      for (int j = 0; j < w; j++) acc[r][j] += av * bk[j];
    }
  }
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < w; j++) c[r * ldc + j] = load ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

#if defined(__x86_64__) && !GL_WASM
template <int NV, bool DA, bool DB>
__attribute__((target("avx512f,fma"))) void ukr512T(long kc, const float* GL_RESTRICT a, long lda,
                                                    const float* GL_RESTRICT b, long ldb, float* GL_RESTRICT c,
                                                    long ldc, bool load) {
  const long bs = DB ? ldb : NV * 16;
  __m512 acc[6][NV];
  for (int r = 0; r < 6; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int r = 0; r < 6; r++) _mm_prefetch((const char*)(c + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (long k = 0; k < kc; k++) {
    __m512 bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + k * bs + v * 16);
    _mm_prefetch((const char*)(b + (k + 8) * bs), _MM_HINT_T0);
    for (int r = 0; r < 6; r++) {
      const __m512 av = _mm512_set1_ps(DA ? a[r * lda + k] : a[k * 6 + r]);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < 6; r++)
    for (int v = 0; v < NV; v++) {
      float* p = c + r * ldc + v * 16;
      _mm512_storeu_ps(p, load ? _mm512_add_ps(_mm512_loadu_ps(p), acc[r][v]) : acc[r][v]);
    }
}

__attribute__((target("avx512f,fma"))) void ukr512(int nv, long kc, const float* a, long lda, const float* b,
                                                   long ldb, float* c, long ldc, bool load) {
  switch (GL_UKR_MODE(nv)) {
    GL_UKR_CASES(ukr512T, 1)
    GL_UKR_CASES(ukr512T, 2)
    GL_UKR_CASES(ukr512T, 3)
    GL_UKR_CASES(ukr512T, 4)
  }
}

template <int NV, bool DA, bool DB>
__attribute__((target("avx2,fma"))) void ukr256T(long kc, const float* GL_RESTRICT a, long lda,
                                                 const float* GL_RESTRICT b, long ldb, float* GL_RESTRICT c, long ldc,
                                                 bool load) {
  const long bs = DB ? ldb : NV * 8;
  __m256 acc[6][NV];
  for (int r = 0; r < 6; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (long k = 0; k < kc; k++) {
    __m256 bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = _mm256_loadu_ps(b + k * bs + v * 8);
    for (int r = 0; r < 6; r++) {
      const __m256 av = _mm256_broadcast_ss(DA ? a + r * lda + k : a + k * 6 + r);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < 6; r++)
    for (int v = 0; v < NV; v++) {
      float* p = c + r * ldc + v * 8;
      _mm256_storeu_ps(p, load ? _mm256_add_ps(_mm256_loadu_ps(p), acc[r][v]) : acc[r][v]);
    }
}

__attribute__((target("avx2,fma"))) void ukr256(int nv, long kc, const float* a, long lda, const float* b, long ldb,
                                                float* c, long ldc, bool load) {
  switch (GL_UKR_MODE(nv)) {
    GL_UKR_CASES(ukr256T, 1)
    GL_UKR_CASES(ukr256T, 2)
  }
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
template <int NV, bool DA, bool DB>
void ukrSimdT(long kc, const float* GL_RESTRICT a, long lda, const float* GL_RESTRICT b, long ldb, float* GL_RESTRICT c,
              long ldc, bool load) {
  constexpr int MR = GL_WASM_MR;
  const long bs = DB ? ldb : NV * 4;
  v128_t acc[MR][NV];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = wasm_f32x4_splat(0.f);
#pragma clang loop unroll_count(GL_WASM_UNROLL)
  for (long k = 0; k < kc; k++) {
    v128_t bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = wasm_v128_load(b + k * bs + v * 4);
    for (int r = 0; r < MR; r++) {
      const v128_t av = wasm_v128_load32_splat(DA ? a + r * lda + k : a + k * MR + r);
      for (int v = 0; v < NV; v++) acc[r][v] = wasm_f32x4_add(acc[r][v], wasm_f32x4_mul(av, bv[v]));
    }
  }
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) {
      float* p = c + r * ldc + v * 4;
      wasm_v128_store(p, load ? wasm_f32x4_add(wasm_v128_load(p), acc[r][v]) : acc[r][v]);
    }
}

void ukrSimd(int nv, long kc, const float* a, long lda, const float* b, long ldb, float* c, long ldc, bool load) {
  switch (GL_UKR_MODE(nv)) {
    GL_UKR_CASES(ukrSimdT, 1)
#if GL_WASM_NV >= 2
    GL_UKR_CASES(ukrSimdT, 2)
#endif
#if GL_WASM_NV >= 3
    GL_UKR_CASES(ukrSimdT, 3)
#endif
#if GL_WASM_NV >= 4
    GL_UKR_CASES(ukrSimdT, 4)
#endif
  }
}
#endif

#if !GL_WASM
const Kernel kScalar = {"scalar", 4, 4, 4, ukrScalar};
#if defined(__x86_64__)
const Kernel k512 = {"avx512", 6, 16, 4, ukr512};
const Kernel k256 = {"avx2", 6, 8, 2, ukr256};
#endif
const Kernel* chosen = nullptr;

const Kernel* bestKernel() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return &k512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &k256;
#endif
  return &kScalar;
}
#endif

const Kernel& pickKernel() {
#if GL_WASM
  static const Kernel simd = {"simd128", GL_WASM_MR, 4, GL_WASM_NV, ukrSimd};
  return simd;
#else
  if (!chosen) chosen = bestKernel();
  return *chosen;
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
  if (!tB) {
    // Row by row over the whole block: long sequential reads, NR-float writes.
    for (long k = 0; k < kc; k++) {
      const float* src = B + (k0 + k) * ldb + j0;
      for (long jr = 0; jr < nc; jr += NR) {
        const long n = nc - jr < NR ? nc - jr : NR;
        const long w = (n + kr.vl - 1) / kr.vl * kr.vl;
        float* dk = dst + jr * kc + k * w;
        long j = 0;
        for (; j < n; j++) dk[j] = src[jr + j];
        for (; j < w; j++) dk[j] = 0.f;
      }
    }
    return;
  }
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

// The epilogue on rows [0, m) and columns [0, n) of C (bias from the first column's entry).
GL_CLONES void finish(float* GL_RESTRICT C, long ldc, long m, long n, const float* GL_RESTRICT bias, bool relu) {
  for (long r = 0; r < m; r++) {
    float* GL_RESTRICT c = C + r * ldc;
    if (bias)
      for (long j = 0; j < n; j++) c[j] += bias[j];
    if (relu)
      for (long j = 0; j < n; j++) c[j] = 0.f > c[j] ? 0.f : c[j];  // a max instruction; NaN stays NaN
  }
}

void gemmSerial(bool tA, bool tB, long M, long N, long K, const float* A, long lda, const float* B, long ldb,
                bool accumulate, float* C, long ldc, const GemmEpilogue& epi = GemmEpilogue()) {
  if (M <= 0 || N <= 0) return;
  const bool epilogue = epi.bias || epi.relu;  // (gemm sends products with K < 32 here without one)
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
  // Read an operand in place when a packed copy would be used only once or twice:
  // A when there are at most two column panels, B when all rows fit one row block.
  const bool directA = !tA && N <= 2 * NR;
  const bool directB = !tB && M <= mcMax;
  float tmp[MR_MAX * NR_MAX];
  for (long jc = 0; jc < N; jc += NC) {
    const long nc = N - jc < NC ? N - jc : NC;
    for (long pc = 0; pc < K; pc += KC) {
      const long kc = K - pc < KC ? K - pc : KC;
      if (!directB) packB(kr, tB, B, ldb, pc, kc, jc, nc, buf.b);
      const bool load = accumulate || pc > 0;
      for (long ic = 0; ic < M; ic += mcMax) {
        const long mc = M - ic < mcMax ? M - ic : mcMax;
        if (!directA) packA(kr, tA, A, lda, ic, mc, pc, kc, buf.a);
        for (long jr = 0; jr < nc; jr += NR) {
          const long n = nc - jr < NR ? nc - jr : NR;
          const int nv = (int)((n + kr.vl - 1) / kr.vl);
          const long w = (long)nv * kr.vl;
          const float* bp = buf.b + jr * kc;
          long bstride = 0;
          if (directB) {
            if (n == w) {
              bp = B + pc * ldb + jc + jr;
              bstride = ldb;
            } else {
              packB(kr, false, B, ldb, pc, kc, jc + jr, n, buf.b);
              bp = buf.b;
            }
          }
          for (long ir = 0; ir < mc; ir += mr) {
            const long m = mc - ir < mr ? mc - ir : mr;
            const float* ap = buf.a + ir * kc;
            long astride = 0;
            if (directA) {
              if (m == mr) {
                ap = A + (ic + ir) * lda + pc;
                astride = lda;
              } else {
                packA(kr, false, A, lda, ic + ir, m, pc, kc, buf.a);
                ap = buf.a;
              }
            }
            float* cp = C + (ic + ir) * ldc + jc + jr;
            if (m == mr && n == w) {
              kr.ukr(nv, kc, ap, astride, bp, bstride, cp, ldc, load);
            } else {
              kr.ukr(nv, kc, ap, astride, bp, bstride, tmp, w, false);
              for (long r = 0; r < m; r++)
                for (long j = 0; j < n; j++) cp[r * ldc + j] = load ? cp[r * ldc + j] + tmp[r * w + j] : tmp[r * w + j];
            }
            // The tile is complete after the last K block: finish it while it is in L1.
            if (epilogue && pc + kc == K) finish(cp, ldc, m, n, epi.bias ? epi.bias + jc + jr : nullptr, epi.relu);
          }
        }
      }
    }
  }
}

// Threads take chunks of C (column or row ranges) from a shared counter, several per
// thread, so a thread that the OS preempts (other processes on a small machine) does
// not hold the others up; each chunk is an independent sub-GEMM.
struct GemmTask {
  bool tA, tB, accumulate, splitN;
  long M, N, K, lda, ldb, ldc, step, chunks;
  long next;  // next chunk to take (atomic)
  const float* A;
  const float* B;
  float* C;
  GemmEpilogue epi;
};

void gemmChunk(const GemmTask& t, long c) {
  if (t.splitN) {
    const long j0 = c * t.step;
    if (j0 >= t.N) return;
    const long n = t.N - j0 < t.step ? t.N - j0 : t.step;
    const float* Bj = t.tB ? t.B + j0 * t.ldb : t.B + j0;
    const GemmEpilogue e = {t.epi.bias ? t.epi.bias + j0 : nullptr, t.epi.relu};
    gemmSerial(t.tA, t.tB, t.M, n, t.K, t.A, t.lda, Bj, t.ldb, t.accumulate, t.C + j0, t.ldc, e);
  } else {
    const long i0 = c * t.step;
    if (i0 >= t.M) return;
    const long m = t.M - i0 < t.step ? t.M - i0 : t.step;
    const float* Ai = t.tA ? t.A + i0 : t.A + i0 * t.lda;
    gemmSerial(t.tA, t.tB, m, t.N, t.K, Ai, t.lda, t.B, t.ldb, t.accumulate, t.C + i0 * t.ldc, t.ldc, t.epi);
  }
}

void gemmTask(void* ctx, int tid, int nt) {
  (void)tid;
  (void)nt;
  GemmTask& t = *(GemmTask*)ctx;
  for (;;) {
    const long c = __atomic_fetch_add(&t.next, 1, __ATOMIC_RELAXED);
    if (c >= t.chunks) break;
    gemmChunk(t, c);
  }
}

}  // namespace

const char* gemmKernelName() { return pickKernel().name; }

bool setGemmKernel(const char* name) {
#if GL_WASM
  (void)name;
  return false;
#else
  const Kernel* want = nullptr;
  auto is = [&](const char* s) {
    int i = 0;
    for (; s[i] && name[i] == s[i]; i++) {}
    return s[i] == 0 && name[i] == 0;
  };
  if (is("scalar")) want = &kScalar;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (is("avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) want = &k256;
  if (is("avx512") && __builtin_cpu_supports("avx512f")) want = &k512;
#endif
  if (is("best")) want = bestKernel();
  if (!want) return false;
  chosen = want;
  return true;
#endif
}

namespace {
void gemmThreaded(bool transA, bool transB, long M, long N, long K, const float* A, long lda, const float* B,
                  long ldb, bool accumulate, float* C, long ldc, const GemmEpilogue& epi = GemmEpilogue()) {
  int nt = numThreads();
  const double flops = 2.0 * (double)M * (double)N * (double)K;
  // Below ~1 MFLOP a second thread costs more in wake-up than it saves.
  if (flops < 1.5e6) nt = 1;
  if (nt > 1) {
    const Kernel& kr = pickKernel();
    GemmTask t = {transA, transB, accumulate, false, M, N, K, lda, ldb, ldc, 0, 0, 0, A, B, C, epi};
    // Split the larger side. Chunks: whole register tiles (wide panels when there are
    // plenty), about 4 per thread but none below ~4 MFLOP.
    t.splitN = N >= M || M < (long)kr.mr * nt;
    // A^T . B (a weight gradient) with M <= N: column chunks would each transpose-pack
    // all of A, while row chunks of at most MC rows pack only their rows and read B in
    // place, which pays while B (K x N) stays within ~8 MB (measured, 2 threads:
    // 256x256x512 112 -> 173 GFLOPS, 128x384x4096 127 -> 182; 256x1024x4096 lost).
    const bool rowsReadB = transA && !transB && M <= N && (double)K * N <= (double)(1 << 21) && M >= 2L * kr.mr * nt;
    if (rowsReadB) t.splitN = false;
    const long side = t.splitN ? N : M;
    const long nr = (long)kr.vl * kr.nvMax;
    const long unit = t.splitN ? (side >= 8 * nr * nt ? nr : kr.vl) : kr.mr;
    const long units = (side + unit - 1) / unit;
    long chunks = 4L * nt;
    const double perUnit = flops / (double)units;
    const long minUnits = (long)(4e6 / perUnit) + 1;
    if (units / chunks < minUnits) chunks = units / minUnits;
    // Row chunks each pack all of B: keep them tall (>= 192 rows) so that packing
    // stays small next to their arithmetic; the chunks above that read B in place are
    // at most MC rows instead.
    if (!t.splitN && !rowsReadB && chunks > M / 192) chunks = M / 192;
    // Column chunks likewise each pack all of A (unless it is read in place).
    if (t.splitN && (transA || N > 2 * nr) && chunks > N / 192) chunks = N / 192;
    if (rowsReadB && chunks < (M + MC - 1) / MC) chunks = (M + MC - 1) / MC;
    // A multiple of the thread count, so that no thread is left with one chunk more.
    if (chunks > nt) chunks -= chunks % nt;
    if (chunks < nt) chunks = units < nt ? units : nt;
    t.step = (units + chunks - 1) / chunks * unit;
    t.chunks = (side + t.step - 1) / t.step;
    if (t.chunks < nt) nt = (int)t.chunks;
    if (nt > 1) {
      parallel(nt, gemmTask, &t);
      return;
    }
  }
  gemmSerial(transA, transB, M, N, K, A, lda, B, ldb, accumulate, C, ldc, epi);
}

// Runs f(lo, hi) over [0, n) split across the pool when the work (cost) is large enough
// (also conv.cpp's, included below).
template <class F>
void forRange(long n, double cost, F f) {
  int nt = numThreads();
  if (cost < 2e5 || n < 2) nt = 1;
  if (nt > n) nt = (int)n;
  if (nt <= 1) {
    f(0L, n);
    return;
  }
  struct Ctx {
    F* f;
    long n, next, step;
  } ctx = {&f, n, 0, 0};
  // Several chunks per thread, so that a descheduled thread does not hold the others up.
  long chunks = 4L * nt < n ? 4L * nt : n;
  ctx.step = (n + chunks - 1) / chunks;
  parallel(nt, [](void* c, int, int) {
    Ctx& x = *(Ctx*)c;
    for (;;) {
      const long lo = __atomic_fetch_add(&x.next, x.step, __ATOMIC_RELAXED);
      if (lo >= x.n) break;
      (*x.f)(lo, lo + x.step < x.n ? lo + x.step : x.n);
    }
  }, &ctx);
}

// ---------------------------------------------------------------- thin products
// C with at most THIN rows (decoding one token: x . W^T at M = 1; the weight gradient
// of a one-output layer: dy^T . X) or at most THIN columns (a layer to one output).
// Packing the large operand into register-tile panels would cost as much as the
// product and an MR x NR tile would be mostly empty, so the large operand is read in
// place: as dot products when its rows run along K, as row-by-row axpy otherwise. A
// strided vector of the thin operand is gathered KB elements at a time.
constexpr long THIN = 4;
constexpr long KB = 512;

// out[r * os + v * ov] (+)= X[r, 0..K) . V[v, 0..K) for r in [r0, r1) and v < NV
// (V's rows ldv apart): each row of X is read once for all NV products.
template <int NV>
__attribute__((always_inline)) inline void dotRowsN(const float* GL_RESTRICT X, long ldx, long r0, long r1, const float* GL_RESTRICT V, long ldv,
                        long K, float* GL_RESTRICT out, long os, long ov, bool accumulate) {
  for (long r = r0; r < r1; r++) {
    const float* x = X + r * ldx;
    float acc[NV][32];
    for (int v = 0; v < NV; v++)
      for (int l = 0; l < 32; l++) acc[v][l] = 0.f;
    long k = 0;
    for (; k + 32 <= K; k += 32)
      for (int v = 0; v < NV; v++)
        for (int l = 0; l < 32; l++) acc[v][l] += x[k + l] * V[v * ldv + k + l];
    for (int v = 0; v < NV; v++) {
      float t = 0.f;
      for (long q = k; q < K; q++) t += x[q] * V[v * ldv + q];
      for (int l = 0; l < 32; l++) t += acc[v][l];
      float* o = out + r * os + v * ov;
      *o = accumulate ? *o + t : t;
    }
  }
}

// One vector (a decoding step's x . W^T, attention's q . K^T): the single-accumulator
// loop, which the template's codegen ran ~3x slower at K = 32.
__attribute__((always_inline)) inline void dotRows1(const float* GL_RESTRICT X, long ldx, long r0, long r1,
                                                    const float* GL_RESTRICT v, long K, float* GL_RESTRICT out, long os,
                                                    bool accumulate) {
  for (long r = r0; r < r1; r++) {
    const float* x = X + r * ldx;
    float acc[32] = {0.f};
    long k = 0;
    for (; k + 32 <= K; k += 32)
      for (int l = 0; l < 32; l++) acc[l] += x[k + l] * v[k + l];
    float t = 0.f;
    for (; k < K; k++) t += x[k] * v[k];
    for (int l = 0; l < 32; l++) t += acc[l];
    out[r * os] = accumulate ? out[r * os] + t : t;
  }
}

GL_CLONES void dotRows(const float* GL_RESTRICT X, long ldx, long r0, long r1, const float* GL_RESTRICT V, long ldv,
                       int nv, long K, float* GL_RESTRICT out, long os, long ov, bool accumulate) {
  switch (nv) {
    case 1: dotRows1(X, ldx, r0, r1, V, K, out, os, accumulate); break;
    case 2: dotRowsN<2>(X, ldx, r0, r1, V, ldv, K, out, os, ov, accumulate); break;
    case 3: dotRowsN<3>(X, ldx, r0, r1, V, ldv, K, out, os, ov, accumulate); break;
    default: dotRowsN<4>(X, ldx, r0, r1, V, ldv, K, out, os, ov, accumulate); break;
  }
}

// out[v * ldo + j] (+)= sum_k V[v, k] X[k, j] for j in [j0, j1) and v < NV, in column
// blocks that stay in L1: each row of X is read once for all NV sums.
template <int NV>
__attribute__((always_inline)) inline void axpyRowsN(const float* GL_RESTRICT X, long ldx, long j0, long j1,
                                                     const float* GL_RESTRICT V, long ldv, long K,
                                                     float* GL_RESTRICT out, long ldo, bool accumulate) {
  for (long jb = j0; jb < j1; jb += 1024) {
    const long je = j1 - jb < 1024 ? j1 : jb + 1024;
    if (!accumulate)
      for (int v = 0; v < NV; v++)
        for (long j = jb; j < je; j++) out[v * ldo + j] = 0.f;
    for (long k = 0; k < K; k++) {
      const float* GL_RESTRICT x = X + k * ldx;
      float a[NV];
      for (int v = 0; v < NV; v++) a[v] = V[v * ldv + k];
      for (long j = jb; j < je; j++) {
        const float xj = x[j];
        for (int v = 0; v < NV; v++) out[v * ldo + j] += a[v] * xj;
      }
    }
  }
}

GL_CLONES void axpyRows(const float* GL_RESTRICT X, long ldx, long j0, long j1, const float* GL_RESTRICT V, long ldv,
                        int nv, long K, float* GL_RESTRICT out, long ldo, bool accumulate) {
  switch (nv) {
    case 1: axpyRowsN<1>(X, ldx, j0, j1, V, ldv, K, out, ldo, accumulate); break;
    case 2: axpyRowsN<2>(X, ldx, j0, j1, V, ldv, K, out, ldo, accumulate); break;
    case 3: axpyRowsN<3>(X, ldx, j0, j1, V, ldv, K, out, ldo, accumulate); break;
    default: axpyRowsN<4>(X, ldx, j0, j1, V, ldv, K, out, ldo, accumulate); break;
  }
}

struct ThinTask {
  bool tA, tB, accumulate, rows;  // rows: M <= THIN (split N), else N <= THIN (split M)
  long M, N, K, lda, ldb, ldc;
  const float *A, *B;
  float* C;
};

// Outputs [lo, hi) of the long side of C.
void thinRange(const ThinTask& t, long lo, long hi) {
  float vbuf[THIN * KB], cbuf[THIN * KB];
  if (t.rows) {
    // C[:, lo..hi) = op(A) . op(B)[:, lo..hi), the M <= THIN rows of op(A) as V.
    for (long k0 = 0; k0 < t.K; k0 += KB) {
      const long kc = t.K - k0 < KB ? t.K - k0 : KB;
      const float* V = t.A + k0;
      long ldv = t.lda;
      if (t.tA) {
        for (long k = 0; k < kc; k++)
          for (long m = 0; m < t.M; m++) vbuf[m * KB + k] = t.A[(k0 + k) * t.lda + m];
        V = vbuf;
        ldv = KB;
      }
      const bool acc = t.accumulate || k0 > 0;
      if (t.tB) dotRows(t.B + k0, t.ldb, lo, hi, V, ldv, (int)t.M, kc, t.C, 1, t.ldc, acc);
      else axpyRows(t.B + k0 * t.ldb, t.ldb, lo, hi, V, ldv, (int)t.M, kc, t.C, t.ldc, acc);
    }
    return;
  }
  // C[lo..hi), :] = op(A)[lo..hi), :] . op(B), the N <= THIN columns of op(B) as V.
  for (long k0 = 0; k0 < t.K; k0 += KB) {
    const long kc = t.K - k0 < KB ? t.K - k0 : KB;
    const float* V = t.B + k0;
    long ldv = t.ldb;
    if (!t.tB) {
      for (long k = 0; k < kc; k++)
        for (long n = 0; n < t.N; n++) vbuf[n * KB + k] = t.B[(k0 + k) * t.ldb + n];
      V = vbuf;
      ldv = KB;
    }
    const bool acc = t.accumulate || k0 > 0;
    if (!t.tA) {
      dotRows(t.A + k0, t.lda, lo, hi, V, ldv, (int)t.N, kc, t.C, t.ldc, 1, acc);
      continue;
    }
    for (long m0 = lo; m0 < hi; m0 += KB) {
      const long mc = hi - m0 < KB ? hi - m0 : KB;
      axpyRows(t.A + k0 * t.lda + m0, t.lda, 0, mc, V, ldv, (int)t.N, kc, cbuf, KB, false);
      for (long i = 0; i < mc; i++)
        for (long n = 0; n < t.N; n++) {
          float* o = t.C + (m0 + i) * t.ldc + n;
          *o = acc ? *o + cbuf[n * KB + i] : cbuf[n * KB + i];
        }
    }
  }
}

// C = (accumulate ? C : 0) + op(A) . op(B) when C has at most THIN rows or columns;
// false otherwise.
bool gemmThin(bool tA, bool tB, long M, long N, long K, const float* A, long lda, const float* B, long ldb,
              bool accumulate, float* C, long ldc) {
  if (K <= 0 || M <= 0 || N <= 0 || (M > THIN && N > THIN)) return false;
  ThinTask t = {tA, tB, accumulate, M <= THIN, M, N, K, lda, ldb, ldc, A, B, C};
  const long side = t.rows ? N : M;
  int nt = numThreads();
  // Two threads from ~4 MFLOP; dot products of rows (N <= THIN, A read along K) from a
  // 64k-float A (realnvp-2d's 512x2x256 layers to two outputs: 31 -> 19 us in a training
  // step; its axpy forms, 2x256x512 and 256x2x512 A^T B, lost 2-4x split in two).
  const bool dots = !t.rows && !tA && (double)M * K >= 65536;
  if ((2.0 * (double)M * (double)N * (double)K < 4e6 && !dots) || side < 64) nt = 1;
  if (nt <= 1) {
    thinRange(t, 0, side);
    return true;
  }
  parallel(nt, [](void* c, int tid, int n) {
    const ThinTask& x = *(const ThinTask*)c;
    const long s = x.rows ? x.N : x.M;
    // Split on multiples of 16 so that each thread's axpy columns stay aligned.
    const long lo = s * tid / n / 16 * 16, hi = tid + 1 == n ? s : s * (tid + 1) / n / 16 * 16;
    if (lo < hi) thinRange(x, lo, hi);
  }, &t);
  return true;
}
// ---------------------------------------------------------------- short products
// C with K <= 4 (a rank-1 update: a one-output layer's input gradient g [B, 1] . W [1, N]):
// packing and register tiles are all overhead there. Each row of C is the sum of K
// scaled rows of op(B), with the epilogue, in one pass (dcgan's 64x6272x1: 231 us in the
// model, 37 alone after).
constexpr long SHORT_K = 4;

struct ShortTask {
  const float* A;
  long lda;
  bool tA, accumulate;
  const float* Bt;  // op(B) as K rows of N, ldb apart
  long ldb, M, N, K;
  float* C;
  long ldc;
  GemmEpilogue epi;
};

// Row c (+)= sum_k a[k] b[k] and the epilogue, in one pass over the row.
template <int K>
__attribute__((always_inline)) inline void shortRow(const ShortTask& t, long i, const float* GL_RESTRICT bias,
                                                    bool relu) {
  float* GL_RESTRICT c = t.C + i * t.ldc;
  float a[K];
  const float* GL_RESTRICT b[K];
  for (int k = 0; k < K; k++) {
    a[k] = t.tA ? t.A[k * t.lda + i] : t.A[i * t.lda + k];
    b[k] = t.Bt + k * t.ldb;
  }
  for (long j = 0; j < t.N; j++) {
    float s = t.accumulate ? c[j] + a[0] * b[0][j] : a[0] * b[0][j];
    for (int k = 1; k < K; k++) s += a[k] * b[k][j];
    if (bias) s += bias[j];
    c[j] = relu ? (0.f > s ? 0.f : s) : s;
  }
}

GL_CLONES void shortRows(const ShortTask& t, long i0, long i1) {
  const float* bias = t.epi.bias;
  const bool relu = t.epi.relu;
  for (long i = i0; i < i1; i++) switch (t.K) {
      case 1: shortRow<1>(t, i, bias, relu); break;
      case 2: shortRow<2>(t, i, bias, relu); break;
      case 3: shortRow<3>(t, i, bias, relu); break;
      default: shortRow<4>(t, i, bias, relu); break;
    }
}

bool gemmShort(bool tA, bool tB, long M, long N, long K, const float* A, long lda, const float* B, long ldb,
               bool accumulate, float* C, long ldc, const GemmEpilogue& epi) {
  if (K <= 0 || K > SHORT_K || M <= THIN || N <= THIN) return false;
  float* bt = nullptr;
  if (tB) {
#if GL_WASM
    return false;  // (no heap in the wasm build: the general path)
#else
    // B is N x K: its K columns as rows.
    bt = (float*)aligned_alloc(64, ((size_t)K * N * sizeof(float) + 63) / 64 * 64);
    if (!bt) return false;
    for (long j = 0; j < N; j++)
      for (long k = 0; k < K; k++) bt[k * N + j] = B[j * ldb + k];
#endif
  }
  const ShortTask t = {A, lda, tA, accumulate, tB ? bt : B, tB ? N : ldb, M, N, K, C, ldc, epi};
  // Rows in chunks of 64 (forRange hands them out from a counter: a worker that joins
  // late takes only what is left; fixed halves made 512x256x2 slower in a training step
  // than one thread), on two threads from ~64k outputs each (forRange splits from 2e5).
  const double cost = (double)M * N * (2e5 / 131072);
  forRange((M + 63) / 64, cost, [&](long lo, long hi) { shortRows(t, lo * 64, hi * 64 < M ? hi * 64 : M); });
#if !GL_WASM
  free(bt);
#endif
  return true;
}
}  // namespace

void gemm(bool transA, bool transB, long M, long N, long K, const float* A, long lda, const float* B, long ldb,
          float beta, float* C, long ldc, const GemmEpilogue& epi) {
  const bool accumulate = beta != 0.f;
  if (gemmShort(transA, transB, M, N, K, A, lda, B, ldb, accumulate, C, ldc, epi)) return;
  if (gemmThin(transA, transB, M, N, K, A, lda, B, ldb, accumulate, C, ldc)) {
    if (epi.bias || epi.relu) finish(C, ldc, M, N, epi.bias, epi.relu);
    return;
  }
#if !GL_WASM
  // A . B^T with few rows (a weight gradient: dY . X^T over a long K): B would need a
  // transposed pack of K x N. Compute C^T = B . A^T instead, where B is read in place
  // and only the smaller A gets the transposed pack, then transpose into C.
  // Only for a long K: with a short one, transposing C back costs more than the product
  // (a decoder's Linear 16 -> 3136 at batch 128, x . W^T: 530 -> 100 us without it;
  // 128x1024x64 250-350 -> 130, 64x512x128 97 -> 67-74; 16x4096x1024 kept: 723 vs 2660).
  if (transB && M < N && M > 0 && K >= 192 && (double)M * N <= (1 << 22)) {
    float* ct = (float*)aligned_alloc(64, ((size_t)M * N * sizeof(float) + 63) / 64 * 64);
    if (ct) {
      gemmThreaded(false, !transA, N, M, K, B, ldb, A, lda, false, ct, M);
      for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) C[i * ldc + j] = accumulate ? C[i * ldc + j] + ct[j * M + i] : ct[j * M + i];
      free(ct);
      if (epi.bias || epi.relu) finish(C, ldc, M, N, epi.bias, epi.relu);
      return;
    }
  }
#endif
  // With a short K a tile is finished as soon as it is made, and a pass over all of C
  // afterwards costs less than the per-tile calls (512x256x2 with bias and ReLU: 52 us
  // tile by tile, 37 as one pass after the product, 23 without).
  if (K < 32 && (epi.bias || epi.relu)) {
    gemmThreaded(transA, transB, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
    finish(C, ldc, M, N, epi.bias, epi.relu);
    return;
  }
  gemmThreaded(transA, transB, M, N, K, A, lda, B, ldb, accumulate, C, ldc, epi);
}

void gemmBatched(bool transA, bool transB, long batch, long M, long N, long K, const float* A, long aStride, long lda,
                 const float* B, long bStride, long ldb, float beta, float* C, long cStride, long ldc) {
  // Below ~4 MFLOP an item would not use a second thread by itself (gemmThreaded's
  // chunks stay above that), so the items are what gets split: attention's q k^T and
  // p v per image at 7x7 (49 x 49 x 128) ran on one thread, 256 products a step.
  int nt = numThreads();
  if (batch < 2 || 2.0 * M * N * K >= 4e6 || 2.0 * M * N * K * batch < 1.5e6) nt = 1;
  if (nt <= 1) {
    for (long i = 0; i < batch; i++)
      gemm(transA, transB, M, N, K, A + i * aStride, lda, B + i * bStride, ldb, beta, C + i * cStride, ldc);
    return;
  }
  struct Task {
    bool tA, tB;
    long M, N, K, aStride, lda, bStride, ldb, cStride, ldc, batch, next;
    const float *A, *B;
    float* C;
    bool accumulate;
  } t = {transA, transB, M, N, K, aStride, lda, bStride, ldb, cStride, ldc, batch, 0, A, B, C, beta != 0.f};
  parallel(nt, [](void* c, int, int) {
    Task& t = *(Task*)c;
    for (;;) {
      const long i = __atomic_fetch_add(&t.next, 1, __ATOMIC_RELAXED);
      if (i >= t.batch) break;
      gemmSerial(t.tA, t.tB, t.M, t.N, t.K, t.A + i * t.aStride, t.lda, t.B + i * t.bStride, t.ldb, t.accumulate,
                 t.C + i * t.cStride, t.ldc);
    }
  }, &t);
}

}  // namespace gl

// Implicit-GEMM convolutions (same translation unit: they use the packers above).
#include "conv.cpp"
