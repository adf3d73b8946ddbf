/**
 * A model is a chain of layers whose parameters all live in one flat Float32Array.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { Rng } from "../rng.ts";
import { checkDenseSizes, type DenseLayer, formatLayer, type Layer } from "./layers.ts";
import { denseForward, reluForward, softmaxForward } from "./kernels.ts";

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

/**
 * A sequential model: layers applied in order, parameters in one flat buffer.
 * Build one with {@linkcode Chain}.
 */
export class Model {
  /** The layers, in order. */
  readonly layers: readonly Layer[];
  /** All parameters, each dense layer's weight then bias, in layer order. */
  readonly params: Float32Array;
  /** Views of each dense layer's weight and bias into {@linkcode Model.params}. */
  readonly dense: readonly DenseParams[];
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
    const count = countParams(layers);
    if (params !== undefined && params.length !== count) {
      throw new RangeError(`Model needs ${count} parameters, got ${params.length}`);
    }
    this.layers = Object.freeze([...layers]);
    this.params = params ?? new Float32Array(count);
    const dense: DenseParams[] = [];
    let offset = 0;
    layers.forEach((spec, layer) => {
      if (spec.kind !== "dense") return;
      const wSize = spec.nIn * spec.nOut;
      const w = this.params.subarray(offset, offset + wSize);
      const b = this.params.subarray(offset + wSize, offset + wSize + spec.nOut);
      dense.push({ layer, spec, offset, w, b });
      offset += wSize + spec.nOut;
    });
    this.dense = dense;
    this.inputSize = dense[0]!.spec.nIn;
    this.outputSize = dense[dense.length - 1]!.spec.nOut;
  }

  /** Whether the chain ends with a softmax layer. */
  get endsWithSoftmax(): boolean {
    return this.layers[this.layers.length - 1]!.kind === "softmax";
  }

  /**
   * (Re)initializes the parameters from `seed`: weights of dense layers followed by relu are
   * He-normal (std `sqrt(2 / nIn)`), others Glorot-uniform (limit `sqrt(6 / (nIn + nOut))`);
   * biases are zero.
   *
   * @param seed The seed; the same seed gives the same bits.
   * @returns This model.
   */
  initialize(seed: number): this {
    const rng = new Rng(seed);
    for (const { layer, spec, w, b } of this.dense) {
      const next = this.layers[layer + 1];
      const reluAfter = spec.activation === "relu" || next?.kind === "relu";
      if (reluAfter) {
        const std = Math.sqrt(2 / spec.nIn);
        for (let i = 0; i < w.length; i++) w[i] = rng.normal() * std;
      } else {
        const limit = Math.sqrt(6 / (spec.nIn + spec.nOut));
        for (let i = 0; i < w.length; i++) w[i] = (2 * rng.float() - 1) * limit;
      }
      b.fill(0);
    }
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
    let width = this.inputSize;
    let denseIndex = 0;
    for (const spec of this.layers) {
      switch (spec.kind) {
        case "dense": {
          const { w, b } = this.dense[denseIndex++]!;
          const out = new Float32Array(rows * spec.nOut);
          denseForward(current, w, b, out, rows, spec.nIn, spec.nOut, spec.activation === "relu");
          current = out;
          width = spec.nOut;
          break;
        }
        case "relu": {
          const out = new Float32Array(current.length);
          reluForward(current, out, current.length);
          current = out;
          break;
        }
        case "softmax": {
          const out = new Float32Array(current.length);
          softmaxForward(current, out, rows, width);
          current = out;
          break;
        }
      }
    }
    return current === x ? x.slice() : current;
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
  let count = 0;
  let width: number | undefined = undefined;
  layers.forEach((spec, i) => {
    switch (spec?.kind) {
      case "dense":
        _checkDenseRecord(spec, i);
        if (width !== undefined && spec.nIn !== width) {
          throw new TypeError(
            `Layer ${i + 1} (${
              formatLayer(spec)
            }) expects ${spec.nIn} inputs but receives ${width}`,
          );
        }
        width = spec.nOut;
        count += spec.nIn * spec.nOut + spec.nOut;
        if (count > MAX_PARAMS) {
          throw new RangeError(`Model exceeds the limit of ${MAX_PARAMS} parameters`);
        }
        break;
      case "relu":
        break;
      case "softmax":
        if (i !== layers.length - 1) {
          throw new TypeError(`softmax must be the last layer, found at layer ${i + 1}`);
        }
        break;
      default:
        throw new TypeError(`Layer ${i + 1} is not a layer: ${_describe(spec)}`);
    }
  });
  if (width === undefined) throw new TypeError("A chain needs at least one Dense layer");
  return count;
}

/** Checks a dense record that may not come from `Dense()`. */
function _checkDenseRecord(spec: DenseLayer, i: number): void {
  try {
    checkDenseSizes(spec.nIn, spec.nOut);
  } catch (error) {
    throw new RangeError(`Layer ${i + 1}: ${(error as Error).message}`);
  }
  if (spec.activation !== "identity" && spec.activation !== "relu") {
    throw new TypeError(
      `Layer ${i + 1}: Dense activation must be "identity" or "relu", got ${
        _describe(spec.activation)
      }`,
    );
  }
}

function _describe(value: unknown): string {
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
