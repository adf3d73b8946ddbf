/**
 * The server half of the load run (see `bench/server_bench.ts`): a {@linkcode FederatedServer}
 * with a one-hidden-layer model, alone in its process so that its memory is measured alone.
 *
 * It prints one JSON line as soon as it listens (`port`, `fingerprint`, `params`), waits for
 * `--clients` clients, runs `--rounds` rounds with every connected client sampled (or
 * `--fraction` of them), and prints one JSON line last: the rounds, their wall-clock seconds,
 * rounds per second, the updates of every round, and the process's peak resident set size.
 * Progress and the server's own log lines go to stderr.
 *
 * ```sh
 * deno run -A bench/_load_server.ts --clients 200 --rounds 5 --hidden 512
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Chain, createDataset, Dense, type Model, relu, softmax, StaticKeyPair } from "../mod.ts";
import { FederatedServer } from "../lib/fl/server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    clients: { type: "string", default: "10" },
    rounds: { type: "string", default: "5" },
    fraction: { type: "string", default: "1" },
    features: { type: "string", default: "64" },
    hidden: { type: "string", default: "512" },
    classes: { type: "string", default: "10" },
    "timeout-ms": { type: "string", default: "60000" },
    seed: { type: "string", default: "0" },
    "gc-ms": { type: "string", default: "0" },
  },
});
const clients = Number(values.clients);
const rounds = Number(values.rounds);
const fraction = Number(values.fraction);
const features = Number(values.features);
const hidden = Number(values.hidden);
const classes = Number(values.classes);
const timeoutMs = Number(values["timeout-ms"]);
const seed = Number(values.seed);
const gcMs = Number(values["gc-ms"]);

/** The load run's model: `features`-`hidden`-`classes`, ReLU, softmax. */
function loadModel(): Model {
  return Chain(Dense(features, hidden, relu), Dense(hidden, classes), softmax).initialize(seed);
}

/** Fields of `/proc/self/status` in bytes (`VmHWM`: peak RSS, `VmRSS`: RSS now), or null. */
function procStatus(field: "VmHWM" | "VmRSS"): number | null {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const match = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return match === null ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

/** Peak RSS so far: the kernel's high-water mark, else the highest sample taken. */
let sampledPeak = 0;
function samplePeak(): void {
  sampledPeak = Math.max(sampledPeak, Deno.memoryUsage().rss);
}
function peakRss(): { bytes: number; source: string } {
  const hwm = procStatus("VmHWM");
  return hwm === null
    ? { bytes: sampledPeak, source: "memoryUsage-sampled" }
    : { bytes: hwm, source: "VmHWM" };
}

const mb = (bytes: number) => Number((bytes / 1024 / 1024).toFixed(1));
const err = (line: string) => console.error(line);

// A small held-out set keeps the evaluation step in the loop without dominating it.
const testX = new Float32Array(64 * features);
const testY = new Int32Array(64);
for (let i = 0; i < testY.length; i++) {
  testY[i] = i % classes;
  testX[i * features + (i % features)] = 1;
}
const test = createDataset(testX, testY, { features, classes });

// With `--gc-ms` (and V8's `--expose-gc`) garbage is collected every few milliseconds, so the
// peak measures what the server holds rather than how long V8 lets garbage wait.
const gc = (globalThis as { gc?: () => void }).gc;
if (gcMs > 0 && gc === undefined) throw new Error("--gc-ms needs --v8-flags=--expose-gc");
const collector = gcMs > 0 ? setInterval(() => gc!(), gcMs) : undefined;

samplePeak();
const server = await FederatedServer.start({
  model: loadModel(),
  staticKey: StaticKeyPair.generate(),
  port: 0,
  rounds,
  fraction,
  minClients: clients,
  // Every sampled client must report: a round with a missing update is retried, and after
  // `maxAttempts` the run fails, so a completed run means every round was complete.
  minUpdates: Math.max(Math.round(fraction * clients), 1),
  maxAttempts: 3,
  roundTimeoutMs: timeoutMs,
  uploadTimeoutMs: timeoutMs,
  handshakeTimeoutMs: timeoutMs,
  batchSize: 10,
  lr: 0.05,
  seed,
  test,
  backend: "cpu",
  log: (line) => err(`server: ${line}`),
});
const params = server.model.params.length;
console.log(JSON.stringify({ port: server.port, fingerprint: server.fingerprint, params }));

await server.waitForClients(clients);
samplePeak();
const rssConnected = procStatus("VmRSS") ?? Deno.memoryUsage().rss;
const updates: number[] = [];
const sampled: number[] = [];
const dropped: number[] = [];
const attempts: number[] = [];
const started = performance.now();
for await (const record of server.rounds()) {
  samplePeak();
  updates.push(record.clients.length);
  sampled.push(record.sampled.length);
  dropped.push(record.dropped.length);
  attempts.push(record.attempts);
  err(
    `round ${record.round}: ${record.clients.length}/${record.sampled.length} updates, ` +
      `${record.connected} connected, ${record.seconds.toFixed(2)} s, ` +
      `rss ${mb(Deno.memoryUsage().rss)} MB`,
  );
}
const seconds = (performance.now() - started) / 1000;
clearInterval(collector);
samplePeak();
const peak = peakRss();
console.log(JSON.stringify({
  name: "server-load-run",
  clients,
  fraction,
  params,
  rounds: updates.length,
  seconds: Number(seconds.toFixed(3)),
  rounds_per_second: Number((updates.length / seconds).toFixed(3)),
  updates,
  sampled,
  dropped,
  attempts,
  rss_connected_mb: mb(rssConnected),
  peak_rss_mb: mb(peak.bytes),
  peak_rss_bytes: peak.bytes,
  peak_rss_source: peak.source,
  gc_ms: gcMs,
}));
