/**
 * The IDX file format of MNIST (Y. LeCun, C. Cortes, C. Burges, "The MNIST database of
 * handwritten digits", http://yann.lecun.com/exdb/mnist/, section "File formats").
 *
 * Layout: two zero bytes, a type code (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32,
 * 0x0E f64), the number of dimensions, one big-endian u32 per dimension, then the elements in
 * row-major order, big-endian.
 *
 * This reader accepts 1 to 8 dimensions, each at least 1 (a zero dimension, which would
 * describe an empty array, is rejected as malformed), and requires the input to end exactly
 * where the declared data does. The declared size is checked against a maximum before anything
 * is allocated.
 *
 * This module is browser-compatible. `idx_file.ts` reads IDX files with Deno.
 *
 * @module
 */

import { DataFormatError } from "./errors.ts";

/** The element type of an IDX array. */
export type IdxType = "u8" | "i8" | "i16" | "i32" | "f32" | "f64";

/** The elements of an IDX array, one typed array class per {@linkcode IdxType}. */
export type IdxData =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Float32Array
  | Float64Array;

/** An n-dimensional array read from, or to be written to, an IDX file. */
export interface IdxArray {
  /** The element type; `data` is the matching typed array (`u8`: Uint8Array, ...). */
  type: IdxType;
  /** The dimensions, outermost first; each at least 1. */
  dims: number[];
  /** The elements in row-major order, `dims` multiplied together of them. */
  data: IdxData;
}

/** Options of {@linkcode parseIdx} and {@linkcode decodeIdx}. */
export interface IdxOptions {
  /**
   * The largest data size in bytes to accept, checked against the header before allocating
   * (and, for gzipped files, while decompressing). Default 2 GiB.
   */
  maxBytes?: number;
}

const _DEFAULT_MAX_BYTES = 2 ** 31;
const _MAX_DIMS = 8;

const _TYPES: Record<IdxType, { code: number; bytes: number; array: new () => IdxData }> = {
  u8: { code: 0x08, bytes: 1, array: Uint8Array },
  i8: { code: 0x09, bytes: 1, array: Int8Array },
  i16: { code: 0x0b, bytes: 2, array: Int16Array },
  i32: { code: 0x0c, bytes: 4, array: Int32Array },
  f32: { code: 0x0d, bytes: 4, array: Float32Array },
  f64: { code: 0x0e, bytes: 8, array: Float64Array },
};

function _typeOfCode(code: number): IdxType | undefined {
  for (const [type, info] of Object.entries(_TYPES)) {
    if (info.code === code) return type as IdxType;
  }
  return undefined;
}

function _checkMaxBytes(maxBytes: number): void {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError(`Maximum bytes must be a non-negative integer, got ${maxBytes}`);
  }
}

/**
 * Parses an IDX file held in memory.
 *
 * Multi-byte elements are converted from big-endian; the result owns its data (it does not
 * share memory with `bytes`).
 *
 * @param bytes The whole file, uncompressed.
 * @param options `maxBytes`: the largest data size to accept (default 2 GiB).
 * @returns The array, with `data` of the class that matches its `type`.
 * @throws {TypeError} If `bytes` is not a Uint8Array.
 * @throws {RangeError} If `maxBytes` is not a non-negative integer.
 * @throws {DataFormatError} If the input is empty or shorter than its header or data
 *   (`truncated`), lacks the two zero bytes (`bad-magic`), has an unknown type code
 *   (`bad-type`), 0 or more than 8 dimensions or a zero dimension (`bad-dims`), declares more
 *   than `maxBytes` of data (`too-large`), or has bytes after its data (`size-mismatch`).
 *
 * @example Usage
 * ```ts
 * import { parseIdx } from "@fedgpu/fedgpu";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * // Two big-endian i16 values: 258 and -2.
 * const idx = parseIdx(new Uint8Array([0, 0, 0x0b, 1, 0, 0, 0, 2, 1, 2, 0xff, 0xfe]));
 * deepStrictEqual(idx.type, "i16");
 * deepStrictEqual(idx.dims, [2]);
 * deepStrictEqual(Array.from(idx.data), [258, -2]);
 * ```
 */
export function parseIdx(bytes: Uint8Array, options: IdxOptions = {}): IdxArray {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("IDX input must be a Uint8Array");
  }
  const maxBytes = options.maxBytes ?? _DEFAULT_MAX_BYTES;
  _checkMaxBytes(maxBytes);
  if (bytes.length === 0) {
    throw new DataFormatError("IDX data is empty", { code: "truncated" });
  }
  if (bytes.length < 4) {
    throw new DataFormatError(`IDX header is truncated: ${bytes.length} of 4 bytes`, {
      code: "truncated",
    });
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataFormatError(
      `IDX magic must start with two zero bytes, got ${_hex(bytes[0]!)} ${_hex(bytes[1]!)}`,
      { code: "bad-magic" },
    );
  }
  const type = _typeOfCode(bytes[2]!);
  if (type === undefined) {
    throw new DataFormatError(`Unknown IDX type code ${_hex(bytes[2]!)}`, { code: "bad-type" });
  }
  const ndims = bytes[3]!;
  if (ndims < 1 || ndims > _MAX_DIMS) {
    throw new DataFormatError(`IDX dimension count must be in [1, ${_MAX_DIMS}], got ${ndims}`, {
      code: "bad-dims",
    });
  }
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new DataFormatError(
      `IDX header is truncated: ${bytes.length} of ${headerBytes} bytes for ${ndims} dimensions`,
      { code: "truncated" },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) {
    const dim = view.getUint32(4 + 4 * i);
    if (dim === 0) {
      throw new DataFormatError(`IDX dimension ${i} is 0; dimensions must be at least 1`, {
        code: "bad-dims",
      });
    }
    dims.push(dim);
  }
  // Multiply with an early exit, so the product stays exact (below 2^53) when it is compared.
  const elementBytes = _TYPES[type].bytes;
  let dataBytes = elementBytes;
  for (const dim of dims) {
    dataBytes *= dim;
    if (dataBytes > maxBytes) {
      throw new DataFormatError(
        `IDX data of ${dims.join(" x ")} ${type} exceeds the maximum of ${maxBytes} bytes`,
        { code: "too-large" },
      );
    }
  }
  const actual = bytes.length - headerBytes;
  if (actual < dataBytes) {
    throw new DataFormatError(`IDX data is truncated: ${actual} of ${dataBytes} bytes`, {
      code: "truncated",
    });
  }
  if (actual > dataBytes) {
    throw new DataFormatError(
      `IDX data has ${actual - dataBytes} bytes after the declared ${dataBytes}`,
      { code: "size-mismatch" },
    );
  }
  return { type, dims, data: _decode(type, bytes, headerBytes, dataBytes / elementBytes) };
}

/**
 * Parses IDX bytes as {@linkcode parseIdx} does, gunzipping them first when they start with the
 * gzip magic bytes 1f 8b (RFC 1952, section 2.3.1), e.g. the original MNIST files as fetched.
 *
 * @param bytes The file's bytes, plain or gzipped.
 * @param options `maxBytes`: the largest data size to accept (default 2 GiB); it also bounds
 *   the decompressed size of gzipped data.
 * @returns The array, as {@linkcode parseIdx} returns it.
 * @throws {TypeError} If `bytes` is not a Uint8Array.
 * @throws {RangeError} If `maxBytes` is not a non-negative integer.
 * @throws {DataFormatError} As {@linkcode parseIdx} does, with code `bad-gzip` for corrupt gzip
 *   data and `too-large` for gzip data that decompresses past the bound.
 *
 * @example Usage
 * ```ts
 * import { decodeIdx, idxToBytes } from "./idx.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const plain = idxToBytes({ type: "u8", dims: [3], data: new Uint8Array([7, 8, 9]) });
 * const gzipped = await new Response(
 *   new Blob([plain]).stream().pipeThrough(new CompressionStream("gzip")),
 * ).bytes();
 * deepStrictEqual(Array.from((await decodeIdx(gzipped)).data), [7, 8, 9]);
 * ```
 */
export async function decodeIdx(bytes: Uint8Array, options: IdxOptions = {}): Promise<IdxArray> {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("IDX input must be a Uint8Array");
  }
  const maxBytes = options.maxBytes ?? _DEFAULT_MAX_BYTES;
  _checkMaxBytes(maxBytes);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    // A copy, so that shared memory (which Blob refuses) is fine too.
    bytes = await _gunzip(bytes.slice(), maxBytes + 4 + 4 * _MAX_DIMS);
  }
  return parseIdx(bytes, { maxBytes });
}

/**
 * Encodes an array as an IDX file (big-endian), the inverse of {@linkcode parseIdx}.
 *
 * @param array The array: its `data` must be the typed array class of its `type` and hold
 *   exactly `dims` multiplied together elements.
 * @returns The file's bytes.
 * @throws {TypeError} If the type is unknown or `data` is not of the matching class.
 * @throws {RangeError} If there are 0 or more than 8 dimensions, a dimension is not an integer
 *   in [1, 2^32), or the element count does not match the dimensions.
 *
 * @example Usage
 * ```ts
 * import { idxToBytes } from "@fedgpu/fedgpu";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const bytes = idxToBytes({ type: "i16", dims: [2], data: new Int16Array([258, -2]) });
 * deepStrictEqual(Array.from(bytes), [0, 0, 0x0b, 1, 0, 0, 0, 2, 1, 2, 0xff, 0xfe]);
 * ```
 */
export function idxToBytes(array: IdxArray): Uint8Array<ArrayBuffer> {
  const { type, dims, data } = array;
  const info = Object.hasOwn(_TYPES, type) ? _TYPES[type] : undefined;
  if (info === undefined) {
    throw new TypeError(`Unknown IDX type ${JSON.stringify(type)}`);
  }
  if (!(data instanceof info.array)) {
    throw new TypeError(`IDX ${type} data must be a ${info.array.name}`);
  }
  if (dims.length < 1 || dims.length > _MAX_DIMS) {
    throw new RangeError(`IDX dimension count must be in [1, ${_MAX_DIMS}], got ${dims.length}`);
  }
  let count = 1;
  for (const dim of dims) {
    if (!Number.isInteger(dim) || dim < 1 || dim > 0xffffffff) {
      throw new RangeError(`IDX dimensions must be integers in [1, 2^32), got ${dim}`);
    }
    count *= dim;
  }
  if (count !== data.length) {
    throw new RangeError(
      `IDX data holds ${data.length} elements, but dimensions ${dims.join(" x ")} need ${count}`,
    );
  }
  const headerBytes = 4 + 4 * dims.length;
  const out = new Uint8Array(headerBytes + count * info.bytes);
  const view = new DataView(out.buffer);
  out[2] = info.code;
  out[3] = dims.length;
  dims.forEach((dim, i) => view.setUint32(4 + 4 * i, dim));
  _encode(type, data, view, headerBytes);
  return out;
}

function _decode(type: IdxType, bytes: Uint8Array, offset: number, count: number): IdxData {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * _TYPES[type].bytes);
  switch (type) {
    case "u8":
      return bytes.slice(offset, offset + count);
    case "i8":
      return new Int8Array(bytes.slice(offset, offset + count).buffer);
    case "i16": {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i);
      return out;
    }
    case "i32": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i);
      return out;
    }
    case "f32": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i);
      return out;
    }
    case "f64": {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i);
      return out;
    }
  }
}

function _encode(type: IdxType, data: IdxData, view: DataView, offset: number): void {
  const n = data.length;
  switch (type) {
    case "u8":
      for (let i = 0; i < n; i++) view.setUint8(offset + i, data[i]!);
      return;
    case "i8":
      for (let i = 0; i < n; i++) view.setInt8(offset + i, data[i]!);
      return;
    case "i16":
      for (let i = 0; i < n; i++) view.setInt16(offset + 2 * i, data[i]!);
      return;
    case "i32":
      for (let i = 0; i < n; i++) view.setInt32(offset + 4 * i, data[i]!);
      return;
    case "f32":
      for (let i = 0; i < n; i++) view.setFloat32(offset + 4 * i, data[i]!);
      return;
    case "f64":
      for (let i = 0; i < n; i++) view.setFloat64(offset + 8 * i, data[i]!);
      return;
  }
}

/** Decompresses gzip data, refusing to produce more than `limit` bytes. */
async function _gunzip(
  bytes: Uint8Array<ArrayBuffer>,
  limit: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    for await (const chunk of stream) {
      total += chunk.length;
      if (total > limit) {
        throw new DataFormatError(`Gzip data decompresses to more than ${limit} bytes`, {
          code: "too-large",
        });
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof DataFormatError) throw error;
    throw new DataFormatError("Gzip data is corrupt", { code: "bad-gzip", cause: error });
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function _hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}
