/**
 * Local training throughput of the FedAvg paper's 2NN (784-200-200-10) on MNIST with plain SGD,
 * at batch sizes 10 and 64: one JSON line per measurement, the last line included.
 *
 * ```sh
 * deno task bench            # or: deno run -A bench/train_bench.ts --seconds 5
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadMnist, mnist2nn, subset, train } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { seconds: { type: "string", default: "3" }, batch: { type: "string" } },
});
const seconds = Number(values.seconds);
if (!(seconds > 0)) throw new RangeError(`--seconds must be positive, got ${values.seconds}`);
const batches = values.batch === undefined ? [10, 64] : values.batch.split(",").map(Number);

const { train: data } = await loadMnist();
// One client's worth of data at a time, as in a federated round: 6,000 examples.
const shard = subset(data, Uint32Array.from({ length: 6000 }, (_, i) => i));

for (const batchSize of batches) {
  const model = mnist2nn(0);
  train(model, subset(shard, Uint32Array.from({ length: 600 }, (_, i) => i)), {
    lr: 0.01,
    batchSize,
  }); // warm-up: compile the hot loops
  let examples = 0;
  const started = performance.now();
  let epoch = 0;
  while ((performance.now() - started) / 1000 < seconds) {
    train(model, shard, { lr: 0.01, batchSize, seed: epoch++ });
    examples += shard.n;
  }
  const elapsed = (performance.now() - started) / 1000;
  console.log(JSON.stringify({
    name: "train-2nn",
    backend: "cpu",
    batch: batchSize,
    samples_per_s: Math.round(examples / elapsed),
    examples,
    seconds: Number(elapsed.toFixed(2)),
  }));
}
