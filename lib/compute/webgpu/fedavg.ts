/**
 * FedAvg on the GPU: client updates are uploaded into K slots of one packed buffer, and the
 * `fedavg` kernel folds the K slots into a running weighted sum, so the server's GPU memory is
 * O(K x parameters) however many clients report. The round's end is computed on the GPU too.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { FedAvg, type FedAvgOptions } from "../../fl/fedavg.ts";
import type { Strategy } from "../../fl/strategy.ts";
import { type GpuRuntime, STORAGE } from "./runtime.ts";

/** Client update slots reduced per dispatch, at most (fewer when a model is very large). */
export const FEDAVG_SLOTS = 8;

/**
 * The {@linkcode FedAvg} strategy with its weighted reduction on the GPU; results equal the
 * CPU strategy's within float32 rounding of the sum (the CPU one sums in float64).
 */
export class GpuFedAvg implements Strategy {
  /** The strategy's name. */
  readonly name = "fedavg";
  /** Scale of the averaged update. */
  readonly serverLr: number;
  #rt: GpuRuntime;
  #count = 0;
  #pending = 0;
  #totalWeight = 0;
  #size = -1;
  #global: Float32Array | null = null;
  #weights = new Float32Array(FEDAVG_SLOTS);
  #slots = FEDAVG_SLOTS;
  #buffers: { acc: GPUBuffer; slots: GPUBuffer; weights: GPUBuffer } | null = null;

  /**
   * Creates the strategy on a runtime.
   *
   * @param rt The runtime.
   * @param options The server learning rate.
   * @throws {RangeError} If `serverLr` is not positive and finite.
   */
  constructor(rt: GpuRuntime, options: FedAvgOptions = {}) {
    this.serverLr = new FedAvg(options).serverLr;
    this.#rt = rt;
  }

  /** Updates accumulated in the current round. */
  get count(): number {
    return this.#count;
  }

  /**
   * Starts a round.
   *
   * @param global The current global parameters.
   */
  begin(global: Float32Array): void {
    const rt = this.#rt;
    rt.check();
    if (global.length !== this.#size) {
      this.#free();
      if (global.byteLength > rt.maxBindingBytes) {
        throw new RangeError(
          `A model of ${global.byteLength} bytes exceeds the GPU's largest storage binding`,
        );
      }
      this.#size = global.length;
      this.#slots = Math.max(
        1,
        Math.min(FEDAVG_SLOTS, Math.floor(rt.maxBindingBytes / global.byteLength)),
      );
      this.#buffers = {
        acc: rt.acquire(global.byteLength, STORAGE, "fedavg.acc"),
        slots: rt.acquire(global.byteLength * this.#slots, STORAGE, "fedavg.slots"),
        weights: rt.acquire(4 * FEDAVG_SLOTS, STORAGE, "fedavg.weights"),
      };
    }
    rt.write(this.#buffers!.acc, new Float32Array(global.length));
    this.#global = global;
    this.#count = 0;
    this.#pending = 0;
    this.#totalWeight = 0;
  }

  /**
   * Uploads one client's update into a free slot; a full set of slots is reduced at once.
   *
   * @param update The client's parameters minus the global parameters.
   * @param weight The client's weight, positive and finite.
   * @throws {RangeError} As {@linkcode FedAvg.accumulate} does; the round is left unchanged.
   */
  accumulate(update: Float32Array, weight: number): void {
    if (this.#global === null) throw new Error("Call begin() before accumulate()");
    if (update.length !== this.#size) {
      throw new RangeError(`Update has ${update.length} values, the model has ${this.#size}`);
    }
    if (!(weight > 0) || !Number.isFinite(weight)) {
      throw new RangeError(`Update weight must be positive and finite, got ${weight}`);
    }
    for (let i = 0; i < update.length; i++) {
      if (!Number.isFinite(update[i]!)) {
        throw new RangeError(`Update holds a non-finite value at index ${i}`);
      }
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
   * Ends the round on the GPU and reads the new global parameters back.
   *
   * @returns `global + serverLr * sum / totalWeight`, in a new array.
   * @throws {Error} If no round was begun or no update was accumulated.
   */
  async finish(): Promise<Float32Array> {
    const global = this.#global;
    if (global === null) throw new Error("Call begin() before finish()");
    if (this.#count === 0) throw new Error("Cannot finish a round without updates");
    this.#reduce();
    const rt = this.#rt;
    const { acc } = this.#buffers!;
    const words = new ArrayBuffer(16);
    new Uint32Array(words).set([global.length, 0]);
    new Float32Array(words)[2] = this.serverLr / this.#totalWeight;
    const dims = rt.uniform(words, "fedavg.dims");
    const globalBuffer = rt.upload(global, "fedavg.global");
    const out = rt.acquire(global.byteLength, STORAGE, "fedavg.out");
    try {
      const pipeline = rt.pipeline("fedavg", "finish");
      const group = rt.bind(
        pipeline,
        { 0: dims, 3: acc, 4: globalBuffer, 5: out },
        "fedavg.finish",
      );
      const encoder = rt.device.createCommandEncoder({ label: "fedavg.finish" });
      const pass = encoder.beginComputePass();
      rt.dispatch(pass, pipeline, group, Math.ceil(global.length / 256));
      pass.end();
      rt.device.queue.submit([encoder.finish()]);
      this.#global = null;
      return new Float32Array(await rt.read(out, global.byteLength));
    } finally {
      rt.release(dims);
      rt.release(globalBuffer);
      rt.release(out);
    }
  }

  #free(): void {
    if (this.#buffers === null) return;
    for (const buffer of Object.values(this.#buffers)) this.#rt.release(buffer);
    this.#buffers = null;
  }

  /** Gives the strategy's GPU buffers back to the runtime's pool. */
  dispose(): void {
    this.#free();
    this.#size = -1;
  }
}
