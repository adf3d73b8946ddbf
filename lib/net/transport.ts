/**
 * Transports: how byte streams between a server and its clients come to be. A
 * {@linkcode Listener} yields accepted {@linkcode Connection}s; {@linkcode Transport.dial}
 * opens one. A connection is a {@linkcode ByteStream}, so the Noise handshake
 * (`handshakeServer`, `handshakeClient`) and the `SecureChannel` run over any transport
 * unchanged:
 *
 * ```ts ignore
 * const listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
 * for await (const connection of listener) {
 *   const channel = await handshakeServer(connection, { staticKey });
 * }
 * ```
 *
 * The transports are TCP (`tcp.ts`, `tcp://host:port`) and WebSocket (`websocket.ts` for
 * the client, also in browsers; `websocket_server.ts` for the server, `ws://host:port/path`).
 * A transport carries bytes only; authentication and encryption are the channel's.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { ByteStream } from "./framing.ts";

/**
 * What went wrong with a connection, or with opening one: `refused` (the peer's host said
 * nothing listens there), `unreachable` (no connection, for another or an unknown reason),
 * `timeout` (none within the deadline), `closed` (the connection ended abnormally: reset, or
 * lost without a goodbye), `protocol` (the peer broke the transport's protocol: a WebSocket
 * text message, say), `overflow` (the peer sent more than the connection holds unread).
 */
export type TransportErrorCode =
  | "refused"
  | "unreachable"
  | "timeout"
  | "closed"
  | "protocol"
  | "overflow";

/** A failure to connect, or of a connection's transport. */
export class TransportError extends Error {
  /** What went wrong. */
  readonly code: TransportErrorCode;

  /**
   * Creates the error.
   *
   * @param code What went wrong.
   * @param message A sentence saying so.
   * @param options The underlying cause, if any.
   */
  constructor(code: TransportErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransportError";
    this.code = code;
  }
}

/**
 * One connection: a byte stream that knows its peer. Reads resolve to null when the peer
 * ends the stream cleanly (and after a local `close()`); they reject with a
 * {@linkcode TransportError} when it ends abnormally.
 */
export interface Connection extends ByteStream {
  /** The peer, as a URL: `tcp://192.0.2.1:50000`, `ws://192.0.2.1:50000`. */
  readonly remote: string;
}

/**
 * Accepted connections, in the order they arrive. Iterate it once. Closing it stops
 * accepting and ends the iteration; connections already yielded stay open.
 */
export interface Listener extends AsyncIterable<Connection> {
  /** The address to dial, as a URL: `tcp://127.0.0.1:3000`, `ws://127.0.0.1:3000/fedgpu`. */
  readonly address: string;
  /** The address listened on. */
  readonly hostname: string;
  /** The port listened on (the one chosen when port 0 was asked for). */
  readonly port: number;
  /** Stops accepting; an iteration in progress ends. Idempotent. */
  close(): Promise<void> | void;
}

/** Where to listen. */
export interface ListenOptions {
  /** The address to listen on (default `127.0.0.1`, loopback only). */
  hostname?: string;
  /** The port; 0 picks a free one (see {@linkcode Listener.port}). */
  port: number;
}

/** How to dial. */
export interface DialOptions {
  /** How long to wait for the connection, in milliseconds (default 10 s). */
  timeoutMs?: number;
}

/** A way to listen for and open connections. */
export interface Transport<
  L extends ListenOptions = ListenOptions,
  D extends DialOptions = DialOptions,
> {
  /**
   * Starts listening.
   *
   * @param options Where, and the transport's limits.
   * @returns The listener.
   */
  listen(options: L): Listener | Promise<Listener>;
  /**
   * Opens a connection.
   *
   * @param address The listener's {@linkcode Listener.address}.
   * @param options The deadline and the transport's limits.
   * @returns The connection.
   * @throws {TransportError} `refused`, `unreachable` or `timeout` if no connection comes.
   */
  dial(address: string, options?: D): Promise<Connection>;
}
