/**
 * Classification datasets from CSV text (RFC 4180, "Common Format and MIME Type for
 * Comma-Separated Values (CSV) Files", section 2): one example per row, numeric feature
 * columns and one label column of any values.
 *
 * Fields may be quoted with `"`; a quoted field may hold delimiters, line breaks and doubled
 * quotes (`""` for `"`). Rows end with CRLF, LF or CR. A leading byte order mark and blank
 * lines are ignored. Cells are read with surrounding spaces and tabs trimmed.
 *
 * This module is browser-compatible. `csv_file.ts` reads CSV files with Deno.
 *
 * @module
 */

import { createDataset, type Dataset } from "./dataset.ts";
import { DataFormatError } from "./errors.ts";

/** A dataset read from CSV, with the names of its classes and features. */
export interface CsvDataset extends Dataset {
  /** The label value of each class index (`classNames[y[i]]` is example i's label). */
  readonly classNames: string[];
  /** The header cell of each feature column, or `col<j>` (zero-based column j) without one. */
  readonly featureNames: string[];
}

/** Options of {@linkcode parseCsv} (and of `loadCsv` in `csv_file.ts`). */
export interface CsvOptions {
  /**
   * The label column: a header name, or a zero-based column index. Default: the last column.
   * A name needs a header row.
   */
  labelColumn?: string | number;
  /**
   * Whether the first row is a header. `"auto"` (the default) takes it for one when one of
   * its feature cells is neither empty nor a number, or when `labelColumn` is a name.
   */
  header?: boolean | "auto";
  /** The field delimiter, one character other than `"`, CR and LF. Default `","`. */
  delimiter?: string;
  /**
   * Per-feature scaling: `"none"` (the default), `"minmax"` to [0, 1] by
   * `(v - min) / (max - min)`, or `"standard"` by `(v - mean) / sd` with the population
   * standard deviation. A constant column becomes all zeros in both.
   */
  normalize?: "none" | "minmax" | "standard";
}

const _NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Parses CSV text into a dataset: every column but the label column is a feature, and the
 * distinct labels become classes 0, 1, ... in sorted order: by numeric value when every label
 * is a number (`"2"` before `"10"`; `"1"` and `"1.0"` are one class, named `"1"`), otherwise
 * by UTF-16 code unit order of the strings.
 *
 * @param text The CSV text.
 * @param options `labelColumn`, `header`, `delimiter` and `normalize`.
 * @returns The dataset with its `classNames` and `featureNames`.
 * @throws {TypeError} If an option has the wrong type.
 * @throws {RangeError} If an option has a bad value, or the label column is not in the data.
 * @throws {DataFormatError} With code `csv-syntax` for an unterminated quoted field or text
 *   after a closing quote or a quote inside an unquoted field; `csv-shape` for empty text, fewer
 *   than two columns, a header without data rows, or a row with another number of columns than
 *   the first; `csv-value` for a feature that is not a number (or overflows float32) or an empty
 *   label. Messages name the 1-based line and column.
 *
 * @example Usage
 * ```ts
 * import { parseCsv } from "@fedgpu/fedgpu";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const ds = parseCsv("height,weight,kind\n1.5,3,cat\n0.5,40,dog\n2,4,cat\n");
 * deepStrictEqual(ds.featureNames, ["height", "weight"]);
 * deepStrictEqual(ds.classNames, ["cat", "dog"]);
 * deepStrictEqual(Array.from(ds.y), [0, 1, 0]);
 * deepStrictEqual(Array.from(ds.x), [1.5, 3, 0.5, 40, 2, 4]);
 * ```
 */
export function parseCsv(text: string, options: CsvOptions = {}): CsvDataset {
  if (typeof text !== "string") throw new TypeError("CSV text must be a string");
  const { labelColumn, header = "auto", delimiter = ",", normalize = "none" } = options;
  if (typeof delimiter !== "string" || delimiter.length !== 1 || '"\r\n'.includes(delimiter)) {
    throw new RangeError(
      `Delimiter must be one character other than a quote, CR and LF, got ${
        JSON.stringify(delimiter)
      }`,
    );
  }
  if (header !== true && header !== false && header !== "auto") {
    throw new RangeError(`Header must be true, false or "auto", got ${JSON.stringify(header)}`);
  }
  if (normalize !== "none" && normalize !== "minmax" && normalize !== "standard") {
    throw new RangeError(
      `Normalize must be "none", "minmax" or "standard", got ${JSON.stringify(normalize)}`,
    );
  }
  if (labelColumn !== undefined && typeof labelColumn !== "string") {
    if (typeof labelColumn !== "number") {
      throw new TypeError("Label column must be a name or a zero-based index");
    }
    if (!Number.isSafeInteger(labelColumn) || labelColumn < 0) {
      throw new RangeError(`Label column index must be a non-negative integer, got ${labelColumn}`);
    }
  }
  if (typeof labelColumn === "string" && header === false) {
    throw new RangeError(`Label column "${labelColumn}" is a name, but the CSV has no header`);
  }

  const rows = _records(text.startsWith("\ufeff") ? text.slice(1) : text, delimiter);
  const first = rows[0];
  if (first === undefined) {
    throw new DataFormatError("CSV text has no rows", { code: "csv-shape" });
  }
  const width = first.fields.length;
  if (width < 2) {
    throw new DataFormatError(
      `Line ${first.line} has 1 column; a dataset needs features and a label`,
      { code: "csv-shape" },
    );
  }
  for (const row of rows) {
    if (row.fields.length !== width) {
      throw new DataFormatError(
        `Line ${row.line} has ${row.fields.length} columns, expected ${width}`,
        { code: "csv-shape" },
      );
    }
  }

  const firstCells = first.fields.map((cell) => cell.trim());
  let label: number;
  if (typeof labelColumn === "string") {
    label = firstCells.indexOf(labelColumn);
    if (label < 0) {
      throw new RangeError(`Label column "${labelColumn}" is not in the header`);
    }
  } else {
    label = labelColumn ?? width - 1;
    if (label >= width) {
      throw new RangeError(`Label column ${label} is outside the ${width} columns`);
    }
  }
  const featureColumns = firstCells.map((_, j) => j).filter((j) => j !== label);
  const hasHeader = header === "auto"
    ? typeof labelColumn === "string" ||
      featureColumns.some((j) => firstCells[j] !== "" && !_NUMBER.test(firstCells[j]!))
    : header;
  const data = hasHeader ? rows.slice(1) : rows;
  if (data.length === 0) {
    throw new DataFormatError("CSV has a header but no data rows", { code: "csv-shape" });
  }
  const featureNames = featureColumns.map((j) => hasHeader ? firstCells[j]! : `col${j}`);
  const where = (line: number, j: number) =>
    `Line ${line}, column ${j + 1}${hasHeader ? ` ("${firstCells[j]}")` : ""}`;

  const features = featureColumns.length;
  const raw = new Float64Array(data.length * features); // (n, features)
  const labels: string[] = [];
  data.forEach((row, r) => {
    featureColumns.forEach((j, f) => {
      const cell = row.fields[j]!.trim();
      const value = _NUMBER.test(cell) ? Number(cell) : NaN;
      if (Number.isNaN(value)) {
        throw new DataFormatError(`${where(row.line, j)}: "${cell}" is not a number`, {
          code: "csv-value",
        });
      }
      if (!Number.isFinite(Math.fround(value))) {
        throw new DataFormatError(`${where(row.line, j)}: ${cell} is outside the float32 range`, {
          code: "csv-value",
        });
      }
      raw[r * features + f] = value;
    });
    const cell = row.fields[label]!.trim();
    if (cell === "") {
      throw new DataFormatError(`${where(row.line, label)}: empty label`, { code: "csv-value" });
    }
    labels.push(cell);
  });

  const { classNames, y } = _classes(labels);
  if (normalize !== "none") _normalize(raw, { features, method: normalize });
  const dataset = createDataset(Float32Array.from(raw), y, {
    features,
    classes: classNames.length,
  });
  return { ...dataset, classNames, featureNames };
}

interface _Row {
  /** The 1-based line the row starts on. */
  line: number;
  fields: string[];
}

/** Splits CSV text into rows of raw (unquoted, untrimmed) fields, skipping blank lines. */
function _records(text: string, delimiter: string): _Row[] {
  const rows: _Row[] = [];
  const end = text.length;
  let i = 0;
  let line = 1;
  while (i < end) {
    if (text[i] === "\r" || text[i] === "\n") {
      i += text.startsWith("\r\n", i) ? 2 : 1;
      line++;
      continue;
    }
    const row: _Row = { line, fields: [] };
    for (;;) {
      const column = row.fields.length + 1;
      if (text[i] === '"') {
        const start = line;
        let field = "";
        i++;
        for (;;) {
          if (i >= end) {
            throw new DataFormatError(
              `Line ${start}, column ${column}: unterminated quoted field`,
              { code: "csv-syntax" },
            );
          }
          const ch = text[i]!;
          if (ch === '"') {
            if (text[i + 1] !== '"') break;
            field += '"';
            i += 2;
            continue;
          }
          if (ch === "\n" || (ch === "\r" && text[i + 1] !== "\n")) line++;
          field += ch;
          i++;
        }
        i++;
        if (i < end && text[i] !== delimiter && text[i] !== "\r" && text[i] !== "\n") {
          throw new DataFormatError(
            `Line ${line}, column ${column}: unexpected text after a closing quote`,
            { code: "csv-syntax" },
          );
        }
        row.fields.push(field);
      } else {
        const start = i;
        while (i < end && text[i] !== delimiter && text[i] !== "\r" && text[i] !== "\n") {
          if (text[i] === '"') {
            throw new DataFormatError(
              `Line ${line}, column ${column}: quote inside an unquoted field`,
              { code: "csv-syntax" },
            );
          }
          i++;
        }
        row.fields.push(text.slice(start, i));
      }
      if (text[i] !== delimiter) break;
      i++;
    }
    rows.push(row);
    if (i < end) {
      i += text.startsWith("\r\n", i) ? 2 : 1;
      line++;
    }
  }
  return rows;
}

/** Maps label strings to class indices in sorted order (numeric when all are numbers). */
function _classes(labels: string[]): { classNames: string[]; y: Int32Array } {
  const numeric = labels.every((label) => _NUMBER.test(label));
  const keys = numeric ? labels.map((label) => String(Number(label))) : labels;
  const classNames = [...new Set(keys)];
  if (numeric) classNames.sort((a, b) => Number(a) - Number(b));
  else classNames.sort();
  const index = new Map(classNames.map((name, k) => [name, k]));
  return { classNames, y: Int32Array.from(keys, (key) => index.get(key)!) };
}

/** Scales each feature column of `x` (n, features) in place; constant columns become 0. */
function _normalize(
  x: Float64Array,
  options: { features: number; method: "minmax" | "standard" },
): void {
  const { features, method } = options;
  const n = x.length / features;
  for (let f = 0; f < features; f++) {
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i * features + f]!;
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
    }
    let shift = min;
    let scale = max - min;
    if (method === "standard") {
      shift = sum / n;
      let squares = 0;
      for (let i = 0; i < n; i++) squares += (x[i * features + f]! - shift) ** 2;
      scale = Math.sqrt(squares / n);
    }
    for (let i = 0; i < n; i++) {
      const k = i * features + f;
      x[k] = min === max ? 0 : (x[k]! - shift) / scale;
    }
  }
}
