/**
 * The federated-learning server: FedAvg over TCP with many concurrent clients.
 *
 * Clients connect through the Noise secure channel and introduce themselves; each round the
 * server samples a fraction C of the connected clients (seeded), sends them the global model,
 * collects the updates of those that finish before the round's deadline one at a time in
 * ascending client-key order, folds them into the strategy's streaming sum (O(parameters)
 * memory however many clients), evaluates the new model, checkpoints it atomically and logs
 * the round. A client that drops or misses the deadline is left out of that round; a round
 * with fewer than `minUpdates` updates is retried with a fresh sample, never faked.
 *
 * Random streams are those of {@linkcode simulate}: sampling `[2, round]` (`[2, round,
 * attempt]` for a retry), local shuffling `[3, round, client key]`; with clients `0` ... `K-1`
 * holding the simulation's partitions, the networked run ends with the simulation's bits.
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
import { modelToBytes } from "../nn/codec.ts";
import type { Model } from "../nn/model.ts";
import { type Checkpoint, CheckpointError, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import {
  clientKey,
  type EvaluationMessage,
  type FlMessage,
  receiveFl,
  sendFl,
  type UpdateMessage,
} from "./protocol.ts";
import { sampleClients, STREAM } from "./simulate.ts";
import { checkPoolBackend, TrainerPool } from "./parallel.ts";
import type { Strategy } from "./strategy.ts";

/** Options of {@linkcode FederatedServer.start}. */
export interface ServerOptions {
  /** The initial global model (replaced by the checkpoint's when resuming). */
  model: Model;
  /** The server's persistent static key (see `loadOrCreateKeyFile`). */
  staticKey: StaticKeyPair;
  /** Address to listen on (default `127.0.0.1`; `0.0.0.0` for every interface). */
  hostname?: string;
  /** Port to listen on (default 3000; 0 picks a free one, see {@linkcode FederatedServer.port}). */
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
  /** Local epochs E (default 1). */
  epochs?: number;
  /** Local batch size B (default 10). */
  batchSize?: number;
  /** Local learning rate (default 0.1). */
  lr?: number;
  /** Local SGD momentum (default 0). */
  momentum?: number;
  /** Local weight decay (default 0). */
  weightDecay?: number;
  /** Seed of client sampling and local shuffling (default 0). */
  seed?: number;
  /** The aggregation strategy (default the backend's FedAvg). */
  strategy?: Strategy;
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

/** Why a sampled client's update is missing from a round. */
export interface DroppedClient {
  /** The client's id. */
  id: string;
  /** What happened: disconnected, timed out, or sent an invalid update. */
  reason: string;
}

/** What happened in one round of a {@linkcode FederatedServer}. */
export interface ServerRoundRecord {
  /** Round number, from 1. */
  round: number;
  /** Attempts the round took (1 unless it was retried). */
  attempts: number;
  /** Test accuracy of the new global model (NaN without test data). */
  accuracy: number;
  /** Test loss of the new global model (NaN without test data). */
  loss: number;
  /** Example-weighted mean training loss the clients reported. */
  trainLoss: number;
  /** Ids of the clients whose updates were aggregated, in aggregation order. */
  clients: string[];
  /** Ids of the clients sampled. */
  sampled: string[];
  /** Sampled clients left out, and why. */
  dropped: DroppedClient[];
  /** Examples behind the aggregated updates. */
  examples: number;
  /** Clients connected when the round was sampled. */
  connected: number;
  /** Example-weighted accuracy of the new model on the clients' data (NaN if not asked). */
  clientAccuracy: number;
  /** Example-weighted loss of the new model on the clients' data (NaN if not asked). */
  clientLoss: number;
  /** Wall-clock seconds of the round, retries included. */
  seconds: number;
}

/** A failure of the server's run. */
export class ServerError extends Error {
  /** `round-failed`: a round got too few updates in every attempt. */
  readonly code: "round-failed";

  /**
   * Creates the error.
   *
   * @param code What went wrong.
   * @param message A sentence saying so.
   */
  constructor(code: "round-failed", message: string) {
    super(message);
    this.name = "ServerError";
    this.code = code;
  }
}

type _Expected = "ready" | "update" | "evaluation";
interface _Waiter {
  type: _Expected;
  task: number;
  settle: (result: FlMessage | string) => void;
}

/** One admitted client: its channel, its reader loop, and what the server awaits from it. */
class _Connection {
  readonly id: string;
  readonly key: number;
  readonly examples: number;
  readonly channel: SecureChannel;
  closed = false;
  #conn: Deno.Conn;
  #waiters: _Waiter[] = [];
  #onClose: (connection: _Connection, reason: string) => void;
  #log: (line: string) => void;
  #shortTimeoutMs: number;

  constructor(
    hello: { id: string; examples: number },
    conn: Deno.Conn,
    channel: SecureChannel,
    onClose: (connection: _Connection, reason: string) => void,
    log: (line: string) => void,
    shortTimeoutMs: number,
  ) {
    this.id = hello.id;
    this.key = clientKey(hello.id);
    this.examples = hello.examples;
    this.#conn = conn;
    this.channel = channel;
    this.#onClose = onClose;
    this.#log = log;
    this.#shortTimeoutMs = shortTimeoutMs;
  }

  /** Reads messages until the connection ends, handing awaited ones to their waiters. */
  async readLoop(): Promise<void> {
    while (!this.closed) {
      let message: FlMessage;
      try {
        message = await receiveFl(this.channel);
      } catch (error) {
        if (error instanceof MessageError) {
          await this.fail(error.code, error.message);
        } else {
          const reason = error instanceof ChannelError && error.code === "closed"
            ? "disconnected"
            : `connection failed: ${(error as Error).message}`;
          this.close(reason);
        }
        return;
      }
      switch (message.type) {
        case "ready":
        case "update":
        case "evaluation": {
          const index = this.#waiters.findIndex((waiter) =>
            waiter.type === message.type && waiter.task === message.task
          );
          if (index >= 0) {
            this.#waiters.splice(index, 1)[0]!.settle(message);
          } else if (message.type === "update") {
            // Updates are sent only when collected: an unsolicited one breaks the protocol.
            await this.fail("unexpected", `An update for task ${message.task} was not requested`);
            return;
          }
          // A late `ready` or `evaluation` of a finished task: ignored.
          break;
        }
        case "bye":
          this.close(`left: ${message.reason}`);
          return;
        case "error":
          this.close(`reported an error (${message.code}): ${message.message}`);
          return;
        default:
          await this.fail("unexpected", `A client may not send a ${message.type} message`);
          return;
      }
    }
  }

  /**
   * Waits for a message of `type` for `task`.
   *
   * @returns The message, or a reason it will not come.
   */
  expect(type: _Expected, task: number, timeoutMs: number): Promise<FlMessage | string> {
    if (this.closed) return Promise.resolve("disconnected");
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        resolve(`no ${type} within ${(timeoutMs / 1000).toFixed(1)} s`);
      }, Math.max(0, Math.min(timeoutMs, 2 ** 31 - 1)));
      const waiter: _Waiter = {
        type,
        task,
        settle: (result) => {
          clearTimeout(timer);
          resolve(result);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /**
   * Sends a message; on failure, or if it has not gone out within `timeoutMs` (a client that
   * stops reading stalls a send larger than the socket buffers for ever), the connection is
   * closed and false returned.
   *
   * @param message The message.
   * @param timeoutMs The deadline (default the handshake timeout, for small messages).
   */
  async send(message: FlMessage, timeoutMs = this.#shortTimeoutMs): Promise<boolean> {
    if (this.closed) return false;
    const timer = setTimeout(() => {
      // Closing the socket ends the stalled write; closing the channel alone would wait on it.
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
      this.close(
        `a ${message.type} message took more than ${(timeoutMs / 1000).toFixed(1)} s to send`,
      );
    }, Math.max(0, Math.min(timeoutMs, 2 ** 31 - 1)));
    try {
      await sendFl(this.channel, message);
      return true;
    } catch (error) {
      this.close(`send failed: ${(error as Error).message}`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Tells the client what was wrong, then closes. */
  async fail(code: string, message: string): Promise<void> {
    this.#log(`client ${this.id}: ${message}; closing its connection`);
    await this.send({ type: "error", code, message });
    this.close(`${code}: ${message}`);
  }

  /** Closes the connection; whatever was awaited from it settles with `reason`. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter.settle(reason);
    this.channel.close().catch(() => {});
    this.#onClose(this, reason);
  }
}

interface _Settings {
  rounds: number;
  fraction: number;
  minClients: number;
  minUpdates: number;
  maxAttempts: number;
  roundTimeoutMs: number;
  uploadTimeoutMs: number;
  epochs: number;
  batchSize: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  seed: number;
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
    epochs: options.epochs ?? 1,
    batchSize: options.batchSize ?? 10,
    lr: options.lr ?? 0.1,
    momentum: options.momentum ?? 0,
    weightDecay: options.weightDecay ?? 0,
    seed: options.seed ?? 0,
    target: options.target ?? Infinity,
    maxClients: options.maxClients ?? 10_000,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
  };
  const { rounds, fraction, minClients, minUpdates, maxAttempts, epochs, batchSize } = settings;
  const positiveInt = (value: number) => Number.isInteger(value) && value >= 1;
  _check(Number.isInteger(rounds) && rounds >= 0, `Rounds must be a non-negative integer`);
  _check(fraction > 0 && fraction <= 1, `Client fraction must be in (0, 1], got ${fraction}`);
  _check(positiveInt(minClients), `minClients must be a positive integer, got ${minClients}`);
  _check(positiveInt(minUpdates), `minUpdates must be a positive integer, got ${minUpdates}`);
  _check(positiveInt(maxAttempts), `maxAttempts must be a positive integer, got ${maxAttempts}`);
  _check(positiveInt(epochs), `Epochs must be a positive integer, got ${epochs}`);
  _check(positiveInt(batchSize), `Batch size must be a positive integer, got ${batchSize}`);
  _check(settings.lr > 0 && Number.isFinite(settings.lr), `Learning rate must be positive`);
  _check(settings.momentum >= 0 && settings.momentum < 1, `Momentum must be in [0, 1)`);
  _check(settings.weightDecay >= 0, `Weight decay must be non-negative`);
  _check(Number.isSafeInteger(settings.seed) && settings.seed >= 0, `Seed must be an integer`);
  _check(settings.roundTimeoutMs > 0, `Round timeout must be positive`);
  _check(settings.uploadTimeoutMs > 0, `Upload timeout must be positive`);
  _check(positiveInt(settings.maxClients), `maxClients must be a positive integer`);
  return settings;
}

/** A JSON-ready copy of a round record (NaN becomes null; snake_case keys). */
export function roundRecordToJson(record: ServerRoundRecord): Record<string, unknown> {
  const finite = (value: number) => Number.isFinite(value) ? value : null;
  return {
    round: record.round,
    attempts: record.attempts,
    accuracy: finite(record.accuracy),
    loss: finite(record.loss),
    train_loss: finite(record.trainLoss),
    clients: record.clients,
    sampled: record.sampled,
    dropped: record.dropped,
    examples: record.examples,
    connected: record.connected,
    client_accuracy: finite(record.clientAccuracy),
    client_loss: finite(record.clientLoss),
    seconds: Number(record.seconds.toFixed(3)),
  };
}

/**
 * Formats a round's progress line.
 *
 * @param record The round.
 * @param elapsed Seconds since the run started.
 * @returns The line.
 */
export function formatServerRound(record: ServerRoundRecord, elapsed: number): string {
  const percent = (value: number) => `${(100 * value).toFixed(2)}%`;
  return [
    `round ${String(record.round).padStart(4)}`,
    `test acc ${percent(record.accuracy).padStart(7)}`,
    `test loss ${record.loss.toFixed(4)}`,
    `train loss ${record.trainLoss.toFixed(4)}`,
    `${record.clients.length}/${record.sampled.length} clients`,
    ...(record.dropped.length > 0 ? [`${record.dropped.length} dropped`] : []),
    ...(record.attempts > 1 ? [`${record.attempts} attempts`] : []),
    `${record.seconds.toFixed(1)} s`,
    `(${elapsed.toFixed(0)} s total)`,
  ].join("  ");
}

/**
 * A FedAvg server over the secure channel.
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
  /** The address listened on. */
  readonly hostname: string;
  /** The port listened on. */
  readonly port: number;
  #options: ServerOptions;
  #settings: _Settings;
  #listener: Deno.Listener;
  #model: Model;
  #round: number;
  #task: number;
  #records: Record<string, unknown>[];
  #clients = new Map<string, _Connection>();
  /** Connections still in their handshake or hello, with their admission. */
  #admitting = new Map<Deno.Conn, Promise<void>>();
  #allowed: Set<string> | null;
  #clientWaiters: (() => void)[] = [];
  #backend: Backend;
  #ownBackend: boolean;
  /** Workers scoring the held-out data, where `parallel` asks for them. */
  #scorers: TrainerPool | null;
  #strategy: Strategy;
  #log: (line: string) => void;
  #closed = false;
  #accepting: Promise<void>;

  private constructor(
    options: ServerOptions,
    settings: _Settings,
    listener: Deno.Listener,
    backend: Backend,
    scorers: TrainerPool | null,
    state: { model: Model; round: number; task: number; records: Record<string, unknown>[] },
  ) {
    this.#options = options;
    this.#settings = settings;
    this.#listener = listener;
    const addr = listener.addr as Deno.NetAddr;
    this.hostname = addr.hostname;
    this.port = addr.port;
    this.fingerprint = options.staticKey.fingerprint;
    this.#backend = backend;
    this.#ownBackend = typeof options.backend !== "object";
    this.#scorers = scorers;
    this.#strategy = options.strategy ?? backend.createFedAvg();
    this.#model = state.model;
    this.#round = state.round;
    this.#task = state.task;
    this.#records = state.records;
    this.#log = options.log ?? ((line) => console.log(line));
    // Read once: the option may be a one-shot iterable.
    this.#allowed = options.allowedClients === undefined ? null : new Set(options.allowedClients);
    this.#accepting = this.#acceptLoop();
  }

  /**
   * Loads the checkpoint when resuming, starts listening and admitting clients.
   *
   * @param options The model, key, address and the run's settings.
   * @returns The running server; iterate {@linkcode FederatedServer.rounds} to train.
   * @throws {RangeError} If a setting is out of range.
   * @throws {CheckpointError} If the checkpoint is unreadable or belongs to other settings.
   */
  static async start(options: ServerOptions): Promise<FederatedServer> {
    const settings = _settings(options);
    const parallel = options.parallel ?? 1;
    _check(
      Number.isInteger(parallel) && parallel >= 1,
      `Parallel workers must be a positive integer, got ${parallel}`,
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
        _checkCompatible(saved, options, settings);
        options.model.params.set(saved.model.params);
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
    const backend = typeof options.backend === "object"
      ? options.backend
      : await createBackend(options.backend ?? "cpu");
    let scorers: TrainerPool | null = null;
    let listener: Deno.Listener | null = null;
    try {
      if (parallel > 1 && options.test !== undefined) {
        checkPoolBackend(backend, "scoring");
        scorers = new TrainerPool(parallel, options.model, { test: options.test });
      }
      listener = Deno.listen({
        hostname: options.hostname ?? "127.0.0.1",
        port: options.port ?? 3000,
      });
    } catch (error) {
      scorers?.close();
      if (typeof options.backend !== "object") backend.dispose();
      throw error;
    }
    return new FederatedServer(options, settings, listener, backend, scorers, state);
  }

  /** The global model (updated in place after every round). */
  get model(): Model {
    return this.#model;
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

  async #acceptLoop(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
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

  async #admit(conn: Deno.Conn): Promise<void> {
    const peer = conn.remoteAddr as Deno.NetAddr;
    const where = `${peer.hostname}:${peer.port}`;
    const refuse = (message: string) => {
      if (!this.#closed) this.#log(`refused ${where}: ${message}`);
    };
    const params = this.#model.params.length;
    let channel: SecureChannel;
    try {
      (conn as Deno.TcpConn).setKeepAlive?.(true);
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
    const connection = new _Connection(
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

  #onClose(connection: _Connection, reason: string): void {
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
        const record = await this.#runRound(this.#round + 1);
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

  async #runRound(round: number): Promise<ServerRoundRecord> {
    const started = performance.now();
    const { minClients, minUpdates, maxAttempts } = this.#settings;
    for (let attempt = 0;; attempt++) {
      if (this.#clients.size < minClients) {
        this.#log(
          `round ${round}: waiting for ${minClients} clients (${this.#clients.size} connected)`,
        );
      }
      await this.waitForClients(minClients);
      const result = await this.#attempt(round, attempt);
      if (result.count >= minUpdates) {
        this.#model.params.set(await this.#strategy.finish());
        const metrics = this.#options.test === undefined
          ? { loss: NaN, accuracy: NaN }
          : this.#scorers !== null
          ? await this.#scorers.evaluate(this.#model.params)
          : await this.#backend.evaluate(this.#model, this.#options.test);
        const clientMetrics = this.#options.clientEval
          ? await this.#clientEvaluation(result.delivered)
          : { loss: NaN, accuracy: NaN };
        const record: ServerRoundRecord = {
          round,
          attempts: attempt + 1,
          accuracy: metrics.accuracy,
          loss: metrics.loss,
          trainLoss: result.trainLoss,
          clients: result.delivered.map((client) => client.id),
          sampled: result.sampled,
          dropped: result.dropped,
          examples: result.examples,
          connected: result.connected,
          clientAccuracy: clientMetrics.accuracy,
          clientLoss: clientMetrics.loss,
          seconds: (performance.now() - started) / 1000,
        };
        await this.#commit(record);
        return record;
      }
      const message = `round ${round}: ${result.count} of ${result.sampled.length} updates ` +
        `arrived, ${minUpdates} needed`;
      if (attempt + 1 >= maxAttempts) {
        throw new ServerError("round-failed", `${message}, in each of ${maxAttempts} attempts`);
      }
      this.#log(`${message}; retrying with a new sample`);
    }
  }

  /** One attempt at a round: sample, send tasks, collect in key order, accumulate. */
  async #attempt(round: number, attempt: number) {
    const settings = this.#settings;
    const connected = [...this.#clients.values()].sort((a, b) =>
      a.key - b.key || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
    );
    const picked = sampleClients(settings.seed, round, connected.length, settings.fraction, attempt)
      .map((index) => connected[index]!);
    const task = ++this.#task;
    const model = modelToBytes(this.#model);
    const training = picked.filter((client) => client.examples > 0);
    const readies = training.map((client) => client.expect("ready", task, settings.roundTimeoutMs));
    // Every task references the one encoded model (sendFl does not copy it), so sending to all
    // clients at once costs a chunk buffer per connection, not a model; each send must finish
    // before the round's deadline, so a client that stops reading cannot hold the round.
    await Promise.all(training.map((client) =>
      client.send({
        type: "task",
        task,
        round,
        model,
        epochs: settings.epochs,
        batchSize: settings.batchSize,
        lr: settings.lr,
        momentum: settings.momentum,
        weightDecay: settings.weightDecay,
        seed: settings.seed,
        stream: [STREAM.train, round, client.key],
        timeoutMs: settings.roundTimeoutMs,
      }, settings.roundTimeoutMs)
    ));
    const params = this.#model.params.length;
    this.#strategy.begin(this.#model.params);
    const delivered: _Connection[] = [];
    const dropped: DroppedClient[] = [];
    let examples = 0;
    let trainLossSum = 0;
    for (let i = 0; i < training.length; i++) {
      const client = training[i]!;
      const ready = await readies[i]!;
      if (typeof ready === "string") {
        dropped.push({ id: client.id, reason: ready });
        continue;
      }
      const collected = client.expect("update", task, settings.uploadTimeoutMs);
      await client.send({ type: "collect", task }, settings.uploadTimeoutMs);
      const update = await collected;
      if (typeof update === "string") {
        dropped.push({ id: client.id, reason: update });
        continue;
      }
      const { delta, examples: weight, loss } = update as UpdateMessage;
      try {
        if (delta.length !== params) {
          throw new RangeError(`Update has ${delta.length} values, the model has ${params}`);
        }
        this.#strategy.accumulate(delta, weight);
      } catch (error) {
        const reason = `invalid update: ${(error as Error).message}`;
        await client.fail("invalid", (error as Error).message);
        dropped.push({ id: client.id, reason });
        continue;
      }
      delivered.push(client);
      examples += weight;
      trainLossSum += loss * weight;
    }
    return {
      count: this.#strategy.count,
      sampled: picked.map((client) => client.id),
      delivered,
      dropped,
      examples,
      trainLoss: examples > 0 ? trainLossSum / examples : NaN,
      connected: connected.length,
    };
  }

  async #clientEvaluation(clients: _Connection[]): Promise<{ loss: number; accuracy: number }> {
    const task = ++this.#task;
    const model = modelToBytes(this.#model);
    const timeoutMs = this.#settings.roundTimeoutMs;
    const pending = clients.map((client) => client.expect("evaluation", task, timeoutMs));
    await Promise.all(
      clients.map((client) => client.send({ type: "evaluate", task, model }, timeoutMs)),
    );
    const answers = await Promise.all(pending);
    let examples = 0;
    let loss = 0;
    let correct = 0;
    for (const answer of answers) {
      if (typeof answer === "string") continue;
      const evaluation = answer as EvaluationMessage;
      if (evaluation.examples === 0) continue;
      examples += evaluation.examples;
      loss += evaluation.loss * evaluation.examples;
      correct += evaluation.accuracy * evaluation.examples;
    }
    return examples === 0
      ? { loss: NaN, accuracy: NaN }
      : { loss: loss / examples, accuracy: correct / examples };
  }

  /** Makes a finished round durable: checkpoint, then metrics line, then progress line. */
  async #commit(record: ServerRoundRecord): Promise<void> {
    const json = roundRecordToJson(record);
    this.#records.push(json);
    this.#round = record.round;
    if (this.#options.checkpoint !== undefined) {
      await saveCheckpoint(this.#options.checkpoint, {
        round: this.#round,
        model: this.#model,
        sampler: { seed: this.#settings.seed, task: this.#task },
        strategy: this.#strategy.name,
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
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
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
    if (this.#ownBackend) this.#backend.dispose();
  }
}

/** The settings a checkpoint must share with the run that resumes it. */
function _runConfig(options: ServerOptions, settings: _Settings): Checkpoint["config"] {
  return {
    params: options.model.params.length,
    architecture: String(options.model),
    fraction: settings.fraction,
    epochs: settings.epochs,
    batchSize: settings.batchSize,
    lr: settings.lr,
    momentum: settings.momentum,
    weightDecay: settings.weightDecay,
    seed: settings.seed,
  };
}

function _checkCompatible(saved: Checkpoint, options: ServerOptions, settings: _Settings): void {
  const want = _runConfig(options, settings);
  for (const [field, value] of Object.entries(want)) {
    if (saved.config[field] !== value) {
      throw new CheckpointError(
        "mismatch",
        `${options.checkpoint} was written with ${field} ${JSON.stringify(saved.config[field])}` +
          `, this run has ${JSON.stringify(value)}; resume with the same settings or start ` +
          `a new checkpoint`,
      );
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
