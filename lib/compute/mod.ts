/**
 * The compute room of fedgpu: the engines the model core trains through (the CPU Wasm SIMD
 * engine and the WebGPU engine behind one `Backend` interface), their runtimes and kernels,
 * and the reduction primitives aggregation strategies are built on. Only this room touches
 * `navigator.gpu` and kernels.
 *
 * @example Usage
 * ```ts
 * import { createBackend } from "@fedgpu/fedgpu/compute";
 * import { ok } from "node:assert/strict";
 *
 * const backend = await createBackend("cpu");
 * const sum = backend.createWeightedSum();
 * sum.begin(2);
 * sum.add(new Float32Array([1, 3]), 2);
 * ok(sum.totalWeight === 2);
 * backend.dispose();
 * ```
 *
 * This module is browser-compatible.
 *
 * @module
 */

export {
  type Backend,
  BACKEND_KINDS,
  type BackendKind,
  CpuBackend,
  createBackend,
  WebGpuBackend,
} from "./backend.ts";
export {
  checkWeightedUpdate,
  Float64WeightedSum,
  nonFiniteError,
  type WeightedSum,
} from "./reduce.ts";
export { WasmWeightedSum } from "./cpu/weighted_sum.ts";
export { FEDAVG_SLOTS, GpuWeightedSum } from "./webgpu/weighted_sum.ts";
export {
  describeAdapter,
  findAdapter,
  GpuDeviceLostError,
  GpuRuntime,
  type KernelName,
  KERNELS,
  STORAGE,
  UNIFORM,
  WebGpuUnavailableError,
} from "./webgpu/runtime.ts";
