/**
 * Reading CSV files (the format of `csv.ts`) from disk. This module needs Deno: browsers fetch
 * the text themselves and pass it to {@linkcode parseCsv}.
 *
 * @module
 */

import { type CsvDataset, type CsvOptions, parseCsv } from "./csv.ts";
import { DataFormatError } from "./errors.ts";

/**
 * Reads a CSV file into a dataset, as {@linkcode parseCsv} does.
 *
 * @param path The file's path or `file:` URL.
 * @param options `labelColumn`, `header`, `delimiter` and `normalize`, as for
 *   {@linkcode parseCsv}.
 * @returns The dataset with its `classNames` and `featureNames`.
 * @throws {Deno.errors.NotFound} If there is no such file; the message names the path.
 * @throws {TypeError} If an option has the wrong type.
 * @throws {RangeError} If an option has a bad value.
 * @throws {DataFormatError} As {@linkcode parseCsv} does, the message starting with the path.
 *
 * @example Usage
 * ```ts
 * import { loadCsv } from "@fedgpu/fedgpu";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".csv" });
 * await Deno.writeTextFile(path, "label;a;b\nyes;1;2\nno;3;4\n");
 * const ds = await loadCsv(path, { delimiter: ";", labelColumn: "label", normalize: "minmax" });
 * deepStrictEqual(Array.from(ds.x), [0, 0, 1, 1]);
 * deepStrictEqual(ds.classNames, ["no", "yes"]);
 * await Deno.remove(path);
 * ```
 */
export async function loadCsv(path: string | URL, options: CsvOptions = {}): Promise<CsvDataset> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`CSV file not found: ${path}`, { cause: error });
    }
    throw error;
  }
  try {
    return parseCsv(text, options);
  } catch (error) {
    if (error instanceof DataFormatError) {
      throw new DataFormatError(`${path}: ${error.message}`, { code: error.code, cause: error });
    }
    throw error;
  }
}
