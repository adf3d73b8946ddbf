/**
 * The secure channel: logical messages over Noise transport messages.
 *
 * A logical message of any size travels as a typed header plus a stream of chunks, each chunk
 * one Noise transport message (at most 65535 bytes with its 16-byte tag) in one frame:
 *
 * ```
 * plaintext = kind (1 byte) || body
 *   kind 1 START  body = type (1 byte) || total length (8 bytes, big-endian) || first chunk
 *   kind 2 CHUNK  body = next chunk
 *   kind 3 CLOSE  body = empty (a clean goodbye)
 * ```
 *
 * The receiver checks the total length against its limit before allocating anything, then
 * fills exactly that many bytes: memory per connection is bounded by the largest message it
 * accepts. Any failure (a frame that does not decrypt, a replayed or reordered frame, a
 * malformed header, a stall) closes the channel with a {@linkcode ChannelError}.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { ChannelError } from "./errors.ts";
import { type ByteStream, type FrameReader, MAX_FRAME, writeFrame } from "./framing.ts";
import type { CipherState } from "./noise/cipher_state.ts";

/** AEAD tag length of Noise's AESGCM. */
const _TAG = 16;
/** The largest plaintext of one transport message. */
const _MAX_PLAINTEXT = MAX_FRAME - _TAG;
const _START = 1;
const _CHUNK = 2;
const _CLOSE = 3;
const _START_HEADER = 1 + 1 + 8;
const _EMPTY = new Uint8Array(0);

/** Message types of the channel: UTF-8 text, raw bytes, or an application type 16-255. */
export const MESSAGE_TYPE = { text: 1, bytes: 2 } as const;

/** Limits of a channel. */
export interface ChannelOptions {
  /** The largest logical message accepted, in bytes (default 1 GiB). */
  maxMessageBytes?: number;
  /** How long to wait for the next message, in milliseconds (default 5 minutes). */
  idleTimeoutMs?: number;
  /** How long one frame may take to arrive once begun, in milliseconds (default 30 s). */
  frameTimeoutMs?: number;
}

/** A received logical message. */
export interface Message {
  /** Its type: {@linkcode MESSAGE_TYPE} or an application type. */
  type: number;
  /** Its bytes. */
  data: Uint8Array;
}

/** An established channel; create one with `handshakeServer` or `handshakeClient`. */
export class SecureChannel {
  /** The peer's static public key, when the handshake pattern reveals it. */
  readonly remoteStaticKey: Uint8Array | null;
  /** The handshake hash: the same on both ends, a unique name of this session. */
  readonly handshakeHash: Uint8Array;
  /** The largest logical message accepted, in bytes. */
  readonly maxMessageBytes: number;
  #stream: ByteStream;
  #reader: FrameReader;
  #send: CipherState;
  #receive: CipherState;
  #idleTimeoutMs: number;
  #frameTimeoutMs: number;
  #closed = false;
  #sending: Promise<void> = Promise.resolve();

  /**
   * Wraps a stream whose handshake is complete.
   *
   * @param stream The byte stream.
   * @param reader The stream's frame reader (it may hold bytes already read).
   * @param keys The transport cipher states, the remote static key and the handshake hash.
   * @param options Limits.
   */
  constructor(
    stream: ByteStream,
    reader: FrameReader,
    keys: {
      send: CipherState;
      receive: CipherState;
      remoteStaticKey: Uint8Array | null;
      handshakeHash: Uint8Array;
    },
    options: ChannelOptions = {},
  ) {
    const { maxMessageBytes = 1 << 30, idleTimeoutMs = 300_000, frameTimeoutMs = 30_000 } = options;
    if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes < 0) {
      throw new RangeError(
        `maxMessageBytes must be a non-negative integer, got ${maxMessageBytes}`,
      );
    }
    this.#stream = stream;
    this.#reader = reader;
    this.#send = keys.send;
    this.#receive = keys.receive;
    this.remoteStaticKey = keys.remoteStaticKey;
    this.handshakeHash = keys.handshakeHash;
    this.maxMessageBytes = maxMessageBytes;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#frameTimeoutMs = frameTimeoutMs;
  }

  /** Whether the channel is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends one logical message. Sends are queued, so concurrent calls never interleave.
   *
   * @param type {@linkcode MESSAGE_TYPE}`.text`, `.bytes`, or an application type in 16-255.
   * @param data The message, or its parts in order (sent as one message, never concatenated
   *   in memory: a large shared buffer can go to many peers without a copy per peer).
   * @throws {ChannelError} If the channel is closed or the stream fails (it is then closed).
   */
  send(type: number, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (!Number.isInteger(type) || type < 1 || type > 255) {
      throw new RangeError(`Message type must be an integer in [1, 255], got ${type}`);
    }
    const parts = Array.isArray(data) ? [...data] as Uint8Array[] : [data as Uint8Array];
    const sent = this.#sending.then(() => this.#sendNow(type, parts));
    this.#sending = sent.catch(() => {});
    return sent;
  }

  async #sendNow(type: number, parts: Uint8Array[]): Promise<void> {
    this.#checkOpen();
    try {
      const total = parts.reduce((sum, part) => sum + part.length, 0);
      let part = 0;
      let offset = 0;
      /** Copies the next `count` bytes of the message into `target` at `at`. */
      const take = (target: Uint8Array, at: number, count: number) => {
        while (count > 0) {
          const source = parts[part]!;
          const n = Math.min(count, source.length - offset);
          target.set(source.subarray(offset, offset + n), at);
          at += n;
          count -= n;
          offset += n;
          if (offset === source.length) {
            part++;
            offset = 0;
          }
        }
      };
      while (part < parts.length && parts[part]!.length === 0) part++;
      const first = Math.min(total, _MAX_PLAINTEXT - _START_HEADER);
      const start = new Uint8Array(_START_HEADER + first);
      start[0] = _START;
      start[1] = type;
      const view = new DataView(start.buffer);
      view.setUint32(2, Math.floor(total / 0x100000000));
      view.setUint32(6, total >>> 0);
      take(start, _START_HEADER, first);
      await this.#writeMessage(start);
      if (first === total) return;
      const chunk = new Uint8Array(_MAX_PLAINTEXT);
      chunk[0] = _CHUNK;
      for (let sent = first; sent < total;) {
        const n = Math.min(total - sent, _MAX_PLAINTEXT - 1);
        take(chunk, 1, n);
        sent += n;
        await this.#writeMessage(chunk.subarray(0, 1 + n));
      }
    } catch (error) {
      this.#abort();
      throw error;
    }
  }

  async #writeMessage(plaintext: Uint8Array): Promise<void> {
    await writeFrame(this.#stream, await this.#send.encryptWithAd(_EMPTY, plaintext));
  }

  /**
   * Receives the next logical message.
   *
   * @returns The message's type and bytes.
   * @throws {ChannelError} `closed` when the peer said goodbye or the stream ended, `decrypt`
   *   for a frame that fails authentication (tampered, replayed or reordered), `too-large` for
   *   a message over the limit, `protocol` for a malformed header, `timeout` for a stall; the
   *   channel is closed in every case.
   */
  async receive(): Promise<Message> {
    this.#checkOpen();
    try {
      const start = await this.#readMessage(this.#idleTimeoutMs, "the next message");
      if (start[0] === _CLOSE && start.length === 1) {
        throw new ChannelError("closed", "The peer closed the channel");
      }
      if (start[0] !== _START || start.length < _START_HEADER) {
        throw new ChannelError("protocol", "Expected the start of a message");
      }
      const view = new DataView(start.buffer, start.byteOffset, start.byteLength);
      const total = view.getUint32(2) * 0x100000000 + view.getUint32(6);
      if (total > this.maxMessageBytes) {
        throw new ChannelError(
          "too-large",
          `Incoming message of ${total} bytes exceeds the limit of ${this.maxMessageBytes}`,
        );
      }
      const data = new Uint8Array(total);
      let filled = start.length - _START_HEADER;
      if (filled > total) throw new ChannelError("protocol", "Message data exceeds its length");
      data.set(start.subarray(_START_HEADER), 0);
      while (filled < total) {
        const chunk = await this.#readMessage(this.#frameTimeoutMs, "the rest of a message");
        if (chunk[0] !== _CHUNK) throw new ChannelError("protocol", "Expected a message chunk");
        if (filled + chunk.length - 1 > total) {
          throw new ChannelError("protocol", "Message data exceeds its length");
        }
        data.set(chunk.subarray(1), filled);
        filled += chunk.length - 1;
      }
      return { type: start[1]!, data };
    } catch (error) {
      this.#abort();
      throw error;
    }
  }

  async #readMessage(timeoutMs: number, what: string): Promise<Uint8Array> {
    const frame = await this.#reader.read(timeoutMs, what, this.#frameTimeoutMs);
    if (frame.length < _TAG + 1) {
      throw new ChannelError("protocol", `A frame of ${frame.length} bytes is too short`);
    }
    try {
      return await this.#receive.decryptWithAd(_EMPTY, frame);
    } catch (cause) {
      throw new ChannelError(
        "decrypt",
        "A frame failed authentication (tampered, replayed or reordered)",
        { cause },
      );
    }
  }

  /**
   * Says goodbye (when the channel is still healthy) and closes the stream.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#sending;
      await this.#writeMessage(new Uint8Array([_CLOSE]));
    } catch {
      // The peer may already be gone; closing is all that is left.
    }
    this.#abort();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ChannelError("closed", "The channel is closed");
  }

  #abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#stream.close();
    } catch {
      // Already closed.
    }
  }
}
