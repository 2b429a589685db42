// The wasm32+simd128 entry points: the same kernels as the addon (gemm.cpp,
// kernels.cpp), exported with plain i32 pointers into linear memory. The module has no
// libc; src/engine/backends/wasm.ts copies inputs into an arena above __heap_base,
// calls a kernel, and copies results out. Single-threaded.
#include "common.h"

#if GL_WASM
extern "C" {
extern unsigned char __heap_base;

// The compiler may emit calls to these for struct copies and zeroing loops.
void* memcpy(void* dst, const void* src, size_t n) {
  unsigned char* d = (unsigned char*)dst;
  const unsigned char* s = (const unsigned char*)src;
  while (n--) *d++ = *s++;
  return dst;
}
void* memmove(void* dst, const void* src, size_t n) {
  unsigned char* d = (unsigned char*)dst;
  const unsigned char* s = (const unsigned char*)src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else {
    while (n--) d[n] = s[n];
  }
  return dst;
}
void* memset(void* dst, int c, size_t n) {
  unsigned char* d = (unsigned char*)dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}

GL_EXPORT(heap_base) uint32_t heapBase() { return (uint32_t)(uintptr_t)&__heap_base; }

GL_EXPORT(gemm) void wGemm(int tA, int tB, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
                           float beta, float* C, int ldc) {
  gl::gemm(tA != 0, tB != 0, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

GL_EXPORT(unary) int wUnary(int op, const float* x, float* out, int n, double p0, double p1) {
  return gl::unary(op, x, out, n, p0, p1) ? 1 : 0;
}

// meta: [rank, shape..., aStrides..., bStrides...] as int32.
GL_EXPORT(binary) int wBinary(int op, const float* a, const float* b, float* out, const int32_t* meta) {
  const int rank = meta[0];
  if (rank < 0 || rank > 16) return 0;
  int64_t shape[16], as[16], bs[16];
  for (int d = 0; d < rank; d++) {
    shape[d] = meta[1 + d];
    as[d] = meta[1 + rank + d];
    bs[d] = meta[1 + 2 * rank + d];
  }
  return gl::binary(op, a, as, b, bs, out, shape, rank) ? 1 : 0;
}

GL_EXPORT(reduce) void wReduce(int op, const float* x, int outer, int len, int inner, float* out) {
  gl::reduce(op, x, outer, len, inner, out);
}

GL_EXPORT(softmax) void wSoftmax(const float* x, int outer, int len, int inner, int log, float* out) {
  gl::softmax(x, outer, len, inner, log != 0, out);
}

GL_EXPORT(im2col) void wIm2col(const float* x, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                               int dh, int dw, int oh, int ow, float* cols) {
  gl::im2col(x, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols);
}

GL_EXPORT(col2im) void wCol2im(const float* cols, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                               int dh, int dw, int oh, int ow, float* x) {
  gl::col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x);
}

GL_EXPORT(adam) void wAdam(float* param, const float* grad, float* m, float* v, int n, double lr, double beta1,
                           double beta2, double eps, double weightDecay, int decoupled, double step) {
  gl::adam(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled != 0, step);
}

GL_EXPORT(lstm_cell) void wLstmCell(const float* gates, const float* c, int B, int H, float* h2, float* c2, float* act) {
  gl::lstmCell(gates, c, B, H, h2, c2, act);
}

GL_EXPORT(lstm_cell_backward) void wLstmCellBackward(const float* act, const float* c, const float* dh, const float* dc2,
                                                     int B, int H, float* dgates, float* dc) {
  gl::lstmCellBackward(act, c, dh, dc2, B, H, dgates, dc);
}

GL_EXPORT(gru_cell) void wGruCell(const float* gi, const float* gh, const float* h, int B, int H, float* h2, float* act) {
  gl::gruCell(gi, gh, h, B, H, h2, act);
}

GL_EXPORT(gru_cell_backward) void wGruCellBackward(const float* act, const float* h, const float* dh2, int B, int H,
                                                   float* dgi, float* dgh, float* dh) {
  gl::gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh);
}

// Null pointers (0) mark absent arrays, as in the addon.
GL_EXPORT(attention) void wAttention(const float* q, const float* k, const float* v, const float* mask, int maskStride,
                                     int BH, int L, int S, int D, int Dv, float scale, int causalOffset, float* out,
                                     float* p) {
  gl::attention(q, k, v, mask, maskStride, BH, L, S, D, Dv, scale, causalOffset, out, p, nullptr);
}

GL_EXPORT(attention_backward) void wAttentionBackward(const float* q, const float* k, const float* v, const float* p,
                                                      const float* dout, const float* dp, int BH, int L, int S, int D,
                                                      int Dv, float scale, float* dq, float* dk, float* dv,
                                                      float* scratch) {
  gl::attentionBackward(q, k, v, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv, scratch, nullptr);
}

GL_EXPORT(norm_rows) void wNormRows(const float* x, int R, int N, float eps, float* y, float* rstd) {
  gl::normRows(x, R, N, eps, y, rstd);
}

GL_EXPORT(norm_rows_backward) void wNormRowsBackward(const float* y, const float* rstd, const float* g, int R, int N,
                                                     float* dx) {
  gl::normRowsBackward(y, rstd, g, R, N, dx);
}
// External memory (memory.cpp); dmem may be 0 (null).
GL_EXPORT(ntm_address) void wNtmAddress(const float* mem, const float* key, const float* beta, const float* g,
                                        const float* wPrev, const float* shift, const float* gamma, int B, int N, int M,
                                        int S, float* w, float* act) {
  gl::ntmAddress(mem, key, beta, g, wPrev, shift, gamma, B, N, M, S, w, act);
}

GL_EXPORT(ntm_address_backward) void wNtmAddressBackward(const float* mem, const float* key, const float* beta,
                                                         const float* g, const float* wPrev, const float* shift,
                                                         const float* gamma, const float* act, const float* w,
                                                         const float* dw, int B, int N, int M, int S, float* dmem,
                                                         float* dkey, float* dbeta, float* dg, float* dwPrev,
                                                         float* dshift, float* dgamma, float* scratch) {
  gl::ntmAddressBackward(mem, key, beta, g, wPrev, shift, gamma, act, w, dw, B, N, M, S, dmem, dkey, dbeta, dg, dwPrev,
                         dshift, dgamma, scratch);
}

GL_EXPORT(memory_read) void wMemoryRead(const float* mem, const float* w, int B, int N, int M, float* r) {
  gl::memoryRead(mem, w, B, N, M, r);
}

GL_EXPORT(memory_read_backward) void wMemoryReadBackward(const float* mem, const float* w, const float* dr, int B, int N,
                                                         int M, float* dmem, float* dw) {
  gl::memoryReadBackward(mem, w, dr, B, N, M, dmem, dw);
}

GL_EXPORT(memory_write) void wMemoryWrite(const float* mem, const float* w, const float* e, const float* a, int B, int N,
                                          int M, float* out) {
  gl::memoryWrite(mem, w, e, a, B, N, M, out);
}

GL_EXPORT(memory_write_backward) void wMemoryWriteBackward(const float* mem, const float* w, const float* e,
                                                           const float* a, const float* dout, int B, int N, int M,
                                                           float* dmem, float* dw, float* de, float* da) {
  gl::memoryWriteBackward(mem, w, e, a, dout, B, N, M, dmem, dw, de, da);
}
}
#endif
