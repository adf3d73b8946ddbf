/**
 * Typed messages over a secure channel: each message is one msgpack map carrying a protocol
 * name, a version and a type, sent as one logical channel message of type
 * {@linkcode MESSAGE_TYPE_MSGPACK}. Decoding checks the envelope; the fields are checked by
 * the protocol that defines them with the readers below, so every decoded message is validated
 * before use.
 *
 * ```
 * message = msgpack map { p: protocol name, v: version, type: string, ...fields }
 * ```
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { decode, encode } from "@msgpack/msgpack";
import type { SecureChannel } from "./channel.ts";
import { ChannelError } from "./errors.ts";

/** The channel message type of msgpack messages (an application type, 16-255). */
export const MESSAGE_TYPE_MSGPACK = 16;

/** What was wrong with a received message. */
export type MessageErrorCode =
  | "malformed"
  | "protocol"
  | "version"
  | "unknown-type"
  | "invalid";

/** A received message that cannot be used: the connection it came on should be closed. */
export class MessageError extends Error {
  /**
   * What was wrong: `malformed` (not msgpack or not a map), `protocol` (another protocol),
   * `version` (an unsupported version), `unknown-type`, or `invalid` (a field missing or out
   * of range).
   */
  readonly code: MessageErrorCode;

  /**
   * Creates the error.
   *
   * @param code What was wrong.
   * @param message A sentence saying so.
   * @param options The underlying cause, if any.
   */
  constructor(code: MessageErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MessageError";
    this.code = code;
  }
}

/** A decoded message: its type and its fields (not yet validated). */
export interface RawMessage {
  /** The message type. */
  type: string;
  /** Every field of the map, the envelope's included. */
  fields: Record<string, unknown>;
}

/** The envelope a protocol puts on its messages. */
export interface MessageProtocol {
  /** The protocol's name, such as `fedgpu-fl`. */
  name: string;
  /** The version this end speaks. */
  version: number;
  /** The message types it knows. */
  types: readonly string[];
}

/**
 * Encodes a message.
 *
 * @param protocol The protocol's name and version.
 * @param type The message type.
 * @param fields The message's fields: numbers, strings, booleans, `Uint8Array`s, arrays and
 *   plain objects of them (fields named `p`, `v` or `type` are ignored: the envelope wins).
 * @returns The msgpack bytes.
 */
export function encodeMessage(
  protocol: MessageProtocol,
  type: string,
  fields: Record<string, unknown>,
): Uint8Array {
  // The envelope is written first and wins over fields of the same names.
  const envelope = { p: protocol.name, v: protocol.version, type };
  return encode({ ...envelope, ...fields, ...envelope });
}

/**
 * Decodes and checks a message's envelope.
 *
 * @param protocol The protocol expected.
 * @param bytes The msgpack bytes.
 * @returns The type and fields.
 * @throws {MessageError} `malformed`, `protocol`, `version` or `unknown-type`.
 */
export function decodeMessage(protocol: MessageProtocol, bytes: Uint8Array): RawMessage {
  let value: unknown;
  try {
    // Bounds keep a hostile length field from allocating more than the input could hold.
    value = decode(bytes, {
      maxStrLength: 1 << 16,
      maxBinLength: bytes.length,
      maxArrayLength: 1 << 16,
      maxMapLength: 64,
      maxExtLength: 0,
    });
  } catch (cause) {
    throw new MessageError(
      "malformed",
      `A message is not valid msgpack: ${(cause as Error).message ?? cause}`,
      { cause },
    );
  }
  if (!isRecord(value)) throw new MessageError("malformed", "A message is not a msgpack map");
  if (value.p !== protocol.name) {
    throw new MessageError(
      "protocol",
      `A message of protocol ${JSON.stringify(value.p)} arrived; expected ${protocol.name}`,
    );
  }
  if (value.v !== protocol.version) {
    throw new MessageError(
      "version",
      `A message of ${protocol.name} version ${JSON.stringify(value.v)} arrived; this end ` +
        `speaks version ${protocol.version}`,
    );
  }
  if (typeof value.type !== "string" || !protocol.types.includes(value.type)) {
    throw new MessageError(
      "unknown-type",
      `Unknown ${protocol.name} message type ${JSON.stringify(value.type)}`,
    );
  }
  return { type: value.type, fields: value };
}

/**
 * Encodes a message whose last field is a large byte string, without copying those bytes: the
 * parts, in order, are the message's msgpack encoding.
 *
 * @param protocol The protocol's name and version.
 * @param type The message type.
 * @param fields The other fields.
 * @param key The large field's name (it must not be among `fields`).
 * @param bytes The large field's value, referenced, not copied.
 * @returns The parts: the map up to the field's value, a bin32 header, then `bytes`.
 */
export function encodeMessageParts(
  protocol: MessageProtocol,
  type: string,
  fields: Record<string, unknown>,
  key: string,
  bytes: Uint8Array,
): Uint8Array[] {
  if (key in fields || key === "p" || key === "v" || key === "type") {
    throw new TypeError(`Field ${key} is given twice`);
  }
  // Encode the map with an empty byte string last; msgpack writes it as bin8 of length 0
  // (0xc4 0x00), which is replaced by a bin32 header of the real length.
  const head = encodeMessage(protocol, type, { ...fields, [key]: new Uint8Array(0) });
  if (head[head.length - 2] !== 0xc4 || head[head.length - 1] !== 0) {
    throw new Error("Unexpected msgpack encoding of an empty byte string");
  }
  const header = new Uint8Array(5);
  header[0] = 0xc6;
  new DataView(header.buffer).setUint32(1, bytes.length);
  return [head.subarray(0, head.length - 2), header, bytes];
}

/**
 * Sends a message on a channel.
 *
 * @param channel The channel.
 * @param protocol The protocol's name and version.
 * @param type The message type.
 * @param fields The fields.
 * @param large A large byte-string field, sent last without a copy (see
 *   {@linkcode encodeMessageParts}): many peers can be sent one model without a copy each.
 * @throws {ChannelError} If the channel fails.
 */
export function sendMessage(
  channel: SecureChannel,
  protocol: MessageProtocol,
  type: string,
  fields: Record<string, unknown>,
  large?: { key: string; bytes: Uint8Array },
): Promise<void> {
  return channel.send(
    MESSAGE_TYPE_MSGPACK,
    large === undefined
      ? encodeMessage(protocol, type, fields)
      : encodeMessageParts(protocol, type, fields, large.key, large.bytes),
  );
}

/**
 * Receives a message from a channel and checks its envelope.
 *
 * @param channel The channel.
 * @param protocol The protocol expected.
 * @returns The type and fields.
 * @throws {ChannelError} If the channel fails, or `unexpected-type` for a channel message that
 *   is not msgpack (the channel is closed).
 * @throws {MessageError} If the envelope is wrong (the channel is left open: the caller
 *   decides whether to answer before closing).
 */
export async function receiveMessage(
  channel: SecureChannel,
  protocol: MessageProtocol,
): Promise<RawMessage> {
  const { type, data } = await channel.receive();
  if (type !== MESSAGE_TYPE_MSGPACK) {
    await channel.close();
    throw new ChannelError("unexpected-type", `Expected a msgpack message, got type ${type}`);
  }
  return decodeMessage(protocol, data);
}

/**
 * Whether `value` is a plain map (not an array or bytes).
 *
 * @param value Anything.
 * @returns Whether it is a record.
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function _invalid(type: string, field: string, want: string, got: unknown): never {
  const shown = got instanceof Uint8Array
    ? `${got.length} bytes`
    : typeof got === "string"
    ? JSON.stringify(got.length > 40 ? got.slice(0, 40) + "..." : got)
    : Array.isArray(got)
    ? "an array"
    : String(got);
  throw new MessageError(
    "invalid",
    `Field ${field} of ${
      /^[aeiou]/.test(type) ? "an" : "a"
    } ${type} message must be ${want}, got ${shown}`,
  );
}

/** Readers of a message's fields: each returns the value or throws a `MessageError`. */
export interface FieldReaders {
  /** An integer in `[min, max]`. */
  int(message: RawMessage, field: string, min?: number, max?: number): number;
  /** A finite number in `[min, max]`. */
  number(message: RawMessage, field: string, min?: number, max?: number): number;
  /** A number or NaN. */
  metric(message: RawMessage, field: string): number;
  /** A string of at most `maxLength` characters matching `pattern`. */
  string(message: RawMessage, field: string, maxLength?: number, pattern?: RegExp): string;
  /** Bytes of at most `maxLength`. */
  bytes(message: RawMessage, field: string, maxLength?: number): Uint8Array;
  /** An array of strings. */
  strings(message: RawMessage, field: string, maxItems?: number, maxLength?: number): string[];
  /** An array of integers in `[min, max]`. */
  ints(message: RawMessage, field: string, maxItems?: number, min?: number, max?: number): number[];
}

/** Readers of a message's fields: each returns the value or throws a `MessageError`. */
export const read: FieldReaders = {
  /**
   * An integer in `[min, max]`.
   *
   * @param message The message.
   * @param field The field's name.
   * @param min The smallest value accepted.
   * @param max The largest value accepted.
   * @returns The value.
   */
  int(message: RawMessage, field: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const value = message.fields[field];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      _invalid(message.type, field, `an integer in [${min}, ${max}]`, value);
    }
    return value;
  },
  /**
   * A finite number in `[min, max]`.
   *
   * @param message The message.
   * @param field The field's name.
   * @param min The smallest value accepted.
   * @param max The largest value accepted.
   * @returns The value.
   */
  number(message: RawMessage, field: string, min = -Infinity, max = Infinity): number {
    const value = message.fields[field];
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
      _invalid(message.type, field, `a finite number in [${min}, ${max}]`, value);
    }
    return value;
  },
  /**
   * A number or NaN (metrics that may be missing travel as NaN).
   *
   * @param message The message.
   * @param field The field's name.
   * @returns The value.
   */
  metric(message: RawMessage, field: string): number {
    const value = message.fields[field];
    if (typeof value !== "number") _invalid(message.type, field, "a number", value);
    return value;
  },
  /**
   * A string of at most `maxLength` characters matching `pattern`.
   *
   * @param message The message.
   * @param field The field's name.
   * @param maxLength The longest string accepted.
   * @param pattern What it must match.
   * @returns The value.
   */
  string(message: RawMessage, field: string, maxLength = 1024, pattern?: RegExp): string {
    const value = message.fields[field];
    if (
      typeof value !== "string" || value.length > maxLength ||
      (pattern !== undefined && !pattern.test(value))
    ) {
      _invalid(
        message.type,
        field,
        `a string of at most ${maxLength} characters${pattern ? ` matching ${pattern}` : ""}`,
        value,
      );
    }
    return value;
  },
  /**
   * Bytes of at most `maxLength`.
   *
   * @param message The message.
   * @param field The field's name.
   * @param maxLength The most bytes accepted.
   * @returns The value (a view into the message).
   */
  bytes(message: RawMessage, field: string, maxLength = Infinity): Uint8Array {
    const value = message.fields[field];
    if (!(value instanceof Uint8Array) || value.length > maxLength) {
      _invalid(message.type, field, `bytes (at most ${maxLength})`, value);
    }
    return value;
  },
  /**
   * An array of strings, each at most `maxLength` characters, at most `maxItems` of them.
   *
   * @param message The message.
   * @param field The field's name.
   * @param maxItems The most items accepted.
   * @param maxLength The longest item accepted.
   * @returns The value.
   */
  strings(message: RawMessage, field: string, maxItems = 64, maxLength = 64): string[] {
    const value = message.fields[field];
    if (
      !Array.isArray(value) || value.length > maxItems ||
      !value.every((item) => typeof item === "string" && item.length <= maxLength)
    ) {
      _invalid(
        message.type,
        field,
        `an array of at most ${maxItems} strings of at most ${maxLength} characters`,
        value,
      );
    }
    return value as string[];
  },
  /**
   * An array of integers in `[min, max]`, at most `maxItems` of them.
   *
   * @param message The message.
   * @param field The field's name.
   * @param maxItems The most items accepted.
   * @param min The smallest value accepted.
   * @param max The largest value accepted.
   * @returns The value.
   */
  ints(
    message: RawMessage,
    field: string,
    maxItems = 16,
    min = 0,
    max = Number.MAX_SAFE_INTEGER,
  ): number[] {
    const value = message.fields[field];
    if (
      !Array.isArray(value) || value.length > maxItems ||
      !value.every((item) =>
        typeof item === "number" && Number.isInteger(item) && item >= min && item <= max
      )
    ) {
      _invalid(
        message.type,
        field,
        `an array of at most ${maxItems} integers in [${min}, ${max}]`,
        value,
      );
    }
    return value as number[];
  },
};
