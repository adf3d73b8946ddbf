/**
 * Local training throughput of the FedAvg paper's 2NN (784-200-200-10) on MNIST with plain SGD
 * at batch sizes 10 and 64, and the FedAvg reduction throughput (100 distinct weighted updates of
 * the 2NN's 199,210 parameters, 80 MB), on each backend: one JSON line per measurement, the last
 * line included. `cpu` is the Wasm SIMD engine and `cpu-reference` the plain reference engine.
 *
 * The reduction line times begin, 100 accumulates and finish, and compares that with a plain
 * memory copy of the same 80 MB into another 80 MB (`ratio_to_copy`), measured in the same
 * rounds. It also gives the ratios to two friendlier copies, the updates copied one by one into
 * one update-sized buffer (the writes stay in cache) and four updates copied in turn (every
 * byte in cache), and the speed of a server's path: each update decoded from its message bytes
 * (into the strategy's update buffer, where it has one) and accumulated, next to decoding
 * alone.
 *
 * ```sh
 * deno task bench                                  # every backend this machine has
 * deno run -A bench/train_bench.ts --backend cpu,cpu-reference --seconds 5 --workers 2
 * ```
 *
 * On the CPU engine it also trains whole clients (600 examples) on `--workers` workers at once
 * (default one per core, up to 4), as `simulate({ parallel })` does, and gives the examples per
 * second in all and the speedup over one engine.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type Backend,
  CpuBackend,
  createBackend,
  loadMnist,
  mnist2nn,
  Rng,
  subset,
  TrainerPool,
} from "../mod.ts";
import { float32FromBytes, float32ToBytes } from "../lib/nn/codec.ts";
import { findAdapter } from "../lib/compute/mod.ts";
import { FedAvg, localTraining } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    batch: { type: "string", default: "10,64" },
    backend: { type: "string" },
    workers: { type: "string" },
  },
});
const seconds = Number(values.seconds);
if (!(seconds > 0)) throw new RangeError(`--seconds must be positive, got ${values.seconds}`);
const batches = values.batch.split(",").map(Number);
const workers = values.workers === undefined
  ? Math.max(1, Math.min(4, navigator.hardwareConcurrency ?? 1))
  : Number(values.workers);
if (!Number.isInteger(workers) || workers < 1) {
  throw new RangeError(`--workers must be a positive integer, got ${values.workers}`);
}
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

/**
 * Trains clients of 600 examples on `workers` workers at once (a {@linkcode TrainerPool}, as
 * `simulate({ parallel })` does) until `seconds` pass; returns examples per second in all.
 */
async function clientsThroughput(workers: number, batchSize: number): Promise<number> {
  const model = mnist2nn(0);
  const pool = new TrainerPool(workers, model, { train: data });
  try {
    const options = localTraining({ epochs: 1, batchSize, lr: 0.01 });
    const client = (c: number) =>
      pool.train({
        global: model.params,
        indices: Uint32Array.from({ length: 600 }, (_, i) => (c * 600 + i) % data.n),
        options,
        seed: 0,
        stream: [3, 1, c],
      });
    // Workers start and compile outside the clock.
    await Promise.all(Array.from({ length: workers }, (_, c) => client(c)));
    let examples = 0;
    let next = 0;
    const started = performance.now();
    do {
      await Promise.all(Array.from({ length: 2 * workers }, () => client(next++)));
      examples += 2 * workers * 600;
    } while ((performance.now() - started) / 1000 < seconds);
    return examples / ((performance.now() - started) / 1000);
  } finally {
    pool.close();
  }
}

/** Reduction and copy speeds, in params/s. */
interface ReduceSpeeds {
  /** begin, accumulate of each update (a plain Float32Array), finish. */
  reduce: number;
  /** The same from each update's bytes: decoded into the update buffer where there is one. */
  fromBytes: number;
  /** A memory copy of the updates' bytes into as many bytes elsewhere. */
  copy: number;
  /** The updates copied one by one into one update-sized buffer. */
  copyOne: number;
  /** Four updates copied in turn into one buffer: every byte in cache. */
  copyCached: number;
  /** Decoding each update's bytes into one plain array (what any server does). */
  decode: number;
}

/** The reduction's workload: 100 distinct updates, 80 MB, as a server receives them. */
const UPDATES = 100;

/** Aggregates 100 weighted 2NN-sized updates per round until `seconds` pass. */
async function reduceThroughput(backend: Backend): Promise<ReduceSpeeds> {
  const size = mnist2nn(0).params.length;
  const rng = new Rng(1);
  const bases = Array.from(
    { length: 4 },
    () => Float32Array.from({ length: size }, () => rng.normal()),
  );
  const updates = Array.from(
    { length: UPDATES },
    (_, k) => bases[k % 4]!.map((v) => v * (1 + k / 1024)),
  );
  // The bytes each update message carries.
  const encoded = updates.map(float32ToBytes);
  const global = new Float32Array(size);
  const strategy = new FedAvg({ sum: backend.createWeightedSum() });
  const all = new Float32Array(UPDATES * size);
  const one = new Float32Array(size);
  const ms = { reduce: 0, fromBytes: 0, copy: 0, copyOne: 0, copyCached: 0, decode: 0 };
  const timed = async (key: keyof typeof ms, run: () => void | Promise<void>) => {
    const t = performance.now();
    await run();
    ms[key] += performance.now() - t;
  };
  let rounds = 0;
  const started = performance.now();
  // Each round runs every measurement once, so all see the same machine state.
  do {
    await timed("reduce", async () => {
      strategy.begin(global);
      for (let k = 0; k < UPDATES; k++) strategy.accumulate(updates[k]!, 600);
      await strategy.finish();
    });
    await timed("fromBytes", async () => {
      strategy.begin(global);
      for (let k = 0; k < UPDATES; k++) {
        const update = float32FromBytes(encoded[k]!, strategy.updateBuffer?.(size));
        strategy.accumulate(update, 600);
      }
      await strategy.finish();
    });
    await timed("copy", () => {
      for (let k = 0; k < UPDATES; k++) all.set(updates[k]!, k * size);
    });
    await timed("copyOne", () => {
      for (let k = 0; k < UPDATES; k++) one.set(updates[k]!);
    });
    await timed("copyCached", () => {
      for (let k = 0; k < UPDATES; k++) one.set(updates[k % 4]!);
    });
    await timed("decode", () => {
      for (let k = 0; k < UPDATES; k++) float32FromBytes(encoded[k]!, one);
    });
    rounds++;
  } while ((performance.now() - started) / 1000 < seconds);
  const speed = (t: number) => rounds * UPDATES * size / (t / 1000);
  return {
    reduce: speed(ms.reduce),
    fromBytes: speed(ms.fromBytes),
    copy: speed(ms.copy),
    copyOne: speed(ms.copyOne),
    copyCached: speed(ms.copyCached),
    decode: speed(ms.decode),
  };
}

for (const kind of kinds) {
  const backend = kind === "cpu-reference"
    ? new CpuBackend("reference")
    : await createBackend(kind);
  try {
    for (const batch of batches) {
      const single = await trainThroughput(backend, batch);
      console.log(JSON.stringify({
        name: "train-2nn",
        backend: backend.kind,
        adapter: backend.device,
        batch,
        samples_per_s: Math.round(single),
      }));
      if (kind !== "cpu" || workers < 2) continue;
      const parallel = await clientsThroughput(workers, batch);
      console.log(JSON.stringify({
        name: "train-2nn-clients",
        backend: backend.kind,
        adapter: backend.device,
        batch,
        workers,
        timed: "clients of 600 examples trained at once on the workers, examples/s in all",
        samples_per_s: Math.round(parallel),
        speedup_over_one: Math.round(parallel / single * 100) / 100,
      }));
    }
    const speeds = await reduceThroughput(backend);
    const ratio = (a: number, b: number) => Math.round(a / b * 1000) / 1000;
    console.log(JSON.stringify({
      name: "fedavg-reduce",
      backend: backend.kind,
      adapter: backend.device,
      updates: UPDATES,
      params: mnist2nn(0).params.length,
      timed: "begin, accumulate of 100 distinct updates (plain arrays), finish",
      params_per_s: Math.round(speeds.reduce),
      copy: "the same updates' bytes copied into as many bytes elsewhere",
      copy_params_per_s: Math.round(speeds.copy),
      ratio_to_copy: ratio(speeds.reduce, speeds.copy),
      ratio_to_copy_into_one_buffer: ratio(speeds.reduce, speeds.copyOne),
      ratio_to_cached_copy: ratio(speeds.reduce, speeds.copyCached),
      from_bytes: "each update decoded from its bytes (into the update buffer where there is " +
        "one), then accumulated; compared with decoding alone",
      from_bytes_params_per_s: Math.round(speeds.fromBytes),
      decode_params_per_s: Math.round(speeds.decode),
      from_bytes_ratio_to_decode: ratio(speeds.fromBytes, speeds.decode),
    }));
  } finally {
    backend.dispose();
  }
}
