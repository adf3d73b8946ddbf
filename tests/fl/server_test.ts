import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { CpuBackend } from "../../lib/compute/backend.ts";
import { type Dataset, subset } from "../../lib/data/dataset.ts";
import { ClientError } from "../../lib/fl/client.ts";
import { CheckpointError, loadCheckpoint } from "../../lib/fl/checkpoint.ts";
import type { ErrorMessage, HelloMessage } from "../../lib/fl/protocol.ts";
import { ServerError, type ServerRoundRecord } from "../../lib/fl/server.ts";
import { simulate } from "../../lib/fl/simulate.ts";
import { ChannelError } from "../../lib/net/errors.ts";
import { StaticKeyPair } from "../../lib/net/identity.ts";
import { Dense, relu, softmax } from "../../lib/nn/layers.ts";
import { Chain } from "../../lib/nn/model.ts";
import { evaluate } from "../../lib/nn/train.ts";
import { blobs, shards, smallModel } from "./_network.ts";
import {
  assertSameBits,
  HANG_MS,
  type LocalSettings,
  RawClient,
  referenceRound,
  referenceSample,
  runRounds,
  startClient,
  startServer,
  within,
} from "./_loopback.ts";

// 250 examples: the simulation's shards differ in size, so example weighting shows.
const DATA = blobs(250);
const TEST = blobs(80, 12);
const PARAMS = smallModel().params.length;

function local(seed: number): LocalSettings {
  return { epochs: 2, batchSize: 10, lr: 0.1, momentum: 0.5, weightDecay: 1e-4, seed };
}

/** Consecutive slices of `DATA` of 20, 40, 60, ... examples: clients of unequal weight. */
function uneven(count: number): Dataset[] {
  let start = 0;
  return Array.from({ length: count }, (_, k) => {
    const n = 20 * (k + 1);
    start += n;
    return subset(DATA, Uint32Array.from({ length: n }, (_, i) => start - n + i));
  });
}

/** The shards of the given keys, by key. */
function byKey(parts: Dataset[], keys: readonly number[]): Map<number, Dataset> {
  return new Map(keys.map((key) => [key, parts[key]!]));
}

function ids(keys: readonly number[]): string[] {
  return keys.map(String);
}

/** The first seed from 0 whose samples satisfy `accept`. */
function findSeed(accept: (seed: number) => boolean): number {
  for (let seed = 0; seed < 10_000; seed++) if (accept(seed)) return seed;
  throw new Error("No seed found");
}

async function assertClosedByServer(client: RawClient): Promise<void> {
  await rejects(
    within(client.receive(), HANG_MS, "The server's close"),
    (error) => error instanceof ChannelError && error.code === "closed",
  );
}

Deno.test("a networked run equals simulate() bit for bit, with client-side evaluation", async () => {
  const clients = 6;
  const rounds = 3;
  const fraction = 0.5;
  const settings = local(5);
  const parts = shards(DATA, clients, settings.seed);

  const reference: { clients: number[]; params: Float32Array; accuracy: number; loss: number }[] =
    [];
  const trainLosses: number[] = [];
  for await (
    const record of simulate({
      model: smallModel(),
      train: DATA,
      test: TEST,
      clients,
      fraction,
      rounds,
      ...settings,
      backend: "cpu",
    })
  ) {
    reference.push({
      clients: [...record.clients],
      params: record.model.params.slice(),
      accuracy: record.accuracy,
      loss: record.loss,
    });
    trainLosses.push(record.trainLoss);
  }

  const server = await startServer({
    model: smallModel(),
    test: TEST,
    rounds,
    fraction,
    minClients: clients,
    clientEval: true,
    ...settings,
  });
  const running = parts.map((data, k) => startClient(server, String(k), data));
  const records = await runRounds(server);
  const summaries = await Promise.all(running);

  strictEqual(records.length, rounds);
  for (const [r, record] of records.entries()) {
    const expected = reference[r]!;
    strictEqual(record.round, r + 1);
    strictEqual(record.attempts, 1);
    deepStrictEqual(record.sampled, ids(expected.clients));
    deepStrictEqual(record.clients, ids(expected.clients));
    deepStrictEqual(record.dropped, []);
    strictEqual(record.connected, clients);
    strictEqual(record.examples, expected.clients.reduce((n, k) => n + parts[k]!.n, 0));
    strictEqual(record.accuracy, expected.accuracy);
    strictEqual(record.loss, expected.loss);
    strictEqual(record.trainLoss, trainLosses[r]);

    // The round's clients scored the new model on their own data: the example-weighted
    // accuracy and loss of that model over their shards.
    let examples = 0;
    let correct = 0;
    let lossSum = 0;
    const model = smallModel();
    model.params.set(expected.params);
    for (const k of expected.clients) {
      const metrics = evaluate(model, parts[k]!);
      examples += metrics.examples;
      correct += Math.round(metrics.accuracy * metrics.examples);
      lossSum += metrics.loss * metrics.examples;
    }
    ok(record.clientAccuracy >= 0 && record.clientAccuracy <= 1, `${record.clientAccuracy}`);
    ok(Math.abs(record.clientAccuracy - correct / examples) < 1e-12, `round ${r + 1} accuracy`);
    ok(Math.abs(record.clientLoss - lossSum / examples) < 1e-9, `round ${r + 1} loss`);
  }
  assertSameBits(server.model.params, reference.at(-1)!.params);

  for (const [k, summary] of summaries.entries()) {
    const sampled = reference.filter((round) => round.clients.includes(k)).length;
    deepStrictEqual(summary, {
      trained: sampled,
      updates: sampled,
      connections: 1,
      reason: "training finished",
    });
  }
});

Deno.test("a client that drops mid-round is listed as dropped; the rest make the round", async () => {
  // Four clients with data and a fifth (key 4) that leaves once it has its task: a seed whose
  // first round samples it.
  const fraction = 0.5;
  const rounds = 3;
  const seed = findSeed((s) => referenceSample([0, 1, 2, 3, 4], fraction, s, 1).includes(4));
  const settings = local(seed);
  const parts = uneven(4);
  const logs: string[] = [];
  const server = await startServer(
    { model: smallModel(), rounds, fraction, minClients: 1, ...settings },
    logs,
  );
  const running = parts.map((data, k) => startClient(server, String(k), data));
  const dropper = (async () => {
    const client = await RawClient.join(server, "4");
    const task = await client.expect("task");
    await client.close();
    return task;
  })();
  await server.waitForClients(5);
  const records = await runRounds(server);
  await Promise.all(running);
  strictEqual((await dropper).round, 1);

  const model = smallModel();
  let connected = [0, 1, 2, 3, 4];
  for (let round = 1; round <= rounds; round++) {
    const sampled = referenceSample(connected, fraction, seed, round);
    const trained = sampled.filter((key) => key !== 4);
    referenceRound(model, byKey(parts, trained), round, settings);
    const record = records[round - 1]!;
    deepStrictEqual(record.sampled, ids(sampled));
    deepStrictEqual(record.clients, ids(trained));
    deepStrictEqual(
      record.dropped,
      sampled.includes(4) ? [{ id: "4", reason: "disconnected" }] : [],
    );
    strictEqual(record.connected, connected.length);
    ok(Number.isNaN(record.clientAccuracy));
    connected = [0, 1, 2, 3];
  }
  ok(records[0]!.sampled.includes("4"));
  assertSameBits(server.model.params, model.params);
  ok(logs.some((line) => line.includes("client 4 closed: disconnected")), logs.join("\n"));
});

/**
 * The round timeout of the tests where a silent client must be timed out: the honest clients
 * (a small model, a few dozen examples, loopback) answer in milliseconds, so only the silent
 * one can reach it, however slow the machine.
 */
const ROUND_TIMEOUT_MS = 3_000;

Deno.test("a client that never answers is dropped at the round timeout", async () => {
  const rounds = 2;
  const settings = local(2);
  const parts = uneven(3);
  const server = await startServer({
    model: smallModel(),
    rounds,
    fraction: 1,
    roundTimeoutMs: ROUND_TIMEOUT_MS,
    ...settings,
  });
  const running = parts.map((data, k) => startClient(server, String(k), data));
  const silent = (async () => {
    const client = await RawClient.join(server, "3");
    const tasks: number[] = [];
    for (;;) {
      const message = await client.receive();
      if (message.type === "task") tasks.push(message.round);
      else {
        await client.close();
        return { tasks, last: message };
      }
    }
  })();
  await server.waitForClients(4);
  const records = await runRounds(server);
  await Promise.all(running);

  const model = smallModel();
  for (const [r, record] of records.entries()) {
    referenceRound(model, byKey(parts, [0, 1, 2]), r + 1, settings);
    deepStrictEqual(record.sampled, ["0", "1", "2", "3"]);
    deepStrictEqual(record.clients, ["0", "1", "2"]);
    deepStrictEqual(record.dropped, [{ id: "3", reason: "no ready within 3.0 s" }]);
    // Ended by the round timeout: not before it, and long before the 60 s upload timeout.
    ok(record.seconds >= 2.95 && record.seconds < 30, `round took ${record.seconds} s`);
    strictEqual(record.connected, 4, "a silent client stays connected");
  }
  assertSameBits(server.model.params, model.params);
  deepStrictEqual(await silent, {
    tasks: [1, 2],
    last: { type: "bye", reason: "training finished" },
  });
});

Deno.test("a round with too few updates is retried with a new sample, never faked", async () => {
  // Three clients with data and a silent one (key 3); each round samples two and needs both
  // updates: a seed whose first round samples the silent client first.
  const fraction = 0.5;
  const rounds = 2;
  const keys = [0, 1, 2, 3];
  const seed = findSeed((s) =>
    referenceSample(keys, fraction, s, 1).includes(3) &&
    !referenceSample(keys, fraction, s, 1, 1).includes(3)
  );
  const settings = local(seed);
  const parts = uneven(3);
  const logs: string[] = [];
  const server = await startServer({
    model: smallModel(),
    rounds,
    fraction,
    minUpdates: 2,
    roundTimeoutMs: ROUND_TIMEOUT_MS,
    ...settings,
  }, logs);
  const running = parts.map((data, k) => startClient(server, String(k), data));
  const silent = (async () => {
    const client = await RawClient.join(server, "3");
    await client.expect("bye");
    await client.close();
  })();
  await server.waitForClients(4);
  const records = await runRounds(server);
  await Promise.all([...running, silent]);

  const model = smallModel();
  for (let round = 1; round <= rounds; round++) {
    let attempt = 0;
    let sampled = referenceSample(keys, fraction, seed, round, attempt);
    while (sampled.includes(3)) sampled = referenceSample(keys, fraction, seed, round, ++attempt);
    referenceRound(model, byKey(parts, sampled), round, settings);
    const record = records[round - 1]!;
    strictEqual(record.attempts, attempt + 1);
    deepStrictEqual(record.sampled, ids(sampled));
    deepStrictEqual(record.clients, ids(sampled));
  }
  ok(records[0]!.attempts > 1);
  assertSameBits(server.model.params, model.params);
  ok(logs.some((line) => line.includes("round 1: 1 of 2 updates arrived, 2 needed; retrying")));
});

Deno.test("rounds() throws round-failed once maxAttempts attempts fall short", async () => {
  const settings = local(1);
  const model = smallModel();
  const initial = model.params.slice();
  const server = await startServer({
    model,
    rounds: 3,
    fraction: 1,
    minUpdates: 2,
    maxAttempts: 2,
    roundTimeoutMs: ROUND_TIMEOUT_MS,
    ...settings,
  });
  const honest = startClient(server, "0", DATA);
  const silent = (async () => {
    const client = await RawClient.join(server, "1");
    const tasks = [(await client.expect("task")).round, (await client.expect("task")).round];
    const bye = await client.expect("bye");
    await client.close();
    return { tasks, bye: bye.reason };
  })();
  await server.waitForClients(2);
  const records: ServerRoundRecord[] = [];
  await rejects(
    (async () => {
      for await (const record of server.rounds()) records.push(record);
    })(),
    (error) =>
      error instanceof ServerError && error.code === "round-failed" &&
      error.message.includes("in each of 2 attempts"),
  );
  deepStrictEqual(records, []);
  strictEqual(server.round, 0);
  assertSameBits(server.model.params, initial, "a failed round leaves the model as it was");
  const summary = await honest;
  strictEqual(summary.trained, 2);
  ok(summary.reason.startsWith("training failed"), summary.reason);
  deepStrictEqual((await silent).tasks, [1, 1]);
});

/** What a hostile client got: the error's code, or `closed` if the server just hung up. */
async function hostile(
  server: Awaited<ReturnType<typeof startServer>>,
  act: (client: RawClient) => Promise<void>,
): Promise<string> {
  const client = await RawClient.connect(server);
  try {
    await act(client);
    const error: ErrorMessage = await within(client.expect("error"), HANG_MS, "The error");
    await assertClosedByServer(client);
    return error.code;
  } finally {
    await client.close();
  }
}

Deno.test("hostile clients get a typed error and only their own connection closes", async () => {
  const rounds = 3;
  const settings = local(4);
  const parts = uneven(3);
  const logs: string[] = [];
  const server = await startServer({
    model: smallModel(),
    rounds,
    fraction: 1,
    minClients: 3,
    handshakeTimeoutMs: 10_000,
    roundTimeoutMs: 20_000,
    ...settings,
  }, logs);
  const running = parts.map((data, k) => startClient(server, String(k), data));
  const hello = (id: string): HelloMessage => ({
    type: "hello",
    id,
    examples: 10,
    backends: ["cpu"],
    stages: [],
  });
  const attacks = {
    garbage: async () => {
      // Bytes that are no handshake: the server hangs up without a word.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      try {
        await conn.write(new Uint8Array([0, 5, 1, 2, 3, 4, 5]));
        const read = await within(conn.read(new Uint8Array(64)), HANG_MS, "The refusal");
        return read === null ? "closed" : `read ${read} bytes`;
      } finally {
        conn.close();
      }
    },
    version: () => hostile(server, (client) => client.hello({ id: "v1" }, 1)),
    invalidId: () => hostile(server, (client) => client.hello({ id: "no spaces" })),
    unknownFirst: () => hostile(server, (client) => client.sendRaw("gossip", {})),
    notHello: () =>
      hostile(server, (client) => client.send({ type: "ready", task: 1, examples: 1 })),
    unknownType: () =>
      hostile(server, async (client) => {
        await client.send(hello("gossip"));
        await client.expect("welcome");
        await client.sendRaw("gossip", { about: "others" });
      }),
    unsolicited: () =>
      hostile(server, async (client) => {
        await client.send(hello("pushy"));
        await client.expect("welcome");
        await client.send({
          type: "update",
          task: 1,
          stages: [],
          codec: "float32",
          delta: new Float32Array(PARAMS),
          examples: 10,
          loss: 0,
          accuracy: 1,
          seconds: 0,
        });
      }),
    serverType: () =>
      hostile(server, async (client) => {
        await client.send(hello("bossy"));
        await client.expect("welcome");
        await client.send({ type: "welcome", round: 1, key: 0 });
      }),
  };

  const iterator = server.rounds();
  const records: ServerRoundRecord[] = [];
  records.push((await iterator.next()).value as ServerRoundRecord);
  // The attacks run while the honest clients train the next round.
  const during = iterator.next();
  const outcomes = Object.fromEntries(
    await Promise.all(
      Object.entries(attacks).map(async ([name, attack]) => [name, await attack()] as const),
    ),
  );
  records.push((await during).value as ServerRoundRecord);
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
    records.push(next.value);
  }
  const summaries = await Promise.all(running);

  deepStrictEqual(outcomes, {
    garbage: "closed",
    version: "version",
    invalidId: "invalid",
    unknownFirst: "unknown-type",
    notHello: "unexpected",
    unknownType: "unknown-type",
    unsolicited: "unexpected",
    serverType: "unexpected",
  });
  for (const summary of summaries) {
    deepStrictEqual(summary, {
      trained: rounds,
      updates: rounds,
      connections: 1,
      reason: "training finished",
    });
  }
  const model = smallModel();
  for (const [r, record] of records.entries()) {
    referenceRound(model, byKey(parts, [0, 1, 2]), r + 1, settings);
    deepStrictEqual(record.clients, ["0", "1", "2"]);
    for (const { id } of record.dropped) ok(["gossip", "pushy", "bossy"].includes(id), id);
  }
  assertSameBits(server.model.params, model.params);
  ok(logs.some((line) => line.startsWith("refused tcp://127.0.0.1:")), logs.join("\n"));
});

Deno.test("an update of the wrong length or with a NaN is refused with invalid", async () => {
  const settings = local(6);
  const parts = uneven(3);
  const server = await startServer({ model: smallModel(), rounds: 2, fraction: 1, ...settings });
  const running = parts.map((data, k) => startClient(server, String(k), data));
  const cheat = async (id: string, delta: Float32Array) => {
    const client = await RawClient.join(server, id);
    try {
      const task = await client.expect("task");
      await client.send({ type: "ready", task: task.task, examples: 40 });
      strictEqual((await client.expect("collect")).task, task.task);
      await client.send({
        type: "update",
        task: task.task,
        stages: [],
        codec: "float32",
        delta,
        examples: 40,
        loss: 1,
        accuracy: 0.5,
        seconds: 0.01,
      });
      const error = await client.expect("error");
      await assertClosedByServer(client);
      return error.code;
    } finally {
      await client.close();
    }
  };
  const nan = new Float32Array(PARAMS);
  nan[7] = NaN;
  const cheats = Promise.all([
    cheat("short", new Float32Array(PARAMS - 1)),
    cheat("long", new Float32Array(PARAMS + 1)),
    cheat("nan", nan),
  ]);
  await server.waitForClients(6);
  const records = await runRounds(server);
  await Promise.all(running);
  deepStrictEqual(await cheats, ["invalid", "invalid", "invalid"]);

  const model = smallModel();
  for (const [r, record] of records.entries()) {
    referenceRound(model, byKey(parts, [0, 1, 2]), r + 1, settings);
    deepStrictEqual(record.clients, ["0", "1", "2"]);
  }
  const dropped = new Map(records[0]!.dropped.map(({ id, reason }) => [id, reason]));
  deepStrictEqual([...dropped.keys()].sort(), ["long", "nan", "short"]);
  ok(dropped.get("short")!.startsWith("invalid update:"), dropped.get("short"));
  ok(dropped.get("long")!.startsWith("invalid update:"), dropped.get("long"));
  ok(dropped.get("nan")!.includes("non-finite"), dropped.get("nan"));
  strictEqual(records[1]!.connected, 3);
  assertSameBits(server.model.params, model.params);
});

Deno.test("a second connection with a client's id replaces the first", async () => {
  const settings = local(8);
  const parts = uneven(2);
  const server = await startServer({ model: smallModel(), rounds: 2, fraction: 1, ...settings });
  const old = await RawClient.join(server, "0");
  // An in-process client with the same id replaces the hand-driven one...
  const first = startClient(server, "0", parts[0]!);
  const replaced = await within(old.expect("error"), HANG_MS, "The replacement");
  strictEqual(replaced.code, "duplicate-id");
  await assertClosedByServer(old);
  await old.close();
  strictEqual(server.connected, 1);
  // ... and is replaced in turn by another, so it stops for good rather than fight back.
  const second = startClient(server, "0", parts[0]!);
  await rejects(
    within(first, HANG_MS, "The replaced client's end"),
    (error) => error instanceof ClientError && error.code === "refused",
  );
  const other = startClient(server, "1", parts[1]!);
  await server.waitForClients(2);
  const records = await runRounds(server);
  deepStrictEqual((await second).trained, 2);
  deepStrictEqual((await other).trained, 2);

  const model = smallModel();
  for (const [r, record] of records.entries()) {
    referenceRound(model, byKey(parts, [0, 1]), r + 1, settings);
    deepStrictEqual(record.clients, ["0", "1"]);
    strictEqual(record.connected, 2);
  }
  assertSameBits(server.model.params, model.params);
});

Deno.test("allowedClients admits listed keys and refuses the rest with unknown-client", async () => {
  const settings = local(9);
  const allowed = StaticKeyPair.generate();
  const logs: string[] = [];
  const server = await startServer({
    model: smallModel(),
    rounds: 1,
    allowedClients: [allowed.fingerprint],
    ...settings,
  }, logs);
  const lines: string[] = [];
  await rejects(
    within(
      startClient(server, "1", DATA, { log: (line) => lines.push(line) }),
      HANG_MS,
      "The stranger's refusal",
    ),
    (error) =>
      error instanceof ClientError && error.code === "refused" &&
      error.message.includes("unknown-client"),
  );
  deepStrictEqual(lines.filter((line) => line.includes("reconnecting")), []);
  const stranger = await RawClient.connect(server);
  await stranger.hello({ id: "2" });
  strictEqual((await stranger.expect("error")).code, "unknown-client");
  await assertClosedByServer(stranger);
  await stranger.close();
  strictEqual(server.connected, 0);

  const member = startClient(server, "0", DATA, { staticKey: allowed });
  await server.waitForClients(1);
  const records = await runRounds(server);
  strictEqual((await member).trained, 1);
  deepStrictEqual(records[0]!.clients, ["0"]);
  const model = smallModel();
  referenceRound(model, new Map([[0, DATA]]), 1, settings);
  assertSameBits(server.model.params, model.params);
  ok(logs.some((line) => line.includes("not on the allow-list")), logs.join("\n"));
});

Deno.test("a resumed server ends with the bits of a straight run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clients = 4;
    const fraction = 0.5;
    const settings = local(3);
    const parts = shards(DATA, clients, settings.seed);
    const checkpoint = `${dir}/run.ckpt`;
    const metricsOut = `${dir}/metrics.jsonl`;
    const options = { fraction, minClients: clients, checkpoint, metricsOut, ...settings };
    const run = async (rounds: number, resume: boolean) => {
      const server = await startServer({ model: smallModel(), rounds, resume, ...options });
      const running = parts.map((data, k) => startClient(server, String(k), data));
      const records = await runRounds(server);
      await Promise.all(running);
      return { server, records };
    };

    const first = await run(2, false);
    deepStrictEqual(first.records.map((record) => record.round), [1, 2]);
    strictEqual((await loadCheckpoint(checkpoint))!.round, 2);
    const second = await run(4, true);
    deepStrictEqual(second.records.map((record) => record.round), [3, 4]);
    strictEqual(second.server.round, 4);

    let straight: Float32Array | undefined;
    for await (
      const record of simulate({
        model: smallModel(),
        train: DATA,
        clients,
        fraction,
        rounds: 4,
        ...settings,
        backend: "cpu",
      })
    ) {
      straight = record.model.params;
    }
    assertSameBits(second.server.model.params, straight!);
    assertSameBits((await loadCheckpoint(checkpoint))!.model.params, straight!);
    const lines = (await Deno.readTextFile(metricsOut)).trimEnd().split("\n");
    deepStrictEqual(lines.map((line) => JSON.parse(line).round), [1, 2, 3, 4]);
    deepStrictEqual(second.server.history.map((record) => record.round), [1, 2, 3, 4]);

    for (const change of [{ seed: settings.seed + 1 }, { lr: 0.2 }]) {
      await rejects(
        startServer({ model: smallModel(), rounds: 5, resume: true, ...options, ...change }),
        (error) => error instanceof CheckpointError && error.code === "mismatch",
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("close() ends connections still in their handshake", async () => {
  // A handshake deadline far beyond the test's hang limit: only close() can end the wait.
  const server = await startServer({
    model: smallModel(),
    rounds: 1,
    handshakeTimeoutMs: 10 * HANG_MS,
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    // Connected but silent: the server waits for a handshake.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await within(server.close(), HANG_MS, "close()");
    strictEqual(await within(conn.read(new Uint8Array(64)), HANG_MS, "The hang-up"), null);
  } finally {
    conn.close();
  }
});

Deno.test("clients that stop reading cannot stall the round's task sends to others", async () => {
  // A 16 MiB model: more than the socket buffers hold, so a task to a client that never reads
  // stalls part-way. Nine such clients come first in key order; the honest one, last, still
  // gets its task at once and trains.
  const big = () => Chain(Dense(6, 2048, relu), Dense(2048, 2048, relu), Dense(2048, 4), softmax);
  const settings = { ...local(10), epochs: 1, batchSize: 8 };
  const data = subset(DATA, Uint32Array.from({ length: 8 }, (_, i) => i));
  const logs: string[] = [];
  const server = await startServer({
    model: big().initialize(1),
    rounds: 1,
    fraction: 1,
    roundTimeoutMs: 15_000,
    maxAttempts: 1,
    ...settings,
  }, logs);
  const deaf = await Promise.all(
    Array.from({ length: 9 }, (_, i) => RawClient.join(server, String(i))),
  );
  const honest = startClient(server, "9", data);
  try {
    await server.waitForClients(10);
    const [record] = await runRounds(server);
    deepStrictEqual(record!.clients, ["9"]);
    for (let i = 0; i < 9; i++) {
      ok(
        logs.includes(`client ${i} closed: a task message took more than 15.0 s to send`),
        logs.join("\n"),
      );
    }
    deepStrictEqual(
      record!.dropped.map((drop) => drop.id),
      ["0", "1", "2", "3", "4", "5", "6", "7", "8"],
    );
    strictEqual((await honest).trained, 1);
    const model = big().initialize(1);
    referenceRound(model, new Map([[9, data]]), 1, settings);
    assertSameBits(server.model.params, model.params);
  } finally {
    await Promise.all(deaf.map((client) => client.close()));
  }
});

Deno.test("a server scoring on parallel workers reports the one-thread scores' bits", async () => {
  // 2,300 test examples: three batches of 1,000, split over the workers.
  const test = blobs(2300, 13);
  const settings = local(8);
  const parts = shards(DATA, 4, settings.seed);
  const run = async (parallel: number) => {
    const server = await startServer({
      model: smallModel(),
      test,
      rounds: 2,
      fraction: 0.5,
      minClients: 4,
      parallel,
      ...settings,
    });
    try {
      const running = parts.map((data, k) => startClient(server, String(k), data));
      const records = await runRounds(server);
      await Promise.all(running);
      return { records, params: server.model.params.slice() };
    } finally {
      await server.close();
    }
  };
  const one = await run(1);
  const two = await run(2);
  assertSameBits(two.params, one.params);
  deepStrictEqual(
    two.records.map((r) => [r.accuracy, r.loss]),
    one.records.map((r) => [r.accuracy, r.loss]),
  );
  const model = smallModel();
  model.params.set(two.params);
  const last = two.records.at(-1)!;
  const want = evaluate(model, test);
  deepStrictEqual([last.accuracy, last.loss], [want.accuracy, want.loss]);
});

Deno.test("a server refuses parallel scoring off the Wasm engine and bad worker counts", async () => {
  for (const parallel of [0, 2.5]) {
    await rejects(
      startServer({ model: smallModel(), test: TEST, parallel }),
      (e) =>
        e instanceof RangeError && /Parallel workers must be a positive integer/.test(e.message),
    );
  }
  await rejects(
    startServer({
      model: smallModel(),
      test: TEST,
      parallel: 2,
      backend: new CpuBackend("reference"),
    }),
    (e) => e instanceof RangeError && /CPU Wasm engine/.test(e.message),
  );
});
