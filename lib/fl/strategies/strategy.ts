/**
 * The aggregation strategy interface. A strategy chooses a round's clients, configures their
 * local training, folds in their updates as they arrive (so a server holds O(parameters)
 * memory however many clients report), produces the new global model, and has state that a
 * checkpoint saves and restores bit for bit. Strategies are built on the reduction primitives
 * of `lib/compute/reduce.ts`; one may wrap another (FedProx wraps FedAvg; differential
 * privacy will wrap any).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { LocalTraining } from "../local.ts";

/**
 * The kind of update a strategy aggregates: `float32-delta`, a client's trained parameters
 * minus the global parameters it started from. Secure aggregation (integers mod 2^32) and
 * homomorphic encryption (ciphertexts) will add kinds.
 */
export type UpdateKind = "float32-delta";

/** A value a strategy's saved state may hold (msgpack-encodable, bit-exact). */
export type StateValue =
  | number
  | string
  | boolean
  | Uint8Array
  | StateValue[]
  | { [key: string]: StateValue };

/** A strategy's saved state. */
export type StrategyState = { [key: string]: StateValue };

/** What a strategy may use to choose a round's clients. */
export interface SelectContext {
  /** The run's seed. */
  seed: number;
  /** The round number, from 1. */
  round: number;
  /** The attempt at the round, from 0 (a retried round samples afresh). */
  attempt: number;
  /** Candidates, as many as the clients connected (sorted by client key). */
  candidates: number;
  /** The run's client fraction C. */
  fraction: number;
}

/**
 * Aggregates client updates into new global parameters, one round at a time.
 *
 * A round is {@linkcode Strategy.begin}, then {@linkcode Strategy.accumulate} once per client
 * in a fixed order (ascending client key), then {@linkcode Strategy.finish}.
 */
export interface Strategy {
  /** A short name for logs and checkpoints, such as `"fedavg"`. */
  readonly name: string;
  /** The kind of update {@linkcode Strategy.accumulate} takes. */
  readonly accepts: UpdateKind;
  /** Updates accumulated in the current round. */
  readonly count: number;
  /** The hyperparameters, for logs and to refuse resuming a checkpoint with other ones. */
  readonly config: Readonly<Record<string, number | string | boolean>>;
  /**
   * Optional: the indices (ascending) of the candidates that train this round; without it,
   * the driver samples `max(round(C · K), 1)` with `sampleClients`.
   */
  select?(context: SelectContext): number[];
  /** Optional: the local training of this round's clients, given the run's (default: as is). */
  configure?(round: number, local: LocalTraining): LocalTraining;
  /**
   * Starts a round from the current global parameters (not modified, not copied: keep them
   * unchanged until {@linkcode Strategy.finish}).
   */
  begin(global: Float32Array): void;
  /**
   * Optional: a buffer the next update may be written into, valid until the next call on the
   * strategy; {@linkcode Strategy.accumulate} given that very buffer then skips a copy.
   */
  updateBuffer?(length: number): Float32Array;
  /** Folds in one client's update with its weight (its example count). */
  accumulate(update: Float32Array, weight: number): void;
  /** Ends the round and returns the new global parameters in a new array. */
  finish(): Float32Array | Promise<Float32Array>;
  /** Optional: the state carried from round to round (server optimizer moments, say). */
  saveState?(): StrategyState;
  /** Optional: restores what {@linkcode Strategy.saveState} returned, bit for bit. */
  loadState?(state: StrategyState): void;
  /** Optional: frees engine memory the strategy holds. */
  dispose?(): void;
}

/**
 * Checks that a strategy hyperparameter lies in a range.
 *
 * @param name The hyperparameter's name, for the message.
 * @param value Its value.
 * @param low The least allowed value.
 * @param high The greatest allowed value.
 * @param open Whether `low` itself is excluded.
 * @returns `value`.
 * @throws {RangeError} If it is out of range or not finite.
 */
export function checkHyper(
  name: string,
  value: number,
  low: number,
  high = Infinity,
  open = false,
): number {
  const ok = Number.isFinite(value) && (open ? value > low : value >= low) && value <= high;
  if (!ok) {
    const range = `${open ? "(" : "["}${low}, ${high === Infinity ? "∞)" : `${high}]`}`;
    throw new RangeError(`${name} must be in ${range}, got ${value}`);
  }
  return value;
}
