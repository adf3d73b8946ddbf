/**
 * The dense layer: `y = x W + b` with an optional fused relu.
 *
 * Its parameters are an (nIn, nOut) row-major weight followed by an (nOut) bias. Weights of
 * layers followed by relu start He-normal, others Glorot-uniform; biases start at zero.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Rng } from "../../rng.ts";
import { denseBackward, denseForward, reluBackward } from "../kernels.ts";
import { describeValue, type LayerKind, type LayerRecord } from "./layer.ts";
import { relu, type ReluLayer } from "./relu.ts";

/** A fully connected layer `y = x W + b`, optionally followed by a fused activation. */
export interface DenseLayer {
  /** Discriminant. */
  readonly kind: "dense";
  /** Inputs per example. */
  readonly nIn: number;
  /** Outputs per example. */
  readonly nOut: number;
  /** The activation applied to the outputs. */
  readonly activation: "identity" | "relu";
}

/** The largest `nIn` or `nOut` a dense layer may have. */
export const MAX_LAYER_WIDTH = 1 << 24;

/**
 * A fully connected layer with `nIn` inputs and `nOut` outputs.
 *
 * Its weight is an (nIn, nOut) row-major matrix followed by an (nOut) bias in the model's
 * parameter buffer. Weights of layers followed by relu start He-normal, others Glorot-uniform;
 * biases start at zero.
 *
 * @param nIn Inputs per example, a positive integer.
 * @param nOut Outputs per example, a positive integer.
 * @param activation `relu` to fuse a relu after the layer; omitted for none.
 * @returns The layer description.
 * @throws {RangeError} If a size is not a positive integer up to {@linkcode MAX_LAYER_WIDTH}.
 * @throws {TypeError} If the activation is not `relu`.
 *
 * @example Usage
 * ```ts
 * import { Dense, relu } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const layer = Dense(10, 5, relu);
 * strictEqual(layer.activation, "relu");
 * ```
 */
export function Dense(nIn: number, nOut: number, activation?: ReluLayer): DenseLayer {
  checkDenseSizes(nIn, nOut);
  if (activation !== undefined && activation !== relu) {
    const kind = (activation as { kind?: unknown } | null)?.kind;
    throw new TypeError(
      kind === "softmax"
        ? "Dense takes relu as its activation; put softmax after it as a layer of its own"
        : `Dense activation must be relu, got ${String(kind ?? activation)}`,
    );
  }
  return Object.freeze({
    kind: "dense",
    nIn,
    nOut,
    activation: activation === undefined ? "identity" : "relu",
  });
}

/**
 * Checks the sizes of a dense layer.
 *
 * @param nIn Inputs per example.
 * @param nOut Outputs per example.
 * @throws {RangeError} If a size is not an integer in [1, {@linkcode MAX_LAYER_WIDTH}].
 */
export function checkDenseSizes(nIn: unknown, nOut: unknown): void {
  for (const [name, value] of [["nIn", nIn], ["nOut", nOut]] as const) {
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > MAX_LAYER_WIDTH) {
      throw new RangeError(
        `Dense ${name} must be an integer in [1, ${MAX_LAYER_WIDTH}], got ${String(value)}`,
      );
    }
  }
}

function _check(layer: DenseLayer): void {
  checkDenseSizes(layer.nIn, layer.nOut);
  if (layer.activation !== "identity" && layer.activation !== "relu") {
    throw new TypeError(
      `Dense activation must be "identity" or "relu", got ${describeValue(layer.activation)}`,
    );
  }
}

function _initialize(
  layer: DenseLayer,
  params: Float32Array,
  rng: Rng,
  next: LayerRecord | undefined,
): void {
  const { nIn, nOut } = layer;
  const w = params.subarray(0, nIn * nOut);
  if (layer.activation === "relu" || next?.kind === "relu") {
    const std = Math.sqrt(2 / nIn);
    for (let i = 0; i < w.length; i++) w[i] = rng.normal() * std;
  } else {
    const limit = Math.sqrt(6 / (nIn + nOut));
    for (let i = 0; i < w.length; i++) w[i] = (2 * rng.float() - 1) * limit;
  }
  params.subarray(nIn * nOut).fill(0);
}

/** The dense layer's declaration. */
export const DENSE: LayerKind<DenseLayer> = {
  kind: "dense",
  check: _check,
  format: ({ nIn, nOut, activation }) =>
    `Dense(${nIn} => ${nOut}${activation === "relu" ? ", relu" : ""})`,
  inputs: (layer) => layer.nIn,
  outputs: (layer) => layer.nOut,
  paramCount: ({ nIn, nOut }) => nIn * nOut + nOut,
  initialize: _initialize,
  forward({ nIn, nOut, activation }, { x, y, rows, params }) {
    const w = params.subarray(0, nIn * nOut);
    const b = params.subarray(nIn * nOut);
    denseForward(x, w, b, y, rows, nIn, nOut, activation === "relu");
  },
  backward({ nIn, nOut, activation }, { x, y, dy, dx, rows, params, grads }) {
    // The fused relu's mask first, in place: dy becomes the gradient of x W + b.
    if (activation === "relu") reluBackward(y, dy, dy, rows * nOut);
    const w = params.subarray(0, nIn * nOut);
    const dw = grads.subarray(0, nIn * nOut);
    const db = grads.subarray(nIn * nOut);
    denseBackward(x, w, dy, dx, dw, db, rows, nIn, nOut);
  },
  toRecord: ({ nIn, nOut, activation }) => ({ kind: "dense", nIn, nOut, activation }),
  fromRecord(record) {
    const layer = { ...record, kind: "dense" } as unknown as DenseLayer;
    _check(layer);
    return Dense(layer.nIn, layer.nOut, layer.activation === "relu" ? relu : undefined);
  },
};
