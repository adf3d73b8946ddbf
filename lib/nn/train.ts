/**
 * Local training and evaluation on the reference CPU engine.
 *
 * The loss is softmax cross-entropy on the logits: a chain's trailing softmax is fused into
 * the loss (numerically stable), and a chain without one has its outputs taken as logits.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Dataset } from "../data/dataset.ts";
import { Rng } from "../rng.ts";
import { softmaxCrossEntropy } from "./kernels.ts";
import type { Model } from "./model.ts";
import { Sgd, type SgdOptions } from "./optim.ts";
import { Workspace } from "./workspace.ts";

/** Loss and accuracy over a dataset. */
export interface Metrics {
  /** Mean softmax cross-entropy. */
  loss: number;
  /** Fraction of examples whose argmax output is the label. */
  accuracy: number;
  /** Number of examples. */
  examples: number;
}

/** Options of {@linkcode train}. */
export interface TrainOptions extends SgdOptions {
  /** Passes over the data (default 1). */
  epochs?: number;
  /** Examples per step (default 32); the last batch of an epoch may be smaller. */
  batchSize?: number;
  /** Seed of the shuffling (default 0); ignored when `rng` is given. */
  seed?: number;
  /** Generator for the shuffling, for callers that manage streams themselves. */
  rng?: Rng;
  /** Whether to shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Called after each epoch with its 1-based number and training metrics. */
  onEpoch?: (epoch: number, metrics: Metrics) => void;
}

/** What {@linkcode train} did. */
export interface TrainResult {
  /** Training metrics of the last epoch, measured on the fly during it. */
  last: Metrics;
  /** Optimizer steps taken. */
  steps: number;
}

/**
 * Checks what every engine's `train` and `evaluate` check: a positive integer count, and data
 * that fits the model.
 *
 * @param model The model.
 * @param data The examples.
 * @param counts Named counts that must be positive integers (epochs, batch size).
 * @throws {RangeError} If a count is not a positive integer or the data does not fit.
 */
export function checkTrainingInputs(
  model: Model,
  data: Dataset,
  counts: Record<string, number>,
): void {
  for (const [name, value] of Object.entries(counts)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`${name} must be a positive integer, got ${value}`);
    }
  }
  if (data.features !== model.inputSize) {
    throw new RangeError(
      `Data has ${data.features} features but the model takes ${model.inputSize} inputs`,
    );
  }
  if (data.classes > model.outputSize) {
    throw new RangeError(
      `Data has ${data.classes} classes but the model has ${model.outputSize} outputs`,
    );
  }
}

/**
 * Trains `model` in place with minibatch SGD on softmax cross-entropy.
 *
 * Each epoch visits the examples in a fresh seeded permutation (or in order with
 * `shuffle: false`); the same model, data and seed give the same bits.
 *
 * @param model The model; its parameters are updated in place.
 * @param data Training examples.
 * @param options Epochs, batch size, learning rate, momentum, weight decay, seed.
 * @returns The last epoch's running metrics and the number of steps.
 * @throws {RangeError} If the data does not fit the model or an option is out of range.
 *
 * @example Usage
 * ```ts
 * import { Chain, createDataset, Dense, evaluate, relu, softmax, train } from "@fedgpu/fedgpu";
 * import { ok } from "node:assert/strict";
 *
 * // XOR: not linearly separable, so the hidden layer has to learn.
 * const data = createDataset(new Float32Array([0, 0, 0, 1, 1, 0, 1, 1]), new Int32Array([0, 1, 1, 0]), {
 *   features: 2,
 *   classes: 2,
 * });
 * const model = Chain(Dense(2, 16, relu), Dense(16, 2), softmax).initialize(1);
 * train(model, data, { epochs: 500, batchSize: 4, lr: 0.1, momentum: 0.9 });
 * ok(evaluate(model, data).accuracy === 1);
 * ```
 */
export function train(model: Model, data: Dataset, options: TrainOptions): TrainResult {
  const { epochs = 1, batchSize = 32, seed = 0, shuffle = true } = options;
  checkTrainingInputs(model, data, { "Epochs": epochs, "Batch size": batchSize });
  if (data.n === 0) throw new RangeError("Cannot train on an empty dataset");
  const rng = options.rng ?? new Rng(seed);
  const sgd = new Sgd(model.params.length, options);
  const batch = Math.min(batchSize, data.n);
  const ws = new Workspace(model, batch, { training: true });
  const classes = model.outputSize;
  const dLogits = ws.grads[ws.grads.length - 1]!;
  let steps = 0;
  let last: Metrics = { loss: NaN, accuracy: NaN, examples: 0 };
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const order = shuffle
      ? rng.permutation(data.n)
      : Uint32Array.from({ length: data.n }, (_, i) => i);
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < data.n; start += batch) {
      const rows = Math.min(batch, data.n - start);
      ws.gather(data, order, start, rows);
      const logits = ws.forward(rows);
      const step = softmaxCrossEntropy(logits, ws.labels, dLogits, rows, classes);
      lossSum += step.lossSum;
      correct += step.correct;
      ws.backward(rows);
      sgd.step(model.params, ws.paramGrads);
      steps++;
    }
    last = { loss: lossSum / data.n, accuracy: correct / data.n, examples: data.n };
    options.onEpoch?.(epoch, last);
  }
  return { last, steps };
}

/** Options of {@linkcode evaluateBatches}. */
export interface BatchOptions {
  /** Examples per forward pass (default 1000). */
  batchSize?: number;
  /** The first batch to score (default 0). */
  from?: number;
  /** The batch after the last one to score (default every batch: `ceil(n / batchSize)`). */
  to?: number;
}

/** Per-batch results of an evaluation, in batch order. */
export interface BatchMetrics {
  /** Each batch's sum of per-example losses (float64). */
  lossSums: Float64Array;
  /** Each batch's number of correct predictions. */
  correct: Uint32Array;
}

/**
 * Checks a {@linkcode BatchOptions} against `data` and returns the batch size and range.
 *
 * @throws {RangeError} If the batch size is not a positive integer or the range is not one of
 *   whole batches within the data.
 */
export function batchRange(
  model: Model,
  data: Dataset,
  options: BatchOptions,
): { batch: number; from: number; to: number } {
  const { batchSize = 1000 } = options;
  checkTrainingInputs(model, data, { "Batch size": batchSize });
  const batches = Math.ceil(data.n / batchSize);
  const { from = 0, to = batches } = options;
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to < from || to > batches) {
    throw new RangeError(`Batches [${from}, ${to}) are not within the data's ${batches}`);
  }
  return { batch: Math.min(batchSize, Math.max(data.n, 1)), from, to };
}

/**
 * Scores batches `[from, to)` of `data` (batch `k` is examples `k * batchSize` onwards): the
 * pieces {@linkcode evaluate} sums, so that parts scored apart (on several workers, say) and
 * summed in order by {@linkcode sumBatches} give its bits.
 *
 * @param model The model.
 * @param data Examples to score.
 * @param options The batch size and the range of batches.
 * @returns Each batch's loss sum and correct count.
 * @throws {RangeError} If the data does not fit the model, or the range is not in the data.
 */
export function evaluateBatches(
  model: Model,
  data: Dataset,
  options: BatchOptions = {},
): BatchMetrics {
  const { batch, from, to } = batchRange(model, data, options);
  if (to === from) return { lossSums: new Float64Array(0), correct: new Uint32Array(0) };
  const ws = new Workspace(model, batch, { training: false });
  return scoreBatches(model, data, batch, from, to, (start, rows) => {
    ws.acts[0]!.set(data.x.subarray(start * data.features, (start + rows) * data.features));
    return ws.forward(rows);
  });
}

/**
 * Scores batches `[from, to)` of `batch` examples given an engine's forward pass.
 *
 * @param model The model (for its number of outputs).
 * @param data The examples.
 * @param batch Examples a batch.
 * @param from The first batch.
 * @param to The batch after the last.
 * @param forward Returns the logits of `rows` examples from example `start`, row-major.
 * @returns Each batch's loss sum and correct count.
 */
export function scoreBatches(
  model: Model,
  data: Dataset,
  batch: number,
  from: number,
  to: number,
  forward: (start: number, rows: number) => Float32Array,
): BatchMetrics {
  const lossSums = new Float64Array(to - from);
  const correct = new Uint32Array(to - from);
  for (let k = from; k < to; k++) {
    const start = k * batch;
    const rows = Math.min(batch, data.n - start);
    const step = softmaxCrossEntropy(
      forward(start, rows),
      data.y.subarray(start, start + rows),
      null,
      rows,
      model.outputSize,
    );
    lossSums[k - from] = step.lossSum;
    correct[k - from] = step.correct;
  }
  return { lossSums, correct };
}

/**
 * Sums per-batch results in order into {@linkcode Metrics}, as {@linkcode evaluate} does.
 *
 * @param parts Consecutive ranges of batches, in order.
 * @param examples The number of examples they cover.
 * @returns Loss, accuracy and example count (NaN loss and accuracy for no examples).
 */
export function sumBatches(parts: BatchMetrics[], examples: number): Metrics {
  if (examples === 0) return { loss: NaN, accuracy: NaN, examples: 0 };
  let lossSum = 0;
  let correct = 0;
  for (const part of parts) {
    for (let k = 0; k < part.lossSums.length; k++) {
      lossSum += part.lossSums[k]!;
      correct += part.correct[k]!;
    }
  }
  return { loss: lossSum / examples, accuracy: correct / examples, examples };
}

/**
 * Mean softmax cross-entropy and accuracy of `model` on `data`.
 *
 * @param model The model.
 * @param data Examples to score.
 * @param options `batchSize` of the forward passes (default 1000).
 * @returns Loss, accuracy and example count (NaN loss and accuracy for an empty dataset).
 * @throws {RangeError} If the data does not fit the model.
 */
export function evaluate(
  model: Model,
  data: Dataset,
  options: { batchSize?: number } = {},
): Metrics {
  return sumBatches([evaluateBatches(model, data, options)], data.n);
}
