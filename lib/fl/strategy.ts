/**
 * The aggregation strategy interface: a round's client updates are folded in as they arrive,
 * so a server holds O(parameters) memory however many clients report.
 *
 * @module
 */

/**
 * Aggregates client updates into new global parameters, one round at a time.
 *
 * A round is `begin(global)`, then `accumulate(update, weight)` once per client in any
 * number, then `finish()`. An update is the client's trained parameters minus the global
 * parameters it started from.
 */
export interface Strategy {
  /** A short name for logs, such as `"fedavg"`. */
  readonly name: string;
  /** Updates accumulated in the current round. */
  readonly count: number;
  /**
   * Starts a round from the current global parameters (not modified, not copied: keep them
   * unchanged until {@linkcode Strategy.finish}).
   */
  begin(global: Float32Array): void;
  /**
   * Optional: a buffer the next update may be written into (decoded straight into it, say),
   * valid until the next call on the strategy; {@linkcode Strategy.accumulate} given that very
   * buffer then skips a copy. Its initial values are unspecified.
   */
  updateBuffer?(length: number): Float32Array;
  /** Folds in one client's update with its weight (typically its example count). */
  accumulate(update: Float32Array, weight: number): void;
  /**
   * Ends the round and returns the new global parameters in a new array (a promise where the
   * strategy computes on a device, such as the WebGPU backend's).
   */
  finish(): Float32Array | Promise<Float32Array>;
}
