/**
 * The client half of the load run (see `bench/server_bench.ts`): `--clients` instances of
 * {@linkcode runClient} in this one process, each with its own connection, id `0` ... `N-1` and
 * a tiny synthetic dataset of its own, all against the server at `--port`. It prints one JSON
 * line when every client has finished: how many ended cleanly, tasks trained, updates sent,
 * connections made and reconnections.
 *
 * ```sh
 * deno run -A bench/_swarm.ts --port 40000 --fingerprint SHA256:... --clients 200
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createDataset, type Dataset, Rng } from "../mod.ts";
import { runClient } from "../lib/fl/client.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    fingerprint: { type: "string" },
    clients: { type: "string", default: "10" },
    examples: { type: "string", default: "10" },
    features: { type: "string", default: "64" },
    classes: { type: "string", default: "10" },
  },
});
if (values.port === undefined || values.fingerprint === undefined) {
  throw new TypeError("--port and --fingerprint are required");
}
const port = Number(values.port);
const fingerprint = values.fingerprint;
const clients = Number(values.clients);
const examples = Number(values.examples);
const features = Number(values.features);
const classes = Number(values.classes);

/** Client `k`'s data: Gaussian blobs around one-hot class centres, seeded by `k`. */
function localData(k: number): Dataset {
  const rng = new Rng(1000 + k);
  const x = new Float32Array(examples * features);
  const y = new Int32Array(examples);
  for (let i = 0; i < examples; i++) {
    y[i] = (k + i) % classes;
    for (let j = 0; j < features; j++) {
      x[i * features + j] = 0.5 * rng.normal() + (j % classes === y[i] ? 1 : 0);
    }
  }
  return createDataset(x, y, { features, classes });
}

let reconnects = 0;
const problems: string[] = [];
const results = await Promise.allSettled(
  Array.from({ length: clients }, (_, k) =>
    runClient({
      id: String(k),
      data: localData(k),
      port,
      serverFingerprint: fingerprint,
      backend: "cpu",
      retry: { initialMs: 100, maxMs: 2000, maxAttempts: 10 },
      log: (line) => {
        if (line.includes("reconnecting")) {
          reconnects++;
          if (problems.length < 5) problems.push(line);
        }
      },
    })),
);
let trained = 0;
let updates = 0;
let connections = 0;
let failed = 0;
for (const result of results) {
  if (result.status === "fulfilled") {
    trained += result.value.trained;
    updates += result.value.updates;
    connections += result.value.connections;
  } else {
    failed++;
    if (problems.length < 10) problems.push(String(result.reason));
  }
}
for (const problem of problems) console.error(`swarm: ${problem}`);
console.log(JSON.stringify({
  name: "swarm",
  clients,
  finished: clients - failed,
  failed,
  trained,
  updates,
  connections,
  reconnects,
}));
Deno.exit(failed === 0 ? 0 : 1);
