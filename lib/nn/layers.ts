/**
 * Layer descriptions in the Flux style: `Dense(784, 200, relu)`, `relu`, `softmax`.
 *
 * A layer here is a plain, immutable description; its parameters live in the flat buffer of
 * the {@linkcode Model} that holds it.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/** The rectified linear unit, `max(0, x)`: a layer of its own or a `Dense` activation. */
export interface ReluLayer {
  /** Discriminant. */
  readonly kind: "relu";
}

/** The softmax over each example's outputs; only allowed as a chain's last layer. */
export interface SoftmaxLayer {
  /** Discriminant. */
  readonly kind: "softmax";
}

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

/** Any layer a {@linkcode Model} can hold. */
export type Layer = DenseLayer | ReluLayer | SoftmaxLayer;

/**
 * The rectified linear unit. Pass it to {@linkcode Dense} as the activation, or use it as a
 * layer of its own in a chain.
 */
export const relu: ReluLayer = Object.freeze({ kind: "relu" });

/** The softmax layer, which turns a chain's last outputs into class probabilities. */
export const softmax: SoftmaxLayer = Object.freeze({ kind: "softmax" });

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

/**
 * Formats a layer the way Flux prints it: `Dense(10 => 5, relu)`, `relu`, `softmax`.
 *
 * @param layer The layer.
 * @returns Its description.
 */
export function formatLayer(layer: Layer): string {
  switch (layer.kind) {
    case "dense":
      return `Dense(${layer.nIn} => ${layer.nOut}${layer.activation === "relu" ? ", relu" : ""})`;
    case "relu":
      return "relu";
    case "softmax":
      return "softmax";
  }
}
