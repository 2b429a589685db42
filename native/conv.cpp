// Convolution as implicit GEMM (included at the end of gemm.cpp: it reuses the packers,
// microkernels and per-thread buffers there). The im2col matrix of a batch,
// [Cin/groups*kh*kw, N*oh*ow], is never written out: the B packer reads its rows straight
// from the NCHW input (Caffe's im2col, one packed panel at a time), and the GEMM writes
// its [Cout, N*oh*ow] result straight into the NCHW output, so no layout transposes or
// column buffers surround the GEMM.
// - 3x3 (and 2x2) stride 1 with at least 16 channels each side: Winograd F(4x4, r x r)
//   or F(2x2, r x r), whichever needs fewer products for the output size, in blocks of
//   tiles (winograd.cpp): forward, data gradient and weight gradient.
// - Stride 1 with AVX-512: the padded images are read in place through a table of row
//   pointers (indirectForward): no packing of the input at all.
// - Stride 1 otherwise, images at least 14 wide: the images are padded once and the
//   output grid widened to the padded width, where every im2col row of an image is one
//   contiguous run (shiftedView): packing is a copy per row and image instead of one
//   per output row. Their weight gradients do the same, with the output gradient
//   widened by zero columns.
// - Stride 2 with even kernels: a stride-1 convolution over the input's four phase
//   images (phasedForward), so the paths above; its gradients too when that 2x2
//   convolution takes Winograd.
// - The stride-1 data gradient is the convolution of the output gradient with the
//   flipped kernel, another forward; otherwise it goes through a column buffer per chunk
//   of images (col2im must add overlapping windows), scattered in parallel over (image,
//   channel).
// - The weight gradient is computed transposed, and splits the long N*oh*ow reduction
//   across threads, each with its own partial sum.
// Not in the wasm build: the wasm backend keeps the im2col + GEMM path of
// src/engine/backends/conv_ref.ts. References: Chellapilla et al. 2006; Caffe's
// im2col_cpu; the "implicit GEMM" of cuDNN (Chetlur et al. 2014, arXiv:1410.0759);
// Dukhan 2019 (indirect convolution, arXiv:1907.02129).
#if !GL_WASM
#include <string.h>

namespace gl {
namespace {

// n floats, 64-byte aligned (null when out of memory).
float* alignedFloats(size_t n) { return (float*)aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64); }

// A logical matrix that a packer reads one row segment at a time.
struct Mat {
  enum Kind { DENSE, BLOCKED, IM2COL, SHIFTED } kind;
  const float* p;
  long ld;  // DENSE, BLOCKED: row stride (inside a block); SHIFTED: padded row width Wp
  long L;   // BLOCKED: columns per block; IM2COL: oh * ow; SHIFTED: oh * Wp
  long bs;  // BLOCKED: block stride; IM2COL, SHIFTED: image stride
  const ConvShape* g;
};

Mat dense(const float* p, long ld) { return {Mat::DENSE, p, ld, 0, 0, nullptr}; }
// Rows r, columns j = (b, l): element p[b * bs + r * ld + l], l < L (an NCHW tensor seen as [C, N*H*W]).
Mat blocked(const float* p, long ld, long L, long bs) { return {Mat::BLOCKED, p, ld, L, bs, nullptr}; }
// Rows r = (c, ki, kj), columns j = (n, oy, ox) of the im2col matrix of images x (at a group's first channel).
Mat im2colView(const float* x, const ConvShape& s) {
  return {Mat::IM2COL, x, 0, s.oh * s.ow, s.Cin * s.H * s.W, &s};
}

// Rows r = (c, ki, kj), columns j = (n, oy, x) with x < Wp of the im2col matrix of a
// stride-1 convolution over padded images p [N, Cin, Hp, Wp] on the output grid widened
// to Wp columns (x >= ow are thrown away): row r of image n is the contiguous run
// p_n[c Hp Wp + ki Wp + kj, + oh Wp), so it packs with one copy per row and image.
Mat shiftedView(const float* p, long Wp, long imageStride, const ConvShape& s) {
  return {Mat::SHIFTED, p, Wp, s.oh * Wp, imageStride, &s};
}

// out[0, n) = row r, columns [c0, c0 + n) of m.
void seg(const Mat& m, long r, long c0, long n, float* GL_RESTRICT out) {
  if (m.kind == Mat::DENSE) {
    memcpy(out, m.p + r * m.ld + c0, n * sizeof(float));
    return;
  }
  if (m.kind == Mat::SHIFTED) {
    const ConvShape& s = *m.g;
    const long c = r / (s.kh * s.kw), ki = r / s.kw % s.kh, kj = r % s.kw;
    const float* base = m.p + c * (s.oh + s.kh - 1) * m.ld + ki * m.ld + kj;
    long b = c0 / m.L, l = c0 % m.L;
    while (n > 0) {
      const long run = m.L - l < n ? m.L - l : n;
      memcpy(out, base + b * m.bs + l, run * sizeof(float));
      out += run;
      n -= run;
      l = 0;
      b++;
    }
    return;
  }
  if (m.kind == Mat::BLOCKED) {
    long b = c0 / m.L, l = c0 % m.L;
    while (n > 0) {
      const long run = m.L - l < n ? m.L - l : n;
      memcpy(out, m.p + b * m.bs + r * m.ld + l, run * sizeof(float));
      out += run;
      n -= run;
      l = 0;
      b++;
    }
    return;
  }
  const ConvShape& s = *m.g;
  const long c = r / (s.kh * s.kw), ki = r / s.kw % s.kh, kj = r % s.kw;
  const float* xc = m.p + c * s.H * s.W;
  const long off = kj * s.dw - s.pw;
  long b = c0 / m.L, l = c0 % m.L;
  long oy = l / s.ow, ox = l % s.ow;
  while (n > 0) {
    const long run = s.ow - ox < n ? s.ow - ox : n;
    const long iy = oy * s.sh - s.ph + ki * s.dh;
    if (iy < 0 || iy >= s.H) {
      for (long q = 0; q < run; q++) out[q] = 0.f;
    } else {
      const float* xr = xc + b * m.bs + iy * s.W;
      if (s.sw == 1) {
        // Valid input columns ix = ox + q + off in [0, W): q in [q0, q1).
        const long o = ox + off;
        long q0 = -o > 0 ? -o : 0, q1 = s.W - o < run ? s.W - o : run;
        if (q0 > run) q0 = run;
        if (q1 < q0) q1 = q0;
        for (long q = 0; q < q0; q++) out[q] = 0.f;
        if (q1 > q0) memcpy(out + q0, xr + o + q0, (q1 - q0) * sizeof(float));
        for (long q = q1; q < run; q++) out[q] = 0.f;
      } else {
        for (long q = 0; q < run; q++) {
          const long ix = (ox + q) * s.sw + off;
          out[q] = ix >= 0 && ix < s.W ? xr[ix] : 0.f;
        }
      }
    }
    out += run;
    n -= run;
    ox += run;
    if (ox == s.ow) {
      ox = 0;
      if (++oy == s.oh) {
        oy = 0;
        b++;
      }
    }
  }
}

// Where C's element (r, c) lives: p[r * ld + c] (L == 0), or p[(c / L) * bs + r * ld + c % L].
struct Out {
  float* p;
  long ld, L, bs;
};

// op(A) rows [i0, i0+mc), k [k0, k0+kc) for the microkernel. Dense A: packed panels,
// as packA (returns 0). A view, untransposed: rows copied as they are, row-major with
// stride kc, which the microkernel reads in place (returns kc): one copy per element.
long packAV(const Kernel& kr, bool tA, const Mat& S, long i0, long mc, long k0, long kc, float* dst) {
  if (S.kind == Mat::DENSE) {
    packA(kr, tA, S.p, S.ld, i0, mc, k0, kc, dst);
    return 0;
  }
  const int mr = kr.mr;
  if (!tA) {
    const long padded = (mc + mr - 1) / mr * mr;
    for (long r = 0; r < mc; r++) seg(S, i0 + r, k0, kc, dst + r * kc);
    for (long r = mc; r < padded; r++)
      for (long k = 0; k < kc; k++) dst[r * kc + k] = 0.f;
    return kc;
  }
  for (long p = 0; p < mc; p += mr) {
    const long rows = mc - p < mr ? mc - p : mr;
    float* d = dst + p * kc;
    for (long k = 0; k < kc; k++) {
      float* dk = d + k * mr;
      seg(S, k0 + k, i0 + p, rows, dk);
      for (long r = rows; r < mr; r++) dk[r] = 0.f;
    }
  }
  return 0;
}

// op(B) k [k0, k0+kc), columns [j0, j0+nc) for the microkernel. Dense B: packed panels,
// as packB (returns 0). A view, untransposed: rows of nc columns, row-major with a stride
// (returned) that is not a multiple of 4 KB, which the microkernel reads in place: one
// copy per element, in long runs. Transposed: packed panels.
long packBV(const Kernel& kr, bool tB, const Mat& S, long k0, long kc, long j0, long nc, float* dst) {
  if (S.kind == Mat::DENSE) {
    packB(kr, tB, S.p, S.ld, k0, kc, j0, nc, dst);
    return 0;
  }
  const long NR = (long)kr.vl * kr.nvMax;
  if (!tB) {
    const long wide = (nc + kr.vl - 1) / kr.vl * kr.vl;
    const long ldb = wide + 16;
    for (long k = 0; k < kc; k++) {
      float* row = dst + k * ldb;
      seg(S, k0 + k, j0, nc, row);
      for (long j = nc; j < wide; j++) row[j] = 0.f;
    }
    return ldb;
  }
  float tmp[KC_MAX];
  for (long jr = 0; jr < nc; jr += NR) {
    const long n = nc - jr < NR ? nc - jr : NR;
    const long w = (n + kr.vl - 1) / kr.vl * kr.vl;
    float* d = dst + jr * kc;
    for (long j = 0; j < n; j++) {
      seg(S, j0 + jr + j, k0, kc, tmp);
      for (long k = 0; k < kc; k++) d[k * w + j] = tmp[k];
    }
    for (long j = n; j < w; j++)
      for (long k = 0; k < kc; k++) d[k * w + j] = 0.f;
  }
  return 0;
}

// C[i0.., j0..] (+)= op(A)[i0.., kOff..] . op(B)[kOff.., j0..] over an M x N x K block.
void gemmSerialV(bool tA, bool tB, long i0, long M, long j0, long N, long kOff, long K, const Mat& A, const Mat& B,
                 bool accumulate, const Out& C) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const Kernel& kr = pickKernel();
  const Buffers buf = buffers();
  const long NR = (long)kr.vl * kr.nvMax;
  const long mr = kr.mr;
  const long nkb = K <= KC_MAX ? 1 : (K + KC_SPLIT - 1) / KC_SPLIT;
  const long KC = (K + nkb - 1) / nkb;
  const long mcMax = MC / mr * mr;
  float tmp[MR_MAX * NR_MAX];
  // A B block read in place (a view, untransposed) is kept to ~512 KB so that it stays
  // in L2 while every row panel of A passes over it.
  long ncMax = NC;
  if (B.kind != Mat::DENSE && !tB) {
    ncMax = (1L << 17) / KC / NR * NR;
    if (ncMax < NR) ncMax = NR;
    if (ncMax > NC) ncMax = NC;
  }
  for (long jc = 0; jc < N; jc += ncMax) {
    const long nc = N - jc < ncMax ? N - jc : ncMax;
    for (long pc = 0; pc < K; pc += KC) {
      const long kc = K - pc < KC ? K - pc : KC;
      const long bStride = packBV(kr, tB, B, kOff + pc, kc, j0 + jc, nc, buf.b);
      const bool load = accumulate || pc > 0;
      for (long ic = 0; ic < M; ic += mcMax) {
        const long mc = M - ic < mcMax ? M - ic : mcMax;
        const long aStride = packAV(kr, tA, A, i0 + ic, mc, kOff + pc, kc, buf.a);
        for (long jr = 0; jr < nc; jr += NR) {
          const long n = nc - jr < NR ? nc - jr : NR;
          const int nv = (int)((n + kr.vl - 1) / kr.vl);
          const long w = (long)nv * kr.vl;
          const float* bp = bStride ? buf.b + jr : buf.b + jr * kc;
          const long col = j0 + jc + jr;
          const bool one = C.L == 0 || col / C.L == (col + n - 1) / C.L;
          for (long ir = 0; ir < mc; ir += mr) {
            const long m = mc - ir < mr ? mc - ir : mr;
            const float* ap = buf.a + ir * kc;
            const long row = i0 + ic + ir;
            if (one) {
              float* cp = C.L ? C.p + col / C.L * C.bs + row * C.ld + col % C.L : C.p + row * C.ld + col;
              if (m == mr && n == w) {
                kr.ukr(nv, kc, ap, aStride, bp, bStride, cp, C.ld, load);
              } else {
                kr.ukr(nv, kc, ap, aStride, bp, bStride, tmp, w, false);
                for (long r = 0; r < m; r++)
                  for (long j = 0; j < n; j++) cp[r * C.ld + j] = load ? cp[r * C.ld + j] + tmp[r * w + j] : tmp[r * w + j];
              }
            } else {
              // The tile straddles blocks (images): scatter each block's run of columns.
              kr.ukr(nv, kc, ap, aStride, bp, bStride, tmp, w, false);
              for (long jj = 0; jj < n;) {
                const long c = col + jj, l = c % C.L;
                const long run = C.L - l < n - jj ? C.L - l : n - jj;
                float* base = C.p + c / C.L * C.bs + l;
                for (long r = 0; r < m; r++) {
                  float* q = base + (row + r) * C.ld;
                  const float* t = tmp + r * w + jj;
                  for (long j = 0; j < run; j++) q[j] = load ? q[j] + t[j] : t[j];
                }
                jj += run;
              }
            }
          }
        }
      }
    }
  }
}

// Threads take chunks of columns or rows of C (as gemmThreaded), or, when C is small
// and K long (a weight gradient over a batch), chunks of K summed into one partial C
// per thread.
struct VTask {
  bool tA, tB, accumulate;
  int mode;  // 0 columns, 1 rows, 2 K
  long M, N, K, step, chunks;
  long next;
  const Mat* A;
  const Mat* B;
  Out C;
  float* partial;  // mode 2: nt partial C's of M x N
};

void vTask(void* ctx, int tid, int nt) {
  VTask& t = *(VTask*)ctx;
  bool started = false;
  // Row or column chunks (disjoint parts of C) from a shared counter; K chunks (partial
  // sums per thread) in a fixed split, tid taking [tid chunks / nt, (tid + 1) chunks /
  // nt), so that the sums, added in thread order, round the same in every run.
  long c = t.mode == 2 ? t.chunks * tid / nt - 1 : 0;
  const long cEnd = t.mode == 2 ? t.chunks * (tid + 1) / nt : t.chunks;
  for (;;) {
    c = t.mode == 2 ? c + 1 : __atomic_fetch_add(&t.next, 1, __ATOMIC_RELAXED);
    if (c >= cEnd) break;
    const long a = c * t.step;
    if (t.mode == 0) {
      const long n = t.N - a < t.step ? t.N - a : t.step;
      gemmSerialV(t.tA, t.tB, 0, t.M, a, n, 0, t.K, *t.A, *t.B, t.accumulate, t.C);
    } else if (t.mode == 1) {
      const long m = t.M - a < t.step ? t.M - a : t.step;
      gemmSerialV(t.tA, t.tB, a, m, 0, t.N, 0, t.K, *t.A, *t.B, t.accumulate, t.C);
    } else {
      const long k = t.K - a < t.step ? t.K - a : t.step;
      const Out part = {t.partial + (long)tid * t.M * t.N, t.N, 0, 0};
      gemmSerialV(t.tA, t.tB, 0, t.M, 0, t.N, a, k, *t.A, *t.B, started, part);
      started = true;
    }
  }
  if (t.mode == 2 && !started) {
    float* p = t.partial + (long)tid * t.M * t.N;
    for (long i = 0; i < t.M * t.N; i++) p[i] = 0.f;
  }
}

void gemmV(bool tA, bool tB, long M, long N, long K, const Mat& A, const Mat& B, bool accumulate, const Out& C) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) *(C.L ? C.p + j / C.L * C.bs + i * C.ld + j % C.L : C.p + i * C.ld + j) = 0.f;
    return;
  }
  int nt = numThreads();
  const double flops = 2.0 * (double)M * (double)N * (double)K;
  if (flops < 1.5e6) nt = 1;
  if (nt > 1) {
    const Kernel& kr = pickKernel();
    const long nr = (long)kr.vl * kr.nvMax;
    VTask t = {tA, tB, accumulate, 0, M, N, K, 0, 0, 0, &A, &B, C, nullptr};
    if (C.L == 0 && (double)M * N <= (1 << 20) && K >= 8 * (M > N ? M : N) && K >= 1024) {
      // Split K: about 4 chunks per thread of at least 512.
      t.mode = 2;
      long chunks = 4L * nt;
      if (K / chunks < 512) chunks = K / 512;
      if (chunks < nt) chunks = nt;
      t.step = (K + chunks - 1) / chunks;
      t.chunks = (K + t.step - 1) / t.step;
      if (t.chunks < nt) nt = (int)t.chunks;
      float* part = alignedFloats((size_t)nt * M * N);
      if (part) {
        t.partial = part;
        parallel(nt, vTask, &t);
        for (long i = 0; i < M; i++)
          for (long j = 0; j < N; j++) {
            float s = 0.f;
            for (int p = 0; p < nt; p++) s += part[(long)p * M * N + i * N + j];
            float* c = C.p + i * C.ld + j;
            *c = accumulate ? *c + s : s;
          }
        free(part);
        return;
      }
    } else {
      const bool splitN = N >= M || M < (long)kr.mr * nt;
      t.mode = splitN ? 0 : 1;
      const long side = splitN ? N : M;
      const long unit = splitN ? (side >= 8 * nr * nt ? nr : kr.vl) : kr.mr;
      const long units = (side + unit - 1) / unit;
      long chunks = 4L * nt;
      const double perUnit = flops / (double)units;
      const long minUnits = (long)(4e6 / perUnit) + 1;
      if (units / chunks < minUnits) chunks = units / minUnits;
      // Row chunks each pack all of B (in a weight gradient, y transposed): keep them
      // tall so that the packing stays small next to their arithmetic.
      // (dcgan's 64->128 k4 s2 weight gradient, M = 1024: 8 chunks 6.8 ms, 2 chunks
      // 5.4-5.6; the U-Net's 128->128 at 7x7, M = 1152: 3.7-4.2 -> 3.1-3.4.)
      if (!splitN && chunks > M / 384) chunks = M / 384;
      if (chunks > nt) chunks -= chunks % nt;
      if (chunks < nt) chunks = units < nt ? units : nt;
      t.step = (units + chunks - 1) / chunks * unit;
      t.chunks = (side + t.step - 1) / t.step;
      if (t.chunks < nt) nt = (int)t.chunks;
      if (nt > 1) {
        parallel(nt, vTask, &t);
        return;
      }
    }
  }
  gemmSerialV(tA, tB, 0, M, 0, N, 0, K, A, B, accumulate, C);
}

bool isDirect(const ConvShape& s) {
  return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 && s.oh == s.H && s.ow == s.W;
}

// Add columns into images x [m, Cin, H, W]: row r = (c, ki, kj) of image b at cols +
// b * bs + r * ld, L = oh * ow floats.
void col2imBatch(const float* cols, long ld, long bs, long m, const ConvShape& s, float* x) {
  const long L = s.oh * s.ow, HW = s.H * s.W, C = s.Cin;
  forRange(m * C, (double)m * C * s.kh * s.kw * L, [&](long lo, long hi) {
    for (long t = lo; t < hi; t++) {
      const long b = t / C, c = t % C;
      float* xc = x + (b * C + c) * HW;
      // The (ki, kj, y, q) order of js's col2im, so that the sums round identically.
      for (long ki = 0; ki < s.kh; ki++)
        for (long kj = 0; kj < s.kw; kj++) {
          const float* row = cols + ((c * s.kh + ki) * s.kw + kj) * ld + b * bs;
          const long off = kj * s.dw - s.pw;
          for (long y = 0; y < s.oh; y++) {
            const long iy = y * s.sh - s.ph + ki * s.dh;
            if (iy < 0 || iy >= s.H) continue;
            float* GL_RESTRICT xb = xc + iy * s.W;
            const float* GL_RESTRICT ro = row + y * s.ow;
            if (s.sw == 1) {
              long q0 = -off > 0 ? -off : 0, q1 = s.W - off < s.ow ? s.W - off : s.ow;
              for (long q = q0; q < q1; q++) xb[q + off] += ro[q];
            } else {
              // Valid q: 0 <= q sw + off < W, without a test per element.
              const long q0 = off < 0 ? (-off + s.sw - 1) / s.sw : 0;
              long q1 = (s.W - 1 - off) / s.sw + 1;
              if (q1 > s.ow) q1 = s.ow;
              for (long q = q0; q < q1; q++) xb[q * s.sw + off] += ro[q];
            }
          }
        }
    }
  });
}

// Scratch buffers kept between calls (the addon is called from one JS thread), grown
// as needed: 0 the column buffer of strided data gradients, 1 and 2 the padded images
// and widened results of the shifted and indirect paths (Winograd's channel-last input
// and output gradient), 3 the phase images of a stride-2 convolution (or their
// gradient), 4 Winograd's per-thread blocks, 5 its transformed kernels, 6 a stride-2
// convolution's rearranged kernel (7 its weight gradient and partial sums), 8 the
// flipped kernel of a stride-1 data gradient. Allocating such buffers per call made
// malloc keep the freed blocks and raised a training step's peak (ddpm-unet +25 MB;
// dcgan's peak rose from ~200 to ~300 MB in every other run once Winograd's kernels
// grew to 3.3 MB).
float* scratchBuffer(int slot, size_t n) {
  static float* buf[9] = {};
  static size_t cap[9] = {};
  if (n > cap[slot]) {
    free(buf[slot]);
    buf[slot] = alignedFloats(n);
    cap[slot] = buf[slot] ? n : 0;
  }
  return buf[slot];
}

}  // namespace

namespace {
// Stride-1 convolutions on images at least 14 wide (the widened grid then costs at
// most (kw - 1) / ow more arithmetic) go through shiftedView: the images are padded
// once, the GEMM packs whole contiguous runs instead of im2col's runs of ow, and the
// result's ow valid columns of each widened row are copied out. False (nothing done)
// when the shape does not qualify or a buffer cannot be had.
// A stride-1, undilated convolution that is not a plain 1x1 product, with the usual
// output size: the images padded to [Hp, Wp] hold every input of the widened grid.
bool paddedStride1(const ConvShape& s) {
  return s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && !isDirect(s) && s.oh == s.H + 2 * s.ph - s.kh + 1 &&
         s.ow == s.W + 2 * s.pw - s.kw + 1;
}

bool shiftable(const ConvShape& s) { return paddedStride1(s) && s.kw >= 2 && s.ow >= 14; }

// Sizes of a shifted pass and its two scratch buffers (null when out of memory).
struct Shift {
  long Wp, HpWp, L, Le, Og, Cg, K, chunk;
  float* pad;  // padded images of one pass [chunk, Cin, Hp, Wp] + kw
  float* ext;  // widened results (or gradients) of one pass [chunk, Cout, oh, Wp]
};

// Images per pass: the padded copy and widened result stay near 4 MB each, whatever
// the batch (passes of ~1 MB were measured 10-60 % slower).
Shift shiftOf(const ConvShape& s) {
  Shift h;
  h.Wp = s.W + 2 * s.pw;
  h.HpWp = (s.H + 2 * s.ph) * h.Wp;
  h.L = s.oh * s.ow;
  h.Le = s.oh * h.Wp;
  h.Og = s.Cout / s.groups;
  h.Cg = s.Cin / s.groups;
  h.K = h.Cg * s.kh * s.kw;
  const long per = (s.Cin > s.Cout ? s.Cin : s.Cout) * h.HpWp;
  const long n = (1L << 20) / (per > 0 ? per : 1);
  h.chunk = n < 1 ? 1 : n > s.N ? s.N : n;
  h.pad = scratchBuffer(1, (size_t)h.chunk * s.Cin * h.HpWp + s.kw);
  h.ext = scratchBuffer(2, (size_t)h.chunk * s.Cout * h.Le);
  return h;
}

// Images x [n, C, H, W] zero-padded into dst [n, C, H + 2 ph, W + 2 pw], plus the zero
// tail of kw floats that the last widened row reads.
void padImages(const float* x, long n, long C, const ConvShape& s, float* dst) {
  const long Wp = s.W + 2 * s.pw, HpWp = (s.H + 2 * s.ph) * Wp;
  forRange(n * C, (double)n * C * HpWp, [&](long lo, long hi) {
    for (long t = lo; t < hi; t++) {
      float* pc = dst + t * HpWp;
      memset(pc, 0, HpWp * sizeof(float));
      const float* xc = x + t * s.H * s.W;
      for (long y = 0; y < s.H; y++) memcpy(pc + (y + s.ph) * Wp + s.pw, xc + y * s.W, s.W * sizeof(float));
    }
  });
  memset(dst + n * C * HpWp, 0, s.kw * sizeof(float));
}

// out [n, Cout, oh, ow] (+)= the ow valid columns of each widened row of ext (channel
// planes extStride apart, rows Wp apart), + bias when not accumulating.
void fromWidened(const float* ext, long extStride, long Wp, long n, const float* bias, const ConvShape& s, float* out,
                 bool accumulate) {
  const long L = s.oh * s.ow;
  forRange(n * s.Cout, (double)n * s.Cout * L, [&](long lo, long hi) {
    for (long t = lo; t < hi; t++) {
      const float b0 = bias ? bias[t % s.Cout] : 0.f;
      float* o = out + t * L;
      const float* e = ext + t * extStride;
      for (long y = 0; y < s.oh; y++)
        for (long q = 0; q < s.ow; q++) {
          const float v = e[y * Wp + q];
          o[y * s.ow + q] = accumulate ? o[y * s.ow + q] + v : v + b0;
        }
    }
  });
}

bool shiftedForward(const float* x, const float* w, const float* bias, const ConvShape& s, float* out, bool accumulate) {
  if (!shiftable(s)) return false;
  const Shift h = shiftOf(s);
  if (!h.pad || !h.ext) return false;
  const long Wp = h.Wp, HpWp = h.HpWp, L = h.L, Le = h.Le, Og = h.Og, Cg = h.Cg, K = h.K, chunk = h.chunk;
  float *pad = h.pad, *ext = h.ext;
  for (long n0 = 0; n0 < s.N; n0 += chunk) {
    const long nb = s.N - n0 < chunk ? s.N - n0 : chunk;
    padImages(x + n0 * s.Cin * s.H * s.W, nb, s.Cin, s, pad);
    for (long g = 0; g < s.groups; g++) {
      const Mat A = dense(w + g * Og * K, K);
      const Mat B = shiftedView(pad + g * Cg * HpWp, Wp, s.Cin * HpWp, s);
      const Out C = {ext + g * Og * Le, Le, Le, s.Cout * Le};
      gemmV(false, false, Og, nb * Le, K, A, B, false, C);
    }
    fromWidened(ext, Le, Wp, nb, bias, s, out + n0 * s.Cout * L, accumulate);
  }
  return true;
}

#if defined(__x86_64__)
// Stride-1 convolutions as an indirect GEMM (Dukhan 2019, "The Indirect Convolution
// Algorithm", arXiv:1907.02129; XNNPACK's indirection buffer), on the padded images and
// widened output grid of shiftedView: output pixel p = oy * Wp + ox of channel o is
// sum_k w[o, k] pad[c, p + ki * Wp + kj] over k = (c, ki, kj), so for a tile of 64
// consecutive pixels every row k of the im2col matrix is 64 contiguous floats of the
// padded image at a known offset. The microkernel reads them there through a table of
// row pointers: nothing of the input is packed or copied per tile, only the weights
// are packed once per call (shared by the threads), and the threads split the tiles
// (image, pixel block) with no shared state. Columns of the widened grid past ow are
// computed and thrown away, (kw - 1) / Wp of the arithmetic. Measured against the
// shifted path (2 threads, batch 32, the bench U-Net's shapes): forward and data
// gradient 7 % faster in all, e.g. 64->64 channels at 28x28 11.3 -> 10.3 ms,
// 128->128 at 7x7 3.3 -> 2.95 ms; ddpm-unet's convolution forward + data gradient
// 280-295 -> 260-267 ms a step. AVX-512 only; other kernels take the shifted path.
template <int NV>
__attribute__((target("avx512f,fma"))) void ukrIndirect(long kc, const float* GL_RESTRICT a,
                                                        const float* const* GL_RESTRICT rows, float* GL_RESTRICT c,
                                                        long ldc, bool load) {
  __m512 acc[6][NV];
  for (int r = 0; r < 6; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (long k = 0; k < kc; k++) {
    const float* b = rows[k];
    __m512 bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + v * 16);
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

bool indirectForward(const float* x, const float* w, const float* bias, const ConvShape& s, float* out, bool accumulate) {
  const Kernel& kr = pickKernel();
  if (kr.ukr != ukr512 || s.groups != 1 || !paddedStride1(s)) return false;
  constexpr long TP = 64;  // pixels per tile (NV = 4 vectors)
  constexpr long KB = 512; // rows of k per pass over a tile
  // Tiles of 64 pixels, the last of an image 16, 32 or 48 wide when that covers it.
  const long Wp = s.W + 2 * s.pw, HpWp = (s.H + 2 * s.ph) * Wp, Le = s.oh * Wp, LeR = (Le + 15) / 16 * 16;
  const long K = s.Cin * s.kh * s.kw, O = s.Cout, tilesM = (O + 5) / 6, blocks = (LeR + TP - 1) / TP;
  // Images per pass: the padded images and the widened results near 4 MB each.
  const long per = s.Cin * HpWp > O * LeR ? s.Cin * HpWp : O * LeR;
  long chunk = (1L << 20) / (per > 0 ? per : 1);
  chunk = chunk < 1 ? 1 : chunk > s.N ? s.N : chunk;
  // The last tile of the last image reads up to kw + TP floats past the padded images.
  float* pad = scratchBuffer(1, (size_t)chunk * s.Cin * HpWp + s.kw + TP);
  float* ext = scratchBuffer(2, (size_t)chunk * O * LeR);
  float* ap = alignedFloats((size_t)tilesM * 6 * K);
  long* off = (long*)malloc(sizeof(long) * K);
  if (!pad || !ext || !ap || !off) {
    free(ap);
    free(off);
    return false;
  }
  // Weights in panels of 6 output channels over all of K (GEMM's A packing): ap[t][k][r].
  packA(kr, false, w, K, 0, O, 0, K, ap);
  for (long k = 0; k < K; k++) {
    const long c = k / (s.kh * s.kw), ki = k / s.kw % s.kh, kj = k % s.kw;
    off[k] = c * HpWp + ki * Wp + kj;
  }
  for (long n0 = 0; n0 < s.N; n0 += chunk) {
    const long nb = s.N - n0 < chunk ? s.N - n0 : chunk;
    padImages(x + n0 * s.Cin * s.H * s.W, nb, s.Cin, s, pad);
    memset(pad + nb * s.Cin * HpWp, 0, (s.kw + TP) * sizeof(float));
    forRange(nb * blocks, 2.0 * nb * O * K * LeR, [&](long lo, long hi) {
      const float* rows[KB];
      float tmp[6 * TP];
      for (long t = lo; t < hi; t++) {
        const long n = t / blocks, p0 = t % blocks * TP, width = LeR - p0 < TP ? LeR - p0 : TP;
        const float* img = pad + n * s.Cin * HpWp + p0;
        float* e = ext + n * O * LeR + p0;
        for (long k0 = 0; k0 < K; k0 += KB) {
          const long kc = K - k0 < KB ? K - k0 : KB;
          for (long k = 0; k < kc; k++) rows[k] = img + off[k0 + k];
          for (long m = 0; m < tilesM; m++) {
            const float* a = ap + (m * K + k0) * 6;
            const long rowsLeft = O - m * 6;
            float* c = rowsLeft >= 6 ? e + m * 6 * LeR : tmp;
            const long ldc = rowsLeft >= 6 ? LeR : TP;
            const bool load = rowsLeft >= 6 && k0 > 0;
            switch (width / 16) {
              case 1: ukrIndirect<1>(kc, a, rows, c, ldc, load); break;
              case 2: ukrIndirect<2>(kc, a, rows, c, ldc, load); break;
              case 3: ukrIndirect<3>(kc, a, rows, c, ldc, load); break;
              default: ukrIndirect<4>(kc, a, rows, c, ldc, load); break;
            }
            if (rowsLeft < 6)
              for (long r = 0; r < rowsLeft; r++) {
                float* d = e + (m * 6 + r) * LeR;
                for (long j = 0; j < width; j++) d[j] = k0 > 0 ? d[j] + tmp[r * TP + j] : tmp[r * TP + j];
              }
          }
        }
      }
    });
    fromWidened(ext, LeR, Wp, nb, bias, s, out + n0 * O * s.oh * s.ow, accumulate);
  }
  free(ap);
  free(off);
  return true;
}
#else
bool indirectForward(const float*, const float*, const float*, const ConvShape&, float*, bool) { return false; }
#endif

// Weight gradients whose im2col matrix has few rows (K = Cin*kh*kw <= 64, one group: a
// first layer on one or three input channels): image by image, the im2col matrix
// [K, L] is built in a buffer that stays in cache and dw [Cout, K] += y_n . cols^T by
// the dense GEMM, the images taken from a shared counter by the threads, each into its
// own partial sum. The implicit path packs y transposed per chunk, which costs more than
// these products' few multiply-adds (alone, 2 threads: dcgan's 1->64 k4 s2 at 28x28,
// batch 64, 0.49-0.54 -> 0.26 ms; conv-vae's 1->32 at batch 128, 0.56 -> 0.40; the
// U-Net's 1->32 3x3, 0.40 -> 0.25). (The forward gained nothing this way.)
bool smallK(const ConvShape& s) {
  const long K = s.Cin * s.kh * s.kw, L = s.oh * s.ow;
  return s.groups == 1 && K <= 64 && !isDirect(s) && L > 0 && K * L <= (1L << 16);
}

void imageCols(const float* x, const ConvShape& s, float* col) {
  im2col(x, s.Cin, s.H, s.W, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.dh, s.dw, s.oh, s.ow, col);
}

struct SmallKWeightTask {
  const float *x, *y;
  const ConvShape* s;
  float* partial;  // [threads, Cout, K], zeroed
  float* cols;     // [threads, K, L]
};

bool smallKWeight(const float* x, const float* y, const ConvShape& s, float* out) {
  if (!smallK(s)) return false;
  const long K = s.Cin * s.kh * s.kw, L = s.oh * s.ow, n = s.Cout * K;
  int nt = numThreads();
  if (2.0 * s.N * s.Cout * K * L < 2e5 || s.N < 2) nt = 1;
  float* partial = alignedFloats((size_t)nt * n);
  float* cols = alignedFloats((size_t)nt * K * L);
  if (!partial || !cols) {
    free(partial);
    free(cols);
    return false;
  }
  for (long i = 0; i < nt * n; i++) partial[i] = 0.f;
  SmallKWeightTask t = {x, y, &s, partial, cols};
  auto task = [](void* c, int tid, int nt) {
    SmallKWeightTask& t = *(SmallKWeightTask*)c;
    const ConvShape& s = *t.s;
    const long K = s.Cin * s.kh * s.kw, L = s.oh * s.ow;
    float* col = t.cols + (long)tid * K * L;
    float* dw = t.partial + (long)tid * s.Cout * K;
    // dw [Cout, K] += y_n [Cout, L] . col_n^T, an image at a time, thread tid taking
    // images [tid N / nt, (tid + 1) N / nt): a fixed split, so that the partial sums,
    // added in thread order, round the same in every run.
    for (long img = s.N * tid / nt; img < s.N * (tid + 1) / nt; img++) {
      imageCols(t.x + img * s.Cin * s.H * s.W, s, col);
      gemmSerial(false, true, s.Cout, K, L, t.y + img * s.Cout * L, L, col, L, true, dw, K);
    }
  };
  if (nt > 1) parallel(nt, task, &t);
  else task(&t, 0, 1);
  for (long i = 0; i < n; i++) {
    float v = 0.f;
    for (int p = 0; p < nt; p++) v += partial[(long)p * n + i];
    out[i] = v;
  }
  free(partial);
  free(cols);
  return true;
}

#include "winograd.cpp"

// y (+)= conv(x, w) + bias; accumulate adds onto y (then bias must be null).
void convForwardImpl(const float* x, const float* w, const float* bias, const ConvShape& s, float* out, bool accumulate) {
  const long L = s.oh * s.ow, Og = s.Cout / s.groups, Cg = s.Cin / s.groups, K = Cg * s.kh * s.kw;
  const long HW = s.H * s.W;
  if (s.N * s.Cout * L == 0) return;
  if (winogradForward(x, w, bias, s, out, accumulate) || indirectForward(x, w, bias, s, out, accumulate) ||
      shiftedForward(x, w, bias, s, out, accumulate)) return;
  if (bias) {
    forRange(s.N * s.Cout, (double)s.N * s.Cout * L, [&](long lo, long hi) {
      for (long t = lo; t < hi; t++) {
        const float b = bias[t % s.Cout];
        float* o = out + t * L;
        for (long l = 0; l < L; l++) o[l] = b;
      }
    });
  }
  const bool direct = isDirect(s);
  for (long g = 0; g < s.groups; g++) {
    const Mat A = dense(w + g * Og * K, K);
    const Mat B = direct ? blocked(x + g * Cg * HW, HW, HW, s.Cin * HW) : im2colView(x + g * Cg * HW, s);
    const Out C = {out + g * Og * L, L, L, s.Cout * L};
    gemmV(false, false, Og, s.N * L, K, A, B, accumulate || bias != nullptr, C);
  }
}

// Stride-2 convolutions with even kernels (DCGAN's and the VAEs' k4 s2 p1) as stride-1
// convolutions over the input's four phase images (space-to-depth): with ki = 2u + a
// and kj = 2v + b, x[c, 2 oy + ki - ph, 2 ox + kj - pw] is z[(c, a, b), oy + u, ox + v]
// of the phase images z [N, 4 Cin, oh - 1 + kh/2, ow - 1 + kw/2] (zero outside x), so
// y = conv(z, w') with w'[o, (c, a, b), u, v] = w[o, c, 2u + a, 2v + b], a kh/2 x kw/2
// kernel with no padding, which takes the stride-1 paths above (Winograd with 16 or more
// phase channels and outputs; else, with AVX-512, the indirect GEMM: no packing of the
// input). 2 threads, batch 64, 64 -> 128 channels 14 -> 7: im2col 6.4 ms, indirect GEMM
// 5.7, Winograd F(2x2, 2x2) 4.8 (F(4x4, 2x2) later: 4.05 -> 3.2-3.5 in another hour's
// timings); 32 -> 64 2.0 -> 1.6 through the indirect GEMM.
// Through the indirect GEMM the same split made the data gradient slower (6.7 -> 7.4
// ms: the phase images' 8x8 gradients waste a quarter of the indirect tiles) and the
// weight gradient no faster; the gradients take it only where the 2x2 convolution goes
// through Winograd (phasedBackwardData / phasedBackwardWeight below), else im2col.
bool phaseable(const ConvShape& s) {
  return s.sh == 2 && s.sw == 2 && s.dh == 1 && s.dw == 1 && s.kh % 2 == 0 && s.kw % 2 == 0 && s.oh > 0 && s.ow > 0;
}

// The stride-1 convolution over the phase images of up to `chunk` images, and w' (null
// when w is or when out of memory; scratch slot 6).
struct Phases {
  ConvShape z;
  long chunk, zImage;
  float* wz;
};

Phases phasesOf(const ConvShape& s, const float* w) {
  Phases P;
  ConvShape& z = P.z;
  z = s;
  z.Cin = 4 * s.Cin;
  z.H = s.oh - 1 + s.kh / 2;
  z.W = s.ow - 1 + s.kw / 2;
  z.kh = s.kh / 2;
  z.kw = s.kw / 2;
  z.sh = z.sw = 1;
  z.ph = z.pw = 0;
  P.zImage = z.Cin * z.H * z.W;
  const long n = (1L << 21) / (P.zImage > 0 ? P.zImage : 1);
  P.chunk = n < 1 ? 1 : n > s.N ? s.N : n;
  z.N = P.chunk;
  const long Cg = s.Cin / s.groups, kk = s.kh * s.kw, zk = z.kh * z.kw;
  P.wz = w ? scratchBuffer(6, (size_t)s.Cout * 4 * Cg * zk) : nullptr;
  if (P.wz)
    forRange(s.Cout, 2.0 * s.Cout * Cg * kk, [&](long lo, long hi) {
      for (long o = lo; o < hi; o++)
        for (long c = 0; c < Cg; c++)
          for (long ki = 0; ki < s.kh; ki++)
            for (long kj = 0; kj < s.kw; kj++)
              P.wz[((o * Cg + c) * 4 + (ki & 1) * 2 + (kj & 1)) * zk + (ki >> 1) * z.kw + (kj >> 1)] =
                  w[(o * Cg + c) * kk + ki * s.kw + kj];
    });
  return P;
}

// Phase images z [n, 4 Cin, Hz, Wz] of images x [n, Cin, H, W].
void toPhases(const float* x, long n, const ConvShape& s, const ConvShape& z, float* dst) {
  forRange(n * s.Cin, (double)n * z.Cin * z.H * z.W, [&](long lo, long hi) {
    for (long t = lo; t < hi; t++) {
      const float* xc = x + t * s.H * s.W;
      for (long ab = 0; ab < 4; ab++) {
        const long a = ab >> 1, b = ab & 1;
        float* d = dst + (t * 4 + ab) * z.H * z.W;
        for (long i = 0; i < z.H; i++, d += z.W) {
          const long y = 2 * i + a - s.ph;
          if (y < 0 || y >= s.H) {
            memset(d, 0, z.W * sizeof(float));
            continue;
          }
          const float* xr = xc + y * s.W;
          for (long j = 0; j < z.W; j++) {
            const long q = 2 * j + b - s.pw;
            d[j] = q >= 0 && q < s.W ? xr[q] : 0.f;
          }
        }
      }
    }
  });
}

bool phasedForward(const float* x, const float* w, const float* bias, const ConvShape& s, float* out) {
  if (!phaseable(s)) return false;
  Phases P = phasesOf(s, w);
  float* zb = P.wz ? scratchBuffer(3, (size_t)P.chunk * P.zImage) : nullptr;
  if (!zb) return false;
  for (long n0 = 0; n0 < s.N; n0 += P.chunk) {
    const long nb = s.N - n0 < P.chunk ? s.N - n0 : P.chunk;
    toPhases(x + n0 * s.Cin * s.H * s.W, nb, s, P.z, zb);
    ConvShape z = P.z;
    z.N = nb;
    convForwardImpl(zb, P.wz, bias, z, out + n0 * s.Cout * s.oh * s.ow, false);
  }
  return true;
}

// The gradients of a stride-2 convolution through its phase images, where the 2x2
// convolution over them takes Winograd (F(2x2, 2x2): 9 products per 4 outputs instead of
// 16; with AVX-512's indirect GEMM instead, the data gradient had lost, see
// phaseable): the data gradient is the phase images' gradient (a stride-1 data
// gradient, its 8x8 grid exactly 2x2 tiles of 4x4 at 7x7 outputs) scattered back to the pixels
// it came from (each pixel is in one phase image: no sums), the weight gradient that of
// the 2x2 kernel over the phase images, its taps put back in place. 2 threads: dcgan's
// 64 -> 128 k4 s2 at 14x14, batch 64, data gradient 6.5-6.7 -> 5.3 ms, weight gradient
// 5.8 -> 5.4 (forward 6.0 -> 4.8 through the same F(2x2, 2x2)); conv-vae's 32 -> 64,
// batch 128, 4.4-4.6 -> 3.0-3.1 and 3.7-3.8 -> 3.1-3.2. dcgan 91 -> 80-83 ms a step,
// conv-vae 32-33 -> 26-28.
bool phasedWinograd(const ConvShape& s, const Phases& P) { return s.groups == 1 && winogradShape(P.z); }

// x [n, C, H, W] += the pixels of the phase images' gradient dz [n, 4 C, Hz, Wz].
void fromPhases(const float* dz, long n, const ConvShape& s, const ConvShape& z, float* x) {
  forRange(n * s.Cin, (double)n * z.Cin * z.H * z.W, [&](long lo, long hi) {
    for (long t = lo; t < hi; t++) {
      float* xc = x + t * s.H * s.W;
      for (long ab = 0; ab < 4; ab++) {
        const long a = ab >> 1, b = ab & 1;
        const float* d = dz + (t * 4 + ab) * z.H * z.W;
        for (long i = 0; i < z.H; i++, d += z.W) {
          const long y = 2 * i + a - s.ph;
          if (y < 0 || y >= s.H) continue;
          float* xr = xc + y * s.W;
          for (long j = 0; j < z.W; j++) {
            const long q = 2 * j + b - s.pw;
            if (q >= 0 && q < s.W) xr[q] += d[j];
          }
        }
      }
    }
  });
}

bool phasedBackwardData(const float* y, const float* w, const ConvShape& s, float* out) {
  // (The shape first: w' is only worth building when the phase images take Winograd.)
  if (!phaseable(s) || !phasedWinograd(s, phasesOf(s, nullptr))) return false;
  Phases P = phasesOf(s, w);
  float* dz = P.wz ? scratchBuffer(3, (size_t)P.chunk * P.zImage) : nullptr;
  if (!dz) return false;
  for (long n0 = 0; n0 < s.N; n0 += P.chunk) {
    const long nb = s.N - n0 < P.chunk ? s.N - n0 : P.chunk;
    ConvShape z = P.z;
    z.N = nb;
    convBackwardData(y + n0 * s.Cout * s.oh * s.ow, P.wz, z, dz, true);
    fromPhases(dz, nb, s, z, out + n0 * s.Cin * s.H * s.W);
  }
  return true;
}

bool phasedBackwardWeight(const float* x, const float* y, const ConvShape& s, float* out) {
  if (!phaseable(s)) return false;
  const Phases P = phasesOf(s, nullptr);
  const long zk = P.z.kh * P.z.kw, nw = s.Cout * P.z.Cin * zk;
  float* zb = phasedWinograd(s, P) ? scratchBuffer(3, (size_t)P.chunk * P.zImage) : nullptr;
  float* dwz = zb ? scratchBuffer(7, (size_t)2 * nw) : nullptr;
  if (!dwz) return false;
  float* part = dwz + nw;
  for (long n0 = 0; n0 < s.N; n0 += P.chunk) {
    const long nb = s.N - n0 < P.chunk ? s.N - n0 : P.chunk;
    ConvShape z = P.z;
    z.N = nb;
    toPhases(x + n0 * s.Cin * s.H * s.W, nb, s, z, zb);
    convBackwardWeight(zb, y + n0 * s.Cout * s.oh * s.ow, z, n0 == 0 ? dwz : part);
    if (n0 > 0)
      for (long i = 0; i < nw; i++) dwz[i] += part[i];
  }
  // w[o, c, 2u + a, 2v + b] = w'[o, (c, a, b), u, v], as phasesOf.
  const long kk = s.kh * s.kw;
  forRange(s.Cout, 2.0 * s.Cout * s.Cin * kk, [&](long lo, long hi) {
    for (long o = lo; o < hi; o++)
      for (long c = 0; c < s.Cin; c++)
        for (long ki = 0; ki < s.kh; ki++)
          for (long kj = 0; kj < s.kw; kj++)
            out[(o * s.Cin + c) * kk + ki * s.kw + kj] =
                dwz[((o * s.Cin + c) * 4 + (ki & 1) * 2 + (kj & 1)) * zk + (ki >> 1) * P.z.kw + (kj >> 1)];
  });
  return true;
}

}  // namespace

void convForward(const float* x, const float* w, const float* bias, const ConvShape& s, float* out) {
  if (!phasedForward(x, w, bias, s, out)) convForwardImpl(x, w, bias, s, out, false);
}

namespace {
// p[0..n) = 0, on the pool from ~1 MB.
void zeroFloats(float* p, long n) {
  constexpr long CH = 1L << 16;
  forRange((n + CH - 1) / CH, (double)n, [&](long lo, long hi) {
    const long e = hi * CH < n ? hi * CH : n;
    memset(p + lo * CH, 0, (size_t)(e - lo * CH) * sizeof(float));
  });
}
}  // namespace

void convBackwardData(const float* y, const float* w, const ConvShape& s, float* out, bool overwrite) {
  const long L = s.oh * s.ow, Og = s.Cout / s.groups, Cg = s.Cin / s.groups, K = Cg * s.kh * s.kw;
  const long HW = s.H * s.W, CK = s.Cin * s.kh * s.kw;
  if (s.N * s.Cin * HW == 0) return;
  const bool flip = s.sh == 1 && s.sw == 1 && !isDirect(s) && s.dh * (s.kh - 1) >= s.ph && s.dw * (s.kw - 1) >= s.pw &&
                    s.H == s.oh + s.dh * (s.kh - 1) - 2 * s.ph && s.W == s.ow + s.dw * (s.kw - 1) - 2 * s.pw;
  // Overwriting: the flipped-kernel forward and the 1x1 product write every element;
  // the other paths add into out (the phase images' scatter, col2im), so it starts at 0.
  if (overwrite && (L == 0 || Og == 0 || (!flip && !isDirect(s)))) zeroFloats(out, s.N * s.Cin * HW);
  if (L == 0 || Og == 0) return;
  if (phasedBackwardData(y, w, s, out)) return;
  if (flip) {
    // Stride 1: the data gradient is itself a convolution, of y with the spatially
    // flipped kernel (channels swapped per group) and padding d (k - 1) - p: one
    // implicit GEMM over K = Cout/groups * kh * kw, with no column buffer or col2im.
    const long khw = s.kh * s.kw;
    float* wf = scratchBuffer(8, (size_t)s.Cout * K);
    if (wf) {
      forRange(s.groups * Og, 2.0 * s.Cout * K, [&](long lo, long hi) {
        for (long go = lo; go < hi; go++) {
          const long g = go / Og, o = go % Og;
          for (long c = 0; c < Cg; c++)
            for (long t = 0; t < khw; t++)
              wf[((g * Cg + c) * Og + o) * khw + (khw - 1 - t)] = w[((g * Og + o) * Cg + c) * khw + t];
        }
      });
      ConvShape f = s;
      f.Cin = s.Cout;
      f.H = s.oh;
      f.W = s.ow;
      f.Cout = s.Cin;
      f.oh = s.H;
      f.ow = s.W;
      f.ph = s.dh * (s.kh - 1) - s.ph;
      f.pw = s.dw * (s.kw - 1) - s.pw;
      convForwardImpl(y, wf, nullptr, f, out, !overwrite);
      return;
    }
    if (overwrite) zeroFloats(out, s.N * s.Cin * HW);  // (no buffer: col2im below adds)
  }
  if (isDirect(s)) {
    for (long g = 0; g < s.groups; g++) {
      const Out C = {out + g * Cg * HW, HW, HW, s.Cin * HW};
      gemmV(true, false, K, s.N * L, Og, dense(w + g * Og * K, K), blocked(y + g * Og * L, L, L, s.Cout * L), !overwrite, C);
    }
    return;
  }
  // Images per chunk: at least 2048 columns when the buffer allows, else up to 8 MB of columns.
  const long per = CK * L;
  long m = (1L << 21) / per;
  const long wide = (2048 + L - 1) / L;
  if (m < wide) m = wide * per <= (1L << 23) ? wide : (1L << 23) / per;
  if (m < 1) m = 1;
  if (m > s.N) m = s.N;
  float* cols = scratchBuffer(0, (size_t)m * per);
  if (!cols) return;
  for (long n0 = 0; n0 < s.N; n0 += m) {
    const long mb = s.N - n0 < m ? s.N - n0 : m;
    const long mL = mb * L;
    // Columns image by image, [mb, Cin*kh*kw, L]: col2im then reads each image's rows
    // from one contiguous block instead of Cin*kh*kw rows mb*L floats apart.
    for (long g = 0; g < s.groups; g++) {
      const Out C = {cols + g * K * L, L, L, CK * L};
      gemmV(true, false, K, mL, Og, dense(w + g * Og * K, K), blocked(y + n0 * s.Cout * L + g * Og * L, L, L, s.Cout * L),
            false, C);
    }
    col2imBatch(cols, L, CK * L, mb, s, out + n0 * s.Cin * HW);
  }
}

namespace {
// dw [groups, Og, K] from the transposed gradients t [groups, K, Og] the GEMMs produce.
void untransposeWeights(const float* t, long groups, long Og, long K, float* dw) {
  for (long g = 0; g < groups; g++)
    for (long r = 0; r < Og; r++)
      for (long k = 0; k < K; k++) dw[(g * Og + r) * K + k] = t[(g * K + k) * Og + r];
}

// The weight gradient of a shiftable convolution: dw^T [K, Og] = shifted(x) [K, N*Le] .
// y_w^T, with y widened to [N, Cout, oh, Wp] by zero columns (they meet the widened grid's
// thrown-away positions), so im2col's rows are again contiguous runs. False as
// shiftedForward.
bool shiftedWeight(const float* x, const float* y, const ConvShape& s, float* out) {
  // (With a handful of im2col rows, e.g. one input channel, widening y costs more than it saves.)
  if (!shiftable(s) || s.Cin / s.groups * s.kh * s.kw < 32) return false;
  const Shift h = shiftOf(s);
  const long Wp = h.Wp, HpWp = h.HpWp, L = h.L, Le = h.Le, Og = h.Og, Cg = h.Cg, K = h.K, chunk = h.chunk;
  float *pad = h.pad, *yw = h.ext;
  // A few outputs (a U-Net's last layer, 32 -> 1): dot products of each shifted input
  // row with y's widened rows (dotRows), input channels split over the threads, rather
  // than a GEMM whose register tiles would hold 1 of 64 columns (32 -> 1 at 28x28, batch
  // 32: 2.2 ms, 7 GFLOPS).
  const bool thin = s.groups == 1 && s.Cout <= THIN;
  float* t = pad && yw && !thin ? alignedFloats((size_t)s.groups * K * Og) : nullptr;
  if (!pad || !yw || (!thin && !t)) return false;
  if (thin) memset(out, 0, (size_t)s.Cout * K * sizeof(float));
  for (long n0 = 0; n0 < s.N; n0 += chunk) {
    const long nb = s.N - n0 < chunk ? s.N - n0 : chunk;
    padImages(x + n0 * s.Cin * s.H * s.W, nb, s.Cin, s, pad);
    forRange(nb * s.Cout, (double)nb * s.Cout * Le, [&](long lo, long hi) {
      for (long i = lo; i < hi; i++) {
        float* d = yw + i * Le;
        const float* src = y + (n0 * s.Cout + i) * L;
        for (long r = 0; r < s.oh; r++) {
          memcpy(d + r * Wp, src + r * s.ow, s.ow * sizeof(float));
          for (long q = s.ow; q < Wp; q++) d[r * Wp + q] = 0.f;
        }
      }
    });
    if (thin) {
      // dw[o, (c, i, j)] += sum over the widened grid of y_w[n, o] and image n's channel c
      // shifted by (i, j): each output written by one thread, summed in image order.
      forRange(s.Cin, 2.0 * nb * s.Cin * s.kh * s.kw * s.Cout * Le, [&](long lo, long hi) {
        for (long c = lo; c < hi; c++)
          for (long i = 0; i < nb; i++)
            for (long ki = 0; ki < s.kh; ki++)
              for (long kj = 0; kj < s.kw; kj++) {
                const float* row = pad + (i * s.Cin + c) * HpWp + ki * Wp + kj;  // (undilated: shiftable)
                dotRows(row, 0, 0, 1, yw + i * s.Cout * Le, Le, (int)s.Cout, Le,
                        out + (c * s.kh + ki) * s.kw + kj, 0, K, true);
              }
      });
      continue;
    }
    for (long g = 0; g < s.groups; g++) {
      const Mat A = shiftedView(pad + g * Cg * HpWp, Wp, s.Cin * HpWp, s);
      const Mat B = blocked(yw + g * Og * Le, Le, Le, s.Cout * Le);
      gemmV(false, true, K, Og, nb * Le, A, B, n0 > 0, {t + g * K * Og, Og, 0, 0});
    }
  }
  if (thin) return true;
  untransposeWeights(t, s.groups, Og, K, out);
  free(t);
  return true;
}
}  // namespace

void convBackwardWeight(const float* x, const float* y, const ConvShape& s, float* out) {
  const long L = s.oh * s.ow, Og = s.Cout / s.groups, Cg = s.Cin / s.groups, K = Cg * s.kh * s.kw;
  const long HW = s.H * s.W;
  if (Og * K == 0) return;
  if (smallKWeight(x, y, s, out) || phasedBackwardWeight(x, y, s, out) || winogradWeight(x, y, s, out) ||
      shiftedWeight(x, y, s, out))
    return;
  const bool direct = isDirect(s);
  // dw^T [K, Og] = im2col(x) [K, N*L] . y^T: the large im2col operand is the one whose
  // rows are copied as they are (packAV), and the few rows of y are packed transposed.
  float* t = alignedFloats((size_t)K * Og);
  if (!t) return;
  for (long g = 0; g < s.groups; g++) {
    const Mat A = direct ? blocked(x + g * Cg * HW, HW, HW, s.Cin * HW) : im2colView(x + g * Cg * HW, s);
    const Mat B = blocked(y + g * Og * L, L, L, s.Cout * L);
    gemmV(false, true, K, Og, s.N * L, A, B, false, {t, Og, 0, 0});
    untransposeWeights(t, 1, Og, K, out + g * Og * K);
  }
  free(t);
}

}  // namespace gl
#endif
