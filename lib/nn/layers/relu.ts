/**
 * The relu layer: `y = max(0, x)` elementwise, any width, no parameters.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { reluBackward, reluForward } from "../kernels.ts";
import type { LayerKind } from "./layer.ts";

/** The rectified linear unit, `max(0, x)`: a layer of its own or a `Dense` activation. */
export interface ReluLayer {
  /** Discriminant. */
  readonly kind: "relu";
}

/**
 * The rectified linear unit. Pass it to `Dense` as the activation, or use it as a layer of its
 * own in a chain.
 */
export const relu: ReluLayer = Object.freeze({ kind: "relu" });

/** The relu layer's declaration. */
export const RELU: LayerKind<ReluLayer> = {
  kind: "relu",
  check() {},
  format: () => "relu",
  inputs: () => undefined,
  outputs: (_, inputs) => inputs,
  paramCount: () => 0,
  forward(_, { x, y, rows, inputs }) {
    reluForward(x, y, rows * inputs);
  },
  backward(_, { y, dy, dx, rows, inputs }) {
    if (dx !== null) reluBackward(y, dy, dx, rows * inputs);
  },
  toRecord: () => ({ kind: "relu" }),
  fromRecord: () => relu,
};
