/**
 * The WebSocket transport's server side: `Deno.serve` upgrading requests with
 * `Deno.upgradeWebSocket`, each socket a {@linkcode WebSocketConnection}. Browsers (and
 * `dialWebSocket` in Deno) connect to `ws://host:port/path`.
 *
 * ```ts ignore
 * const listener = listenWebSocket({ hostname: "127.0.0.1", port: 0, path: "/fedgpu" });
 * for await (const connection of listener) {
 *   const channel = await handshakeServer(connection, { staticKey });
 * }
 * ```
 *
 * A request that is not a WebSocket upgrade gets 426 (Upgrade Required), a malformed
 * upgrade 400, another path than `path` 404, and any request once the listener is closed,
 * or while 128 opened connections wait to be taken from the listener, 503. Connections are
 * pinged by Deno (every 30 s) and cut off when they stop answering.
 *
 * Closing the listener ends its iteration and refuses new connections, but leaves those it
 * yielded open; `Deno.serve` can only release the port by cutting them off, so the port is
 * released (and {@linkcode WebSocketListener.finished} resolves) once the last of them has
 * closed.
 *
 * This module needs Deno (`--allow-net`).
 *
 * @module
 */

import { checkListenOptions, checkWebSocketLimits, formatAuthority } from "./_transport_checks.ts";
import type { Connection, Listener, ListenOptions, Transport } from "./transport.ts";
import {
  dialWebSocket,
  WebSocketConnection,
  type WebSocketConnectionOptions,
  type WebSocketDialOptions,
} from "./websocket.ts";

/** Opened connections waiting to be taken from the listener, at most. */
const _BACKLOG = 128;

/** Options of {@linkcode listenWebSocket}. */
export interface WebSocketListenOptions extends ListenOptions, WebSocketConnectionOptions {
  /** The one path that accepts WebSockets, like `/fedgpu` (default: every path). */
  path?: string;
}

/** A WebSocket listener; see {@linkcode listenWebSocket}. */
export interface WebSocketListener extends Listener {
  /**
   * Resolves once the HTTP server has stopped and released the port: after `close()`, when
   * the last connection it accepted has closed.
   */
  readonly finished: Promise<void>;
}

class _WebSocketListener implements WebSocketListener {
  readonly address: string;
  readonly hostname: string;
  readonly port: number;
  readonly finished: Promise<void>;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #path: string | undefined;
  #options: WebSocketConnectionOptions;
  /** Opened connections not yet taken. */
  #ready: WebSocketConnection[] = [];
  #waiters: (() => void)[] = [];
  /** Every upgraded socket not closed yet. */
  #live = new Set<WebSocket>();
  #closed = false;
  #stopping = false;
  #stopped!: () => void;

  constructor(options: WebSocketListenOptions) {
    const { hostname, port } = checkListenOptions(options);
    const { path } = options;
    if (path !== undefined && (typeof path !== "string" || !path.startsWith("/"))) {
      throw new TypeError(`options.path must start with "/", got ${JSON.stringify(path)}`);
    }
    this.#path = path;
    this.#options = checkWebSocketLimits(options);
    this.finished = new Promise((resolve) => this.#stopped = resolve);
    this.#server = Deno.serve(
      { hostname, port, onListen() {} },
      (request, info) => this.#handle(request, info),
    );
    this.hostname = this.#server.addr.hostname;
    this.port = this.#server.addr.port;
    this.address = `ws://${formatAuthority(this.hostname, this.port)}${path ?? "/"}`;
  }

  #handle(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response {
    if (this.#closed || this.#ready.length >= _BACKLOG) {
      return new Response("Not accepting connections\n", { status: 503 });
    }
    if (this.#path !== undefined && new URL(request.url).pathname !== this.#path) {
      return new Response("Not found\n", { status: 404 });
    }
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("This endpoint speaks WebSocket only\n", {
        status: 426,
        headers: { upgrade: "websocket" },
      });
    }
    // The peer's address is gone once the request is upgraded.
    const remote = `ws://${formatAuthority(info.remoteAddr.hostname, info.remoteAddr.port)}`;
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request);
    } catch (error) {
      return new Response(`Bad WebSocket upgrade: ${(error as Error).message}\n`, {
        status: 400,
      });
    }
    const { socket, response } = upgraded;
    const connection = new WebSocketConnection(socket, remote, this.#options);
    this.#live.add(socket);
    socket.addEventListener("close", () => {
      this.#live.delete(socket);
      this.#stopWhenIdle();
    });
    socket.addEventListener("open", () => {
      if (this.#closed) {
        connection.close();
        return;
      }
      this.#ready.push(connection);
      this.#waiters.shift()?.();
    }, { once: true });
    return response;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Connection> {
    while (true) {
      const connection = this.#ready.shift();
      if (connection !== undefined) {
        yield connection;
      } else if (this.#closed) {
        return;
      } else {
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const connection of this.#ready.splice(0)) connection.close();
    for (const wake of this.#waiters.splice(0)) wake();
    this.#stopWhenIdle();
  }

  #stopWhenIdle(): void {
    if (!this.#closed || this.#live.size > 0 || this.#stopping) return;
    this.#stopping = true;
    this.#server.shutdown().finally(() => this.#stopped());
  }
}

/**
 * Listens for WebSocket connections.
 *
 * @param options The address (default `127.0.0.1`), the port (0 for a free one), the path,
 *   and the limits of each connection.
 * @returns The listener; its `address` is `ws://host:port/path`.
 * @throws {TypeError} For a path that does not start with `/`.
 * @throws {RangeError} For a port or a limit out of range.
 * @throws {Deno.errors.AddrInUse} If the port is taken (and other errors of `Deno.serve`).
 */
export function listenWebSocket(options: WebSocketListenOptions): WebSocketListener {
  return new _WebSocketListener(options);
}

/** The WebSocket transport: {@linkcode listenWebSocket} and `dialWebSocket`. */
export const webSocketTransport: Transport<WebSocketListenOptions, WebSocketDialOptions> = {
  listen: listenWebSocket,
  dial: dialWebSocket,
};
