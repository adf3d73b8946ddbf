/**
 * The dense layer on the Wasm engine: `dense_fwd` forward; backward `prep_dy`, `dense_dx`
 * (masked by the layer below's relu where asked), and `dense_dw_sgd` for the weight and the
 * bias, which takes the optimizer step in the same pass.
 *
 * The weight is kept as (nIn, nOutP) rows padded to {@linkcode BLOCK} columns, the bias as
 * (nOutP).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { DenseLayer } from "../../../nn/layers.ts";
import { heap, wasm } from "../wasm.ts";
import { BLOCK, pad, type WasmContext, type WasmOp } from "./op.ts";

/**
 * The dense layer's Wasm kernels.
 *
 * @param spec The layer.
 * @param ctx The call's allocator and shape.
 * @returns The op.
 */
export function wasmDense(spec: DenseLayer, ctx: WasmContext): WasmOp {
  const { nIn, nOut } = spec;
  const nOutP = pad(nOut);
  const wBytes = nIn * nOutP * 4;
  const velocity = ctx.training && ctx.momentum;
  const w = ctx.alloc(wBytes);
  const b = ctx.alloc(nOutP * 4);
  const vw = velocity ? ctx.alloc(wBytes) : 0;
  const vb = velocity ? ctx.alloc(nOutP * 4) : 0;
  // FedProx's anchor: the parameters training started from, laid out like them.
  const proximal = ctx.training && ctx.proximal;
  const aw = proximal ? ctx.alloc(wBytes) : 0;
  const ab = proximal ? ctx.alloc(nOutP * 4) : 0;
  const { cap } = ctx;
  // The bias gradient is the weight kernel run on a column of ones.
  const ones = ctx.training ? ctx.alloc(cap * 4) : 0;
  if (ctx.training) new Float32Array(heap.buffer, ones, cap).fill(1);
  // dy transposed, and dy in float64 rows, for the dx and the dw kernels.
  const scratch: Record<string, number> = ctx.training
    ? { dyT: nOutP * cap * 8, dy64: cap * nOutP * 8 }
    : {};
  return {
    rectified: spec.activation === "relu",
    scratch,
    load(params) {
      const wv = new Float32Array(heap.buffer, w, nIn * nOutP);
      for (let k = 0; k < nIn; k++) {
        wv.set(params.subarray(k * nOut, (k + 1) * nOut), k * nOutP);
      }
      new Float32Array(heap.buffer, b, nOut).set(params.subarray(nIn * nOut));
      if (proximal) {
        const bytes = new Uint8Array(heap.buffer);
        bytes.copyWithin(aw, w, w + wBytes);
        bytes.copyWithin(ab, b, b + nOutP * 4);
      }
    },
    store(params) {
      const wv = new Float32Array(heap.buffer, w, nIn * nOutP);
      for (let k = 0; k < nIn; k++) {
        params.set(wv.subarray(k * nOutP, k * nOutP + nOut), k * nOut);
      }
      params.set(new Float32Array(heap.buffer, b, nOut), nIn * nOut);
    },
    forward({ x, xStride, y, yStride, rows }) {
      const relu = spec.activation === "relu" ? 1 : 0;
      wasm.dense_fwd(x, xStride, w, nOutP * 4, b, y, yStride, rows, nIn, nOutP / BLOCK, relu);
    },
    backwardAndStep({ x, xStride, dy, dyStride, dx, maskDx, rows, scratch }, sgd) {
      const dyT = scratch.dyT!;
      const dy64 = scratch.dy64!;
      wasm.prep_dy(dy, dyStride, rows, nOut, dyT, cap * 8, dy64, nOutP * 8);
      if (dx !== 0) {
        wasm.dense_dx(dyT, cap * 8, w, nOutP * 4, nOut, dx, x, xStride, rows, nIn, maskDx ? 1 : 0);
      }
      const { lr, momentum, weightDecay, proximalMu } = sgd;
      const withProximal = proximal && proximalMu > 0 ? 1 : 0;
      const blocks = nOutP / BLOCK;
      const withVelocity = momentum > 0 ? 1 : 0;
      wasm.dense_dw_sgd(
        x,
        xStride,
        dy64,
        nOutP * 8,
        rows,
        nIn,
        blocks,
        w,
        nOutP * 4,
        vw,
        lr,
        momentum,
        weightDecay,
        withVelocity,
        aw,
        proximalMu,
        withProximal,
      );
      wasm.dense_dw_sgd(
        ones,
        4,
        dy64,
        nOutP * 8,
        rows,
        1,
        blocks,
        b,
        nOutP * 4,
        vb,
        lr,
        momentum,
        weightDecay,
        withVelocity,
        ab,
        proximalMu,
        withProximal,
      );
    },
  };
}
