/**
 * Reading IDX files (the format of `idx.ts`) from disk. This module needs Deno: browsers
 * fetch the bytes themselves and pass them to {@linkcode decodeIdx}.
 *
 * @module
 */

import { DataFormatError } from "./errors.ts";
import { decodeIdx, type IdxArray, type IdxOptions } from "./idx.ts";

/**
 * Reads an IDX file, gunzipping it first when it starts with the gzip magic bytes 1f 8b.
 *
 * @param path The file's path or `file:` URL.
 * @param options `maxBytes`: the largest data size to accept (default 2 GiB); it also bounds
 *   the decompressed size of a gzipped file.
 * @returns The array, as {@linkcode decodeIdx} returns it.
 * @throws {Deno.errors.NotFound} If there is no such file; the message names the path.
 * @throws {RangeError} If `maxBytes` is not a non-negative integer.
 * @throws {DataFormatError} As {@linkcode decodeIdx} does, the message starting with the path.
 *
 * @example Usage
 * ```ts
 * import { idxToBytes, readIdx } from "@fedgpu/fedgpu";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".idx" });
 * await Deno.writeFile(path, idxToBytes({ type: "u8", dims: [3], data: new Uint8Array([7, 8, 9]) }));
 * const idx = await readIdx(path);
 * deepStrictEqual(Array.from(idx.data), [7, 8, 9]);
 * await Deno.remove(path);
 * ```
 */
export async function readIdx(path: string | URL, options: IdxOptions = {}): Promise<IdxArray> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`IDX file not found: ${path}`, { cause: error });
    }
    throw error;
  }
  try {
    return await decodeIdx(bytes, options);
  } catch (error) {
    if (error instanceof DataFormatError) {
      throw new DataFormatError(`${path}: ${error.message}`, { code: error.code, cause: error });
    }
    throw error;
  }
}
