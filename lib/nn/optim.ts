/**
 * Stochastic gradient descent with momentum and weight decay, over flat parameter buffers.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/** Options of {@linkcode Sgd}. */
export interface SgdOptions {
  /** Learning rate, > 0. */
  lr: number;
  /** Momentum coefficient in [0, 1); 0 (the default) for plain SGD. */
  momentum?: number;
  /** L2 weight decay coefficient, >= 0 (default 0); applied to every parameter. */
  weightDecay?: number;
  /**
   * FedProx's proximal coefficient μ >= 0 (default 0): the gradient gains `μ (p − anchor)`,
   * the gradient of `μ/2 ||p − anchor||²` (Li et al., MLSys 2020, eq. 2).
   */
  proximalMu?: number;
}

/**
 * SGD in PyTorch's formulation: `g = grad + weightDecay * p`, `v = momentum * v + g`,
 * `p -= lr * v` (with momentum 0, simply `p -= lr * g`). With a proximal coefficient μ,
 * `g` also gains `μ (p − anchor)`, where the anchor is the parameters of the first step.
 *
 * @example Usage
 * ```ts
 * import { Sgd } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const params = new Float32Array([1, 2]);
 * new Sgd(2, { lr: 0.5 }).step(params, new Float32Array([2, -2]));
 * strictEqual(params[0], 0);
 * strictEqual(params[1], 3);
 * ```
 */
export class Sgd {
  /** Learning rate. */
  readonly lr: number;
  /** Momentum coefficient. */
  readonly momentum: number;
  /** Weight decay coefficient. */
  readonly weightDecay: number;
  /** Proximal coefficient μ. */
  readonly proximalMu: number;
  #velocity: Float32Array | null;
  #anchor: Float32Array | null = null;

  /**
   * Creates an optimizer for `size` parameters.
   *
   * @param size Number of parameters.
   * @param options Learning rate, momentum, weight decay.
   * @throws {RangeError} If an option is out of range.
   */
  constructor(size: number, options: SgdOptions) {
    const { lr, momentum = 0, weightDecay = 0, proximalMu = 0 } = options;
    if (!(lr > 0) || !Number.isFinite(lr)) {
      throw new RangeError(`Learning rate must be positive and finite, got ${lr}`);
    }
    if (!(momentum >= 0 && momentum < 1)) {
      throw new RangeError(`Momentum must be in [0, 1), got ${momentum}`);
    }
    if (!(weightDecay >= 0) || !Number.isFinite(weightDecay)) {
      throw new RangeError(`Weight decay must be non-negative and finite, got ${weightDecay}`);
    }
    if (!(proximalMu >= 0) || !Number.isFinite(proximalMu)) {
      throw new RangeError(
        `Proximal coefficient must be non-negative and finite, got ${proximalMu}`,
      );
    }
    this.proximalMu = proximalMu;
    this.lr = lr;
    this.momentum = momentum;
    this.weightDecay = weightDecay;
    this.#velocity = momentum > 0 ? new Float32Array(size) : null;
  }

  /**
   * Applies one update to `params` in place.
   *
   * @param params Parameters (size).
   * @param grads Gradients (size).
   */
  step(params: Float32Array, grads: Float32Array): void {
    if (this.proximalMu > 0) {
      this.#proximalStep(params, grads);
      return;
    }
    const { lr, momentum, weightDecay } = this;
    const v = this.#velocity;
    const n = params.length;
    for (let i = 0; i < n; i++) {
      const g = grads[i]! + weightDecay * params[i]!;
      if (v === null) {
        params[i]! -= lr * g;
      } else {
        v[i] = momentum * v[i]! + g;
        params[i]! -= lr * v[i]!;
      }
    }
  }

  #proximalStep(params: Float32Array, grads: Float32Array): void {
    const { lr, momentum, weightDecay, proximalMu } = this;
    const anchor = this.#anchor ??= params.slice();
    const v = this.#velocity;
    for (let i = 0; i < params.length; i++) {
      const p = params[i]!;
      const g = grads[i]! + weightDecay * p + proximalMu * (p - anchor[i]!);
      if (v === null) {
        params[i] = p - lr * g;
      } else {
        v[i] = momentum * v[i]! + g;
        params[i] = p - lr * v[i]!;
      }
    }
  }
}
