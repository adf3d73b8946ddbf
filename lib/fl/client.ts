/**
 * The federated-learning client: connects to a {@linkcode FederatedServer}, pins its key,
 * trains the global model on local data whenever it is sampled, and reconnects with
 * exponential backoff and jitter after a failure until the server says goodbye.
 *
 * This module is browser-compatible. Give `runClient` a `dial` there (`dialWebSocket`); its
 * default TCP dial needs Deno.
 *
 * @module
 */

import { type Backend, type BackendKind, createBackend } from "../compute/backend.ts";
import type { Dataset } from "../data/dataset.ts";
import type { SecureChannel } from "../net/channel.ts";
import { ChannelError } from "../net/errors.ts";
import type { ByteStream } from "../net/framing.ts";
import type { StaticKeyPair } from "../net/identity.ts";
import { MessageError } from "../net/message.ts";
import { HandshakeError } from "../net/noise/errors.ts";
import { handshakeClient } from "../net/secure.ts";
import { Participant, type StageHandler } from "./participant.ts";
import { CLIENT_ID_PATTERN, type FlMessage, receiveFl, sendFl } from "./protocol.ts";

/** How a client retries after a failed connection. */
export interface RetryOptions {
  /** The first delay, in milliseconds (default 250). */
  initialMs?: number;
  /** The longest delay, in milliseconds (default 30 s). */
  maxMs?: number;
  /**
   * Reconnections after failed attempts in a row before giving up (default 20; 0 gives up at
   * the first failure; Infinity never gives up): the client tries at most `maxAttempts + 1`
   * times in a row.
   */
  maxAttempts?: number;
}

/** Options of {@linkcode runClient}. */
export interface ClientOptions {
  /** The server's address (default `127.0.0.1`), over TCP. */
  hostname?: string;
  /** The server's TCP port (default 3000). */
  port?: number;
  /**
   * Opens the byte stream to the server, on any transport (a WebSocket dial, say); it
   * replaces `hostname` and `port`. Called again for each reconnection.
   */
  dial?: () => Promise<ByteStream>;
  /** The server key's fingerprint, as the server prints it. */
  serverFingerprint?: string;
  /** The server's public key, pinned like a fingerprint. */
  serverPublicKey?: Uint8Array;
  /** This client's id, unique among the server's clients: 1-64 of `A-Za-z0-9._:-`. */
  id: string;
  /** The local training data; it never leaves this process. */
  data: Dataset;
  /** The engine that trains: a backend (left open) or a kind (default `cpu`). */
  backend?: Backend | BackendKind;
  /** This client's static key (default: a fresh one per run). */
  staticKey?: StaticKeyPair;
  /** Reconnection policy. */
  retry?: RetryOptions;
  /** Where log lines go (default `console.log`). */
  log?: (line: string) => void;
  /** Stops the client (it closes its connection and resolves). */
  signal?: AbortSignal;
  /** Handlers of workflow stages, by stage name (see `round.ts`). */
  stages?: Record<string, StageHandler>;
}

/** How a client's run ended. */
export interface ClientSummary {
  /** Tasks trained. */
  trained: number;
  /** Updates the server collected. */
  updates: number;
  /** Connections made (1 without failures). */
  connections: number;
  /** The server's goodbye reason, or `aborted`. */
  reason: string;
}

/** Why a client stopped for good. */
export type ClientErrorCode = "refused" | "pin" | "incompatible" | "retries-exhausted";

/** A client failure that retrying cannot fix. */
export class ClientError extends Error {
  /**
   * `refused` (the server turned this client away), `pin` (the server proved another key),
   * `incompatible` (the model does not fit the local data), or `retries-exhausted`.
   */
  readonly code: ClientErrorCode;

  /**
   * Creates the error.
   *
   * @param code What went wrong.
   * @param message A sentence saying so.
   * @param options The underlying cause, if any.
   */
  constructor(code: ClientErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ClientError";
    this.code = code;
  }
}

/**
 * Server error codes after which reconnecting would be refused again: the message was wrong,
 * the key is not allowed in, or another client took this id (reconnecting would take it back,
 * and the two would replace each other for ever).
 */
const _FATAL_SERVER_CODES = new Set([
  "unknown-client",
  "duplicate-id",
  "version",
  "protocol",
  "unknown-type",
  "invalid",
  "unexpected",
  "unsupported-stage",
]);

/**
 * The delay before reconnection attempt `attempt` (1-based): exponential, capped, with
 * "equal jitter" (half fixed, half uniform) so that many clients cut off at once do not all
 * return at the same instant.
 *
 * @param attempt Failed attempts so far, from 1.
 * @param retry The policy.
 * @param random A uniform number in [0, 1).
 * @returns Milliseconds to wait.
 */
export function backoffDelay(
  attempt: number,
  retry: RetryOptions = {},
  random: number = Math.random(),
): number {
  const { initialMs = 250, maxMs = 30_000 } = retry;
  const delay = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 52));
  return delay / 2 + random * delay / 2;
}

/**
 * Runs a client until the server says goodbye (training is over), the signal aborts, or a
 * failure that retrying cannot fix.
 *
 * @param options The server's address and pin, the id, the data and the backend.
 * @returns What the client did.
 * @throws {ClientError} `pin`, `refused`, `incompatible` or `retries-exhausted`.
 *
 * @example Usage
 * ```ts ignore
 * const { train } = await loadMnist();
 * await runClient({ id: "7", data: train, serverFingerprint: "SHA256:...", port: 3000 });
 * ```
 */
export async function runClient(options: ClientOptions): Promise<ClientSummary> {
  if (!CLIENT_ID_PATTERN.test(options.id)) {
    throw new RangeError(
      `Client id must be 1-64 of A-Za-z0-9._:- characters, got ${JSON.stringify(options.id)}`,
    );
  }
  const log = options.log ?? ((line: string) => console.log(line));
  const ownBackend = typeof options.backend !== "object";
  const backend = typeof options.backend === "object"
    ? options.backend
    : await createBackend(options.backend ?? "cpu");
  const summary: ClientSummary = { trained: 0, updates: 0, connections: 0, reason: "" };
  const maxAttempts = options.retry?.maxAttempts ?? 20;
  let failures = 0;
  try {
    for (;;) {
      if (options.signal?.aborted) return { ...summary, reason: "aborted" };
      const session = new _Session(options, backend, summary, log);
      try {
        summary.connections++;
        summary.reason = await session.run();
        return summary;
      } catch (error) {
        if (error instanceof ClientError) throw error;
        if (options.signal?.aborted) return { ...summary, reason: "aborted" };
        if (session.welcomed) failures = 0;
        failures++;
        if (failures > maxAttempts) {
          throw new ClientError(
            "retries-exhausted",
            `Gave up after ${failures} failed connection attempts in a row: ` +
              (error as Error).message,
            { cause: error },
          );
        }
        const delay = backoffDelay(failures, options.retry);
        log(
          `client ${options.id}: ${(error as Error).message}; reconnecting in ` +
            `${(delay / 1000).toFixed(1)} s`,
        );
        await _sleep(delay, options.signal);
      }
    }
  } finally {
    if (ownBackend) backend.dispose();
  }
}

function _sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** One connection's life: handshake, hello, then tasks until goodbye or failure. */
class _Session {
  welcomed = false;
  #options: ClientOptions;
  #backend: Backend;
  #participant: Participant;
  #summary: ClientSummary;
  #log: (line: string) => void;
  #held: { task: number; message: FlMessage } | null = null;

  constructor(
    options: ClientOptions,
    backend: Backend,
    summary: ClientSummary,
    log: (line: string) => void,
  ) {
    this.#options = options;
    this.#participant = new Participant({
      id: options.id,
      data: options.data,
      backend,
      ...(options.stages === undefined ? {} : { stages: options.stages }),
    });
    this.#backend = backend;
    this.#summary = summary;
    this.#log = log;
  }

  /** Runs the session; resolves with the goodbye reason, rejects on failure. */
  async run(): Promise<string> {
    const options = this.#options;
    const conn = options.dial !== undefined
      ? await options.dial()
      : await _dialTcp(options.hostname ?? "127.0.0.1", options.port ?? 3000);
    let channel: SecureChannel;
    try {
      channel = await handshakeClient(conn, {
        ...(options.serverFingerprint === undefined
          ? {}
          : { serverFingerprint: options.serverFingerprint }),
        ...(options.serverPublicKey === undefined
          ? {}
          : { serverPublicKey: options.serverPublicKey }),
        ...(options.staticKey === undefined ? {} : { staticKey: options.staticKey }),
        idleTimeoutMs: Infinity,
      });
    } catch (error) {
      if (error instanceof HandshakeError && error.code === "pinned-key-mismatch") {
        throw new ClientError("pin", error.message, { cause: error });
      }
      throw error;
    }
    const abort = () => channel.close().catch(() => {});
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      await sendFl(channel, {
        type: "hello",
        id: options.id,
        examples: options.data.n,
        backends: [this.#backend.kind],
        stages: this.#participant.supportedStages,
      });
      for (;;) {
        let message: FlMessage;
        try {
          message = await receiveFl(channel);
        } catch (error) {
          if (error instanceof MessageError) {
            await sendFl(channel, { type: "error", code: error.code, message: error.message })
              .catch(() => {});
            await channel.close();
          }
          throw error;
        }
        const reason = await this.#handle(channel, message);
        if (reason !== null) return reason;
      }
    } catch (error) {
      if (options.signal?.aborted) return "aborted";
      throw error;
    } finally {
      options.signal?.removeEventListener("abort", abort);
      await channel.close();
    }
  }

  /** Handles one message; returns the goodbye reason when the session is over. */
  async #handle(channel: SecureChannel, message: FlMessage): Promise<string | null> {
    switch (message.type) {
      case "welcome":
        this.welcomed = true;
        this.#participant.key = message.key;
        this.#log(`client ${this.#options.id}: connected; the server is at round ${message.round}`);
        return null;
      case "task": {
        this.#held = null;
        this.#log(`client ${this.#options.id}: training for round ${message.round}`);
        const update = await this.#compatible(channel, () => this.#participant.train(message));
        this.#held = { task: message.task, message: update };
        this.#summary.trained++;
        await sendFl(channel, {
          type: "ready",
          task: message.task,
          examples: this.#options.data.n,
        });
        return null;
      }
      case "collect": {
        if (this.#held === null || this.#held.task !== message.task) {
          // A collect for a task this client no longer holds (it reconnected meanwhile).
          throw new ChannelError(
            "protocol",
            `The server collected task ${message.task}, which is not held`,
          );
        }
        await sendFl(channel, this.#held.message);
        this.#held = null;
        this.#summary.updates++;
        return null;
      }
      case "evaluate":
        await sendFl(
          channel,
          await this.#compatible(channel, () => this.#participant.evaluate(message)),
        );
        return null;
      case "stage":
        await sendFl(
          channel,
          await this.#compatible(channel, () => this.#participant.stage(message)),
        );
        return null;
      case "bye":
        this.#log(`client ${this.#options.id}: the server said goodbye: ${message.reason}`);
        return message.reason;
      case "error":
        if (_FATAL_SERVER_CODES.has(message.code)) {
          throw new ClientError(
            "refused",
            `The server refused this client (${message.code}): ${message.message}`,
          );
        }
        throw new ChannelError(
          "closed",
          `The server closed the connection (${message.code}): ${message.message}`,
        );
      default: {
        const text = `A server may not send a ${message.type} message`;
        await sendFl(channel, { type: "error", code: "unexpected", message: text }).catch(() => {});
        throw new ChannelError("protocol", text);
      }
    }
  }

  /** Runs `work`; a model that does not fit the data is reported to the server and fatal. */
  async #compatible<T>(channel: SecureChannel, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof RangeError) {
        const text = `The model does not fit this client's data: ${error.message}`;
        await sendFl(channel, { type: "error", code: "incompatible", message: text }).catch(
          () => {},
        );
        throw new ClientError("incompatible", text, { cause: error });
      }
      throw error;
    }
  }
}

/**
 * Dials `tcp://host:port` (an IPv6 host in brackets). TCP needs Deno: the module is loaded only
 * when a client dials TCP, so a browser client (with `dial`) never loads it.
 */
async function _dialTcp(hostname: string, port: number): Promise<ByteStream> {
  const { dialTcp } = await import("../net/tcp.ts");
  return dialTcp(`tcp://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`);
}
