/**
 * One client update pipeline: local training gives the trained parameters; {@linkcode
 * computeDelta} makes the update `local − global`; an ordered list of stages transforms it on
 * the client ({@linkcode UpdateStage.apply}) and, in reverse order on the server, inverts or
 * checks it ({@linkcode UpdateStage.invert}); the wire carries the stage ids, the codec and the
 * bytes. The run's pipeline is chosen by the server and sent with every task; a client
 * announces the stages it supports in its hello, and a server refuses one that lacks a stage
 * the run requires.
 *
 * Stages now: `clip` (L2 norm clipping, the first step of DP-FedAvg: McMahan et al., "Learning
 * Differentially Private Recurrent Language Models", ICLR 2018, Algorithm 1, `ClipFn`).
 * Differential privacy, compression and secure aggregation add theirs here.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/** A stage of the pipeline as the run declares it: its id and numeric parameters. */
export interface StageSpec {
  /** The stage's id, such as `clip`. */
  id: string;
  /** Its parameters, in the stage's order (`clip`: the norm bound). */
  params: number[];
}

/** One transformation of an update. */
export interface UpdateStage {
  /** The stage's id. */
  readonly id: string;
  /** The spec it was made from. */
  readonly spec: StageSpec;
  /** Client side: transforms the update (in place or into a new array) and returns it. */
  apply(update: Float32Array): Float32Array;
  /**
   * Server side: undoes the stage where it can, or checks what it promised, and returns the
   * update; a hostile update throws.
   *
   * @throws {RangeError} If the update breaks the stage's promise.
   */
  invert(update: Float32Array): Float32Array;
}

/** The codec of update bytes on the wire: little-endian float32 values. */
export const UPDATE_CODEC = "float32";

/**
 * The update of a client: `local[i] − global[i]` in float32, the one place it is computed.
 *
 * @param local The trained parameters.
 * @param global The parameters training started from.
 * @param out Where to write (default a new array).
 * @returns `out`.
 * @throws {RangeError} If the lengths differ.
 */
export function computeDelta(
  local: Float32Array,
  global: Float32Array,
  out: Float32Array = new Float32Array(global.length),
): Float32Array {
  if (local.length !== global.length || out.length !== global.length) {
    throw new RangeError(
      `Delta of ${local.length} and ${global.length} values into ${out.length} does not fit`,
    );
  }
  for (let i = 0; i < out.length; i++) out[i] = local[i]! - global[i]!;
  return out;
}

/**
 * The L2 norm of a vector, summed in float64.
 *
 * @param values The vector.
 * @returns `sqrt(sum values[i]²)`.
 */
export function l2Norm(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  return Math.sqrt(sum);
}

/**
 * L2 norm clipping: `Δ · min(1, S / ||Δ||₂)`. The server checks that `||Δ||₂ ≤ S` (with a
 * relative slack of 1e-5 for float32 rounding) and refuses a larger update.
 *
 * Protects against: one client's update outweighing the others by its size (a scaled-up or
 * poisoned update is bounded). Does not protect against: bounded malicious updates, or
 * privacy leaks (clipping alone adds no noise; differential privacy adds noise on top).
 */
export class ClipStage implements UpdateStage {
  /** The stage's id. */
  readonly id = "clip";
  /** The norm bound S. */
  readonly norm: number;

  /**
   * Creates the stage.
   *
   * @param norm The bound S, positive and finite.
   * @throws {RangeError} If `norm` is not positive and finite.
   */
  constructor(norm: number) {
    if (!(norm > 0) || !Number.isFinite(norm)) {
      throw new RangeError(`Clip norm must be positive and finite, got ${norm}`);
    }
    this.norm = norm;
  }

  /** The stage's spec. */
  get spec(): StageSpec {
    return { id: this.id, params: [this.norm] };
  }

  /**
   * Scales the update down to norm S if it is longer.
   *
   * @param update The update, scaled in place.
   * @returns `update`.
   */
  apply(update: Float32Array): Float32Array {
    const norm = l2Norm(update);
    if (norm > this.norm) {
      const scale = this.norm / norm;
      for (let i = 0; i < update.length; i++) update[i] = update[i]! * scale;
    }
    return update;
  }

  /**
   * Checks the bound.
   *
   * @param update The received update.
   * @returns `update`.
   * @throws {RangeError} If its norm exceeds S.
   */
  invert(update: Float32Array): Float32Array {
    const norm = l2Norm(update);
    if (!(norm <= this.norm * (1 + 1e-5))) {
      throw new RangeError(`Update's L2 norm ${norm} exceeds the clip bound ${this.norm}`);
    }
    return update;
  }
}

/** The stages this library implements, by id, with the parameter count each takes. */
export const UPDATE_STAGES: Readonly<
  Record<string, { params: number; create: (params: number[]) => UpdateStage }>
> = Object.freeze({
  clip: { params: 1, create: (params: number[]) => new ClipStage(params[0]!) },
});

/** The ids of {@linkcode UPDATE_STAGES}, as a client announces them. */
export const SUPPORTED_STAGES: readonly string[] = Object.freeze(Object.keys(UPDATE_STAGES));

/**
 * Builds the stages of a pipeline.
 *
 * @param specs The run's pipeline.
 * @returns The stages, in order.
 * @throws {RangeError} If a stage is unknown, repeated or has the wrong parameters.
 */
export function createPipeline(specs: readonly StageSpec[]): UpdateStage[] {
  const seen = new Set<string>();
  return specs.map(({ id, params }) => {
    const kind = Object.hasOwn(UPDATE_STAGES, id) ? UPDATE_STAGES[id] : undefined;
    if (kind === undefined) throw new RangeError(`Unknown update stage ${JSON.stringify(id)}`);
    if (seen.has(id)) throw new RangeError(`Update stage ${id} appears twice`);
    seen.add(id);
    if (params.length !== kind.params || !params.every(Number.isFinite)) {
      throw new RangeError(`Update stage ${id} takes ${kind.params} finite parameters`);
    }
    return kind.create(params);
  });
}

/**
 * Client side: runs the stages in order.
 *
 * @param stages The pipeline.
 * @param update The update (may be changed in place).
 * @returns The update to send.
 */
export function applyPipeline(stages: readonly UpdateStage[], update: Float32Array): Float32Array {
  for (const stage of stages) update = stage.apply(update);
  return update;
}

/**
 * Server side: checks the stage ids an update says it went through, then inverts the stages
 * in reverse order.
 *
 * @param stages The run's pipeline.
 * @param applied The stage ids the update message names.
 * @param update The received update.
 * @returns The update to aggregate.
 * @throws {RangeError} If the ids differ from the pipeline's or a stage refuses the update.
 */
export function invertPipeline(
  stages: readonly UpdateStage[],
  applied: readonly string[],
  update: Float32Array,
): Float32Array {
  const want = stages.map((stage) => stage.id);
  if (applied.length !== want.length || applied.some((id, i) => id !== want[i])) {
    throw new RangeError(
      `Update went through stages [${applied.join(", ")}], the run requires [${want.join(", ")}]`,
    );
  }
  for (let i = stages.length - 1; i >= 0; i--) update = stages[i]!.invert(update);
  return update;
}
