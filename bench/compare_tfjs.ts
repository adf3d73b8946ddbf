/**
 * TensorFlow.js side of `bench/compare.ts`: trains the FedAvg paper's 2NN (784-200-200-10)
 * with plain SGD on the examples that `bench/compare.ts` wrote to `--data`, on one TF.js
 * backend (`cpu` or `wasm`), and prints one JSON line per batch size; a backend that fails to
 * start prints one line with `"skipped": true`.
 *
 * The model is written with tfjs-core ops: fused matmul + bias (+ relu) per layer, softmax
 * cross-entropy, `tf.train.sgd` through `optimizer.minimize`. It starts from the engine's
 * initial parameters (`init.f32`), like the PyTorch side.
 *
 * ```sh
 * deno run -A --config bench/tfjs.json bench/compare_tfjs.ts --data DIR --backend wasm --batch 10,64 --epochs 3
 * ```
 *
 * TF.js is not among the library's dependencies: its packages are in `bench/tfjs.json` (with
 * its own lock file, `bench/tfjs.lock`), and the root `deno.json` excludes this file. That
 * config also maps `@noble/hashes` as the root one does, for `lib/rng.ts`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core's Node build registers no gradients; tfjs-layers' build registers all of them (as
// the @tensorflow/tfjs package does), so it is imported for that alone.
import "@tensorflow/tfjs-layers";
import "@tensorflow/tfjs-backend-cpu";
import { getThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { Rng } from "../lib/rng.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    data: { type: "string" },
    backend: { type: "string", default: "cpu" },
    batch: { type: "string", default: "10,64" },
    epochs: { type: "string", default: "3" },
    warmup: { type: "string", default: "1" },
    lr: { type: "string", default: "0.1" },
    seed: { type: "string", default: "1" },
  },
});
if (values.data === undefined) throw new TypeError("--data is required");
const backendName = values.backend;
const epochs = Number(values.epochs);
const warmup = Number(values.warmup);
const lr = Number(values.lr);
const seed = Number(values.seed);
const batches = values.batch.split(",").map(Number);

interface Meta {
  n: number;
  features: number;
  classes: number;
  layers: [number, number][];
}

async function readFloats(path: string): Promise<Float32Array> {
  const bytes = await Deno.readFile(path);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

async function readInts(path: string): Promise<Int32Array> {
  const bytes = await Deno.readFile(path);
  return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** Starts `name`; returns a description of it, or throws with the reason it cannot run. */
async function startBackend(name: string): Promise<Record<string, unknown>> {
  tf.enableProdMode(); // no debug checks and no console advice about the tfjs-node package
  if (name === "wasm") {
    // The .wasm files sit beside the package's entry point (its dist folder) in the npm cache.
    const entry = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
    setWasmPaths(fileURLToPath(new URL(".", entry)));
  }
  // setBackend logs an initialization error and returns false rather than throwing.
  const errors: string[] = [];
  const consoleError = console.error;
  const consoleWarn = console.warn;
  console.error = console.warn = (...args: unknown[]) => errors.push(args.map(String).join(" "));
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
    await tf.ready();
  } finally {
    console.error = consoleError;
    console.warn = consoleWarn;
  }
  if (!ok || tf.getBackend() !== name) {
    throw new Error(errors.find((line) => line.trim() !== "") ?? `setBackend(${name}) failed`);
  }
  const info: Record<string, unknown> = { version: tf.version_core };
  if (name === "wasm") {
    info.simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
    info.threads = getThreadsCount();
  } else {
    info.threads = 1;
  }
  return info;
}

interface Layer {
  w: tf.Variable;
  b: tf.Variable;
}

function buildModel(meta: Meta, init: Float32Array): Layer[] {
  let offset = 0;
  return meta.layers.map(([nIn, nOut]) => {
    const w = tf.variable(tf.tensor2d(init.slice(offset, offset + nIn * nOut), [nIn, nOut]));
    offset += nIn * nOut;
    const b = tf.variable(tf.tensor1d(init.slice(offset, offset + nOut)));
    offset += nOut;
    return { w, b };
  });
}

function forward(layers: Layer[], x: tf.Tensor2D): tf.Tensor2D {
  let h = x;
  layers.forEach(({ w, b }, l) => {
    h = tf.fused.matMul({
      a: h,
      b: w as tf.Tensor2D,
      bias: b,
      activation: l < layers.length - 1 ? "relu" : "linear",
    }) as tf.Tensor2D;
  });
  return h;
}

/** One shuffled pass; returns the running loss and accuracy of the pass. */
function runEpoch(
  layers: Layer[],
  optimizer: tf.Optimizer,
  data: { x: tf.Tensor2D; y: tf.Tensor1D; n: number; classes: number },
  batch: number,
  rng: Rng,
): { loss: number; accuracy: number } {
  const order = Int32Array.from(rng.permutation(data.n));
  const varList = layers.flatMap(({ w, b }) => [w, b]);
  let totals = tf.zeros([2]); // [summed loss, correct guesses]
  for (let start = 0; start < data.n; start += batch) {
    const rows = Math.min(batch, data.n - start);
    const next = tf.tidy(() => {
      const index = tf.tensor1d(order.subarray(start, start + rows), "int32");
      const xb = tf.gather(data.x, index);
      const yb = tf.gather(data.y, index);
      let logits: tf.Tensor2D | undefined;
      const cost = optimizer.minimize(
        () => {
          logits = tf.keep(forward(layers, xb));
          return tf.losses.softmaxCrossEntropy(tf.oneHot(yb, data.classes), logits) as tf.Scalar;
        },
        true,
        varList,
      )!;
      const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits!, 1), yb), "float32"));
      logits!.dispose();
      return tf.add(totals, tf.stack([tf.mul(cost, rows), correct]));
    });
    totals.dispose();
    totals = next;
  }
  const [lossSum, correct] = totals.dataSync();
  totals.dispose();
  return { loss: lossSum! / data.n, accuracy: correct! / data.n };
}

let info: Record<string, unknown>;
try {
  info = await startBackend(backendName);
} catch (error) {
  console.log(JSON.stringify({
    system: "tfjs",
    backend: backendName,
    skipped: true,
    reason: error instanceof Error ? error.message : String(error),
  }));
  Deno.exit(0);
}

const meta: Meta = JSON.parse(await Deno.readTextFile(join(values.data, "meta.json")));
const x = tf.tensor2d(await readFloats(join(values.data, "x.f32")), [meta.n, meta.features]);
const y = tf.tensor1d(await readInts(join(values.data, "y.i32")), "int32");
const init = await readFloats(join(values.data, "init.f32"));
const data = { x, y, n: meta.n, classes: meta.classes };

for (const batch of batches) {
  const layers = buildModel(meta, init);
  const optimizer = tf.train.sgd(lr);
  const rng = new Rng(seed);
  for (let e = 0; e < warmup; e++) runEpoch(layers, optimizer, data, batch, rng);
  let last = { loss: NaN, accuracy: NaN };
  const started = performance.now();
  for (let e = 0; e < epochs; e++) last = runEpoch(layers, optimizer, data, batch, rng);
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({
    system: "tfjs",
    backend: backendName,
    ...info,
    batch,
    seconds,
    samples_per_s: epochs * meta.n / seconds,
    ...last,
  }));
  optimizer.dispose();
  for (const { w, b } of layers) {
    w.dispose();
    b.dispose();
  }
}
