/**
 * Compute backends: the engines the model core trains through. `cpu` runs the Wasm SIMD
 * kernels of `lib/compute/cpu` (the bits of the reference engine of `lib/nn`, which it can also
 * be asked for); `webgpu` runs the WGSL kernels of `shaders/` with data and parameters resident
 * on the GPU. Both give the same numbers within float rounding (see the parity tests).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Dataset } from "../data/dataset.ts";
import type { Model } from "../nn/model.ts";
import { evaluate, type Metrics, train, type TrainOptions, type TrainResult } from "../nn/train.ts";
import { wasmEvaluate, wasmTrain } from "./cpu/train.ts";
import { WasmWeightedSum } from "./cpu/weighted_sum.ts";
import { Float64WeightedSum, type WeightedSum } from "./reduce.ts";
import { GpuWeightedSum } from "./webgpu/weighted_sum.ts";
import { findAdapter, GpuRuntime, WebGpuUnavailableError } from "./webgpu/runtime.ts";
import { GpuDataCache, gpuEvaluate, gpuTrain } from "./webgpu/train.ts";

/** Which backend to use: `auto` picks WebGPU on a hardware adapter, else the CPU. */
export type BackendKind = "auto" | "cpu" | "webgpu";

/** The kinds {@linkcode createBackend} accepts. */
export const BACKEND_KINDS: readonly BackendKind[] = ["auto", "cpu", "webgpu"];

/** An engine that trains and evaluates models and provides the reductions strategies use. */
export interface Backend {
  /** Which engine this is. */
  readonly kind: "cpu" | "webgpu";
  /** What it runs on, e.g. `CPU (Wasm SIMD engine)` or the GPU adapter's description. */
  readonly device: string;
  /**
   * Trains `model` in place; the contract of {@linkcode train}.
   *
   * @param model The model.
   * @param data Training examples.
   * @param options Epochs, batch size, learning rate, momentum, weight decay, seed.
   */
  train(model: Model, data: Dataset, options: TrainOptions): Promise<TrainResult>;
  /**
   * Loss and accuracy of `model` on `data`; the contract of {@linkcode evaluate}.
   *
   * @param model The model.
   * @param data Examples to score.
   */
  evaluate(model: Model, data: Dataset): Promise<Metrics>;
  /** A weighted sum of updates that runs on this backend (see `lib/compute/reduce.ts`). */
  createWeightedSum(): WeightedSum;
  /** Frees what the backend holds (GPU memory); it cannot be used afterwards. */
  dispose(): void;
}

/**
 * The CPU engine as a {@linkcode Backend}: the Wasm SIMD kernels by default, or the plain
 * reference engine of `lib/nn`. Both give the same bits.
 */
export class CpuBackend implements Backend {
  /** Which engine this is. */
  readonly kind = "cpu" as const;
  /** Which CPU engine runs. */
  readonly engine: "wasm" | "reference";

  /**
   * Creates the backend; prefer {@linkcode createBackend}.
   *
   * @param engine `wasm` (default) for the SIMD kernels, `reference` for the plain engine.
   */
  constructor(engine: "wasm" | "reference" = "wasm") {
    this.engine = engine;
  }

  /** What it runs on. */
  get device(): string {
    return this.engine === "wasm" ? "CPU (Wasm SIMD engine)" : "CPU (reference engine)";
  }

  /**
   * Trains on the CPU.
   *
   * @param model The model.
   * @param data Training examples.
   * @param options Training options.
   * @returns What {@linkcode train} returns.
   */
  train(model: Model, data: Dataset, options: TrainOptions): Promise<TrainResult> {
    return Promise.resolve(
      this.engine === "wasm" ? wasmTrain(model, data, options) : train(model, data, options),
    );
  }

  /**
   * Evaluates on the CPU.
   *
   * @param model The model.
   * @param data Examples to score.
   * @returns What {@linkcode evaluate} returns.
   */
  evaluate(model: Model, data: Dataset): Promise<Metrics> {
    return Promise.resolve(
      this.engine === "wasm" ? wasmEvaluate(model, data) : evaluate(model, data),
    );
  }

  /**
   * A float64 weighted sum: {@linkcode WasmWeightedSum} on the Wasm engine,
   * {@linkcode Float64WeightedSum} on the reference engine (the same bits).
   *
   * @returns The sum.
   */
  createWeightedSum(): WeightedSum {
    return this.engine === "wasm" ? new WasmWeightedSum() : new Float64WeightedSum();
  }

  /** Nothing to free (a sum frees its memory when collected). */
  dispose(): void {}
}

/** The WebGPU engine as a {@linkcode Backend}. */
export class WebGpuBackend implements Backend {
  /** Which engine this is. */
  readonly kind = "webgpu" as const;
  /** The runtime (device, pipelines, buffers). */
  readonly runtime: GpuRuntime;
  #cache: GpuDataCache;
  #sums: GpuWeightedSum[] = [];

  /**
   * Wraps a runtime; prefer {@linkcode createBackend}.
   *
   * @param runtime The runtime, owned (and disposed) by the backend from now on.
   */
  constructor(runtime: GpuRuntime) {
    this.runtime = runtime;
    this.#cache = new GpuDataCache(runtime);
  }

  /** The adapter's description. */
  get device(): string {
    return this.runtime.adapter;
  }

  /**
   * Trains on the GPU. A dataset is uploaded on its first use and kept until
   * {@linkcode WebGpuBackend.dispose}.
   *
   * @param model The model.
   * @param data Training examples.
   * @param options Training options.
   * @returns The last epoch's metrics and the step count.
   */
  train(model: Model, data: Dataset, options: TrainOptions): Promise<TrainResult> {
    return gpuTrain(this.runtime, this.#cache, model, data, options);
  }

  /**
   * Evaluates on the GPU.
   *
   * @param model The model.
   * @param data Examples to score.
   * @returns Loss, accuracy and example count.
   */
  evaluate(model: Model, data: Dataset): Promise<Metrics> {
    return gpuEvaluate(this.runtime, this.#cache, model, data);
  }

  /**
   * A weighted sum reduced on the GPU.
   *
   * @returns The sum.
   */
  createWeightedSum(): WeightedSum {
    const sum = new GpuWeightedSum(this.runtime);
    this.#sums.push(sum);
    return sum;
  }

  /** Frees every upload, buffer and the device. */
  dispose(): void {
    for (const sum of this.#sums) sum.dispose();
    this.#cache.clear();
    this.runtime.dispose();
  }
}

/**
 * Creates a backend.
 *
 * `auto` uses WebGPU when a hardware adapter exists and the CPU otherwise: a software adapter
 * (such as Mesa's llvmpipe) is far slower than the CPU engine, so it is used only when asked
 * for by name.
 *
 * @param kind `auto` (default), `cpu` or `webgpu`.
 * @returns The backend; call `dispose()` when done.
 * @throws {WebGpuUnavailableError} If `webgpu` is asked for and no adapter or device exists.
 * @throws {TypeError} If `kind` is not a backend kind.
 *
 * @example Usage
 * ```ts
 * import { createBackend } from "@fedgpu/fedgpu";
 * import { ok } from "node:assert/strict";
 *
 * const backend = await createBackend("cpu");
 * ok(backend.device.startsWith("CPU"));
 * backend.dispose();
 * ```
 */
export async function createBackend(kind: BackendKind = "auto"): Promise<Backend> {
  switch (kind) {
    case "cpu":
      return new CpuBackend();
    case "webgpu": {
      const adapter = await findAdapter();
      if (adapter === null) {
        throw new WebGpuUnavailableError(
          "The webgpu backend was asked for, but no WebGPU adapter is available",
        );
      }
      return new WebGpuBackend(await GpuRuntime.create());
    }
    case "auto": {
      const adapter = await findAdapter();
      if (adapter === null || adapter.info.isFallbackAdapter) return new CpuBackend();
      try {
        return new WebGpuBackend(await GpuRuntime.create());
      } catch {
        return new CpuBackend();
      }
    }
    default:
      throw new TypeError(
        `Backend must be one of ${BACKEND_KINDS.join(", ")}, got ${JSON.stringify(kind)}`,
      );
  }
}
