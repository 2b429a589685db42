// Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions (Lavin & Gray 2016, "Fast
// Algorithms for Convolutional Neural Networks", arXiv:1509.09308), included by conv.cpp
// inside its anonymous namespace (namespace gl). Each 2x2 block of outputs ("tile") of an output channel is
// A^T [sum_c (G g_oc G^T) . (B^T d_c B)] A, with d_c the 4x4 input patch under the
// tile and "." the elementwise product: 16 multiplications per 4 outputs and input
// channel instead of 36, as 16 independent GEMMs U[xi] [Cout, Cin] . V[xi] [Cin, tiles].
// The tiles are taken a block of whole tile rows at a time (about 64-256 tiles, so that
// a block's transformed inputs and products stay in L2), each thread transforming,
// multiplying and transforming back its own blocks: nothing of a batch-sized transform
// goes through memory. (A first attempt in the fourth session transformed the whole
// batch in memory passes and lost to the implicit GEMM.)
// The weight gradient is the same algebra transposed: dU[xi] [Cout, Cin] = sum over
// tiles of dM[xi] [Cout, tiles] . V[xi]^T, dM = A dy_tile A^T, then dw = G^T dU G.
// A 3x3, stride-1, undilated convolution of one group with at least 16 channels on
// each side (fewer leave the 16 GEMMs too thin to pay for the transforms).
bool winogradShape(const ConvShape& s) {
  return s.groups == 1 && s.kh == 3 && s.kw == 3 && paddedStride1(s) && s.Cin >= 16 && s.Cout >= 16 &&
         s.oh >= 2 && s.ow >= 2;
}

// Tile geometry and block size of one call.
struct WinoPlan {
  long th, tw;  // tiles per image column and row: ceil(oh / 2), ceil(ow / 2)
  long Hq, Wq;  // the padded images' size, 2 th + 2 by 2 tw + 2 (every tile's 4x4 patch inside)
  long rows;    // tile rows in all: N * th
  long R;       // tile rows per block
  long P;       // rows of a block's matrices: R * tw tiles rounded up to a multiple of 6
  long blocks;
  // The 16 matrices of a block lie vs = P Cin + 16, ms = P Cout + 16 floats apart: at
  // multiples of 4 KB the 16 rows a tile's transform reads or writes would share L1 sets.
  long vs, ms;
};

WinoPlan winoPlan(const ConvShape& s) {
  WinoPlan p;
  p.th = (s.oh + 1) / 2;
  p.tw = (s.ow + 1) / 2;
  p.Hq = 2 * p.th + 2;
  p.Wq = 2 * p.tw + 2;
  p.rows = s.N * p.th;
  // A block's V [16, P, Cin] and M [16, P, Cout] within ~1 MB, and P at most the
  // GEMM's row block (its operands are then read in place, nothing packed).
  long target = 16384 / (s.Cin + s.Cout);
  target = target < 32 ? 32 : target > 144 ? 144 : target;
  p.R = target / p.tw < 1 ? 1 : target / p.tw;
  if (p.R > p.rows) p.R = p.rows;
  p.P = (p.R * p.tw + 5) / 6 * 6;  // whole 6-row panels for the GEMMs (rows past the tiles are zero)
  p.blocks = (p.rows + p.R - 1) / p.R;
  p.vs = p.P * s.Cin + 16;
  p.ms = p.P * s.Cout + 16;
  return p;
}

// UT [16, C, O] = G g G^T for every 3x3 kernel g = w[o, c], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
void winoWeights(const float* w, long O, long C, float* UT) {
  const long CO = C * O;
  for (long o = 0; o < O; o++)
    for (long c = 0; c < C; c++) {
      const float* g = w + (o * C + c) * 9;
      float t[4][3];  // G g
      for (long j = 0; j < 3; j++) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
      }
      float* u = UT + c * O + o;
      for (long i = 0; i < 4; i++) {
        u[(i * 4 + 0) * CO] = t[i][0];
        u[(i * 4 + 1) * CO] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[(i * 4 + 2) * CO] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[(i * 4 + 3) * CO] = t[i][2];
      }
    }
}

// 16 floats as one value (GCC vector extension: one AVX-512 register, two AVX2 ones or
// four SSE ones in the clones), loaded and stored at any alignment through ld / st.
typedef float F16 __attribute__((vector_size(64)));
template <class T>
__attribute__((always_inline)) inline T ld(const float* p) {
  T v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
__attribute__((always_inline)) inline void st(float* p, T v) {
  __builtin_memcpy(p, &v, sizeof v);
}

typedef int I16 __attribute__((vector_size(64)));

// r[i][j] <- r[j][i] for a 16x16 block held as 16 rows: four rounds that swap the
// off-diagonal d x d blocks (d = 8, 4, 2, 1), two two-source shuffles per row pair.
__attribute__((always_inline)) inline void transpose16(F16* r) {
  static const I16 lo[4] = {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
                            {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
                            {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
                            {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}};
  static const I16 hi[4] = {{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
                            {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},
                            {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},
                            {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}};
#pragma GCC unroll 4
  for (int s = 0; s < 4; s++)
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
      if (!(i & (8 >> s))) {
        const int d = 8 >> s;
        const F16 a = r[i], b = r[i + d];
        r[i] = __builtin_shuffle(a, b, lo[s]);
        r[i + d] = __builtin_shuffle(a, b, hi[s]);
      }
}

// Images x [n, C, H, W] zero-padded into channel-last dst [n, Hq, Wq, C], the image at
// (top, left): each tile's patch is then 16 runs of C floats.
struct ChannelLast {
  long C, H, W, top, left, Hq, Wq;
};

GL_CLONES void toChannelLast(const float* GL_RESTRICT x, long n0, long n1, const ChannelLast& g, float* GL_RESTRICT dst) {
  const long C = g.C, HW = g.H * g.W, rowLen = g.Wq * C;
  for (long n = n0; n < n1; n++) {
    float* d = dst + n * g.Hq * rowLen;
    const float* xn = x + n * C * HW;
    // The border: rows above and below the image, columns left and right of it.
    for (long y = 0; y < g.Hq; y++) {
      float* dr = d + y * rowLen;
      if (y < g.top || y >= g.top + g.H) {
        for (long q = 0; q < rowLen; q++) dr[q] = 0.f;
        continue;
      }
      for (long q = 0; q < g.left * C; q++) dr[q] = 0.f;
      for (long q = (g.left + g.W) * C; q < rowLen; q++) dr[q] = 0.f;
    }
    // Pixel q of the image goes to row q / W + top, column q % W + left: 16 pixels by 16
    // channels at a time through a register transpose, the rest one float at a time.
    const auto at = [&](long q) { return d + ((q / g.W + g.top) * g.Wq + q % g.W + g.left) * C; };
    long c = 0;
    for (; c + 16 <= C; c += 16) {
      long q = 0;
      for (; q + 16 <= HW; q += 16) {
        F16 r[16];
        #pragma GCC unroll 16
        for (int j = 0; j < 16; j++) r[j] = ld<F16>(xn + (c + j) * HW + q);
        transpose16(r);
        #pragma GCC unroll 16
        for (int i = 0; i < 16; i++) st<F16>(at(q + i) + c, r[i]);
      }
      for (; q < HW; q++) {
        float* dp = at(q) + c;
        for (long j = 0; j < 16; j++) dp[j] = xn[(c + j) * HW + q];
      }
    }
    for (; c < C; c++)
      for (long q = 0; q < HW; q++) at(q)[c] = xn[c * HW + q];
  }
}

// The padded channel-last copy of a convolution's input that the tiles read.
ChannelLast inputLayout(const ConvShape& s, const WinoPlan& p) { return {s.Cin, s.H, s.W, s.ph, s.pw, p.Hq, p.Wq}; }

// B^T d B for 4x4 patches d given as rows d + i ldd, columns j step apart, into 16 outputs
// vs apart; T = F16 (16 channels at a time) or float.
template <class T>
__attribute__((always_inline)) inline void inputTile(const float* d, long step, long ldd, float* v, long vs) {
  T u[4][4];
  for (long j = 0; j < 4; j++) {
    const T a = ld<T>(d + j * step), b = ld<T>(d + ldd + j * step), e = ld<T>(d + 2 * ldd + j * step),
            f = ld<T>(d + 3 * ldd + j * step);
    u[0][j] = a - e;
    u[1][j] = b + e;
    u[2][j] = e - b;
    u[3][j] = b - f;
  }
  for (long i = 0; i < 4; i++) {
    st<T>(v + (i * 4 + 0) * vs, u[i][0] - u[i][2]);
    st<T>(v + (i * 4 + 1) * vs, u[i][1] + u[i][2]);
    st<T>(v + (i * 4 + 2) * vs, u[i][2] - u[i][1]);
    st<T>(v + (i * 4 + 3) * vs, u[i][1] - u[i][3]);
  }
}

// V [16, P, C] (matrices vs apart), row p = (r - r0) tw + tx: B^T d B of the patch d of
// tile (r, tx) of the padded channel-last images xq, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0;
// 0 1 0 -1], for the tile rows [r0, r1) (row r = (n, ty)). Rows past the last tile are zeroed.
GL_CLONES void winoInput(const float* GL_RESTRICT xq, long C, const WinoPlan& p, long r0, long r1,
                         float* GL_RESTRICT V) {
  const long vs = p.vs, rowLen = p.Wq * C;
  for (long r = r0; r < r1; r++) {
    const long n = r / p.th, ty = r % p.th;
    for (long tx = 0; tx < p.tw; tx++) {
      const float* d = xq + ((n * p.Hq + 2 * ty) * p.Wq + 2 * tx) * C;
      float* v = V + ((r - r0) * p.tw + tx) * C;
      long c = 0;
      for (; c + 16 <= C; c += 16) inputTile<F16>(d + c, C, rowLen, v + c, vs);
      for (; c < C; c++) inputTile<float>(d + c, C, rowLen, v + c, vs);
    }
  }
  for (long xi = 0; xi < 16; xi++)
    for (long q = (r1 - r0) * p.tw * C; q < p.P * C; q++) V[xi * vs + q] = 0.f;
}

// A^T m A of the 16 values m + xi ms into the 2x2 outputs y0, y0 + step (row 0), y1, y1 + step.
template <class T>
__attribute__((always_inline)) inline void outputTile(const float* m, long ms, float* y0, float* y1, long step) {
  T s0[4], s1[4];
  for (long j = 0; j < 4; j++) {
    const T m0 = ld<T>(m + j * ms), m1 = ld<T>(m + (4 + j) * ms), m2 = ld<T>(m + (8 + j) * ms),
            m3 = ld<T>(m + (12 + j) * ms);
    s0[j] = m0 + m1 + m2;
    s1[j] = m1 - m2 - m3;
  }
  st<T>(y0, s0[0] + s0[1] + s0[2]);
  st<T>(y0 + step, s0[1] - s0[2] - s0[3]);
  st<T>(y1, s1[0] + s1[1] + s1[2]);
  st<T>(y1 + step, s1[1] - s1[2] - s1[3]);
}

// A^T m A for every tile of M [16, P, O] (matrices ms apart), A^T = [1 1 1 0; 0 1 -1 -1],
// into channel-last rows Y [R, 2, 2 tw, O] (tile p = (r, tx) at rows (r, 0..1), columns
// 2 tx..2 tx + 1).
GL_CLONES void winoOutput(const float* GL_RESTRICT M, long O, const WinoPlan& p, long tiles, float* GL_RESTRICT Y) {
  const long rowLen = 2 * p.tw * O;
  for (long t = 0; t < tiles; t++) {
    const long r = t / p.tw, tx = t % p.tw;
    const float* m = M + t * O;
    float* y0 = Y + (2 * r * 2 * p.tw + 2 * tx) * O;
    float* y1 = y0 + rowLen;
    long o = 0;
    for (; o + 16 <= O; o += 16) outputTile<F16>(m + o, p.ms, y0 + o, y1 + o, O);
    for (; o < O; o++) outputTile<float>(m + o, p.ms, y0 + o, y1 + o, O);
  }
}

// out (+)= the channel-last rows Y [R, 2, 2 tw, O] of tile rows [r0, r1) in NCHW, + bias
// when not accumulating; rows and columns past oh, ow are dropped. The block's output
// rows of image n are one run of its planes, whose pixel q = (oy, ox) is at Y row
// 2 (n th - r0) + oy: 16 pixels by 16 channels at a time through a register transpose.
GL_CLONES void winoStore(const float* GL_RESTRICT Y, const ConvShape& s, const WinoPlan& p, long r0, long r1,
                         const float* GL_RESTRICT bias, bool accumulate, float* GL_RESTRICT out) {
  const long O = s.Cout, L = s.oh * s.ow, yRow = 2 * p.tw;
  for (long n = r0 / p.th; n * p.th < r1; n++) {
    const long t0 = n * p.th > r0 ? 0 : r0 - n * p.th, t1 = (n + 1) * p.th < r1 ? p.th : r1 - n * p.th;
    const long q0 = 2 * t0 * s.ow, q1 = (2 * t1 < s.oh ? 2 * t1 : s.oh) * s.ow;
    const long row0 = 2 * (n * p.th - r0);  // Y row of the image's output row 0 (rows < 2 t0 are not read)
    float* on = out + n * O * L;
    const auto at = [&](long q) { return Y + ((row0 + q / s.ow) * yRow + q % s.ow) * O; };
    const auto put = [&](float* dst, float v, long o) { *dst = accumulate ? *dst + v : v + (bias ? bias[o] : 0.f); };
    long o = 0;
    for (; o + 16 <= O; o += 16) {
      long q = q0;
      for (; q + 16 <= q1; q += 16) {
        F16 r[16];
        #pragma GCC unroll 16
        for (int i = 0; i < 16; i++) r[i] = ld<F16>(at(q + i) + o);
        transpose16(r);
        #pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
          float* dst = on + (o + j) * L + q;
          if (accumulate) st<F16>(dst, ld<F16>(dst) + r[j]);
          else st<F16>(dst, r[j] + (bias ? bias[o + j] : 0.f));
        }
      }
      for (; q < q1; q++)
        for (long j = 0; j < 16; j++) put(on + (o + j) * L + q, at(q)[o + j], o + j);
    }
    for (; o < O; o++)
      for (long q = q0; q < q1; q++) put(on + o * L + q, at(q)[o], o);
  }
}

// Runs f(tid, block) for every block on the pool, blocks taken from a shared counter.
template <class F>
void forBlocks(long blocks, double cost, F f) {
  int nt = numThreads();
  if (cost < 2e5 || blocks < 2) nt = 1;
  if (nt > blocks) nt = (int)blocks;
  struct Ctx {
    F* f;
    long n, next;
  } ctx = {&f, blocks, 0};
  auto task = [](void* c, int tid, int) {
    Ctx& x = *(Ctx*)c;
    for (;;) {
      const long b = __atomic_fetch_add(&x.next, 1, __ATOMIC_RELAXED);
      if (b >= x.n) break;
      (*x.f)(tid, b);
    }
  };
  if (nt > 1) parallel(nt, task, &ctx);
  else task(&ctx, 0, 1);
}

bool winogradForward(const float* x, const float* w, const float* bias, const ConvShape& s, float* out,
                     bool accumulate) {
  if (!winogradShape(s)) return false;
  const WinoPlan p = winoPlan(s);
  const long C = s.Cin, O = s.Cout, P = p.P;
  const int nt = numThreads();
  // Per thread: V [16, P, C], M [16, P, O] and the output rows Y [R, 2, 2 tw, O].
  const long per = 16 * (p.vs + p.ms) + 4 * P * O;
  float* UT = alignedFloats((size_t)16 * C * O);
  float* xq = scratchBuffer(1, (size_t)s.N * p.Hq * p.Wq * C);
  float* scratch = scratchBuffer(4, (size_t)nt * per);
  if (!UT || !xq || !scratch) {
    free(UT);
    return false;
  }
  winoWeights(w, O, C, UT);
  const ChannelLast lx = inputLayout(s, p);
  forRange(s.N, (double)s.N * p.Hq * p.Wq * C, [&](long lo, long hi) { toChannelLast(x, lo, hi, lx, xq); });
  forBlocks(p.blocks, 32.0 * O * C * p.rows * p.tw, [&](int tid, long b) {
    float* V = scratch + tid * per;
    float* M = V + 16 * p.vs;
    float* Y = M + 16 * p.ms;
    const long r0 = b * p.R, r1 = r0 + p.R < p.rows ? r0 + p.R : p.rows;
    winoInput(xq, C, p, r0, r1, V);
    for (long xi = 0; xi < 16; xi++)
      gemmSerial(false, false, P, O, C, V + xi * p.vs, C, UT + xi * C * O, O, false, M + xi * p.ms, O);
    winoOutput(M, O, p, (r1 - r0) * p.tw, Y);
    winoStore(Y, s, p, r0, r1, bias, accumulate, out);
  });
  free(UT);
  return true;
}

// A dy A^T of a 2x2 output gradient (rows y0, y0 + step and y1, y1 + step) into 16
// values m + xi ms, A^T = [1 1 1 0; 0 1 -1 -1].
template <class T>
__attribute__((always_inline)) inline void gradTile(const float* y0, const float* y1, long step, float* m, long ms) {
  const T a = ld<T>(y0), b = ld<T>(y0 + step), c = ld<T>(y1), d = ld<T>(y1 + step);
  // u = A dy: rows a b | a+c b+d | a-c b-d | -c -d; then u A^T per row.
  const T u[4][2] = {{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}};
  for (long i = 0; i < 4; i++) {
    st<T>(m + (i * 4 + 0) * ms, u[i][0]);
    st<T>(m + (i * 4 + 1) * ms, u[i][0] + u[i][1]);
    st<T>(m + (i * 4 + 2) * ms, u[i][0] - u[i][1]);
    st<T>(m + (i * 4 + 3) * ms, -u[i][1]);
  }
}

// dM [16, P, O] (matrices ms apart): A dy A^T for the tiles of tile rows [r0, r1) of the
// channel-last output gradients yq [N, 2 th, 2 tw, O]; rows past the last tile zeroed.
GL_CLONES void winoGrad(const float* GL_RESTRICT yq, long O, const WinoPlan& p, long r0, long r1, float* GL_RESTRICT dM) {
  const long rowLen = 2 * p.tw * O;
  for (long r = r0; r < r1; r++) {
    const long n = r / p.th, ty = r % p.th;
    for (long tx = 0; tx < p.tw; tx++) {
      const float* y0 = yq + ((n * 2 * p.th + 2 * ty) * 2 * p.tw + 2 * tx) * O;
      float* m = dM + ((r - r0) * p.tw + tx) * O;
      long o = 0;
      for (; o + 16 <= O; o += 16) gradTile<F16>(y0 + o, y0 + rowLen + o, O, m + o, p.ms);
      for (; o < O; o++) gradTile<float>(y0 + o, y0 + rowLen + o, O, m + o, p.ms);
    }
  }
  for (long xi = 0; xi < 16; xi++)
    for (long q = (r1 - r0) * p.tw * O; q < p.P * O; q++) dM[xi * p.ms + q] = 0.f;
}

// dw [O, C, 3, 3] = G^T dU G from dU [16, O, C] (the sum of nt partials dUs apart).
void winoWeightGrad(const float* dU, long parts, long dUs, long O, long C, float* dw) {
  const long OC = O * C;
  for (long oc = 0; oc < OC; oc++) {
    float d[4][4];
    for (long xi = 0; xi < 16; xi++) {
      float v = 0.f;
      for (long t = 0; t < parts; t++) v += dU[t * dUs + xi * OC + oc];
      d[xi / 4][xi % 4] = v;
    }
    float t[3][4];  // G^T d, G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]
    for (long j = 0; j < 4; j++) {
      t[0][j] = d[0][j] + 0.5f * (d[1][j] + d[2][j]);
      t[1][j] = 0.5f * (d[1][j] - d[2][j]);
      t[2][j] = 0.5f * (d[1][j] + d[2][j]) + d[3][j];
    }
    float* g = dw + oc * 9;
    for (long i = 0; i < 3; i++) {
      g[i * 3 + 0] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
      g[i * 3 + 1] = 0.5f * (t[i][1] - t[i][2]);
      g[i * 3 + 2] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
    }
  }
}

#if defined(__x86_64__)
// c [MR, 16 NV] += a^T b over k < kc, with a [kc, MR] rows lda apart (k-major: the
// transposed operand read in place) and b [kc, 16 NV] rows ldb apart; the last vector
// of each row masked to `last` columns. The weight gradient's dM^T V without packing dM
// transposed (which took a quarter of a 32-channel weight gradient).
template <int NV, int MR>
__attribute__((target("avx512f,fma"))) void ukrTA(long kc, const float* GL_RESTRICT a, long lda,
                                                  const float* GL_RESTRICT b, long ldb, float* GL_RESTRICT c, long ldc,
                                                  __mmask16 last) {
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  // (Columns past `last` are read, at most 15 floats past a row, but never stored: the
  // caller's b has that much slack after its last row.)
#pragma GCC unroll 4
  for (long k = 0; k < kc; k++) {
    __m512 bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + k * ldb + v * 16);
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(a[k * lda + r]);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) {
      float* p = c + r * ldc + v * 16;
      const __mmask16 m = v == NV - 1 ? last : (__mmask16)0xFFFF;
      _mm512_mask_storeu_ps(p, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), acc[r][v]));
    }
}

template <int MR>
__attribute__((target("avx512f,fma"))) void ukrTARows(int nv, long kc, const float* a, long lda, const float* b,
                                                      long ldb, float* c, long ldc, __mmask16 last) {
  switch (nv) {
    case 1: ukrTA<1, MR>(kc, a, lda, b, ldb, c, ldc, last); break;
    case 2: ukrTA<2, MR>(kc, a, lda, b, ldb, c, ldc, last); break;
    case 3: ukrTA<3, MR>(kc, a, lda, b, ldb, c, ldc, last); break;
    default: ukrTA<4, MR>(kc, a, lda, b, ldb, c, ldc, last); break;
  }
}

// C [M, N] (ldc) += A^T B with A [K, M] (lda) and B [K, N] (ldb), 6 rows by 64 columns a
// tile; false when this CPU has no AVX-512 (gemmSerial then packs A^T).
bool gemmTA(long M, long N, long K, const float* A, long lda, const float* B, long ldb, float* C, long ldc) {
  if (pickKernel().ukr != ukr512) return false;
  for (long i = 0; i < M; i += 6)
    for (long j = 0; j < N; j += 64) {
      const long m = M - i < 6 ? M - i : 6, n = N - j < 64 ? N - j : 64;
      const int nv = (int)((n + 15) / 16);
      const __mmask16 last = (__mmask16)(n % 16 ? (1u << (n % 16)) - 1 : 0xFFFF);
      const float *a = A + i, *b = B + j;
      float* c = C + i * ldc + j;
      switch (m) {
        case 1: ukrTARows<1>(nv, K, a, lda, b, ldb, c, ldc, last); break;
        case 2: ukrTARows<2>(nv, K, a, lda, b, ldb, c, ldc, last); break;
        case 3: ukrTARows<3>(nv, K, a, lda, b, ldb, c, ldc, last); break;
        case 4: ukrTARows<4>(nv, K, a, lda, b, ldb, c, ldc, last); break;
        case 5: ukrTARows<5>(nv, K, a, lda, b, ldb, c, ldc, last); break;
        default: ukrTARows<6>(nv, K, a, lda, b, ldb, c, ldc, last); break;
      }
    }
  return true;
}
#else
bool gemmTA(long, long, long, const float*, long, const float*, long, float*, long) { return false; }
#endif

// dw = the weight gradient of the convolution (overwritten): per block, dU[xi] [O, C] +=
// dM[xi]^T V[xi] into the thread's own partial sums.
bool winogradWeight(const float* x, const float* y, const ConvShape& s, float* dw) {
  if (!winogradShape(s)) return false;
  const WinoPlan p = winoPlan(s);
  const long C = s.Cin, O = s.Cout, P = p.P, OC = O * C;
  int nt = numThreads();
  if (nt > p.blocks) nt = (int)p.blocks;
  // Per thread: V [16, P, C], dM [16, P, O] and the partial dU [16, O, C].
  const long per = 16 * (p.vs + p.ms) + 16 * OC;
  float* xq = scratchBuffer(1, (size_t)s.N * p.Hq * p.Wq * C);
  float* yq = scratchBuffer(2, (size_t)s.N * 4 * p.th * p.tw * O);
  float* scratch = scratchBuffer(4, (size_t)nt * per);
  if (!xq || !yq || !scratch) return false;
  const ChannelLast lx = inputLayout(s, p), ly = {O, s.oh, s.ow, 0, 0, 2 * p.th, 2 * p.tw};
  forRange(s.N, (double)s.N * p.Hq * p.Wq * (C + O), [&](long lo, long hi) {
    toChannelLast(x, lo, hi, lx, xq);
    toChannelLast(y, lo, hi, ly, yq);
  });
  for (int t = 0; t < nt; t++) memset(scratch + t * per + 16 * (p.vs + p.ms), 0, 16 * OC * sizeof(float));
  forBlocks(p.blocks, 32.0 * O * C * p.rows * p.tw, [&](int tid, long b) {
    float* V = scratch + tid * per;
    float* dM = V + 16 * p.vs;
    float* dU = dM + 16 * p.ms;
    const long r0 = b * p.R, r1 = r0 + p.R < p.rows ? r0 + p.R : p.rows;
    winoInput(xq, C, p, r0, r1, V);
    winoGrad(yq, O, p, r0, r1, dM);
    for (long xi = 0; xi < 16; xi++)
      if (!gemmTA(O, C, P, dM + xi * p.ms, O, V + xi * p.vs, C, dU + xi * OC, C))
        gemmSerial(true, false, O, C, P, dM + xi * p.ms, O, V + xi * p.vs, C, true, dU + xi * OC, C);
  });
  winoWeightGrad(scratch + 16 * (p.vs + p.ms), nt, per, O, C, dw);
  return true;
}
