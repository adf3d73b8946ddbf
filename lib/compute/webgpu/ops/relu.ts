/**
 * The relu layer in a WebGPU plan: the `relu` kernel's `forward` and `backward` entry points,
 * elementwise.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { ReluLayer } from "../../../nn/layers.ts";
import { elementwise, type GpuLayer } from "./op.ts";

/** The relu layer's WebGPU dispatches. */
export const gpuRelu: GpuLayer<ReluLayer> = {
  forward(_, { rt, op }, { l, x, y, inputs }) {
    op(
      rt.pipeline("relu", "forward"),
      { 1: x, 4: y },
      `relu[${l}].forward`,
      elementwise((rows) => rows * inputs),
    );
  },
  backward(_, { rt, op }, { l, y, dy, dx, inputs }) {
    if (dx === null) return;
    op(
      rt.pipeline("relu", "backward"),
      { 2: y, 3: dy, 5: dx },
      `relu[${l}].backward`,
      elementwise((rows) => rows * inputs),
    );
  },
};
