/**
 * Transports: where byte streams come from. A {@linkcode Listener} yields the connections of
 * clients; a dial opens one to a server. The Noise handshake and the secure channel run on
 * any of them unchanged.
 *
 * @module
 */

import type { ByteStream } from "./framing.ts";

/** A byte stream to a peer. */
export interface Connection extends ByteStream {
  /** The peer, such as `tcp://127.0.0.1:50123`. */
  readonly remote: string;
}

/** Accepts connections until closed. */
export interface Listener extends AsyncIterable<Connection> {
  /** Where it listens, such as `tcp://127.0.0.1:3000`. */
  readonly address: string;
  /** The host it listens on. */
  readonly hostname: string;
  /** The port it listens on. */
  readonly port: number;
  /** Stops accepting; the iteration ends. */
  close(): Promise<void> | void;
}

class _TcpConnection implements Connection {
  readonly remote: string;
  readonly #conn: Deno.TcpConn;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    const peer = conn.remoteAddr;
    this.remote = `tcp://${peer.hostname}:${peer.port}`;
    conn.setKeepAlive(true);
    conn.setNoDelay(true);
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#conn.read(buffer);
  }

  write(data: Uint8Array): Promise<number> {
    return this.#conn.write(data);
  }

  close(): void {
    this.#conn.close();
  }
}

/**
 * Listens for TCP connections.
 *
 * @param options Host (default `127.0.0.1`) and port (0 picks a free one).
 * @returns The listener.
 */
export function listenTcp(options: { hostname?: string; port: number }): Listener {
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port,
    transport: "tcp",
  });
  const { hostname, port } = listener.addr;
  return {
    address: `tcp://${hostname}:${port}`,
    hostname,
    port,
    close() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    },
    async *[Symbol.asyncIterator]() {
      try {
        for await (const conn of listener) yield new _TcpConnection(conn);
      } catch (error) {
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
    },
  };
}

/**
 * Opens a TCP connection.
 *
 * @param options Host (default `127.0.0.1`) and port.
 * @returns The connection.
 */
export async function dialTcp(options: { hostname?: string; port: number }): Promise<Connection> {
  return new _TcpConnection(
    await Deno.connect({ hostname: options.hostname ?? "127.0.0.1", port: options.port }),
  );
}
