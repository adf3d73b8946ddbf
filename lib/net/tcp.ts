/**
 * The TCP transport: `Deno.listen` and `Deno.connect`, with keep-alive on and Nagle's
 * algorithm off on every connection. Addresses are `tcp://host:port` (`tcp://[::1]:3000`
 * for IPv6).
 *
 * ```ts ignore
 * const listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
 * const connection = await dialTcp(listener.address, { timeoutMs: 5_000 });
 * ```
 *
 * This module needs Deno (`--allow-net`).
 *
 * @module
 */

import {
  checkListenOptions,
  checkTimeout,
  DEFAULT_DIAL_TIMEOUT_MS,
  formatAuthority,
  MAX_TIMER_MS,
} from "./_transport_checks.ts";
import {
  type Connection,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Transport,
  TransportError,
} from "./transport.ts";

function _tcpUrl(addr: Deno.Addr): string {
  const { hostname, port } = addr as Deno.NetAddr;
  return `tcp://${formatAuthority(hostname, port)}`;
}

/** An accepted or dialed TCP connection. */
class _TcpConnection implements Connection {
  readonly remote: string;
  #conn: Deno.TcpConn;
  #closed = false;

  constructor(conn: Deno.TcpConn) {
    conn.setKeepAlive(true);
    conn.setNoDelay(true);
    this.#conn = conn;
    this.remote = _tcpUrl(conn.remoteAddr);
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    try {
      return await this.#conn.read(buffer);
    } catch (cause) {
      if (this.#closed) return null;
      throw new TransportError(
        "closed",
        `Connection to ${this.remote} failed while reading: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  async write(data: Uint8Array): Promise<number> {
    if (this.#closed) {
      throw new TransportError("closed", `Connection to ${this.remote} is closed`);
    }
    try {
      return await this.#conn.write(data);
    } catch (cause) {
      throw new TransportError(
        "closed",
        `Connection to ${this.remote} failed while writing: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }
}

/** A TCP listener; see {@linkcode listenTcp}. */
class _TcpListener implements Listener {
  readonly address: string;
  readonly hostname: string;
  readonly port: number;
  #listener: Deno.TcpListener;
  #closed = false;

  constructor(listener: Deno.TcpListener) {
    this.#listener = listener;
    this.hostname = listener.addr.hostname;
    this.port = listener.addr.port;
    this.address = _tcpUrl(listener.addr);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Connection> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
      if (this.#closed) {
        conn.close();
        return;
      }
      yield new _TcpConnection(conn);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
  }
}

/**
 * Listens for TCP connections.
 *
 * @param options The address (default `127.0.0.1`) and the port (0 for a free one).
 * @returns The listener; its connections have keep-alive on and no Nagle delay.
 * @throws {RangeError} For a port outside [0, 65535].
 * @throws {Deno.errors.AddrInUse} If the port is taken (and other errors of `Deno.listen`).
 */
export function listenTcp(options: ListenOptions): Listener {
  const { hostname, port } = checkListenOptions(options);
  return new _TcpListener(Deno.listen({ hostname, port, transport: "tcp" }));
}

/**
 * Parses `tcp://host:port`.
 *
 * @throws {TypeError} For anything else.
 */
function _parseTcpAddress(address: string): { hostname: string; port: number } {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new TypeError(`A TCP address is tcp://host:port, got ${JSON.stringify(address)}`);
  }
  if (
    url.protocol !== "tcp:" || url.hostname === "" || url.port === "" ||
    (url.pathname !== "" && url.pathname !== "/") || url.search !== "" || url.hash !== "" ||
    url.username !== "" || url.password !== ""
  ) {
    throw new TypeError(`A TCP address is tcp://host:port, got ${JSON.stringify(address)}`);
  }
  return { hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: Number(url.port) };
}

/**
 * Opens a TCP connection.
 *
 * @param address `tcp://host:port`, as {@linkcode Listener.address} reports it.
 * @param options The deadline (default 10 s).
 * @returns The connection, with keep-alive on and no Nagle delay.
 * @throws {TypeError} For a malformed address.
 * @throws {RangeError} For a deadline that is not a positive number.
 * @throws {TransportError} `refused` if nothing listens there, `timeout` if no connection
 *   comes within the deadline, `unreachable` for any other failure (its `cause` says which).
 */
export async function dialTcp(address: string, options: DialOptions = {}): Promise<Connection> {
  const { hostname, port } = _parseTcpAddress(address);
  const timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS);
  const controller = new AbortController();
  const timer = timeoutMs > MAX_TIMER_MS
    ? undefined
    : setTimeout(() => controller.abort(), timeoutMs);
  try {
    return new _TcpConnection(
      await Deno.connect({ hostname, port, transport: "tcp", signal: controller.signal }),
    );
  } catch (cause) {
    if (controller.signal.aborted) {
      throw new TransportError("timeout", `No connection to ${address} within ${timeoutMs} ms`, {
        cause,
      });
    }
    if (cause instanceof Deno.errors.ConnectionRefused) {
      throw new TransportError("refused", `Connection to ${address} refused`, { cause });
    }
    throw new TransportError(
      "unreachable",
      `Cannot connect to ${address}: ${(cause as Error).message}`,
      { cause },
    );
  } finally {
    clearTimeout(timer);
  }
}

/** The TCP transport: {@linkcode listenTcp} and {@linkcode dialTcp}. */
export const tcpTransport: Transport = { listen: listenTcp, dial: dialTcp };
