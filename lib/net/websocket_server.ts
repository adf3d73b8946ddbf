/**
 * The server side of the WebSocket transport: `Deno.serve` upgrades requests on one path to
 * WebSockets and yields them as connections. Other requests get 404 (another path) or 426
 * (no upgrade asked for).
 *
 * @module
 */

import type { Connection, Listener } from "./transport.ts";
import { DEFAULT_MAX_QUEUED_BYTES, WebSocketConnection } from "./websocket.ts";

/** Options of {@linkcode listenWebSocket}. */
export interface WebSocketListenOptions {
  /** Address to listen on (default `127.0.0.1`). */
  hostname?: string;
  /** Port (0 picks a free one). */
  port: number;
  /** The path clients connect to (default `/fedgpu`). */
  path?: string;
  /** Bound on a connection's unread received bytes (default 4 MiB). */
  maxQueuedBytes?: number;
}

/**
 * Listens for WebSocket clients.
 *
 * @param options Address, port and path.
 * @returns The listener, once it listens.
 */
export async function listenWebSocket(options: WebSocketListenOptions): Promise<Listener> {
  const path = options.path ?? "/fedgpu";
  const maxQueued = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  // Shutting the HTTP server down ends its upgraded sockets too: it is shut down only once
  // closed and every connection it handed out has ended; until then it answers 503.
  const live = new Set<WebSocket>();
  let stopped = false;
  const stopWhenIdle = () => {
    if (closed && live.size === 0 && !stopped) {
      stopped = true;
      void server.shutdown();
    }
  };
  const ready: Connection[] = [];
  let wake: (() => void) | null = null;
  let closed = false;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  let listening!: (addr: Deno.NetAddr) => void;
  const addr = new Promise<Deno.NetAddr>((resolve) => listening = resolve);
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port,
    onListen: (local) => listening(local as Deno.NetAddr),
    handler: (request, info) => {
      if (closed) return new Response("Closed\n", { status: 503 });
      if (new URL(request.url).pathname !== path) {
        return new Response("Not found\n", { status: 404 });
      }
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("This endpoint speaks WebSocket\n", {
          status: 426,
          headers: { upgrade: "websocket" },
        });
      }
      // The peer's address is gone once the request is upgraded.
      const peer = info.remoteAddr as Deno.NetAddr;
      const { socket, response } = Deno.upgradeWebSocket(request);
      live.add(socket);
      socket.addEventListener("close", () => {
        live.delete(socket);
        stopWhenIdle();
      });
      const connection = new WebSocketConnection(
        socket,
        `ws://${peer.hostname}:${peer.port}`,
        maxQueued,
      );
      socket.addEventListener("open", () => {
        if (closed) {
          connection.close();
          return;
        }
        ready.push(connection);
        notify();
      }, { once: true });
      return response;
    },
  });
  server.finished.catch(() => {});
  const local = await addr;
  return {
    address: `ws://${local.hostname}:${local.port}${path}`,
    hostname: local.hostname,
    port: local.port,
    close() {
      if (closed) return;
      closed = true;
      stopWhenIdle();
      notify();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const next = ready.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (closed) return;
        await new Promise<void>((resolve) => wake = resolve);
      }
    },
  };
}
