/**
 * Helpers of the server and client tests: a server on a free loopback port, in-process clients,
 * hand-driven protocol clients (for dropping out and misbehaving), and the reference that a
 * networked run must match, written from the protocol's definition (sampling stream
 * `[2, round]` or `[2, round, attempt]`, local shuffling `[3, round, client key]`, FedAvg over
 * the updates in ascending client-key order).
 */

import { deepStrictEqual } from "node:assert/strict";
import type { Dataset } from "../../lib/data/dataset.ts";
import { type ClientOptions, type ClientSummary, runClient } from "../../lib/fl/client.ts";
import { FedAvg } from "../../lib/fl/strategies/fedavg.ts";
import {
  FL_PROTOCOL,
  type FlMessage,
  type HelloMessage,
  receiveFl,
  sendFl,
} from "../../lib/fl/protocol.ts";
import {
  FederatedServer,
  type ServerOptions,
  type ServerRoundRecord,
} from "../../lib/fl/server.ts";
import type { SecureChannel } from "../../lib/net/channel.ts";
import { StaticKeyPair } from "../../lib/net/identity.ts";
import { sendMessage } from "../../lib/net/message.ts";
import { handshakeClient } from "../../lib/net/secure.ts";
import type { Model } from "../../lib/nn/model.ts";
import { train } from "../../lib/nn/train.ts";
import { Rng } from "../../lib/rng.ts";

/**
 * How long a test waits for something before calling it hung. Only a hang trips it: nothing in
 * these tests takes more than a few seconds even on a slow, busy machine.
 */
export const HANG_MS = 120_000;

/** The server key of these tests. */
export const SERVER_KEY: StaticKeyPair = StaticKeyPair.generate();

/** Local training settings shared by a server and its reference. */
export interface LocalSettings {
  /** Local epochs. */
  epochs: number;
  /** Local batch size. */
  batchSize: number;
  /** Local learning rate. */
  lr: number;
  /** Local momentum. */
  momentum: number;
  /** Local weight decay. */
  weightDecay: number;
  /** The run's seed. */
  seed: number;
}

/**
 * Starts a server on a free loopback port with the CPU backend, its log lines kept in `logs`.
 *
 * @param options The model and any settings to override.
 * @param logs Receives the server's log lines.
 * @returns The server.
 */
export function startServer(
  options: Partial<ServerOptions> & { model: Model },
  logs: string[] = [],
): Promise<FederatedServer> {
  return FederatedServer.start({
    staticKey: SERVER_KEY,
    port: 0,
    backend: "cpu",
    log: (line) => logs.push(line),
    ...options,
  });
}

/**
 * Runs an in-process client of `server` with the CPU backend and quick retries.
 *
 * @param server The server.
 * @param id The client's id.
 * @param data Its data.
 * @param extra Options to override.
 * @returns The client's run.
 */
export function startClient(
  server: FederatedServer,
  id: string,
  data: Dataset,
  extra: Partial<ClientOptions> = {},
): Promise<ClientSummary> {
  return runClient({
    id,
    data,
    port: server.port,
    serverFingerprint: server.fingerprint,
    backend: "cpu",
    retry: { initialMs: 20, maxMs: 100, maxAttempts: 5 },
    log: () => {},
    ...extra,
  });
}

/**
 * Iterates a server's remaining rounds, failing if they hang.
 *
 * @param server The server.
 * @returns Its round records.
 */
export function runRounds(server: FederatedServer): Promise<ServerRoundRecord[]> {
  return within(
    (async () => {
      const records: ServerRoundRecord[] = [];
      for await (const record of server.rounds()) records.push(record);
      return records;
    })(),
    HANG_MS,
    "The rounds",
  );
}

/**
 * Asserts that two float32 arrays hold the same bits.
 *
 * @param actual The array under test.
 * @param expected The reference.
 * @param message What is compared.
 */
export function assertSameBits(actual: Float32Array, expected: Float32Array, message?: string) {
  deepStrictEqual(
    new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength),
    new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength),
    message,
  );
}

/**
 * Rejects if `promise` does not settle within `ms`.
 *
 * @param promise The promise.
 * @param ms The limit in milliseconds.
 * @param what What is awaited, for the message.
 * @returns The promise's value.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * The clients a round samples, from the protocol's definition: the connected keys ascending,
 * `max(round(C * n), 1)` of them drawn by the first entries of a permutation from stream
 * `[2, round]` (`[2, round, attempt]` for a retry), returned ascending.
 *
 * @param keys The keys of the connected clients.
 * @param fraction The fraction C.
 * @param seed The run's seed.
 * @param round The round.
 * @param attempt The attempt, from 0.
 * @returns The sampled keys.
 */
export function referenceSample(
  keys: readonly number[],
  fraction: number,
  seed: number,
  round: number,
  attempt = 0,
): number[] {
  const sorted = [...keys].sort((a, b) => a - b);
  const count = Math.max(Math.round(fraction * sorted.length), 1);
  const stream = attempt === 0 ? [2, round] : [2, round, attempt];
  const picks = Array.from(new Rng(seed, stream).permutation(sorted.length).subarray(0, count));
  return picks.sort((a, b) => a - b).map((index) => sorted[index]!);
}

/**
 * One FedAvg round from its definition: each client trains a copy of the global model with
 * shuffling stream `[3, round, key]`; the float32 deltas are averaged, weighted by example
 * counts, in ascending key order.
 *
 * @param model The global model; its parameters are replaced by the round's result.
 * @param clients The data of the clients whose updates count, by key.
 * @param round The round.
 * @param settings The local training settings.
 */
export function referenceRound(
  model: Model,
  clients: ReadonlyMap<number, Dataset>,
  round: number,
  settings: LocalSettings,
): void {
  const fedavg = new FedAvg();
  const global = model.params.slice();
  fedavg.begin(global);
  for (const key of [...clients.keys()].sort((a, b) => a - b)) {
    const data = clients.get(key)!;
    const local = model.clone();
    train(local, data, {
      epochs: settings.epochs,
      batchSize: settings.batchSize,
      lr: settings.lr,
      momentum: settings.momentum,
      weightDecay: settings.weightDecay,
      rng: new Rng(settings.seed, [3, round, key]),
    });
    const delta = new Float32Array(global.length);
    for (let i = 0; i < delta.length; i++) delta[i] = local.params[i]! - global[i]!;
    fedavg.accumulate(delta, data.n);
  }
  model.params.set(fedavg.finish() as Float32Array);
}

/** A client driven by hand, message by message. */
export class RawClient {
  /** The secure channel to the server. */
  readonly channel: SecureChannel;

  private constructor(channel: SecureChannel) {
    this.channel = channel;
  }

  /**
   * Connects and completes the handshake.
   *
   * @param server The server.
   * @param staticKey The client's key (default a fresh one).
   * @returns The client.
   */
  static async connect(server: FederatedServer, staticKey?: StaticKeyPair): Promise<RawClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const channel = await handshakeClient(conn, {
      serverFingerprint: server.fingerprint,
      idleTimeoutMs: 10_000,
      ...(staticKey === undefined ? {} : { staticKey }),
    });
    return new RawClient(channel);
  }

  /**
   * Connects, says hello and waits for the welcome.
   *
   * @param server The server.
   * @param id The id.
   * @param examples The examples it claims.
   * @returns The client.
   */
  static async join(server: FederatedServer, id: string, examples = 40): Promise<RawClient> {
    const client = await RawClient.connect(server);
    await client.send({ type: "hello", id, examples, backends: ["cpu"], stages: [] });
    await client.expect("welcome");
    return client;
  }

  /**
   * Sends a protocol message.
   *
   * @param message The message.
   */
  send(message: FlMessage): Promise<void> {
    return sendFl(this.channel, message);
  }

  /**
   * Sends a message with any type, fields and version, bypassing the protocol's types.
   *
   * @param type The message type.
   * @param fields Its fields.
   * @param version The protocol version on the envelope.
   */
  sendRaw(type: string, fields: Record<string, unknown>, version = FL_PROTOCOL.version) {
    return sendMessage(this.channel, { ...FL_PROTOCOL, version }, type, fields);
  }

  /**
   * Receives the next message.
   *
   * @returns The message.
   */
  receive(): Promise<FlMessage> {
    return receiveFl(this.channel);
  }

  /**
   * Receives messages, skipping tasks, until one of `type` arrives.
   *
   * @param type The type wanted.
   * @returns The message.
   * @throws {Error} If another type arrives.
   */
  async expect<T extends FlMessage["type"]>(type: T): Promise<Extract<FlMessage, { type: T }>> {
    for (;;) {
      const message = await this.receive();
      if (message.type === type) return message as Extract<FlMessage, { type: T }>;
      if (message.type === "task" && type !== "task") continue;
      throw new Error(`Expected a ${type} message, got ${JSON.stringify(message)}`);
    }
  }

  /** Says hello with custom fields, for invalid hellos. */
  hello(fields: Partial<Record<keyof HelloMessage, unknown>>, version?: number) {
    return this.sendRaw("hello", {
      id: "x",
      examples: 10,
      backends: ["cpu"],
      stages: [],
      ...fields,
    }, version);
  }

  /** Closes the channel. */
  close(): Promise<void> {
    return this.channel.close();
  }
}
