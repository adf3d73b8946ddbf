/**
 * The gradient of the loss with respect to a model's inputs, on the reference engine.
 *
 * The loss is the one `train` minimizes: the batch mean of softmax cross-entropy on
 * the logits (a trailing softmax is folded into the loss).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { softmaxCrossEntropy } from "./kernels.ts";
import type { Model } from "./model.ts";
import { Workspace } from "./workspace.ts";

/**
 * Checks the arguments of {@linkcode inputGradient} (and of every engine's version of it).
 *
 * @param model The model.
 * @param x Inputs (batch, inputSize).
 * @param labels Class labels (batch).
 * @returns The batch size.
 * @throws {TypeError} If `x` is not a Float32Array or a label is not an integer.
 * @throws {RangeError} If `x` is empty or not whole examples, `labels` has another length, or
 *   a label is outside [0, outputSize).
 */
export function checkGradientInputs(
  model: Model,
  x: Float32Array,
  labels: ArrayLike<number>,
): number {
  if (!(x instanceof Float32Array)) {
    throw new TypeError(`Inputs must be a Float32Array, got ${Object.prototype.toString.call(x)}`);
  }
  const rows = x.length / model.inputSize;
  if (x.length === 0 || !Number.isInteger(rows)) {
    throw new RangeError(
      `Input of ${x.length} values is not a positive whole number of examples of ${model.inputSize}`,
    );
  }
  if (labels?.length !== rows) {
    throw new RangeError(`Expected ${rows} labels, one per example, got ${labels?.length}`);
  }
  for (let i = 0; i < rows; i++) {
    const label = labels[i];
    if (!Number.isInteger(label)) {
      throw new TypeError(`Label ${i} must be an integer, got ${String(label)}`);
    }
    if (label! < 0 || label! >= model.outputSize) {
      throw new RangeError(
        `Label ${i} must be in [0, ${model.outputSize}), got ${label}`,
      );
    }
  }
  return rows;
}

/**
 * The gradient of the mean softmax cross-entropy of `model` on `(x, labels)` with respect to
 * the inputs `x`: `dL/dx` for `L = (1 / batch) Σᵢ (logsumexp(zᵢ) - zᵢ[labelᵢ])`, `z` the logits.
 * The model is left alone.
 *
 * @param model The model.
 * @param x Inputs (batch, inputSize), at least one example.
 * @param labels Class labels (batch), integers in [0, outputSize).
 * @returns `dL/dx`, (batch, inputSize), in a new array.
 * @throws {TypeError} If `x` is not a Float32Array or a label is not an integer.
 * @throws {RangeError} If `x` is empty or not whole examples, `labels` has another length, or
 *   a label is outside [0, outputSize).
 *
 * @example Usage
 * ```ts
 * import { Chain, Dense, inputGradient, softmax } from "@fedgpu/fedgpu";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const model = Chain(Dense(3, 2), softmax).initialize(1);
 * const x = new Float32Array([0.5, -1, 2, 1, 0, -0.5]); // two examples
 * const dx = inputGradient(model, x, [0, 1]);
 * strictEqual(dx.length, x.length);
 * ok(dx.some((g) => g !== 0));
 * ```
 */
export function inputGradient(
  model: Model,
  x: Float32Array,
  labels: ArrayLike<number>,
): Float32Array {
  const rows = checkGradientInputs(model, x, labels);
  const ws = new Workspace(model, rows, { training: true, inputGradient: true });
  ws.acts[0]!.set(x);
  for (let i = 0; i < rows; i++) ws.labels[i] = labels[i]!;
  const logits = ws.forward(rows);
  softmaxCrossEntropy(logits, ws.labels, ws.grads[ws.depth]!, rows, model.outputSize);
  ws.backward(rows);
  return ws.grads[0]!;
}
