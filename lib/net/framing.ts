/**
 * Frames on a byte stream: a 2-byte big-endian length, then that many bytes (the Noise
 * transport framing of the Noise spec, section 3: messages of at most 65535 bytes). Reads have
 * deadlines, so a peer that stalls mid-frame or never speaks is cut off.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { ChannelError } from "./errors.ts";

/** The longest delay a timer holds; longer deadlines (Infinity) are treated as none. */
const _MAX_TIMER_MS = 2 ** 31 - 1;

/** What a stream's failure says. */
function _describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

/** The largest frame body (a Noise message): 65535 bytes. */
export const MAX_FRAME = 65535;

/** The byte stream a channel runs on: a `Deno.Conn` or anything that reads and writes alike. */
export interface ByteStream {
  /** Reads into `buffer`; resolves to the byte count, or null at the end of the stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `data`; resolves to the byte count written. */
  write(data: Uint8Array): Promise<number>;
  /** Closes the stream; pending reads end. */
  close(): void;
}

/** Reads frames from a stream through one reusable buffer. */
export class FrameReader {
  #stream: ByteStream;
  #buffer = new Uint8Array(2 + MAX_FRAME);
  #start = 0;
  #end = 0;

  /**
   * Creates a reader.
   *
   * @param stream The stream to read.
   */
  constructor(stream: ByteStream) {
    this.#stream = stream;
  }

  /**
   * Reads one frame body, failing if it has not fully arrived within `timeoutMs` from now.
   *
   * @param timeoutMs How long to wait for the frame to begin, in milliseconds.
   * @param what What the frame is, for error messages.
   * @param frameTimeoutMs How long the rest of the frame may take once begun (default
   *   `timeoutMs`).
   * @returns A copy of the frame's body.
   * @throws {ChannelError} `closed` if the stream ends cleanly between frames, `truncated` if
   *   it ends inside a frame, `timeout` if the deadline passes (the stream is then closed).
   */
  async read(timeoutMs: number, what: string, frameTimeoutMs = timeoutMs): Promise<Uint8Array> {
    let deadline = performance.now() + timeoutMs;
    await this.#fill(1, deadline, what, true);
    deadline = Math.min(deadline, performance.now() + frameTimeoutMs);
    await this.#fill(2, deadline, what, false);
    const length = (this.#buffer[this.#start]! << 8) | this.#buffer[this.#start + 1]!;
    await this.#fill(2 + length, deadline, what, false);
    const body = this.#buffer.slice(this.#start + 2, this.#start + 2 + length);
    this.#start += 2 + length;
    return body;
  }

  /** Ensures `count` unread bytes are buffered. */
  async #fill(count: number, deadline: number, what: string, atBoundary: boolean): Promise<void> {
    if (this.#end - this.#start >= count) return;
    // Compact: move the unread bytes to the front of the buffer.
    this.#buffer.copyWithin(0, this.#start, this.#end);
    this.#end -= this.#start;
    this.#start = 0;
    while (this.#end < count) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) this.#timeout(what);
      let timer: ReturnType<typeof setTimeout> | undefined;
      // An infinite (or longer than a timer can hold) deadline never expires.
      const expired = remaining > _MAX_TIMER_MS
        ? new Promise<"timeout">(() => {})
        : new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), remaining);
        });
      const reading = this.#stream.read(this.#buffer.subarray(this.#end));
      // A read still pending when the deadline closes the stream rejects later: observe it.
      reading.catch(() => {});
      let n: number | null | "timeout";
      try {
        n = await Promise.race([reading, expired]);
      } catch (cause) {
        throw new ChannelError(
          "closed",
          `Connection failed while reading ${what}: ${_describe(cause)}`,
          { cause },
        );
      } finally {
        clearTimeout(timer);
      }
      if (n === "timeout") this.#timeout(what);
      if (n === null) {
        if (atBoundary && this.#end === 0) {
          throw new ChannelError("closed", `Connection closed by the peer before ${what}`);
        }
        throw new ChannelError("truncated", `Connection closed in the middle of ${what}`);
      }
      this.#end += n;
    }
  }

  #timeout(what: string): never {
    try {
      this.#stream.close();
    } catch {
      // Already closed.
    }
    throw new ChannelError("timeout", `Timed out waiting for ${what}`);
  }
}

/**
 * Writes one frame: the 2-byte length, then `body`.
 *
 * @param stream The stream.
 * @param body At most {@linkcode MAX_FRAME} bytes.
 * @throws {ChannelError} `too-large` for a body over the limit, `closed` if writing fails.
 */
export async function writeFrame(stream: ByteStream, body: Uint8Array): Promise<void> {
  if (body.length > MAX_FRAME) {
    throw new ChannelError("too-large", `Frame of ${body.length} bytes exceeds ${MAX_FRAME}`);
  }
  const frame = new Uint8Array(2 + body.length);
  frame[0] = body.length >> 8;
  frame[1] = body.length & 0xff;
  frame.set(body, 2);
  try {
    for (let offset = 0; offset < frame.length;) {
      offset += await stream.write(frame.subarray(offset));
    }
  } catch (cause) {
    throw new ChannelError("closed", `Connection failed while writing: ${_describe(cause)}`, {
      cause,
    });
  }
}
