// Fused kernels: the pointwise part of an LSTM and a GRU step (forward and backward),
// scaled dot-product attention (per batch*head: GEMM, masked softmax, GEMM) and its
// backward, max pooling with argmax, and LayerNorm/GroupNorm statistics. Each replaces
// a chain of elementwise ops whose intermediates would otherwise each be a fresh
// array; src/engine/backends/js.ts has the reference loops, and the engine tests
// compare these with the unfused composites (src/engine/ops/fused.ts).
// Gate formulas as torch.nn.LSTM / GRU (gate order i,f,g,o and r,z,n); attention as
// torch.nn.functional.scaled_dot_product_attention.
#include "common.h"
#include "fmath.h"

namespace gl {
namespace {

// Row splitting reuses parallelFor from kernels.cpp (this file is included there).

GL_INLINE float fsigmoid(float v) {
  const float e = fexp(v < 0.f ? v : -v);
  return v >= 0.f ? 1.f / (1.f + e) : e / (1.f + e);
}

GL_CLONES void lstmRows(const float* GL_RESTRICT gates, const float* GL_RESTRICT c, long H, long r0, long r1,
                        float* GL_RESTRICT h2, float* GL_RESTRICT c2, float* GL_RESTRICT act) {
  for (long b = r0; b < r1; b++) {
    const float* a = gates + b * 4 * H;
    float* s = act + b * 5 * H;
    const float* cb = c + b * H;
    for (long j = 0; j < H; j++) {
      const float i = fsigmoid(a[j]), f = fsigmoid(a[H + j]), g = ftanh(a[2 * H + j]), o = fsigmoid(a[3 * H + j]);
      const float cn = f * cb[j] + i * g;
      const float tc = ftanh(cn);
      s[j] = i;
      s[H + j] = f;
      s[2 * H + j] = g;
      s[3 * H + j] = o;
      s[4 * H + j] = tc;
      c2[b * H + j] = cn;
      h2[b * H + j] = o * tc;
    }
  }
}

GL_CLONES void lstmBackRows(const float* GL_RESTRICT act, const float* GL_RESTRICT c, const float* GL_RESTRICT dh,
                            const float* GL_RESTRICT dc2, long H, long r0, long r1, float* GL_RESTRICT dgates,
                            float* GL_RESTRICT dc) {
  for (long b = r0; b < r1; b++) {
    const float* s = act + b * 5 * H;
    float* d = dgates + b * 4 * H;
    for (long j = 0; j < H; j++) {
      const float i = s[j], f = s[H + j], g = s[2 * H + j], o = s[3 * H + j], tc = s[4 * H + j];
      const float gh = dh[b * H + j];
      const float dct = dc2[b * H + j] + gh * o * (1.f - tc * tc);
      d[j] = dct * g * i * (1.f - i);
      d[H + j] = dct * c[b * H + j] * f * (1.f - f);
      d[2 * H + j] = dct * i * (1.f - g * g);
      d[3 * H + j] = gh * tc * o * (1.f - o);
      dc[b * H + j] = dct * f;
    }
  }
}

GL_CLONES void gruRows(const float* GL_RESTRICT gi, const float* GL_RESTRICT gh, const float* GL_RESTRICT h, long H,
                       long r0, long r1, float* GL_RESTRICT h2, float* GL_RESTRICT act) {
  for (long b = r0; b < r1; b++) {
    const float* x = gi + b * 3 * H;
    const float* y = gh + b * 3 * H;
    float* s = act + b * 4 * H;
    for (long j = 0; j < H; j++) {
      const float r = fsigmoid(x[j] + y[j]);
      const float z = fsigmoid(x[H + j] + y[H + j]);
      const float hn = y[2 * H + j];
      const float n = ftanh(x[2 * H + j] + r * hn);
      s[j] = r;
      s[H + j] = z;
      s[2 * H + j] = n;
      s[3 * H + j] = hn;
      h2[b * H + j] = n + z * (h[b * H + j] - n);
    }
  }
}

GL_CLONES void gruBackRows(const float* GL_RESTRICT act, const float* GL_RESTRICT h, const float* GL_RESTRICT dh2,
                           long H, long r0, long r1, float* GL_RESTRICT dgi, float* GL_RESTRICT dgh,
                           float* GL_RESTRICT dh) {
  for (long b = r0; b < r1; b++) {
    const float* s = act + b * 4 * H;
    float* x = dgi + b * 3 * H;
    float* y = dgh + b * 3 * H;
    for (long j = 0; j < H; j++) {
      const float r = s[j], z = s[H + j], n = s[2 * H + j], hn = s[3 * H + j];
      const float g = dh2[b * H + j];
      const float dn = g * (1.f - z) * (1.f - n * n);
      const float dz = g * (h[b * H + j] - n) * z * (1.f - z);
      const float dr = dn * hn * r * (1.f - r);
      x[j] = dr;
      y[j] = dr;
      x[H + j] = dz;
      y[H + j] = dz;
      x[2 * H + j] = dn;
      y[2 * H + j] = dn * r;
      dh[b * H + j] = g * z;
    }
  }
}

// One attention row: s = s * scale + mask, causal -inf beyond `lim`, then softmax in
// place with js's semantics (a row blocked everywhere becomes NaN, as torch).
GL_CLONES void attnRow(float* GL_RESTRICT s, const float* GL_RESTRICT mask, long S, float scale, long lim) {
  if (mask) {
    for (long j = 0; j < S; j++) s[j] = s[j] * scale + mask[j];
  } else {
    for (long j = 0; j < S; j++) s[j] = s[j] * scale;
  }
  for (long j = lim < 0 ? 0 : lim; j < S; j++) s[j] = -__builtin_inff();
  float m = -__builtin_inff();
  bool nan = false;
  for (long j = 0; j < S; j++) {
    nan |= s[j] != s[j];
    m = s[j] > m ? s[j] : m;
  }
  if (nan) {
    for (long j = 0; j < S; j++) s[j] = __builtin_nanf("");
    return;
  }
  if (m == -__builtin_inff()) m = 0.f;
  float sum = 0.f;
  for (long j = 0; j < S; j++) {
    const float e = s[j] == -__builtin_inff() ? 0.f : fexp(s[j] - m);
    s[j] = e;
    sum += e;
  }
  const float inv = 1.f / sum;
  for (long j = 0; j < S; j++) s[j] *= inv;
}

// dS = P * (dP - rowsum(dP * P)) * scale, in place over dP.
GL_CLONES void attnBackRow(const float* GL_RESTRICT p, float* GL_RESTRICT dp, long S, float scale) {
  float dot = 0.f;
  for (long j = 0; j < S; j++) dot += dp[j] * p[j];
  for (long j = 0; j < S; j++) dp[j] = p[j] * (dp[j] - dot) * scale;
}

// Row sums keep 16 partial sums (lane j % 16), which the compiler vectorizes; a single
// running sum is a serial dependency chain without -ffast-math (1.7 ns per element).
constexpr int NL = 16;

// The sums over j < N of the two values f(j, a, b) writes, with NL partial sums each
// (always inlined: a call out of a target_clones function would run its default build).
// f should capture by value: captured references are reloaded after every store f makes,
// which stops the loop vectorizing (channelAffineBackward 220 -> 335 us).
template <class F>
__attribute__((always_inline)) inline void pairSums(long N, F f, float& sa, float& sb) {
  const long nb = N / NL * NL;
  float pa[NL] = {0.f}, pb[NL] = {0.f};
  for (long j0 = 0; j0 < nb; j0 += NL)
    for (int l = 0; l < NL; l++) {
      float a, b;
      f(j0 + l, a, b);
      pa[l] += a;
      pb[l] += b;
    }
  float ta = 0.f, tb = 0.f;
  for (long j = nb; j < N; j++) {
    float a, b;
    f(j, a, b);
    ta += a;
    tb += b;
  }
  for (int l = 0; l < NL; l++) {
    ta += pa[l];
    tb += pb[l];
  }
  sa = ta;
  sb = tb;
}

// Mean and 1/sqrt(var + eps) of one row of N (biased variance), with 16 partial sums.
__attribute__((always_inline)) inline void rowStats(const float* GL_RESTRICT xr, long N, float eps, float& mean, float& rs) {
  const long nb = N / NL * NL;
  float ps[NL] = {0.f};
  for (long j = 0; j < nb; j += NL)
    for (int l = 0; l < NL; l++) ps[l] += xr[j + l];
  float s = 0.f;
  for (long j = nb; j < N; j++) s += xr[j];
  for (int l = 0; l < NL; l++) s += ps[l];
  const float m = s / (float)N;
  float pv[NL] = {0.f};
  for (long j = 0; j < nb; j += NL)
    for (int l = 0; l < NL; l++) {
      const float d = xr[j + l] - m;
      pv[l] += d * d;
    }
  float v = 0.f;
  for (long j = nb; j < N; j++) {
    const float d = xr[j] - m;
    v += d * d;
  }
  for (int l = 0; l < NL; l++) v += pv[l];
  mean = m;
  rs = 1.f / __builtin_sqrtf(v / (float)N + eps);
}

GL_CLONES void normRowsLoop(const float* GL_RESTRICT x, long N, float eps, long r0, long r1, float* GL_RESTRICT y,
                            float* GL_RESTRICT rstd) {
  for (long r = r0; r < r1; r++) {
    const float* xr = x + r * N;
    float* yr = y + r * N;
    float m, rs;
    rowStats(xr, N, eps, m, rs);
    for (long j = 0; j < N; j++) yr[j] = (xr[j] - m) * rs;
    rstd[r] = rs;
  }
}

GL_CLONES void normRowsBackLoop(const float* GL_RESTRICT y, const float* GL_RESTRICT rstd, const float* GL_RESTRICT g,
                                long N, long r0, long r1, float* GL_RESTRICT dx) {
  for (long r = r0; r < r1; r++) {
    const float* yr = y + r * N;
    const float* gr = g + r * N;
    float sg, sgy;
    pairSums(N, [=](long j, float& a, float& b) { a = gr[j]; b = gr[j] * yr[j]; }, sg, sgy);
    const float mg = sg / (float)N, mgy = sgy / (float)N, rs = rstd[r];
    for (long j = 0; j < N; j++) dx[r * N + j] = rs * (gr[j] - mg - yr[j] * mgy);
  }
}

GL_CLONES void layerNormLoop(const float* GL_RESTRICT x, long N, float eps, const float* GL_RESTRICT w,
                             const float* GL_RESTRICT b, long r0, long r1, float* GL_RESTRICT y, float* GL_RESTRICT mean,
                             float* GL_RESTRICT rstd) {
  for (long r = r0; r < r1; r++) {
    const float* xr = x + r * N;
    float* yr = y + r * N;
    float m, rs;
    rowStats(xr, N, eps, m, rs);
    if (w && b)
      for (long j = 0; j < N; j++) yr[j] = (xr[j] - m) * rs * w[j] + b[j];
    else
      for (long j = 0; j < N; j++) yr[j] = (xr[j] - m) * rs * (w ? w[j] : 1.f) + (b ? b[j] : 0.f);
    mean[r] = m;
    rstd[r] = rs;
  }
}

// dx per row from gw = g w and xhat = (x - mean) rstd, recomputed from x.
GL_CLONES void layerNormBackLoop(const float* GL_RESTRICT x, const float* GL_RESTRICT mean, const float* GL_RESTRICT rstd,
                                 const float* GL_RESTRICT w, const float* GL_RESTRICT g, long N, long r0, long r1,
                                 float* GL_RESTRICT dx) {
  for (long r = r0; r < r1; r++) {
    const float* xr = x + r * N;
    const float* gr = g + r * N;
    const float m = mean[r], rs = rstd[r];
    float sg, sgy;
    pairSums(N, [=](long j, float& a, float& b) {
      a = w ? gr[j] * w[j] : gr[j];
      b = a * ((xr[j] - m) * rs);
    }, sg, sgy);
    const float mg = sg / (float)N, mgy = sgy / (float)N;
    float* dr = dx + r * N;
    for (long j = 0; j < N; j++) {
      const float gw = w ? gr[j] * w[j] : gr[j];
      dr[j] = rs * (gw - mg - (xr[j] - m) * rs * mgy);
    }
  }
}

// dw[j] = sum_r g xhat, db[j] = sum_r g over columns [c0, c1) (either nullable).
GL_CLONES void layerNormParamCols(const float* GL_RESTRICT x, const float* GL_RESTRICT mean,
                                  const float* GL_RESTRICT rstd, const float* GL_RESTRICT g, long R, long N, long c0,
                                  long c1, float* GL_RESTRICT dw, float* GL_RESTRICT db) {
  for (long j = c0; j < c1; j++) {
    if (dw) dw[j] = 0.f;
    if (db) db[j] = 0.f;
  }
  for (long r = 0; r < R; r++) {
    const float* xr = x + r * N;
    const float* gr = g + r * N;
    const float m = mean[r], rs = rstd[r];
    if (dw)
      for (long j = c0; j < c1; j++) dw[j] += gr[j] * ((xr[j] - m) * rs);
    if (db)
      for (long j = c0; j < c1; j++) db[j] += gr[j];
  }
}

// y[0, n) = act(x * scale + shift), act 0 none, 1 SiLU.
__attribute__((always_inline)) inline void affineRow(const float* GL_RESTRICT x, long n, float scale, float shift, int act,
                                                     float* GL_RESTRICT y) {
  if (act == 1)
    for (long j = 0; j < n; j++) y[j] = fsilu(x[j] * scale + shift);
  else
    for (long j = 0; j < n; j++) y[j] = x[j] * scale + shift;
}

GL_CLONES void channelAffineRows(const float* GL_RESTRICT x, long C, long inner, const float* w, const float* b, int act,
                                 long r0, long r1, float* GL_RESTRICT y) {
  for (long r = r0; r < r1; r++) {
    const long c = r % C;
    const float wc = w ? w[c] : 1.f, bc = b ? b[c] : 0.f;
    affineRow(x + r * inner, inner, wc, bc, act, y + r * inner);
  }
}

GL_CLONES void channelAffineBackRows(const float* GL_RESTRICT x, const float* GL_RESTRICT g, long C, long inner,
                                     const float* w, const float* b, int act, long r0, long r1, float* GL_RESTRICT dx,
                                     float* GL_RESTRICT sums) {
  for (long r = r0; r < r1; r++) {
    const long c = r % C;
    const float wc = w ? w[c] : 1.f, bc = b ? b[c] : 0.f;
    const float* xr = x + r * inner;
    const float* gr = g + r * inner;
    float* dr = dx + r * inner;
    // dx = du w per element, and the sums of du x and du (du = g act'(x w + b)).
    pairSums(inner, [=](long j, float& ux, float& u) {
      u = act == 1 ? gr[j] * fsiluGrad(xr[j] * wc + bc) : gr[j];
      dr[j] = u * wc;
      ux = u * xr[j];
    }, sums[2 * r], sums[2 * r + 1]);
  }
}

// GroupNorm with its affine part and activation over x [N, C, S], G groups of Cg = C / G
// channels: row r = (n, g) is Cg * S contiguous floats. Forward rows [r0, r1): the row's
// mean and 1/std, then y = act(x * sc + sh) channel by channel (sc = rstd w[c], sh =
// b[c] - mean sc), read again from cache.
GL_CLONES void groupNormRowsLoop(const float* GL_RESTRICT x, long G, long Cg, long S, float eps, const float* w,
                                 const float* b, int act, long r0, long r1, float* GL_RESTRICT y, float* mean, float* rstd) {
  for (long r = r0; r < r1; r++) {
    const float* xr = x + r * Cg * S;
    float* yr = y + r * Cg * S;
    float m, rs;
    rowStats(xr, Cg * S, eps, m, rs);
    mean[r] = m;
    rstd[r] = rs;
    // The SiLU as one pass over the whole group's row after the affine part: per channel
    // row, the n % 16 values after the last vector each went through a scalar exp, as
    // costly as the vectors before them on rows of 49 or 196 values.
    for (long c = 0; c < Cg; c++) {
      const long ch = r % G * Cg + c;
      const float sc = rs * (w ? w[ch] : 1.f), sh = (b ? b[ch] : 0.f) - m * sc;
      affineRow(xr + c * S, S, sc, sh, 0, yr + c * S);
    }
    if (act == 1)
      for (long j = 0; j < Cg * S; j++) yr[j] = fsilu(yr[j]);
  }
}

// Its gradient for rows [r0, r1): du = g act'(u), u = xhat w + b, dxhat = du w; per
// channel ch of image n the sums sums[2 (n C + ch)] = sum du xhat and [+1] = sum du
// (the weight and bias gradients, summed over n by the caller); then dx = rstd (dxhat -
// mean(dxhat) - xhat mean(dxhat xhat)) over the row, recomputing du from cache.
GL_CLONES void groupNormBackLoop(const float* GL_RESTRICT x, const float* GL_RESTRICT g, long G, long Cg, long S,
                                 const float* mean, const float* rstd, const float* w, const float* b, int act, long r0,
                                 long r1, float* GL_RESTRICT dx, float* GL_RESTRICT sums) {
  const long C = G * Cg;
  for (long r = r0; r < r1; r++) {
    const float m = mean[r], rs = rstd[r];
    const long n = r / G, g0 = r % G * Cg;
    double sA = 0.0, sB = 0.0;  // sum dxhat, sum dxhat xhat over the row
    for (long c = 0; c < Cg; c++) {
      const long ch = g0 + c;
      const float wc = w ? w[ch] : 1.f, bc = b ? b[ch] : 0.f;
      const float *xc = x + (r * Cg + c) * S, *gc = g + (r * Cg + c) * S;
      float* out = sums + 2 * (n * C + ch);
      float* dc = dx + (r * Cg + c) * S;  // holds du until the second pass
      pairSums(S, [=](long j, float& uxh, float& u) {
        const float xh = (xc[j] - m) * rs;
        u = act == 1 ? gc[j] * fsiluGrad(xh * wc + bc) : gc[j];
        if (act == 1) dc[j] = u;
        uxh = u * xh;
      }, out[0], out[1]);
      sA += (double)wc * out[1];
      sB += (double)wc * out[0];
    }
    const double len = (double)Cg * S;
    const float a = (float)(sA / len), bq = (float)(sB / len);
    for (long c = 0; c < Cg; c++) {
      const long ch = g0 + c;
      const float wc = w ? w[ch] : 1.f;
      const float *xc = x + (r * Cg + c) * S, *gc = g + (r * Cg + c) * S;
      float* dc = dx + (r * Cg + c) * S;
      if (act == 1)
        for (long j = 0; j < S; j++) {
          const float xh = (xc[j] - m) * rs;
          dc[j] = rs * (dc[j] * wc - a - xh * bq);
        }
      else
        for (long j = 0; j < S; j++) {
          const float xh = (xc[j] - m) * rs;
          dc[j] = rs * (gc[j] * wc - a - xh * bq);
        }
    }
  }
}

// BatchNorm over channel c of x [outer, C, inner]: the rows (o, c), inner floats each.
// The 16 lane sums run across all of a channel's rows and are reduced once per channel
// (rows are short: 49 floats at 7x7, where a reduction per row cost more than the
// sums). The variance is a second pass, read again from cache: sum (x - mean)^2, not
// E[x^2] - mean^2.
template <class F>
__attribute__((always_inline)) inline double channelSum(long outer, long rowStride, long inner, F f) {
  float lanes[NL] = {0.f};
  double tail = 0.0, total = 0.0;
  const long nb = inner / NL * NL;
  for (long o = 0; o < outer; o++) {
    const long r = o * rowStride;
    for (long j0 = 0; j0 < nb; j0 += NL)
      for (int l = 0; l < NL; l++) lanes[l] += f(r + j0 + l);
    for (long j = nb; j < inner; j++) tail += f(r + j);
    if ((o & 63) == 63) {  // keep the float lanes short (64 rows at a time)
      for (int l = 0; l < NL; l++) {
        total += lanes[l];
        lanes[l] = 0.f;
      }
    }
  }
  for (int l = 0; l < NL; l++) total += lanes[l];
  return total + tail;
}

GL_CLONES void batchNormStatsChannels(const float* GL_RESTRICT x, long outer, long C, long inner, long c0, long c1,
                                      float* GL_RESTRICT mean, float* GL_RESTRICT var) {
  const double n = (double)outer * inner;
  for (long c = c0; c < c1; c++) {
    const float* xc = x + c * inner;
    const float m = (float)(channelSum(outer, C * inner, inner, [=](long i) { return xc[i]; }) / n);
    const double q = channelSum(outer, C * inner, inner, [=](long i) {
      const float d = xc[i] - m;
      return d * d;
    });
    mean[c] = m;
    var[c] = (float)(q / n);
  }
}

// The gradient of y = (x - mean) rstd w + b over channels [c0, c1): with the channel
// sums Sg = sum g and Sh = sum g xhat, dx = w rstd (g - Sg / n - xhat Sh / n), dw = Sh,
// db = Sg (dx, dw, db nullable; w null means 1).
GL_CLONES void batchNormBackChannels(const float* GL_RESTRICT x, const float* GL_RESTRICT g, long outer, long C, long inner,
                                     const float* mean, const float* rstd, const float* w, long c0, long c1,
                                     float* GL_RESTRICT dx, float* dw, float* db) {
  const double n = (double)outer * inner;
  for (long c = c0; c < c1; c++) {
    const float m = mean[c], rs = rstd[c];
    const float *xc = x + c * inner, *gc = g + c * inner;
    const double sg = channelSum(outer, C * inner, inner, [=](long i) { return gc[i]; });
    const double sgd = channelSum(outer, C * inner, inner, [=](long i) { return gc[i] * (xc[i] - m); });
    const double sh = sgd * rs;
    if (dw) dw[c] = (float)sh;
    if (db) db[c] = (float)sg;
    if (!dx) continue;
    const float k = (w ? w[c] : 1.f) * rs, a = (float)(sg / n), bh = (float)(sh / n) * rs;
    for (long o = 0; o < outer; o++) {
      const float *xr = x + (o * C + c) * inner, *gr = g + (o * C + c) * inner;
      float* dr = dx + (o * C + c) * inner;
      for (long j = 0; j < inner; j++) dr[j] = k * (gr[j] - a - (xr[j] - m) * bh);
    }
  }
}

}  // namespace

void channelAffine(const float* x, long outer, long C, long inner, const float* w, const float* b, int act, float* y) {
  parallelFor(outer * C, (double)outer * C * inner * (act ? 12 : 2),
              [&](long lo, long hi) { channelAffineRows(x, C, inner, w, b, act, lo, hi, y); });
}

void channelAffineBackward(const float* x, const float* g, long outer, long C, long inner, const float* w,
                           const float* b, int act, float* dx, float* sums) {
  // Split from ~170k elements on (the plain case was left on one thread up to 1M: at
  // [32, 128, 49] 253 us on one thread, 76-144 us on two).
  parallelFor(outer * C, (double)outer * C * inner * 24,
              [&](long lo, long hi) { channelAffineBackRows(x, g, C, inner, w, b, act, lo, hi, dx, sums); });
}

void groupNormRows(const float* x, long N, long G, long Cg, long S, float eps, const float* w, const float* b, int act,
                   float* y, float* mean, float* rstd) {
  // (With the SiLU ~0.75 ns a value on one thread: split from ~50k values, which with
  // the pool's gate costs at most a job post when the worker is late. DDIM's 7x7 and
  // 14x14 GroupNorms, 100k-200k values at batch 16, ran on one thread.)
  parallelFor(N * G, (double)N * G * Cg * S * (act ? 80 : 8),
              [&](long lo, long hi) { groupNormRowsLoop(x, G, Cg, S, eps, w, b, act, lo, hi, y, mean, rstd); });
}

void groupNormRowsBackward(const float* x, const float* g, long N, long G, long Cg, long S, const float* mean,
                           const float* rstd, const float* w, const float* b, int act, float* dx, float* sums) {
  parallelFor(N * G, (double)N * G * Cg * S * (act ? 80 : 16),
              [&](long lo, long hi) { groupNormBackLoop(x, g, G, Cg, S, mean, rstd, w, b, act, lo, hi, dx, sums); });
}

void batchNormStats(const float* x, long outer, long C, long inner, float* mean, float* var) {
  parallelFor(C, (double)outer * C * inner * 3, [&](long lo, long hi) { batchNormStatsChannels(x, outer, C, inner, lo, hi, mean, var); });
}

void batchNormBackward(const float* x, const float* g, long outer, long C, long inner, const float* mean, const float* rstd,
                       const float* w, float* dx, float* dw, float* db) {
  parallelFor(C, (double)outer * C * inner * 6,
              [&](long lo, long hi) { batchNormBackChannels(x, g, outer, C, inner, mean, rstd, w, lo, hi, dx, dw, db); });
}

void normRows(const float* x, long R, long N, float eps, float* y, float* rstd) {
  parallelFor(R, (double)R * N * 6, [&](long lo, long hi) { normRowsLoop(x, N, eps, lo, hi, y, rstd); });
}

void normRowsBackward(const float* y, const float* rstd, const float* g, long R, long N, float* dx) {
  parallelFor(R, (double)R * N * 5, [&](long lo, long hi) { normRowsBackLoop(y, rstd, g, N, lo, hi, dx); });
}

void layerNormRows(const float* x, long R, long N, float eps, const float* w, const float* b, float* y, float* mean,
                   float* rstd) {
  parallelFor(R, (double)R * N * 7, [&](long lo, long hi) { layerNormLoop(x, N, eps, w, b, lo, hi, y, mean, rstd); });
}

void layerNormRowsBackward(const float* x, const float* mean, const float* rstd, const float* w, const float* g, long R,
                           long N, float* dx, float* dw, float* db) {
  if (dx) parallelFor(R, (double)R * N * 8, [&](long lo, long hi) { layerNormBackLoop(x, mean, rstd, w, g, N, lo, hi, dx); });
  if (!dw && !db) return;
  // Columns in blocks of 16, so that each thread's row segments stay vectorized.
  const long blocks = (N + NL - 1) / NL;
  parallelFor(blocks, (double)R * N * 4, [&](long lo, long hi) {
    layerNormParamCols(x, mean, rstd, g, R, N, lo * NL, hi * NL < N ? hi * NL : N, dw, db);
  });
}

void lstmCell(const float* gates, const float* c, long B, long H, float* h2, float* c2, float* act) {
  parallelFor(B, (double)B * H * 40, [&](long lo, long hi) { lstmRows(gates, c, H, lo, hi, h2, c2, act); });
}

void lstmCellBackward(const float* act, const float* c, const float* dh, const float* dc2, long B, long H,
                      float* dgates, float* dc) {
  parallelFor(B, (double)B * H * 12, [&](long lo, long hi) { lstmBackRows(act, c, dh, dc2, H, lo, hi, dgates, dc); });
}

void gruCell(const float* gi, const float* gh, const float* h, long B, long H, float* h2, float* act) {
  parallelFor(B, (double)B * H * 30, [&](long lo, long hi) { gruRows(gi, gh, h, H, lo, hi, h2, act); });
}

void gruCellBackward(const float* act, const float* h, const float* dh2, long B, long H, float* dgi, float* dgh,
                     float* dh) {
  parallelFor(B, (double)B * H * 12, [&](long lo, long hi) { gruBackRows(act, h, dh2, H, lo, hi, dgi, dgh, dh); });
}

void attention(const float* q, const float* k, const float* v, const float* mask, long maskStride, long BH, long L,
               long S, long D, long Dv, float scale, long causalOffset, float* out, float* p, const HeadLayout* lay) {
  const HeadLayout lq = lay ? lay[0] : HeadLayout{1, L * D, 0, D}, lk = lay ? lay[1] : HeadLayout{1, S * D, 0, D};
  const HeadLayout lv = lay ? lay[2] : HeadLayout{1, S * Dv, 0, Dv}, lo_ = lay ? lay[3] : HeadLayout{1, L * Dv, 0, Dv};
  const double cost = (double)BH * L * S * (D + Dv + 10) * 2;
  parallelFor(BH, cost, [&](long lo, long hi) {
    for (long bh = lo; bh < hi; bh++) {
      float* pb = p + bh * L * S;
      gemm(false, true, L, S, D, lq.at(q, bh), lq.ld, lk.at(k, bh), lk.ld, 0.f, pb, S);
      const float* mb = mask ? mask + bh * maskStride : nullptr;
      for (long i = 0; i < L; i++)
        attnRow(pb + i * S, mb ? mb + i * S : nullptr, S, scale, causalOffset < 0 ? S : causalOffset + i + 1);
      gemm(false, false, L, Dv, S, pb, S, lv.at(v, bh), lv.ld, 0.f, lo_.at(out, bh), lo_.ld);
    }
  });
}

void attentionBackward(const float* q, const float* k, const float* v, const float* p, const float* dout,
                       const float* dpIn, long BH, long L, long S, long D, long Dv, float scale, float* dq, float* dk,
                       float* dv, float* scratch, const HeadLayout* lay) {
  // Layouts of q, k, v, dout, dq, dk, dv (contiguous [BH, rows, cols] without one).
  const HeadLayout lq = lay ? lay[0] : HeadLayout{1, L * D, 0, D}, lk = lay ? lay[1] : HeadLayout{1, S * D, 0, D};
  const HeadLayout lv = lay ? lay[2] : HeadLayout{1, S * Dv, 0, Dv}, ldo = lay ? lay[3] : HeadLayout{1, L * Dv, 0, Dv};
  const HeadLayout ldq = lay ? lay[4] : lq, ldk = lay ? lay[5] : lk, ldv = lay ? lay[6] : lv;
  const double cost = (double)BH * L * S * (2 * D + 2 * Dv + 6) * 2;
  parallelFor(BH, cost, [&](long lo, long hi) {
    for (long bh = lo; bh < hi; bh++) {
      const float* pb = p + bh * L * S;
      float* ds = scratch + bh * L * S;
      if (dout) {
        // dP = dO . V^T (+ the gradient that reached the weights directly)
        gemm(false, true, L, S, Dv, ldo.at(dout, bh), ldo.ld, lv.at(v, bh), lv.ld, 0.f, ds, S);
        if (dpIn)
          for (long i = 0; i < L * S; i++) ds[i] += dpIn[bh * L * S + i];
        if (dv) gemm(true, false, S, Dv, L, pb, S, ldo.at(dout, bh), ldo.ld, 0.f, ldv.at(dv, bh), ldv.ld);
      } else {
        for (long i = 0; i < L * S; i++) ds[i] = dpIn[bh * L * S + i];
      }
      for (long i = 0; i < L; i++) attnBackRow(pb + i * S, ds + i * S, S, scale);
      if (dq) gemm(false, false, L, D, S, ds, S, lk.at(k, bh), lk.ld, 0.f, ldq.at(dq, bh), ldq.ld);
      if (dk) gemm(true, false, S, D, L, ds, S, lq.at(q, bh), lq.ld, 0.f, ldk.at(dk, bh), ldk.ld);
    }
  });
}

}  // namespace gl
