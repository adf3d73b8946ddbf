/**
 * A model is a chain of layers whose parameters all live in one flat Float32Array.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { Rng } from "../rng.ts";
import { type DenseLayer, findLayerKind, formatLayer, type Layer, layerKind } from "./layers.ts";
import { describeValue } from "./layers/layer.ts";

/** The largest number of parameters a model may have (2^28, 1 GiB of float32). */
export const MAX_PARAMS = 1 << 28;

/** Views of one dense layer's parameters inside the model's flat buffer. */
export interface DenseParams {
  /** Index of the layer in the chain. */
  readonly layer: number;
  /** The layer description. */
  readonly spec: DenseLayer;
  /** Offset of the weight in the flat buffer, in floats. */
  readonly offset: number;
  /** Weight (nIn, nOut), a view into the flat buffer. */
  readonly w: Float32Array;
  /** Bias (nOut), a view into the flat buffer. */
  readonly b: Float32Array;
}

/** The shapes of a valid chain. */
interface _ChainShape {
  /** widths[l]: values per example entering layer l; widths[layers.length]: the outputs. */
  widths: number[];
  /** offsets[l]: where layer l's parameters start in the flat buffer; offsets[layers.length]: the count. */
  offsets: number[];
}

/**
 * A sequential model: layers applied in order, parameters in one flat buffer.
 * Build one with {@linkcode Chain}.
 */
export class Model {
  /** The layers, in order. */
  readonly layers: readonly Layer[];
  /** All parameters, each layer's in layer order (a dense layer's weight, then its bias). */
  readonly params: Float32Array;
  /** Views of each dense layer's weight and bias into {@linkcode Model.params}. */
  readonly dense: readonly DenseParams[];
  /** Values per example entering each layer, then the outputs: `layers.length + 1` widths. */
  readonly widths: readonly number[];
  /** Where each layer's parameters start in {@linkcode Model.params}, then their count. */
  readonly offsets: readonly number[];
  /** Inputs per example. */
  readonly inputSize: number;
  /** Outputs per example. */
  readonly outputSize: number;

  /**
   * Wraps `layers` around a parameter buffer. Prefer {@linkcode Chain}, which also
   * initializes the parameters.
   *
   * @param layers The layers; sizes must chain and softmax may only come last.
   * @param params The parameter buffer, of {@linkcode countParams} floats; zeros when omitted.
   * @throws {TypeError} If the layers do not form a valid chain.
   * @throws {RangeError} If `params` has the wrong length.
   */
  constructor(layers: readonly Layer[], params?: Float32Array) {
    const { widths, offsets } = _shape(layers);
    const count = offsets[layers.length]!;
    if (params !== undefined && params.length !== count) {
      throw new RangeError(`Model needs ${count} parameters, got ${params.length}`);
    }
    this.layers = Object.freeze([...layers]);
    this.params = params ?? new Float32Array(count);
    this.widths = Object.freeze(widths);
    this.offsets = Object.freeze(offsets);
    this.dense = this.layers.flatMap((spec, layer) => {
      if (spec.kind !== "dense") return [];
      const offset = offsets[layer]!;
      const wSize = spec.nIn * spec.nOut;
      const w = this.params.subarray(offset, offset + wSize);
      const b = this.params.subarray(offset + wSize, offset + wSize + spec.nOut);
      return [{ layer, spec, offset, w, b }];
    });
    this.inputSize = widths[0]!;
    this.outputSize = widths[layers.length]!;
  }

  /** Whether the chain ends with a softmax layer. */
  get endsWithSoftmax(): boolean {
    return this.layers[this.layers.length - 1]!.kind === "softmax";
  }

  /**
   * The parameters of layer `l`, a view into {@linkcode Model.params} (empty for a layer
   * without parameters).
   *
   * @param l The layer's index.
   * @returns The view.
   */
  layerParams(l: number): Float32Array {
    return this.params.subarray(this.offsets[l]!, this.offsets[l + 1]!);
  }

  /**
   * (Re)initializes the parameters from `seed`, layer by layer in order: weights of dense
   * layers followed by relu are He-normal (std `sqrt(2 / nIn)`), others Glorot-uniform (limit
   * `sqrt(6 / (nIn + nOut))`); biases are zero.
   *
   * @param seed The seed; the same seed gives the same bits.
   * @returns This model.
   */
  initialize(seed: number): this {
    const rng = new Rng(seed);
    this.layers.forEach((spec, l) => {
      layerKind(spec).initialize?.(spec, this.layerParams(l), rng, this.layers[l + 1]);
    });
    return this;
  }

  /**
   * Runs the model on a batch.
   *
   * @param x Inputs (batch, inputSize).
   * @param batch Examples in `x`; inferred from its length when omitted.
   * @returns Outputs (batch, outputSize), in a new array.
   * @throws {RangeError} If `x` does not hold `batch` examples.
   */
  forward(x: Float32Array, batch?: number): Float32Array {
    const rows = batch ?? x.length / this.inputSize;
    if (!Number.isInteger(rows) || rows < 0 || x.length !== rows * this.inputSize) {
      throw new RangeError(
        `Input of ${x.length} values is not ${
          batch ?? "a whole number of"
        } examples of ${this.inputSize}`,
      );
    }
    let current = x;
    this.layers.forEach((spec, l) => {
      const y = new Float32Array(rows * this.widths[l + 1]!);
      const inputs = this.widths[l]!;
      layerKind(spec).forward(spec, { x: current, y, rows, inputs, params: this.layerParams(l) });
      current = y;
    });
    return current;
  }

  /** A deep copy: same layers, a copy of the parameters. */
  clone(): Model {
    return new Model(this.layers, this.params.slice());
  }

  /** The chain as Flux prints it, e.g. `Chain(Dense(10 => 5, relu), Dense(5 => 2), softmax)`. */
  toString(): string {
    return `Chain(${this.layers.map(formatLayer).join(", ")})`;
  }
}

/**
 * Counts the parameters of a chain of layers, checking that it is a valid chain.
 *
 * @param layers The layers.
 * @returns The number of float32 parameters.
 * @throws {TypeError} If the chain is empty, has no dense layer, sizes do not chain, softmax is
 *   not last, or a layer is not one this library knows.
 * @throws {RangeError} If the model would exceed {@linkcode MAX_PARAMS} parameters.
 */
export function countParams(layers: readonly Layer[]): number {
  return _shape(layers).offsets[layers.length]!;
}

/** Checks a chain layer by layer and works out its widths and parameter offsets. */
function _shape(layers: readonly Layer[]): _ChainShape {
  const widths: (number | undefined)[] = [undefined];
  const offsets = [0];
  layers.forEach((spec, i) => {
    const kind = findLayerKind(spec?.kind);
    if (kind === undefined) {
      throw new TypeError(`Layer ${i + 1} is not a layer: ${describeValue(spec)}`);
    }
    try {
      kind.check(spec);
    } catch (error) {
      const message = `Layer ${i + 1}: ${(error as Error).message}`;
      throw error instanceof RangeError ? new RangeError(message) : new TypeError(message);
    }
    if (kind.lossHead && i !== layers.length - 1) {
      throw new TypeError(`${kind.kind} must be the last layer, found at layer ${i + 1}`);
    }
    const width = widths[i];
    const need = kind.inputs(spec);
    if (need !== undefined && width !== undefined && need !== width) {
      throw new TypeError(
        `Layer ${i + 1} (${kind.format(spec)}) expects ${need} inputs but receives ${width}`,
      );
    }
    // A layer that takes any width passes an unknown one on; the first fixed one fills it in.
    if (width === undefined && need !== undefined) widths.fill(need);
    widths.push(kind.outputs(spec, widths[i]));
    const count = offsets[i]! + kind.paramCount(spec);
    if (count > MAX_PARAMS) {
      throw new RangeError(`Model exceeds the limit of ${MAX_PARAMS} parameters`);
    }
    offsets.push(count);
  });
  if (widths[layers.length] === undefined) {
    throw new TypeError("A chain needs at least one Dense layer");
  }
  return { widths: widths as number[], offsets };
}

/**
 * Builds a model from layers, Flux style, with parameters initialized from `seed` 0 (call
 * {@linkcode Model.initialize} for another seed).
 *
 * @param layers The layers, in order.
 * @returns The model.
 * @throws {TypeError} If the layers do not form a valid chain.
 *
 * @example Usage
 * ```ts
 * import { Chain, Dense, relu, softmax } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const model = Chain(Dense(10, 5, relu), Dense(5, 2), softmax);
 * strictEqual(model.params.length, 10 * 5 + 5 + 5 * 2 + 2);
 * const probs = model.forward(new Float32Array(3 * 10).fill(0.5)); // a batch of 3
 * strictEqual(probs.length, 3 * 2);
 * strictEqual(String(model), "Chain(Dense(10 => 5, relu), Dense(5 => 2), softmax)");
 * ```
 */
export function Chain(...layers: Layer[]): Model {
  return new Model(layers).initialize(0);
}
