/**
 * The WebGPU plan's input gradient against the CPU's `inputGradient()`, and the plan's
 * dispatch counts with and without it.
 *
 * Tolerance: both engines compute in float32 (unit roundoff U = 2^-24 ≈ 6e-8) with sums of at
 * most a dozen terms here, in different orders; each value is within about 12·U·Σ|terms| of
 * the exact one, well inside rtol 1e-4 of the value plus atol 1e-6.
 */

import { ok, strictEqual } from "node:assert/strict";
import {
  Chain,
  createDataset,
  Dense,
  inputGradient,
  type Layer,
  relu,
  Rng,
  softmax,
} from "../../mod.ts";
import { findAdapter, GpuRuntime } from "../../lib/compute/webgpu/runtime.ts";
import { GpuDataCache, gpuInputGradient, gpuTrain } from "../../lib/compute/webgpu/train.ts";
import { assertAllClose, randomArray, randomLabels, refMetrics } from "../nn/_reference.ts";

const adapter = await findAdapter();

/** A model and a batch whose relu inputs all stay at least 1e-3 from the kink. */
function gradCase(layers: Layer[], batch: number) {
  for (let seed = 1; seed < 100; seed++) {
    const rng = new Rng(seed);
    const model = Chain(...layers);
    model.params.set(randomArray(rng, model.params.length, 0.6));
    const x = randomArray(rng, batch * model.inputSize);
    const y = randomLabels(rng, batch, model.outputSize);
    if (refMetrics(model.layers, model.params, x, y).trace.reluMargin >= 1e-3) {
      return { model, x, y };
    }
  }
  throw new Error("no seed keeps the relu inputs away from the kink");
}

/** Counts the dispatches `rt` records while `fn` runs. */
async function countDispatches(rt: GpuRuntime, fn: () => Promise<unknown>): Promise<number> {
  const dispatch = rt.dispatch;
  let count = 0;
  rt.dispatch = (...args) => (count++, dispatch.apply(rt, args));
  try {
    await fn();
  } finally {
    rt.dispatch = dispatch;
  }
  return count;
}

// Dispatches a step, counted by hand from the plan's recipe: gather, each layer's forward, the
// loss; then backward from the top, where a dense layer records its relu mask (if fused), its
// weight and bias gradients (when training) and its input gradient (unless it is the first
// layer and the input's gradient was not asked for), and a relu layer its backward (same
// condition); then the optimizer step (when training).
const CHAINS: readonly {
  name: string;
  layers: () => Layer[];
  batch: number;
  train: number;
  gradient: number;
}[] = [
  {
    name: "Dense(5, 4, relu), Dense(4, 3), softmax",
    layers: () => [Dense(5, 4, relu), Dense(4, 3), softmax],
    batch: 7,
    // 1 + 2 + 1 + (dw, db, dx) + (mask, dw, db) + 1
    train: 11,
    // 1 + 2 + 1 + (dx) + (mask, dx)
    gradient: 7,
  },
  {
    name: "relu, Dense(6, 5), relu, Dense(5, 3)",
    layers: () => [relu, Dense(6, 5), relu, Dense(5, 3)],
    batch: 4,
    // 1 + 4 + 1 + (dw, db, dx) + (relu) + (dw, db, dx) + () + 1
    train: 14,
    // 1 + 4 + 1 + (dx) + (relu) + (dx) + (relu)
    gradient: 10,
  },
];

if (adapter === null) {
  Deno.test("WebGPU input gradient tests", () => {
    console.log("WebGPU input gradient tests skipped: no WebGPU adapter on this machine");
  });
} else {
  let shared: GpuRuntime | null = null;
  globalThis.addEventListener("unload", () => shared?.dispose());
  const gpuTest = (name: string, fn: (rt: GpuRuntime) => Promise<void>) =>
    Deno.test({
      name,
      fn: async () => fn(shared ??= await GpuRuntime.create(adapter)),
      sanitizeOps: false,
      sanitizeResources: false,
    });

  for (const { name, layers, batch, train, gradient } of CHAINS) {
    gpuTest(`gpuInputGradient() equals the CPU's inputGradient(): Chain(${name})`, async (rt) => {
      const { model, x, y } = gradCase(layers(), batch);
      const want = inputGradient(model, x, y);
      ok(want.some((g) => Math.abs(g) > 1e-2), "the check is not vacuous");
      let got: Float32Array = new Float32Array(0);
      const dispatches = await countDispatches(rt, async () => {
        got = await gpuInputGradient(rt, model, x, y);
      });
      assertAllClose(got, want, { rtol: 1e-4, atol: 1e-6 }, "dL/dx");
      strictEqual(dispatches, gradient, "dispatches of the one step");
    });

    gpuTest(
      `gpuTrain() computes no gradient of the input batch: Chain(${name})`,
      async (rt) => {
        const { model, x, y } = gradCase(layers(), batch);
        const data = createDataset(x, y, { features: model.inputSize, classes: model.outputSize });
        const cache = new GpuDataCache(rt);
        try {
          const options = { epochs: 2, batchSize: 3, lr: 0.1, momentum: 0.5 };
          const steps = 2 * Math.ceil(batch / 3);
          const dispatches = await countDispatches(
            rt,
            () => gpuTrain(rt, cache, model, data, options),
          );
          strictEqual(dispatches, steps * train);
        } finally {
          cache.clear();
        }
      },
    );
  }

  gpuTest("gpuInputGradient() checks its arguments like inputGradient()", async (rt) => {
    const model = Chain(Dense(4, 3), softmax);
    const x = new Float32Array(8);
    const cases: [Float32Array, number[], RegExp][] = [
      [new Float32Array(5), [0], /^Input of 5 values is not a positive whole number/],
      [x, [0], /^Expected 2 labels, one per example, got 1$/],
      [x, [0, 0.5], /^Label 1 must be an integer, got 0.5$/],
      [x, [0, 3], /^Label 1 must be in \[0, 3\), got 3$/],
    ];
    for (const [input, labels, message] of cases) {
      let error: unknown = null;
      try {
        await gpuInputGradient(rt, model, input, labels);
      } catch (caught) {
        error = caught;
      }
      ok(error instanceof TypeError || error instanceof RangeError, String(error));
      ok(message.test((error as Error).message), (error as Error).message);
    }
  });
}
