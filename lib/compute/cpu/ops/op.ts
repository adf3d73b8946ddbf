/**
 * The contract of a layer kind's kernels on the Wasm engine. Each kind with kernels has a file
 * beside this one and its line in the table of `../ops.ts`.
 *
 * Activations live in Wasm memory as rows padded to {@linkcode BLOCK} floats. Each op keeps its
 * parameters (and their velocity) in a layout of its own, copied in from the model's flat
 * buffer before a call and out after it. Its backward pass also takes the optimizer step on
 * its parameters, after writing the gradient of its inputs.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Layer } from "../../../nn/layers.ts";
import type { Sgd } from "../../../nn/optim.ts";

/** Columns per register block of the kernels; row widths are padded to a multiple. */
export const BLOCK = 16;

/**
 * A width padded to a multiple of {@linkcode BLOCK}.
 *
 * @param n The width.
 * @returns The padded width.
 */
export function pad(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

/** What an op is built with. */
export interface WasmContext {
  /** Allocates zeroed Wasm memory for the call; the engine frees it. */
  alloc(bytes: number): number;
  /** Rows of the activation buffers (the batch padded to {@linkcode BLOCK}). */
  readonly cap: number;
  /** Whether the call trains (backward passes and optimizer steps follow). */
  readonly training: boolean;
  /** Whether the optimizer keeps a velocity. */
  readonly momentum: boolean;
  /** Whether the optimizer has a proximal term (FedProx), anchored at the loaded parameters. */
  readonly proximal: boolean;
}

/** The buffers of one op's forward pass: offsets in Wasm memory and row strides in bytes. */
export interface WasmForwardIo {
  readonly x: number;
  readonly xStride: number;
  readonly y: number;
  readonly yStride: number;
  /** Examples in the batch. */
  readonly rows: number;
}

/** The buffers of one op's backward pass. */
export interface WasmBackwardIo extends WasmForwardIo {
  /** Gradient of the outputs, already masked if the op's output is rectified. */
  readonly dy: number;
  readonly dyStride: number;
  /** Gradient of the inputs, overwritten (stride `xStride`); 0 when nobody needs it. */
  readonly dx: number;
  /** Whether to zero `dx` where `x` is not positive: the layer below rectified its output. */
  readonly maskDx: boolean;
  /** Shared scratch blocks, by the names the ops asked for. */
  readonly scratch: Readonly<Record<string, number>>;
}

/** One layer's kernels and Wasm memory for one call. */
export interface WasmOp {
  /** Whether the op ends in relu: the layer above masks its gradient (see `maskDx`). */
  readonly rectified: boolean;
  /** Scratch the backward pass needs, in bytes by name; blocks of a name are shared. */
  readonly scratch: Readonly<Record<string, number>>;
  /** Copies the layer's parameters (a view of the model's buffer) into Wasm memory. */
  load(params: Float32Array): void;
  /** Copies them back. */
  store(params: Float32Array): void;
  /** Runs the layer. */
  forward(io: WasmForwardIo): void;
  /** Back-propagates `dy` into `dx`, then steps the layer's parameters. */
  backwardAndStep(io: WasmBackwardIo, sgd: Sgd): void;
}

/** A layer kind's Wasm kernels: builds an op for one layer. */
export type WasmLayer<L extends Layer> = (layer: L, ctx: WasmContext) => WasmOp;
