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
import {
  denseBackward,
  denseForward,
  reluBackward,
  reluForward,
  softmaxCrossEntropy,
} from "./kernels.ts";
import type { Model } from "./model.ts";
import { Sgd, type SgdOptions } from "./optim.ts";

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

/** Buffers for one batch size, allocated once per call. */
class _Workspace {
  /** acts[0] is the input batch; acts[l + 1] the output of layer l (logits at a softmax). */
  readonly acts: Float32Array[];
  /** grads[l + 1] is the gradient of acts[l + 1]. */
  readonly grads: Float32Array[];
  /** widths[l] is the number of values per example in acts[l]. */
  readonly widths: number[];
  readonly labels: Int32Array;
  /** Gradient of the loss for every parameter, laid out like `model.params`. */
  readonly paramGrads: Float32Array;
  /** Views of `paramGrads` for each dense layer's weight and bias. */
  readonly denseGrads: { dw: Float32Array; db: Float32Array }[];

  constructor(model: Model, batch: number, options: { training: boolean }) {
    this.widths = [model.inputSize];
    for (const spec of model.layers) {
      this.widths.push(spec.kind === "dense" ? spec.nOut : this.widths[this.widths.length - 1]!);
    }
    this.acts = this.widths.map((width) => new Float32Array(batch * width));
    const gradSize = (l: number) => options.training && l > 0 ? batch * this.widths[l]! : 0;
    this.grads = this.widths.map((_, l) => new Float32Array(gradSize(l)));
    this.labels = new Int32Array(batch);
    this.paramGrads = new Float32Array(options.training ? model.params.length : 0);
    this.denseGrads = options.training
      ? model.dense.map(({ offset, spec }) => {
        const wSize = spec.nIn * spec.nOut;
        return {
          dw: this.paramGrads.subarray(offset, offset + wSize),
          db: this.paramGrads.subarray(offset + wSize, offset + wSize + spec.nOut),
        };
      })
      : [];
  }

  /** Copies the examples `order[start, start + rows)` into the input and label buffers. */
  gather(data: Dataset, order: ArrayLike<number>, start: number, rows: number): void {
    const f = data.features;
    const input = this.acts[0]!;
    for (let r = 0; r < rows; r++) {
      const j = order[start + r]!;
      input.set(data.x.subarray(j * f, (j + 1) * f), r * f);
      this.labels[r] = data.y[j]!;
    }
  }

  /** Runs the layers on the gathered batch; returns the logits (a softmax is left for the loss). */
  forward(model: Model, rows: number): Float32Array {
    let denseIndex = 0;
    model.layers.forEach((spec, l) => {
      const x = this.acts[l]!;
      const y = this.acts[l + 1]!;
      switch (spec.kind) {
        case "dense": {
          const { w, b } = model.dense[denseIndex++]!;
          denseForward(x, w, b, y, rows, spec.nIn, spec.nOut, spec.activation === "relu");
          break;
        }
        case "relu":
          reluForward(x, y, rows * this.widths[l]!);
          break;
        case "softmax":
          y.set(x.subarray(0, rows * this.widths[l]!));
          break;
      }
    });
    return this.acts[this.acts.length - 1]!;
  }

  /** Back-propagates `grads[last]` (the logits' gradient) into `paramGrads`, zeroed first. */
  backward(model: Model, rows: number): void {
    this.paramGrads.fill(0);
    let denseIndex = model.dense.length;
    for (let l = model.layers.length - 1; l >= 0; l--) {
      const spec = model.layers[l]!;
      const dy = this.grads[l + 1]!;
      const dx = l > 0 ? this.grads[l]! : null;
      switch (spec.kind) {
        case "dense": {
          const { w } = model.dense[--denseIndex]!;
          const { dw, db } = this.denseGrads[denseIndex]!;
          if (spec.activation === "relu") reluBackward(this.acts[l + 1]!, dy, dy, rows * spec.nOut);
          denseBackward(this.acts[l]!, w, dy, dx, dw, db, rows, spec.nIn, spec.nOut);
          break;
        }
        case "relu":
          if (dx !== null) reluBackward(this.acts[l + 1]!, dy, dx, rows * this.widths[l]!);
          break;
        case "softmax":
          if (dx !== null) dx.set(dy.subarray(0, rows * this.widths[l]!));
          break;
      }
    }
  }
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
  const ws = new _Workspace(model, batch, { training: true });
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
      const logits = ws.forward(model, rows);
      const step = softmaxCrossEntropy(logits, ws.labels, dLogits, rows, classes);
      lossSum += step.lossSum;
      correct += step.correct;
      ws.backward(model, rows);
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
  const ws = new _Workspace(model, batch, { training: false });
  return scoreBatches(model, data, batch, from, to, (start, rows) => {
    ws.acts[0]!.set(data.x.subarray(start * data.features, (start + rows) * data.features));
    return ws.forward(model, rows);
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
