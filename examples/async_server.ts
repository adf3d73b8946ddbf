/**
 * A FedAvg server for many clients at once, as in the original library: clients connect over
 * the Noise secure channel, each round the server samples them, sends the global model,
 * collects their updates and averages them, until the model reaches the target accuracy on
 * MNIST's test set.
 *
 * ```sh
 * deno run -A examples/async_server.ts                 # port 3000, waits for 3 clients
 * deno run -A examples/async_client.ts --shard 0       # in three more terminals: 0, 1, 2
 * ```
 *
 * Flags: --port, --clients (to wait for, default 3), --rounds (default 50), --target (default
 * 0.97), --checkpoint PATH and --resume to survive restarts. The `fedgpu server` command does
 * the same with every option; this file shows the library calls.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  FederatedServer,
  formatServerRound,
  loadMnist,
  loadOrCreateKeyFile,
  mnist2nn,
} from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", default: "3000" },
    clients: { type: "string", default: "3" },
    rounds: { type: "string", default: "50" },
    target: { type: "string", default: "0.97" },
    checkpoint: { type: "string" },
    resume: { type: "boolean", default: false },
  },
});

const { key } = await loadOrCreateKeyFile(".fedgpu/server_key.json");
await Deno.writeTextFile(".fedgpu/server.fingerprint", key.fingerprint + "\n");
const { test } = await loadMnist();

const server = await FederatedServer.start({
  model: mnist2nn(0),
  staticKey: key,
  port: Number(values.port),
  test,
  rounds: Number(values.rounds),
  target: Number(values.target),
  fraction: 1, // every connected client trains every round
  minClients: Number(values.clients),
  lr: 0.215,
  batchSize: 10,
  epochs: 1,
  ...(values.checkpoint === undefined
    ? {}
    : { checkpoint: values.checkpoint, resume: values.resume }),
});
console.log(`Server key ${server.fingerprint}, listening on port ${server.port}`);
console.log(`Waiting for ${values.clients} clients (examples/async_client.ts --shard 0 ...)`);

const started = performance.now();
for await (const record of server.rounds()) {
  console.log(formatServerRound(record, (performance.now() - started) / 1000));
}
const last = server.history.at(-1);
console.log(`Done after ${server.round} rounds: test accuracy ${last?.accuracy}`);
