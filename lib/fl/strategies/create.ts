/**
 * Strategies by name, for the command line and checkpoints: `fedavg`, `fedavgm`,
 * `fedadagrad`, `fedadam`, `fedyogi`, `fedprox`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { WeightedSum } from "../../compute/reduce.ts";
import { FedAdagrad } from "./fedadagrad.ts";
import { FedAdam } from "./fedadam.ts";
import { FedAvg } from "./fedavg.ts";
import { FedAvgM } from "./fedavgm.ts";
import { FedProx } from "./fedprox.ts";
import { FedYogi } from "./fedyogi.ts";
import type { Strategy } from "./strategy.ts";

/** The strategies {@linkcode createStrategy} knows. */
export const STRATEGY_NAMES = [
  "fedavg",
  "fedavgm",
  "fedadagrad",
  "fedadam",
  "fedyogi",
  "fedprox",
] as const;

/** A strategy's name. */
export type StrategyName = typeof STRATEGY_NAMES[number];

/** Every strategy's hyperparameters; each strategy reads its own and ignores the rest. */
export interface StrategyOptions {
  /** Server learning rate η (FedAvg, FedAvgM and FedProx: 1; adaptive ones: 0.01). */
  serverLr?: number;
  /** FedAvgM's server momentum β (default 0.9). */
  serverMomentum?: number;
  /** Adaptive optimizers' β1 (default 0.9). */
  beta1?: number;
  /** FedAdam's and FedYogi's β2 (default 0.99). */
  beta2?: number;
  /** Adaptive optimizers' τ (default 1e-3). */
  tau?: number;
  /** FedProx's μ (default 0.01). */
  mu?: number;
}

/**
 * Creates a strategy by name.
 *
 * @param name One of {@linkcode STRATEGY_NAMES}.
 * @param options Its hyperparameters.
 * @param sum The reduction to sum on (a backend's `createWeightedSum()`; default float64 in
 *   JavaScript).
 * @returns The strategy.
 * @throws {TypeError} If the name is unknown.
 * @throws {RangeError} If a hyperparameter is out of range.
 *
 * @example Usage
 * ```ts
 * import { createStrategy } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(createStrategy("fedadam", { serverLr: 0.03 }).config.serverLr, 0.03);
 * ```
 */
export function createStrategy(
  name: string,
  options: StrategyOptions = {},
  sum?: WeightedSum,
): Strategy {
  const base = { ...(sum === undefined ? {} : { sum }), ...options };
  switch (name as StrategyName) {
    case "fedavg":
      return new FedAvg(base);
    case "fedavgm":
      return new FedAvgM({ ...base, momentum: options.serverMomentum ?? 0.9 });
    case "fedadagrad":
      return new FedAdagrad(base);
    case "fedadam":
      return new FedAdam(base);
    case "fedyogi":
      return new FedYogi(base);
    case "fedprox":
      return new FedProx(new FedAvg(base), options);
    default:
      throw new TypeError(
        `Strategy must be one of ${STRATEGY_NAMES.join(", ")}, got ${JSON.stringify(name)}`,
      );
  }
}
