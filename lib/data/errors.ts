/**
 * The error every data loader throws for a malformed file: a bad IDX header, a CSV row of the
 * wrong width, an MNIST label file that does not match its images. Bad arguments are still
 * `TypeError` / `RangeError`; this class is for bad input data, so callers can tell the two apart.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/**
 * What was wrong with the data:
 *
 * - `truncated`: the input ends before its header or its declared data does.
 * - `bad-magic`: an IDX file does not start with two zero bytes.
 * - `bad-type`: an unknown IDX type code, or the wrong element type for the dataset.
 * - `bad-dims`: a dimension count or a dimension that the format or the dataset does not allow.
 * - `size-mismatch`: more bytes than the header declares.
 * - `too-large`: the declared or decompressed size exceeds the allowed maximum.
 * - `bad-gzip`: a gzip stream that cannot be decompressed.
 * - `bad-label`: a label outside the dataset's classes.
 * - `mismatch`: files that belong together disagree (such as image and label counts).
 * - `csv-syntax`: CSV text that cannot be split into fields (an unterminated quote).
 * - `csv-value`: a CSV cell that cannot be read (a feature that is not a number).
 * - `csv-shape`: CSV rows of different widths, or no data rows at all.
 */
export type DataFormatErrorCode =
  | "truncated"
  | "bad-magic"
  | "bad-type"
  | "bad-dims"
  | "size-mismatch"
  | "too-large"
  | "bad-gzip"
  | "bad-label"
  | "mismatch"
  | "csv-syntax"
  | "csv-value"
  | "csv-shape";

/** Options of the {@linkcode DataFormatError} constructor. */
export interface DataFormatErrorOptions extends ErrorOptions {
  /** What was wrong with the data. */
  code: DataFormatErrorCode;
}

/**
 * Malformed input data, with a machine-readable {@linkcode DataFormatErrorCode}.
 *
 * @example Usage
 * ```ts
 * import { DataFormatError, parseIdx } from "@fedgpu/fedgpu";
 * import { throws } from "node:assert/strict";
 *
 * throws(
 *   () => parseIdx(new Uint8Array([0, 0, 8])),
 *   (error) => error instanceof DataFormatError && error.code === "truncated",
 * );
 * ```
 */
export class DataFormatError extends Error {
  /** What was wrong with the data. */
  readonly code: DataFormatErrorCode;

  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the place in the input.
   * @param options The `code`, and optionally the underlying `cause`.
   */
  constructor(message: string, options: DataFormatErrorOptions) {
    super(message, options);
    this.name = "DataFormatError";
    this.code = options.code;
  }
}
