import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  Chain,
  createBackend,
  createDataset,
  type Dataset,
  Dense,
  FedAvg,
  relu,
  Rng,
  simulate,
  softmax,
  type WebGpuBackend,
} from "../../mod.ts";
import { findAdapter, GpuDeviceLostError } from "../../lib/compute/webgpu/runtime.ts";

const adapter = await findAdapter();

/** Three Gaussian blobs in `features` dimensions. */
function blobs(n: number, features: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float32Array(n * features);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = rng.int(3);
    for (let f = 0; f < features; f++) {
      x[i * features + f] = rng.normal() + (f % 3 === y[i] ? 2 : 0);
    }
  }
  return createDataset(x, y, { features, classes: 3 });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

Deno.test("createBackend() gives the CPU engine and rejects unknown kinds", async () => {
  const cpu = await createBackend("cpu");
  strictEqual(cpu.kind, "cpu");
  ok(cpu.device.startsWith("CPU"));
  cpu.dispose();
  await rejects(
    createBackend("gpu" as "cpu"),
    (e) =>
      e instanceof TypeError &&
      /Backend must be one of auto, cpu, webgpu, got "gpu"/.test(e.message),
  );
});

Deno.test("createBackend('auto') takes a hardware adapter and leaves a software one", async () => {
  const backend = await createBackend("auto");
  try {
    const expected = adapter !== null && !adapter.info.isFallbackAdapter ? "webgpu" : "cpu";
    strictEqual(backend.kind, expected);
  } finally {
    backend.dispose();
  }
});

if (adapter === null) {
  Deno.test("WebGPU backend parity tests", () => {
    console.log("WebGPU backend parity tests skipped: no WebGPU adapter on this machine");
  });
} else {
  // GPU objects outlive a single test's async ops; the backends are disposed explicitly.
  const gpuTest = (name: string, fn: () => Promise<void>) =>
    Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });

  gpuTest("WebGPU and CPU backends train to the same parameters within 1e-5", async () => {
    const data = blobs(203, 13, 1);
    const gpu = await createBackend("webgpu");
    const cpu = await createBackend("cpu");
    try {
      strictEqual(gpu.kind, "webgpu");
      const cases = [
        () => Chain(Dense(13, 7, relu), Dense(7, 3), softmax),
        () => Chain(Dense(13, 9), relu, Dense(9, 5, relu), Dense(5, 3)),
      ];
      // The second pass adds FedProx's proximal term (anchored at the initial parameters).
      for (const [make, proximalMu] of cases.flatMap((make) => [[make, 0], [make, 0.5]] as const)) {
        const a = make().initialize(3);
        const b = make().initialize(3);
        const options = {
          epochs: 3,
          batchSize: 16,
          lr: 0.05,
          momentum: 0.9,
          weightDecay: 1e-3,
          proximalMu,
          seed: 4,
        };
        const epochsA: number[] = [];
        const epochsB: number[] = [];
        const ra = await cpu.train(a, data, {
          ...options,
          onEpoch: (_, m) => epochsA.push(m.loss),
        });
        const rb = await gpu.train(b, data, {
          ...options,
          onEpoch: (_, m) => epochsB.push(m.loss),
        });
        strictEqual(rb.steps, ra.steps);
        strictEqual(rb.steps, 3 * Math.ceil(203 / 16));
        const diff = maxAbsDiff(a.params, b.params);
        ok(diff < 1e-5, `max parameter difference ${diff}`);
        strictEqual(epochsB.length, 3);
        epochsA.forEach((loss, i) => ok(Math.abs(loss - epochsB[i]!) < 1e-5, `epoch ${i + 1}`));
        strictEqual(rb.last.accuracy, ra.last.accuracy);
      }
    } finally {
      gpu.dispose();
      cpu.dispose();
    }
  });

  gpuTest("WebGPU evaluate() agrees with the CPU engine", async () => {
    const data = blobs(1203, 6, 2);
    const gpu = await createBackend("webgpu");
    try {
      const model = Chain(Dense(6, 10, relu), Dense(10, 3), softmax).initialize(5);
      const want = await (await createBackend("cpu")).evaluate(model, data);
      const got = await gpu.evaluate(model, data);
      strictEqual(got.examples, want.examples);
      strictEqual(got.accuracy, want.accuracy);
      ok(Math.abs(got.loss - want.loss) < 1e-6, `${got.loss} vs ${want.loss}`);
    } finally {
      gpu.dispose();
    }
  });

  gpuTest("WebGPU FedAvg equals the float64 FedAvg within float32 rounding", async () => {
    const gpu = await createBackend("webgpu");
    try {
      const rng = new Rng(3);
      const size = 1001;
      const global = Float32Array.from({ length: size }, () => rng.normal());
      const strategy = new FedAvg({ serverLr: 0.7, sum: gpu.createWeightedSum() });
      const reference = new FedAvg({ serverLr: 0.7 });
      for (const clients of [1, 8, 19]) {
        strategy.begin(global);
        reference.begin(global);
        for (let k = 0; k < clients; k++) {
          const update = Float32Array.from({ length: size }, () => rng.normal());
          const weight = 1 + rng.int(600);
          strategy.accumulate(update, weight);
          reference.accumulate(update, weight);
        }
        strictEqual(strategy.count, clients);
        const got = await strategy.finish();
        const want = await reference.finish();
        const diff = maxAbsDiff(got, want);
        ok(diff < 1e-5, `${clients} clients: max difference ${diff}`);
      }
      strategy.begin(global);
      throws(
        () => strategy.accumulate(new Float32Array(size).fill(NaN), 1),
        /non-finite value at index 0/,
      );
      throws(
        () => strategy.accumulate(new Float32Array(3), 1),
        /Update has 3 values, the model has 1001/,
      );
      throws(() => strategy.accumulate(new Float32Array(size), 0), /weight must be positive/);
      await rejects(Promise.resolve().then(() => strategy.finish()), /without updates/);
    } finally {
      gpu.dispose();
    }
  });

  gpuTest("simulate() on WebGPU matches the CPU run round by round", async () => {
    const train = blobs(240, 5, 4);
    const test = blobs(120, 5, 5);
    const run = async (backend: "cpu" | "webgpu") => {
      const model = Chain(Dense(5, 8, relu), Dense(8, 3), softmax).initialize(2);
      const accuracy: number[] = [];
      for await (
        const record of simulate({
          model,
          train,
          test,
          clients: 6,
          fraction: 0.5,
          rounds: 3,
          lr: 0.1,
          seed: 8,
          backend,
        })
      ) {
        ok(record.backend.startsWith(`${backend}: `), record.backend);
        accuracy.push(record.accuracy);
      }
      return { params: model.params, accuracy };
    };
    const cpu = await run("cpu");
    const gpu = await run("webgpu");
    deepStrictEqual(gpu.accuracy, cpu.accuracy);
    const diff = maxAbsDiff(gpu.params, cpu.params);
    ok(diff < 1e-5, `max parameter difference ${diff}`);
  });

  gpuTest("WebGPU backend reports a lost device as GpuDeviceLostError", async () => {
    const gpu = await createBackend("webgpu") as WebGpuBackend;
    const model = Chain(Dense(5, 3), softmax);
    const data = blobs(20, 5, 6);
    await gpu.train(model, data, { lr: 0.1 });
    gpu.runtime.device.destroy();
    await gpu.runtime.device.lost;
    await new Promise((resolve) => setTimeout(resolve, 0));
    await rejects(
      gpu.train(model, data, { lr: 0.1 }),
      (e) =>
        e instanceof GpuDeviceLostError && /The GPU device was lost \(destroyed\)/.test(e.message),
    );
    gpu.dispose();
  });

  gpuTest("WebGPU backend rejects data larger than a storage binding", async () => {
    const gpu = await createBackend("webgpu") as WebGpuBackend;
    try {
      const n = Math.floor(gpu.runtime.maxBindingBytes / 4) + 1;
      const data: Dataset = {
        x: new Float32Array(n),
        y: new Int32Array(n),
        n,
        features: 1,
        classes: 1,
      };
      await rejects(
        gpu.train(Chain(Dense(1, 1)), data, { lr: 0.1 }),
        (e) =>
          e instanceof RangeError && /exceeds the GPU's largest storage binding/.test(e.message),
      );
    } finally {
      gpu.dispose();
    }
  });
}
