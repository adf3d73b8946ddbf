/**
 * Layer descriptions in the Flux style, `Dense(784, 200, relu)`, `relu`, `softmax`, and the
 * table of layer kinds that the model, the reference engine and model bytes are built from.
 *
 * A layer here is a plain, immutable record; its parameters live in the flat buffer of the
 * `Model` that holds it. Each kind is declared once, in its own file under `layers/` (see
 * `layers/layer.ts` for the contract); a new kind is a new file there plus its line in
 * {@linkcode LAYER_KINDS} and in the {@linkcode Layer} union.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { DENSE, type DenseLayer } from "./layers/dense.ts";
import type { LayerKind } from "./layers/layer.ts";
import { RELU, type ReluLayer } from "./layers/relu.ts";
import { SOFTMAX, type SoftmaxLayer } from "./layers/softmax.ts";

export { checkDenseSizes, Dense, type DenseLayer, MAX_LAYER_WIDTH } from "./layers/dense.ts";
export type { BackwardIo, ForwardIo, LayerKind, LayerRecord } from "./layers/layer.ts";
export { relu, type ReluLayer } from "./layers/relu.ts";
export { softmax, type SoftmaxLayer } from "./layers/softmax.ts";

/** Any layer a `Model` can hold. */
export type Layer = DenseLayer | ReluLayer | SoftmaxLayer;

/** Every layer kind's declaration, keyed by kind. */
export const LAYER_KINDS: Readonly<
  { [K in Layer["kind"]]: LayerKind<Extract<Layer, { kind: K }>> }
> = Object.freeze({
  dense: DENSE,
  relu: RELU,
  softmax: SOFTMAX,
});

/**
 * The declaration of a kind by name.
 *
 * @param kind A kind's name (any value: records may not come from this library).
 * @returns Its declaration, or `undefined` for an unknown kind.
 */
export function findLayerKind(kind: unknown): LayerKind<Layer> | undefined {
  if (typeof kind !== "string" || !Object.hasOwn(LAYER_KINDS, kind)) return undefined;
  return LAYER_KINDS[kind as Layer["kind"]] as LayerKind<Layer>;
}

/**
 * The declaration of a layer's kind.
 *
 * @param layer A layer of a valid chain.
 * @returns Its declaration.
 * @throws {TypeError} If its kind is unknown.
 */
export function layerKind(layer: Layer): LayerKind<Layer> {
  const kind = findLayerKind(layer?.kind);
  if (kind === undefined) throw new TypeError(`Unknown layer kind ${String(layer?.kind)}`);
  return kind;
}

/**
 * Formats a layer the way Flux prints it: `Dense(10 => 5, relu)`, `relu`, `softmax`.
 *
 * @param layer The layer.
 * @returns Its description.
 */
export function formatLayer(layer: Layer): string {
  return layerKind(layer).format(layer);
}
