/**
 * Reduction primitives that aggregation strategies are built on. A {@linkcode WeightedSum}
 * folds weighted float32 vectors into a running sum held in float64 (the CPU engines) or
 * float32 (the GPU), in the order they arrive, so a server holds O(parameters) memory however
 * many clients report. Each engine provides one (`Backend.createWeightedSum()`); strategies
 * never need to know which.
 *
 * Coordinate-wise order statistics (sort, median, trimmed mean) and pairwise distances, which
 * robust aggregation needs over all K updates at once, are meant to join this file as further
 * primitives beside it.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/**
 * A running weighted sum `sum_k w_k u_k` of vectors of one length.
 *
 * A round is `begin(length)`, `add(update, weight)` once per vector, then {@linkcode
 * WeightedSum.combine} or {@linkcode WeightedSum.read}. Every value of every update is checked
 * to be finite before it is added; a rejected update leaves the sum as it was.
 */
export interface WeightedSum {
  /** Vectors added since {@linkcode WeightedSum.begin}. */
  readonly count: number;
  /** The sum of the weights added since {@linkcode WeightedSum.begin}. */
  readonly totalWeight: number;
  /** Starts a new sum of vectors of `length` values (all zero). */
  begin(length: number): void;
  /**
   * Optional: a buffer the next vector may be written into (decoded straight into it, say),
   * valid until the next call; {@linkcode WeightedSum.add} given that very buffer skips a copy.
   * Its initial values are unspecified.
   */
  updateBuffer?(length: number): Float32Array;
  /**
   * Adds `weight * update`.
   *
   * @throws {RangeError} If the length is wrong, a value is not finite, or the weight is not
   *   positive and finite.
   */
  add(update: Float32Array, weight: number): void;
  /**
   * `base + scale * sum` for each value, computed at the sum's precision and rounded once to
   * float32, in a new array (a promise on a device).
   */
  combine(base: Float32Array, scale: number): Float32Array | Promise<Float32Array>;
  /** A copy of the sum, widened to float64 (a promise on a device). */
  read(): Float64Array | Promise<Float64Array>;
  /** Frees what the sum holds (Wasm or GPU memory); `begin` allocates anew. */
  dispose(): void;
}

/**
 * Checks an update and its weight as every {@linkcode WeightedSum} does.
 *
 * @param length The sum's length.
 * @param update The update.
 * @param weight Its weight.
 * @throws {RangeError} If the length is wrong or the weight is not positive and finite.
 */
export function checkWeightedUpdate(length: number, update: Float32Array, weight: number): void {
  if (update.length !== length) {
    throw new RangeError(`Update has ${update.length} values, the model has ${length}`);
  }
  if (!(weight > 0) || !Number.isFinite(weight)) {
    throw new RangeError(`Update weight must be positive and finite, got ${weight}`);
  }
}

/** Throws the error every sum gives for a non-finite value at `index`. */
export function nonFiniteError(index: number): RangeError {
  return new RangeError(`Update holds a non-finite value at index ${index}`);
}

/**
 * The plain reference {@linkcode WeightedSum}: a `Float64Array`, `sum[i] += weight * u[i]` in
 * arrival order. The Wasm engine's sum gives its bits exactly.
 *
 * @example Usage
 * ```ts
 * import { Float64WeightedSum } from "@fedgpu/fedgpu/compute";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const sum = new Float64WeightedSum();
 * sum.begin(2);
 * sum.add(new Float32Array([1, 0]), 300);
 * sum.add(new Float32Array([0, 1]), 100);
 * deepStrictEqual(sum.combine(new Float32Array([1, 1]), 1 / sum.totalWeight), new Float32Array([1.75, 1.25]));
 * ```
 */
export class Float64WeightedSum implements WeightedSum {
  #sum = new Float64Array(0);
  #begun = false;
  #totalWeight = 0;
  #count = 0;

  /** Vectors added. */
  get count(): number {
    return this.#count;
  }

  /** Sum of the weights added. */
  get totalWeight(): number {
    return this.#totalWeight;
  }

  /**
   * Starts a new sum.
   *
   * @param length Values per vector.
   */
  begin(length: number): void {
    if (this.#sum.length !== length) this.#sum = new Float64Array(length);
    else this.#sum.fill(0);
    this.#begun = true;
    this.#totalWeight = 0;
    this.#count = 0;
  }

  /**
   * Adds `weight * update`.
   *
   * @param update The vector.
   * @param weight Its weight, positive and finite.
   * @throws {Error} If no sum was begun.
   * @throws {RangeError} If the length is wrong, a value is not finite or the weight is bad.
   */
  add(update: Float32Array, weight: number): void {
    const sum = this.#sum;
    if (!this.#begun) throw new Error("Call begin() before add()");
    checkWeightedUpdate(sum.length, update, weight);
    for (let i = 0; i < update.length; i++) {
      if (!Number.isFinite(update[i]!)) throw nonFiniteError(i);
    }
    for (let i = 0; i < update.length; i++) sum[i]! += weight * update[i]!;
    this.#totalWeight += weight;
    this.#count++;
  }

  /**
   * `base + scale * sum`, rounded once to float32.
   *
   * @param base The vector added to (not modified).
   * @param scale The factor of the sum.
   * @returns A new array.
   * @throws {Error} If no sum was begun.
   * @throws {RangeError} If `base` has the wrong length.
   */
  combine(base: Float32Array, scale: number): Float32Array {
    const sum = this.#sum;
    if (!this.#begun) throw new Error("Call begin() before combine()");
    if (base.length !== sum.length) {
      throw new RangeError(`Base has ${base.length} values, the sum has ${sum.length}`);
    }
    const out = new Float32Array(sum.length);
    for (let i = 0; i < out.length; i++) out[i] = base[i]! + scale * sum[i]!;
    return out;
  }

  /**
   * A copy of the sum.
   *
   * @returns The float64 sum.
   * @throws {Error} If no sum was begun.
   */
  read(): Float64Array {
    if (!this.#begun) throw new Error("Call begin() before read()");
    return this.#sum.slice();
  }

  /** Drops the sum's memory. */
  dispose(): void {
    this.#sum = new Float64Array(0);
    this.#begun = false;
  }
}
