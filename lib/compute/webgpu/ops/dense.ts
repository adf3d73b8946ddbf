/**
 * The dense layer in a WebGPU plan: forward `matmul` with the bias and a fused relu; backward
 * the relu mask, `matmul` with a transposed input for the weight gradient, `bias_grad`, and
 * `matmul` with a transposed weight for the input gradient where it is needed.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { DenseLayer } from "../../../nn/layers.ts";
import { elementwise, type GpuLayer, uniformWords, workgroups } from "./op.ts";

/** The dense layer's WebGPU dispatches. */
export const gpuDense: GpuLayer<DenseLayer> = {
  forward(spec, { rt, params, op }, { l, x, y, offset }) {
    const { nIn, nOut } = spec;
    op(
      rt.pipeline("matmul", "main", { HAS_BIAS: true, RELU: spec.activation === "relu" }),
      { 1: x, 2: params, 3: params, 4: y },
      `dense[${l}].forward`,
      (rows) => ({
        words: uniformWords([rows, nOut, nIn, 0, offset, offset + nIn * nOut, 0]),
        x: workgroups(nOut, 16),
        y: workgroups(rows, 16),
      }),
    );
  },
  backward(spec, { rt, params, op }, { l, x, y, dy, dx, grads, offset }) {
    const { nIn, nOut } = spec;
    if (spec.activation === "relu") {
      op(
        rt.pipeline("relu", "mask"),
        { 2: y, 6: dy },
        `dense[${l}].relu_mask`,
        elementwise((rows) => rows * nOut),
      );
    }
    if (grads !== null) {
      op(
        rt.pipeline("matmul", "main", { TRANS_A: true }),
        { 1: x, 2: dy, 3: params, 4: grads },
        `dense[${l}].dw`,
        (rows) => ({
          words: uniformWords([nIn, nOut, rows, 0, 0, 0, offset]),
          x: workgroups(nOut, 16),
          y: workgroups(nIn, 16),
        }),
      );
      op(
        rt.pipeline("bias_grad"),
        { 1: dy, 2: grads },
        `dense[${l}].db`,
        (rows) => ({
          words: uniformWords([rows, nOut, offset + nIn * nOut]),
          x: workgroups(nOut, 64),
          y: 1,
        }),
      );
    }
    if (dx !== null) {
      op(
        rt.pipeline("matmul", "main", { TRANS_B: true }),
        { 1: dy, 2: params, 3: params, 4: dx },
        `dense[${l}].dx`,
        (rows) => ({
          words: uniformWords([rows, nIn, nOut, 0, offset, 0, 0]),
          x: workgroups(nIn, 16),
          y: workgroups(rows, 16),
        }),
      );
    }
  },
};
