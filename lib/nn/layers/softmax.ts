/**
 * The softmax layer: each example's outputs turned into class probabilities. It may only come
 * last; when training and scoring, softmax cross-entropy on its inputs takes its place.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { softmaxForward } from "../kernels.ts";
import type { LayerKind } from "./layer.ts";

/** The softmax over each example's outputs; only allowed as a chain's last layer. */
export interface SoftmaxLayer {
  /** Discriminant. */
  readonly kind: "softmax";
}

/** The softmax layer, which turns a chain's last outputs into class probabilities. */
export const softmax: SoftmaxLayer = Object.freeze({ kind: "softmax" });

/** The softmax layer's declaration. */
export const SOFTMAX: LayerKind<SoftmaxLayer> = {
  kind: "softmax",
  lossHead: true,
  check() {},
  format: () => "softmax",
  inputs: () => undefined,
  outputs: (_, inputs) => inputs,
  paramCount: () => 0,
  forward(_, { x, y, rows, inputs }) {
    softmaxForward(x, y, rows, inputs);
  },
  toRecord: () => ({ kind: "softmax" }),
  fromRecord: () => softmax,
};
