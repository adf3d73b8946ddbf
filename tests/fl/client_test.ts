import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createDataset, type Dataset, subset } from "../../lib/data/dataset.ts";
import { backoffDelay, ClientError, runClient } from "../../lib/fl/client.ts";
import { StaticKeyPair } from "../../lib/net/identity.ts";
import { blobs, smallModel } from "./_network.ts";
import {
  assertSameBits,
  HANG_MS,
  type LocalSettings,
  referenceRound,
  runRounds,
  SERVER_KEY,
  startClient,
  startServer,
  within,
} from "./_loopback.ts";

const DATA = blobs(130);
const SETTINGS: LocalSettings = {
  epochs: 1,
  batchSize: 10,
  lr: 0.1,
  momentum: 0,
  weightDecay: 0,
  seed: 7,
};

/** A port that nothing listens on (it was free a moment ago). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + HANG_MS;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function range(start: number, end: number): Uint32Array {
  return Uint32Array.from({ length: end - start }, (_, i) => start + i);
}

const reconnecting = (line: string) => line.includes("reconnecting in");

Deno.test("backoffDelay() doubles from initialMs, stops at maxMs, and jitters in [d/2, d]", () => {
  const retry = { initialMs: 100, maxMs: 1_000 };
  const full = [100, 200, 400, 800, 1_000, 1_000, 1_000];
  for (const [i, delay] of full.entries()) {
    const attempt = i + 1;
    strictEqual(backoffDelay(attempt, retry, 0), delay / 2, `attempt ${attempt}, no jitter`);
    strictEqual(backoffDelay(attempt, retry, 0.5), 0.75 * delay, `attempt ${attempt}, half`);
    const top = backoffDelay(attempt, retry, 1 - 2 ** -53);
    ok(top <= delay && top > 0.999 * delay, `attempt ${attempt}, most jitter: ${top}`);
  }
  // Huge attempt counts stay finite and capped.
  strictEqual(backoffDelay(10_000, retry, 0), 500);
  strictEqual(backoffDelay(2 ** 40, retry, 0), 500);
  // The defaults: 250 ms doubling up to 30 s.
  strictEqual(backoffDelay(1, {}, 0), 125);
  strictEqual(backoffDelay(4, {}, 0), 1_000);
  strictEqual(backoffDelay(50, {}, 0), 15_000);
  // Math.random() jitter lands in [d/2, d] and actually varies.
  const seen = new Set<number>();
  for (let i = 0; i < 1_000; i++) {
    const delay = backoffDelay(3, retry);
    ok(delay >= 200 && delay <= 400, `${delay}`);
    seen.add(delay);
  }
  ok(seen.size > 100);
});

Deno.test("a client started before its server keeps retrying and joins once it is up", async () => {
  const port = freePort();
  const lines: string[] = [];
  const client = runClient({
    id: "0",
    data: DATA,
    port,
    serverFingerprint: SERVER_KEY.fingerprint,
    backend: "cpu",
    retry: { initialMs: 10, maxMs: 40, maxAttempts: 1_000 },
    log: (line) => lines.push(line),
  });
  await until(() => lines.filter(reconnecting).length >= 3, "three failed attempts");
  const server = await startServer({ model: smallModel(), port, rounds: 2, ...SETTINGS });
  await server.waitForClients(1);
  const records = await runRounds(server);
  const summary = await client;
  strictEqual(records.length, 2);
  strictEqual(summary.trained, 2);
  strictEqual(summary.updates, 2);
  strictEqual(summary.reason, "training finished");
  strictEqual(summary.connections, lines.filter(reconnecting).length + 1);
  ok(summary.connections >= 4);
  const model = smallModel();
  for (const round of [1, 2]) referenceRound(model, new Map([[0, DATA]]), round, SETTINGS);
  assertSameBits(server.model.params, model.params);
});

Deno.test("with no server, runClient() gives up after maxAttempts reconnections", async () => {
  const lines: string[] = [];
  await rejects(
    runClient({
      id: "0",
      data: DATA,
      port: freePort(),
      serverFingerprint: SERVER_KEY.fingerprint,
      backend: "cpu",
      retry: { initialMs: 5, maxMs: 10, maxAttempts: 2 },
      log: (line) => lines.push(line),
    }),
    (error) =>
      error instanceof ClientError && error.code === "retries-exhausted" &&
      error.message.startsWith("Gave up after 3 failed connection attempts in a row"),
  );
  strictEqual(lines.filter(reconnecting).length, 2);
});

Deno.test("runClient() counts every failed attempt, handshakes that fail included", async () => {
  // A listener that hangs up on every connection: each attempt fails in the handshake.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const hangingUp = (async () => {
    for await (const conn of listener) {
      accepted++;
      conn.close();
    }
  })();
  try {
    for (const maxAttempts of [0, 2]) {
      accepted = 0;
      await rejects(
        runClient({
          id: "0",
          data: DATA,
          port: (listener.addr as Deno.NetAddr).port,
          serverFingerprint: SERVER_KEY.fingerprint,
          backend: "cpu",
          retry: { initialMs: 5, maxMs: 10, maxAttempts },
          log: () => {},
        }),
        (error) => error instanceof ClientError && error.code === "retries-exhausted",
      );
      strictEqual(accepted, maxAttempts + 1);
    }
  } finally {
    listener.close();
    await hangingUp;
  }
});

Deno.test("a server that proves another key is a pin error, without retrying", async () => {
  const logs: string[] = [];
  const server = await startServer({ model: smallModel(), rounds: 1 }, logs);
  const lines: string[] = [];
  try {
    await rejects(
      within(
        startClient(server, "0", DATA, {
          serverFingerprint: StaticKeyPair.generate().fingerprint,
          retry: { initialMs: 5, maxMs: 10, maxAttempts: 5 },
          log: (line) => lines.push(line),
        }),
        HANG_MS,
        "The pin error",
      ),
      (error) =>
        error instanceof ClientError && error.code === "pin" &&
        error.message.includes(server.fingerprint),
    );
    deepStrictEqual(lines.filter(reconnecting), []);
    strictEqual(server.connected, 0);
    await until(() => logs.some((line) => line.startsWith("refused")), "the server's log");
  } finally {
    await server.close();
  }
});

/** `data` with its last feature dropped: it does not fit the model. */
function narrower(data: Dataset): Dataset {
  const features = data.features - 1;
  const x = new Float32Array(data.n * features);
  for (let i = 0; i < data.n; i++) {
    x.set(data.x.subarray(i * data.features, i * data.features + features), i * features);
  }
  return createDataset(x, data.y.slice(), { features, classes: data.classes });
}

Deno.test("a model that does not fit the client's data is incompatible; the server drops it", async () => {
  // Unequal shards (50 and 80 examples), so that example weighting shows.
  const parts = [subset(DATA, range(0, 50)), subset(DATA, range(50, 130))];
  const logs: string[] = [];
  const server = await startServer(
    { model: smallModel(), rounds: 2, fraction: 1, ...SETTINGS },
    logs,
  );
  const honest = parts.map((data, k) => startClient(server, String(k), data));
  const misfit = startClient(server, "misfit", narrower(parts[0]!));
  await server.waitForClients(3);
  const rounds = runRounds(server);
  await rejects(
    misfit,
    (error) =>
      error instanceof ClientError && error.code === "incompatible" &&
      error.message.includes("5 features"),
  );
  const records = await rounds;
  await Promise.all(honest);

  deepStrictEqual(records[0]!.sampled, ["0", "1", "misfit"]);
  deepStrictEqual(records[0]!.clients, ["0", "1"]);
  deepStrictEqual(records[0]!.dropped.map((dropped) => dropped.id), ["misfit"]);
  ok(records[0]!.dropped[0]!.reason.includes("(incompatible)"), records[0]!.dropped[0]!.reason);
  deepStrictEqual(records[1]!.sampled, ["0", "1"]);
  ok(
    logs.some((line) => line.startsWith("client misfit closed:") && line.includes("incompatible")),
  );
  const model = smallModel();
  for (const round of [1, 2]) {
    referenceRound(model, new Map(parts.map((data, k) => [k, data])), round, SETTINGS);
  }
  assertSameBits(server.model.params, model.params);
});

Deno.test("aborting a client ends its run, connected or waiting to retry", async () => {
  // Waiting between attempts.
  const waiting = new AbortController();
  const lines: string[] = [];
  const retrying = runClient({
    id: "0",
    data: DATA,
    port: freePort(),
    serverFingerprint: SERVER_KEY.fingerprint,
    backend: "cpu",
    // A wait between attempts far beyond the test's hang limit: only the abort can end it.
    retry: { initialMs: 10 * HANG_MS, maxMs: 10 * HANG_MS, maxAttempts: 5 },
    log: (line) => lines.push(line),
    signal: waiting.signal,
  });
  await until(() => lines.some(reconnecting), "a failed attempt");
  waiting.abort();
  strictEqual((await within(retrying, HANG_MS, "The abort")).reason, "aborted");

  // Connected, waiting for a task.
  const server = await startServer({ model: smallModel(), rounds: 1 });
  try {
    const connected = new AbortController();
    const client = startClient(server, "0", DATA, { signal: connected.signal });
    await server.waitForClients(1);
    connected.abort();
    deepStrictEqual(await within(client, HANG_MS, "The abort"), {
      trained: 0,
      updates: 0,
      connections: 1,
      reason: "aborted",
    });
    await until(() => server.connected === 0, "the server to see the client leave");
  } finally {
    await server.close();
  }
});
