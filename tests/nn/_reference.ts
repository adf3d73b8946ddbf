/**
 * Slow, obviously-correct float64 references for the model core, written from the math, and the
 * comparison helpers the model-core tests share.
 *
 * Parameter layout (documented in lib/nn/model.ts): each dense layer's weight, an (nIn, nOut)
 * row-major matrix, then its (nOut) bias, in layer order.
 *
 * @module
 */

import { AssertionError, match, strictEqual, throws } from "node:assert/strict";
import type { Layer, Rng } from "../../mod.ts";

/**
 * Float32 values drawn from N(0, scale²), with about `zeroFraction` of them exact zeros
 * (half of those negative zeros).
 */
export function randomArray(rng: Rng, n: number, scale = 1, zeroFraction = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng.float();
    if (u < zeroFraction) out[i] = u < zeroFraction / 2 ? -0 : 0;
    else out[i] = rng.normal() * scale;
  }
  return out;
}

/** Labels drawn uniformly from [0, classes). */
export function randomLabels(rng: Rng, n: number, classes: number): Int32Array {
  return Int32Array.from({ length: n }, () => rng.int(classes));
}

/** `y[i][o] = b[o] + sum_k x[i][k] w[k][o]`, then `max(0, y)` when `relu`: (batch, nOut). */
export function refDense(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  batch: number,
  nIn: number,
  nOut: number,
  relu: boolean,
): Float64Array {
  const y = new Float64Array(batch * nOut);
  for (let i = 0; i < batch; i++) {
    for (let o = 0; o < nOut; o++) {
      let sum = b[o]!;
      for (let k = 0; k < nIn; k++) sum += x[i * nIn + k]! * w[k * nOut + o]!;
      y[i * nOut + o] = relu ? Math.max(0, sum) : sum;
    }
  }
  return y;
}

/** `sum_i sum_o |x[i][k] w[k][o]|`-style scale of each output, for error bounds: (batch, nOut). */
export function refDenseScale(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  batch: number,
  nIn: number,
  nOut: number,
): Float64Array {
  const s = new Float64Array(batch * nOut);
  for (let i = 0; i < batch; i++) {
    for (let o = 0; o < nOut; o++) {
      let sum = Math.abs(b[o]!);
      for (let k = 0; k < nIn; k++) sum += Math.abs(x[i * nIn + k]! * w[k * nOut + o]!);
      s[i * nOut + o] = sum;
    }
  }
  return s;
}

/** `log(sum_c exp(z[c]))` of one row, shifted by the row max so that it cannot overflow. */
export function refLogSumExp(z: ArrayLike<number>, start: number, classes: number): number {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, z[start + c]!);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(z[start + c]! - max);
  return max + Math.log(sum);
}

/** `softmax(z)` of each row, as `exp(z - logsumexp(z))`: (batch, classes). */
export function refSoftmax(z: ArrayLike<number>, batch: number, classes: number): Float64Array {
  const p = new Float64Array(batch * classes);
  for (let i = 0; i < batch; i++) {
    const lse = refLogSumExp(z, i * classes, classes);
    for (let c = 0; c < classes; c++) p[i * classes + c] = Math.exp(z[i * classes + c]! - lse);
  }
  return p;
}

/** Per-example cross-entropy `-log(softmax(z))[label]`: (batch). */
export function refCrossEntropy(
  z: ArrayLike<number>,
  labels: ArrayLike<number>,
  batch: number,
  classes: number,
): Float64Array {
  const loss = new Float64Array(batch);
  for (let i = 0; i < batch; i++) {
    loss[i] = refLogSumExp(z, i * classes, classes) - z[i * classes + labels[i]!]!;
  }
  return loss;
}

/** Index of the first largest value of each row: (batch). */
export function refArgmax(z: ArrayLike<number>, batch: number, classes: number): Int32Array {
  const out = new Int32Array(batch);
  for (let i = 0; i < batch; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (z[i * classes + c]! > z[i * classes + best]!) best = c;
    out[i] = best;
  }
  return out;
}

/** What {@linkcode refLogits} saw on the way. */
export interface RefTrace {
  /** Smallest nonzero |value| entering a relu (fused or standalone): distance to the kink. */
  reluMargin: number;
}

/**
 * The chain's logits in float64: every layer in order, a trailing softmax left out.
 *
 * @returns Logits (batch, outputs) and the relu margin.
 */
export function refLogits(
  layers: readonly Layer[],
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  batch: number,
): { logits: Float64Array; trace: RefTrace } {
  const trace: RefTrace = { reluMargin: Infinity };
  let current: ArrayLike<number> = x;
  let offset = 0;
  // Exact zeros are left out: they come from an earlier relu's clamp, which keeps them at zero
  // under small changes of the parameters.
  const margin = (values: ArrayLike<number>) => {
    for (let i = 0; i < values.length; i++) {
      if (values[i] !== 0) trace.reluMargin = Math.min(trace.reluMargin, Math.abs(values[i]!));
    }
  };
  layers.forEach((layer, l) => {
    switch (layer.kind) {
      case "dense": {
        const { nIn, nOut } = layer;
        const w = Array.from({ length: nIn * nOut }, (_, i) => params[offset + i]!);
        const b = Array.from({ length: nOut }, (_, i) => params[offset + nIn * nOut + i]!);
        offset += nIn * nOut + nOut;
        const pre = refDense(current, w, b, batch, nIn, nOut, false);
        if (layer.activation === "relu") {
          margin(pre);
          current = pre.map((v) => Math.max(0, v));
        } else {
          current = pre;
        }
        break;
      }
      case "relu":
        margin(current);
        current = Array.from(current, (v) => Math.max(0, v));
        break;
      case "softmax":
        if (l !== layers.length - 1) throw new Error("softmax must come last");
        break;
    }
  });
  if (offset !== params.length) throw new Error("parameter count does not match the layers");
  return { logits: Float64Array.from(current), trace };
}

/** The chain's outputs in float64 (probabilities when it ends with softmax): (batch, outputs). */
export function refOutputs(
  layers: readonly Layer[],
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  batch: number,
): Float64Array {
  const { logits } = refLogits(layers, params, x, batch);
  const classes = logits.length / batch;
  return layers[layers.length - 1]!.kind === "softmax"
    ? refSoftmax(logits, batch, classes)
    : logits;
}

/** Mean cross-entropy on the logits and accuracy of the argmax, in float64. */
export function refMetrics(
  layers: readonly Layer[],
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
): { loss: number; accuracy: number; logits: Float64Array; trace: RefTrace } {
  const batch = y.length;
  const { logits, trace } = refLogits(layers, params, x, batch);
  const classes = logits.length / batch;
  const losses = refCrossEntropy(logits, y, batch, classes);
  const guesses = refArgmax(logits, batch, classes);
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < batch; i++) {
    loss += losses[i]!;
    if (guesses[i] === y[i]) correct++;
  }
  return { loss: loss / batch, accuracy: correct / batch, logits, trace };
}

/** Central finite differences `(f(p + h e_i) - f(p - h e_i)) / 2h` of `f` at `p`, in float64. */
export function centralDifferences(
  f: (p: Float64Array) => number,
  p: ArrayLike<number>,
  h: number,
): Float64Array {
  const point = Float64Array.from(p);
  const grad = new Float64Array(point.length);
  for (let i = 0; i < point.length; i++) {
    const saved = point[i]!;
    point[i] = saved + h;
    const up = f(point);
    point[i] = saved - h;
    const down = f(point);
    point[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

/**
 * Asserts `|actual[i] - expected[i]| <= atol + rtol * scale[i]` for every i, where `scale` is
 * `|expected|` unless given (for sums, the sum of the terms' magnitudes).
 */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: { rtol: number; atol: number; scale?: ArrayLike<number> },
  what: string,
): void {
  if (actual.length !== expected.length) {
    throw new AssertionError({
      message: `${what}: length ${actual.length}, expected ${expected.length}`,
    });
  }
  const { rtol, atol, scale } = tolerance;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const s = scale === undefined ? Math.abs(e) : scale[i]!;
    if (!(Math.abs(a - e) <= atol + rtol * s)) {
      throw new AssertionError({
        message: `${what}[${i}] = ${a}, expected ${e} (atol ${atol}, rtol ${rtol}, scale ${s})`,
        actual: a,
        expected: e,
      });
    }
  }
}

/** The raw bits of float32 values, for bit-for-bit comparisons. */
export function bitsOf(values: Float32Array): Uint32Array {
  return new Uint32Array(values.slice().buffer);
}

/**
 * Asserts that `fn` throws an instance of `errorClass` whose message equals (or matches)
 * `message` and, when given, whose `code` equals `code`.
 */
export function assertThrowsWith(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  errorClass: new (...args: any[]) => Error,
  message: string | RegExp,
  code?: string,
): void {
  throws(fn, (error: unknown) => {
    if (!(error instanceof errorClass)) {
      throw new AssertionError({
        message: `expected ${errorClass.name}, got ${String(error)}`,
        actual: error,
        expected: errorClass,
      });
    }
    if (typeof message === "string") strictEqual(error.message, message);
    else match(error.message, message);
    if (code !== undefined) strictEqual((error as { code?: unknown }).code, code);
    return true;
  });
}
