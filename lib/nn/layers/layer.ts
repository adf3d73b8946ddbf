/**
 * The contract a layer kind declares once, in its own file beside this one: what its record
 * holds, its shapes and parameter count, how its parameters start, and its forward and
 * backward passes on the reference engine. The model, the reference engine and model bytes are
 * built from these declarations; the other engines keep a table of their own kernels keyed by
 * the same `kind` (`lib/compute/cpu/ops.ts`, `lib/compute/webgpu/ops.ts`).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Rng } from "../../rng.ts";

/** What every layer record has: a discriminant naming its kind. */
export interface LayerRecord {
  /** The kind, the key of its declaration in the layer table. */
  readonly kind: string;
}

/** The buffers of one layer's forward pass. */
export interface ForwardIo {
  /** Inputs (rows, inputs). */
  readonly x: Float32Array;
  /** Outputs (rows, outputs), overwritten. */
  readonly y: Float32Array;
  /** Examples in the batch. */
  readonly rows: number;
  /** Inputs per example. */
  readonly inputs: number;
  /** The layer's parameters, a view into the model's flat buffer (empty when it has none). */
  readonly params: Float32Array;
}

/** The buffers of one layer's backward pass: those of its forward pass and the gradients. */
export interface BackwardIo extends ForwardIo {
  /** Gradient of the outputs (rows, outputs); the layer may overwrite it. */
  readonly dy: Float32Array;
  /** Gradient of the inputs (rows, inputs), overwritten; `null` when nobody needs it. */
  readonly dx: Float32Array | null;
  /** Gradient of the parameters, laid out like `params`, accumulated with `+=`. */
  readonly grads: Float32Array;
}

/** The declaration of one layer kind. */
export interface LayerKind<L extends LayerRecord = LayerRecord> {
  /** The kind's name, as in its records. */
  readonly kind: L["kind"];
  /**
   * Whether the loss takes this layer's place when training and scoring: the engines feed the
   * layer's inputs to softmax cross-entropy as logits. Such a layer may only come last, and
   * needs no backward pass.
   */
  readonly lossHead?: boolean;
  /**
   * Checks a record that may not come from the kind's factory.
   *
   * @throws {TypeError | RangeError} With a message that does not name the layer's position.
   */
  check(layer: L): void;
  /** The layer as Flux prints it, e.g. `Dense(10 => 5, relu)`. */
  format(layer: L): string;
  /** Inputs per example the layer requires; `undefined` when it takes any width. */
  inputs(layer: L): number | undefined;
  /** Outputs per example given its inputs (`undefined` while no earlier layer fixed them). */
  outputs(layer: L, inputs: number | undefined): number | undefined;
  /** Float32 parameters the layer holds in the model's flat buffer. */
  paramCount(layer: L): number;
  /**
   * Draws the layer's initial parameters from `rng` (layers without parameters omit it).
   *
   * @param params The layer's parameters, overwritten.
   * @param next The layer after it in the chain, if any.
   */
  initialize?(layer: L, params: Float32Array, rng: Rng, next: LayerRecord | undefined): void;
  /** Computes the outputs from the inputs. */
  forward(layer: L, io: ForwardIo): void;
  /** Back-propagates `dy` into `dx` and `grads`; omitted only by a loss head. */
  backward?(layer: L, io: BackwardIo): void;
  /** The fields stored in model bytes; a plain record of numbers and strings. */
  toRecord(layer: L): Record<string, unknown>;
  /**
   * Rebuilds a layer from stored fields.
   *
   * @throws {TypeError | RangeError} If the fields do not describe a valid layer.
   */
  fromRecord(record: Readonly<Record<string, unknown>>): L;
}

/**
 * A value in a message: JSON where it can be printed so, else a short description.
 *
 * @param value Any value.
 * @returns Its description.
 */
export function describeValue(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    // BigInts and circular objects.
    const kind = typeof value === "object" && value !== null
      ? (value as { kind?: unknown }).kind
      : undefined;
    return kind === undefined ? String(value) : `an object of kind ${String(kind)}`;
  }
}
