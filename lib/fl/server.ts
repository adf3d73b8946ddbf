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
 * This module needs Deno.
 *
 * @module
 */

import { type Backend, createBackend } from "../compute/backend.ts";
import { listenTcp } from "../net/tcp.ts";
import type { Connection, Listener } from "../net/transport.ts";
import type { Model } from "../nn/model.ts";
import { admit } from "./admission.ts";
import { CheckpointError, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { ClientConnection } from "./connection.ts";
import { checkPoolBackend, TrainerPool } from "./parallel.ts";
import { roundRecordToJson, type ServerRoundRecord } from "./records.ts";
import { RoundDriver } from "./round.ts";
import {
  checkCompatible,
  runConfig,
  type ServerOptions,
  type ServerSettings,
  serverSettings,
} from "./server_options.ts";
import { createStrategy } from "./strategies/create.ts";
import type { Strategy } from "./strategies/strategy.ts";
import { createPipeline } from "./update.ts";

export { type DroppedClient, RoundError as ServerError } from "./round.ts";
export { formatServerRound, roundRecordToJson, type ServerRoundRecord } from "./records.ts";
export type { ServerOptions } from "./server_options.ts";

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
  #settings: ServerSettings;
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
  #driver: RoundDriver;
  #log: (line: string) => void;
  #closed = false;
  #accepting: Promise<void>;

  private constructor(
    options: ServerOptions,
    settings: ServerSettings,
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
    const settings = serverSettings(options);
    createPipeline(settings.pipeline);
    const parallel = options.parallel ?? 1;
    if (!Number.isInteger(parallel) || parallel < 1) {
      throw new RangeError(`Parallel workers must be a positive integer, got ${parallel}`);
    }
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
          checkCompatible(saved, options, settings, strategy);
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
    const admitted = await admit(conn, {
      staticKey: this.#options.staticKey,
      handshakeTimeoutMs: this.#settings.handshakeTimeoutMs,
      // The largest message a client may send is an update: its floats plus the envelope.
      maxMessageBytes: 4 * this.#model.params.length + 65_536,
      allowed: this.#allowed,
      requiredStages: this.#settings.pipeline.map((stage) => stage.id),
      closing: () => this.#closed,
      refuse: (message) => {
        if (!this.#closed) this.#log(`refused ${conn.remote}: ${message}`);
      },
    });
    if (admitted === null) return;
    const { hello, channel } = admitted;
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
        config: runConfig(this.#options, this.#settings),
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
