/**
 * Server load: one `FederatedServer` with N concurrent clients, for N = 10, 50 and
 * 200. The server runs in its own process (`bench/_load_server.ts`) so that its peak resident
 * set size is its own; the N clients run together in a second process (`bench/_swarm.ts`), each
 * with its own connection and a tiny local dataset. Every client is sampled every round
 * (fraction 1) and every round must aggregate every client's update.
 *
 * For each N: rounds per second (wall clock, from all N connected to the last round done) and
 * the server's peak RSS (`VmHWM`, in MiB). One JSON line per N, a table, then one JSON line
 * last with every N and the ratio of the peak RSS at the largest N to that at the smallest.
 *
 * ```sh
 * deno run -A bench/server_bench.ts [--clients 10,50,200] [--rounds 5] [--hidden 512]
 *   [--fraction 1] [--examples 10] [--gc-ms 0] [--v8-flags=--max-semi-space-size=1]
 * ```
 *
 * The default model is 64-512-10 (38,410 parameters). With `--gc-ms 100
 * --v8-flags=--max-semi-space-size=1` the server is measured as `tests/e2e/load_test.ts`
 * measures it: garbage collected every 100 ms and V8's young generation capped, so that the
 * peak is what the server holds rather than garbage awaiting collection.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type LoadResult, runLoad } from "./_load.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    clients: { type: "string", default: "10,50,200" },
    rounds: { type: "string", default: "5" },
    hidden: { type: "string", default: "512" },
    fraction: { type: "string", default: "1" },
    examples: { type: "string", default: "10" },
    "gc-ms": { type: "string", default: "0" },
    "v8-flags": { type: "string", default: "" },
  },
});
const counts = values.clients.split(",").map(Number);
const rounds = Number(values.rounds);
const hidden = Number(values.hidden);
const fraction = Number(values.fraction);
const examples = Number(values.examples);
const gcMs = Number(values["gc-ms"]);
const v8Flags = values["v8-flags"] === "" ? [] : values["v8-flags"].split(",");
if (!counts.every((n) => Number.isInteger(n) && n >= 1)) {
  throw new RangeError(`--clients must be positive integers, got ${values.clients}`);
}
if (!(Number.isInteger(rounds) && rounds >= 1)) {
  throw new RangeError(`--rounds must be a positive integer, got ${values.rounds}`);
}

const results: LoadResult[] = [];
for (const clients of counts) {
  const result = await runLoad({
    clients,
    rounds,
    hidden,
    fraction,
    examples,
    gcMs,
    v8Flags,
  });
  const { server, swarm } = result;
  const expected = Math.max(Math.round(fraction * clients), 1);
  if (!server.updates.every((count) => count === expected)) {
    throw new Error(`A round of ${clients} clients missed updates: ${server.updates.join(", ")}`);
  }
  results.push(result);
  console.log(JSON.stringify({
    name: "server-load-clients",
    clients,
    params: server.params,
    rounds: server.rounds,
    fraction,
    updates_per_round: expected,
    seconds: server.seconds,
    rounds_per_second: server.rounds_per_second,
    rss_connected_mb: server.rss_connected_mb,
    peak_rss_mb: server.peak_rss_mb,
    peak_rss_source: server.peak_rss_source,
    reconnects: swarm.reconnects,
  }));
}

const row = (cells: (string | number)[]) =>
  cells.map((cell, i) => String(cell).padStart(i === 0 ? 8 : 16)).join("");
console.log(row(["clients", "rounds/s", "s/round", "connected MiB", "peak RSS MiB"]));
for (const { server } of results) {
  console.log(row([
    server.clients,
    server.rounds_per_second.toFixed(3),
    (server.seconds / server.rounds).toFixed(3),
    server.rss_connected_mb.toFixed(1),
    server.peak_rss_mb.toFixed(1),
  ]));
}

const smallest = results.reduce((a, b) => (b.server.clients < a.server.clients ? b : a)).server;
const largest = results.reduce((a, b) => (b.server.clients > a.server.clients ? b : a)).server;
const byClients = (field: "rounds_per_second" | "peak_rss_mb") =>
  Object.fromEntries(results.map(({ server }) => [String(server.clients), server[field]]));
console.log(JSON.stringify({
  name: "server-load",
  params: smallest.params,
  rounds,
  fraction,
  clients: results.map(({ server }) => server.clients),
  rounds_per_second: byClients("rounds_per_second"),
  peak_rss_mb: byClients("peak_rss_mb"),
  peak_rss_ratio: Number((largest.peak_rss_mb / smallest.peak_rss_mb).toFixed(3)),
  peak_rss_ratio_of: `${largest.clients}/${smallest.clients}`,
  peak_rss_growth_mb: Number((largest.peak_rss_mb - smallest.peak_rss_mb).toFixed(1)),
  gc_ms: gcMs,
  v8_flags: v8Flags,
}));
