/**
 * The WebSocket transport's client side, and the adapter that makes a message-oriented
 * WebSocket a byte stream ({@linkcode WebSocketConnection}), used by both sides. Addresses
 * are `ws://host:port/path` (or `wss://` through a TLS-terminating proxy).
 *
 * ```ts ignore
 * const connection = await dialWebSocket("ws://127.0.0.1:3000/fedgpu");
 * const channel = await handshakeClient(connection, { serverFingerprint });
 * ```
 *
 * On the wire each write is one binary message; a reader drains received messages into its
 * buffer, across message boundaries, so framing above (the Noise frames of `framing.ts`) is
 * independent of how the bytes were cut into messages. Text messages are a protocol error.
 *
 * Limits, since a WebSocket has no flow control of its own:
 * - Receiving: the WebSocket API delivers every message as it arrives, whether anyone reads
 *   or not, so unread messages are held up to `maxQueuedBytes` (default 16 MiB; each message
 *   counts 256 bytes more than its length, for its bookkeeping). A peer that sends more
 *   than that ahead of the reader is cut off (close code 1009) and reads fail with a
 *   {@linkcode TransportError} `overflow`. Set the bound above the most the peer may send
 *   without waiting for an answer.
 * - Sending: a write waits while the socket's `bufferedAmount` is above `maxBufferedBytes`
 *   (default 1 MiB), so sending a large model holds about that much in memory, not all of it.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import {
  checkTimeout,
  checkWebSocketLimits,
  DEFAULT_DIAL_TIMEOUT_MS,
  MAX_TIMER_MS,
} from "./_transport_checks.ts";
import { type Connection, type DialOptions, TransportError } from "./transport.ts";

/** Close codes that end a stream cleanly: normal, going away, and no code given. */
const _CLEAN_CLOSES: ReadonlySet<number> = new Set([1000, 1001, 1005]);
/** The bytes a queued message counts beyond its length. */
const _MESSAGE_OVERHEAD = 256;
/** How often a waiting write looks at `bufferedAmount`, in milliseconds. */
const _POLL_MS = 1;
/** `WebSocket.OPEN`, spelled out so that test doubles need not define it. */
const _OPEN = 1;

/** Limits of a {@linkcode WebSocketConnection}. */
export interface WebSocketConnectionOptions {
  /**
   * The most bytes received and not yet read before the peer is cut off (default 16 MiB;
   * each message counts 256 bytes more than its length).
   */
  maxQueuedBytes?: number;
  /** Writes wait while more than this many bytes are buffered for sending (default 1 MiB). */
  maxBufferedBytes?: number;
}

/** Options of {@linkcode dialWebSocket}. */
export interface WebSocketDialOptions extends DialOptions, WebSocketConnectionOptions {}

interface _PendingRead {
  buffer: Uint8Array;
  resolve(n: number | null): void;
  reject(error: TransportError): void;
}

/** A WebSocket as a byte stream: each write one binary message, reads across messages. */
export class WebSocketConnection implements Connection {
  /** The peer, as a URL. */
  readonly remote: string;
  #socket: WebSocket;
  #maxQueued: number;
  #maxBuffered: number;
  /** Received bytes not read yet: `#queue[#head]` onwards. */
  #queue: (Uint8Array | undefined)[] = [];
  #head = 0;
  /** Bytes charged against `#maxQueued`. */
  #charged = 0;
  #reads: _PendingRead[] = [];
  /** How the stream ended: undefined while open, null cleanly, or the failure. */
  #end: TransportError | null | undefined = undefined;
  #closed = false;
  #writing: Promise<unknown> = Promise.resolve();

  /**
   * Wraps a socket, connecting or open; call before its first message can arrive (in the
   * same task that created it, or in its `open` event).
   *
   * @param socket The socket; its `binaryType` becomes `arraybuffer`.
   * @param remote The peer, as a URL.
   * @param options The limits.
   * @throws {RangeError} For a limit that is not a positive integer.
   */
  constructor(socket: WebSocket, remote: string, options: WebSocketConnectionOptions = {}) {
    const { maxQueuedBytes, maxBufferedBytes } = checkWebSocketLimits(options);
    this.#maxQueued = maxQueuedBytes;
    this.#maxBuffered = maxBufferedBytes;
    this.#socket = socket;
    this.remote = remote;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => this.#onMessage(event as MessageEvent));
    socket.addEventListener("close", (event) => this.#onClose(event as CloseEvent));
  }

  /**
   * Reads received bytes into `buffer`, waiting for a message when none are queued.
   *
   * @param buffer Where to put them.
   * @returns The byte count, or null once the peer closed cleanly (or `close()` was called)
   *   and everything received was read.
   * @throws {TransportError} `protocol` after a text message, `overflow` after the peer sent
   *   too far ahead, `closed` if the connection was lost.
   */
  read(buffer: Uint8Array): Promise<number | null> {
    return new Promise((resolve, reject) => {
      this.#reads.push({ buffer, resolve, reject });
      this.#deliver();
    });
  }

  /**
   * Sends `data` as one binary message, first waiting while the socket's send buffer is
   * over `maxBufferedBytes`. Writes go out in the order they are called.
   *
   * @param data The bytes (copied; the caller may reuse the buffer at once).
   * @returns `data.length`.
   * @throws {TransportError} `closed` if the connection is closed or ends while waiting.
   */
  write(data: Uint8Array): Promise<number> {
    const copy = data.slice();
    const written = this.#writing.then(() => this.#send(copy));
    this.#writing = written.catch(() => {});
    return written;
  }

  async #send(data: Uint8Array<ArrayBuffer>): Promise<number> {
    this.#checkWritable();
    while (this.#socket.bufferedAmount > this.#maxBuffered) {
      await new Promise((resolve) => setTimeout(resolve, _POLL_MS));
      this.#checkWritable();
    }
    if (data.length > 0) this.#socket.send(data);
    return data.length;
  }

  /** Closes the connection (code 1000, after what was written); pending reads get null. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#dropQueue();
    try {
      this.#socket.close(1000);
    } catch {
      // Already closing.
    }
    this.#deliver();
  }

  #checkWritable(): void {
    if (this.#closed || this.#end !== undefined || this.#socket.readyState !== _OPEN) {
      throw new TransportError("closed", `Connection to ${this.remote} is closed`, {
        ...(this.#end ? { cause: this.#end } : {}),
      });
    }
  }

  #onMessage(event: MessageEvent): void {
    if (this.#closed || this.#end !== undefined) return;
    const data: unknown = event.data;
    if (!(data instanceof ArrayBuffer)) {
      this.#fail(
        new TransportError(
          "protocol",
          `${this.remote} sent a text message; only binary messages are allowed`,
        ),
        1003,
        "binary messages only",
      );
      return;
    }
    if (data.byteLength === 0) return;
    const charge = data.byteLength + _MESSAGE_OVERHEAD;
    if (this.#charged + charge > this.#maxQueued) {
      this.#fail(
        new TransportError(
          "overflow",
          `${this.remote} sent more than ${this.#maxQueued} bytes ahead of the reader`,
        ),
        1009,
        "too much unread data",
      );
      return;
    }
    this.#charged += charge;
    this.#queue.push(new Uint8Array(data));
    this.#deliver();
  }

  #onClose(event: CloseEvent): void {
    if (this.#closed || this.#end !== undefined) return;
    if (_CLEAN_CLOSES.has(event.code)) {
      this.#end = null;
    } else {
      // 1006 is the spec's code for a connection lost without a close frame; Deno says 0.
      const how = event.code === 1006 || event.code === 0
        ? "without a WebSocket close"
        : `(WebSocket close code ${event.code}${event.reason === "" ? "" : `: ${event.reason}`})`;
      this.#end = new TransportError("closed", `Connection to ${this.remote} lost ${how}`);
    }
    this.#deliver();
  }

  /** Ends the stream with `error`, dropping unread data, and closes the socket. */
  #fail(error: TransportError, code: number, reason: string): void {
    this.#end = error;
    this.#dropQueue();
    try {
      this.#socket.close(code, reason);
    } catch {
      // Already closing.
    }
    this.#deliver();
  }

  #dropQueue(): void {
    this.#queue = [];
    this.#head = 0;
    this.#charged = 0;
  }

  /** Answers pending reads from the queue, then with the end of the stream. */
  #deliver(): void {
    while (this.#reads.length > 0) {
      if (this.#closed) {
        this.#reads.shift()!.resolve(null);
      } else if (this.#head < this.#queue.length) {
        const read = this.#reads.shift()!;
        read.resolve(this.#take(read.buffer));
      } else if (this.#end === null) {
        this.#reads.shift()!.resolve(null);
      } else if (this.#end !== undefined) {
        this.#reads.shift()!.reject(this.#end);
      } else {
        return;
      }
    }
  }

  /** Moves queued bytes into `buffer`. */
  #take(buffer: Uint8Array): number {
    let n = 0;
    while (n < buffer.length && this.#head < this.#queue.length) {
      const message = this.#queue[this.#head]!;
      const count = Math.min(message.length, buffer.length - n);
      buffer.set(message.subarray(0, count), n);
      n += count;
      if (count === message.length) {
        this.#queue[this.#head++] = undefined;
        this.#charged -= message.length + _MESSAGE_OVERHEAD;
      } else {
        this.#queue[this.#head] = message.subarray(count);
        this.#charged -= count;
      }
    }
    if (this.#head === this.#queue.length) this.#dropQueue();
    return n;
  }
}

/**
 * Opens a WebSocket connection with the standard `WebSocket` API (in Deno or a browser).
 *
 * @param address `ws://host:port/path` or `wss://…`, as the listener's `address` says.
 * @param options The deadline (default 10 s) and the connection's limits.
 * @returns The open connection; its `remote` is `address`.
 * @throws {TypeError} For an address that is not a `ws:` or `wss:` URL.
 * @throws {RangeError} For a deadline or a limit out of range.
 * @throws {TransportError} `timeout` if it does not open within the deadline, `unreachable`
 *   if it fails to (nothing listens there, or the server refused the upgrade: the WebSocket
 *   API does not say which, but Deno's message, kept in this one, does).
 */
export async function dialWebSocket(
  address: string,
  options: WebSocketDialOptions = {},
): Promise<WebSocketConnection> {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new TypeError(
      `A WebSocket address is ws://host:port/path, got ${JSON.stringify(address)}`,
    );
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(
      `A WebSocket address is ws://host:port/path, got ${JSON.stringify(address)}`,
    );
  }
  const timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS);
  let socket: WebSocket;
  try {
    socket = new WebSocket(url);
  } catch (cause) {
    throw new TypeError(`Cannot open a WebSocket to ${JSON.stringify(address)}`, { cause });
  }
  const connection = new WebSocketConnection(socket, address, options);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onOpen!: () => void;
  let onError!: (event: Event) => void;
  let onClose!: () => void;
  try {
    await new Promise<void>((resolve, reject) => {
      let message = "";
      onOpen = resolve;
      onError = (event) => {
        message = (event as ErrorEvent).message ?? "";
      };
      onClose = () => {
        reject(
          new TransportError(
            "unreachable",
            `Cannot connect to ${address}${message === "" ? "" : `: ${message}`}`,
          ),
        );
      };
      socket.addEventListener("open", onOpen);
      socket.addEventListener("error", onError);
      socket.addEventListener("close", onClose);
      if (timeoutMs <= MAX_TIMER_MS) {
        timer = setTimeout(() => {
          reject(
            new TransportError("timeout", `No connection to ${address} within ${timeoutMs} ms`),
          );
        }, timeoutMs);
      }
    });
  } catch (error) {
    connection.close();
    throw error;
  } finally {
    clearTimeout(timer);
    socket.removeEventListener("open", onOpen);
    socket.removeEventListener("error", onError);
    socket.removeEventListener("close", onClose);
  }
  return connection;
}
