// Winograd F(m x m, r x r), m = 2 or 4, for 3x3 stride-1 convolutions and the 2x2 ones
// over a stride-2 convolution's phase images (conv.cpp) (Lavin & Gray 2016, "Fast
// Algorithms for Convolutional Neural Networks", arXiv:1509.09308), included by conv.cpp
// inside its anonymous namespace (namespace gl). Each m x m block of outputs ("tile") of
// an output channel is A^T [sum_c (G g_oc G^T) . (B^T d_c B)] A, with d_c the a x a input
// patch under the tile (a = m + r - 1) and "." the elementwise product: a^2
// multiplications per m^2 outputs and input channel instead of r^2 m^2 (F(2x2, 3x3): 16
// per 4, F(4x4, 3x3): 36 per 16, F(2x2, 2x2): 9 per 4, F(4x4, 2x2): 25 per 16), as a^2
// independent GEMMs V[xi] [tiles, Cin] . U[xi]^T [Cin, Cout]; winoTile picks m.
// The tiles are taken a block of whole tile rows at a time (so that a block's transformed
// inputs and products stay in L2), each thread transforming, multiplying and
// transforming back its own blocks: nothing of a batch-sized transform goes through
// memory. The transforms work on channel-last copies, 16 channels at a time. (A first
// attempt in the fourth session transformed the whole batch in memory passes and lost to
// the implicit GEMM.) The weight gradient is the same algebra transposed: dU[xi] [Cout,
// Cin] = sum over tiles of dM[xi]^T V[xi], dM = A dy_tile A^T, then dw = G^T dU G.
// The F(4x4, ...) transforms (points 0, +-1 and +-2 or -2) round ~10x more than a direct
// sum (~1e-6 to 2.5e-6 of the sum of |terms|, tested against float64 sums); F(2x2, ...)'s
// about as a direct sum.

// A 3x3 or 2x2 (the phase images' kernel of a k4 s2 forward), stride-1, undilated
// convolution of one group with at least 16 channels on each side (fewer leave the GEMMs
// too thin to pay for the transforms).
bool winogradShape(const ConvShape& s) {
  return s.groups == 1 && s.kh == s.kw && (s.kh == 3 || s.kh == 2) && paddedStride1(s) && s.Cin >= 16 &&
         s.Cout >= 16 && s.oh >= 2 && s.ow >= 2;
}

// The 1-D transforms of F(m, r) on T = one float or a vector of them, a = m + r - 1: in
// (B^T d, a values), out (A^T y, a -> m), grad (A dy, m -> a), weight (G g, r -> a) and
// weightBack (G^T d, a -> r).
template <int M, int R>
struct Wino;

template <>
struct Wino<2, 3> {
  // B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1],
  // G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
  template <class T>
  static inline __attribute__((always_inline)) void in(const T* d, T* v) {
    v[0] = d[0] - d[2];
    v[1] = d[1] + d[2];
    v[2] = d[2] - d[1];
    v[3] = d[1] - d[3];
  }
  template <class T>
  static inline __attribute__((always_inline)) void out(const T* y, T* o) {
    o[0] = y[0] + y[1] + y[2];
    o[1] = y[1] - y[2] - y[3];
  }
  template <class T>
  static inline __attribute__((always_inline)) void grad(const T* dy, T* m) {
    m[0] = dy[0];
    m[1] = dy[0] + dy[1];
    m[2] = dy[0] - dy[1];
    m[3] = -dy[1];
  }
  template <class T>
  static inline __attribute__((always_inline)) void weight(const T* g, T* u) {
    u[0] = g[0];
    u[1] = 0.5f * (g[0] + g[1] + g[2]);
    u[2] = 0.5f * (g[0] - g[1] + g[2]);
    u[3] = g[2];
  }
  template <class T>
  static inline __attribute__((always_inline)) void weightBack(const T* d, T* g) {
    g[0] = d[0] + 0.5f * (d[1] + d[2]);
    g[1] = 0.5f * (d[1] - d[2]);
    g[2] = 0.5f * (d[1] + d[2]) + d[3];
  }
};

template <>
struct Wino<4, 3> {
  // B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
  // 0 4 0 -5 0 1], A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1],
  // G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
  template <class T>
  static inline __attribute__((always_inline)) void in(const T* d, T* v) {
    const T a = d[4] - d[2], b = d[3] - d[1];
    const T c = d[4] - 4.f * d[2], e = d[3] - 4.f * d[1];
    v[0] = 4.f * d[0] - 5.f * d[2] + d[4];
    v[1] = c + e;
    v[2] = c - e;
    v[3] = a + 2.f * b;
    v[4] = a - 2.f * b;
    v[5] = 4.f * d[1] - 5.f * d[3] + d[5];
  }
  template <class T>
  static inline __attribute__((always_inline)) void out(const T* y, T* o) {
    const T a = y[1] + y[2], b = y[1] - y[2], c = y[3] + y[4], e = y[3] - y[4];
    o[0] = y[0] + a + c;
    o[1] = b + 2.f * e;
    o[2] = a + 4.f * c;
    o[3] = b + 8.f * e + y[5];
  }
  template <class T>
  static inline __attribute__((always_inline)) void grad(const T* dy, T* m) {
    const T a = dy[0] + dy[2], b = dy[1] + dy[3], c = dy[0] + 4.f * dy[2], e = 2.f * dy[1] + 8.f * dy[3];
    m[0] = dy[0];
    m[1] = a + b;
    m[2] = a - b;
    m[3] = c + e;
    m[4] = c - e;
    m[5] = dy[3];
  }
  // (Multiplied by 1/6, 1/12 and 1/24, not divided: see winoWeights.)
  template <class T>
  static inline __attribute__((always_inline)) void weight(const T* g, T* u) {
    constexpr float s6 = 1.f / 6.f, s12 = 1.f / 12.f, s24 = 1.f / 24.f;
    u[0] = 0.25f * g[0];
    u[1] = -s6 * (g[0] + g[1] + g[2]);
    u[2] = -s6 * (g[0] - g[1] + g[2]);
    u[3] = s24 * g[0] + s12 * g[1] + s6 * g[2];
    u[4] = s24 * g[0] - s12 * g[1] + s6 * g[2];
    u[5] = g[2];
  }
  template <class T>
  static inline __attribute__((always_inline)) void weightBack(const T* d, T* g) {
    constexpr float s6 = 1.f / 6.f, s12 = 1.f / 12.f, s24 = 1.f / 24.f;
    g[0] = 0.25f * d[0] - s6 * (d[1] + d[2]) + s24 * (d[3] + d[4]);
    g[1] = s6 * (d[2] - d[1]) + s12 * (d[3] - d[4]);
    g[2] = s6 * (d[3] + d[4] - d[1] - d[2]) + d[5];
  }
};

template <>
struct Wino<2, 2> {
  // B^T = [1 -1 0; 0 1 0; 0 -1 1], A^T = [1 1 0; 0 1 1], G = [1 0; 1 1; 0 1]: 9
  // products per 4 outputs instead of 16.
  template <class T>
  static inline __attribute__((always_inline)) void in(const T* d, T* v) {
    v[0] = d[0] - d[1];
    v[1] = d[1];
    v[2] = d[2] - d[1];
  }
  template <class T>
  static inline __attribute__((always_inline)) void out(const T* y, T* o) {
    o[0] = y[0] + y[1];
    o[1] = y[1] + y[2];
  }
  template <class T>
  static inline __attribute__((always_inline)) void grad(const T* dy, T* m) {
    m[0] = dy[0];
    m[1] = dy[0] + dy[1];
    m[2] = dy[1];
  }
  template <class T>
  static inline __attribute__((always_inline)) void weight(const T* g, T* u) {
    u[0] = g[0];
    u[1] = g[0] + g[1];
    u[2] = g[1];
  }
  template <class T>
  static inline __attribute__((always_inline)) void weightBack(const T* d, T* g) {
    g[0] = d[0] + d[1];
    g[1] = d[1] + d[2];
  }
};

template <>
struct Wino<4, 2> {
  // Points 0, 1, -1, -2: B^T = [-2 -1 2 1 0; 0 2 3 1 0; 0 -2 1 1 0; 0 -1 0 1 0;
  // 0 -2 -1 2 1], A^T = [1 1 1 1 0; 0 1 -1 -2 0; 0 1 1 4 0; 0 1 -1 -8 1],
  // G = [-1/2 0; 1/6 1/6; 1/2 -1/2; -1/6 1/3; 0 1]: 25 products per 16 outputs instead of
  // 64 (of the point sets 0, +-1 and one of +-2, +-1/2, this one rounded least: ~7e-7 of
  // the sum of |terms| at 256 channels, float32 against float64).
  template <class T>
  static inline __attribute__((always_inline)) void in(const T* d, T* v) {
    const T a = d[3] - d[1], b = d[2] + d[3];
    v[0] = 2.f * (d[2] - d[0]) + a;
    v[1] = b + 2.f * (d[1] + d[2]);
    v[2] = b - 2.f * d[1];
    v[3] = a;
    v[4] = 2.f * a + d[4] - d[2];
  }
  template <class T>
  static inline __attribute__((always_inline)) void out(const T* y, T* o) {
    const T a = y[1] + y[2], b = y[1] - y[2];
    o[0] = y[0] + a + y[3];
    o[1] = b - 2.f * y[3];
    o[2] = a + 4.f * y[3];
    o[3] = b - 8.f * y[3] + y[4];
  }
  template <class T>
  static inline __attribute__((always_inline)) void grad(const T* dy, T* m) {
    const T a = dy[0] + dy[2], b = dy[1] + dy[3];
    m[0] = dy[0];
    m[1] = a + b;
    m[2] = a - b;
    m[3] = dy[0] - 2.f * dy[1] + 4.f * dy[2] - 8.f * dy[3];
    m[4] = dy[3];
  }
  template <class T>
  static inline __attribute__((always_inline)) void weight(const T* g, T* u) {
    constexpr float s6 = 1.f / 6.f;
    u[0] = -0.5f * g[0];
    u[1] = s6 * (g[0] + g[1]);
    u[2] = 0.5f * (g[0] - g[1]);
    u[3] = s6 * (2.f * g[1] - g[0]);
    u[4] = g[1];
  }
  template <class T>
  static inline __attribute__((always_inline)) void weightBack(const T* d, T* g) {
    constexpr float s6 = 1.f / 6.f;
    g[0] = 0.5f * (d[2] - d[0]) + s6 * (d[1] - d[3]);
    g[1] = s6 * (d[1] + 2.f * d[3]) - 0.5f * d[2] + d[4];
  }
};

// Tile geometry and block size of one call.
struct WinoPlan {
  int m, r, a;  // outputs per tile side (2 or 4), kernel side (3 or 2), patch side m + r - 1
  long nx;      // matrices per block: a^2
  long th, tw;  // tiles per image column and row: ceil(oh / m), ceil(ow / m)
  long Hq, Wq;  // the padded images' size, m th + r - 1 by m tw + r - 1 (every tile's patch inside)
  long rows;    // tile rows in all: N * th
  long rb;      // tile rows per block
  long P;       // rows of a block's matrices: R * tw tiles rounded up to a multiple of 6
  long blocks;
  // The nx matrices of a block lie vs = P Cin + 16, ms = P Cout + 16 floats apart: at
  // multiples of 4 KB the rows a tile's transform reads or writes would share L1 sets.
  long vs, ms;
};

WinoPlan winoPlan(const ConvShape& s, int m) {
  WinoPlan p;
  p.m = m;
  p.r = (int)s.kh;
  p.a = m + p.r - 1;
  p.nx = (long)p.a * p.a;
  p.th = (s.oh + m - 1) / m;
  p.tw = (s.ow + m - 1) / m;
  p.Hq = m * p.th + p.r - 1;
  p.Wq = m * p.tw + p.r - 1;
  p.rows = s.N * p.th;
  // A block's V [nx, P, Cin] and M [nx, P, Cout] within ~1 MB, and P at most the GEMM's
  // row block (its operands are then read in place, nothing packed).
  long target = (1L << 18) / (p.nx * (s.Cin + s.Cout));
  target = target < 24 ? 24 : target > 144 ? 144 : target;
  p.rb = target / p.tw < 1 ? 1 : target / p.tw;
  if (p.rb > p.rows) p.rb = p.rows;
  // The GEMMs take whole 6-row panels (rows past the tiles are zero, computed for
  // nothing) and the threads whole blocks: of the heights down to half this one, the one
  // that leaves the busiest thread the fewest panel rows (13 tile rows of 2 tiles made
  // 30-row blocks with 4 empty rows; 12 make 24, none; 15 tile rows of 4 instead of 16
  // would fill their panels but make 9 blocks of 128 rows, 5 for one of 2 threads).
  const long nt = numThreads();
  const auto cost = [&](long rb) { return ((p.rows + rb - 1) / rb + nt - 1) / nt * ((rb * p.tw + 5) / 6 * 6); };
  for (long q = p.rb - 1, top = p.rb; 2 * q >= top; q--)
    if (cost(q) < cost(p.rb)) p.rb = q;
  p.P = (p.rb * p.tw + 5) / 6 * 6;
  p.blocks = (p.rows + p.rb - 1) / p.rb;
  p.vs = p.P * s.Cin + 16;
  p.ms = p.P * s.Cout + 16;
  return p;
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

// The 2-D transform of an IN x IN patch by a 1-D transform f (IN -> OUT values): f
// down each column (get(i, j) reads value i, j), then along each row of the result,
// put(i, j, v) taking the OUT x OUT values. T = F16 (16 channels at a time) or float.
template <int IN, int OUT, class T, class F, class Get, class Put>
__attribute__((always_inline)) inline void transform2d(F f, Get get, Put put) {
  T u[OUT][IN];
  for (int j = 0; j < IN; j++) {
    T col[IN], t[OUT];
    for (int i = 0; i < IN; i++) col[i] = get(i, j);
    f(col, t);
    for (int i = 0; i < OUT; i++) u[i][j] = t[i];
  }
  for (int i = 0; i < OUT; i++) {
    T t[OUT];
    f(u[i], t);
    for (int j = 0; j < OUT; j++) put(i, j, t[j]);
  }
}

// f(Tile<m, r>()) for plan p's F(m x m, r x r): the one place that turns the plan's
// sizes into template arguments (the GL_CLONES entry points below each call it with an
// always-inlined lambda, so the vector code stays in each clone).
template <int M_, int R_>
struct Tile {
  static constexpr int M = M_, R = R_;
};
template <class F>
__attribute__((always_inline)) inline void withTile(const WinoPlan& p, F f) {
  if (p.r == 2 && p.m == 2) f(Tile<2, 2>());
  else if (p.r == 2) f(Tile<4, 2>());
  else if (p.m == 2) f(Tile<2, 3>());
  else f(Tile<4, 3>());
}

// UT [nx, C, O] = G g G^T for every r x r kernel g = w[o, c], input channels [c0, c1):
// 16 output channels at a time as vectors, so that each store to the nx rows (4 C O bytes
// apart) is a whole cache line. (One kernel at a time, one float per row and store,
// this pass took a quarter of a 256 -> 128 forward at 7x7 through F(4x4, 2x2).)
template <int M, int R>
__attribute__((always_inline)) inline void kernelTiles(const float* GL_RESTRICT w, long O, long C, long c0, long c1,
                                                       float* GL_RESTRICT UT) {
  constexpr int A = M + R - 1, RR = R * R;
  const long CO = C * O;
  for (long c = c0; c < c1; c++) {
    long o = 0;
    for (; o + 16 <= O; o += 16) {
      F16 g[RR];
      for (int k = 0; k < RR; k++)
        for (int l = 0; l < 16; l++) g[k][l] = w[((o + l) * C + c) * RR + k];
      transform2d<R, A, F16>([](const F16* a, F16* b) { Wino<M, R>::weight(a, b); },
                             [&](int i, int j) { return g[i * R + j]; },
                             [&](int i, int j, F16 v) { st<F16>(UT + (i * A + j) * CO + c * O + o, v); });
    }
    for (; o < O; o++) {
      const float* g = w + (o * C + c) * RR;
      transform2d<R, A, float>([](const float* a, float* b) { Wino<M, R>::weight(a, b); },
                               [&](int i, int j) { return g[i * R + j]; },
                               [&](int i, int j, float v) { UT[(i * A + j) * CO + c * O + o] = v; });
    }
  }
}

GL_CLONES void winoWeights(const WinoPlan& p, const float* GL_RESTRICT w, long O, long C, long c0, long c1,
                           float* GL_RESTRICT UT) {
  withTile(p, [&](auto t) __attribute__((always_inline)) { kernelTiles<decltype(t)::M, decltype(t)::R>(w, O, C, c0, c1, UT); });
}

// dw [O, C, r, r] = G^T dU G from dU [nx, O, C] (the sum of `parts` partials dUs apart,
// added in order), kernels oc = (o, c) in [oc0, oc1): 16 kernels at a time as vectors, a
// whole cache line from each of the nx rows.
template <int M, int R>
__attribute__((always_inline)) inline void kernelGrads(const float* GL_RESTRICT dU, long parts, long dUs, long OC,
                                                       long oc0, long oc1, float* GL_RESTRICT dw) {
  constexpr int A = M + R - 1, RR = R * R;
  long oc = oc0;
  for (; oc + 16 <= oc1; oc += 16) {
    F16 d[A * A];
    for (int xi = 0; xi < A * A; xi++) {
      F16 v = ld<F16>(dU + xi * OC + oc);
      for (long t = 1; t < parts; t++) v += ld<F16>(dU + t * dUs + xi * OC + oc);
      d[xi] = v;
    }
    float g[16 * RR];  // the 16 kernels' taps, in dw's order
    transform2d<A, R, F16>([](const F16* a, F16* b) { Wino<M, R>::weightBack(a, b); },
                           [&](int i, int j) { return d[i * A + j]; },
                           [&](int i, int j, F16 v) {
                             for (int l = 0; l < 16; l++) g[l * RR + i * R + j] = v[l];
                           });
    memcpy(dw + oc * RR, g, sizeof g);
  }
  for (; oc < oc1; oc++)
    transform2d<A, R, float>([](const float* a, float* b) { Wino<M, R>::weightBack(a, b); },
                             [&](int i, int j) {
                               float v = dU[(i * A + j) * OC + oc];
                               for (long t = 1; t < parts; t++) v += dU[t * dUs + (i * A + j) * OC + oc];
                               return v;
                             },
                             [&](int i, int j, float v) { dw[oc * RR + i * R + j] = v; });
}

GL_CLONES void winoWeightGrad(const WinoPlan& p, const float* GL_RESTRICT dU, long parts, long dUs, long OC, long oc0,
                              long oc1, float* GL_RESTRICT dw) {
  withTile(p, [&](auto t) __attribute__((always_inline)) { kernelGrads<decltype(t)::M, decltype(t)::R>(dU, parts, dUs, OC, oc0, oc1, dw); });
}

// B^T d B of the patch whose rows are d + i ldd and columns d + j step, into the nx
// outputs v + xi vs.
template <int M, int R, class T>
__attribute__((always_inline)) inline void inputTile(const float* d, long step, long ldd, float* v, long vs) {
  constexpr int A = M + R - 1;
  transform2d<A, A, T>([](const T* a, T* b) { Wino<M, R>::in(a, b); },
                       [&](int i, int j) { return ld<T>(d + i * ldd + j * step); },
                       [&](int i, int j, T x) { st<T>(v + (i * A + j) * vs, x); });
}

// V [nx, P, C] (matrices vs apart), row p = (r - r0) tw + tx: B^T d B of the patch d of
// tile (r, tx) of the padded channel-last images xq, for the tile rows [r0, r1) (row r =
// (n, ty)). Rows past the last tile are zeroed.
template <int M, int R>
__attribute__((always_inline)) inline void inputTiles(const float* GL_RESTRICT xq, long C, const WinoPlan& p, long r0,
                                                      long r1, float* GL_RESTRICT V) {
  const long vs = p.vs, rowLen = p.Wq * C;
  for (long r = r0; r < r1; r++) {
    const long n = r / p.th, ty = r % p.th;
    for (long tx = 0; tx < p.tw; tx++) {
      const float* d = xq + ((n * p.Hq + M * ty) * p.Wq + M * tx) * C;
      float* v = V + ((r - r0) * p.tw + tx) * C;
      long c = 0;
      for (; c + 16 <= C; c += 16) inputTile<M, R, F16>(d + c, C, rowLen, v + c, vs);
      for (; c < C; c++) inputTile<M, R, float>(d + c, C, rowLen, v + c, vs);
    }
  }
  for (long xi = 0; xi < p.nx; xi++)
    for (long q = (r1 - r0) * p.tw * C; q < p.P * C; q++) V[xi * vs + q] = 0.f;
}

GL_CLONES void winoInput(const float* GL_RESTRICT xq, long C, const WinoPlan& p, long r0, long r1,
                         float* GL_RESTRICT V) {
  withTile(p, [&](auto t) __attribute__((always_inline)) { inputTiles<decltype(t)::M, decltype(t)::R>(xq, C, p, r0, r1, V); });
}

// A^T y A of the nx values y + xi ms into the m x m outputs o + i ldo + j step.
template <int M, int R, class T>
__attribute__((always_inline)) inline void outputTile(const float* y, long ms, float* o, long step, long ldo) {
  constexpr int A = M + R - 1;
  transform2d<A, M, T>([](const T* a, T* b) { Wino<M, R>::out(a, b); },
                       [&](int i, int j) { return ld<T>(y + (i * A + j) * ms); },
                       [&](int i, int j, T x) { st<T>(o + i * ldo + j * step, x); });
}

// A^T y A for every tile of Y [nx, P, O] (matrices ms apart) into channel-last rows
// Z [rb, m, m tw, O] (tile p = (r, tx) at rows (r, 0..m - 1), columns m tx..m tx + m - 1).
template <int M, int R>
__attribute__((always_inline)) inline void outputTiles(const float* GL_RESTRICT Y, long O, const WinoPlan& p, long tiles,
                                                       float* GL_RESTRICT Z) {
  const long rowLen = M * p.tw * O;
  for (long t = 0; t < tiles; t++) {
    const long r = t / p.tw, tx = t % p.tw;
    const float* y = Y + t * O;
    float* z = Z + (M * r * M * p.tw + M * tx) * O;
    long o = 0;
    for (; o + 16 <= O; o += 16) outputTile<M, R, F16>(y + o, p.ms, z + o, O, rowLen);
    for (; o < O; o++) outputTile<M, R, float>(y + o, p.ms, z + o, O, rowLen);
  }
}

GL_CLONES void winoOutput(const float* GL_RESTRICT Y, long O, const WinoPlan& p, long tiles, float* GL_RESTRICT Z) {
  withTile(p, [&](auto t) __attribute__((always_inline)) { outputTiles<decltype(t)::M, decltype(t)::R>(Y, O, p, tiles, Z); });
}

// out (+)= the channel-last rows Z [rb, m, m tw, O] of tile rows [r0, r1) in NCHW, + bias
// when not accumulating; rows and columns past oh, ow are dropped. The block's output
// rows of image n are one run of its planes, whose pixel q = (oy, ox) is at Z row
// m (n th - r0) + oy: 16 pixels by 16 channels at a time through a register transpose.
GL_CLONES void winoStore(const float* GL_RESTRICT Z, const ConvShape& s, const WinoPlan& p, long r0, long r1,
                         const float* GL_RESTRICT bias, bool accumulate, float* GL_RESTRICT out) {
  const long O = s.Cout, L = s.oh * s.ow, zRow = p.m * p.tw;
  for (long n = r0 / p.th; n * p.th < r1; n++) {
    const long t0 = n * p.th > r0 ? 0 : r0 - n * p.th, t1 = (n + 1) * p.th < r1 ? p.th : r1 - n * p.th;
    const long q0 = p.m * t0 * s.ow, q1 = (p.m * t1 < s.oh ? p.m * t1 : s.oh) * s.ow;
    const long row0 = p.m * (n * p.th - r0);  // Z row of the image's output row 0 (rows < m t0 are not read)
    float* on = out + n * O * L;
    const auto at = [&](long q) { return Z + ((row0 + q / s.ow) * zRow + q % s.ow) * O; };
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

// F(4x4, r x r) where its products (a^2 per tile: 36 for 3x3 kernels, 25 for 2x2) come
// to at most 0.8 of F(2x2, r x r)'s (16 or 9 per tile), tiles past the edges counted: at
// 7x7 (both tile sizes cover 8x8), 14x14 and 28x28, not at 5x5 or 6x6. Measured (2
// threads, batch 32): 128 -> 128 at 7x7, forward 1.51 -> 1.05 ms, weight gradient 1.55 ->
// 1.26; 64 -> 64 at 14x14 1.23 -> 1.04; dcgan's 64 -> 128 k4 s2 (256 -> 128 phase channels
// at 7x7, batch 64) 4.05 -> 3.2-3.5, its data gradient 4.38 -> 3.4-3.7. (Before the kernel
// transforms went 16 kernels at a time, without divisions, F(4x4, 3x3) had lost at 7x7:
// 2.1 -> 3.6-3.9 ms.)
int winoTile(const ConvShape& s) {
  const long a2 = (2 + s.kh - 1) * (2 + s.kh - 1), a4 = (4 + s.kh - 1) * (4 + s.kh - 1);
  const long t2 = (s.oh + 1) / 2 * ((s.ow + 1) / 2), t4 = (s.oh + 3) / 4 * ((s.ow + 3) / 4);
  return 5 * a4 * t4 <= 4 * a2 * t2 ? 4 : 2;
}

// Runs f(tid, block) with thread tid taking blocks [tid B / nt, (tid + 1) B / nt): a
// fixed split, so that per-thread partial sums, added in thread order, round the same in
// every run (blocks from a shared counter made dcgan's losses differ from run to run).
template <class F>
void forBlocksFixed(long blocks, int nt, F f) {
  struct Ctx {
    F* f;
    long n;
  } ctx = {&f, blocks};
  auto task = [](void* c, int tid, int nt) {
    Ctx& x = *(Ctx*)c;
    for (long b = x.n * tid / nt; b < x.n * (tid + 1) / nt; b++) (*x.f)(tid, b);
  };
  if (nt > 1) parallel(nt, task, &ctx);
  else task(&ctx, 0, 1);
}

bool winogradForward(const float* x, const float* w, const float* bias, const ConvShape& s, float* out,
                     bool accumulate) {
  if (!winogradShape(s)) return false;
  const WinoPlan p = winoPlan(s, winoTile(s));
  const long C = s.Cin, O = s.Cout, P = p.P, nx = p.nx;
  const int nt = numThreads();
  // Per thread: V [nx, P, C], Y [nx, P, O] and the output rows Z [rb, m, m tw, O].
  const long per = nx * (p.vs + p.ms) + (long)p.m * p.m * P * O;
  float* UT = scratchBuffer(5, (size_t)nx * C * O);
  float* xq = scratchBuffer(1, (size_t)s.N * p.Hq * p.Wq * C);
  float* scratch = scratchBuffer(4, (size_t)nt * per);
  if (!UT || !xq || !scratch) return false;
  forRange(C, 40.0 * C * O * nx, [&](long lo, long hi) { winoWeights(p, w, O, C, lo, hi, UT); });
  const ChannelLast lx = inputLayout(s, p);
  forRange(s.N, (double)s.N * p.Hq * p.Wq * C, [&](long lo, long hi) { toChannelLast(x, lo, hi, lx, xq); });
  forBlocks(p.blocks, 2.0 * nx * O * C * p.rows * p.tw, [&](int tid, long b) {
    float* V = scratch + tid * per;
    float* Y = V + nx * p.vs;
    float* Z = Y + nx * p.ms;
    const long r0 = b * p.rb, r1 = r0 + p.rb < p.rows ? r0 + p.rb : p.rows;
    winoInput(xq, C, p, r0, r1, V);
    for (long xi = 0; xi < nx; xi++)
      gemmSerial(false, false, P, O, C, V + xi * p.vs, C, UT + xi * C * O, O, false, Y + xi * p.ms, O);
    winoOutput(Y, O, p, (r1 - r0) * p.tw, Z);
    winoStore(Z, s, p, r0, r1, bias, accumulate, out);
  });
  return true;
}

// A dy A^T of the m x m output gradient at dy + i ldy + j step into the nx values m + xi ms.
template <int M, int R, class T>
__attribute__((always_inline)) inline void gradTile(const float* dy, long step, long ldy, float* m, long ms) {
  constexpr int A = M + R - 1;
  transform2d<M, A, T>([](const T* a, T* b) { Wino<M, R>::grad(a, b); },
                       [&](int i, int j) { return ld<T>(dy + i * ldy + j * step); },
                       [&](int i, int j, T x) { st<T>(m + (i * A + j) * ms, x); });
}

// dM [nx, P, O] (matrices ms apart): A dy A^T for the tiles of tile rows [r0, r1) of the
// channel-last output gradients yq [N, m th, m tw, O]; rows past the last tile zeroed.
template <int M, int R>
__attribute__((always_inline)) inline void gradTiles(const float* GL_RESTRICT yq, long O, const WinoPlan& p, long r0,
                                                     long r1, float* GL_RESTRICT dM) {
  const long rowLen = M * p.tw * O;
  for (long r = r0; r < r1; r++) {
    const long n = r / p.th, ty = r % p.th;
    for (long tx = 0; tx < p.tw; tx++) {
      const float* dy = yq + ((n * M * p.th + M * ty) * M * p.tw + M * tx) * O;
      float* m = dM + ((r - r0) * p.tw + tx) * O;
      long o = 0;
      for (; o + 16 <= O; o += 16) gradTile<M, R, F16>(dy + o, O, rowLen, m + o, p.ms);
      for (; o < O; o++) gradTile<M, R, float>(dy + o, O, rowLen, m + o, p.ms);
    }
  }
  for (long xi = 0; xi < p.nx; xi++)
    for (long q = (r1 - r0) * p.tw * O; q < p.P * O; q++) dM[xi * p.ms + q] = 0.f;
}

GL_CLONES void winoGrad(const float* GL_RESTRICT yq, long O, const WinoPlan& p, long r0, long r1, float* GL_RESTRICT dM) {
  withTile(p, [&](auto t) __attribute__((always_inline)) { gradTiles<decltype(t)::M, decltype(t)::R>(yq, O, p, r0, r1, dM); });
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
  const WinoPlan p = winoPlan(s, winoTile(s));
  const long C = s.Cin, O = s.Cout, P = p.P, OC = O * C, nx = p.nx;
  int nt = numThreads();
  if (nt > p.blocks) nt = (int)p.blocks;
  // Per thread: V [nx, P, C], dM [nx, P, O] and the partial dU [nx, O, C].
  const long per = nx * (p.vs + p.ms + OC);
  float* xq = scratchBuffer(1, (size_t)s.N * p.Hq * p.Wq * C);
  float* yq = scratchBuffer(2, (size_t)s.N * p.m * p.th * p.m * p.tw * O);
  float* scratch = scratchBuffer(4, (size_t)nt * per);
  if (!xq || !yq || !scratch) return false;
  const ChannelLast lx = inputLayout(s, p), ly = {O, s.oh, s.ow, 0, 0, p.m * p.th, p.m * p.tw};
  forRange(s.N, (double)s.N * p.Hq * p.Wq * (C + O), [&](long lo, long hi) {
    toChannelLast(x, lo, hi, lx, xq);
    toChannelLast(y, lo, hi, ly, yq);
  });
  for (int t = 0; t < nt; t++) memset(scratch + t * per + nx * (p.vs + p.ms), 0, nx * OC * sizeof(float));
  forBlocksFixed(p.blocks, nt, [&](int tid, long b) {
    float* V = scratch + tid * per;
    float* dM = V + nx * p.vs;
    float* dU = dM + nx * p.ms;
    const long r0 = b * p.rb, r1 = r0 + p.rb < p.rows ? r0 + p.rb : p.rows;
    winoInput(xq, C, p, r0, r1, V);
    winoGrad(yq, O, p, r0, r1, dM);
    for (long xi = 0; xi < nx; xi++)
      if (!gemmTA(O, C, P, dM + xi * p.ms, O, V + xi * p.vs, C, dU + xi * OC, C))
        gemmSerial(true, false, O, C, P, dM + xi * p.ms, O, V + xi * p.vs, C, true, dU + xi * OC, C);
  });
  const float* dU = scratch + nx * (p.vs + p.ms);
  forRange(OC, 8.0 * OC * nx, [&](long lo, long hi) { winoWeightGrad(p, dU, nt, per, OC, lo, hi, dw); });
  return true;
}
