/**
 * A server's connection to one admitted client: its reader loop hands awaited messages to
 * their waiters, sends have deadlines (a client that stops reading cannot stall the round),
 * and any protocol breach ends the connection with an error message to the client. It is a
 * {@linkcode Member} of the round driver.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { SecureChannel } from "../net/channel.ts";
import { ChannelError } from "../net/errors.ts";
import type { ByteStream } from "../net/framing.ts";
import { MessageError } from "../net/message.ts";
import { clientKey, type FlMessage, type HelloMessage, receiveFl, sendFl } from "./protocol.ts";
import type { Awaited, Member } from "./round.ts";

interface _Waiter {
  type: Awaited;
  task: number;
  settle: (result: FlMessage | string) => void;
}

/** One admitted client: its channel, its reader loop, and what the server awaits from it. */
export class ClientConnection implements Member {
  readonly id: string;
  readonly key: number;
  readonly examples: number;
  readonly stages: readonly string[];
  /** The secure channel to the client. */
  readonly channel: SecureChannel;
  /** Whether the connection has ended. */
  closed: boolean = false;
  #conn: ByteStream;
  #waiters: _Waiter[] = [];
  #onClose: (connection: ClientConnection, reason: string) => void;
  #log: (line: string) => void;
  #shortTimeoutMs: number;

  /**
   * Wraps an admitted client's channel.
   *
   * @param hello The client's hello.
   * @param conn Its byte stream (closed to cut a stalled send short).
   * @param channel Its secure channel.
   * @param onClose Told when the connection ends, with the reason.
   * @param log Where log lines go.
   * @param shortTimeoutMs The deadline of small sends.
   */
  constructor(
    hello: HelloMessage,
    conn: ByteStream,
    channel: SecureChannel,
    onClose: (connection: ClientConnection, reason: string) => void,
    log: (line: string) => void,
    shortTimeoutMs: number,
  ) {
    this.id = hello.id;
    this.key = clientKey(hello.id);
    this.examples = hello.examples;
    this.stages = hello.stages;
    this.#conn = conn;
    this.channel = channel;
    this.#onClose = onClose;
    this.#log = log;
    this.#shortTimeoutMs = shortTimeoutMs;
  }

  /** Reads messages until the connection ends, handing awaited ones to their waiters. */
  async readLoop(): Promise<void> {
    while (!this.closed) {
      let message: FlMessage;
      try {
        message = await receiveFl(this.channel);
      } catch (error) {
        if (error instanceof MessageError) {
          await this.fail(error.code, error.message);
        } else {
          const reason = error instanceof ChannelError && error.code === "closed"
            ? "disconnected"
            : `connection failed: ${(error as Error).message}`;
          this.close(reason);
        }
        return;
      }
      switch (message.type) {
        case "ready":
        case "update":
        case "evaluation":
        case "stage-reply": {
          const index = this.#waiters.findIndex((waiter) =>
            waiter.type === message.type && waiter.task === message.task
          );
          if (index >= 0) {
            this.#waiters.splice(index, 1)[0]!.settle(message);
          } else if (message.type === "update" || message.type === "stage-reply") {
            // Updates and stage replies are sent only when asked for: an unsolicited one
            // breaks the protocol.
            await this.fail(
              "unexpected",
              `A ${message.type} for task ${message.task} was not requested`,
            );
            return;
          }
          // A late `ready` or `evaluation` of a finished task: ignored.
          break;
        }
        case "bye":
          this.close(`left: ${message.reason}`);
          return;
        case "error":
          this.close(`reported an error (${message.code}): ${message.message}`);
          return;
        default:
          await this.fail("unexpected", `A client may not send a ${message.type} message`);
          return;
      }
    }
  }

  /**
   * Waits for a message of `type` for `task`.
   *
   * @returns The message, or a reason it will not come.
   */
  expect(type: Awaited, task: number, timeoutMs: number): Promise<FlMessage | string> {
    if (this.closed) return Promise.resolve("disconnected");
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        resolve(`no ${type} within ${(timeoutMs / 1000).toFixed(1)} s`);
      }, Math.max(0, Math.min(timeoutMs, 2 ** 31 - 1)));
      const waiter: _Waiter = {
        type,
        task,
        settle: (result) => {
          clearTimeout(timer);
          resolve(result);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /**
   * Sends a message; on failure, or if it has not gone out within `timeoutMs` (a client that
   * stops reading stalls a send larger than the socket buffers for ever), the connection is
   * closed and false returned.
   *
   * @param message The message.
   * @param timeoutMs The deadline (default the handshake timeout, for small messages).
   */
  async send(message: FlMessage, timeoutMs: number = this.#shortTimeoutMs): Promise<boolean> {
    if (this.closed) return false;
    const timer = setTimeout(() => {
      // Closing the socket ends the stalled write; closing the channel alone would wait on it.
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
      this.close(
        `a ${message.type} message took more than ${(timeoutMs / 1000).toFixed(1)} s to send`,
      );
    }, Math.max(0, Math.min(timeoutMs, 2 ** 31 - 1)));
    try {
      await sendFl(this.channel, message);
      return true;
    } catch (error) {
      this.close(`send failed: ${(error as Error).message}`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Tells the client what was wrong, then closes. */
  async fail(code: string, message: string): Promise<void> {
    this.#log(`client ${this.id}: ${message}; closing its connection`);
    await this.send({ type: "error", code, message });
    this.close(`${code}: ${message}`);
  }

  /** Closes the connection; whatever was awaited from it settles with `reason`. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter.settle(reason);
    this.channel.close().catch(() => {});
    this.#onClose(this, reason);
  }
}
