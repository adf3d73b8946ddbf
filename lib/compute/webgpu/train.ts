/**
 * Local training and evaluation on WebGPU, with the data, parameters and optimizer state kept
 * on the GPU: a client's examples are uploaded once, each epoch uploads only its order of
 * example indices, a batch is an index range of that order, and nothing is read back but the
 * loss and accuracy sums once per epoch and the parameters at the end.
 *
 * Batches follow the same seeded order as the CPU engine's `train()`, so the two
 * engines differ only by float rounding. Each layer records its dispatches as its kind's entry
 * in `ops.ts` says (one file per kind in `ops/`).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Dataset } from "../../data/dataset.ts";
import type { Model } from "../../nn/model.ts";
import { Sgd } from "../../nn/optim.ts";
import {
  checkTrainingInputs,
  type Metrics,
  type TrainOptions,
  type TrainResult,
} from "../../nn/train.ts";
import { checkGradientInputs } from "../../nn/gradient.ts";
import { logitsIndex } from "../../nn/workspace.ts";
import { Rng } from "../../rng.ts";
import { gpuLayer } from "./ops.ts";
import { type GpuPlanContext, type GpuShape, uniformWords, workgroups } from "./ops/op.ts";
import { type GpuRuntime, STORAGE, UNIFORM } from "./runtime.ts";

/** Data uploaded to the GPU: features (n, features) and labels (n). */
interface _GpuData {
  readonly x: GPUBuffer;
  readonly y: GPUBuffer;
}

/** One recorded dispatch and the uniform it reads. */
interface _Op {
  readonly pipeline: GPUComputePipeline;
  readonly group: GPUBindGroup;
  readonly dims: GPUBuffer;
  /** The uniform's words and the workgroup counts for a batch of `rows`. */
  readonly shape: GpuShape;
}

function _identity(n: number): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => i);
}

/** Caches each dataset's upload for the runtime's lifetime. */
export class GpuDataCache {
  #rt: GpuRuntime;
  #cache = new WeakMap<Dataset, _GpuData>();
  #buffers: GPUBuffer[] = [];

  /**
   * Creates an empty cache.
   *
   * @param rt The runtime.
   */
  constructor(rt: GpuRuntime) {
    this.#rt = rt;
  }

  /**
   * The dataset's GPU buffers, uploaded on first use.
   *
   * @param data The dataset.
   * @returns Its buffers.
   * @throws {RangeError} If its features exceed the device's largest storage binding.
   */
  get(data: Dataset): _GpuData {
    let entry = this.#cache.get(data);
    if (entry === undefined) {
      if (data.x.byteLength > this.#rt.maxBindingBytes) {
        throw new RangeError(
          `Dataset of ${data.x.byteLength} bytes exceeds the GPU's largest storage binding ` +
            `(${this.#rt.maxBindingBytes} bytes); split it into smaller datasets`,
        );
      }
      const y = new Uint32Array(data.y.buffer, data.y.byteOffset, data.y.length);
      entry = { x: this.#rt.upload(data.x, "data.x"), y: this.#rt.upload(y, "data.y") };
      this.#buffers.push(entry.x, entry.y);
      this.#cache.set(data, entry);
    }
    return entry;
  }

  /** Releases every upload. */
  clear(): void {
    for (const buffer of this.#buffers) this.#rt.release(buffer);
    this.#buffers = [];
    this.#cache = new WeakMap();
  }
}

/** Options of a {@linkcode _Plan}. */
interface _PlanOptions {
  /** Examples a step. */
  batch: number;
  /** The optimizer, when training: backward passes and a step after each batch. */
  sgd?: { lr: number; momentum: number; weightDecay: number; proximalMu?: number };
  /** Whether each step also writes the loss's gradient with respect to the input batch. */
  inputGradient?: boolean;
}

/** The buffers and recorded dispatches of one model at one batch size. */
class _Plan {
  readonly rt: GpuRuntime;
  readonly params: GPUBuffer;
  readonly stats: GPUBuffer;
  readonly order: GPUBuffer;
  readonly gatherDims: GPUBuffer;
  readonly ops: _Op[] = [];
  /** The gradient of the last step's input batch, when asked for. */
  readonly inputGrad: GPUBuffer | null;
  readonly #n: number;
  readonly #batch: number;
  readonly #features: number;
  readonly #owned: GPUBuffer[] = [];
  readonly #lossOp: number;
  #rows = -1;
  /** Workgroup counts of each op for the current batch rows. */
  #groups: { x: number; y: number }[] = [];

  /**
   * Builds the plan: each layer records its dispatches as its kind's entry in `ops.ts` says.
   *
   * @param rt The runtime.
   * @param model The model (its current parameters are uploaded).
   * @param dataset The examples and their GPU buffers.
   * @param options Batch size, the optimizer (when training), and whether to compute the
   *   input's gradient.
   * @throws {TypeError} If a layer's kind has no WebGPU kernels.
   */
  constructor(
    rt: GpuRuntime,
    model: Model,
    dataset: { data: Dataset; buffers: _GpuData },
    options: _PlanOptions,
  ) {
    this.rt = rt;
    const { batch, sgd, inputGradient = false } = options;
    const { data: examples, buffers: data } = dataset;
    const depth = logitsIndex(model);
    const kinds = model.layers.slice(0, depth).map(gpuLayer);
    this.#n = examples.n;
    this.#batch = batch;
    this.#features = examples.features;
    const training = sgd !== undefined;
    const backward = training || inputGradient;
    const own = (buffer: GPUBuffer) => (this.#owned.push(buffer), buffer);
    this.params = own(rt.upload(model.params, "params"));
    const grads = training ? own(rt.acquire(model.params.byteLength, STORAGE, "grads")) : null;
    this.stats = own(rt.acquire(8 * Math.ceil(examples.n / batch), STORAGE, "stats"));
    this.order = own(rt.acquire(4 * examples.n, STORAGE, "order"));
    this.gatherDims = own(rt.acquire(16, UNIFORM, "gather.dims"));

    // Activations: acts[0] is the batch input, acts[l + 1] the output of layer l, up to the
    // logits (a trailing softmax is fused into the loss: the logits are its input).
    const widths = model.widths.slice(0, depth + 1);
    const acts = widths.map((width, l) =>
      own(rt.acquire(4 * batch * width, STORAGE, `acts[${l}]`))
    );
    const grad = backward
      ? widths.map((width, l) =>
        l === 0 && !inputGradient ? null : own(rt.acquire(4 * batch * width, STORAGE, `grad[${l}]`))
      )
      : [];
    this.inputGrad = inputGradient ? grad[0]! : null;
    const labels = own(rt.acquire(4 * batch, STORAGE, "labels"));

    const ctx: GpuPlanContext = {
      rt,
      params: this.params,
      op: (pipeline, buffers, label, shape) => {
        const dims = own(rt.acquire(32, UNIFORM, `${label}.dims`));
        const group = rt.bind(pipeline, { 0: dims, ...buffers }, label);
        this.ops.push({ pipeline, group, dims, shape });
      },
    };

    // Gather the batch: rows of the data in the epoch's order.
    {
      const pipeline = rt.pipeline("gather");
      const group = rt.bind(pipeline, {
        0: this.gatherDims,
        1: data.x,
        2: data.y,
        3: this.order,
        4: acts[0]!,
        5: labels,
      }, "gather");
      this.ops.push({
        pipeline,
        group,
        dims: this.gatherDims,
        shape: (rows) => ({
          words: new ArrayBuffer(0),
          x: workgroups(rows * examples.features),
          y: 1,
        }),
      });
    }

    const io = (l: number) => ({
      l,
      x: acts[l]!,
      y: acts[l + 1]!,
      inputs: widths[l]!,
      offset: model.offsets[l]!,
    });
    kinds.forEach((kind, l) => kind.forward(model.layers[l]!, ctx, io(l)));

    // Loss: statistics always, gradient for the backward pass.
    const classes = widths[depth]!;
    this.#lossOp = this.ops.length;
    ctx.op(
      rt.pipeline("softmax_xent", "main", { WITH_GRAD: backward }),
      {
        1: acts[depth]!,
        2: labels,
        // Without a gradient the kernel writes nothing here, but the binding must exist.
        3: backward ? grad[depth]! : own(rt.acquire(4 * batch * classes, STORAGE, "dz")),
        4: this.stats,
      },
      "softmax_xent",
      (rows) => ({ words: uniformWords([rows, classes, 0]), x: 1, y: 1 }),
    );
    if (!backward) return;

    // Backward, from the logits down; the input's gradient only when asked for.
    for (let l = depth - 1; l >= 0; l--) {
      kinds[l]!.backward(model.layers[l]!, ctx, {
        ...io(l),
        dy: grad[l + 1]!,
        dx: grad[l] ?? null,
        grads,
      });
    }
    if (!training) return;

    // The optimizer step over the one flat parameter buffer.
    const count = model.params.length;
    const momentum = sgd.momentum > 0;
    const velocity = own(rt.acquire(model.params.byteLength, STORAGE, "velocity"));
    if (momentum) rt.write(velocity, new Float32Array(count));
    const mu = sgd.proximalMu ?? 0;
    // FedProx's anchor: the parameters training starts from (the gradients stand in, unread,
    // without a proximal term).
    const anchor = mu > 0 ? own(rt.upload(model.params, "anchor")) : grads!;
    ctx.op(
      rt.pipeline("sgd", "main", { MOMENTUM: momentum, PROXIMAL: mu > 0 }),
      { 1: this.params, 2: grads!, 3: velocity, 4: anchor },
      "sgd",
      () => ({
        words: uniformWords([count, sgd.lr, sgd.momentum, sgd.weightDecay, mu], [1, 2, 3, 4]),
        x: workgroups(count),
        y: 1,
      }),
    );
  }

  /**
   * Runs one pass over the examples in `order`: a batch per submit (gather, forward, loss
   * into its statistics slot, and when training backward and the optimizer step), then one
   * readback of the loss and correct sums.
   *
   * @param order The pass's order of example indices.
   * @returns The pass's metrics; training metrics are measured on the fly.
   */
  async runEpoch(order: Uint32Array): Promise<Metrics> {
    this.rt.write(this.order, order);
    let slots = 0;
    for (let start = 0; start < this.#n; start += this.#batch) {
      this.#step(start, Math.min(this.#batch, this.#n - start), slots++);
    }
    const stats = new Float32Array(await this.rt.read(this.stats, 8 * slots));
    let lossSum = 0;
    let correct = 0;
    for (let slot = 0; slot < slots; slot++) {
      lossSum += stats[2 * slot]!;
      correct += stats[2 * slot + 1]!;
    }
    return { loss: lossSum / this.#n, accuracy: correct / this.#n, examples: this.#n };
  }

  #step(start: number, rows: number, slot: number): void {
    const rt = this.rt;
    if (rows !== this.#rows) {
      this.#rows = rows;
      this.#groups = this.ops.map((op) => {
        const { words, x, y } = op.shape(rows);
        if (op.dims !== this.gatherDims) rt.write(op.dims, new Uint8Array(words));
        return { x, y };
      });
    }
    rt.write(this.gatherDims, new Uint32Array([rows, this.#features, start, 0]));
    const lossOp = this.ops[this.#lossOp]!;
    const loss = lossOp.shape(rows).words;
    new Uint32Array(loss)[2] = slot;
    rt.write(lossOp.dims, new Uint8Array(loss));
    const encoder = rt.device.createCommandEncoder({ label: "step" });
    const pass = encoder.beginComputePass({ label: "step" });
    this.ops.forEach((op, i) => {
      const { x, y } = this.#groups[i]!;
      rt.dispatch(pass, op.pipeline, op.group, x, y);
    });
    pass.end();
    rt.device.queue.submit([encoder.finish()]);
  }

  /** Releases every buffer the plan acquired. */
  release(): void {
    for (const buffer of this.#owned) this.rt.release(buffer);
  }
}

/**
 * Trains `model` in place on the GPU: the same contract, batches and seeded order as the CPU
 * engine's `train()`.
 *
 * @param rt The runtime.
 * @param cache Uploads of datasets.
 * @param model The model; its parameters are updated in place at the end.
 * @param data Training examples.
 * @param options As for the CPU engine.
 * @returns The last epoch's running metrics and the number of steps.
 */
export async function gpuTrain(
  rt: GpuRuntime,
  cache: GpuDataCache,
  model: Model,
  data: Dataset,
  options: TrainOptions,
): Promise<TrainResult> {
  const { epochs = 1, batchSize = 32, seed = 0, shuffle = true } = options;
  const { lr, momentum = 0, weightDecay = 0, proximalMu = 0 } = options;
  checkTrainingInputs(model, data, { "Epochs": epochs, "Batch size": batchSize });
  if (data.n === 0) throw new RangeError("Cannot train on an empty dataset");
  new Sgd(0, { lr, momentum, weightDecay, proximalMu }); // checks the optimizer's options
  rt.check();
  const rng = options.rng ?? new Rng(seed);
  const batch = Math.min(batchSize, data.n);
  const plan = new _Plan(rt, model, { data, buffers: cache.get(data) }, {
    batch,
    sgd: { lr, momentum, weightDecay, proximalMu },
  });
  try {
    let last: Metrics = { loss: NaN, accuracy: NaN, examples: 0 };
    const identity = shuffle ? null : _identity(data.n);
    for (let epoch = 1; epoch <= epochs; epoch++) {
      last = await plan.runEpoch(identity ?? rng.permutation(data.n));
      options.onEpoch?.(epoch, last);
    }
    model.params.set(new Float32Array(await rt.read(plan.params, model.params.byteLength)));
    return { last, steps: Math.ceil(data.n / batch) * epochs };
  } finally {
    plan.release();
  }
}

/**
 * Mean softmax cross-entropy and accuracy of `model` on `data`, computed on the GPU; one
 * readback at the end.
 *
 * @param rt The runtime.
 * @param cache Uploads of datasets.
 * @param model The model.
 * @param data Examples to score.
 * @param options `batchSize` of the forward passes (default 1000).
 * @returns Loss, accuracy and example count.
 */
export async function gpuEvaluate(
  rt: GpuRuntime,
  cache: GpuDataCache,
  model: Model,
  data: Dataset,
  options: { batchSize?: number } = {},
): Promise<Metrics> {
  const { batchSize = 1000 } = options;
  checkTrainingInputs(model, data, { "Batch size": batchSize });
  if (data.n === 0) return { loss: NaN, accuracy: NaN, examples: 0 };
  rt.check();
  const plan = new _Plan(rt, model, { data, buffers: cache.get(data) }, {
    batch: Math.min(batchSize, data.n),
  });
  try {
    return await plan.runEpoch(_identity(data.n));
  } finally {
    plan.release();
  }
}

/**
 * The gradient of the mean softmax cross-entropy of `model` on `(x, labels)` with respect to
 * the inputs, computed on the GPU in one step over the whole batch: the contract of
 * `inputGradient` in `lib/nn/gradient.ts`, equal to it within float rounding.
 *
 * @param rt The runtime.
 * @param model The model (left alone).
 * @param x Inputs (batch, inputSize), at least one example.
 * @param labels Class labels (batch), integers in [0, outputSize).
 * @returns `dL/dx`, (batch, inputSize).
 * @throws {TypeError} If `x` is not a Float32Array, a label is not an integer, or a layer has
 *   no WebGPU kernels.
 * @throws {RangeError} If `x` is empty or not whole examples, `labels` has another length, a
 *   label is outside [0, outputSize), or `x` exceeds the GPU's largest storage binding.
 */
export async function gpuInputGradient(
  rt: GpuRuntime,
  model: Model,
  x: Float32Array,
  labels: ArrayLike<number>,
): Promise<Float32Array> {
  const rows = checkGradientInputs(model, x, labels);
  if (x.byteLength > rt.maxBindingBytes) {
    throw new RangeError(
      `Input of ${x.byteLength} bytes exceeds the GPU's largest storage binding ` +
        `(${rt.maxBindingBytes} bytes)`,
    );
  }
  rt.check();
  const y = Uint32Array.from({ length: rows }, (_, i) => labels[i]!);
  const data: Dataset = {
    x,
    y: new Int32Array(y.buffer),
    n: rows,
    features: model.inputSize,
    classes: model.outputSize,
  };
  const buffers = { x: rt.upload(x, "input.x"), y: rt.upload(y, "input.y") };
  try {
    const plan = new _Plan(rt, model, { data, buffers }, { batch: rows, inputGradient: true });
    try {
      await plan.runEpoch(_identity(rows));
      return new Float32Array(await rt.read(plan.inputGrad!, x.byteLength));
    } finally {
      plan.release();
    }
  } finally {
    rt.release(buffers.x);
    rt.release(buffers.y);
  }
}
