/**
 * Federated training on your own tabular data: a CSV file split over clients, FedAvg on a small
 * multilayer perceptron, a line per round and a JSON line last.
 *
 * ```sh
 * deno run -A examples/csv_federated.ts data.csv --label species --clients 10 --rounds 20
 * ```
 *
 * Features are standardized; 20% of the rows (seeded) are held out for testing.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Chain, Dense, loadCsv, relu, Rng, simulate, softmax, subset } from "../mod.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    label: { type: "string" },
    clients: { type: "string", default: "10" },
    rounds: { type: "string", default: "20" },
    hidden: { type: "string", default: "32" },
    lr: { type: "string", default: "0.05" },
    seed: { type: "string", default: "0" },
  },
});
const path = positionals[0];
if (path === undefined) {
  console.error("Usage: examples/csv_federated.ts FILE.csv [--label COLUMN] [--clients N] ...");
  Deno.exit(2);
}
const seed = Number(values.seed);
const data = await loadCsv(path, {
  normalize: "standard",
  ...(values.label === undefined ? {} : { labelColumn: values.label }),
});
console.log(
  `${data.n} rows, ${data.features} features, classes ${data.classNames.join(", ")}`,
);

// Hold out 20% of the rows, chosen by the seed.
const order = new Rng(seed, [0]).permutation(data.n);
const testSize = Math.floor(data.n / 5);
const test = subset(data, order.subarray(0, testSize));
const train = subset(data, order.subarray(testSize));

const hidden = Number(values.hidden);
const model = Chain(Dense(data.features, hidden, relu), Dense(hidden, data.classes), softmax)
  .initialize(seed);
let accuracy = NaN;
for await (
  const round of simulate({
    model,
    train,
    test,
    clients: Number(values.clients),
    fraction: 0.5,
    rounds: Number(values.rounds),
    batchSize: 10,
    lr: Number(values.lr),
    seed,
  })
) {
  accuracy = round.accuracy;
  console.log(`round ${round.round}: test accuracy ${(100 * accuracy).toFixed(2)}%`);
}
console.log(JSON.stringify({ name: "csv-federated", rows: data.n, accuracy }));
