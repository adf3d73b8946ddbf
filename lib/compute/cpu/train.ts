/**
 * Training and evaluation on the CPU engine's Wasm SIMD kernels, with the reference engine's
 * contract and bits: the same validation, shuffling, operation order and float rounding as
 * `train` and `evaluate` in `lib/nn/train.ts`. Parameters, velocity and every buffer live in
 * Wasm memory for a whole call; nothing is allocated per step.
 *
 * Models made of dense layers (relu or none) with an optional trailing softmax run on the
 * kernels; any other chain falls back to the reference engine.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Dataset } from "../../data/dataset.ts";
import { softmaxCrossEntropy } from "../../nn/kernels.ts";
import type { DenseLayer } from "../../nn/layers.ts";
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
import { Rng } from "../../rng.ts";
import { heap, wasm } from "./wasm.ts";

/** Columns per register block of the kernels; layer widths are padded to a multiple. */
const BLOCK = 16;
const pad = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/**
 * Whether {@linkcode wasmTrain} and {@linkcode wasmEvaluate} run `model` on the kernels (dense
 * layers, then at most a softmax) rather than falling back to the reference engine.
 *
 * @param model The model.
 * @returns True if the kernels can run it.
 */
export function runsOnKernels(model: Model): boolean {
  return model.layers.every((spec, l) =>
    spec.kind === "dense" || (spec.kind === "softmax" && l === model.layers.length - 1)
  );
}

/** One dense layer's place in Wasm memory. */
interface Slab {
  spec: DenseLayer;
  /** Padded outputs (a multiple of {@linkcode BLOCK}). */
  nOutP: number;
  w: number;
  b: number;
  vw: number;
  vb: number;
}

/** The Wasm buffers of one call, sized for `cap` rows. */
class Workspace {
  readonly slabs: Slab[];
  /** acts[j]: the input of dense layer j (j = layers: the logits); grads[j] its gradient. */
  readonly acts: number[];
  readonly grads: number[];
  /** Row strides of acts[j] and grads[j], in bytes. */
  readonly strides: number[];
  readonly dyT: number;
  readonly dy64: number;
  readonly ones: number;
  readonly cap: number;
  readonly #blocks: number[] = [];

  constructor(
    readonly model: Model,
    batch: number,
    options: { training: boolean; momentum: boolean },
  ) {
    const cap = Math.ceil(batch / BLOCK) * BLOCK;
    this.cap = cap;
    const alloc = (bytes: number) => {
      const at = heap.alloc(bytes);
      this.#blocks.push(at);
      return at;
    };
    try {
      this.slabs = model.dense.map(({ spec }) => {
        const nOutP = pad(spec.nOut);
        const wBytes = spec.nIn * nOutP * 4;
        const velocity = options.training && options.momentum;
        return {
          spec,
          nOutP,
          w: alloc(wBytes),
          b: alloc(nOutP * 4),
          vw: velocity ? alloc(wBytes) : 0,
          vb: velocity ? alloc(nOutP * 4) : 0,
        };
      });
      const widths = [model.dense[0]!.spec.nIn, ...model.dense.map(({ spec }) => spec.nOut)];
      this.strides = widths.map((n) => pad(n) * 4);
      this.acts = this.strides.map((stride) => alloc(cap * stride));
      const training = options.training;
      this.grads = this.strides.map((stride, j) => training && j > 0 ? alloc(cap * stride) : 0);
      const widest = Math.max(...this.slabs.map((s) => s.nOutP));
      this.dyT = training ? alloc(widest * cap * 8) : 0;
      this.dy64 = training ? alloc(cap * widest * 8) : 0;
      this.ones = training ? alloc(cap * 4) : 0;
      if (training) new Float32Array(heap.buffer, this.ones, cap).fill(1);
    } catch (error) {
      this.free();
      throw error;
    }
  }

  /** Copies the model's parameters into the padded Wasm layout. */
  load(): void {
    const memory = heap.buffer;
    this.model.dense.forEach(({ w, b }, l) => {
      const { spec, nOutP } = this.slabs[l]!;
      const wv = new Float32Array(memory, this.slabs[l]!.w, spec.nIn * nOutP);
      for (let k = 0; k < spec.nIn; k++) {
        wv.set(w.subarray(k * spec.nOut, (k + 1) * spec.nOut), k * nOutP);
      }
      new Float32Array(memory, this.slabs[l]!.b, spec.nOut).set(b);
    });
  }

  /** Copies the parameters back into the model. */
  store(): void {
    const memory = heap.buffer;
    this.model.dense.forEach(({ w, b }, l) => {
      const { spec, nOutP } = this.slabs[l]!;
      const wv = new Float32Array(memory, this.slabs[l]!.w, spec.nIn * nOutP);
      for (let k = 0; k < spec.nIn; k++) {
        w.set(wv.subarray(k * nOutP, k * nOutP + spec.nOut), k * spec.nOut);
      }
      b.set(new Float32Array(memory, this.slabs[l]!.b, spec.nOut));
    });
  }

  /** Runs the dense layers on `rows` gathered inputs. */
  forward(rows: number): void {
    this.slabs.forEach(({ spec, nOutP, w, b }, l) => {
      wasm.dense_fwd(
        this.acts[l]!,
        this.strides[l]!,
        w,
        nOutP * 4,
        b,
        this.acts[l + 1]!,
        this.strides[l + 1]!,
        rows,
        spec.nIn,
        nOutP / BLOCK,
        spec.activation === "relu" ? 1 : 0,
      );
    });
  }

  /** Back-propagates grads[last] and steps every parameter, layer by layer from the top. */
  backwardAndStep(rows: number, sgd: Sgd): void {
    const momentum = sgd.momentum > 0 ? 1 : 0;
    for (let l = this.slabs.length - 1; l >= 0; l--) {
      const { spec, nOutP, w, b, vw, vb } = this.slabs[l]!;
      wasm.prep_dy(
        this.grads[l + 1]!,
        this.strides[l + 1]!,
        rows,
        spec.nOut,
        this.dyT,
        this.cap * 8,
        this.dy64,
        nOutP * 8,
      );
      if (l > 0) {
        wasm.dense_dx(
          this.dyT,
          this.cap * 8,
          w,
          nOutP * 4,
          spec.nOut,
          this.grads[l]!,
          this.acts[l]!,
          this.strides[l]!,
          rows,
          spec.nIn,
          this.slabs[l - 1]!.spec.activation === "relu" ? 1 : 0,
        );
      }
      const { lr, weightDecay } = sgd;
      const blocks = nOutP / BLOCK;
      wasm.dense_dw_sgd(
        this.acts[l]!,
        this.strides[l]!,
        this.dy64,
        nOutP * 8,
        rows,
        spec.nIn,
        blocks,
        w,
        nOutP * 4,
        vw,
        lr,
        sgd.momentum,
        weightDecay,
        momentum,
      );
      wasm.dense_dw_sgd(
        this.ones,
        4,
        this.dy64,
        nOutP * 8,
        rows,
        1,
        blocks,
        b,
        nOutP * 4,
        vb,
        lr,
        sgd.momentum,
        weightDecay,
        momentum,
      );
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
  const lastRelu = model.dense[model.dense.length - 1]!.spec.activation === "relu";
  const ws = new Workspace(model, batch, { training: true, momentum: sgd.momentum > 0 });
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
