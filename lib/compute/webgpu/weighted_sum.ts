/**
 * The GPU's {@linkcode WeightedSum}: updates are uploaded into K slots of one packed buffer,
 * and the `fedavg` kernel folds the K slots into a running float32 sum, so GPU memory is
 * O(K x parameters) however many clients report. `combine` runs on the GPU too.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { checkWeightedUpdate, nonFiniteError, type WeightedSum } from "../reduce.ts";
import { type GpuRuntime, STORAGE } from "./runtime.ts";

/** Client update slots reduced per dispatch, at most (fewer when a model is very large). */
export const FEDAVG_SLOTS = 8;

/**
 * A {@linkcode WeightedSum} on the GPU; results equal the CPU sums' within float32 rounding
 * (the CPU ones sum in float64).
 */
export class GpuWeightedSum implements WeightedSum {
  #rt: GpuRuntime;
  #count = 0;
  #pending = 0;
  #totalWeight = 0;
  #size = -1;
  #begun = false;
  #weights = new Float32Array(FEDAVG_SLOTS);
  #slots = FEDAVG_SLOTS;
  #buffers: { acc: GPUBuffer; slots: GPUBuffer; weights: GPUBuffer } | null = null;

  /**
   * Creates a sum on a runtime.
   *
   * @param rt The runtime.
   */
  constructor(rt: GpuRuntime) {
    this.#rt = rt;
  }

  /** Vectors added. */
  get count(): number {
    return this.#count;
  }

  /** Sum of the weights added. */
  get totalWeight(): number {
    return this.#totalWeight;
  }

  /**
   * Starts a new sum.
   *
   * @param size Values per vector.
   * @throws {RangeError} If a vector exceeds the GPU's largest storage binding.
   */
  begin(size: number): void {
    const rt = this.#rt;
    rt.check();
    const byteLength = 4 * size;
    if (size !== this.#size) {
      this.#free();
      if (byteLength > rt.maxBindingBytes) {
        throw new RangeError(
          `A model of ${byteLength} bytes exceeds the GPU's largest storage binding`,
        );
      }
      this.#size = size;
      this.#slots = Math.max(
        1,
        Math.min(FEDAVG_SLOTS, Math.floor(rt.maxBindingBytes / byteLength)),
      );
      this.#buffers = {
        acc: rt.acquire(byteLength, STORAGE, "fedavg.acc"),
        slots: rt.acquire(byteLength * this.#slots, STORAGE, "fedavg.slots"),
        weights: rt.acquire(4 * FEDAVG_SLOTS, STORAGE, "fedavg.weights"),
      };
    }
    rt.write(this.#buffers!.acc, new Float32Array(size));
    this.#begun = true;
    this.#count = 0;
    this.#pending = 0;
    this.#totalWeight = 0;
  }

  /**
   * Uploads one update into a free slot; a full set of slots is reduced at once.
   *
   * @param update The vector.
   * @param weight Its weight, positive and finite.
   * @throws {Error} If no sum was begun.
   * @throws {RangeError} If the length is wrong, a value is not finite or the weight is bad;
   *   the sum is left unchanged.
   */
  add(update: Float32Array, weight: number): void {
    if (!this.#begun) throw new Error("Call begin() before add()");
    checkWeightedUpdate(this.#size, update, weight);
    for (let i = 0; i < update.length; i++) {
      if (!Number.isFinite(update[i]!)) throw nonFiniteError(i);
    }
    this.#rt.write(this.#buffers!.slots, update, this.#pending * update.byteLength);
    this.#weights[this.#pending++] = weight;
    this.#totalWeight += weight;
    this.#count++;
    if (this.#pending === this.#slots) this.#reduce();
  }

  /** Folds the pending slots into the running sum. */
  #reduce(): void {
    if (this.#pending === 0) return;
    const rt = this.#rt;
    const { acc, slots, weights } = this.#buffers!;
    rt.write(weights, this.#weights);
    const pipeline = rt.pipeline("fedavg", "accumulate");
    const dims = rt.uniform(
      new Uint32Array([this.#size, this.#pending, 0, 0]).buffer,
      "fedavg.dims",
    );
    try {
      const group = rt.bind(
        pipeline,
        { 0: dims, 1: weights, 2: slots, 3: acc },
        "fedavg.accumulate",
      );
      const encoder = rt.device.createCommandEncoder({ label: "fedavg.accumulate" });
      const pass = encoder.beginComputePass();
      rt.dispatch(pass, pipeline, group, Math.ceil(this.#size / 256));
      pass.end();
      rt.device.queue.submit([encoder.finish()]);
    } finally {
      rt.release(dims);
    }
    this.#pending = 0;
  }

  /**
   * `base + scale * sum` on the GPU, read back.
   *
   * @param base The vector added to (not modified).
   * @param scale The factor of the sum (rounded to float32).
   * @returns A new array.
   * @throws {Error} If no sum was begun.
   * @throws {RangeError} If `base` has the wrong length.
   */
  async combine(base: Float32Array, scale: number): Promise<Float32Array> {
    if (!this.#begun) throw new Error("Call begin() before combine()");
    if (base.length !== this.#size) {
      throw new RangeError(`Base has ${base.length} values, the sum has ${this.#size}`);
    }
    this.#reduce();
    const rt = this.#rt;
    const { acc } = this.#buffers!;
    const words = new ArrayBuffer(16);
    new Uint32Array(words).set([base.length, 0]);
    new Float32Array(words)[2] = scale;
    const dims = rt.uniform(words, "fedavg.dims");
    const baseBuffer = rt.upload(base, "fedavg.global");
    const out = rt.acquire(base.byteLength, STORAGE, "fedavg.out");
    try {
      const pipeline = rt.pipeline("fedavg", "finish");
      const group = rt.bind(
        pipeline,
        { 0: dims, 3: acc, 4: baseBuffer, 5: out },
        "fedavg.finish",
      );
      const encoder = rt.device.createCommandEncoder({ label: "fedavg.finish" });
      const pass = encoder.beginComputePass();
      rt.dispatch(pass, pipeline, group, Math.ceil(base.length / 256));
      pass.end();
      rt.device.queue.submit([encoder.finish()]);
      return new Float32Array(await rt.read(out, base.byteLength));
    } finally {
      rt.release(dims);
      rt.release(baseBuffer);
      rt.release(out);
    }
  }

  /**
   * The float32 sum, read back and widened.
   *
   * @returns A new array.
   * @throws {Error} If no sum was begun.
   */
  async read(): Promise<Float64Array> {
    if (!this.#begun) throw new Error("Call begin() before read()");
    this.#reduce();
    return Float64Array.from(
      new Float32Array(await this.#rt.read(this.#buffers!.acc, 4 * this.#size)),
    );
  }

  #free(): void {
    if (this.#buffers === null) return;
    for (const buffer of Object.values(this.#buffers)) this.#rt.release(buffer);
    this.#buffers = null;
  }

  /** Gives the sum's GPU buffers back to the runtime's pool. */
  dispose(): void {
    this.#free();
    this.#begun = false;
    this.#size = -1;
  }
}
