/**
 * The kernel interface every backend implements. Kernels work on raw typed arrays
 * with explicit sizes and offsets; they know nothing of tensors or autograd. The `js`
 * backend (js.ts) is the definition of each kernel; `native` and `wasm` override the
 * kernels where they are faster and must agree with `js` in the tests.
 */

export type UnaryOp =
  | 'neg' | 'abs' | 'exp' | 'log' | 'log1p' | 'sqrt' | 'rsqrt' | 'sin' | 'cos' | 'tanh'
  | 'sigmoid' | 'relu' | 'leakyRelu' | 'elu' | 'gelu' | 'silu' | 'softplus' | 'clamp'
  | 'erf' | 'sign' | 'square' | 'reciprocal' | 'step';

/** Binary ops; comparisons write 1 or 0. */
export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

/** What gemm does to each element of C once its sum is complete: + bias[biasOff + column] (bias not null), then ReLU. */
export interface GemmEpilogue {
  bias: Float32Array | null;
  biasOff: number;
  relu: boolean;
}

/** Activations whose gradient g f'(x) is one kernel (Backend.activationGrad). */
export type ActivationGrad = 'relu' | 'leakyRelu' | 'gelu' | 'silu';

export type ReduceOp = 'sum' | 'max' | 'min';

export type TypedArray = Float32Array | Int32Array;

/**
 * One convolution geometry: x [N, Cin, H, W] (the "x side"), y [N, Cout, oh, ow] (the
 * "y side"), weight [Cout, Cin/groups, kh, kw]; stride sh/sw, zero padding ph/pw,
 * dilation dh/dw. Sizes are explicit so that a transposed convolution with output
 * padding maps back exactly.
 */
export interface ConvGeometry {
  N: number; Cin: number; H: number; W: number;
  Cout: number; oh: number; ow: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; dh: number; dw: number;
  groups: number;
}

export interface Backend {
  readonly name: 'js' | 'native' | 'wasm';

  /**
   * out[i] = f(x[xOff + i]) for i < n. `p0`, `p1`: op parameters (leakyRelu slope,
   * elu alpha, clamp bounds as [lo, hi]).
   */
  unary(op: UnaryOp, x: Float32Array, xOff: number, out: Float32Array, n: number, p0: number, p1: number): void;

  /**
   * An activation's backward in one pass over n contiguous floats: out = g * f'(x) (relu:
   * step(x), NaN for NaN x as the unary step; leakyRelu: 1 or `slope`; gelu, silu).
   */
  activationGrad(kind: ActivationGrad, x: Float32Array, g: Float32Array, out: Float32Array, n: number, slope: number): void;

  /**
   * Strided, broadcasting binary op: out (contiguous, shape `shape`) at multi-index i is
   * f(a[aOff + i . aStrides], b[bOff + i . bStrides]). Broadcast dimensions have stride 0.
   */
  binary(
    op: BinaryOp,
    a: Float32Array, aOff: number, aStrides: readonly number[],
    b: Float32Array, bOff: number, bStrides: readonly number[],
    out: Float32Array, shape: readonly number[],
  ): void;

  /** Copy a strided view into a contiguous array (works for both dtypes). */
  copy(x: TypedArray, xOff: number, xStrides: readonly number[], out: TypedArray, shape: readonly number[]): void;

  /**
   * dst viewed at dstOff with dstStrides (src's shape; a view that does not overlap
   * itself) += src in row-major order: a view's gradient added into its base's buffer.
   */
  addStrided(src: Float32Array, dst: Float32Array, dstOff: number, dstStrides: readonly number[], shape: readonly number[]): void;

  /**
   * Reduce the middle axis of a contiguous [outer, len, inner] array into [outer, inner].
   */
  reduce(op: ReduceOp, x: Float32Array, outer: number, len: number, inner: number, out: Float32Array): void;

  /** Index of the max (or min) along the middle axis of [outer, len, inner]; first wins ties. */
  argReduce(op: 'max' | 'min', x: Float32Array, outer: number, len: number, inner: number, out: Int32Array): void;

  /** Cumulative sum along the middle axis of [outer, len, inner]; `reverse` sums from the end. */
  cumsum(x: Float32Array, outer: number, len: number, inner: number, reverse: boolean, out: Float32Array): void;

  /** Softmax (or log-softmax) along the middle axis of [outer, len, inner]. */
  softmax(x: Float32Array, outer: number, len: number, inner: number, log: boolean, out: Float32Array): void;

  /**
   * C[cOff..] = op(A) . op(B) + beta * C, row-major. op(A) is M x K (A is K x M when
   * transA), op(B) is K x N (B is N x K when transB). lda/ldb/ldc are row strides.
   * beta is 0 (overwrite) or 1 (accumulate). An epilogue then adds a bias per column
   * and/or applies ReLU to each element (a Linear layer and its activation in one pass).
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    A: Float32Array, aOff: number, lda: number,
    B: Float32Array, bOff: number, ldb: number,
    beta: number, C: Float32Array, cOff: number, ldc: number,
    epilogue?: GemmEpilogue,
  ): void;

  /**
   * `batch` independent products as gemm's, without an epilogue: item i reads A at
   * aOff + i * aStride and B at bOff + i * bStride and writes C at cOff + i * cStride
   * (strides >= 0; C items must not overlap). Native spreads items too small to split
   * over its threads (batched attention scores at 7x7: 49 x 49 x 128 each).
   */
  gemmBatched(
    transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number,
    A: Float32Array, aOff: number, aStride: number, lda: number,
    B: Float32Array, bOff: number, bStride: number, ldb: number,
    beta: number, C: Float32Array, cOff: number, cStride: number, ldc: number,
  ): void;

  /**
   * Unfold one image x[xOff..] of shape [C, H, W] into columns [C*kh*kw, oh*ow]
   * (zero padding), as PyTorch's im2col.
   */
  im2col(
    x: Float32Array, xOff: number, C: number, H: number, W: number,
    kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, dh: number, dw: number,
    oh: number, ow: number, cols: Float32Array,
  ): void;

  /** Adjoint of im2col: add columns [C*kh*kw, oh*ow] back into x[xOff..] ([C, H, W]). */
  col2im(
    cols: Float32Array, C: number, H: number, W: number,
    kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, dh: number, dw: number,
    oh: number, ow: number, x: Float32Array, xOff: number,
  ): void;

  /** y = conv(x, w) + bias (PyTorch's conv2d; bias [Cout] or null); overwrites y. */
  conv2dForward(x: Float32Array, w: Float32Array, bias: Float32Array | null, g: ConvGeometry, y: Float32Array): void;

  /**
   * x += conv^T(y, w): the adjoint of conv2dForward in x (conv_transpose2d); adds into x,
   * or with `overwrite` writes x = conv^T(y, w) without reading it (no zeroed array to
   * make and read back).
   */
  conv2dBackwardData(y: Float32Array, w: Float32Array, g: ConvGeometry, x: Float32Array, overwrite?: boolean): void;

  /** dw = sum_n y_n . im2col(x_n)^T: the gradient of conv2dForward in w; overwrites dw. */
  conv2dBackwardWeight(x: Float32Array, y: Float32Array, g: ConvGeometry, dw: Float32Array): void;

  /** out[o, j, i] = x[o, idx[o, j, i], i] for x [outer, xLen, inner], idx/out [outer, idxLen, inner]. */
  gather(x: Float32Array, outer: number, xLen: number, inner: number, idx: Int32Array, idxLen: number, out: Float32Array): void;

  /** out[o, idx[o, j, i], i] += src[o, j, i]: the adjoint of gather. */
  scatterAdd(out: Float32Array, outer: number, outLen: number, inner: number, idx: Int32Array, idxLen: number, src: Float32Array): void;

  /** out[o, j, i] = x[o, idx[j], i] for x [outer, xLen, inner] and idx of length idxLen. */
  indexSelect(x: Float32Array, outer: number, xLen: number, inner: number, idx: Int32Array, out: Float32Array): void;

  /** out[o, idx[j], i] += src[o, j, i]: the adjoint of indexSelect. */
  indexAdd(out: Float32Array, outer: number, outLen: number, inner: number, idx: Int32Array, src: Float32Array): void;

  /**
   * One Adam/AdamW update in place over n elements. `weightDecay` is L2 added to the
   * gradient (Adam) or decoupled (AdamW, `decoupled`). `step` counts from 1.
   */
  adam(
    param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, decoupled: boolean, step: number,
  ): void;

  // ---- Fused kernels (src/engine/ops/fused.ts; native/fused.cpp) ---------------------

  /**
   * LSTM cell pointwise step (torch gate order i, f, g, o): gates [B, 4H] are the
   * pre-activations W_ih x + b_ih + W_hh h + b_hh, c [B, H]. Writes h2 = o * tanh(c2),
   * c2 = f * c + i * g [B, H], and act [B, 5H] = (i, f, g, o, tanh(c2)) for the backward.
   */
  lstmCell(gates: Float32Array, c: Float32Array, B: number, H: number, h2: Float32Array, c2: Float32Array, act: Float32Array): void;

  /** Gradients of lstmCell: from dh, dc2 [B, H] (and act, c) to dgates [B, 4H] and dc [B, H]. */
  lstmCellBackward(
    act: Float32Array, c: Float32Array, dh: Float32Array, dc2: Float32Array, B: number, H: number,
    dgates: Float32Array, dc: Float32Array,
  ): void;

  /**
   * GRU cell pointwise step (gate order r, z, n): gi = W_ih x + b_ih, gh = W_hh h + b_hh
   * [B, 3H], h [B, H]. h2 = (1 - z) * n + z * h with n = tanh(gi_n + r * gh_n); act
   * [B, 4H] = (r, z, n, gh_n) for the backward.
   */
  gruCell(gi: Float32Array, gh: Float32Array, h: Float32Array, B: number, H: number, h2: Float32Array, act: Float32Array): void;

  /** Gradients of gruCell: from dh2 [B, H] to dgi, dgh [B, 3H] and dh [B, H]. */
  gruCellBackward(
    act: Float32Array, h: Float32Array, dh2: Float32Array, B: number, H: number,
    dgi: Float32Array, dgh: Float32Array, dh: Float32Array,
  ): void;

  /**
   * Scaled dot-product attention over BH heads: q [BH, L, D], k [BH, S, D], v [BH, S, Dv].
   * p = softmax(scale * q k^T + mask) with key j blocked (-Infinity) for query i when
   * causalOffset >= 0 and j > i + causalOffset; out = p v [BH, L, Dv]. `mask` (additive,
   * or null) is [L, S] at `maskStride` elements per head (0: shared). The operands are
   * contiguous unless `layout` ([H, then sB, sH, ld for q, k, v, out]) places them:
   * head bh = b H + h of an operand starts at b sB + h sH and its rows are ld apart
   * (heads read from and written to [B, rows, H, cols] without copies). p is contiguous.
   */
  attention(
    q: Float32Array, k: Float32Array, v: Float32Array, mask: Float32Array | null, maskStride: number,
    BH: number, L: number, S: number, D: number, Dv: number, scale: number, causalOffset: number,
    out: Float32Array, p: Float32Array, layout?: Int32Array | null,
  ): void;

  /**
   * Gradients of attention from dout [BH, L, Dv] and/or dp [BH, L, S] (the gradient that
   * reaches the weights directly), given the saved weights p. Writes whichever of dq
   * [BH, L, D], dk [BH, S, D], dv [BH, S, Dv] is not null (dv needs dout). `layout`:
   * as attention's, for q, k, v, dout, dq, dk, dv (p and dp are contiguous).
   */
  attentionBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, p: Float32Array, dout: Float32Array | null, dp: Float32Array | null,
    BH: number, L: number, S: number, D: number, Dv: number, scale: number,
    dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null, layout?: Int32Array | null,
  ): void;

  /**
   * Row normalisation (LayerNorm / GroupNorm before the affine part): x [R, N] ->
   * y = (x - mean) / sqrt(var + eps) per row (biased variance); rstd [R] saved.
   */
  normRows(x: Float32Array, R: number, N: number, eps: number, y: Float32Array, rstd: Float32Array): void;

  /** Gradient of normRows: dx = rstd * (g - mean(g) - y * mean(g * y)) per row. */
  normRowsBackward(y: Float32Array, rstd: Float32Array, g: Float32Array, R: number, N: number, dx: Float32Array): void;

  /**
   * LayerNorm over rows with its affine part: x [R, N] -> y = (x - mean) rstd w + b per
   * row (biased variance; w, b [N] or null for 1 and 0); mean and rstd [R] saved.
   */
  layerNormRows(
    x: Float32Array, R: number, N: number, eps: number, w: Float32Array | null, b: Float32Array | null, y: Float32Array,
    mean: Float32Array, rstd: Float32Array,
  ): void;

  /**
   * Gradient of layerNormRows from g, with xhat = (x - mean) rstd recomputed from x:
   * dx = rstd (gw - mean(gw) - xhat mean(gw xhat)) per row, gw = g w; dw = sum over rows
   * of g xhat, db = sum over rows of g. dx, dw, db may be null; all are overwritten.
   */
  layerNormRowsBackward(
    x: Float32Array, mean: Float32Array, rstd: Float32Array, w: Float32Array | null, g: Float32Array, R: number, N: number,
    dx: Float32Array | null, dw: Float32Array | null, db: Float32Array | null,
  ): void;

  /**
   * Per-channel affine map and activation (GroupNorm's and BatchNorm's affine part):
   * x [outer, C, inner] -> y = act(x * w[c] + b[c]), w and b [C] or null (1 and 0),
   * act 0 none, 1 SiLU. Overwrites y.
   */
  channelAffine(
    x: Float32Array, outer: number, C: number, inner: number, w: Float32Array | null, b: Float32Array | null, act: number,
    y: Float32Array,
  ): void;

  /**
   * Gradient of channelAffine from g: dx = du * w[c] with du = g * act'(x w + b), and per
   * row (o, c) of x the sums sums[2 (o C + c)] = sum du * x and sums[2 (o C + c) + 1] =
   * sum du (the weight and bias gradients, summed over o by the caller). Overwrites dx and sums.
   */
  channelAffineBackward(
    x: Float32Array, g: Float32Array, outer: number, C: number, inner: number, w: Float32Array | null,
    b: Float32Array | null, act: number, dx: Float32Array, sums: Float32Array,
  ): void;

  /**
   * GroupNorm with its affine part and activation over x [N, C, S] in G groups of Cg =
   * C / G channels (row r = (n, g) is Cg * S contiguous floats): y = act(xhat w[c] + b[c])
   * with xhat = (x - mean_r) rstd_r (biased variance + eps); act 0 none, 1 SiLU; w, b
   * nullable. Writes y and each row's mean and rstd.
   */
  groupNormRows(
    x: Float32Array, N: number, G: number, Cg: number, S: number, eps: number, w: Float32Array | null,
    b: Float32Array | null, act: number, y: Float32Array, mean: Float32Array, rstd: Float32Array,
  ): void;

  /**
   * Gradient of groupNormRows from g: with du = g act'(xhat w + b), dx = rstd (du w -
   * mean(du w) - xhat mean(du w xhat)) over each row, and per (n, channel c) the sums
   * sums[2 (n C + c)] = sum du xhat and sums[2 (n C + c) + 1] = sum du (the weight and
   * bias gradients, summed over n by the caller). Overwrites dx and sums.
   */
  groupNormRowsBackward(
    x: Float32Array, g: Float32Array, N: number, G: number, Cg: number, S: number, mean: Float32Array, rstd: Float32Array,
    w: Float32Array | null, b: Float32Array | null, act: number, dx: Float32Array, sums: Float32Array,
  ): void;

  /**
   * BatchNorm's statistics: per channel c of x [outer, C, inner] (outer, inner >= 1), the
   * mean and the biased variance of its outer * inner elements.
   */
  batchNormStats(x: Float32Array, outer: number, C: number, inner: number, mean: Float32Array, variance: Float32Array): void;

  /**
   * BatchNorm's gradient from g, given each channel's mean and rstd = 1/sqrt(var + eps):
   * with xhat = (x - mean) rstd, dx = w rstd (g - mean(g) - xhat mean(g xhat)) (w null: 1),
   * dw = sum g xhat, db = sum g per channel. Writes the ones that are not null.
   */
  batchNormBackward(
    x: Float32Array, g: Float32Array, outer: number, C: number, inner: number, mean: Float32Array, rstd: Float32Array,
    w: Float32Array | null, dx: Float32Array | null, dw: Float32Array | null, db: Float32Array | null,
  ): void;

  // ---- External memory (src/engine/ops/memory.ts; native/memory.cpp) -----------------

  /**
   * NTM addressing (Graves et al. 2014, eqs. 5-9) for B heads over memories mem [B, N, M]:
   * key [B, M], beta, g, gamma [B], wPrev [B, N], shift [B, S] over shifts -(S-1)/2..(S-1)/2.
   * w = sharpen(shift(g softmax(beta cos(mem, key)) + (1 - g) wPrev), gamma) [B, N];
   * act [B, 5N + 1] = (cos, |mem(i)|, w^c, w^g, w~, |key|) for the backward.
   */
  ntmAddress(
    mem: Float32Array, key: Float32Array, beta: Float32Array, g: Float32Array, wPrev: Float32Array, shift: Float32Array,
    gamma: Float32Array, B: number, N: number, M: number, S: number, w: Float32Array, act: Float32Array,
  ): void;

  /** Gradients of ntmAddress from dw [B, N]: added into dmem [B, N, M] (or null); the others are overwritten. */
  ntmAddressBackward(
    mem: Float32Array, key: Float32Array, beta: Float32Array, g: Float32Array, wPrev: Float32Array, shift: Float32Array,
    gamma: Float32Array, act: Float32Array, w: Float32Array, dw: Float32Array, B: number, N: number, M: number, S: number,
    dmem: Float32Array | null, dkey: Float32Array, dbeta: Float32Array, dg: Float32Array, dwPrev: Float32Array,
    dshift: Float32Array, dgamma: Float32Array,
  ): void;

  /** Read r [B, M] = sum_i w[b, i] mem[b, i, :] (eq. 2). */
  memoryRead(mem: Float32Array, w: Float32Array, B: number, N: number, M: number, r: Float32Array): void;

  /** Gradients of memoryRead from dr [B, M]: added into dmem [B, N, M] (or null); dw [B, N] overwritten. */
  memoryReadBackward(
    mem: Float32Array, w: Float32Array, dr: Float32Array, B: number, N: number, M: number, dmem: Float32Array | null, dw: Float32Array,
  ): void;

  /** Erase then add (eqs. 3-4): out[b, i, j] = mem[b, i, j] (1 - w[b, i] e[b, j]) + w[b, i] a[b, j]. */
  memoryWrite(mem: Float32Array, w: Float32Array, e: Float32Array, a: Float32Array, B: number, N: number, M: number, out: Float32Array): void;

  /** Gradients of memoryWrite from dout [B, N, M]: added into dmem (or null); dw [B, N], de, da [B, M] overwritten. */
  memoryWriteBackward(
    mem: Float32Array, w: Float32Array, e: Float32Array, a: Float32Array, dout: Float32Array, B: number, N: number, M: number,
    dmem: Float32Array | null, dw: Float32Array, de: Float32Array, da: Float32Array,
  ): void;
}
