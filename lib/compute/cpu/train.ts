/**
 * Training and evaluation on the CPU engine's Wasm SIMD kernels, with the reference engine's
 * contract and bits: the same validation, shuffling, operation order and float rounding as
 * `train` and `evaluate` in `lib/nn/train.ts`. Parameters, velocity and every buffer live in
 * Wasm memory for a whole call; nothing is allocated per step.
 *
 * Each layer runs on its kind's kernels from the table of `ops.ts`; a chain with a layer that
 * has none (a standalone relu, say) falls back to the reference engine.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Dataset } from "../../data/dataset.ts";
import { softmaxCrossEntropy } from "../../nn/kernels.ts";
import type { Model } from "../../nn/model.ts";
import { Sgd } from "../../nn/optim.ts";
import {
  type BatchMetrics,
  type BatchOptions,
  batchRange,
  checkTrainingInputs,
  evaluateBatches,
  type Metrics,
  scoreBatches,
  sumBatches,
  train,
  type TrainOptions,
  type TrainResult,
} from "../../nn/train.ts";
import { logitsIndex } from "../../nn/workspace.ts";
import { Rng } from "../../rng.ts";
import { wasmLayer } from "./ops.ts";
import { pad, type WasmOp } from "./ops/op.ts";
import { heap } from "./wasm.ts";

/**
 * Whether {@linkcode wasmTrain} and {@linkcode wasmEvaluate} run `model` on the kernels (every
 * layer has kernels in `ops.ts`, a trailing softmax aside) rather than falling back to the
 * reference engine.
 *
 * @param model The model.
 * @returns True if the kernels can run it.
 */
export function runsOnKernels(model: Model): boolean {
  const depth = logitsIndex(model);
  return model.layers.every((spec, l) => l >= depth || wasmLayer(spec) !== undefined);
}

/** The Wasm buffers of one call, sized for `cap` rows. */
class Workspace {
  readonly ops: WasmOp[];
  /** acts[l]: the input of layer l (l = ops.length: the logits); grads[l] its gradient. */
  readonly acts: number[];
  readonly grads: number[];
  /** Row strides of acts[l] and grads[l], in bytes. */
  readonly strides: number[];
  readonly scratch: Record<string, number> = {};
  readonly cap: number;
  readonly #blocks: number[] = [];

  constructor(
    readonly model: Model,
    batch: number,
    options: { training: boolean; momentum: boolean; proximal?: boolean },
  ) {
    const cap = pad(batch);
    this.cap = cap;
    const alloc = (bytes: number) => {
      const at = heap.alloc(bytes);
      this.#blocks.push(at);
      return at;
    };
    try {
      const { training } = options;
      const ctx = {
        alloc,
        cap,
        training,
        momentum: options.momentum,
        proximal: options.proximal ?? false,
      };
      const depth = logitsIndex(model);
      this.ops = model.layers.slice(0, depth).map((spec) => wasmLayer(spec)!(spec, ctx));
      this.strides = model.widths.slice(0, depth + 1).map((n) => pad(n) * 4);
      this.acts = this.strides.map((stride) => alloc(cap * stride));
      this.grads = this.strides.map((stride, l) => training && l > 0 ? alloc(cap * stride) : 0);
      const sizes = new Map<string, number>();
      for (const op of this.ops) {
        for (const [name, bytes] of Object.entries(op.scratch)) {
          sizes.set(name, Math.max(sizes.get(name) ?? 0, bytes));
        }
      }
      for (const [name, bytes] of sizes) this.scratch[name] = alloc(bytes);
    } catch (error) {
      this.free();
      throw error;
    }
  }

  /** Copies the model's parameters into the ops' Wasm layouts. */
  load(): void {
    this.ops.forEach((op, l) => op.load(this.model.layerParams(l)));
  }

  /** Copies the parameters back into the model. */
  store(): void {
    this.ops.forEach((op, l) => op.store(this.model.layerParams(l)));
  }

  /** Runs the layers on `rows` gathered inputs. */
  forward(rows: number): void {
    this.ops.forEach((op, l) => {
      op.forward({
        x: this.acts[l]!,
        xStride: this.strides[l]!,
        y: this.acts[l + 1]!,
        yStride: this.strides[l + 1]!,
        rows,
      });
    });
  }

  /** Back-propagates grads[last] and steps every parameter, layer by layer from the top. */
  backwardAndStep(rows: number, sgd: Sgd): void {
    for (let l = this.ops.length - 1; l >= 0; l--) {
      this.ops[l]!.backwardAndStep({
        x: this.acts[l]!,
        xStride: this.strides[l]!,
        y: this.acts[l + 1]!,
        yStride: this.strides[l + 1]!,
        dy: this.grads[l + 1]!,
        dyStride: this.strides[l + 1]!,
        dx: this.grads[l]!,
        maskDx: l > 0 && this.ops[l - 1]!.rectified,
        rows,
        scratch: this.scratch,
      }, sgd);
    }
  }

  /** Frees every buffer. */
  free(): void {
    for (const at of this.#blocks) heap.free(at);
    this.#blocks.length = 0;
  }
}

/** Copies the logits of `rows` examples out of Wasm memory into a dense array. */
function readLogits(ws: Workspace, rows: number, classes: number, out: Float32Array): void {
  const stride = ws.strides[ws.strides.length - 1]! / 4;
  const all = new Float32Array(heap.buffer, ws.acts[ws.acts.length - 1]!, rows * stride);
  for (let i = 0; i < rows; i++) {
    out.set(all.subarray(i * stride, i * stride + classes), i * classes);
  }
}

/**
 * Trains `model` in place on the Wasm SIMD kernels: the contract and the bits of the reference
 * `train` (see `lib/nn/train.ts`).
 *
 * @param model The model; its parameters are updated in place.
 * @param data Training examples.
 * @param options Epochs, batch size, learning rate, momentum, weight decay, seed.
 * @returns The last epoch's running metrics and the number of steps.
 * @throws {RangeError} If the data does not fit the model or an option is out of range.
 */
export function wasmTrain(model: Model, data: Dataset, options: TrainOptions): TrainResult {
  if (!runsOnKernels(model)) return train(model, data, options);
  const { epochs = 1, batchSize = 32, seed = 0, shuffle = true } = options;
  checkTrainingInputs(model, data, { "Epochs": epochs, "Batch size": batchSize });
  if (data.n === 0) throw new RangeError("Cannot train on an empty dataset");
  const rng = options.rng ?? new Rng(seed);
  const sgd = new Sgd(0, options);
  const batch = Math.min(batchSize, data.n);
  const classes = model.outputSize;
  const ws = new Workspace(model, batch, {
    training: true,
    momentum: sgd.momentum > 0,
    proximal: sgd.proximalMu > 0,
  });
  // A rectified top layer's mask is applied here, as the logits' gradient is written.
  const lastRelu = ws.ops[ws.ops.length - 1]!.rectified;
  try {
    ws.load();
    const f = data.features;
    const inStride = ws.strides[0]! / 4;
    const outStride = ws.strides[ws.strides.length - 1]! / 4;
    const labels = new Int32Array(batch);
    const logits = new Float32Array(batch * classes);
    const dLogits = new Float32Array(batch * classes);
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
        const memory = heap.buffer;
        const input = new Float32Array(memory, ws.acts[0]!, rows * inStride);
        for (let r = 0; r < rows; r++) {
          const j = order[start + r]!;
          input.set(data.x.subarray(j * f, (j + 1) * f), r * inStride);
          labels[r] = data.y[j]!;
        }
        ws.forward(rows);
        readLogits(ws, rows, classes, logits);
        const step = softmaxCrossEntropy(logits, labels, dLogits, rows, classes);
        lossSum += step.lossSum;
        correct += step.correct;
        const dy = new Float32Array(memory, ws.grads[ws.grads.length - 1]!, rows * outStride);
        for (let i = 0; i < rows; i++) {
          for (let c = 0; c < classes; c++) {
            const g = dLogits[i * classes + c]!;
            dy[i * outStride + c] = lastRelu && !(logits[i * classes + c]! > 0) ? 0 : g;
          }
        }
        ws.backwardAndStep(rows, sgd);
        steps++;
      }
      last = { loss: lossSum / data.n, accuracy: correct / data.n, examples: data.n };
      if (options.onEpoch !== undefined) {
        ws.store();
        options.onEpoch(epoch, last);
      }
    }
    ws.store();
    return { last, steps };
  } finally {
    ws.free();
  }
}

/**
 * {@linkcode evaluateBatches} on the Wasm SIMD kernels: the same per-batch loss sums and
 * correct counts, bit for bit.
 *
 * @param model The model.
 * @param data Examples to score.
 * @param options The batch size and the range of batches.
 * @returns Each batch's loss sum and correct count.
 * @throws {RangeError} If the data does not fit the model, or the range is not in the data.
 */
export function wasmEvaluateBatches(
  model: Model,
  data: Dataset,
  options: BatchOptions = {},
): BatchMetrics {
  if (!runsOnKernels(model)) return evaluateBatches(model, data, options);
  const { batch, from, to } = batchRange(model, data, options);
  if (to === from) return { lossSums: new Float64Array(0), correct: new Uint32Array(0) };
  const classes = model.outputSize;
  const ws = new Workspace(model, batch, { training: false, momentum: false });
  try {
    ws.load();
    const f = data.features;
    const inStride = ws.strides[0]! / 4;
    const logits = new Float32Array(batch * classes);
    return scoreBatches(model, data, batch, from, to, (start, rows) => {
      const input = new Float32Array(heap.buffer, ws.acts[0]!, rows * inStride);
      for (let r = 0; r < rows; r++) {
        input.set(data.x.subarray((start + r) * f, (start + r + 1) * f), r * inStride);
      }
      ws.forward(rows);
      readLogits(ws, rows, classes, logits);
      return logits;
    });
  } finally {
    ws.free();
  }
}

/**
 * Mean softmax cross-entropy and accuracy of `model` on `data` on the Wasm SIMD kernels: the
 * contract and the bits of the reference `evaluate` (see `lib/nn/train.ts`).
 *
 * @param model The model.
 * @param data Examples to score.
 * @param options `batchSize` of the forward passes (default 1000).
 * @returns Loss, accuracy and example count (NaN loss and accuracy for an empty dataset).
 * @throws {RangeError} If the data does not fit the model.
 */
export function wasmEvaluate(
  model: Model,
  data: Dataset,
  options: { batchSize?: number } = {},
): Metrics {
  return sumBatches([wasmEvaluateBatches(model, data, options)], data.n);
}
