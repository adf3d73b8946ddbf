/**
 * FedAvgM: FedAvg with server momentum (Hsu, Qi and Brown, "Measuring the Effects of
 * Non-Identical Data Distribution for Federated Visual Classification", 2019, section 3; the
 * SGD-with-momentum server optimizer of Reddi et al. 2021): `v ← β v + Δ`, `x ← x + η v`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { FedAvgOptions } from "./fedavg.ts";
import { ServerOptimizer } from "./_server_optimizer.ts";
import { checkHyper } from "./strategy.ts";

/** Options of {@linkcode FedAvgM}. */
export interface FedAvgMOptions extends FedAvgOptions {
  /** Server momentum β in [0, 1) (default 0.9). */
  momentum?: number;
}

/**
 * FedAvg with server momentum. With momentum 0 it is FedAvg with server learning rate η.
 *
 * @example Usage
 * ```ts
 * import { FedAvgM } from "@fedgpu/fedgpu";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const strategy = new FedAvgM({ serverLr: 1, momentum: 0.5 });
 * strategy.begin(new Float32Array([0]));
 * strategy.accumulate(new Float32Array([1]), 1);
 * deepStrictEqual(await strategy.finish(), new Float32Array([1])); // v = 1
 * strategy.begin(new Float32Array([1]));
 * strategy.accumulate(new Float32Array([1]), 1);
 * deepStrictEqual(await strategy.finish(), new Float32Array([2.5])); // v = 0.5 * 1 + 1
 * ```
 */
export class FedAvgM extends ServerOptimizer {
  /** The strategy's name. */
  override readonly name: string = "fedavgm";
  /** Server momentum β. */
  readonly momentum: number;

  /**
   * Creates the strategy.
   *
   * @param options Server learning rate η (default 1), momentum β (default 0.9).
   * @throws {RangeError} If an option is out of range.
   */
  constructor(options: FedAvgMOptions = {}) {
    super(options, ["velocity"]);
    this.momentum = checkHyper("Server momentum", options.momentum ?? 0.9, 0, 1 - Number.EPSILON);
  }

  /** The hyperparameters. */
  override get config(): Record<string, number> {
    return { serverLr: this.serverLr, momentum: this.momentum };
  }

  /** `v ← β v + Δ`, `x ← x + η v`. */
  protected step(
    global: Float32Array,
    delta: Float64Array,
    moments: Record<string, Float64Array>,
    out: Float32Array,
  ): void {
    const v = moments.velocity!;
    const { momentum, serverLr } = this;
    for (let i = 0; i < out.length; i++) {
      v[i] = momentum * v[i]! + delta[i]!;
      out[i] = global[i]! + serverLr * v[i]!;
    }
  }
}
