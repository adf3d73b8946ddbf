/**
 * The federated-learning server: many concurrent clients over the Noise secure channel, on
 * any transports (TCP, WebSocket).
 *
 * Clients connect and introduce themselves; each round the server's {@linkcode RoundDriver}
 * samples a fraction C of the connected clients (seeded), runs the round's workflow (by
 * default: send the global model, collect the updates one at a time in ascending client-key
 * order), folds them into the strategy, evaluates the new model, and the server checkpoints
 * it atomically (the strategy's state included) and logs the round. A client that drops or
 * misses the deadline is left out of that round; a round with fewer than `minUpdates` updates
 * is retried with a fresh sample, never faked.
 *
 * Random streams are those of {@linkcode simulate}: with clients `0` ... `K-1` holding the
 * simulation's partitions, the networked run ends with the simulation's bits.
 *
 * @module
 */

import { type Backend, type BackendKind, createBackend } from "../compute/backend.ts";
import type { Dataset } from "../data/dataset.ts";
import type { SecureChannel } from "../net/channel.ts";
import { ChannelError } from "../net/errors.ts";
import { fingerprint, type StaticKeyPair } from "../net/identity.ts";
import { MessageError } from "../net/message.ts";
import { handshakeServer } from "../net/secure.ts";
import { type Connection, type Listener, listenTcp } from "../net/transport.ts";
import type { Model } from "../nn/model.ts";
import { type Checkpoint, CheckpointError, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { ClientConnection } from "./connection.ts";
import { LOCAL_TRAINING_FIELDS, type LocalTraining, localTraining } from "./local.ts";
import { checkPoolBackend, TrainerPool } from "./parallel.ts";
import { type FlMessage, receiveFl, sendFl } from "./protocol.ts";
import { roundRecordToJson, type ServerRoundRecord } from "./records.ts";
import { RoundDriver, type RoundSettings, type Workflow } from "./round.ts";
import { createStrategy, type StrategyOptions } from "./strategies/create.ts";
import type { Strategy } from "./strategies/strategy.ts";
import { createPipeline, type StageSpec, type UpdateStage } from "./update.ts";

export { type DroppedClient, RoundError as ServerError } from "./round.ts";
export { formatServerRound, roundRecordToJson, type ServerRoundRecord } from "./records.ts";

/** Options of {@linkcode FederatedServer.start}. */
export interface ServerOptions extends Partial<LocalTraining> {
  /** The initial global model (replaced by the checkpoint's when resuming). */
  model: Model;
  /** The server's persistent static key (see `loadOrCreateKeyFile`). */
  staticKey: StaticKeyPair;
  /**
   * Where clients connect (default one TCP listener on `hostname`:`port`); the server closes
   * them when it closes.
   */
  listeners?: Listener[];
  /** Address of the default TCP listener (default `127.0.0.1`; `0.0.0.0` for every interface). */
  hostname?: string;
  /** Port of the default TCP listener (default 3000; 0 picks a free one). */
  port?: number;
  /** Rounds to run in all, counting those of a resumed checkpoint (default 100). */
  rounds?: number;
  /** Fraction C of the connected clients sampled each round, in (0, 1] (default 0.1). */
  fraction?: number;
  /** Connected clients to wait for before a round starts (default 1). */
  minClients?: number;
  /** Fewest updates a round needs; with fewer it is retried (default 1). */
  minUpdates?: number;
  /** Attempts at one round before giving up with a `ServerError` (default 10). */
  maxAttempts?: number;
  /** How long a round waits for its clients to train, in milliseconds (default 120 s). */
  roundTimeoutMs?: number;
  /** How long one client's update may take to arrive once collected, in ms (default 60 s). */
  uploadTimeoutMs?: number;
  /** Seed of client sampling and local shuffling (default 0). */
  seed?: number;
  /**
   * The aggregation strategy: a strategy, or a name of `createStrategy` built on the
   * backend's weighted sum (default `fedavg`).
   */
  strategy?: Strategy | string;
  /** Hyperparameters of a strategy given by name. */
  strategyOptions?: StrategyOptions;
  /** The update pipeline every client must apply (default none). */
  pipeline?: StageSpec[];
  /** The round's workflow (default train → collect). */
  workflow?: Workflow;
  /** The engine that evaluates and aggregates (default `cpu`). */
  backend?: Backend | BackendKind;
  /** Held-out data scored after every round. */
  test?: Dataset;
  /**
   * Workers that score `test` after every round, its batches split between them (default 1:
   * the backend scores it). More than 1 needs the CPU Wasm engine as the backend and read
   * permission for `lib/fl/`; the scores keep their bits.
   */
  parallel?: number;
  /** Stop once the test accuracy reaches this. */
  target?: number;
  /** Ask the round's clients to score the new model on their own data after each round. */
  clientEval?: boolean;
  /** Checkpoint file, written atomically after every round. */
  checkpoint?: string;
  /** Continue from `checkpoint` when the file exists. */
  resume?: boolean;
  /** File that receives one JSON line per round. */
  metricsOut?: string;
  /** Fingerprints of the client keys allowed in (default: every client). */
  allowedClients?: Iterable<string>;
  /** The most clients connected at once (default 10,000). */
  maxClients?: number;
  /** How long a client has to complete the handshake and say hello, in ms (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Where log lines go (default `console.log`). */
  log?: (line: string) => void;
}

interface _Settings extends RoundSettings {
  rounds: number;
  minClients: number;
  target: number;
  maxClients: number;
  handshakeTimeoutMs: number;
}

function _check(condition: boolean, message: string): void {
  if (!condition) throw new RangeError(message);
}

function _settings(options: ServerOptions): _Settings {
  const settings: _Settings = {
    rounds: options.rounds ?? 100,
    fraction: options.fraction ?? 0.1,
    minClients: options.minClients ?? 1,
    minUpdates: options.minUpdates ?? 1,
    maxAttempts: options.maxAttempts ?? 10,
    roundTimeoutMs: options.roundTimeoutMs ?? 120_000,
    uploadTimeoutMs: options.uploadTimeoutMs ?? 60_000,
    training: localTraining(options),
    pipeline: options.pipeline ?? [],
    seed: options.seed ?? 0,
    target: options.target ?? Infinity,
    maxClients: options.maxClients ?? 10_000,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
  };
  const { rounds, fraction, minClients, minUpdates, maxAttempts } = settings;
  const positiveInt = (value: number) => Number.isInteger(value) && value >= 1;
  _check(Number.isInteger(rounds) && rounds >= 0, `Rounds must be a non-negative integer`);
  _check(fraction > 0 && fraction <= 1, `Client fraction must be in (0, 1], got ${fraction}`);
  _check(positiveInt(minClients), `minClients must be a positive integer, got ${minClients}`);
  _check(positiveInt(minUpdates), `minUpdates must be a positive integer, got ${minUpdates}`);
  _check(positiveInt(maxAttempts), `maxAttempts must be a positive integer, got ${maxAttempts}`);
  _check(Number.isSafeInteger(settings.seed) && settings.seed >= 0, `Seed must be an integer`);
  _check(settings.roundTimeoutMs > 0, `Round timeout must be positive`);
  _check(settings.uploadTimeoutMs > 0, `Upload timeout must be positive`);
  _check(positiveInt(settings.maxClients), `maxClients must be a positive integer`);
  return settings;
}

/**
 * A federated server over the secure channel.
 *
 * @example Usage
 * ```ts ignore
 * const server = await FederatedServer.start({ model: mnist2nn(0), staticKey: key, test });
 * console.log(`pin ${server.fingerprint} on port ${server.port}`);
 * for await (const record of server.rounds()) console.log(record.round, record.accuracy);
 * ```
 */
export class FederatedServer {
  /** The server key's fingerprint, for clients to pin. */
  readonly fingerprint: string;
  /** The address of the first listener. */
  readonly hostname: string;
  /** The port of the first listener. */
  readonly port: number;
  /** Every listener's address, such as `tcp://127.0.0.1:3000` or `ws://127.0.0.1:3001/`. */
  readonly addresses: readonly string[];
  #options: ServerOptions;
  #settings: _Settings;
  #listeners: Listener[];
  #model: Model;
  #round: number;
  #task: number;
  #records: Record<string, unknown>[];
  #clients = new Map<string, ClientConnection>();
  /** Connections still in their handshake or hello, with their admission. */
  #admitting = new Map<Connection, Promise<void>>();
  #allowed: Set<string> | null;
  #clientWaiters: (() => void)[] = [];
  #backend: Backend;
  #ownBackend: boolean;
  /** Workers scoring the held-out data, where `parallel` asks for them. */
  #scorers: TrainerPool | null;
  #strategy: Strategy;
  #pipeline: UpdateStage[];
  #driver: RoundDriver;
  #log: (line: string) => void;
  #closed = false;
  #accepting: Promise<void>;

  private constructor(
    options: ServerOptions,
    settings: _Settings,
    listeners: Listener[],
    backend: Backend,
    scorers: TrainerPool | null,
    strategy: Strategy,
    state: { model: Model; round: number; task: number; records: Record<string, unknown>[] },
  ) {
    this.#options = options;
    this.#settings = settings;
    this.#listeners = listeners;
    this.hostname = listeners[0]!.hostname;
    this.port = listeners[0]!.port;
    this.addresses = listeners.map((listener) => listener.address);
    this.fingerprint = options.staticKey.fingerprint;
    this.#backend = backend;
    this.#ownBackend = typeof options.backend !== "object";
    this.#scorers = scorers;
    this.#strategy = strategy;
    this.#pipeline = createPipeline(settings.pipeline);
    this.#model = state.model;
    this.#round = state.round;
    this.#task = state.task;
    this.#records = state.records;
    this.#log = options.log ?? ((line) => console.log(line));
    // Read once: the option may be a one-shot iterable.
    this.#allowed = options.allowedClients === undefined ? null : new Set(options.allowedClients);
    const test = options.test;
    this.#driver = new RoundDriver({
      model: this.#model,
      strategy,
      ...(options.workflow === undefined ? {} : { workflow: options.workflow }),
      settings,
      candidates: () =>
        [...this.#clients.values()].sort((a, b) =>
          a.key - b.key || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
        ),
      waitForCandidates: (count) => this.waitForClients(count),
      minCandidates: settings.minClients,
      evaluate: (model) =>
        test === undefined
          ? Promise.resolve({ loss: NaN, accuracy: NaN })
          : this.#scorers !== null
          ? this.#scorers.evaluate(model.params)
          : this.#backend.evaluate(model, test),
      clientEval: options.clientEval ?? false,
      nextTask: () => ++this.#task,
      log: this.#log,
    });
    this.#accepting = Promise.all(listeners.map((listener) => this.#acceptLoop(listener)))
      .then(() => {});
  }

  /**
   * Loads the checkpoint when resuming, starts listening and admitting clients.
   *
   * @param options The model, key, listeners and the run's settings.
   * @returns The running server; iterate {@linkcode FederatedServer.rounds} to train.
   * @throws {RangeError} If a setting is out of range.
   * @throws {TypeError} If the strategy's name is unknown.
   * @throws {CheckpointError} If the checkpoint is unreadable or belongs to other settings.
   */
  static async start(options: ServerOptions): Promise<FederatedServer> {
    const settings = _settings(options);
    createPipeline(settings.pipeline);
    const parallel = options.parallel ?? 1;
    _check(
      Number.isInteger(parallel) && parallel >= 1,
      `Parallel workers must be a positive integer, got ${parallel}`,
    );
    const backend = typeof options.backend === "object"
      ? options.backend
      : await createBackend(options.backend ?? "cpu");
    const ownBackend = typeof options.backend !== "object";
    let strategy: Strategy | null = null;
    let scorers: TrainerPool | null = null;
    let listeners: Listener[] = [];
    try {
      strategy = typeof options.strategy === "object" ? options.strategy : createStrategy(
        options.strategy ?? "fedavg",
        options.strategyOptions,
        backend.createWeightedSum(),
      );
      let state = {
        model: options.model,
        round: 0,
        task: 0,
        records: [] as Record<string, unknown>[],
      };
      if (options.resume && options.checkpoint !== undefined) {
        const saved = await loadCheckpoint(options.checkpoint);
        if (saved !== null) {
          _checkCompatible(saved, options, settings, strategy);
          options.model.params.set(saved.model.params);
          try {
            strategy.loadState?.(saved.strategy.state);
          } catch (error) {
            throw new CheckpointError(
              "corrupt",
              `${options.checkpoint} holds an unusable strategy state: ${(error as Error).message}`,
              { cause: error },
            );
          }
          state = {
            model: options.model,
            round: saved.round,
            task: saved.sampler.task,
            records: saved.records,
          };
        }
      }
      if (options.metricsOut !== undefined) {
        // The metrics file restarts from the checkpoint's history: no line lost or doubled.
        const lines = state.records.map((record) => JSON.stringify(record) + "\n").join("");
        const temporary = `${options.metricsOut}.${Deno.pid}.tmp`;
        await Deno.writeTextFile(temporary, lines);
        await Deno.rename(temporary, options.metricsOut);
      }
      if (parallel > 1 && options.test !== undefined) {
        checkPoolBackend(backend, "scoring");
        scorers = new TrainerPool(parallel, options.model, { test: options.test });
      }
      listeners = options.listeners ?? [
        listenTcp({ hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 3000 }),
      ];
      if (listeners.length === 0) throw new RangeError("A server needs at least one listener");
      return new FederatedServer(options, settings, listeners, backend, scorers, strategy, state);
    } catch (error) {
      for (const listener of listeners) await listener.close();
      scorers?.close();
      if (typeof options.strategy !== "object") strategy?.dispose?.();
      if (ownBackend) backend.dispose();
      throw error;
    }
  }

  /** The global model (updated in place after every round). */
  get model(): Model {
    return this.#model;
  }

  /** The aggregation strategy. */
  get strategy(): Strategy {
    return this.#strategy;
  }

  /** Rounds completed so far (a resumed run counts the checkpoint's). */
  get round(): number {
    return this.#round;
  }

  /** Clients connected now. */
  get connected(): number {
    return this.#clients.size;
  }

  /** The records of every completed round, as JSON-ready maps. */
  get history(): readonly Record<string, unknown>[] {
    return this.#records;
  }

  /**
   * Resolves once at least `count` clients are connected.
   *
   * @param count How many.
   */
  async waitForClients(count: number): Promise<void> {
    while (this.#clients.size < count) {
      if (this.#closed) throw new Error("The server is closed");
      await new Promise<void>((resolve) => this.#clientWaiters.push(resolve));
    }
  }

  async #acceptLoop(listener: Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        if (this.#clients.size + this.#admitting.size >= this.#settings.maxClients) {
          this.#log(`refused a connection: ${this.#settings.maxClients} clients already`);
          conn.close();
          continue;
        }
        const admission = this.#admit(conn).finally(() => this.#admitting.delete(conn));
        this.#admitting.set(conn, admission);
      }
    } catch (error) {
      if (!this.#closed) this.#log(`listener failed: ${(error as Error).message}`);
    }
  }

  async #admit(conn: Connection): Promise<void> {
    const where = conn.remote;
    const refuse = (message: string) => {
      if (!this.#closed) this.#log(`refused ${where}: ${message}`);
    };
    const params = this.#model.params.length;
    let channel: SecureChannel;
    try {
      channel = await handshakeServer(conn, {
        staticKey: this.#options.staticKey,
        handshakeTimeoutMs: this.#settings.handshakeTimeoutMs,
        // The largest message a client may send is an update: its floats plus the envelope.
        maxMessageBytes: 4 * params + 65_536,
        idleTimeoutMs: Infinity,
      });
    } catch (error) {
      refuse((error as Error).message);
      return;
    }
    // The allow-list is checked here rather than inside the handshake so that a refused client
    // learns why (`unknown-client`) instead of retrying a silent hang-up; it is answered after
    // its first message, so that its hello does not race the hang-up.
    const key = channel.remoteStaticKey;
    const stranger = this.#allowed === null ||
        (key !== null && this.#allowed.has(fingerprint(key)))
      ? null
      : `Client key ${key === null ? "(none)" : fingerprint(key)} is not on the allow-list`;
    let hello: FlMessage;
    try {
      hello = await _withTimeout(receiveFl(channel), this.#settings.handshakeTimeoutMs, () => {
        channel.close().catch(() => {});
        return new ChannelError("timeout", "No hello in time");
      });
    } catch (error) {
      refuse(stranger ?? (error as Error).message);
      if (stranger !== null) await _sendError(channel, "unknown-client", stranger);
      else if (error instanceof MessageError) {
        await _sendError(channel, error.code, error.message);
      }
      await channel.close().catch(() => {});
      return;
    }
    if (stranger !== null) {
      refuse(stranger);
      await _sendError(channel, "unknown-client", stranger);
      await channel.close();
      return;
    }
    if (hello.type !== "hello") {
      const message = `Expected a hello message, got ${hello.type}`;
      refuse(message);
      await _sendError(channel, "unexpected", message);
      await channel.close();
      return;
    }
    if (this.#closed) {
      await sendFl(channel, { type: "bye", reason: "the server is shutting down" }).catch(() => {});
      await channel.close();
      return;
    }
    const missing = this.#pipeline.find((stage) => !hello.stages.includes(stage.id));
    if (missing !== undefined) {
      const message = `This run requires update stage ${missing.id}, which the client lacks`;
      refuse(message);
      await _sendError(channel, "unsupported-stage", message);
      await channel.close();
      return;
    }
    const connection = new ClientConnection(
      hello,
      conn,
      channel,
      (closed, reason) => this.#onClose(closed, reason),
      this.#log,
      this.#settings.handshakeTimeoutMs,
    );
    const previous = this.#clients.get(hello.id);
    this.#admitting.delete(conn);
    this.#clients.set(hello.id, connection);
    if (previous !== undefined) {
      // The newest connection of an id wins: a client reconnecting after a failure the server
      // has not noticed yet replaces its dead connection, and a live one (another client with
      // the same id) is told why, so that it does not reconnect and take the id back.
      void previous.fail("duplicate-id", `A new connection with id ${hello.id} replaced this one`);
    }
    if (
      !(await connection.send({ type: "welcome", round: this.#round + 1, key: connection.key }))
    ) {
      return;
    }
    for (const wake of this.#clientWaiters.splice(0)) wake();
    connection.readLoop().catch((error) => connection.close(String(error)));
  }

  #onClose(connection: ClientConnection, reason: string): void {
    if (this.#clients.get(connection.id) === connection) this.#clients.delete(connection.id);
    if (!this.#closed) this.#log(`client ${connection.id} closed: ${reason}`);
  }

  /**
   * Runs the remaining rounds, yielding a record after each; the server says goodbye to its
   * clients and closes when the rounds are done, the target is reached, or the loop is left.
   *
   * @returns An async iterator of round records.
   * @throws {ServerError} If a round gets too few updates in every attempt.
   */
  async *rounds(): AsyncGenerator<ServerRoundRecord> {
    let reason = "training finished";
    try {
      const { rounds, target } = this.#settings;
      const lastAccuracy = this.#records.at(-1)?.accuracy;
      if (typeof lastAccuracy === "number" && lastAccuracy >= target) return;
      while (this.#round < rounds) {
        const started = performance.now();
        const outcome = await this.#driver.run(this.#round + 1);
        const record: ServerRoundRecord = {
          round: outcome.round,
          attempts: outcome.attempts,
          accuracy: outcome.metrics.accuracy,
          loss: outcome.metrics.loss,
          trainLoss: outcome.trainLoss,
          clients: outcome.delivered.map((client) => client.id),
          sampled: outcome.sampled.map((client) => client.id),
          dropped: outcome.dropped,
          examples: outcome.examples,
          connected: outcome.connected,
          clientAccuracy: outcome.clientMetrics.accuracy,
          clientLoss: outcome.clientMetrics.loss,
          seconds: (performance.now() - started) / 1000,
        };
        await this.#commit(record);
        yield record;
        if (record.accuracy >= target) break;
      }
    } catch (error) {
      reason = `training failed: ${(error as Error).message}`;
      throw error;
    } finally {
      await this.close(reason);
    }
  }

  /** Makes a finished round durable: checkpoint, then metrics line. */
  async #commit(record: ServerRoundRecord): Promise<void> {
    const json = roundRecordToJson(record);
    this.#records.push(json);
    this.#round = record.round;
    if (this.#options.checkpoint !== undefined) {
      await saveCheckpoint(this.#options.checkpoint, {
        round: this.#round,
        model: this.#model,
        sampler: { seed: this.#settings.seed, task: this.#task },
        strategy: {
          name: this.#strategy.name,
          config: { ...this.#strategy.config },
          state: this.#strategy.saveState?.() ?? {},
        },
        config: _runConfig(this.#options, this.#settings),
        records: this.#records,
      });
    }
    if (this.#options.metricsOut !== undefined) {
      await Deno.writeTextFile(this.#options.metricsOut, JSON.stringify(json) + "\n", {
        append: true,
      });
    }
  }

  /**
   * Says goodbye to every client and stops listening. Idempotent.
   *
   * @param reason The goodbye's reason, shown by clients.
   */
  async close(reason = "the server is shutting down"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#listeners.map((listener) => listener.close()));
    for (const wake of this.#clientWaiters.splice(0)) wake();
    await this.#accepting;
    // Connections still in their handshake or hello are cut off rather than left to time out.
    const admitting = [...this.#admitting];
    for (const [conn] of admitting) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await Promise.all([...this.#clients.values()].map(async (client) => {
      await client.send({ type: "bye", reason });
      client.close("server closed");
    }));
    await Promise.all(admitting.map(([, admission]) => admission));
    this.#scorers?.close();
    if (typeof this.#options.strategy !== "object") this.#strategy.dispose?.();
    if (this.#ownBackend) this.#backend.dispose();
  }
}

/** The settings a checkpoint must share with the run that resumes it. */
function _runConfig(options: ServerOptions, settings: _Settings): Checkpoint["config"] {
  const config: Checkpoint["config"] = {
    params: options.model.params.length,
    architecture: String(options.model),
    fraction: settings.fraction,
    seed: settings.seed,
    pipeline: JSON.stringify(settings.pipeline),
  };
  for (const field of LOCAL_TRAINING_FIELDS) config[field] = settings.training[field];
  return config;
}

function _checkCompatible(
  saved: Checkpoint,
  options: ServerOptions,
  settings: _Settings,
  strategy: Strategy,
): void {
  const mismatch = (field: string, was: unknown, is: unknown) =>
    new CheckpointError(
      "mismatch",
      `${options.checkpoint} was written with ${field} ${JSON.stringify(was)}` +
        `, this run has ${JSON.stringify(is)}; resume with the same settings or start ` +
        `a new checkpoint`,
    );
  const want = _runConfig(options, settings);
  for (const [field, value] of Object.entries(want)) {
    if (saved.config[field] !== value) throw mismatch(field, saved.config[field], value);
  }
  if (saved.strategy.name !== strategy.name) {
    throw mismatch("strategy", saved.strategy.name, strategy.name);
  }
  const config = strategy.config;
  for (const field of new Set([...Object.keys(config), ...Object.keys(saved.strategy.config)])) {
    if (saved.strategy.config[field] !== config[field]) {
      throw mismatch(`strategy ${field}`, saved.strategy.config[field], config[field]);
    }
  }
}

async function _sendError(channel: SecureChannel, code: string, message: string): Promise<void> {
  await sendFl(channel, { type: "error", code, message }).catch(() => {});
}

function _withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
