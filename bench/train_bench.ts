/**
 * Local training throughput of the FedAvg paper's 2NN (784-200-200-10) on MNIST with plain SGD
 * at batch sizes 10 and 64, and the FedAvg reduction throughput (100 weighted updates of the
 * 2NN's 199,210 parameters), on each backend: one JSON line per measurement, the last line
 * included. `cpu` is the Wasm SIMD engine and `cpu-reference` the plain reference engine; the
 * reduction line also gives the speed of a plain copy of the same bytes (`dst.set(update)` per
 * update) measured alongside, and the ratio of the two.
 *
 * ```sh
 * deno task bench                                  # every backend this machine has
 * deno run -A bench/train_bench.ts --backend cpu,cpu-reference --seconds 5
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type Backend,
  CpuBackend,
  createBackend,
  findAdapter,
  loadMnist,
  mnist2nn,
  Rng,
  subset,
} from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    batch: { type: "string", default: "10,64" },
    backend: { type: "string" },
  },
});
const seconds = Number(values.seconds);
if (!(seconds > 0)) throw new RangeError(`--seconds must be positive, got ${values.seconds}`);
const batches = values.batch.split(",").map(Number);
const kinds = (values.backend ??
  ((await findAdapter()) === null ? "cpu,cpu-reference" : "cpu,cpu-reference,webgpu"))
  .split(",") as ("cpu" | "cpu-reference" | "webgpu")[];

const { train: data } = await loadMnist();

/** Trains in client-sized pieces until `seconds` pass; returns examples per second. */
async function trainThroughput(backend: Backend, batchSize: number): Promise<number> {
  // A slow device gets smaller pieces, so the measurement still ends near `seconds`.
  const piece = backend.kind === "cpu" ? 6000 : 600;
  const shard = subset(data, Uint32Array.from({ length: piece }, (_, i) => i));
  const model = mnist2nn(0);
  const warmUp = subset(data, Uint32Array.from({ length: 2 * batchSize }, (_, i) => i));
  await backend.train(model, warmUp, { lr: 0.01, batchSize });
  await backend.train(model, shard, { lr: 0.01, batchSize }); // upload and compile outside the clock
  let examples = 0;
  let epoch = 0;
  const started = performance.now();
  do {
    await backend.train(model, shard, { lr: 0.01, batchSize, seed: epoch++ });
    examples += shard.n;
  } while ((performance.now() - started) / 1000 < seconds);
  return examples / ((performance.now() - started) / 1000);
}

/** Aggregates 100 weighted 2NN-sized updates per round until `seconds` pass; params/s. */
async function reduceThroughput(backend: Backend): Promise<{ reduce: number; copy: number }> {
  const size = mnist2nn(0).params.length;
  const rng = new Rng(1);
  const updates = Array.from(
    { length: 4 },
    () => Float32Array.from({ length: size }, () => rng.normal()),
  );
  const global = new Float32Array(size);
  const strategy = backend.createFedAvg();
  const dst = new Float32Array(size);
  let reduceParams = 0;
  let reduceMs = 0;
  let copyParams = 0;
  let copyMs = 0;
  const started = performance.now();
  // Rounds alternate with copies of the same updates, so both see the same machine state.
  do {
    let t = performance.now();
    strategy.begin(global);
    for (let k = 0; k < 100; k++) strategy.accumulate(updates[k % updates.length]!, 600);
    await strategy.finish();
    reduceMs += performance.now() - t;
    reduceParams += 100 * size;
    t = performance.now();
    for (let k = 0; k < 100; k++) dst.set(updates[k % updates.length]!);
    copyMs += performance.now() - t;
    copyParams += 100 * size;
  } while ((performance.now() - started) / 1000 < seconds);
  return { reduce: reduceParams / (reduceMs / 1000), copy: copyParams / (copyMs / 1000) };
}

for (const kind of kinds) {
  const backend = kind === "cpu-reference"
    ? new CpuBackend("reference")
    : await createBackend(kind);
  try {
    for (const batch of batches) {
      console.log(JSON.stringify({
        name: "train-2nn",
        backend: backend.kind,
        adapter: backend.device,
        batch,
        samples_per_s: Math.round(await trainThroughput(backend, batch)),
      }));
    }
    const { reduce, copy } = await reduceThroughput(backend);
    console.log(JSON.stringify({
      name: "fedavg-reduce",
      backend: backend.kind,
      adapter: backend.device,
      updates: 100,
      params: mnist2nn(0).params.length,
      params_per_s: Math.round(reduce),
      copy_params_per_s: Math.round(copy),
      ratio_to_copy: Math.round(reduce / copy * 1000) / 1000,
    }));
  } finally {
    backend.dispose();
  }
}
