/**
 * Model bytes: a versioned msgpack envelope holding a model's architecture and parameters.
 *
 * Layout (format version 1):
 *
 * ```
 * envelope = msgpack map {
 *   format:  "fedgpu-model"
 *   version: 1
 *   body:    bin   msgpack map { layers: [layer...], params: bin (little-endian float32) }
 *   sha256:  bin   SHA-256 of body's bytes
 * }
 * layer = { kind: "dense", nIn: uint, nOut: uint, activation: "identity" | "relu" }
 *       | { kind: "relu" } | { kind: "softmax" }
 * ```
 *
 * The digest makes any corruption of the body an error instead of a slightly wrong model.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { decode, encode } from "@msgpack/msgpack";
import { sha256 } from "@noble/hashes/sha2.js";
import { findLayerKind, type Layer, layerKind } from "./layers.ts";
import { countParams, MAX_PARAMS, Model } from "./model.ts";

/** The envelope's format tag. */
export const MODEL_FORMAT = "fedgpu-model";
/** The envelope version this library writes and reads. */
export const MODEL_FORMAT_VERSION = 1;
/** Default limit on the size of model bytes accepted by {@linkcode modelFromBytes} (1 GiB). */
export const DEFAULT_MAX_MODEL_BYTES = 1 << 30;

/** Why model bytes were rejected. */
export type ModelFormatErrorCode =
  | "too-large"
  | "truncated"
  | "corrupt"
  | "not-a-model"
  | "version"
  | "checksum"
  | "architecture";

/** Model bytes that cannot be decoded into a model. */
export class ModelFormatError extends Error {
  /** What was wrong. */
  readonly code: ModelFormatErrorCode;

  /**
   * Creates the error.
   *
   * @param code What was wrong.
   * @param message A sentence saying so.
   * @param options The underlying cause, if any.
   */
  constructor(code: ModelFormatErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelFormatError";
    this.code = code;
  }
}

/** Options of {@linkcode modelFromBytes}. */
export interface ModelFromBytesOptions {
  /** The largest input accepted, in bytes (default {@linkcode DEFAULT_MAX_MODEL_BYTES}). */
  maxBytes?: number;
}

const _HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses each 4-byte group of `bytes` in place (float32 byte order swap). */
function _swap32(bytes: Uint8Array): Uint8Array {
  for (let i = 0; i < bytes.length; i += 4) {
    const [a, b, c, d] = [bytes[i]!, bytes[i + 1]!, bytes[i + 2]!, bytes[i + 3]!];
    bytes[i] = d;
    bytes[i + 1] = c;
    bytes[i + 2] = b;
    bytes[i + 3] = a;
  }
  return bytes;
}

/**
 * The floats' raw bits as little-endian bytes: copied, never through float64 (NaN bits kept).
 *
 * @param floats The floats.
 * @returns A new array of `4 * floats.length` bytes.
 */
export function float32ToBytes(floats: Float32Array): Uint8Array {
  const bytes = new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength).slice();
  return _HOST_IS_LITTLE_ENDIAN ? bytes : _swap32(bytes);
}

/**
 * Floats from little-endian bytes, bit for bit (copied, so `raw` may be unaligned).
 *
 * @param raw A multiple of 4 bytes.
 * @param target Where to write the floats (such as a strategy's update buffer), instead of a
 *   new array; it must hold exactly `raw.length / 4` values and not overlap `raw`.
 * @returns The floats: `target` where given.
 * @throws {RangeError} If `target` does not hold `raw.length / 4` values.
 */
export function float32FromBytes(raw: Uint8Array, target?: Float32Array): Float32Array {
  if (target === undefined) {
    const bytes = raw.slice();
    return new Float32Array((_HOST_IS_LITTLE_ENDIAN ? bytes : _swap32(bytes)).buffer);
  }
  if (target.byteLength !== raw.length) {
    throw new RangeError(`Cannot decode ${raw.length} bytes into ${target.length} floats`);
  }
  const bytes = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
  bytes.set(raw);
  if (!_HOST_IS_LITTLE_ENDIAN) _swap32(bytes);
  return target;
}

function _layerToRecord(layer: Layer): Record<string, unknown> {
  return layerKind(layer).toRecord(layer);
}

function _isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function _layerFromRecord(value: unknown, index: number): Layer {
  const where = `layer ${index + 1}`;
  if (!_isRecord(value)) {
    throw new ModelFormatError("architecture", `Model bytes have a malformed ${where}`);
  }
  const kind = findLayerKind(value.kind);
  if (kind === undefined) {
    throw new ModelFormatError(
      "architecture",
      `Model bytes have an unknown layer kind in ${where}: ${String(value.kind)}`,
    );
  }
  try {
    return kind.fromRecord(value);
  } catch (cause) {
    throw new ModelFormatError(
      "architecture",
      `Model bytes have an invalid ${where}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

function _decodeMsgpack(bytes: Uint8Array, what: string): unknown {
  try {
    // Bounds keep a hostile length field from allocating more than the input could hold.
    return decode(bytes, {
      maxStrLength: 1 << 16,
      maxBinLength: bytes.length,
      maxArrayLength: 1 << 16,
      maxMapLength: 64,
      maxExtLength: 0,
    });
  } catch (cause) {
    const message = (cause as Error).message ?? String(cause);
    // Inputs cut short surface as range errors or as a length field larger than the input.
    const truncated = /insufficient data|out of range|outside the bounds|bin length/i.test(message);
    throw new ModelFormatError(
      truncated ? "truncated" : "corrupt",
      truncated
        ? `Model bytes are truncated (${what})`
        : `Model bytes are corrupt (${what}): ${message}`,
      { cause },
    );
  }
}

/**
 * Encodes a model (architecture and parameters) as versioned bytes.
 *
 * @param model The model.
 * @returns The envelope bytes; {@linkcode modelFromBytes} restores the model bit for bit.
 *
 * @example Usage
 * ```ts
 * import { Chain, Dense, modelFromBytes, modelToBytes, relu, softmax } from "@fedgpu/fedgpu";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const model = Chain(Dense(10, 5, relu), Dense(5, 2), softmax);
 * const copy = modelFromBytes(modelToBytes(model));
 * strictEqual(String(copy), String(model));
 * deepStrictEqual(copy.params, model.params);
 * ```
 */
export function modelToBytes(model: Model): Uint8Array {
  const params = float32ToBytes(model.params);
  const body = encode({ layers: model.layers.map(_layerToRecord), params });
  return encode({
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    body,
    sha256: sha256(body),
  });
}

/**
 * Decodes bytes written by {@linkcode modelToBytes} into a model, validating everything:
 * size, envelope, version, digest, architecture and parameter count.
 *
 * @param bytes The envelope bytes.
 * @param options `maxBytes`, checked before anything is decoded.
 * @returns The model.
 * @throws {ModelFormatError} With a `code` saying what was wrong: `too-large`, `truncated`,
 *   `corrupt`, `not-a-model`, `version`, `checksum` or `architecture`.
 */
export function modelFromBytes(bytes: Uint8Array, options: ModelFromBytesOptions = {}): Model {
  const { maxBytes = DEFAULT_MAX_MODEL_BYTES } = options;
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("Model bytes must be a Uint8Array");
  }
  if (bytes.length > maxBytes) {
    throw new ModelFormatError(
      "too-large",
      `Model bytes are ${bytes.length} bytes, over the limit of ${maxBytes}`,
    );
  }
  if (bytes.length === 0) throw new ModelFormatError("truncated", "Model bytes are empty");
  const envelope = _decodeMsgpack(bytes, "envelope");
  if (!_isRecord(envelope) || envelope.format !== MODEL_FORMAT) {
    throw new ModelFormatError("not-a-model", "Bytes are not a fedgpu model envelope");
  }
  if (envelope.version !== MODEL_FORMAT_VERSION) {
    throw new ModelFormatError(
      "version",
      `Model format version ${
        String(envelope.version)
      } is not supported (this library reads version ${MODEL_FORMAT_VERSION})`,
    );
  }
  const { body, sha256: digest } = envelope;
  if (!(body instanceof Uint8Array) || !(digest instanceof Uint8Array) || digest.length !== 32) {
    throw new ModelFormatError("corrupt", "Model envelope lacks its body or digest");
  }
  const actual = sha256(body);
  if (!actual.every((byte, i) => byte === digest[i])) {
    throw new ModelFormatError("checksum", "Model bytes fail their SHA-256 check");
  }
  const decoded = _decodeMsgpack(body, "body");
  if (
    !_isRecord(decoded) || !Array.isArray(decoded.layers) || !(decoded.params instanceof Uint8Array)
  ) {
    throw new ModelFormatError("corrupt", "Model body lacks its layers or parameters");
  }
  const layers = decoded.layers.map(_layerFromRecord);
  let count: number;
  try {
    count = countParams(layers);
  } catch (cause) {
    throw new ModelFormatError(
      "architecture",
      `Model bytes hold an invalid chain: ${(cause as Error).message}`,
      { cause },
    );
  }
  const raw = decoded.params;
  if (count > MAX_PARAMS || raw.length !== count * 4) {
    throw new ModelFormatError(
      "architecture",
      `Model bytes hold ${raw.length} parameter bytes, the architecture needs ${count * 4}`,
    );
  }
  return new Model(layers, float32FromBytes(raw));
}
