/**
 * Argument checks and address formatting shared by the transports.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { ListenOptions } from "./transport.ts";

/** The default deadline of a dial, in milliseconds. */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/**
 * Checks where to listen.
 *
 * @param options The options.
 * @returns The hostname (default `127.0.0.1`) and the port.
 * @throws {TypeError} If the options or the hostname are not what they should be.
 * @throws {RangeError} For a port outside [0, 65535].
 */
export function checkListenOptions(options: ListenOptions): { hostname: string; port: number } {
  if (options === null || typeof options !== "object") {
    throw new TypeError("Listen options must be an object with a port");
  }
  const { hostname = "127.0.0.1" } = options;
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError(`options.hostname must be a host name or address, got ${hostname}`);
  }
  return { hostname, port: checkPort(options.port) };
}

/**
 * Checks a listen port: an integer in [0, 65535].
 *
 * @param port The port.
 * @returns The port.
 * @throws {RangeError} If it is not.
 */
export function checkPort(port: unknown): number {
  if (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65535) {
    throw new RangeError(`A port is an integer in [0, 65535], got ${port}`);
  }
  return port as number;
}

/**
 * Checks a dial deadline: a positive number of milliseconds (Infinity for none).
 *
 * @param timeoutMs The deadline.
 * @returns The deadline.
 * @throws {RangeError} If it is not.
 */
export function checkTimeout(timeoutMs: unknown): number {
  if (typeof timeoutMs !== "number" || !(timeoutMs > 0)) {
    throw new RangeError(`A dial timeout is a positive number of milliseconds, got ${timeoutMs}`);
  }
  return timeoutMs;
}

/**
 * Writes `host:port` as a URL authority: IPv6 addresses go in brackets.
 *
 * @param hostname The host.
 * @param port The port.
 * @returns The authority.
 */
export function formatAuthority(hostname: string, port: number): string {
  return `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

/** The longest delay a timer holds; longer deadlines (Infinity) are treated as none. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Checks the limits of a WebSocket connection, filling in the defaults.
 *
 * @param options `maxQueuedBytes` (default 16 MiB) and `maxBufferedBytes` (default 1 MiB).
 * @returns Both limits.
 * @throws {RangeError} For a limit that is not a positive integer.
 */
export function checkWebSocketLimits(
  options: { maxQueuedBytes?: number; maxBufferedBytes?: number },
): { maxQueuedBytes: number; maxBufferedBytes: number } {
  const { maxQueuedBytes = 16 << 20, maxBufferedBytes = 1 << 20 } = options;
  return {
    maxQueuedBytes: _positiveInteger(maxQueuedBytes, "maxQueuedBytes"),
    maxBufferedBytes: _positiveInteger(maxBufferedBytes, "maxBufferedBytes"),
  };
}

function _positiveInteger(value: unknown, name: string): number {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value as number;
}
