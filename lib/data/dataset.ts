/**
 * The in-memory dataset every trainer, partitioner and loader speaks: features as one
 * row-major Float32Array, integer class labels beside them.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/** A labelled classification dataset held in memory. */
export interface Dataset {
  /** Features, row-major: (n, features). */
  readonly x: Float32Array;
  /** Class labels, each in [0, classes): (n). */
  readonly y: Int32Array;
  /** Number of examples. */
  readonly n: number;
  /** Features per example. */
  readonly features: number;
  /** Number of classes. */
  readonly classes: number;
}

/**
 * Checks shapes and labels and returns a {@linkcode Dataset}.
 *
 * @param x Features, row-major (n, features).
 * @param y Labels (n), integers in [0, classes).
 * @param options `features` per example and the number of `classes`.
 * @returns The dataset, sharing the given arrays.
 * @throws {RangeError} If the sizes disagree or a label is out of range.
 *
 * @example Usage
 * ```ts
 * import { createDataset } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const ds = createDataset(new Float32Array([0, 1, 1, 0]), new Int32Array([1, 0]), {
 *   features: 2,
 *   classes: 2,
 * });
 * strictEqual(ds.n, 2);
 * ```
 */
export function createDataset(
  x: Float32Array,
  y: Int32Array,
  options: { features: number; classes: number },
): Dataset {
  const { features, classes } = options;
  if (!Number.isInteger(features) || features < 1) {
    throw new RangeError(`Features must be a positive integer, got ${features}`);
  }
  if (!Number.isInteger(classes) || classes < 1) {
    throw new RangeError(`Classes must be a positive integer, got ${classes}`);
  }
  const n = y.length;
  if (x.length !== n * features) {
    throw new RangeError(
      `Features hold ${x.length} values, expected ${n} examples x ${features} features`,
    );
  }
  for (let i = 0; i < n; i++) {
    const label = y[i]!;
    if (label < 0 || label >= classes) {
      throw new RangeError(`Label ${label} of example ${i} is outside [0, ${classes})`);
    }
  }
  return { x, y, n, features, classes };
}

/**
 * Copies the examples at `indices` into a new dataset, in that order.
 *
 * @param data The source dataset.
 * @param indices Example indices into `data`.
 * @returns A dataset of `indices.length` examples.
 * @throws {RangeError} If an index is out of range.
 */
export function subset(data: Dataset, indices: ArrayLike<number>): Dataset {
  const { features } = data;
  const x = new Float32Array(indices.length * features);
  const y = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]!;
    if (!Number.isInteger(j) || j < 0 || j >= data.n) {
      throw new RangeError(`Index ${j} is outside [0, ${data.n})`);
    }
    x.set(data.x.subarray(j * features, (j + 1) * features), i * features);
    y[i] = data.y[j]!;
  }
  return { x, y, n: indices.length, features, classes: data.classes };
}
