// genlab native kernels: shared declarations for the two targets built from these
// sources, the Node-API addon (g++, x86-64 with AVX-512 / AVX2 / scalar variants
// chosen at run time) and the wasm32+simd128 module (clang, freestanding, no libc).
// The js backend (src/engine/backends/js.ts) is the definition of every kernel; these
// must agree with it (see native.test.ts / wasm.test.ts).
#pragma once
#include <stddef.h>
#include <stdint.h>

#if defined(__wasm__)
#define GL_WASM 1
#define GL_EXPORT(name) __attribute__((export_name(#name)))
#else
#define GL_WASM 0
#endif

#if defined(__x86_64__) && !GL_WASM && defined(__GNUC__) && !defined(__clang__)
// Auto-vectorized loops get AVX-512 / AVX2 clones picked by the dynamic loader.
#define GL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GL_CLONES
#endif

#define GL_RESTRICT __restrict__

namespace gl {

// Runs fn(ctx, tid, nthreads) on up to `want` threads (the caller is thread 0) and
// returns when all are done. Serial in wasm.
typedef void (*TaskFn)(void* ctx, int tid, int nthreads);
void parallel(int want, TaskFn fn, void* ctx);
int numThreads();
void setNumThreads(int n);

// Kernels; argument meanings as in src/engine/backends/backend.ts.
// What gemm does to each finished element of C: add bias[column] (when not null), then ReLU.
struct GemmEpilogue {
  const float* bias = nullptr;
  bool relu = false;
};
void gemm(bool transA, bool transB, long M, long N, long K,
          const float* A, long lda, const float* B, long ldb,
          float beta, float* C, long ldc, const GemmEpilogue& epi = GemmEpilogue());
// `batch` independent products as gemm's (no epilogue), item i at A + i aStride, B + i
// bStride, C + i cStride (C items must not overlap): items too small to split are
// spread over the threads, larger ones run one after another, each threaded.
void gemmBatched(bool transA, bool transB, long batch, long M, long N, long K, const float* A, long aStride, long lda,
                 const float* B, long bStride, long ldb, float beta, float* C, long cStride, long ldc);
// Which GEMM microkernel runs: "avx512", "avx2", "simd128" or "scalar".
const char* gemmKernelName();
// Force a microkernel (tests run each one); false if this CPU/target lacks it.
bool setGemmKernel(const char* name);

// Unary op codes, in the order of UnaryOp in backend.ts. Returns false when the op
// is not implemented on this target (the caller then falls back to js).
bool unary(int op, const float* x, float* out, long n, double p0, double p1);
// out = g f'(x) over n contiguous floats, f = relu, leaky relu (slope), gelu, silu
// (kind in the order of ActivationGrad in backend.ts); false for an unknown kind.
bool activationGrad(int kind, const float* x, const float* g, float* out, long n, float slope);
// Binary op codes in the order of BinaryOp. shape/strides have `rank` entries.
bool binary(int op, const float* a, const int64_t* aStrides, const float* b, const int64_t* bStrides,
            float* out, const int64_t* shape, int rank);
// Strided copy of 4-byte elements (float or int32) into a contiguous array.
bool copy4(const uint32_t* x, const int64_t* strides, uint32_t* out, const int64_t* shape, int rank);
// dst viewed through dstStrides (positive on every axis longer than 1, the view not
// overlapping itself) += src [shape] row-major; false (nothing done) otherwise.
bool addStrided(const float* src, float* dst, const int64_t* dstStrides, const int64_t* shape, int rank);
void reduce(int op, const float* x, long outer, long len, long inner, float* out);
void softmax(const float* x, long outer, long len, long inner, bool log, float* out);
void im2col(const float* x, long C, long H, long W, long kh, long kw, long sh, long sw, long ph, long pw,
            long dh, long dw, long oh, long ow, float* cols);
void col2im(const float* cols, long C, long H, long W, long kh, long kw, long sh, long sw, long ph, long pw,
            long dh, long dw, long oh, long ow, float* x);
void adam(float* param, const float* grad, float* m, float* v, long n, double lr, double beta1, double beta2,
          double eps, double weightDecay, bool decoupled, double step);

// One convolution geometry (conv.cpp; ConvGeometry in backend.ts): x [N, Cin, H, W],
// y [N, Cout, oh, ow], weight [Cout, Cin/groups, kh, kw].
struct ConvShape {
  long N, Cin, H, W, Cout, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups;
};
#if !GL_WASM
// y = conv(x, w) + bias (bias nullable); overwrites y.
void convForward(const float* x, const float* w, const float* bias, const ConvShape& s, float* y);
// x += conv^T(y, w) (x holds zeros or a bias), or x = conv^T(y, w) when overwrite.
void convBackwardData(const float* y, const float* w, const ConvShape& s, float* x, bool overwrite = false);
// dw = sum_n y_n . im2col(x_n)^T; overwrites dw.
void convBackwardWeight(const float* x, const float* y, const ConvShape& s, float* dw);
#endif

// Fused kernels (fused.cpp). LSTM: gates [B, 4H] pre-activations (i, f, g, o), c [B, H]
// -> h2, c2 [B, H] and act [B, 5H] (i, f, g, o, tanh(c2)) saved for the backward.
void lstmCell(const float* gates, const float* c, long B, long H, float* h2, float* c2, float* act);
void lstmCellBackward(const float* act, const float* c, const float* dh, const float* dc2, long B, long H,
                      float* dgates, float* dc);
// GRU: gi = W_ih x + b_ih, gh = W_hh h + b_hh [B, 3H] (r, z, n), h [B, H] -> h2 [B, H]
// and act [B, 4H] (r, z, n, gh_n).
void gruCell(const float* gi, const float* gh, const float* h, long B, long H, float* h2, float* act);
void gruCellBackward(const float* act, const float* h, const float* dh2, long B, long H, float* dgi, float* dgh,
                     float* dh);
// Where head bh = b H + h of a [B, H, rows, cols] operand lies: it starts at b sB + h sH
// and its rows are ld apart (columns contiguous), so heads can be read from and written
// to [B, rows, H, cols] (the layout around attention's projections) without copies.
struct HeadLayout {
  long H, sB, sH, ld;
  template <class T> T* at(T* base, long bh) const { return base + (bh / H) * sB + (bh % H) * sH; }
};
// Attention over BH heads: q [BH, L, D], k [BH, S, D], v [BH, S, Dv] (contiguous, or as
// lay[0..2] says); mask (additive, nullable) [L, S] at maskStride per head (0: shared);
// causalOffset < 0: no causal mask, else key j is blocked for query i when j > i +
// causalOffset. Writes out [BH, L, Dv] (or as lay[3]) and the weights p [BH, L, S].
void attention(const float* q, const float* k, const float* v, const float* mask, long maskStride, long BH, long L,
               long S, long D, long Dv, float scale, long causalOffset, float* out, float* p, const HeadLayout* lay);
// Gradients from dout [BH, L, Dv] and/or dpIn [BH, L, S] (either nullable); dq, dk,
// dv nullable; scratch [BH, L, S]. lay (nullable): layouts of q, k, v, dout, dq, dk, dv.
void attentionBackward(const float* q, const float* k, const float* v, const float* p, const float* dout,
                       const float* dpIn, long BH, long L, long S, long D, long Dv, float scale, float* dq, float* dk,
                       float* dv, float* scratch, const HeadLayout* lay);
// Row normalisation (LayerNorm / GroupNorm without the affine part): x [R, N] ->
// y = (x - mean) / sqrt(var + eps) per row (biased variance), rstd [R] saved;
// backward dx = rstd * (g - mean(g) - y * mean(g * y)).
void normRows(const float* x, long R, long N, float eps, float* y, float* rstd);
void normRowsBackward(const float* y, const float* rstd, const float* g, long R, long N, float* dx);
// LayerNorm rows with the affine part: y = (x - mean) rstd w + b per row of N (w, b [N]
// nullable), mean and rstd [R] saved. Backward recomputes xhat from x: dx = rstd (gw -
// mean(gw) - xhat mean(gw xhat)), gw = g w; dw = sum over rows of g xhat, db = sum of g
// (dx, dw, db nullable; dw, db overwritten).
void layerNormRows(const float* x, long R, long N, float eps, const float* w, const float* b, float* y, float* mean,
                   float* rstd);
void layerNormRowsBackward(const float* x, const float* mean, const float* rstd, const float* w, const float* g, long R,
                           long N, float* dx, float* dw, float* db);
// y = act(x * w[c] + b[c]) over x [outer, C, inner]; w, b nullable; act 0 none, 1 SiLU.
void channelAffine(const float* x, long outer, long C, long inner, const float* w, const float* b, int act, float* y);
// dx = du * w[c], du = g * act'(x w + b); sums[2 r] = sum du * x, sums[2 r + 1] = sum du per row r = (o, c).
void channelAffineBackward(const float* x, const float* g, long outer, long C, long inner, const float* w,
                           const float* b, int act, float* dx, float* sums);
// GroupNorm over x [N, C, S] with G groups of Cg channels, affine part (w, b nullable) and
// activation (0 none, 1 SiLU): y, and each row's (n, g) mean and rstd.
void groupNormRows(const float* x, long N, long G, long Cg, long S, float eps, const float* w, const float* b, int act,
                   float* y, float* mean, float* rstd);
// Its gradient: dx, and per (n, channel) sums[2 (n C + c)] = sum du xhat, [+1] = sum du.
void groupNormRowsBackward(const float* x, const float* g, long N, long G, long Cg, long S, const float* mean,
                           const float* rstd, const float* w, const float* b, int act, float* dx, float* sums);
// BatchNorm over x [outer, C, inner] per channel c: mean and biased variance.
void batchNormStats(const float* x, long outer, long C, long inner, float* mean, float* var);
// Its gradient given mean and rstd = 1/sqrt(var + eps): dx = w rstd (g - mean(g) - xhat mean(g xhat)),
// dw = sum g xhat, db = sum g (w, dx, dw, db nullable).
void batchNormBackward(const float* x, const float* g, long outer, long C, long inner, const float* mean, const float* rstd,
                       const float* w, float* dx, float* dw, float* db);

// External memory (memory.cpp): NTM addressing over mem [B, N, M] with key [B, M],
// beta, g, gamma [B], wPrev [B, N], shift [B, S] -> w [B, N] and act [B, 5N + 1]
// (cos, |mem(i)|, w^c, w^g, w~, |key|); read r [B, M] = w . mem; erase/add write.
// Backward outputs are overwritten, except dmem (nullable), which is added into;
// scratch: 2 B N floats.
void ntmAddress(const float* mem, const float* key, const float* beta, const float* g, const float* wPrev,
                const float* shift, const float* gamma, long B, long N, long M, long S, float* w, float* act);
void ntmAddressBackward(const float* mem, const float* key, const float* beta, const float* g, const float* wPrev,
                        const float* shift, const float* gamma, const float* act, const float* w, const float* dw,
                        long B, long N, long M, long S, float* dmem, float* dkey, float* dbeta, float* dg,
                        float* dwPrev, float* dshift, float* dgamma, float* scratch);
void memoryRead(const float* mem, const float* w, long B, long N, long M, float* r);
void memoryReadBackward(const float* mem, const float* w, const float* dr, long B, long N, long M, float* dmem,
                        float* dw);
void memoryWrite(const float* mem, const float* w, const float* e, const float* a, long B, long N, long M,
                 float* out);
void memoryWriteBackward(const float* mem, const float* w, const float* e, const float* a, const float* dout, long B,
                         long N, long M, float* dmem, float* dw, float* de, float* da);

}  // namespace gl
