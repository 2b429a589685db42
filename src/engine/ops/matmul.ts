/**
 * Batched, broadcasting matrix multiply (torch.matmul semantics). Transposed views
 * are passed to the GEMM kernel as transpose flags instead of being copied, so
 * `x.matmul(w.T)` and the backward products cost no copies.
 */
import { backend } from '../backends/index.js';
import { Tensor, emptyF32, fromOp } from '../tensor.js';
import { DTypeError, ShapeError, broadcastShapes, fmtShape, sizeOf } from '../shape.js';
import { sumTo } from './reduce.js';
import { clone, expand, squeeze, transpose, unsqueeze } from './shape_ops.js';
import { add, relu as reluOp, reluGrad } from './elementwise.js';

interface Operand {
  t: Tensor;
  trans: boolean;
  ld: number;
}

/** How the last two axes of `t` can be read by GEMM without a copy (or after one). */
function operand(t: Tensor): Operand {
  const r = t.rank;
  const rows = t.shape[r - 2];
  const cols = t.shape[r - 1];
  const s0 = t.strides[r - 2];
  const s1 = t.strides[r - 1];
  if ((s1 === 1 || cols === 1) && (rows === 1 || s0 >= cols)) return { t, trans: false, ld: rows === 1 ? Math.max(cols, 1) : s0 };
  if ((s0 === 1 || rows === 1) && (cols === 1 || s1 >= rows)) return { t, trans: true, ld: cols === 1 ? Math.max(rows, 1) : s1 };
  const c = clone(t);
  return { t: c, trans: false, ld: Math.max(cols, 1) };
}

/**
 * Matrix product. 1-D operands are promoted as in torch.matmul; batch axes broadcast.
 * @example
 * const y = x.matmul(w.T); // (B, in) x (in, out) -> (B, out)
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 0 || b.rank === 0) throw new ShapeError(`matmul: 0-D operand (shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)})`);
  const A = a.rank === 1 ? unsqueeze(a, 0) : a;
  const B = b.rank === 1 ? unsqueeze(b, 1) : b;
  let y = matmulNd(A, B);
  if (a.rank === 1) y = squeeze(y, -2);
  if (b.rank === 1) y = squeeze(y, -1);
  return y;
}

/**
 * The one stride s at which item i of a row-major batch (strides per batch axis) starts
 * at i * s, or null when the axes' strides do not nest that way (e.g. one broadcast axis
 * among others).
 */
function uniformStride(strides: number[], batch: number[]): number | null {
  const s = strides[strides.length - 1];
  let want = s;
  for (let d = strides.length - 1; d >= 0; d--) {
    if (batch[d] > 1 && strides[d] !== want) return null;
    want *= batch[d];
  }
  return s;
}

function matmulNd(a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') {
    throw new DTypeError(`matmul: expected float32 operands, got ${a.dtype} ${fmtShape(a.shape)} and ${b.dtype} ${fmtShape(b.shape)}`);
  }
  const M = a.shape[a.rank - 2];
  const K = a.shape[a.rank - 1];
  const N = b.shape[b.rank - 1];
  if (b.shape[b.rank - 2] !== K) {
    throw new ShapeError(`matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not match (${K} != ${b.shape[b.rank - 2]})`);
  }
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const nb = sizeOf(batch);
  const out = emptyF32(nb * M * N);
  const bk = backend();
  const A = operand(a);
  const B = operand(b);
  const aData = A.t.data as Float32Array;
  const bData = B.t.data as Float32Array;
  const aBatchStr = batchStrides(A.t, batch);
  const bBatchStr = batchStrides(B.t, batch);

  // Items at one stride on each side (e.g. [B, M, K] x [B, K, N]), or null.
  const aStep = batch.length > 0 ? uniformStride(aBatchStr, batch) : null;
  const bStep = batch.length > 0 ? uniformStride(bBatchStr, batch) : null;

  if (nb > 0 && M > 0 && N > 0) {
    if (!A.trans && bBatchStr.every((s) => s === 0) && collapsible(A.t, batch, A.ld)) {
      // One GEMM for all batches: (nb*M, K) x (K, N).
      bk.gemm(false, B.trans, nb * M, N, K, aData, A.t.offset, A.ld, bData, B.t.offset, B.ld, 0, out, 0, N);
    } else if (aStep !== null && bStep !== null) {
      // One call, which spreads small products over the threads.
      bk.gemmBatched(A.trans, B.trans, nb, M, N, K, aData, A.t.offset, aStep, A.ld, bData, B.t.offset, bStep, B.ld, 0, out, 0, M * N, N);
    } else {
      const idx = new Array<number>(batch.length).fill(0);
      for (let i = 0; i < nb; i++) {
        let ao = A.t.offset;
        let bo = B.t.offset;
        for (let d = 0; d < batch.length; d++) {
          ao += idx[d] * aBatchStr[d];
          bo += idx[d] * bBatchStr[d];
        }
        bk.gemm(A.trans, B.trans, M, N, K, aData, ao, A.ld, bData, bo, B.ld, 0, out, i * M * N, N);
        for (let d = batch.length - 1; d >= 0; d--) {
          if (++idx[d] < batch[d]) break;
          idx[d] = 0;
        }
      }
    }
  }
  const bShared = nb > 1 && bBatchStr.every((s) => s === 0);
  return fromOp('matmul', out, [...batch, M, N], [a, b], (g) => productGrads(a, b, g, batch, bShared));
}

/**
 * The gradients of a @ b from g (null where not needed). b shared by every batch (a
 * Linear weight applied to [B, T, in]) gets its gradient as one GEMM over all the
 * batch's rows, not one product per batch summed afterwards.
 */
function productGrads(a: Tensor, b: Tensor, g: Tensor, batch: readonly number[], bShared: boolean): (Tensor | null)[] {
  return [
    a.requiresGrad ? sumTo(matmul(g, transpose(b)), a.shape) : null,
    !b.requiresGrad ? null
      : bShared ? sharedOperandGrad(a, g, batch, b)
      : a.rank === 2 && b.rank === 2 ? operandGrad(a, g, b)
      : sumTo(matmul(transpose(a), g), b.shape),
  ];
}

/**
 * a^T g [K, N], the gradient of a 2-D b. When b is a transposed view (a Linear's W^T)
 * it is computed as (g^T a)^T, so that W's gradient, the transpose of this one, is a
 * contiguous [N, K] array that can become W.grad as it is, without a copy.
 */
function operandGrad(a: Tensor, g: Tensor, b: Tensor): Tensor {
  const transposed = b.shape[0] > 1 && b.shape[1] > 1 && b.strides[0] === 1 && b.strides[1] >= b.shape[0];
  return transposed ? transpose(matmul(transpose(g), a)) : matmul(transpose(a), g);
}

/**
 * a @ b + bias for a [..., M, K], b [K, N] and bias [N] (torch.addmm; what a Linear layer
 * computes with b = W^T), and with activation 'relu' the ReLU of that: the GEMM adds the
 * bias and applies the ReLU to each finished tile of the result (its epilogue), so the
 * layer makes one result array instead of two or three and no passes over it. ReLU's
 * gradient is read off the result (relu'(z) = relu'(relu(z))), so nothing else is saved.
 * Other operands (batched b, a transposed view of a batch) fall back to matmul, add and
 * relu, with the same values.
 * @example
 * const y = matmulBias(x, w.T, b); // = x.matmul(w.T).add(b)
 * const h = matmulBias(x, w.T, b, 'relu'); // = x.matmul(w.T).add(b).relu()
 */
export function matmulBias(a: Tensor, b: Tensor, bias: Tensor, activation?: 'relu'): Tensor {
  const relu = activation === 'relu';
  const N = b.rank === 2 ? b.shape[1] : -1;
  const composite = (): Tensor => {
    const z = add(matmul(a, b), bias);
    return relu ? reluOp(z) : z;
  };
  if (a.rank < 2 || b.rank !== 2 || bias.rank !== 1 || bias.shape[0] !== N || a.dtype !== 'float32' ||
      b.dtype !== 'float32' || bias.dtype !== 'float32' || a.shape[a.rank - 1] !== b.shape[0]) {
    return composite();
  }
  const batch = a.shape.slice(0, -2);
  const M = a.shape[a.rank - 2], K = b.shape[0], rows = sizeOf(batch) * M;
  const A = operand(a);
  if (A.trans || !collapsible(A.t, batch, A.ld) || rows === 0 || N === 0) return composite();
  const B = operand(b);
  const out = emptyF32(rows * N);
  const unit = bias.strides[0] === 1;
  const epilogue = { bias: unit ? (bias.data as Float32Array) : bias.f32('matmulBias'), biasOff: unit ? bias.offset : 0, relu };
  backend().gemm(false, B.trans, rows, N, K, A.t.data as Float32Array, A.t.offset, A.ld, B.t.data as Float32Array, B.t.offset, B.ld, 0, out, 0, N, epilogue);
  const y: Tensor = fromOp(relu ? 'matmulBiasRelu' : 'matmulBias', out, [...batch, M, N], [a, b, bias], (g) => {
    const gz = relu ? reluGrad(y, g) : g;
    return [...productGrads(a, b, gz, batch, rows > M), bias.requiresGrad ? sumTo(gz, bias.shape) : null];
  });
  return y;
}

/** The gradient of a b [..., K, N] broadcast over `batch`: a^T g with the batch folded into the rows. */
function sharedOperandGrad(a: Tensor, g: Tensor, batch: readonly number[], b: Tensor): Tensor {
  const M = a.shape[a.rank - 2], K = a.shape[a.rank - 1], N = g.shape[g.rank - 1];
  const rows = sizeOf(batch) * M;
  const a2 = expand(a, [...batch, M, K]).reshape([rows, K]);
  const g2 = g.reshape([rows, N]);
  return b.rank === 2 ? operandGrad(a2, g2, b) : matmul(transpose(a2), g2).reshape([...b.shape]);
}

/** Strides of t's batch axes read as the broadcast batch shape (0 where broadcast). */
function batchStrides(t: Tensor, batch: readonly number[]): number[] {
  const tb = t.rank - 2;
  const lead = batch.length - tb;
  return batch.map((_, d) => (d < lead ? 0 : t.shape[d - lead] === 1 ? 0 : t.strides[d - lead]));
}

/** Whether t's batch axes and rows form one row-major run of rows with stride ld. */
function collapsible(t: Tensor, batch: readonly number[], ld: number): boolean {
  const tb = t.rank - 2;
  if (tb !== batch.length) return batch.length === 0;
  let expect = t.shape[t.rank - 2] * ld;
  for (let d = tb - 1; d >= 0; d--) {
    if (t.shape[d] !== 1 && t.strides[d] !== expect) return false;
    expect *= t.shape[d];
  }
  return true;
}
