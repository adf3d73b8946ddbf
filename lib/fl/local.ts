/**
 * The settings of a client's local training, named once: the server and the simulation take
 * them as options, a strategy may change them per round, the task message carries them, the
 * checkpoint records them, and the client trains with them.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/** How a client trains in one round. */
export interface LocalTraining {
  /** Local epochs E (default 1). */
  epochs: number;
  /** Local batch size B (default 10). */
  batchSize: number;
  /** Local learning rate (default 0.1). */
  lr: number;
  /** Local SGD momentum in [0, 1) (default 0). */
  momentum: number;
  /** Local L2 weight decay (default 0). */
  weightDecay: number;
  /**
   * FedProx's proximal coefficient μ (default 0, none): the local objective gains
   * `μ/2 ||w - w_global||²` (Li et al., "Federated Optimization in Heterogeneous Networks",
   * MLSys 2020, eq. 2).
   */
  proximalMu: number;
}

/** The defaults of {@linkcode LocalTraining}. */
export const LOCAL_TRAINING_DEFAULTS: Readonly<LocalTraining> = Object.freeze({
  epochs: 1,
  batchSize: 10,
  lr: 0.1,
  momentum: 0,
  weightDecay: 0,
  proximalMu: 0,
});

/** The names of the fields of {@linkcode LocalTraining}, in a fixed order. */
export const LOCAL_TRAINING_FIELDS: readonly (keyof LocalTraining)[] = Object.freeze(
  Object.keys(LOCAL_TRAINING_DEFAULTS) as (keyof LocalTraining)[],
);

/**
 * Local training settings with defaults filled in and every value checked.
 *
 * @param options Any of the settings (other fields are ignored).
 * @returns The complete settings.
 * @throws {RangeError} If a value is out of range.
 *
 * @example Usage
 * ```ts
 * import { localTraining } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(localTraining({ lr: 0.2 }).batchSize, 10);
 * ```
 */
export function localTraining(options: Partial<LocalTraining> = {}): LocalTraining {
  const out = { ...LOCAL_TRAINING_DEFAULTS };
  for (const field of LOCAL_TRAINING_FIELDS) {
    const value = options[field];
    if (value !== undefined) out[field] = value;
  }
  const { epochs, batchSize, lr, momentum, weightDecay, proximalMu } = out;
  _check(Number.isInteger(epochs) && epochs >= 1, `Epochs must be a positive integer`, epochs);
  _check(
    Number.isInteger(batchSize) && batchSize >= 1,
    `Batch size must be a positive integer`,
    batchSize,
  );
  _check(lr > 0 && Number.isFinite(lr), `Learning rate must be positive and finite`, lr);
  _check(momentum >= 0 && momentum < 1, `Momentum must be in [0, 1)`, momentum);
  _check(
    weightDecay >= 0 && Number.isFinite(weightDecay),
    `Weight decay must be non-negative and finite`,
    weightDecay,
  );
  _check(
    proximalMu >= 0 && Number.isFinite(proximalMu),
    `Proximal coefficient must be non-negative and finite`,
    proximalMu,
  );
  return out;
}

function _check(condition: boolean, message: string, value: number): void {
  if (!condition) throw new RangeError(`${message}, got ${value}`);
}
