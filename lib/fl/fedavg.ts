/**
 * Federated Averaging (McMahan et al., "Communication-Efficient Learning of Deep Networks from
 * Decentralized Data", AISTATS 2017, Algorithm 1): the new global model is the example-weighted
 * average of the clients' models, `w + serverLr * sum_k n_k (w_k - w) / sum_k n_k`.
 *
 * @module
 */

import type { Strategy } from "./strategy.ts";

/** Options of {@linkcode FedAvg}. */
export interface FedAvgOptions {
  /** Scale of the averaged update applied to the global model (default 1, plain FedAvg). */
  serverLr?: number;
}

/**
 * FedAvg as a streaming {@linkcode Strategy}: a running weighted sum in float64, so memory is
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
  readonly name = "fedavg";
  /** Scale of the averaged update. */
  readonly serverLr: number;
  #global: Float32Array | null = null;
  #sum = new Float64Array(0);
  #totalWeight = 0;
  #count = 0;

  /**
   * Creates the strategy.
   *
   * @param options The server learning rate.
   * @throws {RangeError} If `serverLr` is not positive and finite.
   */
  constructor(options: FedAvgOptions = {}) {
    const { serverLr = 1 } = options;
    if (!(serverLr > 0) || !Number.isFinite(serverLr)) {
      throw new RangeError(`Server learning rate must be positive and finite, got ${serverLr}`);
    }
    this.serverLr = serverLr;
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
    this.#global = global;
    if (this.#sum.length !== global.length) this.#sum = new Float64Array(global.length);
    else this.#sum.fill(0);
    this.#totalWeight = 0;
    this.#count = 0;
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
    const sum = this.#sum;
    if (this.#global === null) throw new Error("Call begin() before accumulate()");
    if (update.length !== sum.length) {
      throw new RangeError(`Update has ${update.length} values, the model has ${sum.length}`);
    }
    if (!(weight > 0) || !Number.isFinite(weight)) {
      throw new RangeError(`Update weight must be positive and finite, got ${weight}`);
    }
    for (let i = 0; i < update.length; i++) {
      if (!Number.isFinite(update[i]!)) {
        throw new RangeError(`Update holds a non-finite value at index ${i}`);
      }
    }
    for (let i = 0; i < update.length; i++) sum[i]! += weight * update[i]!;
    this.#totalWeight += weight;
    this.#count++;
  }

  /**
   * Ends the round.
   *
   * @returns `global + serverLr * sum / totalWeight`, in a new array.
   * @throws {Error} If no round was begun or no update was accumulated (a round is never faked).
   */
  finish(): Float32Array {
    const global = this.#global;
    if (global === null) throw new Error("Call begin() before finish()");
    if (this.#count === 0) throw new Error("Cannot finish a round without updates");
    const scale = this.serverLr / this.#totalWeight;
    const out = new Float32Array(global.length);
    const sum = this.#sum;
    for (let i = 0; i < out.length; i++) out[i] = global[i]! + scale * sum[i]!;
    this.#global = null;
    return out;
  }
}
