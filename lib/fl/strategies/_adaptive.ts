/**
 * The adaptive server optimizers of Reddi et al., "Adaptive Federated Optimization", ICLR
 * 2021, Algorithm 2 (FedAdagrad, FedYogi, FedAdam): with the mean update Δ,
 *
 * ```
 * m ← β1 m + (1 − β1) Δ
 * v ← v + Δ²                              (FedAdagrad)
 * v ← v − (1 − β2) Δ² sign(v − Δ²)        (FedYogi)
 * v ← β2 v + (1 − β2) Δ²                  (FedAdam)
 * x ← x + η m / (√v + τ)
 * ```
 *
 * with `m` starting at 0 and `v` at τ² (the paper's `v_{-1} ≥ τ²`), and no bias correction, as
 * in the paper.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { FedAvgOptions } from "./fedavg.ts";
import { ServerOptimizer } from "./_server_optimizer.ts";
import { checkHyper } from "./strategy.ts";

/** Options of the adaptive server optimizers. */
export interface AdaptiveOptions extends FedAvgOptions {
  /** Server learning rate η (default 0.01). */
  serverLr?: number;
  /** First-moment decay β1 in [0, 1) (default 0.9). */
  beta1?: number;
  /** Second-moment decay β2 in [0, 1) (default 0.99; FedAdagrad has none). */
  beta2?: number;
  /** Adaptivity τ > 0 (default 1e-3). */
  tau?: number;
}

/** How the second moment moves. */
export type SecondMoment = "adagrad" | "yogi" | "adam";

/** One of FedAdagrad, FedYogi, FedAdam. */
export abstract class AdaptiveServerOptimizer extends ServerOptimizer {
  /** β1. */
  readonly beta1: number;
  /** β2. */
  readonly beta2: number;
  /** τ. */
  readonly tau: number;
  readonly #rule: SecondMoment;

  /**
   * Creates the optimizer.
   *
   * @param options η, β1, β2, τ.
   * @param rule The second moment's rule.
   * @throws {RangeError} If an option is out of range.
   */
  constructor(options: AdaptiveOptions, rule: SecondMoment) {
    super({ ...options, serverLr: options.serverLr ?? 0.01 }, ["m", "v"]);
    this.#rule = rule;
    this.beta1 = checkHyper("beta1", options.beta1 ?? 0.9, 0, 1 - Number.EPSILON);
    this.beta2 = checkHyper("beta2", options.beta2 ?? 0.99, 0, 1 - Number.EPSILON);
    this.tau = checkHyper("tau", options.tau ?? 1e-3, 0, Infinity, true);
  }

  /** The hyperparameters. */
  override get config(): Record<string, number> {
    const { serverLr, beta1, beta2, tau } = this;
    return this.#rule === "adagrad" ? { serverLr, beta1, tau } : { serverLr, beta1, beta2, tau };
  }

  /** `v` starts at τ². */
  protected override initialMoment(name: string, length: number): Float64Array {
    const moment = new Float64Array(length);
    if (name === "v") moment.fill(this.tau * this.tau);
    return moment;
  }

  /** One step of Algorithm 2. */
  protected step(
    global: Float32Array,
    delta: Float64Array,
    moments: Record<string, Float64Array>,
    out: Float32Array,
  ): void {
    const m = moments.m!;
    const v = moments.v!;
    const { beta1, beta2, tau, serverLr } = this;
    const rule = this.#rule;
    for (let i = 0; i < out.length; i++) {
      const d = delta[i]!;
      const d2 = d * d;
      m[i] = beta1 * m[i]! + (1 - beta1) * d;
      const vi = v[i]!;
      v[i] = rule === "adagrad"
        ? vi + d2
        : rule === "yogi"
        ? vi - (1 - beta2) * d2 * Math.sign(vi - d2)
        : beta2 * vi + (1 - beta2) * d2;
      out[i] = global[i]! + serverLr * m[i]! / (Math.sqrt(v[i]!) + tau);
    }
  }
}
