/**
 * FedAdam (Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2, the
 * adam rule for the second moment): see `_adaptive.ts`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { type AdaptiveOptions, AdaptiveServerOptimizer } from "./_adaptive.ts";

/**
 * FedAdam: FedAvg's mean update stepped by a server-side Adam (η 0.01, β1 0.9, β2 0.99, τ 1e-3 by
 * default).
 *
 * @example Usage
 * ```ts
 * import { FedAdam } from "@fedgpu/fedgpu";
 * import { ok } from "node:assert/strict";
 *
 * const strategy = new FedAdam({ serverLr: 0.1 });
 * strategy.begin(new Float32Array([0]));
 * strategy.accumulate(new Float32Array([1]), 1);
 * const [x] = await strategy.finish();
 * ok(x! > 0 && x! <= 0.1); // a step of at most η along the update
 * ```
 */
export class FedAdam extends AdaptiveServerOptimizer {
  /** The strategy's name. */
  override readonly name: string = "fedadam";

  /**
   * Creates the strategy.
   *
   * @param options η, β1, β2, τ.
   * @throws {RangeError} If an option is out of range.
   */
  constructor(options: AdaptiveOptions = {}) {
    super(options, "adam");
  }
}
