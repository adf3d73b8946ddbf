/**
 * `fedgpu server` and `fedgpu client`: federated training over TCP.
 *
 * ```sh
 * fedgpu server --rounds 100 --target 0.97 --min-clients 10 --checkpoint .fedgpu/ckpt.bin
 * fedgpu client --shard 0-9 --of 100        # ten clients of MNIST's IID split, one process
 * ```
 *
 * @module
 */

import { type Backend, type BackendKind, createBackend } from "../compute/backend.ts";
import { onWasmEngine } from "../fl/parallel.ts";
import { loadCsv } from "../data/csv_file.ts";
import { type Dataset, subset } from "../data/dataset.ts";
import { loadMnist } from "../data/mnist.ts";
import { partition, type PartitionScheme } from "../data/partition.ts";
import { ClientError, runClient } from "../fl/client.ts";
import { JobQueue } from "../fl/in_memory.ts";
import { FederatedServer, formatServerRound, type ServerRoundRecord } from "../fl/server.ts";
import { STREAM } from "../fl/simulate.ts";
import { loadOrCreateKeyFile } from "../net/key_file.ts";
import { listenTcp } from "../net/tcp.ts";
import { dialWebSocket } from "../net/websocket.ts";
import { listenWebSocket } from "../net/websocket_server.ts";
import { modelToBytes } from "../nn/codec.ts";
import { Dense, type Layer, relu, softmax } from "../nn/layers.ts";
import { Chain, type Model } from "../nn/model.ts";
import { Rng } from "../rng.ts";
import {
  choiceFlag,
  type FlagSpec,
  formatHelp,
  numberFlag,
  parseFlags,
  STRATEGY_FLAGS,
  strategyFlags,
  UsageError,
} from "./args.ts";
import {
  defaultParallel,
  formatTable,
  type Output,
  PAPER_2NN_LR,
  PARTITIONS,
  percent,
} from "./simulate.ts";

type _Values = Record<string, string | boolean | string[] | undefined>;

function _string(values: _Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/**
 * Parses hidden layer sizes such as `200,200` (an empty string for none).
 *
 * @param text The flag's value.
 * @returns The sizes.
 * @throws {UsageError} If a size is not a positive integer.
 */
export function parseHidden(text: string): number[] {
  if (text.trim() === "" || text === "none") return [];
  return text.split(",").map((part) => {
    const size = Number(part);
    if (!Number.isInteger(size) || size < 1) {
      throw new UsageError(`--hidden must list positive integers, got ${JSON.stringify(part)}`);
    }
    return size;
  });
}

/**
 * A multilayer perceptron: relu hidden layers, a softmax output; `mlp(784, [200, 200], 10,
 * seed)` is the FedAvg paper's 2NN, the same bits as `mnist2nn(seed)`.
 *
 * @param inputs Input features.
 * @param hidden Hidden layer sizes.
 * @param classes Output classes.
 * @param seed Seed of the initial parameters.
 * @returns The model.
 */
export function mlp(inputs: number, hidden: number[], classes: number, seed: number): Model {
  const sizes = [inputs, ...hidden];
  const layers: Layer[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) layers.push(Dense(sizes[i]!, sizes[i + 1]!, relu));
  layers.push(Dense(sizes.at(-1)!, classes), softmax);
  return Chain(...layers).initialize(seed);
}

/**
 * Parses a shard list: `3`, `0-9`, or `0,4,7` (and mixes such as `0-3,8`).
 *
 * @param text The flag's value.
 * @param of The number of shards; every index must be below it.
 * @returns The indices, ascending, without repeats.
 * @throws {UsageError} If the list is malformed or an index is out of range.
 */
export function parseShards(text: string, of: number): number[] {
  const shards = new Set<number>();
  for (const part of text.split(",")) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (match === null) {
      throw new UsageError(`--shard must look like 3, 0-9 or 0,4,7, got ${JSON.stringify(text)}`);
    }
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first || last >= of) {
      throw new UsageError(`--shard ${part} is outside 0-${of - 1} (--of ${of})`);
    }
    for (let shard = first; shard <= last; shard++) shards.add(shard);
  }
  return [...shards].sort((a, b) => a - b);
}

const SERVER_FLAGS: Record<string, FlagSpec> = {
  host: { type: "string", value: "H", help: "Address to listen on (default 127.0.0.1)" },
  port: { type: "string", value: "P", help: "Port (default 3000; 0 picks a free one)" },
  "key-file": {
    type: "string",
    value: "PATH",
    help: "Server static key, created on first start (default .fedgpu/server_key.json)",
  },
  "fingerprint-out": {
    type: "string",
    value: "PATH",
    help: "Write the key's fingerprint here (default .fedgpu/server.fingerprint)",
  },
  rounds: {
    type: "string",
    value: "N",
    help: "Rounds to run, counting resumed ones (default 100)",
  },
  target: { type: "string", value: "ACC", help: "Stop once test accuracy reaches ACC" },
  fraction: { type: "string", value: "C", help: "Fraction of connected clients per round (0.1)" },
  "min-clients": {
    type: "string",
    value: "N",
    help: "Connected clients to wait for before each round (default 1)",
  },
  "min-updates": { type: "string", value: "N", help: "Fewest updates a round needs (default 1)" },
  "round-timeout": {
    type: "string",
    value: "S",
    help: "Seconds a round waits for its clients (default 120)",
  },
  "max-attempts": {
    type: "string",
    value: "N",
    help: "Attempts at a round before giving up (default 10)",
  },
  epochs: { type: "string", value: "E", help: "Local epochs (default 1)" },
  "batch-size": { type: "string", value: "B", help: "Local batch size (default 10)" },
  lr: { type: "string", value: "LR", help: `Local learning rate (default ${PAPER_2NN_LR})` },
  seed: { type: "string", value: "S", help: "Seed of the model, sampling, shuffling (default 0)" },
  hidden: {
    type: "string",
    value: "SIZES",
    help: "Hidden layer sizes of the model (default 200,200: the 2NN)",
  },
  test: {
    type: "string",
    value: "DATA",
    help: "Held-out data: mnist, none, or a CSV file (default mnist)",
  },
  "label-column": { type: "string", value: "COL", help: "Label column of a CSV (default last)" },
  features: { type: "string", value: "N", help: "Model inputs with --test none (default 784)" },
  classes: { type: "string", value: "N", help: "Model outputs with --test none (default 10)" },
  "mnist-dir": { type: "string", value: "DIR", help: "Read MNIST IDX files from DIR" },
  checkpoint: {
    type: "string",
    value: "PATH",
    help: "Write a checkpoint here after every round (atomically)",
  },
  resume: { type: "boolean", help: "Continue from --checkpoint if it exists" },
  "metrics-out": { type: "string", value: "PATH", help: "Append a JSON line per round here" },
  "save-model": { type: "string", value: "PATH", help: "Write the final model here" },
  "allow-client": {
    type: "string",
    value: "FP",
    multiple: true,
    help: "Admit only clients with this key fingerprint (repeatable)",
  },
  "client-eval": { type: "boolean", help: "Have each round's clients score the new model" },
  backend: { type: "string", value: "B", help: "Evaluation engine: cpu | auto | webgpu (cpu)" },
  parallel: {
    type: "string",
    value: "W",
    help: "Workers scoring the test data after each round, on the CPU engine; same results " +
      "(default one per core, up to 4)",
  },
  "ws-port": {
    type: "string",
    value: "P",
    help: "Also accept WebSocket clients on this port (path /fedgpu; 0 picks a free one)",
  },
  ...STRATEGY_FLAGS,
  help: { type: "boolean", short: "h", help: "Show this help" },
};

/** The server's held-out data and the model's input and output sizes. */
async function _serverData(
  values: _Values,
): Promise<{ test: Dataset | undefined; features: number; classes: number; name: string }> {
  const source = _string(values, "test") ?? "mnist";
  if (source === "none") {
    return {
      test: undefined,
      features: numberFlag(values, "features", 784, "int>0"),
      classes: numberFlag(values, "classes", 10, "int>0"),
      name: "none",
    };
  }
  if (source === "mnist") {
    const dir = _string(values, "mnist-dir");
    const { test } = await loadMnist(dir === undefined ? {} : { dir });
    return { test, features: test.features, classes: test.classes, name: "MNIST test set" };
  }
  const test = await _loadCsv(values, source);
  return { test, features: test.features, classes: test.classes, name: source };
}

/** Loads a CSV with the `--label-column` flag's column (a header name or a zero-based index). */
function _loadCsv(values: _Values, path: string): Promise<Dataset> {
  const column = _string(values, "label-column");
  return loadCsv(
    path,
    column === undefined ? {} : { labelColumn: /^\d+$/.test(column) ? Number(column) : column },
  );
}

/**
 * The `server` command: a FedAvg server that clients connect to.
 *
 * @param argv Arguments after `server`.
 * @param out Where lines go.
 * @returns The exit status.
 * @throws {UsageError} On bad flags.
 */
export async function serverCommand(argv: string[], out: Output): Promise<number> {
  const values = parseFlags(argv, SERVER_FLAGS);
  if (values.help) {
    out.line(formatHelp(
      "fedgpu server [options]",
      "A FedAvg server: clients connect over the Noise secure channel, train on their own " +
        "data,\nand send updates; the global model improves round by round.",
      SERVER_FLAGS,
    ));
    return 0;
  }
  const rounds = numberFlag(values, "rounds", 100, "int>0");
  const target = numberFlag(values, "target", Infinity, "prob");
  const fraction = numberFlag(values, "fraction", 0.1, "prob");
  const minClients = numberFlag(values, "min-clients", 1, "int>0");
  const minUpdates = numberFlag(values, "min-updates", 1, "int>0");
  const roundTimeout = numberFlag(values, "round-timeout", 120, ">0");
  const maxAttempts = numberFlag(values, "max-attempts", 10, "int>0");
  const epochs = numberFlag(values, "epochs", 1, "int>0");
  const batchSize = numberFlag(values, "batch-size", 10, "int>0");
  const lr = numberFlag(values, "lr", PAPER_2NN_LR, ">0");
  const seed = numberFlag(values, "seed", 0, "int>=0");
  const port = numberFlag(values, "port", 3000, "int>=0");
  const wsPort = values["ws-port"] === undefined
    ? null
    : numberFlag(values, "ws-port", 0, "int>=0");
  const choice = strategyFlags(values);
  const hidden = parseHidden(_string(values, "hidden") ?? "200,200");
  const backend = choiceFlag(values, "backend", ["cpu", "auto", "webgpu"] as const);
  const parallelFlag = values.parallel === undefined
    ? null
    : numberFlag(values, "parallel", 1, "int>0");
  const checkpoint = _string(values, "checkpoint");
  if (values.resume && checkpoint === undefined) {
    throw new UsageError("--resume needs --checkpoint PATH");
  }
  const keyFile = _string(values, "key-file") ?? ".fedgpu/server_key.json";
  const fingerprintOut = _string(values, "fingerprint-out") ?? ".fedgpu/server.fingerprint";
  const metricsOut = _string(values, "metrics-out");
  const saveModel = _string(values, "save-model");
  const allowed = values["allow-client"] as string[] | undefined;

  const data = await _serverData(values);
  const model = mlp(data.features, hidden, data.classes, seed);
  const { key, created } = await loadOrCreateKeyFile(keyFile);
  await Deno.writeTextFile(fingerprintOut, key.fingerprint + "\n");
  out.line(`${created ? "created" : "loaded"} server key ${key.fingerprint} (${keyFile})`);
  const evalBackend = await createBackend(backend);
  const parallel = parallelFlag ?? (onWasmEngine(evalBackend) ? defaultParallel() : 1);
  const hostname = _string(values, "host") ?? "127.0.0.1";
  const listeners = [listenTcp({ hostname, port })];
  if (wsPort !== null) listeners.push(listenWebSocket({ hostname, port: wsPort, path: "/fedgpu" }));
  const server = await FederatedServer.start({
    model,
    staticKey: key,
    listeners,
    rounds,
    target,
    fraction,
    minClients,
    minUpdates,
    maxAttempts,
    roundTimeoutMs: roundTimeout * 1000,
    epochs,
    batchSize,
    lr,
    seed,
    strategy: choice.strategy,
    strategyOptions: choice.strategyOptions,
    pipeline: choice.pipeline,
    backend: evalBackend,
    parallel,
    ...(data.test === undefined ? {} : { test: data.test }),
    ...(checkpoint === undefined ? {} : { checkpoint, resume: values.resume === true }),
    ...(metricsOut === undefined ? {} : { metricsOut }),
    ...(allowed === undefined ? {} : { allowedClients: allowed }),
    clientEval: values["client-eval"] === true,
    log: (line) => out.line(line),
  });
  const resumedAt = server.round;
  out.line(`listening on ${server.hostname}:${server.port}`);
  for (const address of server.addresses.slice(1)) out.line(`listening on ${address}`);
  out.line(
    `model ${model} (${model.params.length} parameters); ${rounds} rounds, C=${fraction}, ` +
      `E=${epochs}, B=${batchSize}, lr=${lr}, seed ${seed}; evaluation on ${data.name} ` +
      `(${evalBackend.kind}${
        parallel > 1 && data.test !== undefined ? `, ${parallel} workers` : ""
      })` +
      (resumedAt > 0 ? `; resumed after round ${resumedAt}` : ""),
  );
  if (server.round < rounds) out.line(`waiting for ${minClients} client(s)`);
  const started = performance.now();
  let last: ServerRoundRecord | undefined;
  let roundsToTarget: number | null = null;
  const history = server.history;
  for (const record of history) {
    if (
      roundsToTarget === null && typeof record.accuracy === "number" && record.accuracy >= target
    ) {
      roundsToTarget = record.round as number;
    }
  }
  let best = Math.max(0, ...history.map((record) => Number(record.accuracy) || 0));
  try {
    for await (const record of server.rounds()) {
      last = record;
      best = Math.max(best, record.accuracy || 0);
      if (roundsToTarget === null && record.accuracy >= target) roundsToTarget = record.round;
      out.line(formatServerRound(record, (performance.now() - started) / 1000));
    }
  } finally {
    evalBackend.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  if (saveModel !== undefined) {
    await Deno.writeFile(saveModel, modelToBytes(server.model));
    out.line(`saved the model to ${saveModel}`);
  }
  const final = server.history.at(-1);
  const accuracy = typeof final?.accuracy === "number" ? final.accuracy : NaN;
  const loss = typeof final?.loss === "number" ? final.loss : NaN;
  for (
    const line of formatTable("server summary", [
      ["rounds run", `${server.round}${resumedAt > 0 ? ` (${resumedAt} before resuming)` : ""}`],
      [
        Number.isFinite(target) ? `first round at ${percent(target)}` : "target",
        Number.isFinite(target) ? String(roundsToTarget ?? "not reached") : "none",
      ],
      ["final test accuracy", Number.isNaN(accuracy) ? "n/a" : percent(accuracy)],
      ["best test accuracy", percent(best)],
      ["wall time", `${seconds.toFixed(1)} s`],
    ])
  ) out.line(line);
  out.line(JSON.stringify({
    name: "server",
    rounds: server.round,
    accuracy: Number.isNaN(accuracy) ? null : accuracy,
    loss: Number.isNaN(loss) ? null : loss,
    target: Number.isFinite(target) ? target : null,
    rounds_to_target: roundsToTarget,
    fraction,
    epochs,
    batch_size: batchSize,
    lr,
    seed,
    params: model.params.length,
    last_round_clients: last?.clients.length ?? null,
    backend: evalBackend.kind,
    adapter: evalBackend.device,
    seconds: Number(seconds.toFixed(2)),
  }));
  return 0;
}

const CLIENT_FLAGS: Record<string, FlagSpec> = {
  host: { type: "string", value: "H", help: "Server address (default 127.0.0.1)" },
  port: { type: "string", value: "P", help: "Server port (default 3000)" },
  url: {
    type: "string",
    value: "URL",
    help: "Connect over WebSocket instead of TCP, e.g. ws://127.0.0.1:3001/fedgpu",
  },
  fingerprint: { type: "string", value: "FP", help: "The server key's fingerprint to pin" },
  "fingerprint-file": {
    type: "string",
    value: "PATH",
    help: "Read the fingerprint from PATH (default .fedgpu/server.fingerprint)",
  },
  data: { type: "string", value: "DATA", help: "mnist or a CSV file (default mnist)" },
  "label-column": { type: "string", value: "COL", help: "Label column of a CSV (default last)" },
  "mnist-dir": { type: "string", value: "DIR", help: "Read MNIST IDX files from DIR" },
  shard: {
    type: "string",
    value: "LIST",
    help: "Which shards to run as clients: 3, 0-9 or 0,4,7 (default 0)",
  },
  of: { type: "string", value: "K", help: "Number of shards (default 100 for mnist, 1 for CSV)" },
  partition: { type: "string", value: "P", help: "iid | shards | dirichlet (default iid)" },
  alpha: { type: "string", value: "A", help: "Dirichlet concentration (default 0.5)" },
  seed: { type: "string", value: "S", help: "Seed of the partition, as the server's (default 0)" },
  id: { type: "string", value: "ID", help: "Client id (one shard only; default the shard)" },
  backend: { type: "string", value: "B", help: "cpu | auto | webgpu (default cpu)" },
  "key-file": { type: "string", value: "PATH", help: "Client static key (default: a new one)" },
  "max-retries": {
    type: "string",
    value: "N",
    help: "Failed connection attempts in a row before giving up (default 20)",
  },
  "retry-initial": { type: "string", value: "MS", help: "First reconnect delay (default 250)" },
  "retry-max": { type: "string", value: "MS", help: "Longest reconnect delay (default 30000)" },
  quiet: { type: "boolean", short: "q", help: "Print only errors and the summary line" },
  help: { type: "boolean", short: "h", help: "Show this help" },
};

/**
 * Wraps a backend so that the clients of one process train and evaluate one at a time (a GPU
 * backend's buffers and queue serve one job at once; the CPU engine runs one anyway).
 */
function _oneAtATime(backend: Backend): Backend {
  const queue = new JobQueue();
  return {
    kind: backend.kind,
    device: backend.device,
    train: (model, data, options) => queue.run(() => backend.train(model, data, options)),
    evaluate: (model, data) => queue.run(() => backend.evaluate(model, data)),
    createWeightedSum: () => backend.createWeightedSum(),
    dispose: () => backend.dispose(),
  };
}

/**
 * The `client` command: one or more clients, each with its shard of the data.
 *
 * @param argv Arguments after `client`.
 * @param out Where lines go.
 * @returns The exit status: 0 when the server ended training, 1 on a client failure.
 * @throws {UsageError} On bad flags.
 */
export async function clientCommand(argv: string[], out: Output): Promise<number> {
  const values = parseFlags(argv, CLIENT_FLAGS);
  if (values.help) {
    out.line(formatHelp(
      "fedgpu client [options]",
      "Federated clients: each connects to the server, pins its key, trains on its own shard " +
        "of the data\nwhen sampled, and reconnects with backoff after failures.",
      CLIENT_FLAGS,
    ));
    return 0;
  }
  const source = _string(values, "data") ?? "mnist";
  const of = numberFlag(values, "of", source === "mnist" ? 100 : 1, "int>0");
  const shards = parseShards(_string(values, "shard") ?? "0", of);
  const scheme: PartitionScheme = choiceFlag(values, "partition", PARTITIONS);
  const alpha = numberFlag(values, "alpha", 0.5, ">0");
  const seed = numberFlag(values, "seed", 0, "int>=0");
  const port = numberFlag(values, "port", 3000, "int>0");
  const backendKind: BackendKind = choiceFlag(
    values,
    "backend",
    ["cpu", "auto", "webgpu"] as const,
  );
  const maxAttempts = numberFlag(values, "max-retries", 20, "int>=0");
  const initialMs = numberFlag(values, "retry-initial", 250, ">0");
  const maxMs = numberFlag(values, "retry-max", 30_000, ">0");
  const id = _string(values, "id");
  if (id !== undefined && shards.length > 1) {
    throw new UsageError("--id names one client; with several shards the ids are the shards");
  }
  const keyFile = _string(values, "key-file");
  if (keyFile !== undefined && shards.length > 1) {
    throw new UsageError("--key-file holds one client's key; run one shard per key file");
  }
  let serverFingerprint = _string(values, "fingerprint");
  if (serverFingerprint === undefined) {
    const path = _string(values, "fingerprint-file") ?? ".fedgpu/server.fingerprint";
    try {
      serverFingerprint = (await Deno.readTextFile(path)).trim();
    } catch {
      throw new UsageError(
        `Pin the server: pass --fingerprint (the server prints it) or --fingerprint-file; ` +
          `${path} could not be read`,
      );
    }
  }
  const quiet = values.quiet === true;
  const log = quiet ? () => {} : (line: string) => out.line(line);

  let data: Dataset;
  if (source === "mnist") {
    const dir = _string(values, "mnist-dir");
    data = (await loadMnist(dir === undefined ? {} : { dir })).train;
  } else {
    data = await _loadCsv(values, source);
  }
  const parts = of === 1
    ? [Uint32Array.from({ length: data.n }, (_, i) => i)]
    : partition(data.y, { scheme, clients: of, alpha }, new Rng(seed, [STREAM.partition]));
  const clients = shards.map((shard) => ({
    id: id ?? String(shard),
    data: subset(data, parts[shard]!),
  }));
  const staticKey = keyFile === undefined ? undefined : (await loadOrCreateKeyFile(keyFile)).key;
  const url = _string(values, "url");
  if (url !== undefined) {
    try {
      new URL(url);
      if (!/^wss?:$/.test(new URL(url).protocol)) throw new Error();
    } catch {
      throw new UsageError(`--url must be a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
    }
  }
  const where = url ?? `port ${port}`;
  const backend = _oneAtATime(await createBackend(backendKind));
  let failed = 0;
  try {
    const results = await Promise.allSettled(clients.map((client) => {
      log(`client ${client.id}: ${client.data.n} examples; connecting to ${where}`);
      return runClient({
        id: client.id,
        data: client.data,
        hostname: _string(values, "host") ?? "127.0.0.1",
        port,
        ...(url === undefined ? {} : { dial: () => dialWebSocket(url) }),
        serverFingerprint,
        backend,
        ...(staticKey === undefined ? {} : { staticKey }),
        retry: { initialMs, maxMs, maxAttempts },
        log,
      });
    }));
    for (const [i, result] of results.entries()) {
      const client = clients[i]!;
      if (result.status === "fulfilled") {
        const summary = result.value;
        log(
          `client ${client.id}: done (${summary.reason}); trained ${summary.trained} tasks, ` +
            `sent ${summary.updates} updates over ${summary.connections} connection(s)`,
        );
      } else {
        failed++;
        const error = result.reason;
        console.error(
          `client ${client.id}: ${error instanceof ClientError ? error.message : String(error)}`,
        );
      }
    }
  } finally {
    backend.dispose();
  }
  out.line(JSON.stringify({ name: "client", clients: clients.length, failed }));
  return failed === 0 ? 0 : 1;
}
