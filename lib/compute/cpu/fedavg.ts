/**
 * FedAvg on the CPU engine's Wasm SIMD kernels: the {@linkcode FedAvg} strategy with its
 * float64 running sum in Wasm memory. Updates are copied into one of {@linkcode MAX_FLUSH}
 * slots (or written there by their producer, through {@linkcode WasmFedAvg.updateBuffer}) and
 * checked there; a full set of slots is folded into the sum in one pass, each value getting
 * `sum += weight * update` in arrival order, so the sum holds the reference's bits.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { FedAvg, type FedAvgOptions } from "../../fl/fedavg.ts";
import type { Strategy } from "../../fl/strategy.ts";
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
 * The {@linkcode FedAvg} strategy with its reduction in Wasm SIMD; results equal
 * {@linkcode FedAvg}'s bit for bit. Its memory is freed by {@linkcode WasmFedAvg.dispose} or
 * when the strategy is garbage-collected.
 *
 * @example Usage
 * ```ts
 * import { WasmFedAvg } from "./fedavg.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const fedavg = new WasmFedAvg();
 * fedavg.begin(new Float32Array([1, 1]));
 * fedavg.accumulate(new Float32Array([1, 0]), 300);
 * fedavg.accumulate(new Float32Array([0, 1]), 100);
 * deepStrictEqual(fedavg.finish(), new Float32Array([1.75, 1.25]));
 * fedavg.dispose();
 * ```
 */
export class WasmFedAvg implements Strategy {
  /** The strategy's name. */
  readonly name = "fedavg";
  /** Scale of the averaged update. */
  readonly serverLr: number;
  #global: Float32Array | null = null;
  #buffers: Buffers | null = null;
  #pending = 0;
  /** Whether every pending weight is exact (see `exactWeight`). */
  #exact = true;
  #totalWeight = 0;
  #count = 0;

  /**
   * Creates the strategy.
   *
   * @param options The server learning rate.
   * @throws {RangeError} If `serverLr` is not positive and finite.
   */
  constructor(options: FedAvgOptions = {}) {
    this.serverLr = new FedAvg(options).serverLr;
  }

  /** Updates accumulated in the current round. */
  get count(): number {
    return this.#count;
  }

  /**
   * Starts a round.
   *
   * @param global The current global parameters.
   */
  begin(global: Float32Array): void {
    const size = global.length;
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
    this.#global = global;
    this.#pending = 0;
    this.#exact = true;
    this.#totalWeight = 0;
    this.#count = 0;
  }

  /**
   * A buffer in Wasm memory that the next update may be written into (decoded straight into
   * it, say): {@linkcode WasmFedAvg.accumulate} given this very buffer skips its copy. It is
   * valid until the next call on the strategy, or until Wasm memory grows (any allocation of
   * the CPU engine's may do that; the view then has length 0, and an update written there is
   * lost).
   *
   * @example Usage
   * ```ts
   * import { WasmFedAvg } from "./fedavg.ts";
   * import { deepStrictEqual } from "node:assert/strict";
   *
   * const fedavg = new WasmFedAvg();
   * fedavg.begin(new Float32Array([1, 1]));
   * const buffer = fedavg.updateBuffer(2);
   * buffer.set([1, 0]);
   * fedavg.accumulate(buffer, 300);
   * fedavg.accumulate(new Float32Array([0, 1]), 100);
   * deepStrictEqual(fedavg.finish(), new Float32Array([1.75, 1.25]));
   * fedavg.dispose();
   * ```
   *
   * @param length The update's number of values: the model's.
   * @returns A view of `length` float32 values in Wasm memory, their initial values
   *   unspecified.
   * @throws {Error} If no round was begun.
   * @throws {RangeError} If `length` is not the model's number of values.
   */
  updateBuffer(length: number): Float32Array {
    const buffers = this.#buffers;
    if (this.#global === null || buffers === null) {
      throw new Error("Call begin() before updateBuffer()");
    }
    if (length !== buffers.size) {
      throw new RangeError(`Update has ${length} values, the model has ${buffers.size}`);
    }
    return new Float32Array(heap.buffer, this.#slot(buffers), buffers.size);
  }

  /**
   * Adds `weight * update` to the running sum.
   *
   * @param update The client's parameters minus the global parameters: any array, or (without
   *   a copy) the one {@linkcode WasmFedAvg.updateBuffer} returned.
   * @param weight The client's weight, positive and finite (its example count).
   * @throws {Error} If no round was begun.
   * @throws {RangeError} As {@linkcode FedAvg.accumulate} does; the round is left unchanged.
   */
  accumulate(update: Float32Array, weight: number): void {
    const buffers = this.#buffers;
    if (this.#global === null || buffers === null) {
      throw new Error("Call begin() before accumulate()");
    }
    if (update.length !== buffers.size) {
      throw new RangeError(`Update has ${update.length} values, the model has ${buffers.size}`);
    }
    if (!(weight > 0) || !Number.isFinite(weight)) {
      throw new RangeError(`Update weight must be positive and finite, got ${weight}`);
    }
    const slot = this.#slot(buffers);
    const memory = heap.buffer;
    if (update.buffer !== memory || update.byteOffset !== slot) {
      new Float32Array(memory, slot, buffers.size).set(update);
    }
    if (wasm.fedavg_check(slot, buffers.size) !== 0) {
      const values = new Float32Array(memory, slot, buffers.size);
      const i = values.findIndex((v) => !Number.isFinite(v));
      throw new RangeError(`Update holds a non-finite value at index ${i}`);
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

  /**
   * Ends the round.
   *
   * @returns `global + serverLr * sum / totalWeight`, in a new array.
   * @throws {Error} If no round was begun or no update was accumulated.
   */
  finish(): Float32Array {
    const global = this.#global;
    if (global === null) throw new Error("Call begin() before finish()");
    if (this.#count === 0) throw new Error("Cannot finish a round without updates");
    this.#flush();
    const buffers = this.#buffers!;
    // The slots are free now: the new parameters are computed in the first.
    new Float32Array(heap.buffer, buffers.slots, buffers.size).set(global);
    wasm.fedavg_finish(
      buffers.slots,
      buffers.slots,
      buffers.sum,
      this.serverLr / this.#totalWeight,
      buffers.padded / 4,
    );
    this.#global = null;
    return new Float32Array(heap.buffer, buffers.slots, buffers.size).slice();
  }

  /** Frees the strategy's Wasm memory; a later {@linkcode WasmFedAvg.begin} allocates anew. */
  dispose(): void {
    if (this.#buffers === null) return;
    released.unregister(this);
    freeBuffers(this.#buffers);
    this.#buffers = null;
    this.#global = null;
  }
}
