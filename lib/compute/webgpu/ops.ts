/**
 * The WebGPU engine's table of layer dispatches, keyed by layer kind, one file each in `ops/`
 * (see `ops/op.ts` for the contract). A trailing loss head (softmax) needs no entry: the plan
 * folds it into the loss kernel.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Layer } from "../../nn/layers.ts";
import { gpuDense } from "./ops/dense.ts";
import type { GpuLayer } from "./ops/op.ts";
import { gpuRelu } from "./ops/relu.ts";

/** The WebGPU dispatches of each layer kind that has them. */
export const GPU_OPS: Readonly<
  { [K in Layer["kind"]]?: GpuLayer<Extract<Layer, { kind: K }>> }
> = Object.freeze({
  dense: gpuDense,
  relu: gpuRelu,
});

/**
 * The WebGPU dispatches of a layer's kind.
 *
 * @param layer The layer.
 * @returns Its dispatches.
 * @throws {TypeError} If the kind has none.
 */
export function gpuLayer(layer: Layer): GpuLayer<Layer> {
  const ops = GPU_OPS[layer.kind] as GpuLayer<Layer> | undefined;
  if (ops === undefined) {
    throw new TypeError(`Layer kind ${layer.kind} has no WebGPU kernels`);
  }
  return ops;
}
