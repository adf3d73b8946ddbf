/**
 * FedYogi (Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2, the
 * yogi rule for the second moment): see `_adaptive.ts`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { type AdaptiveOptions, AdaptiveServerOptimizer } from "./_adaptive.ts";

/**
 * FedYogi: FedAvg's mean update stepped by a server-side Yogi (η 0.01, β1 0.9, β2 0.99, τ 1e-3 by
 * default).
 *
 * @example Usage
 * ```ts
 * import { FedYogi } from "@fedgpu/fedgpu";
 * import { ok } from "node:assert/strict";
 *
 * const strategy = new FedYogi({ serverLr: 0.1 });
 * strategy.begin(new Float32Array([0]));
 * strategy.accumulate(new Float32Array([1]), 1);
 * const [x] = await strategy.finish();
 * ok(x! > 0 && x! <= 0.1); // a step of at most η along the update
 * ```
 */
export class FedYogi extends AdaptiveServerOptimizer {
  /** The strategy's name. */
  override readonly name: string = "fedyogi";

  /**
   * Creates the strategy.
   *
   * @param options η, β1, β2, τ.
   * @throws {RangeError} If an option is out of range.
   */
  constructor(options: AdaptiveOptions = {}) {
    super(options, "yogi");
  }
}
