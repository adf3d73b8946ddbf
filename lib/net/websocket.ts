/**
 * WebSocket as a byte-stream transport (RFC 6455): each write is one binary message, reads
 * drain the received messages in order. The client side uses the standard `WebSocket` and runs
 * in browsers as in Deno; the server side is in `websocket_server.ts`.
 *
 * WebSocket has no read backpressure: a peer may send faster than the channel reads. Received
 * bytes not yet read are bounded (`maxQueuedBytes`, default 4 MiB), and a peer that floods past
 * the bound is cut off with a `ChannelError` (`protocol`). Writes wait while more than 1 MiB is
 * buffered for sending, so a large model does not pile up in memory. A text message from the
 * peer is a protocol error.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { ChannelError } from "./errors.ts";
import type { Connection } from "./transport.ts";

/** Received bytes a connection holds unread before it cuts the peer off: 4 MiB. */
export const DEFAULT_MAX_QUEUED_BYTES = 4 << 20;
/** Buffered outgoing bytes above which a write waits. */
const _HIGH_WATER = 1 << 20;

/** A WebSocket as a {@linkcode Connection}. */
export class WebSocketConnection implements Connection {
  /** The peer. */
  readonly remote: string;
  readonly #socket: WebSocket;
  readonly #maxQueued: number;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #offset = 0;
  #closed = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;

  /**
   * Wraps a socket (open or opening; messages are queued from now on).
   *
   * @param socket The socket.
   * @param remote The peer's address, for logs.
   * @param maxQueuedBytes The bound on unread received bytes.
   */
  constructor(socket: WebSocket, remote: string, maxQueuedBytes = DEFAULT_MAX_QUEUED_BYTES) {
    this.#socket = socket;
    this.remote = remote;
    this.#maxQueued = maxQueuedBytes;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => this.#receive(event.data));
    socket.addEventListener("close", () => this.#end(null));
    socket.addEventListener(
      "error",
      () => this.#end(new ChannelError("closed", "WebSocket failed")),
    );
  }

  #receive(data: unknown): void {
    if (this.#closed) return;
    if (!(data instanceof ArrayBuffer)) {
      this.#fail("The peer sent a text WebSocket message; this transport carries binary only");
      return;
    }
    if (this.#queued + data.byteLength > this.#maxQueued) {
      this.#fail(`The peer sent more than ${this.#maxQueued} bytes that were not read yet`);
      return;
    }
    this.#queue.push(new Uint8Array(data));
    this.#queued += data.byteLength;
    this.#notify();
  }

  #fail(message: string): void {
    this.#end(new ChannelError("protocol", message));
    try {
      this.#socket.close(1002, "protocol error");
    } catch {
      // Already closing.
    }
  }

  #end(error: Error | null): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /**
   * Reads received bytes into `buffer`.
   *
   * @param buffer Where to read.
   * @returns The byte count, or null once the peer closed and everything was read.
   * @throws {ChannelError} `protocol` if the peer broke the transport's rules.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#queue.length === 0) {
      if (this.#closed) {
        if (this.#error !== null) throw this.#error;
        return null;
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let copied = 0;
    while (copied < buffer.length && this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const n = Math.min(buffer.length - copied, head.length - this.#offset);
      buffer.set(head.subarray(this.#offset, this.#offset + n), copied);
      copied += n;
      this.#offset += n;
      if (this.#offset === head.length) {
        this.#queue.shift();
        this.#offset = 0;
      }
    }
    this.#queued -= copied;
    return copied;
  }

  /**
   * Sends `data` as one binary message, after waiting while much is buffered.
   *
   * @param data The bytes (copied).
   * @returns `data.length`.
   * @throws {ChannelError} `closed` if the socket is not open.
   */
  async write(data: Uint8Array): Promise<number> {
    while (
      this.#socket.readyState === WebSocket.OPEN && this.#socket.bufferedAmount > _HIGH_WATER
    ) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    if (this.#socket.readyState !== WebSocket.OPEN || this.#closed) {
      throw new ChannelError("closed", "The WebSocket is closed");
    }
    this.#socket.send(data.slice());
    return data.length;
  }

  /** Closes the socket; pending reads end. */
  close(): void {
    this.#end(null);
    try {
      this.#socket.close(1000);
    } catch {
      // Already closed.
    }
  }
}

/**
 * Opens a WebSocket to a server.
 *
 * @param url Such as `ws://127.0.0.1:3001/fedgpu` (or `wss://`).
 * @param options How long to wait for the connection (default 10 s) and the bound on unread
 *   bytes.
 * @returns The open connection.
 * @throws {ChannelError} `closed` if it cannot connect, `timeout` if it takes too long.
 * @throws {TypeError} If the URL is not a ws: or wss: URL.
 */
export function dialWebSocket(
  url: string,
  options: { timeoutMs?: number; maxQueuedBytes?: number } = {},
): Promise<Connection> {
  const parsed = new URL(url);
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new TypeError(`A WebSocket URL starts with ws:// or wss://, got ${JSON.stringify(url)}`);
  }
  const socket = new WebSocket(parsed.href);
  const connection = new WebSocketConnection(socket, parsed.href, options.maxQueuedBytes);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new ChannelError("timeout", `No WebSocket connection to ${parsed.href} in time`));
    }, options.timeoutMs ?? 10_000);
    socket.addEventListener("open", () => {
      clearTimeout(timer);
      resolve(connection);
    }, { once: true });
    socket.addEventListener("close", () => {
      clearTimeout(timer);
      reject(new ChannelError("closed", `Cannot open a WebSocket to ${parsed.href}`));
    }, { once: true });
  });
}
