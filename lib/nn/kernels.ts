/**
 * The reference CPU kernels: forward/backward pairs over flat Float32Arrays with explicit
 * sizes, written for clarity. Every faster kernel (WGSL, SIMD) is held to these numbers.
 *
 * Layouts are row-major; shapes are given in comments as (rows, cols). Backward kernels
 * accumulate parameter gradients with `+=`, so a caller zeroes them before each step.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/**
 * Dense forward with optional fused relu: `y = act(x w + b)`.
 *
 * Zero inputs are skipped: MNIST pixels and relu outputs are mostly zero, and skipping them
 * changes no result.
 *
 * @param x Inputs (batch, nIn).
 * @param w Weights (nIn, nOut).
 * @param b Bias (nOut).
 * @param y Outputs (batch, nOut), overwritten.
 * @param batch Examples in the batch.
 * @param nIn Inputs per example.
 * @param nOut Outputs per example.
 * @param fuseRelu Whether to apply relu to the outputs.
 */
export function denseForward(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  y: Float32Array,
  batch: number,
  nIn: number,
  nOut: number,
  fuseRelu: boolean,
): void {
  for (let i = 0; i < batch; i++) {
    const yRow = i * nOut;
    const xRow = i * nIn;
    for (let o = 0; o < nOut; o++) y[yRow + o] = b[o]!;
    for (let k = 0; k < nIn; k++) {
      const xv = x[xRow + k]!;
      if (xv === 0) continue;
      const wRow = k * nOut;
      for (let o = 0; o < nOut; o++) y[yRow + o]! += xv * w[wRow + o]!;
    }
    if (fuseRelu) {
      for (let o = 0; o < nOut; o++) if (!(y[yRow + o]! > 0)) y[yRow + o] = 0;
    }
  }
}

/**
 * Dense backward: `dw += xᵀ dy`, `db += colsum(dy)`, and `dx = dy wᵀ` when `dx` is given.
 * A fused relu's mask must already be applied to `dy` (see {@linkcode reluBackward}).
 *
 * @param x Inputs of the forward pass (batch, nIn).
 * @param w Weights (nIn, nOut).
 * @param dy Gradient of the outputs (batch, nOut).
 * @param dx Gradient of the inputs (batch, nIn), overwritten; `null` to skip (first layer).
 * @param dw Weight gradient (nIn, nOut), accumulated.
 * @param db Bias gradient (nOut), accumulated.
 * @param batch Examples in the batch.
 * @param nIn Inputs per example.
 * @param nOut Outputs per example.
 */
export function denseBackward(
  x: Float32Array,
  w: Float32Array,
  dy: Float32Array,
  dx: Float32Array | null,
  dw: Float32Array,
  db: Float32Array,
  batch: number,
  nIn: number,
  nOut: number,
): void {
  for (let i = 0; i < batch; i++) {
    const dyRow = i * nOut;
    const xRow = i * nIn;
    for (let o = 0; o < nOut; o++) db[o]! += dy[dyRow + o]!;
    for (let k = 0; k < nIn; k++) {
      const xv = x[xRow + k]!;
      const wRow = k * nOut;
      if (xv !== 0) {
        for (let o = 0; o < nOut; o++) dw[wRow + o]! += xv * dy[dyRow + o]!;
      }
      if (dx !== null) {
        let sum = 0;
        for (let o = 0; o < nOut; o++) sum += dy[dyRow + o]! * w[wRow + o]!;
        dx[xRow + k] = sum;
      }
    }
  }
}

/**
 * Relu forward: `y = max(0, x)`, elementwise over `n` values (`y` may be `x`).
 *
 * @param x Inputs (n).
 * @param y Outputs (n), overwritten.
 * @param n Number of values.
 */
export function reluForward(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) y[i] = x[i]! > 0 ? x[i]! : 0;
}

/**
 * Relu backward from the forward's outputs: `dx = y > 0 ? dy : 0` (`dx` may be `dy`).
 *
 * @param y Outputs of the forward pass (n).
 * @param dy Gradient of the outputs (n).
 * @param dx Gradient of the inputs (n), overwritten.
 * @param n Number of values.
 */
export function reluBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dx[i] = y[i]! > 0 ? dy[i]! : 0;
}

/**
 * Numerically stable softmax over each row: `y = exp(x - max) / sum(exp(x - max))`.
 *
 * @param x Logits (batch, classes).
 * @param y Probabilities (batch, classes), overwritten (may be `x`).
 * @param batch Rows.
 * @param classes Columns.
 */
export function softmaxForward(
  x: Float32Array,
  y: Float32Array,
  batch: number,
  classes: number,
): void {
  for (let i = 0; i < batch; i++) {
    const row = i * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, x[row + c]!);
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      const e = Math.exp(x[row + c]! - max);
      y[row + c] = e;
      sum += e;
    }
    for (let c = 0; c < classes; c++) y[row + c]! /= sum;
  }
}

/**
 * Fused softmax cross-entropy on logits, numerically stable (log-sum-exp with the row max).
 *
 * Loss per example: `logsumexp(z) - z[label]`; gradient: `(softmax(z) - onehot(label)) / batch`,
 * the gradient of the batch-mean loss.
 *
 * @param logits Logits (batch, classes).
 * @param labels Class labels (batch), each in [0, classes).
 * @param dLogits Gradient of the mean loss (batch, classes), overwritten; `null` to skip.
 * @param batch Rows.
 * @param classes Columns.
 * @returns The summed loss over the batch (float64) and the number of correct argmax guesses.
 */
export function softmaxCrossEntropy(
  logits: Float32Array,
  labels: ArrayLike<number>,
  dLogits: Float32Array | null,
  batch: number,
  classes: number,
): { lossSum: number; correct: number } {
  let lossSum = 0;
  let correct = 0;
  for (let i = 0; i < batch; i++) {
    const row = i * classes;
    const label = labels[i]!;
    let max = -Infinity;
    let argmax = 0;
    for (let c = 0; c < classes; c++) {
      const z = logits[row + c]!;
      if (z > max) {
        max = z;
        argmax = c;
      }
    }
    if (argmax === label) correct++;
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[row + c]! - max);
    const logSumExp = max + Math.log(sum);
    lossSum += logSumExp - logits[row + label]!;
    if (dLogits !== null) {
      for (let c = 0; c < classes; c++) {
        const p = Math.exp(logits[row + c]! - logSumExp);
        dLogits[row + c] = (p - (c === label ? 1 : 0)) / batch;
      }
    }
  }
  return { lossSum, correct };
}
