/**
 * The WebGPU runtime: device acquisition and loss reporting, the kernels of `shaders/`, a
 * pipeline cache keyed by kernel, entry point and override constants, a buffer pool keyed by
 * size and usage, uploads, and readback through staging buffers.
 *
 * This folder is the only place that touches `navigator.gpu`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import {
  BIAS_GRAD_WGSL,
  FEDAVG_WGSL,
  GATHER_WGSL,
  MATMUL_WGSL,
  RELU_WGSL,
  SGD_WGSL,
  SOFTMAX_XENT_WGSL,
} from "./shaders.ts";

/** The WGSL kernels, by name (one file each in `shaders/`, held by `shaders.ts`). */
export const KERNELS = {
  bias_grad: BIAS_GRAD_WGSL,
  fedavg: FEDAVG_WGSL,
  gather: GATHER_WGSL,
  matmul: MATMUL_WGSL,
  relu: RELU_WGSL,
  sgd: SGD_WGSL,
  softmax_xent: SOFTMAX_XENT_WGSL,
} as const;

/** A kernel's name. */
export type KernelName = keyof typeof KERNELS;

/** No WebGPU adapter could be had (or the one asked for is missing). */
export class WebGpuUnavailableError extends Error {
  /**
   * Creates the error.
   *
   * @param message Why WebGPU is unavailable.
   */
  constructor(message: string) {
    super(message);
    this.name = "WebGpuUnavailableError";
  }
}

/** The GPU device was lost (driver reset, removal, or destruction) while in use. */
export class GpuDeviceLostError extends Error {
  /** Why the device was lost, as the implementation reports it. */
  readonly reason: string;

  /**
   * Creates the error.
   *
   * @param reason The loss reason.
   * @param message The loss message.
   */
  constructor(reason: string, message: string) {
    super(`The GPU device was lost (${reason})${message ? `: ${message}` : ""}`);
    this.name = "GpuDeviceLostError";
    this.reason = reason;
  }
}

// GPUBufferUsage and GPUMapMode values (WebGPU spec), spelled out so that importing this module
// needs no WebGPU globals.
const _MAP_READ = 0x0001;
const _COPY_SRC = 0x0004;
const _COPY_DST = 0x0008;
const _UNIFORM = 0x0040;
const _STORAGE = 0x0080;
const _MAP_MODE_READ = 0x0001;

/** Usage flags of a storage buffer that is written from the CPU and read back. */
export const STORAGE: number = _STORAGE | _COPY_DST | _COPY_SRC;
/** Usage flags of a uniform buffer written from the CPU. */
export const UNIFORM: number = _UNIFORM | _COPY_DST;

async function _requestAdapter(): Promise<GPUAdapter | null> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) return null;
  try {
    return await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return null;
  }
}

let _adapter: Promise<GPUAdapter | null> | undefined;

/**
 * Finds a WebGPU adapter, asking the system once per process; use it to learn what the
 * machine has. Devices are opened on adapters of their own (an adapter serves one device).
 *
 * @returns The adapter, or null where WebGPU or an adapter is missing.
 */
export function findAdapter(): Promise<GPUAdapter | null> {
  _adapter ??= _requestAdapter();
  return _adapter;
}

/**
 * Describes an adapter in one line, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (software)`.
 *
 * @param adapter The adapter.
 * @returns Its description.
 */
export function describeAdapter(adapter: GPUAdapter): string {
  const info = adapter.info;
  const name = info.description || [info.vendor, info.architecture, info.device]
    .filter((part) => part).join(" ") ||
    "unknown adapter";
  return info.isFallbackAdapter ? `${name} (software)` : name;
}

/** A device with the kernels compiled on demand and the buffers it hands out. */
export class GpuRuntime {
  /** The device. */
  readonly device: GPUDevice;
  /** The adapter's one-line description. */
  readonly adapter: string;
  /** Whether the adapter is a software fallback (such as llvmpipe). */
  readonly software: boolean;
  #lost: GpuDeviceLostError | null = null;
  #error: GPUError | null = null;
  #disposed = false;
  #modules = new Map<KernelName, GPUShaderModule>();
  #pipelines = new Map<string, GPUComputePipeline>();
  #pool = new Map<string, GPUBuffer[]>();
  #live = new Set<GPUBuffer>();

  private constructor(device: GPUDevice, adapter: GPUAdapter) {
    this.device = device;
    this.adapter = describeAdapter(adapter);
    this.software = adapter.info.isFallbackAdapter;
    device.lost.then((info) => {
      if (!this.#disposed) {
        this.#lost = new GpuDeviceLostError(info.reason ?? "unknown", info.message);
      }
    });
    // Validation and out-of-memory errors would otherwise only be logged, and results silently
    // wrong: keep the first one for check() to throw.
    device.addEventListener("uncapturederror", (event) => {
      this.#error ??= (event as GPUUncapturedErrorEvent).error;
    });
  }

  /**
   * Opens a device on `adapter` (or a newly requested one) with the adapter's largest
   * buffer limits.
   *
   * @param adapter The adapter to use.
   * @returns The runtime.
   * @throws {WebGpuUnavailableError} If there is no adapter or no device can be created.
   */
  static async create(adapter?: GPUAdapter | null): Promise<GpuRuntime> {
    const chosen = adapter ?? await _requestAdapter();
    if (chosen === null || chosen === undefined) {
      throw new WebGpuUnavailableError("No WebGPU adapter is available on this machine");
    }
    try {
      const device = await chosen.requestDevice({
        label: "fedgpu",
        requiredLimits: {
          maxStorageBufferBindingSize: chosen.limits.maxStorageBufferBindingSize,
          maxBufferSize: chosen.limits.maxBufferSize,
          maxStorageBuffersPerShaderStage: Math.min(
            8,
            chosen.limits.maxStorageBuffersPerShaderStage,
          ),
        },
      });
      return new GpuRuntime(device, chosen);
    } catch (cause) {
      throw new WebGpuUnavailableError(
        `Could not open a device on ${describeAdapter(chosen)}: ${(cause as Error).message}`,
      );
    }
  }

  /**
   * Throws if the device was lost or the runtime disposed; call before using the device.
   *
   * @throws {GpuDeviceLostError} If the device was lost.
   * @throws {Error} If the runtime was disposed or the device reported a validation or
   *   out-of-memory error (a bug or an exhausted device: results would be wrong).
   */
  check(): void {
    if (this.#lost !== null) throw this.#lost;
    if (this.#disposed) throw new Error("The WebGPU runtime was disposed");
    if (this.#error !== null) {
      throw new Error(`WebGPU reported an error: ${this.#error.message}`);
    }
  }

  /** The largest storage buffer a kernel can bind, in bytes. */
  get maxBindingBytes(): number {
    return this.device.limits.maxStorageBufferBindingSize;
  }

  /**
   * The compute pipeline of a kernel's entry point with override constants, compiled once
   * and cached under (kernel, entry, constants).
   *
   * @param kernel The kernel.
   * @param entry The entry point (default `main`).
   * @param constants Values of the kernel's `override` declarations.
   * @returns The pipeline.
   */
  pipeline(
    kernel: KernelName,
    entry = "main",
    constants: Record<string, number | boolean> = {},
  ): GPUComputePipeline {
    const names = Object.keys(constants).sort();
    const key = `${kernel}:${entry}:${names.map((name) => `${name}=${constants[name]}`).join(",")}`;
    let pipeline = this.#pipelines.get(key);
    if (pipeline === undefined) {
      let module = this.#modules.get(kernel);
      if (module === undefined) {
        module = this.device.createShaderModule({ label: kernel, code: KERNELS[kernel] });
        this.#modules.set(kernel, module);
      }
      const values: Record<string, number> = {};
      for (const name of names) values[name] = Number(constants[name]);
      pipeline = this.device.createComputePipeline({
        label: key,
        layout: "auto",
        compute: { module, entryPoint: entry, constants: values },
      });
      this.#pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /**
   * A buffer of at least `bytes` bytes from the pool (rounded up to 256), or a new one.
   * Its contents are undefined; give it back with {@linkcode GpuRuntime.release}.
   *
   * @param bytes Size wanted.
   * @param usage Usage flags.
   * @param label Debug label.
   * @returns The buffer.
   */
  acquire(bytes: number, usage: number, label: string): GPUBuffer {
    this.check();
    const size = Math.max(256, Math.ceil(bytes / 256) * 256);
    const key = `${size}:${usage}`;
    const buffer = this.#pool.get(key)?.pop() ??
      this.device.createBuffer({ label, size, usage });
    buffer.label = label;
    this.#live.add(buffer);
    return buffer;
  }

  /**
   * Returns a buffer to the pool for reuse.
   *
   * @param buffer A buffer from {@linkcode GpuRuntime.acquire}.
   */
  release(buffer: GPUBuffer): void {
    if (!this.#live.delete(buffer)) return;
    const key = `${buffer.size}:${buffer.usage}`;
    let free = this.#pool.get(key);
    if (free === undefined) this.#pool.set(key, free = []);
    free.push(buffer);
  }

  /**
   * A pooled storage buffer holding `data`.
   *
   * @param data The contents.
   * @param label Debug label.
   * @returns The buffer.
   */
  upload(data: Float32Array | Uint32Array, label: string): GPUBuffer {
    const buffer = this.acquire(data.byteLength, STORAGE, label);
    this.write(buffer, data);
    return buffer;
  }

  /**
   * Queues a write of `data` to `buffer` at `offset` bytes.
   *
   * @param buffer The destination.
   * @param data The contents.
   * @param offset Byte offset (multiple of 4).
   */
  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    this.check();
    this.device.queue.writeBuffer(
      buffer,
      offset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /**
   * A uniform buffer holding `words` (u32 or f32 per entry, 16-byte padded), from the pool.
   *
   * @param words The uniform's 32-bit words.
   * @param label Debug label.
   * @returns The buffer.
   */
  uniform(words: ArrayBuffer, label: string): GPUBuffer {
    const buffer = this.acquire(words.byteLength, UNIFORM, label);
    this.device.queue.writeBuffer(buffer, 0, words);
    return buffer;
  }

  /**
   * Copies `bytes` bytes from `buffer` to the CPU through a staging buffer (released in
   * `finally`), after all queued work.
   *
   * @param buffer A buffer with COPY_SRC usage.
   * @param bytes How many bytes, from offset 0.
   * @returns A copy of the bytes.
   * @throws {GpuDeviceLostError} If the device is lost meanwhile.
   */
  async read(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.check();
    const staging = this.acquire(
      bytes,
      _MAP_READ | _COPY_DST,
      "staging",
    );
    try {
      const encoder = this.device.createCommandEncoder({ label: "readback" });
      encoder.copyBufferToBuffer(buffer, 0, staging, 0, Math.ceil(bytes / 4) * 4);
      this.device.queue.submit([encoder.finish()]);
      try {
        await staging.mapAsync(_MAP_MODE_READ, 0, Math.ceil(bytes / 4) * 4);
      } catch (cause) {
        this.check();
        throw cause;
      }
      const copy = staging.getMappedRange(0, Math.ceil(bytes / 4) * 4).slice(0, bytes);
      staging.unmap();
      this.check();
      return copy;
    } finally {
      this.release(staging);
    }
  }

  /**
   * Records one dispatch of `pipeline` with `entries` bound to group 0.
   *
   * @param pass The compute pass.
   * @param pipeline The pipeline.
   * @param group The bind group (see {@linkcode GpuRuntime.bind}).
   * @param x Workgroups along x; more than the per-dimension limit spill into y.
   * @param y Workgroups along y (default 1).
   */
  dispatch(
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    group: GPUBindGroup,
    x: number,
    y = 1,
  ): void {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    const limit = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x <= limit) pass.dispatchWorkgroups(Math.max(x, 1), y);
    else pass.dispatchWorkgroups(limit, Math.ceil(x / limit) * y);
  }

  /**
   * A bind group for `pipeline`'s group 0 with `buffers` at the given binding numbers.
   *
   * @param pipeline The pipeline.
   * @param buffers Buffers by binding number.
   * @param label Debug label.
   * @returns The bind group.
   */
  bind(
    pipeline: GPUComputePipeline,
    buffers: Record<number, GPUBuffer>,
    label: string,
  ): GPUBindGroup {
    return this.device.createBindGroup({
      label,
      layout: pipeline.getBindGroupLayout(0),
      entries: Object.entries(buffers).map(([binding, buffer]) => ({
        binding: Number(binding),
        resource: { buffer },
      })),
    });
  }

  /** Frees every buffer, pooled or handed out, and the device. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const buffer of this.#live) buffer.destroy();
    for (const free of this.#pool.values()) for (const buffer of free) buffer.destroy();
    this.#live.clear();
    this.#pool.clear();
    this.#pipelines.clear();
    this.#modules.clear();
    this.device.destroy();
  }
}
