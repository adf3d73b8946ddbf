/**
 * FedProx (Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020,
 * Algorithm 2): each client minimises its loss plus the proximal term `μ/2 ||w − w_t||²`,
 * which keeps local models near the global one on heterogeneous data; the server aggregates
 * as the strategy it wraps does (FedAvg by default).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { LocalTraining } from "../local.ts";
import { FedAvg } from "./fedavg.ts";
import {
  checkHyper,
  type SelectContext,
  type Strategy,
  type StrategyState,
  type UpdateKind,
} from "./strategy.ts";

/** Options of {@linkcode FedProx}. */
export interface FedProxOptions {
  /** The proximal coefficient μ > 0 (default 0.01). */
  mu?: number;
}

/**
 * Wraps a strategy so that every round's clients train with the proximal term.
 *
 * @example Usage
 * ```ts
 * import { FedAvg, FedProx, localTraining } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const strategy = new FedProx(new FedAvg(), { mu: 0.1 });
 * strictEqual(strategy.configure(1, localTraining()).proximalMu, 0.1);
 * ```
 */
export class FedProx implements Strategy {
  /** The strategy's name. */
  readonly name = "fedprox";
  /** The proximal coefficient μ. */
  readonly mu: number;
  /** The wrapped strategy. */
  readonly inner: Strategy;

  /**
   * Wraps `inner`.
   *
   * @param inner The aggregation (default FedAvg).
   * @param options μ.
   * @throws {RangeError} If μ is not positive and finite.
   */
  constructor(inner: Strategy = new FedAvg(), options: FedProxOptions = {}) {
    this.inner = inner;
    if (inner.select !== undefined) this.select = (context) => inner.select!(context);
    if (inner.updateBuffer !== undefined) {
      this.updateBuffer = (length) => inner.updateBuffer!(length);
    }
    this.mu = checkHyper("Proximal coefficient mu", options.mu ?? 0.01, 0, Infinity, true);
  }

  /** The kind of update it takes: the inner strategy's. */
  get accepts(): UpdateKind {
    return this.inner.accepts;
  }

  /** Updates accumulated. */
  get count(): number {
    return this.inner.count;
  }

  /** μ and the inner strategy's hyperparameters, prefixed with its name. */
  get config(): Record<string, number | string | boolean> {
    const config: Record<string, number | string | boolean> = { mu: this.mu };
    config.inner = this.inner.name;
    for (const [key, value] of Object.entries(this.inner.config)) config[`inner.${key}`] = value;
    return config;
  }

  /** The inner strategy's choice of clients, where it makes one. */
  select?: (context: SelectContext) => number[];
  /** The inner strategy's update buffer, where it has one. */
  updateBuffer?: (length: number) => Float32Array;

  /**
   * The run's local training with μ set (after the inner strategy's own changes).
   *
   * @param round The round.
   * @param local The run's local training.
   * @returns The round's.
   */
  configure(round: number, local: LocalTraining): LocalTraining {
    const inner = this.inner.configure?.(round, local) ?? local;
    return { ...inner, proximalMu: this.mu };
  }

  /** Starts a round. */
  begin(global: Float32Array): void {
    this.inner.begin(global);
  }

  /** Adds an update. */
  accumulate(update: Float32Array, weight: number): void {
    this.inner.accumulate(update, weight);
  }

  /** Ends the round. */
  finish(): Float32Array | Promise<Float32Array> {
    return this.inner.finish();
  }

  /** The inner strategy's state. */
  saveState(): StrategyState {
    return this.inner.saveState?.() ?? {};
  }

  /** Restores the inner strategy's state. */
  loadState(state: StrategyState): void {
    this.inner.loadState?.(state);
  }

  /** Frees the inner strategy. */
  dispose(): void {
    this.inner.dispose?.();
  }
}
