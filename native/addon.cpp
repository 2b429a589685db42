// Node-API binding of the kernels (the `native` backend; src/engine/backends/native.ts
// is its only caller). Float32Arrays are passed zero-copy: napi_get_typedarray_info
// gives the view's own memory, and the kernels write straight into it. Every call
// checks that the extents it will touch lie inside the arrays, so a wrong argument
// throws a RangeError instead of corrupting memory.
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include "common.h"

namespace {

struct Args {
  napi_env env;
  napi_value argv[24];
  size_t argc = 24;
  bool failed = false;

  Args(napi_env e, napi_callback_info info) : env(e) { napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr); }

  void fail(const char* msg) {
    if (!failed) napi_throw_range_error(env, nullptr, msg);
    failed = true;
  }
  double num(size_t i) {
    double v = 0;
    if (i >= argc || napi_get_value_double(env, argv[i], &v) != napi_ok) fail("genlab native: expected a number argument");
    return v;
  }
  long lng(size_t i) { return (long)num(i); }
  bool flag(size_t i) {
    bool v = false;
    if (i >= argc || napi_get_value_bool(env, argv[i], &v) != napi_ok) fail("genlab native: expected a boolean argument");
    return v;
  }
  // A typed array of the wanted type; `len` receives its element count.
  void* array(size_t i, napi_typedarray_type want, size_t* len) {
    napi_typedarray_type type;
    void* data = nullptr;
    napi_value ab;
    size_t off;
    *len = 0;
    if (i >= argc || napi_get_typedarray_info(env, argv[i], &type, len, &data, &ab, &off) != napi_ok || type != want) {
      fail(want == napi_float32_array ? "genlab native: expected a Float32Array" : "genlab native: expected an Int32Array");
      *len = 0;
      return nullptr;
    }
    return data;
  }
  float* f32(size_t i, size_t* len) { return (float*)array(i, napi_float32_array, len); }
  // A Float32Array, or nullptr (len 0) when the argument is null or undefined.
  float* f32opt(size_t i, size_t* len) {
    napi_valuetype t = napi_undefined;
    if (i < argc) napi_typeof(env, argv[i], &t);
    if (t == napi_null || t == napi_undefined) {
      *len = 0;
      return nullptr;
    }
    return f32(i, len);
  }
  // Checks [off, off + extent) lies inside an array of length len.
  void within(long off, long extent, size_t len, const char* what) {
    if (off < 0 || extent < 0 || (size_t)(off + extent) > len) {
      char msg[160];
      snprintf(msg, sizeof msg, "genlab native: %s out of bounds (offset %ld + extent %ld > length %zu)", what, off,
               extent, len);
      fail(msg);
    }
  }
};

napi_value undef(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}
napi_value boolean(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

// Extent of a rows x cols matrix with row stride ld (0 if empty).
long extent(long rows, long cols, long ld) { return rows <= 0 || cols <= 0 ? 0 : (rows - 1) * ld + cols; }

napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const bool tA = a.flag(0), tB = a.flag(1);
  const long M = a.lng(2), N = a.lng(3), K = a.lng(4);
  size_t la, lb, lc;
  const float* A = a.f32(5, &la);
  const long aOff = a.lng(6), lda = a.lng(7);
  const float* B = a.f32(8, &lb);
  const long bOff = a.lng(9), ldb = a.lng(10);
  const float beta = (float)a.num(11);
  float* C = a.f32(12, &lc);
  const long cOff = a.lng(13), ldc = a.lng(14);
  if (a.failed) return nullptr;
  if (M < 0 || N < 0 || K < 0) a.fail("genlab native: gemm: negative size");
  a.within(aOff, tA ? extent(K, M, lda) : extent(M, K, lda), la, "gemm A");
  a.within(bOff, tB ? extent(N, K, ldb) : extent(K, N, ldb), lb, "gemm B");
  a.within(cOff, extent(M, N, ldc), lc, "gemm C");
  // Optional epilogue: bias (Float32Array or null), its offset, ReLU.
  gl::GemmEpilogue epi;
  if (a.argc > 15) {
    size_t lbias;
    const float* bias = a.f32opt(15, &lbias);
    const long biasOff = a.lng(16);
    epi.relu = a.flag(17);
    if (bias) a.within(biasOff, N, lbias, "gemm bias");
    epi.bias = bias ? bias + biasOff : nullptr;
  }
  if (a.failed) return nullptr;
  gl::gemm(tA, tB, M, N, K, A + aOff, lda, B + bOff, ldb, beta, C + cOff, ldc, epi);
  return undef(env);
}

napi_value GemmBatched(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const bool tA = a.flag(0), tB = a.flag(1);
  const long batch = a.lng(2), M = a.lng(3), N = a.lng(4), K = a.lng(5);
  size_t la, lb, lc;
  const float* A = a.f32(6, &la);
  const long aOff = a.lng(7), aStride = a.lng(8), lda = a.lng(9);
  const float* B = a.f32(10, &lb);
  const long bOff = a.lng(11), bStride = a.lng(12), ldb = a.lng(13);
  const float beta = (float)a.num(14);
  float* C = a.f32(15, &lc);
  const long cOff = a.lng(16), cStride = a.lng(17), ldc = a.lng(18);
  if (a.failed) return nullptr;
  if (batch < 0 || M < 0 || N < 0 || K < 0 || aStride < 0 || bStride < 0 || cStride < 0)
    a.fail("genlab native: gemmBatched: negative size or stride");
  const long last = batch > 0 ? batch - 1 : 0, ec = extent(M, N, ldc);
  if (batch > 1 && cStride < ec) a.fail("genlab native: gemmBatched: the C items overlap");
  if (batch > 0) {
    a.within(aOff + last * aStride, tA ? extent(K, M, lda) : extent(M, K, lda), la, "gemmBatched A");
    a.within(bOff + last * bStride, tB ? extent(N, K, ldb) : extent(K, N, ldb), lb, "gemmBatched B");
    a.within(cOff + last * cStride, ec, lc, "gemmBatched C");
  }
  if (a.failed) return nullptr;
  gl::gemmBatched(tA, tB, batch, M, N, K, A + aOff, aStride, lda, B + bOff, bStride, ldb, beta, C + cOff, cStride, ldc);
  return undef(env);
}

napi_value Unary(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const int op = (int)a.lng(0);
  size_t lx, lo;
  const float* x = a.f32(1, &lx);
  const long xOff = a.lng(2);
  float* out = a.f32(3, &lo);
  const long n = a.lng(4);
  const double p0 = a.num(5), p1 = a.num(6);
  if (a.failed) return nullptr;
  a.within(xOff, n, lx, "unary x");
  a.within(0, n, lo, "unary out");
  if (a.failed) return nullptr;
  return boolean(env, gl::unary(op, x + xOff, out, n, p0, p1));
}

// activationGrad(kind, x, g, out, n, slope)
napi_value ActivationGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const int kind = (int)a.lng(0);
  size_t lx, lg, lo;
  const float* x = a.f32(1, &lx);
  const float* g = a.f32(2, &lg);
  float* out = a.f32(3, &lo);
  const long n = a.lng(4);
  const float slope = (float)a.num(5);
  if (a.failed) return nullptr;
  a.within(0, n, lx, "activationGrad x");
  a.within(0, n, lg, "activationGrad g");
  a.within(0, n, lo, "activationGrad out");
  if (a.failed) return nullptr;
  return boolean(env, gl::activationGrad(kind, x, g, out, n, slope));
}

// binary(op, a, aOff, b, bOff, out, meta): meta is an Int32Array
// [rank, shape..., aStrides..., bStrides...].
napi_value Binary(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const int op = (int)a.lng(0);
  size_t la, lb, lo, lm;
  const float* A = a.f32(1, &la);
  const long aOff = a.lng(2);
  const float* B = a.f32(3, &lb);
  const long bOff = a.lng(4);
  float* out = a.f32(5, &lo);
  const int32_t* meta = (const int32_t*)a.array(6, napi_int32_array, &lm);
  if (a.failed) return nullptr;
  const int rank = lm > 0 ? meta[0] : -1;
  if (rank < 0 || rank > 16 || lm < (size_t)(1 + 3 * rank)) {
    a.fail("genlab native: binary: bad shape metadata");
    return nullptr;
  }
  int64_t shape[16], as[16], bs[16];
  long total = 1, aLo = 0, aHi = 0, bLo = 0, bHi = 0;
  for (int d = 0; d < rank; d++) {
    shape[d] = meta[1 + d];
    as[d] = meta[1 + rank + d];
    bs[d] = meta[1 + 2 * rank + d];
    total *= shape[d];
    if (shape[d] > 0) {
      const long sa = (long)as[d] * (shape[d] - 1), sb = (long)bs[d] * (shape[d] - 1);
      (sa < 0 ? aLo : aHi) += sa;
      (sb < 0 ? bLo : bHi) += sb;
    }
  }
  if (total == 0) return boolean(env, true);
  a.within(aOff + aLo, aHi - aLo + 1, la, "binary a");
  a.within(bOff + bLo, bHi - bLo + 1, lb, "binary b");
  a.within(0, total, lo, "binary out");
  if (a.failed) return nullptr;
  return boolean(env, gl::binary(op, A + aOff, as, B + bOff, bs, out, shape, rank));
}

// The Int32Array [rank, shape..., strides...] at argument i: fills shape and strides, the
// element count and the lowest and highest offsets the view reaches; -1 after a.fail.
int stridedMeta(Args& a, size_t i, const char* op, int64_t* shape, int64_t* st, long* total, long* lo, long* hi) {
  size_t lm;
  const int32_t* meta = (const int32_t*)a.array(i, napi_int32_array, &lm);
  if (a.failed) return -1;
  const int rank = lm > 0 ? meta[0] : -1;
  if (rank < 0 || rank > 16 || lm < (size_t)(1 + 2 * rank)) {
    char msg[96];
    snprintf(msg, sizeof msg, "genlab native: %s: bad shape metadata", op);
    a.fail(msg);
    return -1;
  }
  *total = 1;
  *lo = *hi = 0;
  for (int d = 0; d < rank; d++) {
    shape[d] = meta[1 + d];
    st[d] = meta[1 + rank + d];
    *total *= shape[d];
    if (shape[d] > 0) {
      const long s = (long)st[d] * (shape[d] - 1);
      (s < 0 ? *lo : *hi) += s;
    }
  }
  return rank;
}

// copy(x, xOff, out, meta): x and out are Float32Array or Int32Array (4-byte elements,
// copied bit for bit); meta is an Int32Array [rank, shape..., strides...].
napi_value Copy(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx = 0, lo = 0;
  napi_typedarray_type tx, to;
  void *px = nullptr, *po = nullptr;
  napi_value ab;
  size_t off;
  if (a.argc < 4 || napi_get_typedarray_info(env, a.argv[0], &tx, &lx, &px, &ab, &off) != napi_ok ||
      napi_get_typedarray_info(env, a.argv[2], &to, &lo, &po, &ab, &off) != napi_ok ||
      (tx != napi_float32_array && tx != napi_int32_array) || (to != napi_float32_array && to != napi_int32_array)) {
    a.fail("genlab native: copy: expected Float32Array or Int32Array arguments");
    return nullptr;
  }
  const long xOff = a.lng(1);
  int64_t shape[16], st[16];
  long total, lo_, hi_;
  const int rank = stridedMeta(a, 3, "copy", shape, st, &total, &lo_, &hi_);
  if (rank < 0) return nullptr;
  if (total == 0) return boolean(env, true);
  a.within(xOff + lo_, hi_ - lo_ + 1, lx, "copy x");
  a.within(0, total, lo, "copy out");
  if (a.failed) return nullptr;
  return boolean(env, gl::copy4((const uint32_t*)px + xOff, st, (uint32_t*)po, shape, rank));
}

// addStrided(src, dst, dstOff, meta = [rank, shape..., dstStrides...]) -> handled
napi_value AddStrided(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t ls, ld;
  const float* src = a.f32(0, &ls);
  float* dst = a.f32(1, &ld);
  const long off = a.lng(2);
  int64_t shape[16], st[16];
  long total, lo_, hi_;
  const int rank = stridedMeta(a, 3, "addStrided", shape, st, &total, &lo_, &hi_);
  if (rank < 0) return nullptr;
  for (int d = 0; d < rank; d++)
    if (shape[d] > 1 && st[d] <= 0) return boolean(env, false);  // overlapping rows: left to js
  if (total == 0) return boolean(env, true);
  a.within(0, total, ls, "addStrided src");
  a.within(off, hi_ + 1, ld, "addStrided dst");
  if (a.failed) return nullptr;
  return boolean(env, gl::addStrided(src, dst + off, st, shape, rank));
}

napi_value Reduce(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const int op = (int)a.lng(0);
  size_t lx, lo;
  const float* x = a.f32(1, &lx);
  const long outer = a.lng(2), len = a.lng(3), inner = a.lng(4);
  float* out = a.f32(5, &lo);
  if (a.failed) return nullptr;
  a.within(0, outer * len * inner, lx, "reduce x");
  a.within(0, outer * inner, lo, "reduce out");
  if (a.failed) return nullptr;
  gl::reduce(op, x, outer, len, inner, out);
  return undef(env);
}

napi_value Softmax(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lo;
  const float* x = a.f32(0, &lx);
  const long outer = a.lng(1), len = a.lng(2), inner = a.lng(3);
  const bool log = a.flag(4);
  float* out = a.f32(5, &lo);
  if (a.failed) return nullptr;
  a.within(0, outer * len * inner, lx, "softmax x");
  a.within(0, outer * len * inner, lo, "softmax out");
  if (a.failed) return nullptr;
  gl::softmax(x, outer, len, inner, log, out);
  return undef(env);
}

// im2col(x, xOff, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols) and
// col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x, xOff).
napi_value Im2col(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lc;
  const float* x = a.f32(0, &lx);
  const long xOff = a.lng(1);
  long p[13];
  for (int i = 0; i < 13; i++) p[i] = a.lng(2 + i);
  float* cols = a.f32(15, &lc);
  if (a.failed) return nullptr;
  a.within(xOff, p[0] * p[1] * p[2], lx, "im2col x");
  a.within(0, p[0] * p[3] * p[4] * p[11] * p[12], lc, "im2col cols");
  if (a.failed) return nullptr;
  gl::im2col(x + xOff, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], cols);
  return undef(env);
}

napi_value Col2im(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lc;
  const float* cols = a.f32(0, &lc);
  long p[13];
  for (int i = 0; i < 13; i++) p[i] = a.lng(1 + i);
  float* x = a.f32(14, &lx);
  const long xOff = a.lng(15);
  if (a.failed) return nullptr;
  a.within(xOff, p[0] * p[1] * p[2], lx, "col2im x");
  a.within(0, p[0] * p[3] * p[4] * p[11] * p[12], lc, "col2im cols");
  if (a.failed) return nullptr;
  gl::col2im(cols, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], x + xOff);
  return undef(env);
}

// Convolutions: meta is an Int32Array [N, Cin, H, W, Cout, oh, ow, kh, kw, sh, sw, ph, pw,
// dh, dw, groups]. conv2dForward(x, w, bias|null, meta, y), conv2dBackwardData(y, w,
// meta, x), conv2dBackwardWeight(x, y, meta, dw).
bool convShape(Args& a, size_t i, gl::ConvShape* s) {
  size_t lm;
  const int32_t* m = (const int32_t*)a.array(i, napi_int32_array, &lm);
  if (a.failed) return false;
  if (lm != 16) {
    a.fail("genlab native: conv meta must have 16 entries");
    return false;
  }
  long* f = &s->N;
  for (int k = 0; k < 16; k++) f[k] = m[k];
  bool ok = s->groups >= 1 && s->Cin % s->groups == 0 && s->Cout % s->groups == 0;
  for (int k = 0; k < 16; k++) ok = ok && f[k] >= 0;
  ok = ok && s->kh >= 1 && s->kw >= 1 && s->sh >= 1 && s->sw >= 1 && s->dh >= 1 && s->dw >= 1;
  // Every tap of every output position must lie inside the padded input.
  ok = ok && (s->oh == 0 || (s->oh - 1) * s->sh + (s->kh - 1) * s->dh < s->H + 2 * s->ph + s->sh);
  ok = ok && (s->ow == 0 || (s->ow - 1) * s->sw + (s->kw - 1) * s->dw < s->W + 2 * s->pw + s->sw);
  if (!ok) a.fail("genlab native: invalid conv geometry");
  return ok;
}

napi_value Conv2dForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lw, lb, ly;
  const float* x = a.f32(0, &lx);
  const float* w = a.f32(1, &lw);
  const float* b = a.f32opt(2, &lb);
  gl::ConvShape s;
  if (!convShape(a, 3, &s)) return nullptr;
  float* y = a.f32(4, &ly);
  if (a.failed) return nullptr;
  a.within(0, s.N * s.Cin * s.H * s.W, lx, "conv x");
  a.within(0, s.Cout * (s.Cin / s.groups) * s.kh * s.kw, lw, "conv weight");
  if (b) a.within(0, s.Cout, lb, "conv bias");
  a.within(0, s.N * s.Cout * s.oh * s.ow, ly, "conv y");
  if (a.failed) return nullptr;
  gl::convForward(x, w, b, s, y);
  return undef(env);
}

napi_value Conv2dBackwardData(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t ly, lw, lx;
  const float* y = a.f32(0, &ly);
  const float* w = a.f32(1, &lw);
  gl::ConvShape s;
  if (!convShape(a, 2, &s)) return nullptr;
  float* x = a.f32(3, &lx);
  const bool overwrite = a.argc > 4 && a.flag(4);  // (optional: older callers add)
  if (a.failed) return nullptr;
  a.within(0, s.N * s.Cout * s.oh * s.ow, ly, "conv y");
  a.within(0, s.Cout * (s.Cin / s.groups) * s.kh * s.kw, lw, "conv weight");
  a.within(0, s.N * s.Cin * s.H * s.W, lx, "conv x");
  if (a.failed) return nullptr;
  gl::convBackwardData(y, w, s, x, overwrite);
  return undef(env);
}

napi_value Conv2dBackwardWeight(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, ly, lw;
  const float* x = a.f32(0, &lx);
  const float* y = a.f32(1, &ly);
  gl::ConvShape s;
  if (!convShape(a, 2, &s)) return nullptr;
  float* w = a.f32(3, &lw);
  if (a.failed) return nullptr;
  a.within(0, s.N * s.Cin * s.H * s.W, lx, "conv x");
  a.within(0, s.N * s.Cout * s.oh * s.ow, ly, "conv y");
  a.within(0, s.Cout * (s.Cin / s.groups) * s.kh * s.kw, lw, "conv weight");
  if (a.failed) return nullptr;
  gl::convBackwardWeight(x, y, s, w);
  return undef(env);
}

napi_value Adam(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lp, lg, lm, lv;
  float* param = a.f32(0, &lp);
  const float* grad = a.f32(1, &lg);
  float* m = a.f32(2, &lm);
  float* v = a.f32(3, &lv);
  const long n = a.lng(4);
  const double lr = a.num(5), b1 = a.num(6), b2 = a.num(7), eps = a.num(8), wd = a.num(9);
  const bool decoupled = a.flag(10);
  const double step = a.num(11);
  if (a.failed) return nullptr;
  a.within(0, n, lp, "adam param");
  a.within(0, n, lg, "adam grad");
  a.within(0, n, lm, "adam m");
  a.within(0, n, lv, "adam v");
  if (a.failed) return nullptr;
  gl::adam(param, grad, m, v, n, lr, b1, b2, eps, wd, decoupled, step);
  return undef(env);
}

// lstmCell(gates, c, B, H, h2, c2, act)
napi_value LstmCell(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lg, lc, lh, lc2, la;
  const float* gates = a.f32(0, &lg);
  const float* c = a.f32(1, &lc);
  const long B = a.lng(2), H = a.lng(3);
  float* h2 = a.f32(4, &lh);
  float* c2 = a.f32(5, &lc2);
  float* act = a.f32(6, &la);
  if (a.failed) return nullptr;
  a.within(0, B * 4 * H, lg, "lstmCell gates");
  a.within(0, B * H, lc, "lstmCell c");
  a.within(0, B * H, lh, "lstmCell h2");
  a.within(0, B * H, lc2, "lstmCell c2");
  a.within(0, B * 5 * H, la, "lstmCell act");
  if (a.failed) return nullptr;
  gl::lstmCell(gates, c, B, H, h2, c2, act);
  return undef(env);
}

// lstmCellBackward(act, c, dh, dc2, B, H, dgates, dc)
napi_value LstmCellBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t la, lc, ldh, ldc2, ldg, ldc;
  const float* act = a.f32(0, &la);
  const float* c = a.f32(1, &lc);
  const float* dh = a.f32(2, &ldh);
  const float* dc2 = a.f32(3, &ldc2);
  const long B = a.lng(4), H = a.lng(5);
  float* dg = a.f32(6, &ldg);
  float* dc = a.f32(7, &ldc);
  if (a.failed) return nullptr;
  a.within(0, B * 5 * H, la, "lstmCellBackward act");
  a.within(0, B * H, lc, "lstmCellBackward c");
  a.within(0, B * H, ldh, "lstmCellBackward dh");
  a.within(0, B * H, ldc2, "lstmCellBackward dc2");
  a.within(0, B * 4 * H, ldg, "lstmCellBackward dgates");
  a.within(0, B * H, ldc, "lstmCellBackward dc");
  if (a.failed) return nullptr;
  gl::lstmCellBackward(act, c, dh, dc2, B, H, dg, dc);
  return undef(env);
}

// gruCell(gi, gh, h, B, H, h2, act)
napi_value GruCell(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lgi, lgh, lh, lh2, la;
  const float* gi = a.f32(0, &lgi);
  const float* gh = a.f32(1, &lgh);
  const float* h = a.f32(2, &lh);
  const long B = a.lng(3), H = a.lng(4);
  float* h2 = a.f32(5, &lh2);
  float* act = a.f32(6, &la);
  if (a.failed) return nullptr;
  a.within(0, B * 3 * H, lgi, "gruCell gi");
  a.within(0, B * 3 * H, lgh, "gruCell gh");
  a.within(0, B * H, lh, "gruCell h");
  a.within(0, B * H, lh2, "gruCell h2");
  a.within(0, B * 4 * H, la, "gruCell act");
  if (a.failed) return nullptr;
  gl::gruCell(gi, gh, h, B, H, h2, act);
  return undef(env);
}

// gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh)
napi_value GruCellBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t la, lh, ldh2, ldgi, ldgh, ldh;
  const float* act = a.f32(0, &la);
  const float* h = a.f32(1, &lh);
  const float* dh2 = a.f32(2, &ldh2);
  const long B = a.lng(3), H = a.lng(4);
  float* dgi = a.f32(5, &ldgi);
  float* dgh = a.f32(6, &ldgh);
  float* dh = a.f32(7, &ldh);
  if (a.failed) return nullptr;
  a.within(0, B * 4 * H, la, "gruCellBackward act");
  a.within(0, B * H, lh, "gruCellBackward h");
  a.within(0, B * H, ldh2, "gruCellBackward dh2");
  a.within(0, B * 3 * H, ldgi, "gruCellBackward dgi");
  a.within(0, B * 3 * H, ldgh, "gruCellBackward dgh");
  a.within(0, B * H, ldh, "gruCellBackward dh");
  if (a.failed) return nullptr;
  gl::gruCellBackward(act, h, dh2, B, H, dgi, dgh, dh);
  return undef(env);
}

// attention(q, k, v, mask | null, maskStride, BH, L, S, D, Dv, scale, causalOffset, out, p)
// Head layouts from an optional Int32Array [H, (sB, sH, ld) x n] at argument i, each
// checked to keep its BH x rows x cols operand inside an array of the given length;
// without the argument, contiguous [BH, rows, cols]. Returns false after a.fail.
struct Operand {
  long rows, cols;
  size_t len;
  const char* what;
  bool present;
};
bool headLayouts(Args& a, size_t i, long BH, const Operand* ops, int n, gl::HeadLayout* lay, bool* given) {
  napi_valuetype t = napi_undefined;
  if (i < a.argc) napi_typeof(a.env, a.argv[i], &t);
  *given = !(t == napi_null || t == napi_undefined);
  size_t lm = 0;
  const int32_t* m = *given ? (const int32_t*)a.array(i, napi_int32_array, &lm) : nullptr;
  if (a.failed) return false;
  if (*given && (lm < (size_t)(1 + 3 * n) || m[0] < 1 || BH % m[0] != 0)) {
    a.fail("genlab native: attention: bad head layout");
    return false;
  }
  for (int o = 0; o < n; o++) {
    const Operand& op = ops[o];
    lay[o] = *given ? gl::HeadLayout{m[0], m[1 + 3 * o], m[2 + 3 * o], m[3 + 3 * o]}
                    : gl::HeadLayout{1, op.rows * op.cols, 0, op.cols};
    if (!op.present) continue;
    const gl::HeadLayout& l = lay[o];
    if (l.sB < 0 || l.sH < 0 || l.ld < op.cols) {
      a.fail("genlab native: attention: bad head layout");
      return false;
    }
    const long span = BH == 0 ? 0 : (BH / l.H - 1) * l.sB + (l.H - 1) * l.sH + extent(op.rows, op.cols, l.ld);
    a.within(0, span, op.len, op.what);
  }
  return !a.failed;
}

napi_value Attention(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lq, lk, lv, lm, lo, lp;
  const float* q = a.f32(0, &lq);
  const float* k = a.f32(1, &lk);
  const float* v = a.f32(2, &lv);
  const float* mask = a.f32opt(3, &lm);
  const long ms = a.lng(4), BH = a.lng(5), L = a.lng(6), S = a.lng(7), D = a.lng(8), Dv = a.lng(9);
  const float scale = (float)a.num(10);
  const long causal = a.lng(11);
  float* out = a.f32(12, &lo);
  float* p = a.f32(13, &lp);
  if (a.failed) return nullptr;
  if (BH < 0 || L < 0 || S < 0 || D < 0 || Dv < 0 || ms < 0) a.fail("genlab native: attention: negative size");
  if (mask && BH > 0) a.within(0, (BH - 1) * ms + L * S, lm, "attention mask");
  a.within(0, BH * L * S, lp, "attention weights");
  if (a.failed) return nullptr;
  const Operand ops[4] = {{L, D, lq, "attention q", true}, {S, D, lk, "attention k", true},
                          {S, Dv, lv, "attention v", true}, {L, Dv, lo, "attention out", true}};
  gl::HeadLayout lay[4];
  bool given;
  if (!headLayouts(a, 14, BH, ops, 4, lay, &given)) return nullptr;
  gl::attention(q, k, v, mask, ms, BH, L, S, D, Dv, scale, causal, out, p, given ? lay : nullptr);
  return undef(env);
}

// attentionBackward(q, k, v, p, dout | null, dp | null, BH, L, S, D, Dv, scale,
//                   dq | null, dk | null, dv | null, scratch)
napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lq, lk, lv, lp, ldo, ldp, ldq, ldk, ldv, ls;
  const float* q = a.f32(0, &lq);
  const float* k = a.f32(1, &lk);
  const float* v = a.f32(2, &lv);
  const float* p = a.f32(3, &lp);
  const float* dout = a.f32opt(4, &ldo);
  const float* dp = a.f32opt(5, &ldp);
  const long BH = a.lng(6), L = a.lng(7), S = a.lng(8), D = a.lng(9), Dv = a.lng(10);
  const float scale = (float)a.num(11);
  float* dq = a.f32opt(12, &ldq);
  float* dk = a.f32opt(13, &ldk);
  float* dv = a.f32opt(14, &ldv);
  float* scratch = a.f32(15, &ls);
  if (a.failed) return nullptr;
  if (BH < 0 || L < 0 || S < 0 || D < 0 || Dv < 0) a.fail("genlab native: attentionBackward: negative size");
  if (!dout && !dp) a.fail("genlab native: attentionBackward: needs dout or dp");
  if (!dout && dv) a.fail("genlab native: attentionBackward: dv needs dout");
  a.within(0, BH * L * S, lp, "attentionBackward p");
  if (dp) a.within(0, BH * L * S, ldp, "attentionBackward dp");
  a.within(0, BH * L * S, ls, "attentionBackward scratch");
  if (a.failed) return nullptr;
  const Operand ops[7] = {{L, D, lq, "attentionBackward q", true},           {S, D, lk, "attentionBackward k", true},
                          {S, Dv, lv, "attentionBackward v", true},          {L, Dv, ldo, "attentionBackward dout", !!dout},
                          {L, D, ldq, "attentionBackward dq", !!dq},         {S, D, ldk, "attentionBackward dk", !!dk},
                          {S, Dv, ldv, "attentionBackward dv", !!dv}};
  gl::HeadLayout lay[7];
  bool given;
  if (!headLayouts(a, 16, BH, ops, 7, lay, &given)) return nullptr;
  gl::attentionBackward(q, k, v, p, dout, dp, BH, L, S, D, Dv, scale, dq, dk, dv, scratch, given ? lay : nullptr);
  return undef(env);
}

// normRows(x, R, N, eps, y, rstd)
napi_value NormRows(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, ly, lr;
  const float* x = a.f32(0, &lx);
  const long R = a.lng(1), N = a.lng(2);
  const float eps = (float)a.num(3);
  float* y = a.f32(4, &ly);
  float* rstd = a.f32(5, &lr);
  if (a.failed) return nullptr;
  if (R < 0 || N < 1) a.fail("genlab native: normRows: bad size");
  a.within(0, R * N, lx, "normRows x");
  a.within(0, R * N, ly, "normRows y");
  a.within(0, R, lr, "normRows rstd");
  if (a.failed) return nullptr;
  gl::normRows(x, R, N, eps, y, rstd);
  return undef(env);
}

// normRowsBackward(y, rstd, g, R, N, dx)
napi_value NormRowsBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t ly, lr, lg, ld;
  const float* y = a.f32(0, &ly);
  const float* rstd = a.f32(1, &lr);
  const float* g = a.f32(2, &lg);
  const long R = a.lng(3), N = a.lng(4);
  float* dx = a.f32(5, &ld);
  if (a.failed) return nullptr;
  if (R < 0 || N < 1) a.fail("genlab native: normRowsBackward: bad size");
  a.within(0, R * N, ly, "normRowsBackward y");
  a.within(0, R, lr, "normRowsBackward rstd");
  a.within(0, R * N, lg, "normRowsBackward g");
  a.within(0, R * N, ld, "normRowsBackward dx");
  if (a.failed) return nullptr;
  gl::normRowsBackward(y, rstd, g, R, N, dx);
  return undef(env);
}

// layerNormRows(x, R, N, eps, w | null, b | null, y, mean, rstd)
napi_value LayerNormRows(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lw, lb, ly, lm, lr;
  const float* x = a.f32(0, &lx);
  const long R = a.lng(1), N = a.lng(2);
  const float eps = (float)a.num(3);
  const float* w = a.f32opt(4, &lw);
  const float* b = a.f32opt(5, &lb);
  float* y = a.f32(6, &ly);
  float* mean = a.f32(7, &lm);
  float* rstd = a.f32(8, &lr);
  if (a.failed) return nullptr;
  if (R < 0 || N < 1) a.fail("genlab native: layerNormRows: bad size");
  a.within(0, R * N, lx, "layerNormRows x");
  if (w) a.within(0, N, lw, "layerNormRows w");
  if (b) a.within(0, N, lb, "layerNormRows b");
  a.within(0, R * N, ly, "layerNormRows y");
  a.within(0, R, lm, "layerNormRows mean");
  a.within(0, R, lr, "layerNormRows rstd");
  if (a.failed) return nullptr;
  gl::layerNormRows(x, R, N, eps, w, b, y, mean, rstd);
  return undef(env);
}

// layerNormRowsBackward(x, mean, rstd, w | null, g, R, N, dx | null, dw | null, db | null)
napi_value LayerNormRowsBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lm, lr, lw, lg, ld, ldw, ldb;
  const float* x = a.f32(0, &lx);
  const float* mean = a.f32(1, &lm);
  const float* rstd = a.f32(2, &lr);
  const float* w = a.f32opt(3, &lw);
  const float* g = a.f32(4, &lg);
  const long R = a.lng(5), N = a.lng(6);
  float* dx = a.f32opt(7, &ld);
  float* dw = a.f32opt(8, &ldw);
  float* db = a.f32opt(9, &ldb);
  if (a.failed) return nullptr;
  if (R < 0 || N < 1) a.fail("genlab native: layerNormRowsBackward: bad size");
  a.within(0, R * N, lx, "layerNormRowsBackward x");
  a.within(0, R, lm, "layerNormRowsBackward mean");
  a.within(0, R, lr, "layerNormRowsBackward rstd");
  if (w) a.within(0, N, lw, "layerNormRowsBackward w");
  a.within(0, R * N, lg, "layerNormRowsBackward g");
  if (dx) a.within(0, R * N, ld, "layerNormRowsBackward dx");
  if (dw) a.within(0, N, ldw, "layerNormRowsBackward dw");
  if (db) a.within(0, N, ldb, "layerNormRowsBackward db");
  if (a.failed) return nullptr;
  gl::layerNormRowsBackward(x, mean, rstd, w, g, R, N, dx, dw, db);
  return undef(env);
}

// channelAffine(x, outer, C, inner, w | null, b | null, act, y)
napi_value ChannelAffine(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lw, lb, ly;
  const float* x = a.f32(0, &lx);
  const long outer = a.lng(1), C = a.lng(2), inner = a.lng(3);
  const float* w = a.f32opt(4, &lw);
  const float* b = a.f32opt(5, &lb);
  const long act = a.lng(6);
  float* y = a.f32(7, &ly);
  if (a.failed) return nullptr;
  if (outer < 0 || C < 1 || inner < 0 || act < 0 || act > 1) a.fail("genlab native: channelAffine: bad size or activation");
  a.within(0, outer * C * inner, lx, "channelAffine x");
  if (w) a.within(0, C, lw, "channelAffine w");
  if (b) a.within(0, C, lb, "channelAffine b");
  a.within(0, outer * C * inner, ly, "channelAffine y");
  if (a.failed) return nullptr;
  gl::channelAffine(x, outer, C, inner, w, b, (int)act, y);
  return undef(env);
}

// channelAffineBackward(x, g, outer, C, inner, w | null, b | null, act, dx, sums)
napi_value ChannelAffineBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lg, lw, lb, ld, ls;
  const float* x = a.f32(0, &lx);
  const float* g = a.f32(1, &lg);
  const long outer = a.lng(2), C = a.lng(3), inner = a.lng(4);
  const float* w = a.f32opt(5, &lw);
  const float* b = a.f32opt(6, &lb);
  const long act = a.lng(7);
  float* dx = a.f32(8, &ld);
  float* sums = a.f32(9, &ls);
  if (a.failed) return nullptr;
  if (outer < 0 || C < 1 || inner < 0 || act < 0 || act > 1) a.fail("genlab native: channelAffineBackward: bad size or activation");
  a.within(0, outer * C * inner, lx, "channelAffineBackward x");
  a.within(0, outer * C * inner, lg, "channelAffineBackward g");
  if (w) a.within(0, C, lw, "channelAffineBackward w");
  if (b) a.within(0, C, lb, "channelAffineBackward b");
  a.within(0, outer * C * inner, ld, "channelAffineBackward dx");
  a.within(0, 2 * outer * C, ls, "channelAffineBackward sums");
  if (a.failed) return nullptr;
  gl::channelAffineBackward(x, g, outer, C, inner, w, b, (int)act, dx, sums);
  return undef(env);
}

// groupNormRows(x, N, G, Cg, S, eps, w | null, b | null, act, y, mean, rstd)
napi_value GroupNormRows(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lw, lb, ly, lm, lr;
  const float* x = a.f32(0, &lx);
  const long N = a.lng(1), G = a.lng(2), Cg = a.lng(3), S = a.lng(4);
  const float eps = (float)a.num(5);
  const float* w = a.f32opt(6, &lw);
  const float* b = a.f32opt(7, &lb);
  const long act = a.lng(8);
  float* y = a.f32(9, &ly);
  float* mean = a.f32(10, &lm);
  float* rstd = a.f32(11, &lr);
  if (a.failed) return nullptr;
  if (N < 1 || G < 1 || Cg < 1 || S < 1 || act < 0 || act > 1) a.fail("genlab native: groupNormRows: bad size or activation");
  a.within(0, N * G * Cg * S, lx, "groupNormRows x");
  if (w) a.within(0, G * Cg, lw, "groupNormRows w");
  if (b) a.within(0, G * Cg, lb, "groupNormRows b");
  a.within(0, N * G * Cg * S, ly, "groupNormRows y");
  a.within(0, N * G, lm, "groupNormRows mean");
  a.within(0, N * G, lr, "groupNormRows rstd");
  if (a.failed) return nullptr;
  gl::groupNormRows(x, N, G, Cg, S, eps, w, b, (int)act, y, mean, rstd);
  return undef(env);
}

// groupNormRowsBackward(x, g, N, G, Cg, S, mean, rstd, w | null, b | null, act, dx, sums)
napi_value GroupNormRowsBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lg, lm, lr, lw, lb, ld, ls;
  const float* x = a.f32(0, &lx);
  const float* g = a.f32(1, &lg);
  const long N = a.lng(2), G = a.lng(3), Cg = a.lng(4), S = a.lng(5);
  const float* mean = a.f32(6, &lm);
  const float* rstd = a.f32(7, &lr);
  const float* w = a.f32opt(8, &lw);
  const float* b = a.f32opt(9, &lb);
  const long act = a.lng(10);
  float* dx = a.f32(11, &ld);
  float* sums = a.f32(12, &ls);
  if (a.failed) return nullptr;
  if (N < 1 || G < 1 || Cg < 1 || S < 1 || act < 0 || act > 1) a.fail("genlab native: groupNormRowsBackward: bad size or activation");
  a.within(0, N * G * Cg * S, lx, "groupNormRowsBackward x");
  a.within(0, N * G * Cg * S, lg, "groupNormRowsBackward g");
  a.within(0, N * G, lm, "groupNormRowsBackward mean");
  a.within(0, N * G, lr, "groupNormRowsBackward rstd");
  if (w) a.within(0, G * Cg, lw, "groupNormRowsBackward w");
  if (b) a.within(0, G * Cg, lb, "groupNormRowsBackward b");
  a.within(0, N * G * Cg * S, ld, "groupNormRowsBackward dx");
  a.within(0, 2 * N * G * Cg, ls, "groupNormRowsBackward sums");
  if (a.failed) return nullptr;
  gl::groupNormRowsBackward(x, g, N, G, Cg, S, mean, rstd, w, b, (int)act, dx, sums);
  return undef(env);
}

// batchNormStats(x, outer, C, inner, mean, var)
napi_value BatchNormStats(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lm, lv;
  const float* x = a.f32(0, &lx);
  const long outer = a.lng(1), C = a.lng(2), inner = a.lng(3);
  float* mean = a.f32(4, &lm);
  float* var = a.f32(5, &lv);
  if (a.failed) return nullptr;
  if (outer < 1 || C < 1 || inner < 1) a.fail("genlab native: batchNormStats: bad size");
  a.within(0, outer * C * inner, lx, "batchNormStats x");
  a.within(0, C, lm, "batchNormStats mean");
  a.within(0, C, lv, "batchNormStats var");
  if (a.failed) return nullptr;
  gl::batchNormStats(x, outer, C, inner, mean, var);
  return undef(env);
}

// batchNormBackward(x, g, outer, C, inner, mean, rstd, w | null, dx | null, dw | null, db | null)
napi_value BatchNormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lx, lg, lm, lr, lw, ld, ldw, ldb;
  const float* x = a.f32(0, &lx);
  const float* g = a.f32(1, &lg);
  const long outer = a.lng(2), C = a.lng(3), inner = a.lng(4);
  const float* mean = a.f32(5, &lm);
  const float* rstd = a.f32(6, &lr);
  const float* w = a.f32opt(7, &lw);
  float* dx = a.f32opt(8, &ld);
  float* dw = a.f32opt(9, &ldw);
  float* db = a.f32opt(10, &ldb);
  if (a.failed) return nullptr;
  if (outer < 1 || C < 1 || inner < 1) a.fail("genlab native: batchNormBackward: bad size");
  a.within(0, outer * C * inner, lx, "batchNormBackward x");
  a.within(0, outer * C * inner, lg, "batchNormBackward g");
  a.within(0, C, lm, "batchNormBackward mean");
  a.within(0, C, lr, "batchNormBackward rstd");
  if (w) a.within(0, C, lw, "batchNormBackward w");
  if (dx) a.within(0, outer * C * inner, ld, "batchNormBackward dx");
  if (dw) a.within(0, C, ldw, "batchNormBackward dw");
  if (db) a.within(0, C, ldb, "batchNormBackward db");
  if (a.failed) return nullptr;
  gl::batchNormBackward(x, g, outer, C, inner, mean, rstd, w, dx, dw, db);
  return undef(env);
}

// Memory kernels (memory.cpp): sizes checked against B, N, M, S.
// ntmAddress(mem, key, beta, g, wPrev, shift, gamma, B, N, M, S, w, act)
napi_value NtmAddress(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t l[9];
  const float* in[7];
  for (int i = 0; i < 7; i++) in[i] = a.f32(i, &l[i]);
  const long B = a.lng(7), N = a.lng(8), M = a.lng(9), S = a.lng(10);
  float* w = a.f32(11, &l[7]);
  float* act = a.f32(12, &l[8]);
  if (a.failed) return nullptr;
  if (B < 0 || N < 1 || M < 0 || S < 1) a.fail("genlab native: ntmAddress: bad size");
  const long need[9] = {B * N * M, B * M, B, B, B * N, B * S, B, B * N, B * (5 * N + 1)};
  for (int i = 0; i < 9; i++) a.within(0, need[i], l[i], "ntmAddress array");
  if (a.failed) return nullptr;
  gl::ntmAddress(in[0], in[1], in[2], in[3], in[4], in[5], in[6], B, N, M, S, w, act);
  return undef(env);
}

// ntmAddressBackward(mem, key, beta, g, wPrev, shift, gamma, act, w, dw, B, N, M, S,
//                    dmem | null, dkey, dbeta, dg, dwPrev, dshift, dgamma, scratch)
napi_value NtmAddressBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t l[18];
  const float* in[10];
  for (int i = 0; i < 10; i++) in[i] = a.f32(i, &l[i]);
  const long B = a.lng(10), N = a.lng(11), M = a.lng(12), S = a.lng(13);
  float* dmem = a.f32opt(14, &l[10]);
  float* out[6];
  for (int i = 0; i < 6; i++) out[i] = a.f32(15 + i, &l[11 + i]);
  float* scratch = a.f32(21, &l[17]);
  if (a.failed) return nullptr;
  if (B < 0 || N < 1 || M < 0 || S < 1) a.fail("genlab native: ntmAddressBackward: bad size");
  const long need[18] = {B * N * M, B * M, B, B, B * N, B * S, B, B * (5 * N + 1), B * N, B * N,
                         dmem ? B * N * M : 0, B * M, B, B, B * N, B * S, B, 2 * B * N};
  for (int i = 0; i < 18; i++) a.within(0, need[i], l[i], "ntmAddressBackward array");
  if (a.failed) return nullptr;
  gl::ntmAddressBackward(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], in[9], B, N, M, S, dmem,
                         out[0], out[1], out[2], out[3], out[4], out[5], scratch);
  return undef(env);
}

// memoryRead(mem, w, B, N, M, r)
napi_value MemoryRead(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lm, lw, lr;
  const float* mem = a.f32(0, &lm);
  const float* w = a.f32(1, &lw);
  const long B = a.lng(2), N = a.lng(3), M = a.lng(4);
  float* r = a.f32(5, &lr);
  if (a.failed) return nullptr;
  if (B < 0 || N < 0 || M < 0) a.fail("genlab native: memoryRead: bad size");
  a.within(0, B * N * M, lm, "memoryRead mem");
  a.within(0, B * N, lw, "memoryRead w");
  a.within(0, B * M, lr, "memoryRead r");
  if (a.failed) return nullptr;
  gl::memoryRead(mem, w, B, N, M, r);
  return undef(env);
}

// memoryReadBackward(mem, w, dr, B, N, M, dmem | null, dw)
napi_value MemoryReadBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lm, lw, ldr, ldm, ldw;
  const float* mem = a.f32(0, &lm);
  const float* w = a.f32(1, &lw);
  const float* dr = a.f32(2, &ldr);
  const long B = a.lng(3), N = a.lng(4), M = a.lng(5);
  float* dmem = a.f32opt(6, &ldm);
  float* dw = a.f32(7, &ldw);
  if (a.failed) return nullptr;
  if (B < 0 || N < 0 || M < 0) a.fail("genlab native: memoryReadBackward: bad size");
  a.within(0, B * N * M, lm, "memoryReadBackward mem");
  a.within(0, B * N, lw, "memoryReadBackward w");
  a.within(0, B * M, ldr, "memoryReadBackward dr");
  if (dmem) a.within(0, B * N * M, ldm, "memoryReadBackward dmem");
  a.within(0, B * N, ldw, "memoryReadBackward dw");
  if (a.failed) return nullptr;
  gl::memoryReadBackward(mem, w, dr, B, N, M, dmem, dw);
  return undef(env);
}

// memoryWrite(mem, w, e, a, B, N, M, out)
napi_value MemoryWrite(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lm, lw, le, la, lo;
  const float* mem = a.f32(0, &lm);
  const float* w = a.f32(1, &lw);
  const float* e = a.f32(2, &le);
  const float* ad = a.f32(3, &la);
  const long B = a.lng(4), N = a.lng(5), M = a.lng(6);
  float* out = a.f32(7, &lo);
  if (a.failed) return nullptr;
  if (B < 0 || N < 0 || M < 0) a.fail("genlab native: memoryWrite: bad size");
  a.within(0, B * N * M, lm, "memoryWrite mem");
  a.within(0, B * N, lw, "memoryWrite w");
  a.within(0, B * M, le, "memoryWrite erase");
  a.within(0, B * M, la, "memoryWrite add");
  a.within(0, B * N * M, lo, "memoryWrite out");
  if (a.failed) return nullptr;
  gl::memoryWrite(mem, w, e, ad, B, N, M, out);
  return undef(env);
}

// memoryWriteBackward(mem, w, e, a, dout, B, N, M, dmem | null, dw, de, da)
napi_value MemoryWriteBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t lm, lw, le, la, ld, ldm, ldw, lde, lda;
  const float* mem = a.f32(0, &lm);
  const float* w = a.f32(1, &lw);
  const float* e = a.f32(2, &le);
  const float* ad = a.f32(3, &la);
  const float* dout = a.f32(4, &ld);
  const long B = a.lng(5), N = a.lng(6), M = a.lng(7);
  float* dmem = a.f32opt(8, &ldm);
  float* dw = a.f32(9, &ldw);
  float* de = a.f32(10, &lde);
  float* da = a.f32(11, &lda);
  if (a.failed) return nullptr;
  if (B < 0 || N < 0 || M < 0) a.fail("genlab native: memoryWriteBackward: bad size");
  a.within(0, B * N * M, lm, "memoryWriteBackward mem");
  a.within(0, B * N, lw, "memoryWriteBackward w");
  a.within(0, B * M, le, "memoryWriteBackward erase");
  a.within(0, B * M, la, "memoryWriteBackward add");
  a.within(0, B * N * M, ld, "memoryWriteBackward dout");
  if (dmem) a.within(0, B * N * M, ldm, "memoryWriteBackward dmem");
  a.within(0, B * N, ldw, "memoryWriteBackward dw");
  a.within(0, B * M, lde, "memoryWriteBackward de");
  a.within(0, B * M, lda, "memoryWriteBackward da");
  if (a.failed) return nullptr;
  gl::memoryWriteBackward(mem, w, e, ad, dout, B, N, M, dmem, dw, de, da);
  return undef(env);
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const long n = a.lng(0);
  if (a.failed) return nullptr;
  gl::setNumThreads((int)n);
  return undef(env);
}

napi_value Threads(napi_env env, napi_callback_info) {
  napi_value v;
  napi_create_int32(env, gl::numThreads(), &v);
  return v;
}

napi_value KernelName(napi_env env, napi_callback_info) {
  napi_value v;
  napi_create_string_utf8(env, gl::gemmKernelName(), NAPI_AUTO_LENGTH, &v);
  return v;
}

napi_value SetKernel(napi_env env, napi_callback_info info) {
  Args a(env, info);
  char name[32] = {0};
  size_t len = 0;
  if (a.argc < 1 || napi_get_value_string_utf8(env, a.argv[0], name, sizeof name, &len) != napi_ok) {
    a.fail("genlab native: setKernel expects a string");
    return nullptr;
  }
  return boolean(env, gl::setGemmKernel(name));
}

// keepHeap(mmapThreshold, trimThreshold): glibc malloc serves blocks below mmapThreshold
// bytes from its heap and returns free memory at the heap's top to the system only
// beyond trimThreshold. Node allocates typed arrays with calloc, so by default every
// large tensor is a fresh mmap whose pages fault in on first touch (each step of a
// training loop faults in all of its activations again); kept in the heap, they reuse
// memory that is already mapped. False where the C library is not glibc.
napi_value KeepHeap(napi_env env, napi_callback_info info) {
  Args a(env, info);
  double mmapBytes = 0, trimBytes = 0;
  if (a.argc < 2 || napi_get_value_double(env, a.argv[0], &mmapBytes) != napi_ok ||
      napi_get_value_double(env, a.argv[1], &trimBytes) != napi_ok || !(mmapBytes >= 0) || !(trimBytes >= 0)) {
    a.fail("genlab native: keepHeap expects two byte counts >= 0");
    return nullptr;
  }
#if defined(__GLIBC__)
  const bool ok = mallopt(M_MMAP_THRESHOLD, (int)(mmapBytes < 2147483647.0 ? mmapBytes : 2147483647.0)) == 1 &&
                  mallopt(M_TRIM_THRESHOLD, (int)(trimBytes < 2147483647.0 ? trimBytes : 2147483647.0)) == 1;
  return boolean(env, ok);
#else
  return boolean(env, false);
#endif
}

// A no-op, to measure the cost of crossing into the addon.
napi_value Noop(napi_env env, napi_callback_info) { return undef(env); }

}  // namespace

NAPI_MODULE_INIT() {
  const struct {
    const char* name;
    napi_callback cb;
  } fns[] = {
      {"gemm", Gemm},       {"gemmBatched", GemmBatched},       {"unary", Unary},         {"activationGrad", ActivationGrad}, {"binary", Binary},   {"copy", Copy},       {"addStrided", AddStrided}, {"reduce", Reduce},
      {"softmax", Softmax}, {"im2col", Im2col},       {"col2im", Col2im},   {"adam", Adam},
      {"conv2dForward", Conv2dForward}, {"conv2dBackwardData", Conv2dBackwardData},
      {"conv2dBackwardWeight", Conv2dBackwardWeight},
      {"lstmCell", LstmCell}, {"lstmCellBackward", LstmCellBackward}, {"gruCell", GruCell},
      {"gruCellBackward", GruCellBackward}, {"attention", Attention}, {"attentionBackward", AttentionBackward},
      {"normRows", NormRows}, {"normRowsBackward", NormRowsBackward},
      {"channelAffine", ChannelAffine}, {"channelAffineBackward", ChannelAffineBackward},
      {"batchNormStats", BatchNormStats}, {"batchNormBackward", BatchNormBackward},
      {"groupNormRows", GroupNormRows}, {"groupNormRowsBackward", GroupNormRowsBackward},
      {"layerNormRows", LayerNormRows}, {"layerNormRowsBackward", LayerNormRowsBackward},
      {"ntmAddress", NtmAddress}, {"ntmAddressBackward", NtmAddressBackward}, {"memoryRead", MemoryRead},
      {"memoryReadBackward", MemoryReadBackward}, {"memoryWrite", MemoryWrite},
      {"memoryWriteBackward", MemoryWriteBackward},
      {"setThreads", SetThreads}, {"threads", Threads}, {"kernel", KernelName}, {"setKernel", SetKernel}, {"keepHeap", KeepHeap},
      {"noop", Noop},
  };
  for (const auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}
