/**
 * Federated Averaging (McMahan et al., "Communication-Efficient Learning of Deep Networks from
 * Decentralized Data", AISTATS 2017, Algorithm 1): the new global model is the example-weighted
 * average of the clients' models, `w + serverLr * sum_k n_k (w_k - w) / sum_k n_k`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { Float64WeightedSum, type WeightedSum } from "../../compute/reduce.ts";
import { checkHyper, type Strategy, type UpdateKind } from "./strategy.ts";

/** Options of {@linkcode FedAvg}. */
export interface FedAvgOptions {
  /** Scale of the averaged update applied to the global model (default 1, plain FedAvg). */
  serverLr?: number;
  /**
   * The reduction to sum on (default a {@linkcode Float64WeightedSum}; a backend's
   * `createWeightedSum()` runs it on that engine).
   */
  sum?: WeightedSum;
}

/**
 * FedAvg as a streaming {@linkcode Strategy}: a running weighted sum, so memory is
 * O(parameters) and the result does not depend on how many clients reported.
 *
 * @example Usage
 * ```ts
 * import { FedAvg } from "@fedgpu/fedgpu";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const fedavg = new FedAvg();
 * fedavg.begin(new Float32Array([1, 1]));
 * fedavg.accumulate(new Float32Array([1, 0]), 300); // a client with 300 examples
 * fedavg.accumulate(new Float32Array([0, 1]), 100);
 * deepStrictEqual(fedavg.finish(), new Float32Array([1.75, 1.25]));
 * ```
 */
export class FedAvg implements Strategy {
  /** The strategy's name. */
  readonly name: string = "fedavg";
  /** The kind of update it takes. */
  readonly accepts: UpdateKind = "float32-delta";
  /** Scale of the averaged update. */
  readonly serverLr: number;
  /** The reduction it sums on. */
  protected readonly sum: WeightedSum;
  #global: Float32Array | null = null;

  /**
   * Creates the strategy.
   *
   * @param options The server learning rate and the reduction.
   * @throws {RangeError} If `serverLr` is not positive and finite.
   */
  constructor(options: FedAvgOptions = {}) {
    this.serverLr = checkHyper("Server learning rate", options.serverLr ?? 1, 0, Infinity, true);
    this.sum = options.sum ?? new Float64WeightedSum();
  }

  /** The hyperparameters. */
  get config(): Record<string, number | string | boolean> {
    return { serverLr: this.serverLr };
  }

  /** Updates accumulated in the current round. */
  get count(): number {
    return this.#global === null ? 0 : this.sum.count;
  }

  /**
   * Starts a round.
   *
   * @param global The current global parameters.
   */
  begin(global: Float32Array): void {
    this.sum.begin(global.length);
    this.#global = global;
  }

  /**
   * A buffer the next update may be decoded into, where the reduction has one.
   *
   * @param length The model's number of values.
   * @returns The buffer.
   * @throws {Error} If the reduction has none, or no round was begun.
   */
  updateBuffer(length: number): Float32Array {
    if (this.#global === null) throw new Error("Call begin() before updateBuffer()");
    if (this.sum.updateBuffer === undefined) throw new Error("This reduction has no buffer");
    return this.sum.updateBuffer(length);
  }

  /**
   * Adds `weight * update` to the running sum.
   *
   * @param update The client's parameters minus the global parameters.
   * @param weight The client's weight, positive and finite (its example count).
   * @throws {Error} If no round was begun.
   * @throws {RangeError} If the update has the wrong length or a non-finite value, or the
   *   weight is not positive and finite; the round's sum is left unchanged.
   */
  accumulate(update: Float32Array, weight: number): void {
    if (this.#global === null) throw new Error("Call begin() before accumulate()");
    this.sum.add(update, weight);
  }

  /**
   * Ends the round.
   *
   * @returns `global + serverLr * sum / totalWeight`, in a new array.
   * @throws {Error} If no round was begun or no update was accumulated (a round is never faked).
   */
  finish(): Float32Array | Promise<Float32Array> {
    const global = this.takeRound();
    return this.sum.combine(global, this.serverLr / this.sum.totalWeight);
  }

  /**
   * Ends the round's bookkeeping for {@linkcode FedAvg.finish} and its subclasses.
   *
   * @returns The round's global parameters.
   * @throws {Error} If no round was begun or no update was accumulated.
   */
  protected takeRound(): Float32Array {
    const global = this.#global;
    if (global === null) throw new Error("Call begin() before finish()");
    if (this.sum.count === 0) throw new Error("Cannot finish a round without updates");
    this.#global = null;
    return global;
  }

  /** Frees the reduction's memory. */
  dispose(): void {
    this.sum.dispose();
  }
}
