/**
 * The Wasm engine's table of layer kernels, keyed by layer kind, one file each in `ops/` (see
 * `ops/op.ts` for the contract). A chain runs on the kernels when every layer has an entry
 * here or is a loss head (softmax, folded into the loss); any other chain falls back to the
 * reference engine.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Layer } from "../../nn/layers.ts";
import { wasmDense } from "./ops/dense.ts";
import type { WasmLayer } from "./ops/op.ts";

/** The Wasm kernels of each layer kind that has them. */
export const WASM_OPS: Readonly<
  { [K in Layer["kind"]]?: WasmLayer<Extract<Layer, { kind: K }>> }
> = Object.freeze({
  dense: wasmDense,
});

/**
 * The Wasm kernels of a layer's kind.
 *
 * @param layer The layer.
 * @returns Its op builder, or `undefined` where the kind has none.
 */
export function wasmLayer(layer: Layer): WasmLayer<Layer> | undefined {
  return WASM_OPS[layer.kind] as WasmLayer<Layer> | undefined;
}
