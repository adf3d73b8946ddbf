/**
 * The contract of a layer kind's dispatches in a WebGPU plan. Each kind with kernels has a
 * file beside this one and its line in the table of `../ops.ts`.
 *
 * A plan records every dispatch of a step once; a layer adds its own through
 * {@linkcode GpuPlanContext.op}, each with the uniform words and workgroup counts it needs for
 * a batch of `rows`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Layer } from "../../../nn/layers.ts";
import type { GpuRuntime } from "../runtime.ts";

/** A dispatch's uniform words and workgroup counts for a batch of `rows`. */
export type GpuShape = (rows: number) => { words: ArrayBuffer; x: number; y: number };

/** What a layer records its dispatches through. */
export interface GpuPlanContext {
  /** The runtime (pipelines). */
  readonly rt: GpuRuntime;
  /** The model's flat parameter buffer. */
  readonly params: GPUBuffer;
  /**
   * Records a dispatch of `pipeline`, with a uniform at binding 0 and `buffers` at theirs.
   *
   * @param label The label of its bind group and uniform.
   */
  op(
    pipeline: GPUComputePipeline,
    buffers: Record<number, GPUBuffer>,
    label: string,
    shape: GpuShape,
  ): void;
}

/** The buffers of one layer's forward pass. */
export interface GpuForwardIo {
  /** The layer's index in the chain (for labels). */
  readonly l: number;
  /** Inputs (rows, inputs). */
  readonly x: GPUBuffer;
  /** Outputs (rows, outputs). */
  readonly y: GPUBuffer;
  /** Inputs per example. */
  readonly inputs: number;
  /** Where the layer's parameters start in the flat buffer, in floats. */
  readonly offset: number;
}

/** The buffers of one layer's backward pass. */
export interface GpuBackwardIo extends GpuForwardIo {
  /** Gradient of the outputs; the layer may overwrite it. */
  readonly dy: GPUBuffer;
  /** Gradient of the inputs, overwritten; `null` when nobody needs it. */
  readonly dx: GPUBuffer | null;
  /** Gradient of the parameters, laid out like the flat buffer; `null` when not training. */
  readonly grads: GPUBuffer | null;
}

/** A layer kind's WebGPU dispatches. */
export interface GpuLayer<L extends Layer> {
  /** Records the layer's forward pass. */
  forward(layer: L, ctx: GpuPlanContext, io: GpuForwardIo): void;
  /** Records its backward pass. */
  backward(layer: L, ctx: GpuPlanContext, io: GpuBackwardIo): void;
}

/**
 * A uniform's 32-bit words, padded to 16 bytes.
 *
 * @param values The words, u32 unless their index is in `floats`.
 * @param floats Indices of f32 words.
 * @returns The bytes.
 */
export function uniformWords(values: number[], floats: readonly number[] = []): ArrayBuffer {
  const padded = Math.ceil(values.length / 4) * 4;
  const buffer = new ArrayBuffer(padded * 4);
  const u32 = new Uint32Array(buffer);
  const f32 = new Float32Array(buffer);
  values.forEach((value, i) => {
    if (floats.includes(i)) f32[i] = value;
    else u32[i] = value;
  });
  return buffer;
}

/**
 * Workgroups of `size` invocations that cover `count` items.
 *
 * @param count Items.
 * @param size Invocations a workgroup (default 256).
 * @returns The workgroup count.
 */
export function workgroups(count: number, size = 256): number {
  return Math.ceil(count / size);
}

/**
 * The shape of an elementwise dispatch over `count(rows)` values: one uniform word, the count.
 *
 * @param count Values for a batch of `rows`.
 * @returns The shape.
 */
export function elementwise(count: (rows: number) => number): GpuShape {
  return (rows) => ({ words: uniformWords([count(rows)]), x: workgroups(count(rows)), y: 1 });
}
