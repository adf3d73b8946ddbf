/**
 * The round driver's seams: a workflow that relays parcels among a round's clients, in
 * process and over the network; a TCP and a WebSocket client in one round; a server refusing a
 * client that lacks a required update stage; strategies and the pipeline over the network
 * giving the simulation's bits.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  Chain,
  createDataset,
  type Dataset,
  Dense,
  FedAvg,
  relu,
  Rng,
  simulate,
  softmax,
  type StageHandler,
  TRAIN_COLLECT,
  type Workflow,
} from "../../mod.ts";
import { listenTcp } from "../../lib/net/tcp.ts";
import { dialWebSocket } from "../../lib/net/websocket.ts";
import { listenWebSocket } from "../../lib/net/websocket_server.ts";
import { partition } from "../../lib/data/partition.ts";
import { subset } from "../../lib/data/dataset.ts";
import { assertSameBits, RawClient, runRounds, startClient, startServer } from "./_loopback.ts";

function blobs(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 4);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let f = 0; f < 4; f++) x[4 * i + f] = rng.normal() + (f === y[i] ? 2 : 0);
  }
  return createDataset(x, y, { features: 4, classes: 3 });
}

const DATA = blobs(240, 1);
const TEST = blobs(60, 2);
const model = () => Chain(Dense(4, 6, relu), Dense(6, 3), softmax).initialize(3);
const CLIENTS = 4;

/** Client k's partition, as `simulate` makes it (iid, stream [1]). */
function shards(): Dataset[] {
  return partition(DATA.y, { scheme: "iid", clients: CLIENTS }, new Rng(0, [1])).map((part) =>
    subset(DATA, part)
  );
}

/**
 * A workflow that first passes a token around the round's ring of clients, then checks what
 * each received, then trains as usual; what the clients told the server is kept in `seen`.
 */
function ringWorkflow(seen: Map<number, string>[]): Workflow {
  return {
    name: "ring-then-train",
    stages: ["ring", "report", ...TRAIN_COLLECT.stages],
    async run(context) {
      await context.exchange("ring", 10_000);
      const reports = await context.exchange("report", 10_000);
      const round = new Map<number, string>();
      for (const [key, parcels] of reports) {
        round.set(key, new TextDecoder().decode(parcels[0]!));
      }
      seen.push(round);
      await TRAIN_COLLECT.run(context);
    },
  };
}

/** Clients' handlers: send "from k" to the next key of the round; report what came in. */
function ringHandlers(): Record<string, StageHandler> {
  return {
    ring: (message, client) => {
      strictEqual(message.from.length, 0);
      const next = (client.key + 1) % CLIENTS;
      return { to: [next], data: [new TextEncoder().encode(`from ${client.key}`)] };
    },
    report: (message) => ({
      to: [-1],
      data: [
        new TextEncoder().encode(
          message.data.map((bytes, i) => `${message.from[i]}:${new TextDecoder().decode(bytes)}`)
            .join(","),
        ),
      ],
    }),
  };
}

Deno.test("a workflow relays parcels among a round's clients, in process and over TCP", async () => {
  const local: Map<number, string>[] = [];
  const plain: Float32Array[] = [];
  const relayed: Float32Array[] = [];
  const common = {
    train: DATA,
    test: TEST,
    clients: CLIENTS,
    fraction: 1,
    rounds: 2,
    lr: 0.1,
    backend: "cpu" as const,
  };
  for await (const record of simulate({ ...common, model: model() })) {
    plain.push(record.model.params.slice());
  }
  for await (
    const record of simulate({
      ...common,
      model: model(),
      workflow: ringWorkflow(local),
      stages: ringHandlers(),
    })
  ) relayed.push(record.model.params.slice());
  // The relay stages do not change training.
  relayed.forEach((params, r) => assertSameBits(params, plain[r]!, `round ${r + 1}`));
  const expected = new Map([[0, "3:from 3"], [1, "0:from 0"], [2, "1:from 1"], [3, "2:from 2"]]);
  deepStrictEqual(local, [expected, expected]);

  const networked: Map<number, string>[] = [];
  const server = await startServer({
    model: model(),
    rounds: 2,
    fraction: 1,
    minClients: CLIENTS,
    lr: 0.1,
    workflow: ringWorkflow(networked),
  });
  const clients = shards().map((data, k) =>
    startClient(server, String(k), data, { stages: ringHandlers() })
  );
  await runRounds(server);
  await Promise.all(clients);
  deepStrictEqual(networked, [expected, expected]);
  assertSameBits(server.model.params, plain.at(-1)!);
});

Deno.test("a TCP client and a WebSocket client train in one round with the simulation's bits", async () => {
  const tcp = listenTcp({ port: 0 });
  const ws = listenWebSocket({ port: 0, path: "/fedgpu" });
  const server = await startServer({
    model: model(),
    listeners: [tcp, ws],
    rounds: 2,
    fraction: 1,
    minClients: 2,
    lr: 0.1,
  });
  strictEqual(server.addresses.length, 2);
  ok(server.addresses[1]!.startsWith("ws://127.0.0.1:"));
  const parts = partition(DATA.y, { scheme: "iid", clients: 2 }, new Rng(0, [1]));
  const running = [
    startClient(server, "0", subset(DATA, parts[0]!), { port: tcp.port }),
    startClient(server, "1", subset(DATA, parts[1]!), {
      dial: () => dialWebSocket(server.addresses[1]!),
    }),
  ];
  const records = await runRounds(server);
  await Promise.all(running);
  deepStrictEqual(records.map((record) => record.clients), [["0", "1"], ["0", "1"]]);
  let last: Float32Array | null = null;
  for await (
    const record of simulate({
      model: model(),
      train: DATA,
      test: TEST,
      clients: 2,
      fraction: 1,
      rounds: 2,
      lr: 0.1,
      backend: "cpu",
    })
  ) last = record.model.params.slice();
  assertSameBits(server.model.params, last!);
});

Deno.test("FedAdam, FedProx and clipping over the network give the simulation's bits", async () => {
  for (
    const run of [
      { strategy: "fedadam", strategyOptions: { serverLr: 0.05 } },
      { strategy: "fedprox", strategyOptions: { mu: 0.1 } },
      { strategy: "fedavgm", pipeline: [{ id: "clip", params: [0.5] }] },
    ]
  ) {
    const settings = { rounds: 3, fraction: 0.5, lr: 0.1, ...run };
    const server = await startServer({ model: model(), minClients: CLIENTS, ...settings });
    const clients = shards().map((data, k) => startClient(server, String(k), data));
    await runRounds(server);
    await Promise.all(clients);
    let last: Float32Array | null = null;
    for await (
      const record of simulate({
        model: model(),
        train: DATA,
        test: TEST,
        clients: CLIENTS,
        backend: "cpu",
        ...settings,
      })
    ) last = record.model.params.slice();
    assertSameBits(server.model.params, last!, run.strategy);
  }
});

Deno.test("a server refuses a client that lacks an update stage the run requires", async () => {
  const logs: string[] = [];
  const server = await startServer({
    model: model(),
    rounds: 1,
    pipeline: [{ id: "clip", params: [1] }],
  }, logs);
  try {
    const client = await RawClient.connect(server);
    await client.hello({ id: "old", stages: [] });
    const error = await client.expect("error");
    strictEqual(error.code, "unsupported-stage");
    ok(/requires update stage clip/.test(error.message), error.message);
    await client.close();
    strictEqual(server.connected, 0);
  } finally {
    await server.close();
  }
});

Deno.test("a strategy that selects its own clients gets them, and a bad selection is refused", async () => {
  const picks: number[][] = [];
  const selecting = (select: (candidates: number) => number[]) => {
    const strategy = new FedAvg();
    return Object.assign(strategy, {
      select: ({ candidates }: { candidates: number }) => {
        const chosen = select(candidates);
        picks.push(chosen);
        return chosen;
      },
    });
  };
  const common = {
    train: DATA,
    test: TEST,
    clients: CLIENTS,
    rounds: 2,
    backend: "cpu" as const,
  };
  const records = [];
  for await (
    const record of simulate({ ...common, model: model(), strategy: selecting(() => [1, 3]) })
  ) records.push(record.clients);
  deepStrictEqual(records, [[1, 3], [1, 3]]);
  for (const bad of [[3, 1], [1, 1], [4], [-1], [0.5]]) {
    await rejects(
      (async () => {
        for await (
          const _ of simulate({
            ...common,
            model: model(),
            strategy: selecting(() => bad),
          })
        ) {
          // The first round refuses the selection.
        }
      })(),
      (error: unknown) => error instanceof RangeError && /select/.test(error.message),
      JSON.stringify(bad),
    );
  }
});
