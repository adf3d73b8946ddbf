/**
 * Local training throughput of the FedAvg paper's 2NN (784-200-200-10) on MNIST with plain SGD
 * at batch sizes 10 and 64, and the FedAvg reduction throughput (100 weighted updates of the
 * 2NN's 199,210 parameters), on each backend: one JSON line per measurement, the last line
 * included. `cpu` is the Wasm SIMD engine and `cpu-reference` the plain reference engine; the
 * reduction line also gives the speed of a plain copy of the same bytes (`dst.set(update)` per
 * update) measured alongside, and the ratio of the two. Where the strategy offers an update
 * buffer, the reduction's updates are decoded from bytes straight into it, as a server's
 * decoding of update messages could, with the decoding off the clock and timed apart; the line
 * also gives the speed with plain arrays (`copying_`) and with the decoding counted in.
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
import { float32FromBytes, float32ToBytes } from "../lib/nn/codec.ts";

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

/** Reduction and copy speeds, in params/s. */
interface ReduceSpeeds {
  /** The strategy's fast path: updates written into its update buffer where it has one. */
  reduce: number;
  /** Updates passed as plain arrays, each copied by the strategy. */
  copying: number;
  /** Decoding an update's bytes into the update buffer (0 where there is none). */
  decode: number;
  /** `dst.set(update)`. */
  copy: number;
}

/** Aggregates 100 weighted 2NN-sized updates per round until `seconds` pass. */
async function reduceThroughput(backend: Backend): Promise<ReduceSpeeds> {
  const size = mnist2nn(0).params.length;
  const rng = new Rng(1);
  const updates = Array.from(
    { length: 4 },
    () => Float32Array.from({ length: size }, () => rng.normal()),
  );
  // The bytes an update message carries.
  const encoded = updates.map(float32ToBytes);
  const global = new Float32Array(size);
  const strategy = backend.createFedAvg();
  const dst = new Float32Array(size);
  let rounds = 0;
  let reduceMs = 0;
  let copyingMs = 0;
  let decodeMs = 0;
  let copyMs = 0;
  const started = performance.now();
  // Rounds alternate with copies of the same updates, so all see the same machine state.
  do {
    // The fast path. A server decodes each update's bytes into a new array anyway; here they
    // are decoded into the strategy's update buffer instead, outside the clock (and timed
    // apart). The clock covers begin, every accumulate and finish.
    let t = performance.now();
    strategy.begin(global);
    let ms = performance.now() - t;
    for (let k = 0; k < 100; k++) {
      if (strategy.updateBuffer === undefined) {
        t = performance.now();
        strategy.accumulate(updates[k % updates.length]!, 600);
        ms += performance.now() - t;
        continue;
      }
      t = performance.now();
      const update = float32FromBytes(encoded[k % encoded.length]!, strategy.updateBuffer(size));
      const decoded = performance.now();
      strategy.accumulate(update, 600);
      ms += performance.now() - decoded;
      decodeMs += decoded - t;
    }
    t = performance.now();
    await strategy.finish();
    reduceMs += ms + performance.now() - t;
    // Plain arrays, copied by the strategy.
    t = performance.now();
    strategy.begin(global);
    for (let k = 0; k < 100; k++) strategy.accumulate(updates[k % updates.length]!, 600);
    await strategy.finish();
    copyingMs += performance.now() - t;
    t = performance.now();
    for (let k = 0; k < 100; k++) dst.set(updates[k % updates.length]!);
    copyMs += performance.now() - t;
    rounds++;
  } while ((performance.now() - started) / 1000 < seconds);
  const speed = (ms: number) => ms > 0 ? rounds * 100 * size / (ms / 1000) : 0;
  return {
    reduce: speed(reduceMs),
    copying: speed(copyingMs),
    decode: speed(decodeMs),
    copy: speed(copyMs),
  };
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
    const { reduce, copying, decode, copy } = await reduceThroughput(backend);
    const ratio = (speed: number) => Math.round(speed / copy * 1000) / 1000;
    console.log(JSON.stringify({
      name: "fedavg-reduce",
      backend: backend.kind,
      adapter: backend.device,
      updates: 100,
      params: mnist2nn(0).params.length,
      timed: decode > 0
        ? "begin, accumulate, finish; each update decoded from bytes into the update buffer " +
          "off the clock (a server decodes updates anyway), its speed given apart"
        : "begin, accumulate of plain arrays, finish",
      params_per_s: Math.round(reduce),
      copy_params_per_s: Math.round(copy),
      ratio_to_copy: ratio(reduce),
      copying_params_per_s: Math.round(copying),
      copying_ratio_to_copy: ratio(copying),
      ...(decode > 0
        ? {
          decode_params_per_s: Math.round(decode),
          decode_ratio_to_copy: ratio(decode),
          with_decode_ratio_to_copy: ratio(1 / (1 / reduce + 1 / decode)),
        }
        : {}),
    }));
  } finally {
    backend.dispose();
  }
}
