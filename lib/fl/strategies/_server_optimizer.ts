/**
 * The common part of the server optimizers of Reddi et al., "Adaptive Federated
 * Optimization", ICLR 2021, Algorithm 2: the round's pseudo-gradient is the example-weighted
 * mean of the client updates, `Δ = Σ_k n_k Δ_k / Σ_k n_k`, read from the reduction in float64,
 * and a server-side optimizer steps the global model with it. The optimizer's moments are the
 * strategy's state (float64, saved bit for bit).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { FedAvg, type FedAvgOptions } from "./fedavg.ts";
import type { StrategyState } from "./strategy.ts";

/** Encodes a float64 vector's bits. */
export function float64ToBytes(values: Float64Array): Uint8Array {
  return new Uint8Array(
    values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength),
  );
}

/**
 * Decodes a float64 vector saved by {@linkcode float64ToBytes}.
 *
 * @param value The saved value.
 * @param name Its name, for the message.
 * @returns The vector.
 * @throws {RangeError} If it is not bytes of whole float64 values.
 */
export function float64FromBytes(value: unknown, name: string): Float64Array {
  if (!(value instanceof Uint8Array) || value.length % 8 !== 0) {
    throw new RangeError(`Strategy state ${name} must be bytes of float64 values`);
  }
  return new Float64Array(value.slice().buffer);
}

/** A FedAvg whose mean update drives a server optimizer with per-parameter moments. */
export abstract class ServerOptimizer extends FedAvg {
  /** The moment vectors by name, sized at the first round (or restored). */
  #moments: Record<string, Float64Array> = {};
  /** Names of the moments, in a fixed order. */
  readonly #names: readonly string[];

  /**
   * Creates the optimizer.
   *
   * @param options The server learning rate η and the reduction.
   * @param moments The names of the optimizer's moment vectors.
   */
  constructor(options: FedAvgOptions, moments: readonly string[]) {
    super(options);
    this.#names = moments;
  }

  /**
   * Starts a round; the moments are created at the first.
   *
   * @param global The current global parameters.
   * @throws {RangeError} If restored moments do not fit the model.
   */
  override begin(global: Float32Array): void {
    for (const name of this.#names) {
      const moment = this.#moments[name];
      if (moment === undefined) {
        this.#moments[name] = this.initialMoment(name, global.length);
      } else if (moment.length !== global.length) {
        throw new RangeError(
          `Strategy state ${name} has ${moment.length} values, the model has ${global.length}`,
        );
      }
    }
    super.begin(global);
  }

  /**
   * Ends the round: one optimizer step along the mean update.
   *
   * @returns The new global parameters.
   * @throws {Error} If no round was begun or no update was accumulated.
   */
  override async finish(): Promise<Float32Array> {
    const global = this.takeRound();
    const totalWeight = this.sum.totalWeight;
    const sum = await this.sum.read();
    for (let i = 0; i < sum.length; i++) sum[i]! /= totalWeight;
    const out = new Float32Array(global.length);
    this.step(global, sum, this.#moments, out);
    return out;
  }

  /**
   * A moment's value before the first round (zero unless overridden).
   *
   * @param _name The moment.
   * @param length The model's number of values.
   * @returns The vector.
   */
  protected initialMoment(_name: string, length: number): Float64Array {
    return new Float64Array(length);
  }

  /**
   * One step: updates `moments` in place and writes the new parameters into `out`.
   *
   * @param global The parameters x_t.
   * @param delta The mean update Δ_t (float64).
   * @param moments The moments, updated in place.
   * @param out Where x_{t+1} goes.
   */
  protected abstract step(
    global: Float32Array,
    delta: Float64Array,
    moments: Record<string, Float64Array>,
    out: Float32Array,
  ): void;

  /**
   * The moments' bits.
   *
   * @returns The state.
   */
  saveState(): StrategyState {
    const state: StrategyState = {};
    for (const name of this.#names) {
      const moment = this.#moments[name];
      if (moment !== undefined) state[name] = float64ToBytes(moment);
    }
    return state;
  }

  /**
   * Restores the moments.
   *
   * @param state What {@linkcode ServerOptimizer.saveState} returned.
   * @throws {RangeError} If a moment is malformed, or only some are present.
   */
  loadState(state: StrategyState): void {
    const present = this.#names.filter((name) => state[name] !== undefined);
    if (present.length === 0) {
      this.#moments = {};
      return;
    }
    if (present.length !== this.#names.length) {
      throw new RangeError(`Strategy state must hold ${this.#names.join(", ")}`);
    }
    const moments: Record<string, Float64Array> = {};
    for (const name of this.#names) moments[name] = float64FromBytes(state[name], name);
    const lengths = new Set(Object.values(moments).map((moment) => moment.length));
    if (lengths.size !== 1) throw new RangeError("Strategy state moments differ in length");
    this.#moments = moments;
  }
}
