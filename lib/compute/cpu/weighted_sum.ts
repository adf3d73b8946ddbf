/**
 * The CPU engine's {@linkcode WeightedSum}: its float64 running sum lives in Wasm memory.
 * Updates are copied into one of {@linkcode MAX_FLUSH} slots (or written there by their
 * producer, through {@linkcode WasmWeightedSum.updateBuffer}) and checked there; a full set of
 * slots is folded into the sum in one SIMD pass, each value getting `sum += weight * update`
 * in arrival order, so the sum holds the bits of {@linkcode Float64WeightedSum}.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { checkWeightedUpdate, nonFiniteError, type WeightedSum } from "../reduce.ts";
import { MAX_FLUSH } from "./kernels_wat.ts";
import { heap, wasm } from "./wasm.ts";

const flushes = [
  wasm.fedavg_flush1,
  wasm.fedavg_flush2,
  wasm.fedavg_flush3,
  wasm.fedavg_flush4,
  wasm.fedavg_flush5,
  wasm.fedavg_flush6,
  wasm.fedavg_flush7,
  wasm.fedavg_flush8,
] as const;

/** Flushes for weights whose products with every float32 are exact in float64. */
const exactFlushes = [
  wasm.fedavg_flush1_exact,
  wasm.fedavg_flush2_exact,
  wasm.fedavg_flush3_exact,
  wasm.fedavg_flush4_exact,
  wasm.fedavg_flush5_exact,
  wasm.fedavg_flush6_exact,
  wasm.fedavg_flush7_exact,
  wasm.fedavg_flush8_exact,
] as const;

/**
 * Whether `weight * x` is exact in float64 for every finite float32 `x`: an integer weight of
 * at most 2^29 has at most 29 significant bits, and float32's 24 more fit in float64's 53.
 */
function exactWeight(weight: number): boolean {
  return Number.isInteger(weight) && weight <= 2 ** 29;
}

interface Buffers {
  size: number;
  /** Values per slot and in the sum, a multiple of 8 (the padding stays zero). */
  padded: number;
  sum: number;
  slots: number;
  weights: number;
}

const released = new FinalizationRegistry<Buffers>(freeBuffers);

function freeBuffers(buffers: Buffers): void {
  heap.free(buffers.sum);
  heap.free(buffers.slots);
  heap.free(buffers.weights);
}

/**
 * {@linkcode Float64WeightedSum} in Wasm SIMD, bit for bit. Its memory is freed by
 * {@linkcode WasmWeightedSum.dispose} or when the sum is garbage-collected.
 *
 * @example Usage
 * ```ts
 * import { WasmWeightedSum } from "./weighted_sum.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const sum = new WasmWeightedSum();
 * sum.begin(2);
 * sum.add(new Float32Array([1, 0]), 300);
 * sum.add(new Float32Array([0, 1]), 100);
 * deepStrictEqual(sum.combine(new Float32Array([1, 1]), 1 / 400), new Float32Array([1.75, 1.25]));
 * sum.dispose();
 * ```
 */
export class WasmWeightedSum implements WeightedSum {
  #buffers: Buffers | null = null;
  #begun = false;
  #pending = 0;
  /** Whether every pending weight is exact (see `exactWeight`). */
  #exact = true;
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
   * @param size Values per vector.
   */
  begin(size: number): void {
    let buffers = this.#buffers;
    if (buffers === null || buffers.size !== size) {
      this.dispose();
      const padded = Math.ceil(size / 8) * 8;
      buffers = {
        size,
        padded,
        sum: heap.alloc(padded * 8),
        slots: heap.alloc(MAX_FLUSH * padded * 4),
        weights: heap.alloc(MAX_FLUSH * 8),
      };
      this.#buffers = buffers;
      released.register(this, buffers, this);
    } else {
      new Float64Array(heap.buffer, buffers.sum, buffers.padded).fill(0);
    }
    this.#begun = true;
    this.#pending = 0;
    this.#exact = true;
    this.#totalWeight = 0;
    this.#count = 0;
  }

  /**
   * A buffer in Wasm memory that the next update may be written into (decoded straight into
   * it, say): {@linkcode WasmWeightedSum.add} given this very buffer skips its copy. It is
   * valid until the next call on the sum, or until Wasm memory grows (any allocation of the
   * CPU engine's may do that; the view then has length 0, and an update written there is
   * lost).
   *
   * @param length The update's number of values: the sum's.
   * @returns A view of `length` float32 values in Wasm memory, their initial values
   *   unspecified.
   * @throws {Error} If no sum was begun.
   * @throws {RangeError} If `length` is not the sum's.
   */
  updateBuffer(length: number): Float32Array {
    const buffers = this.#begun ? this.#buffers : null;
    if (buffers === null) throw new Error("Call begin() before updateBuffer()");
    if (length !== buffers.size) {
      throw new RangeError(`Update has ${length} values, the model has ${buffers.size}`);
    }
    return new Float32Array(heap.buffer, this.#slot(buffers), buffers.size);
  }

  /**
   * Adds `weight * update`.
   *
   * @param update Any array, or (without a copy) the one
   *   {@linkcode WasmWeightedSum.updateBuffer} returned.
   * @param weight Its weight, positive and finite.
   * @throws {Error} If no sum was begun.
   * @throws {RangeError} As {@linkcode Float64WeightedSum.add} does; the sum is unchanged.
   */
  add(update: Float32Array, weight: number): void {
    const buffers = this.#begun ? this.#buffers : null;
    if (buffers === null) throw new Error("Call begin() before add()");
    checkWeightedUpdate(buffers.size, update, weight);
    const slot = this.#slot(buffers);
    const memory = heap.buffer;
    if (update.buffer !== memory || update.byteOffset !== slot) {
      new Float32Array(memory, slot, buffers.size).set(update);
    }
    if (wasm.fedavg_check(slot, buffers.size) !== 0) {
      const values = new Float32Array(memory, slot, buffers.size);
      throw nonFiniteError(values.findIndex((v) => !Number.isFinite(v)));
    }
    new Float64Array(memory, buffers.weights, MAX_FLUSH)[this.#pending] = weight;
    this.#exact &&= exactWeight(weight);
    this.#totalWeight += weight;
    this.#count++;
    if (++this.#pending === MAX_FLUSH) this.#flush();
  }

  /** The next free slot's offset. */
  #slot(buffers: Buffers): number {
    return buffers.slots + this.#pending * buffers.padded * 4;
  }

  /** Folds the pending slots into the sum. */
  #flush(): void {
    const buffers = this.#buffers!;
    if (this.#pending === 0) return;
    (this.#exact ? exactFlushes : flushes)[this.#pending - 1]!(
      buffers.sum,
      buffers.slots,
      buffers.padded * 4,
      buffers.weights,
      buffers.padded / 8,
    );
    this.#pending = 0;
    this.#exact = true;
  }

  #flushed(what: string): Buffers {
    const buffers = this.#begun ? this.#buffers : null;
    if (buffers === null) throw new Error(`Call begin() before ${what}()`);
    this.#flush();
    return buffers;
  }

  /**
   * `base + scale * sum`, multiplied then added in float64 and rounded once to float32.
   *
   * @param base The vector added to (not modified).
   * @param scale The factor of the sum.
   * @returns A new array.
   * @throws {Error} If no sum was begun.
   * @throws {RangeError} If `base` has the wrong length.
   */
  combine(base: Float32Array, scale: number): Float32Array {
    const buffers = this.#flushed("combine");
    if (base.length !== buffers.size) {
      throw new RangeError(`Base has ${base.length} values, the sum has ${buffers.size}`);
    }
    // The slots are free after a flush: the result is computed in the first.
    new Float32Array(heap.buffer, buffers.slots, buffers.size).set(base);
    wasm.fedavg_finish(buffers.slots, buffers.slots, buffers.sum, scale, buffers.padded / 4);
    return new Float32Array(heap.buffer, buffers.slots, buffers.size).slice();
  }

  /**
   * A copy of the sum.
   *
   * @returns The float64 sum.
   * @throws {Error} If no sum was begun.
   */
  read(): Float64Array {
    const buffers = this.#flushed("read");
    return new Float64Array(heap.buffer, buffers.sum, buffers.size).slice();
  }

  /** Frees the sum's Wasm memory; a later {@linkcode WasmWeightedSum.begin} allocates anew. */
  dispose(): void {
    this.#begun = false;
    if (this.#buffers === null) return;
    released.unregister(this);
    freeBuffers(this.#buffers);
    this.#buffers = null;
  }
}
