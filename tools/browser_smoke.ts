/**
 * A few training steps through the browser-ready core, the same in a browser and in Deno: a
 * small model trained on seeded synthetic data by the Wasm engine and by the reference engine
 * of `lib/nn`, its parameters' SHA-256, FedAvg over two client updates on the Wasm engine, the
 * WGSL kernels' SHA-256, and, where WebGPU has an adapter, the same training on it.
 *
 * `run_browser_smoke.ts` bundles this module for Chromium and compares the two runs;
 * `deno run -A tools/browser_smoke.ts` prints the Deno run's result.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { CpuBackend, createBackend } from "../lib/compute/backend.ts";
import { describeAdapter, findAdapter, KERNELS } from "../lib/compute/webgpu/runtime.ts";
import { createDataset, type Dataset } from "../lib/data/dataset.ts";
import { Dense, relu, softmax } from "../lib/nn/layers.ts";
import { Chain, type Model } from "../lib/nn/model.ts";
import type { TrainOptions } from "../lib/nn/train.ts";
import { Rng } from "../lib/rng.ts";
import { FedAvg } from "../lib/fl/strategies/fedavg.ts";

/** What {@linkcode smoke} reports. */
export interface SmokeResult {
  /** SHA-256 (hex) of the parameters trained by the Wasm engine. */
  wasmParams: string;
  /** SHA-256 (hex) of the parameters trained by the reference engine. */
  referenceParams: string;
  /** The Wasm engine's last-epoch training loss and accuracy, and optimizer steps. */
  wasmTrain: { loss: number; accuracy: number; steps: number };
  /** The Wasm engine's scores of the trained model on held-out data. */
  wasmEvaluate: { loss: number; accuracy: number };
  /** SHA-256 (hex) of the global parameters after one FedAvg round on the Wasm engine. */
  fedAvgParams: string;
  /** The number of WGSL kernels and the SHA-256 (hex) of their sources, in name order. */
  wgsl: { kernels: number; sha256: string };
  /** The WebGPU adapter, or null without one. */
  webgpuAdapter: string | null;
  /**
   * With an adapter: SHA-256 (hex) of the parameters trained on it, its training loss, and the
   * largest absolute difference from the Wasm engine's parameters (float rounding only).
   */
  webgpu: { params: string; loss: number; maxAbsDiff: number } | null;
}

const _OPTIONS: TrainOptions = { epochs: 2, batchSize: 16, lr: 0.05, momentum: 0.9, seed: 7 };

function _hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function _paramsHash(model: Model): string {
  const params = model.params;
  return _hex(sha256(new Uint8Array(params.buffer, params.byteOffset, params.byteLength)));
}

function _data(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = Float32Array.from({ length: n * 12 }, () => rng.float() < 0.4 ? 0 : rng.normal());
  const y = Int32Array.from({ length: n }, () => rng.int(3));
  return createDataset(x, y, { features: 12, classes: 3 });
}

function _model(): Model {
  return Chain(Dense(12, 20, relu), Dense(20, 3), softmax).initialize(3);
}

/**
 * Runs the checks.
 *
 * @returns Hashes and metrics that must agree between platforms.
 */
export async function smoke(): Promise<SmokeResult> {
  const train = _data(96, 1);
  const test = _data(40, 2);
  const wasm = new CpuBackend();
  const reference = new CpuBackend("reference");

  const fast = _model();
  const slow = _model();
  const result = await wasm.train(fast, train, _OPTIONS);
  await reference.train(slow, train, _OPTIONS);
  const scores = await wasm.evaluate(fast, test);

  const global = _model();
  const strategy = new FedAvg({ sum: wasm.createWeightedSum() });
  strategy.begin(global.params);
  for (const [seed, examples] of [[11, 60], [12, 36]] as const) {
    const client = _model();
    client.params.set(global.params);
    await wasm.train(client, _data(examples, seed), _OPTIONS);
    strategy.accumulate(client.params, examples);
  }
  global.params.set(await strategy.finish());

  const wgsl = Object.keys(KERNELS).sort().map((name) => KERNELS[name as keyof typeof KERNELS])
    .join("\0");
  const adapter = await findAdapter();
  let webgpu: SmokeResult["webgpu"] = null;
  if (adapter !== null) {
    const gpu = await createBackend("webgpu");
    try {
      const model = _model();
      const gpuResult = await gpu.train(model, train, _OPTIONS);
      const maxAbsDiff = model.params.reduce(
        (max, value, i) => Math.max(max, Math.abs(value - fast.params[i]!)),
        0,
      );
      webgpu = { params: _paramsHash(model), loss: gpuResult.last.loss, maxAbsDiff };
    } finally {
      gpu.dispose();
    }
  }
  return {
    wasmParams: _paramsHash(fast),
    referenceParams: _paramsHash(slow),
    wasmTrain: {
      loss: result.last.loss,
      accuracy: result.last.accuracy,
      steps: result.steps,
    },
    wasmEvaluate: { loss: scores.loss, accuracy: scores.accuracy },
    fedAvgParams: _paramsHash(global),
    wgsl: {
      kernels: Object.keys(KERNELS).length,
      sha256: _hex(sha256(new TextEncoder().encode(wgsl))),
    },
    webgpuAdapter: adapter === null ? null : describeAdapter(adapter),
    webgpu,
  };
}

if (import.meta.main) console.log(JSON.stringify(await smoke()));
