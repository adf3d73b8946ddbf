import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { WasmWeightedSum } from "../../lib/compute/cpu/weighted_sum.ts";
import { Float64WeightedSum } from "../../lib/compute/reduce.ts";
import {
  runsOnKernels,
  wasmEvaluate,
  wasmEvaluateBatches,
  wasmTrain,
} from "../../lib/compute/cpu/train.ts";
import { decodeBase64, heap, wasm } from "../../lib/compute/cpu/wasm.ts";
import { float32FromBytes, float32ToBytes } from "../../lib/nn/codec.ts";
import { KERNELS_WASM_BASE64 } from "../../lib/compute/cpu/kernels_wasm.ts";
import { kernelsWat } from "../../lib/compute/cpu/kernels_wat.ts";
import {
  buildKernels,
  exportSignatures,
  KERNELS_MODULE_PATH,
  kernelsModule,
} from "../../tools/build_wasm.ts";
import {
  Chain,
  CpuBackend,
  createBackend,
  createDataset,
  type Dataset,
  Dense,
  evaluate,
  evaluateBatches,
  FedAvg,
  type Model,
  relu,
  Rng,
  softmax,
  train,
  type TrainOptions,
} from "../../mod.ts";

/** Bit-for-bit equality of two float arrays (NaN and -0 included). */
function sameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  strictEqual(actual.length, expected.length, `${what}: length`);
  deepStrictEqual(
    new Uint32Array(actual.buffer, actual.byteOffset, actual.length),
    new Uint32Array(expected.buffer, expected.byteOffset, expected.length),
    what,
  );
}

/** Random examples; `zeros` is the fraction of features that are exactly zero. */
function randomData(n: number, features: number, classes: number, seed: number, zeros = 0.5) {
  const rng = new Rng(seed);
  const x = Float32Array.from(
    { length: n * features },
    () => rng.float() < zeros ? 0 : rng.normal(),
  );
  const y = Int32Array.from({ length: n }, () => rng.int(classes));
  return createDataset(x, y, { features, classes });
}

function trainBoth(make: () => Model, data: Dataset, options: TrainOptions) {
  const reference = make();
  const fast = make();
  const expected = train(reference, data, options);
  const actual = wasmTrain(fast, data, options);
  return { reference, fast, expected, actual };
}

Deno.test("the committed kernels_wasm.ts equals a fresh build of kernels_wat.ts", async () => {
  const wat = kernelsWat();
  const bytes = await buildKernels(wat);
  deepStrictEqual(Uint8Array.fromBase64(KERNELS_WASM_BASE64), bytes);
  strictEqual(await Deno.readTextFile(KERNELS_MODULE_PATH), await kernelsModule(wat, bytes));
});

Deno.test("decodeBase64() decodes RFC 4648 vectors with and without Uint8Array.fromBase64", async () => {
  // RFC 4648, section 10.
  const vectors = ["", "f", "fo", "foo", "foob", "fooba", "foobar"];
  const encoded = ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"];
  const kernels = await buildKernels();
  const decodeAll = (error: string) => {
    deepStrictEqual(
      encoded.map((text) => new TextDecoder().decode(decodeBase64(text))),
      vectors,
    );
    deepStrictEqual(decodeBase64(KERNELS_WASM_BASE64), kernels);
    throws(() => decodeBase64("Zm9v!"), { name: error });
  };
  decodeAll("SyntaxError");
  const native = Object.getOwnPropertyDescriptor(Uint8Array, "fromBase64")!;
  delete (Uint8Array as { fromBase64?: unknown }).fromBase64;
  try {
    strictEqual(typeof Uint8Array.fromBase64, "undefined");
    decodeAll("InvalidCharacterError");
  } finally {
    Object.defineProperty(Uint8Array, "fromBase64", native);
  }
});

Deno.test("exportSignatures() finds every function the compiled kernels export", async () => {
  const module = new WebAssembly.Module(await buildKernels());
  const signatures = exportSignatures(kernelsWat());
  deepStrictEqual(
    WebAssembly.Module.exports(module).map(({ name, kind }) => `${kind} ${name}`).sort(),
    [...signatures.map(({ name }) => `function ${name}`), "memory memory"].sort(),
  );
  // The instance the engine runs has each function with its declared number of parameters.
  for (const { name, params } of signatures) {
    const kernel = (wasm as unknown as Record<string, unknown>)[name];
    ok(typeof kernel === "function", name);
    strictEqual(kernel.length, params.length, name);
  }
  ok(wasm.memory instanceof WebAssembly.Memory);
});

Deno.test("exportSignatures() reads names, types and results, and rejects unnamed parameters", () => {
  const wat = `(module
  (func (export "f") (param $a i32) (param $b f64)
      (param $c i64) (result f32) (local $x i32) (f32.const 0))
  (func (export "g")))`;
  deepStrictEqual(exportSignatures(wat), [
    {
      name: "f",
      params: [{ name: "a", type: "i32" }, { name: "b", type: "f64" }, {
        name: "c",
        type: "i64",
      }],
      result: "f32",
    },
    { name: "g", params: [] },
  ]);
  throws(() => exportSignatures(`(func (export "h") (param i32))`), {
    name: "TypeError",
    message: "Unnamed parameter of h",
  });
  throws(() => exportSignatures(`(func (export "h") (result i32) (result i32))`), {
    name: "TypeError",
    message: "More than one result of h",
  });
});

Deno.test("wasmTrain gives the reference train's bits on odd shapes and options", () => {
  const shapes: { layers: () => Model; features: number; classes: number }[] = [
    // Widths that are not multiples of 4 or 16, a width-1 layer, a relu before the logits.
    {
      layers: () => Chain(Dense(13, 17, relu), Dense(17, 33, relu), Dense(33, 3), softmax),
      features: 13,
      classes: 3,
    },
    { layers: () => Chain(Dense(5, 1, relu), Dense(1, 2)), features: 5, classes: 2 },
    { layers: () => Chain(Dense(31, 16), Dense(16, 7, relu)), features: 31, classes: 7 },
    { layers: () => Chain(Dense(40, 4), softmax), features: 40, classes: 4 },
  ];
  const optionSets: TrainOptions[] = [
    { lr: 0.1, batchSize: 1 },
    { lr: 0.05, batchSize: 7, momentum: 0.9, epochs: 2 },
    { lr: 0.05, batchSize: 16, weightDecay: 0.01, seed: 3 },
    { lr: 0.02, batchSize: 17, momentum: 0.5, weightDecay: 0.001, epochs: 2, seed: 9 },
    { lr: 0.1, batchSize: 64, shuffle: false },
    { lr: 0.1, batchSize: 1000 },
    // FedProx's proximal term, alone and with momentum and weight decay.
    { lr: 0.05, batchSize: 7, proximalMu: 0.1, epochs: 3 },
    { lr: 0.02, batchSize: 17, momentum: 0.9, weightDecay: 0.001, proximalMu: 0.5, epochs: 2 },
  ];
  shapes.forEach(({ layers, features, classes }, s) => {
    for (const zeros of [0, 0.8]) {
      const data = randomData(53, features, classes, 10 + s, zeros);
      const make = () => layers().initialize(s + 1);
      for (const options of optionSets) {
        const what = `shape ${s}, zeros ${zeros}, ${JSON.stringify(options)}`;
        const { reference, fast, expected, actual } = trainBoth(make, data, options);
        sameBits(fast.params, reference.params, what);
        deepStrictEqual(actual, expected, what);
        deepStrictEqual(wasmEvaluate(fast, data), evaluate(reference, data), what);
        deepStrictEqual(
          wasmEvaluate(fast, data, { batchSize: 5 }),
          evaluate(reference, data, { batchSize: 5 }),
        );
        // 53 examples in batches of 5: 11, the last of 3.
        for (const [from, to] of [[0, 11], [3, 7], [10, 11], [4, 4]]) {
          deepStrictEqual(
            wasmEvaluateBatches(fast, data, { batchSize: 5, from, to }),
            evaluateBatches(reference, data, { batchSize: 5, from, to }),
            `${what}, batches [${from}, ${to})`,
          );
        }
      }
    }
  });
});

Deno.test("wasmTrain matches on an MNIST-shaped 2NN with zero-heavy inputs", () => {
  const data = randomData(150, 784, 10, 1, 0.8);
  const make = () => Chain(Dense(784, 200, relu), Dense(200, 200, relu), Dense(200, 10), softmax);
  for (const batchSize of [10, 64]) {
    const { reference, fast, expected, actual } = trainBoth(
      () => make().initialize(7),
      data,
      { lr: 0.05, batchSize, momentum: 0.9, epochs: 2 },
    );
    sameBits(fast.params, reference.params, `batch ${batchSize}`);
    deepStrictEqual(actual, expected);
  }
});

Deno.test("wasmTrain reports each epoch with the model's current parameters", () => {
  const data = randomData(20, 6, 3, 2);
  const make = () => Chain(Dense(6, 5, relu), Dense(5, 3), softmax).initialize(1);
  const seen: [string, number][] = [];
  const reference = make();
  train(reference, data, {
    lr: 0.1,
    epochs: 3,
    onEpoch: (epoch) => seen.push(["ref", evaluate(reference, data).loss + epoch]),
  });
  const fast = make();
  wasmTrain(fast, data, {
    lr: 0.1,
    epochs: 3,
    onEpoch: (epoch) => seen.push(["wasm", wasmEvaluate(fast, data).loss + epoch]),
  });
  deepStrictEqual(seen.slice(3).map(([, v]) => v), seen.slice(0, 3).map(([, v]) => v));
});

Deno.test("wasmTrain validates like train, falls back on other chains, and frees memory", () => {
  const data = randomData(10, 4, 2, 3);
  const model = () => Chain(Dense(4, 3), relu, Dense(3, 2)).initialize(2);
  strictEqual(runsOnKernels(model()), false);
  const { reference, fast } = trainBoth(model, data, { lr: 0.1, batchSize: 3 });
  sameBits(fast.params, reference.params, "fallback");
  const small = Chain(Dense(4, 2)).initialize(1);
  throws(() => wasmTrain(small, data, { lr: 0 }), /Learning rate/);
  throws(() => wasmTrain(small, data, { lr: 0.1, batchSize: 0 }), /Batch size/);
  throws(() => wasmTrain(small, randomData(3, 5, 2, 1), { lr: 0.1 }), RangeError);
  // The heap hands back the same block once a call has freed everything it took.
  const probe = heap.alloc(64);
  heap.free(probe);
  wasmTrain(small, data, { lr: 0.1 });
  const again = heap.alloc(64);
  heap.free(again);
  strictEqual(again, probe);
});

/** FedAvg summing on the Wasm engine's weighted sum. */
class WasmFedAvg extends FedAvg {
  constructor(options: { serverLr?: number } = {}) {
    super({ ...options, sum: new WasmWeightedSum() });
  }

  override finish(): Float32Array {
    return super.finish() as Float32Array;
  }
}

/** How {@linkcode fedavgRound} draws weights and hands updates to the Wasm strategy. */
interface RoundOptions {
  /** Weights: fractional, integer (the exact kernels' case), or both interleaved. */
  weights?: "fractional" | "integer" | "mixed";
  /** Which updates are written into `updateBuffer` (decoded from bytes) instead of copied. */
  buffered?: (k: number) => boolean;
}

/** Runs the same round on both strategies; `bad` is the indices of updates to poison. */
function fedavgRound(
  size: number,
  updates: number,
  seed: number,
  bad: Set<number>,
  options: RoundOptions = {},
) {
  const { weights: kind = "fractional", buffered = () => false } = options;
  const rng = new Rng(seed);
  const global = Float32Array.from({ length: size }, () => rng.normal());
  const list = Array.from({ length: updates }, (_, k) => {
    const update = Float32Array.from({ length: size }, () => rng.normal() * 0.1);
    if (bad.has(k)) update[rng.int(size)] = k % 2 === 0 ? NaN : -Infinity;
    return update;
  });
  const weights = list.map((_, k) => {
    const integer = kind === "integer" || (kind === "mixed" && k % 3 !== 1);
    // Integer weights up to 2^29, the largest the exact kernels take.
    return integer ? [1, 600, 2 ** 29, 12345][k % 4]! : 1 + rng.int(600) + rng.float();
  });
  const results = [new FedAvg({ serverLr: 0.7 }), new WasmFedAvg({ serverLr: 0.7 })].map(
    (strategy) => {
      strategy.begin(global);
      const errors: string[] = [];
      list.forEach((update, k) => {
        try {
          if (strategy instanceof WasmFedAvg && buffered(k)) {
            const buffer = strategy.updateBuffer(size);
            float32FromBytes(float32ToBytes(update), buffer);
            strategy.accumulate(buffer, weights[k]!);
          } else {
            strategy.accumulate(update, weights[k]!);
          }
        } catch (error) {
          errors.push((error as Error).message);
        }
      });
      return { count: strategy.count, errors, out: strategy.finish() as Float32Array };
    },
  );
  return { reference: results[0]!, fast: results[1]! };
}

Deno.test("WasmFedAvg gives FedAvg's bits across flush boundaries and odd sizes", () => {
  const variants: RoundOptions[] = [
    {},
    { weights: "integer" },
    { weights: "mixed", buffered: (k) => k % 2 === 0 },
    { weights: "integer", buffered: () => true },
  ];
  for (const size of [1, 3, 5, 8, 17, 1000, 4099]) {
    for (const updates of [1, 7, 8, 9, 16, 21]) {
      variants.forEach((options, v) => {
        const { reference, fast } = fedavgRound(size, updates, size * 31 + updates, new Set(), {
          ...options,
        });
        sameBits(fast.out, reference.out, `size ${size}, ${updates} updates, variant ${v}`);
        strictEqual(fast.count, updates);
      });
    }
  }
});

Deno.test("the exact kernels are taken only where fused and unfused sums agree", () => {
  // `-w * u` then `w * u`: FedAvg's sum is exactly 0, while a fused multiply-add leaves the
  // second product's rounding error wherever it is inexact (a weight of 30 or more significant
  // bits): such weights must take the plain kernels.
  const size = 64;
  const rng = new Rng(5);
  const global = new Float32Array(size);
  const update = Float32Array.from({ length: size }, () => rng.normal());
  for (const weight of [2 ** 29 + 2 ** 28 + 1, 2 ** 40 + 3, 1 / 3, 2 ** 29, 600]) {
    const reference = new FedAvg();
    const fast = new WasmFedAvg();
    for (const strategy of [reference, fast]) {
      strategy.begin(global);
      strategy.accumulate(update.map((v) => -v), weight);
      strategy.accumulate(update, weight);
    }
    sameBits(fast.finish(), reference.finish() as Float32Array, `weight ${weight}`);
    fast.dispose();
  }
});

Deno.test("fedavg_check finds a non-finite value at every position, and only those", () => {
  const n = 37;
  const p = heap.alloc(n * 4);
  const view = () => new Float32Array(heap.buffer, p, n);
  const finite = [0, -0, 1, -1, 3.4028234663852886e38, -3.4028234663852886e38, 1e-45, -1e-45];
  for (let len = 0; len <= n; len++) {
    view().fill(0).set(finite.slice(0, Math.min(len, finite.length)));
    strictEqual(wasm.fedavg_check(p, len), 0, `finite, length ${len}`);
    for (let i = 0; i < len; i++) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        view()[i] = bad;
        strictEqual(wasm.fedavg_check(p, len), 1, `${bad} at ${i} of ${len}`);
        view()[i] = -1;
      }
    }
  }
  // Values past the length are not read.
  view().fill(1)[n - 1] = NaN;
  strictEqual(wasm.fedavg_check(p, n - 1), 0);
  heap.free(p);
});

Deno.test("WasmFedAvg rejects non-finite updates and leaves the sum unchanged", () => {
  for (const size of [3, 18, 1001]) {
    for (const buffered of [() => false, () => true, (k: number) => k % 3 === 0]) {
      const bad = new Set([0, 5, 8, 9, 15]);
      const { reference, fast } = fedavgRound(size, 19, size, bad, {
        weights: "mixed",
        buffered,
      });
      deepStrictEqual(fast.errors, reference.errors);
      strictEqual(fast.errors.length, bad.size);
      ok(fast.errors.every((message) => /non-finite value at index \d+/.test(message)));
      strictEqual(fast.count, 19 - bad.size);
      sameBits(fast.out, reference.out, `size ${size}`);
    }
  }
  const strategy = new WasmFedAvg();
  throws(() => strategy.accumulate(new Float32Array(2), 1), /begin\(\)/);
  throws(() => strategy.finish(), /begin\(\)/);
  strategy.begin(new Float32Array(2));
  throws(() => strategy.accumulate(new Float32Array(3), 1), /has 3 values/);
  throws(() => strategy.accumulate(new Float32Array(2), 0), /weight/);
  throws(() => strategy.updateBuffer(3), /has 3 values/);
  // A rejected buffered update leaves the round as it was, however the buffer is reused.
  const buffer = strategy.updateBuffer(2);
  ok(buffer.buffer === heap.buffer);
  buffer.set([1, Infinity]);
  throws(() => strategy.accumulate(buffer, 1), /non-finite value at index 1/);
  strictEqual(strategy.count, 0);
  const again = strategy.updateBuffer(2);
  strictEqual(again.byteOffset, buffer.byteOffset);
  again.set([4, 8]);
  strategy.accumulate(again, 1);
  strictEqual(strategy.count, 1);
  deepStrictEqual(strategy.finish(), new Float32Array([4, 8]));
  throws(() => strategy.updateBuffer(2), /begin\(\)/);
  strategy.begin(new Float32Array(2));
  throws(() => strategy.finish(), /without updates/);
  throws(() => new WasmFedAvg({ serverLr: -1 }), RangeError);
  strategy.dispose();
  // A disposed strategy allocates anew on its next round.
  strategy.begin(new Float32Array([1]));
  strategy.accumulate(new Float32Array([2]), 1);
  deepStrictEqual(strategy.finish(), new Float32Array([3]));
  strategy.dispose();
});

Deno.test("the cpu backend runs the Wasm engine; the reference engine stays reachable", async () => {
  const backend = await createBackend("cpu");
  strictEqual(backend.device, "CPU (Wasm SIMD engine)");
  ok(backend.createWeightedSum() instanceof WasmWeightedSum);
  const reference = new CpuBackend("reference");
  strictEqual(reference.device, "CPU (reference engine)");
  ok(reference.createWeightedSum() instanceof Float64WeightedSum);
  const data = randomData(30, 8, 3, 4);
  const make = () => Chain(Dense(8, 9, relu), Dense(9, 3), softmax).initialize(5);
  const a = make();
  const b = make();
  const options = { lr: 0.1, batchSize: 4, momentum: 0.9 };
  deepStrictEqual(await backend.train(a, data, options), await reference.train(b, data, options));
  sameBits(a.params, b.params, "backend");
  deepStrictEqual(await backend.evaluate(a, data), await reference.evaluate(b, data));
  backend.dispose();
  reference.dispose();
});

Deno.test("float32FromBytes decodes into a target bit for bit, or refuses its length", () => {
  const values = new Float32Array([1.5, -0, NaN, Infinity, 1e-45, -3.25]);
  const bytes = float32ToBytes(values);
  const target = new Float32Array(8).subarray(1, 7);
  strictEqual(float32FromBytes(bytes, target), target);
  sameBits(target, values, "target");
  sameBits(float32FromBytes(bytes), values, "new array");
  // Unaligned bytes decode too.
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  sameBits(float32FromBytes(shifted.subarray(1), new Float32Array(6)), values, "unaligned");
  throws(() => float32FromBytes(bytes, new Float32Array(5)), /24 bytes into 5 floats/);
});
