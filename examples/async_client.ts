/**
 * A federated client for `examples/async_server.ts`: it holds one shard of MNIST's training
 * set (the shards of an IID split into `--of` parts), connects to the server, pins its key,
 * trains whenever it is sampled and sends its update; it reconnects with backoff if the
 * connection fails, and exits when the server ends training.
 *
 * ```sh
 * deno run -A examples/async_client.ts --shard 0 [--of 3] [--port 3000] [--fingerprint SHA256:...]
 * ```
 *
 * The server's key is pinned by `--fingerprint`, or by .fedgpu/server.fingerprint that the
 * server example writes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadMnist, partition, Rng, runClient, STREAM, subset } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    shard: { type: "string", default: "0" },
    of: { type: "string", default: "3" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "3000" },
    fingerprint: { type: "string" },
  },
});

const shard = Number(values.shard);
const of = Number(values.of);
const serverFingerprint = values.fingerprint ??
  (await Deno.readTextFile(".fedgpu/server.fingerprint").catch(() => {
    console.error("Pass --fingerprint (the server prints it at start)");
    Deno.exit(2);
  })).trim();

// Every client draws the same split from the same seed and keeps its own part of it.
const { train } = await loadMnist();
const parts = partition(train.y, { scheme: "iid", clients: of }, new Rng(0, [STREAM.partition]));
const data = subset(train, parts[shard]!);
console.log(`Client ${shard}: ${data.n} examples; connecting to ${values.host}:${values.port}`);

const summary = await runClient({
  id: String(shard),
  data,
  hostname: values.host,
  port: Number(values.port),
  serverFingerprint,
  backend: "cpu",
});
console.log(
  `Client ${shard}: ${summary.reason}; trained ${summary.trained} times, ` +
    `sent ${summary.updates} updates`,
);
