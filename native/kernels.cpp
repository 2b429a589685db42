// Elementwise, reduction, softmax, im2col/col2im and Adam kernels with the js
// backend's semantics (src/engine/backends/js.ts is the definition, NaN propagation
// included; Adam's arithmetic is float here, double there, see adamLoop). Loops are
// plain C++ that the compiler vectorizes (AVX-512 / AVX2 clones on x86, simd128 in
// wasm); big ones are split across the thread pool.
#include "common.h"
#include "fmath.h"

#if !GL_WASM
#include <math.h>
#endif

namespace gl {
namespace {

// Split [0, n) into per-thread chunks when there is enough work (`cost` ~ element
// operations in total); f(lo, hi) runs on each chunk.
template <class F>
void parallelFor(long n, double cost, F f) {
  int nt = numThreads();
  // A sleeping worker takes ~10-50 us to wake, and on a busy machine a descheduled one
  // far longer (measured under load: exp over 131k floats 46 us on one thread, 300 us
  // split in two): split only work of ~0.5 ms or more.
  if (cost < 4e6 || n < 2) nt = 1;
  if (nt > n) nt = (int)n;
  if (nt <= 1) {
    f(0L, n);
    return;
  }
  struct Ctx {
    F* f;
    long n;
  } ctx = {&f, n};
  parallel(nt, [](void* c, int tid, int t) {
    Ctx& x = *(Ctx*)c;
    const long lo = x.n * tid / t, hi = x.n * (tid + 1) / t;
    if (lo < hi) (*x.f)(lo, hi);
  }, &ctx);
}

enum Unary { NEG, ABS, EXP, LOG, LOG1P, SQRT, RSQRT, SIN, COS, TANH, SIGMOID, RELU, LEAKY_RELU, ELU, GELU, SILU,
             SOFTPLUS, CLAMP, ERF, SIGN, SQUARE, RECIPROCAL, STEP };
enum Binary { ADD, SUB, MUL, DIV, POW, MAXIMUM, MINIMUM, EQ, NE, LT, LE, GT, GE };
enum ActGrad { RELU_GRAD, LEAKY_RELU_GRAD, GELU_GRAD, SILU_GRAD };

#define GL_MAP(expr) for (long i = 0; i < n; i++) { const float v = x[i]; out[i] = (expr); } return true

// p0/p1 stay double: js multiplies and compares with the unrounded parameters.
GL_CLONES bool unaryLoop(int op, const float* GL_RESTRICT x, float* GL_RESTRICT out, long n, double p0, double p1) {
  switch (op) {
    case NEG: GL_MAP(-v);
    case ABS: GL_MAP(__builtin_fabsf(v));
    case EXP: GL_MAP(fexp(v));
    case LOG: GL_MAP(flog(v));
    case LOG1P: GL_MAP(flog1p(v));
    case SQRT: GL_MAP(__builtin_sqrtf(v));
    case RSQRT: GL_MAP(1.f / __builtin_sqrtf(v));
#if !GL_WASM
    case SIN: GL_MAP((float)sin((double)v));
    case COS: GL_MAP((float)cos((double)v));
#endif
    case TANH: GL_MAP(ftanh(v));
    case SIGMOID: {
      for (long i = 0; i < n; i++) {
        const float v = x[i];
        const float e = fexp(v < 0.f ? v : -v);
        out[i] = v >= 0.f ? 1.f / (1.f + e) : e / (1.f + e);
      }
      return true;
    }
    case RELU: GL_MAP(v > 0.f ? v : v == v ? 0.f : v);
    case LEAKY_RELU: GL_MAP(v > 0.f ? v : (float)((double)v * p0));
    case ELU: GL_MAP(v > 0.f ? v : (float)(p0 * (double)fexpm1(v)));
    case GELU: GL_MAP(fgelu(v));
    case SILU: GL_MAP(fsilu(v));
    case SOFTPLUS: GL_MAP(v > 20.f ? v : flog1p(fexp(v)));
    case CLAMP: GL_MAP((double)v < p0 ? (float)p0 : (double)v > p1 ? (float)p1 : v);
    case ERF: GL_MAP(ferf(v));
    case SIGN: GL_MAP(v > 0.f ? 1.f : v < 0.f ? -1.f : v == 0.f ? 0.f : v);
    case SQUARE: GL_MAP(v * v);
    case RECIPROCAL: GL_MAP(1.f / v);
    case STEP: GL_MAP(v > 0.f ? 1.f : v == v ? 0.f : v);
    default: return false;
  }
}
#undef GL_MAP

// One row of a binary op: out[j] = f(a[j * sa], b[j * sb]), with the unit-stride and
// broadcast-scalar cases spelled out so they vectorize.
template <class F>
inline void binRow(F f, const float* GL_RESTRICT a, long sa, const float* GL_RESTRICT b, long sb, float* GL_RESTRICT out,
                   long n) {
  if (sa == 1 && sb == 1) {
    for (long j = 0; j < n; j++) out[j] = f(a[j], b[j]);
  } else if (sa == 1 && sb == 0) {
    const float bv = b[0];
    for (long j = 0; j < n; j++) out[j] = f(a[j], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = a[0];
    for (long j = 0; j < n; j++) out[j] = f(av, b[j]);
  } else {
    for (long j = 0; j < n; j++) out[j] = f(a[j * sa], b[j * sb]);
  }
}

struct BinShape {
  int rank;
  long shape[16], as[16], bs[16];
};

template <class F>
void binRows(F f, const float* a, const float* b, float* out, const BinShape& s, long r0, long r1) {
  const int rank = s.rank;
  const long n = s.shape[rank - 1], sa = s.as[rank - 1], sb = s.bs[rank - 1];
  long idx[16];
  long ai = 0, bi = 0, rem = r0;
  for (int d = rank - 2; d >= 0; d--) {
    idx[d] = rem % s.shape[d];
    rem /= s.shape[d];
    ai += idx[d] * s.as[d];
    bi += idx[d] * s.bs[d];
  }
  for (long r = r0; r < r1; r++) {
    binRow(f, a + ai, sa, b + bi, sb, out + r * n, n);
    for (int d = rank - 2; d >= 0; d--) {
      idx[d]++;
      ai += s.as[d];
      bi += s.bs[d];
      if (idx[d] < s.shape[d]) break;
      ai -= s.as[d] * s.shape[d];
      bi -= s.bs[d] * s.shape[d];
      idx[d] = 0;
    }
  }
}

struct FAdd { float operator()(float a, float b) const { return a + b; } };
struct FSub { float operator()(float a, float b) const { return a - b; } };
struct FMul { float operator()(float a, float b) const { return a * b; } };
struct FDiv { float operator()(float a, float b) const { return a / b; } };
#if !GL_WASM
struct FPow { float operator()(float a, float b) const { return (float)pow((double)a, (double)b); } };
#endif
struct FMax { float operator()(float a, float b) const { return a != a || b != b ? a + b : a > b ? a : b; } };
struct FMin { float operator()(float a, float b) const { return a != a || b != b ? a + b : a < b ? a : b; } };
struct FEq { float operator()(float a, float b) const { return a == b ? 1.f : 0.f; } };
struct FNe { float operator()(float a, float b) const { return a != b ? 1.f : 0.f; } };
struct FLt { float operator()(float a, float b) const { return a < b ? 1.f : 0.f; } };
struct FLe { float operator()(float a, float b) const { return a <= b ? 1.f : 0.f; } };
struct FGt { float operator()(float a, float b) const { return a > b ? 1.f : 0.f; } };
struct FGe { float operator()(float a, float b) const { return a >= b ? 1.f : 0.f; } };

// All binary ops in one function so that target_clones vectorizes each for AVX-512/AVX2.
GL_CLONES void binRowsOp(int op, const float* a, const float* b, float* out, const BinShape& s, long r0, long r1) {
  switch (op) {
    case ADD: binRows(FAdd(), a, b, out, s, r0, r1); break;
    case SUB: binRows(FSub(), a, b, out, s, r0, r1); break;
    case MUL: binRows(FMul(), a, b, out, s, r0, r1); break;
    case DIV: binRows(FDiv(), a, b, out, s, r0, r1); break;
#if !GL_WASM
    case POW: binRows(FPow(), a, b, out, s, r0, r1); break;
#endif
    case MAXIMUM: binRows(FMax(), a, b, out, s, r0, r1); break;
    case MINIMUM: binRows(FMin(), a, b, out, s, r0, r1); break;
    case EQ: binRows(FEq(), a, b, out, s, r0, r1); break;
    case NE: binRows(FNe(), a, b, out, s, r0, r1); break;
    case LT: binRows(FLt(), a, b, out, s, r0, r1); break;
    case LE: binRows(FLe(), a, b, out, s, r0, r1); break;
    case GT: binRows(FGt(), a, b, out, s, r0, r1); break;
    default: binRows(FGe(), a, b, out, s, r0, r1); break;
  }
}

// out = g f'(x) for the backward of gelu and silu, contiguous operands.
GL_CLONES void actGradLoop(int kind, const float* GL_RESTRICT x, const float* GL_RESTRICT g, float* GL_RESTRICT out,
                           long n, float slope) {
  switch (kind) {
    case RELU_GRAD:  // g * step(x), step(NaN) = NaN as the unary step
      for (long i = 0; i < n; i++) out[i] = g[i] * (x[i] > 0.f ? 1.f : x[i] == x[i] ? 0.f : x[i]);
      break;
    case LEAKY_RELU_GRAD:
      for (long i = 0; i < n; i++) out[i] = g[i] * (x[i] > 0.f ? 1.f : x[i] == x[i] ? slope : x[i]);
      break;
    case GELU_GRAD:
      for (long i = 0; i < n; i++) out[i] = g[i] * fgeluGrad(x[i]);
      break;
    default:
      for (long i = 0; i < n; i++) out[i] = g[i] * fsiluGrad(x[i]);
  }
}

}  // namespace

bool unary(int op, const float* x, float* out, long n, double p0, double p1) {
#if GL_WASM
  if (op == SIN || op == COS) return false;
#endif
  if (op < 0 || op > STEP) return false;
  parallelFor(n, (double)n * (op <= ABS || op == RELU || op == SQUARE ? 1 : 8), [&](long lo, long hi) {
    unaryLoop(op, x + lo, out + lo, hi - lo, p0, p1);
  });
  return true;
}

bool activationGrad(int kind, const float* x, const float* g, float* out, long n, float slope) {
  if (kind < RELU_GRAD || kind > SILU_GRAD) return false;
  // ReLU's and LeakyReLU's are memory-bound, yet two threads still pay from ~125k
  // elements on (random arrays cycled out of cache, 2 threads vs 1: 131k 28 -> 18 us,
  // 803k 395 -> 315 us), the caller no longer waiting for a worker that wakes late.
  const double cost = (double)n * (kind >= GELU_GRAD ? 10 : 32);
  parallelFor(n, cost, [&](long lo, long hi) { actGradLoop(kind, x + lo, g + lo, out + lo, hi - lo, slope); });
  return true;
}

bool binary(int op, const float* a, const int64_t* aStrides, const float* b, const int64_t* bStrides, float* out,
            const int64_t* shape, int rank) {
#if GL_WASM
  if (op == POW) return false;
#endif
  if (rank > 16 || op < 0 || op > GE) return false;
  // Drop size-1 axes and merge axes that are contiguous in both inputs, so the inner
  // row is as long as possible.
  BinShape s;
  s.rank = 0;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 0) return true;
    if (shape[d] == 1) continue;
    const int k = s.rank;
    if (k > 0 && s.as[k - 1] == aStrides[d] * shape[d] && s.bs[k - 1] == bStrides[d] * shape[d]) {
      s.shape[k - 1] *= shape[d];
      s.as[k - 1] = aStrides[d];
      s.bs[k - 1] = bStrides[d];
    } else {
      s.shape[k] = shape[d];
      s.as[k] = aStrides[d];
      s.bs[k] = bStrides[d];
      s.rank++;
    }
  }
  if (s.rank == 0) {
    s.rank = 1;
    s.shape[0] = 1;
    s.as[0] = s.bs[0] = 0;
  }
  long rows = 1;
  for (int d = 0; d < s.rank - 1; d++) rows *= s.shape[d];
  const long n = s.shape[s.rank - 1];
  parallelFor(rows, (double)rows * n, [&](long lo, long hi) { binRowsOp(op, a, b, out, s, lo, hi); });
  return true;
}

namespace {

// The source offset of consecutive rows of a merged shape's axes [0, axes): start at
// row r0, then next() for each row after.
struct Odometer {
  const BinShape& s;
  int axes;
  long idx[16];
  long at = 0;
  Odometer(const BinShape& sh, int n, long r0) : s(sh), axes(n) {
    for (int d = axes - 1; d >= 0; d--) {
      idx[d] = r0 % s.shape[d];
      r0 /= s.shape[d];
      at += idx[d] * s.as[d];
    }
  }
  void next() {
    for (int d = axes - 1; d >= 0; d--) {
      idx[d]++;
      at += s.as[d];
      if (idx[d] < s.shape[d]) break;
      at -= s.as[d] * s.shape[d];
      idx[d] = 0;
    }
  }
};

// Rows [r0, r1) of the copy: rows over all but the last axis.
void copyRows(const uint32_t* x, uint32_t* out, const BinShape& s, long r0, long r1) {
  const int rank = s.rank;
  const long n = s.shape[rank - 1], sx = s.as[rank - 1];
  for (Odometer o(s, rank - 1, r0); r0 < r1; r0++, o.next()) {
    const uint32_t* src = x + o.at;
    uint32_t* dst = out + r0 * n;
    if (sx == 1) {
      for (long j = 0; j < n; j++) dst[j] = src[j];
    } else {
      for (long j = 0; j < n; j++) dst[j] = src[j * sx];
    }
  }
}

// Rows of w f values whose last axis repeats each of w elements f times (stride 0:
// nearest upsampling's [.., W, f] view), rows [r0, r1) over the axes before those two.
// One row at a time through copyRows cost ~2 ns a value (rows of f = 2): ddpm's DDIM
// sampling spent 64 ms of 2.9 s there.
void copyRepeatRows(const uint32_t* x, uint32_t* out, const BinShape& s, long r0, long r1) {
  const int rank = s.rank;
  const long f = s.shape[rank - 1], w = s.shape[rank - 2], sw = s.as[rank - 2], n = w * f;
  for (Odometer o(s, rank - 2, r0); r0 < r1; r0++, o.next()) {
    const uint32_t* src = x + o.at;
    uint32_t* dst = out + r0 * n;
    if (f == 2)
      for (long j = 0; j < w; j++) dst[2 * j] = dst[2 * j + 1] = src[j * sw];
    else
      for (long j = 0; j < w; j++)
        for (long k = 0; k < f; k++) dst[j * f + k] = src[j * sw];
  }
}

}  // namespace

// Drop size-1 axes and merge axes that are contiguous under `strides` (into s.shape/as);
// false when the shape is empty.
static bool mergeAxes(const int64_t* strides, const int64_t* shape, int rank, BinShape& s) {
  s.rank = 0;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 0) return false;
    if (shape[d] == 1) continue;
    const int k = s.rank;
    if (k > 0 && s.as[k - 1] == strides[d] * shape[d]) {
      s.shape[k - 1] *= shape[d];
      s.as[k - 1] = strides[d];
    } else {
      s.shape[k] = shape[d];
      s.as[k] = strides[d];
      s.bs[k] = 0;
      s.rank++;
    }
  }
  return true;
}

bool copy4(const uint32_t* x, const int64_t* strides, uint32_t* out, const int64_t* shape, int rank) {
  if (rank > 16) return false;
  BinShape s;
  if (!mergeAxes(strides, shape, rank, s)) return true;
  if (s.rank == 0) {
    out[0] = x[0];
    return true;
  }
  long rows = 1;
  for (int d = 0; d < s.rank - 1; d++) rows *= s.shape[d];
  const long n = s.shape[s.rank - 1];
  if (s.rank >= 2 && s.as[s.rank - 1] == 0) {
    const long rows2 = rows / s.shape[s.rank - 2];
    parallelFor(rows2, (double)rows * n, [&](long lo, long hi) { copyRepeatRows(x, out, s, lo, hi); });
    return true;
  }
  parallelFor(rows, (double)rows * n, [&](long lo, long hi) { copyRows(x, out, s, lo, hi); });
  return true;
}

bool addStrided(const float* src, float* dst, const int64_t* dstStrides, const int64_t* shape, int rank) {
  if (rank > 16) return false;
  for (int d = 0; d < rank; d++)
    if (shape[d] > 1 && dstStrides[d] <= 0) return false;  // rows could overlap: left to js
  BinShape s;
  if (!mergeAxes(dstStrides, shape, rank, s)) return true;
  if (s.rank == 0) {
    dst[0] += src[0];
    return true;
  }
  long rows = 1;
  for (int d = 0; d < s.rank - 1; d++) rows *= s.shape[d];
  const long n = s.shape[s.rank - 1], sd = s.as[s.rank - 1];
  parallelFor(rows, (double)rows * n, [&](long lo, long hi) {
    for (Odometer o(s, s.rank - 1, lo); lo < hi; lo++, o.next()) {
      const float* sr = src + lo * n;
      float* dr = dst + o.at;
      if (sd == 1)
        for (long j = 0; j < n; j++) dr[j] += sr[j];
      else
        for (long j = 0; j < n; j++) dr[j * sd] += sr[j];
    }
  });
  return true;
}

namespace {

GL_CLONES void reduceRows(int op, const float* GL_RESTRICT x, long len, long inner, float* GL_RESTRICT out, long i0,
                          long i1) {
  // Columns [i0, i1) of one [len, inner] slab.
  if (op == 0) {
    if (inner == 1) {
      // 16 partial sums (a different rounding order from js, within float error).
      float acc[16] = {};
      long k = 0;
      for (; k + 16 <= len; k += 16)
        for (int l = 0; l < 16; l++) acc[l] += x[k + l];
      float s = 0.f;
      for (int l = 0; l < 16; l++) s += acc[l];
      for (; k < len; k++) s += x[k];
      out[0] = s;
      return;
    }
    for (long i = i0; i < i1; i++) out[i] = 0.f;
    for (long k = 0; k < len; k++) {
      const float* row = x + k * inner;
      for (long i = i0; i < i1; i++) out[i] += row[i];
    }
    return;
  }
  const bool isMax = op == 1;
  for (long i = i0; i < i1; i++) out[i] = len > 0 ? x[i] : isMax ? -__builtin_inff() : __builtin_inff();
  for (long k = 1; k < len; k++) {
    const float* row = x + k * inner;
    for (long i = i0; i < i1; i++) {
      const float v = row[i];
      const float cur = out[i];
      // NaN sticks: once the running value is NaN it stays.
      const bool take = (v != v || (isMax ? v > cur : v < cur)) && cur == cur;
      out[i] = take ? v : cur;
    }
  }
}

// Rows [o0, o1) of [outer, len] reduced along len < 16, many rows per call (one call per
// row cost ~20 ns of overhead each: the 2x2 block sums of a nearest-upsampling's
// gradient, 1.6M pairs, took 4.7 ms). Sums run in order, as js.
GL_CLONES void reduceShortRows(int op, const float* GL_RESTRICT x, long len, long o0, long o1, float* GL_RESTRICT out) {
  if (op == 0) {
    if (len == 2) {
      for (long o = o0; o < o1; o++) out[o] = x[2 * o] + x[2 * o + 1];
      return;
    }
    for (long o = o0; o < o1; o++) {
      float s = 0.f;
      for (long k = 0; k < len; k++) s += x[o * len + k];
      out[o] = s;
    }
    return;
  }
  const bool isMax = op == 1;
  for (long o = o0; o < o1; o++) {
    const float* r = x + o * len;
    float cur = len > 0 ? r[0] : isMax ? -__builtin_inff() : __builtin_inff();
    for (long k = 1; k < len; k++) {
      const float v = r[k];
      const bool take = (v != v || (isMax ? v > cur : v < cur)) && cur == cur;
      cur = take ? v : cur;
    }
    out[o] = cur;
  }
}

}  // namespace

void reduce(int op, const float* x, long outer, long len, long inner, float* out) {
  const double cost = (double)outer * len * inner;
  if (inner == 1 && len < 16) {
    parallelFor(outer, cost, [&](long lo, long hi) { reduceShortRows(op, x, len, lo, hi, out); });
    return;
  }
  if (outer >= 2 || inner == 1) {
    parallelFor(outer, cost, [&](long lo, long hi) {
      for (long o = lo; o < hi; o++) reduceRows(op, x + o * len * inner, len, inner, out + o * inner, 0, inner);
    });
  } else {
    parallelFor(inner, cost, [&](long lo, long hi) { reduceRows(op, x, len, inner, out, lo, hi); });
  }
}

namespace {

GL_CLONES void softmaxRow(const float* GL_RESTRICT x, long len, bool log, float* GL_RESTRICT out) {
  // Max in 16 lanes. NaN needs no flag: a NaN input makes the sum below NaN, so every
  // output is NaN, as in js (where the running max becomes NaN).
  float mx[16];
  for (int l = 0; l < 16; l++) mx[l] = -__builtin_inff();
  long k0 = 0;
  for (; k0 + 16 <= len; k0 += 16)
    for (int l = 0; l < 16; l++) mx[l] = x[k0 + l] > mx[l] ? x[k0 + l] : mx[l];
  float m = -__builtin_inff();
  for (int l = 0; l < 16; l++) m = mx[l] > m ? mx[l] : m;
  for (; k0 < len; k0++) m = x[k0] > m ? x[k0] : m;
  if (m == -__builtin_inff()) m = 0.f;
  float acc[16] = {};
  long k = 0;
  for (; k + 16 <= len; k += 16)
    for (int l = 0; l < 16; l++) acc[l] += fexp(x[k + l] - m);
  float s = 0.f;
  for (int l = 0; l < 16; l++) s += acc[l];
  for (; k < len; k++) s += fexp(x[k] - m);
  if (log) {
    const float ls = flog(s) + m;
    for (long j = 0; j < len; j++) out[j] = x[j] - ls;
  } else {
    const float inv = 1.f / s;
    for (long j = 0; j < len; j++) out[j] = fexp(x[j] - m) * inv;
  }
}

// Softmax over a strided axis: inner columns at once, vectorized across columns.
GL_CLONES void softmaxCols(const float* GL_RESTRICT x, long len, long inner, bool log, float* GL_RESTRICT out,
                           long i0, long i1) {
  float m[64], s[64];
  for (long c0 = i0; c0 < i1; c0 += 64) {
    const long w = i1 - c0 < 64 ? i1 - c0 : 64;
    for (long i = 0; i < w; i++) {
      m[i] = -__builtin_inff();
      s[i] = 0.f;
    }
    for (long k = 0; k < len; k++)
      for (long i = 0; i < w; i++) {
        const float v = x[k * inner + c0 + i];
        m[i] = v > m[i] || v != v || m[i] != m[i] ? (m[i] != m[i] ? m[i] : v) : m[i];
      }
    for (long i = 0; i < w; i++) m[i] = m[i] == -__builtin_inff() ? 0.f : m[i];
    for (long k = 0; k < len; k++)
      for (long i = 0; i < w; i++) s[i] += fexp(x[k * inner + c0 + i] - m[i]);
    if (log) {
      for (long i = 0; i < w; i++) s[i] = flog(s[i]) + m[i];
      for (long k = 0; k < len; k++)
        for (long i = 0; i < w; i++) out[k * inner + c0 + i] = x[k * inner + c0 + i] - s[i];
    } else {
      for (long i = 0; i < w; i++) s[i] = 1.f / s[i];
      for (long k = 0; k < len; k++)
        for (long i = 0; i < w; i++) out[k * inner + c0 + i] = fexp(x[k * inner + c0 + i] - m[i]) * s[i];
    }
  }
}

}  // namespace

void softmax(const float* x, long outer, long len, long inner, bool log, float* out) {
  const double cost = (double)outer * len * inner * 10;
  if (inner == 1) {
    parallelFor(outer, cost, [&](long lo, long hi) {
      for (long o = lo; o < hi; o++) softmaxRow(x + o * len, len, log, out + o * len);
    });
  } else {
    parallelFor(outer, cost, [&](long lo, long hi) {
      for (long o = lo; o < hi; o++) softmaxCols(x + o * len * inner, len, inner, log, out + o * len * inner, 0, inner);
    });
  }
}

void im2col(const float* x, long C, long H, long W, long kh, long kw, long sh, long sw, long ph, long pw, long dh,
            long dw, long oh, long ow, float* cols) {
  const long L = oh * ow;
  parallelFor(C * kh * kw, (double)C * kh * kw * L, [&](long lo, long hi) {
    for (long rIdx = lo; rIdx < hi; rIdx++) {
      const long c = rIdx / (kh * kw), ki = rIdx / kw % kh, kj = rIdx % kw;
      float* row = cols + rIdx * L;
      for (long y = 0; y < oh; y++) {
        const long iy = y * sh - ph + ki * dh;
        float* ro = row + y * ow;
        if (iy < 0 || iy >= H) {
          for (long q = 0; q < ow; q++) ro[q] = 0.f;
          continue;
        }
        const float* xb = x + (c * H + iy) * W;
        if (sw == 1) {
          // Contiguous run of valid columns: [q0, q1).
          const long off = kj * dw - pw;
          long q0 = -off > 0 ? -off : 0;
          long q1 = W - off < ow ? W - off : ow;
          if (q0 > ow) q0 = ow;
          if (q1 < q0) q1 = q0;
          for (long q = 0; q < q0; q++) ro[q] = 0.f;
          for (long q = q0; q < q1; q++) ro[q] = xb[q + off];
          for (long q = q1; q < ow; q++) ro[q] = 0.f;
        } else {
          for (long q = 0; q < ow; q++) {
            const long ix = q * sw - pw + kj * dw;
            ro[q] = ix >= 0 && ix < W ? xb[ix] : 0.f;
          }
        }
      }
    }
  });
}

void col2im(const float* cols, long C, long H, long W, long kh, long kw, long sh, long sw, long ph, long pw, long dh,
            long dw, long oh, long ow, float* x) {
  const long L = oh * ow;
  // One channel per task: channels write disjoint parts of x. Within a channel the
  // (ki, kj, y, q) order is js's, so the float sums round identically.
  parallelFor(C, (double)C * kh * kw * L, [&](long lo, long hi) {
    for (long c = lo; c < hi; c++)
      for (long ki = 0; ki < kh; ki++)
        for (long kj = 0; kj < kw; kj++) {
          const float* row = cols + ((c * kh + ki) * kw + kj) * L;
          for (long y = 0; y < oh; y++) {
            const long iy = y * sh - ph + ki * dh;
            if (iy < 0 || iy >= H) continue;
            float* xb = x + (c * H + iy) * W;
            const float* ro = row + y * ow;
            for (long q = 0; q < ow; q++) {
              const long ix = q * sw - pw + kj * dw;
              if (ix >= 0 && ix < W) xb[ix] += ro[q];
            }
          }
        }
  });
}

namespace {
GL_CLONES void adamLoop(float* GL_RESTRICT param, const float* GL_RESTRICT grad, float* GL_RESTRICT m,
                        float* GL_RESTRICT v, long n, double lr, double beta1, double beta2, double eps, double wd,
                        bool decoupled, double stepSize, double bc2Sqrt) {
  // In float, 16 lanes at a time, as PyTorch computes it (js.ts works in double and
  // rounds to float; m and v then differ from js's by an ulp or so): 65536 parameters
  // 82 -> 21 us. The step multiplies by 1 / sqrt(bc2) rather than dividing by it.
  const float decay = (float)(1.0 - lr * wd), wdf = (float)wd;
  const float ss = (float)stepSize, inv = (float)(1.0 / bc2Sqrt), e = (float)eps;
  const float b1 = (float)beta1, b2 = (float)beta2, ob1 = (float)(1.0 - beta1), ob2 = (float)(1.0 - beta2);
  for (long i = 0; i < n; i++) {
    float g = grad[i], p = param[i];
    if (wd != 0.0) {
      if (decoupled) p *= decay;
      else g += wdf * p;
    }
    const float mi = b1 * m[i] + ob1 * g;
    const float vi = b2 * v[i] + ob2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = p - ss * mi / (__builtin_sqrtf(vi) * inv + e);
  }
}
double powInt(double b, double e) {
  // beta^step for a whole step count (js uses Math.pow; exact enough for doubles).
  double r = 1.0;
  long k = (long)e;
  double x = b;
  while (k > 0) {
    if (k & 1) r *= x;
    x *= x;
    k >>= 1;
  }
  return r;
}
}  // namespace

void adam(float* param, const float* grad, float* m, float* v, long n, double lr, double beta1, double beta2,
          double eps, double weightDecay, bool decoupled, double step) {
  const double bc1 = 1.0 - powInt(beta1, step);
  const double bc2 = 1.0 - powInt(beta2, step);
  const double stepSize = lr / bc1;
  const double bc2Sqrt = __builtin_sqrt(bc2);
  parallelFor(n, (double)n * 4, [&](long lo, long hi) {
    adamLoop(param + lo, grad + lo, m + lo, v + lo, hi - lo, lr, beta1, beta2, eps, weightDecay, decoupled, stepSize,
             bc2Sqrt);
  });
}

}  // namespace gl

// The fused kernels are compiled in this translation unit, so the source lists of
// scripts/build_native.mjs and scripts/build_wasm.mjs need no change.
#include "fused.cpp"
#include "memory.cpp"
