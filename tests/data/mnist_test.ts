import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { DataFormatError, type DataFormatErrorCode } from "../../lib/data/errors.ts";
import { type IdxArray, idxToBytes } from "../../lib/data/idx.ts";
import { loadMnist } from "../../lib/data/mnist.ts";

// Class counts published with the data set (and in every MNIST summary since).
const TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

function histogram(labels: Int32Array): number[] {
  const counts = new Array(10).fill(0);
  for (const label of labels) counts[label]++;
  return counts;
}

Deno.test("loadMnist() loads the full data set with its published label counts", async () => {
  const { train, test } = await loadMnist();
  strictEqual(train.n, 60000);
  strictEqual(test.n, 10000);
  for (const ds of [train, test]) {
    strictEqual(ds.features, 784);
    strictEqual(ds.classes, 10);
    strictEqual(ds.x.length, ds.n * 784);
  }
  deepStrictEqual(histogram(train.y), TRAIN_COUNTS);
  deepStrictEqual(histogram(test.y), TEST_COUNTS);
  // The first training digit is a 5, the first test digit a 7.
  strictEqual(train.y[0], 5);
  strictEqual(test.y[0], 7);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of train.x) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
  }
  strictEqual(min, 0);
  strictEqual(max, 1);
  // The mean training pixel is 33.32 / 255, the constant of the usual normalization 0.1307.
  ok(Math.abs(sum / train.x.length - 0.1307) < 0.0001, `mean pixel ${sum / train.x.length}`);
});

Deno.test("loadMnist() keeps the first examples up to each limit", async () => {
  const full = await loadMnist({ trainLimit: 1000, testLimit: 100 });
  strictEqual(full.train.n, 1000);
  strictEqual(full.test.n, 100);
  strictEqual(full.train.x.length, 1000 * 784);
  strictEqual(full.train.y[0], 5);
  const over = await loadMnist({ trainLimit: 1e6, testLimit: 1 });
  strictEqual(over.train.n, 60000);
  strictEqual(over.test.n, 1);
});

Deno.test("loadMnist() rejects bad limits", async () => {
  for (const trainLimit of [0, -1, 1.5, NaN]) {
    await rejects(
      loadMnist({ trainLimit }),
      new RangeError(`Training limit must be a positive integer, got ${trainLimit}`),
    );
  }
  await rejects(
    loadMnist({ testLimit: 0 }),
    new RangeError("Test limit must be a positive integer, got 0"),
  );
});

interface Files {
  trainImages: IdxArray;
  trainLabels: IdxArray;
  testImages: IdxArray;
  testLabels: IdxArray;
}

function images(pixels: number[][]): IdxArray {
  const data = new Uint8Array(pixels.length * 784);
  pixels.forEach((row, i) => data.set(row, i * 784));
  return { type: "u8", dims: [pixels.length, 28, 28], data };
}

function labels(values: number[]): IdxArray {
  return { type: "u8", dims: [values.length], data: new Uint8Array(values) };
}

function smallFiles(): Files {
  return {
    trainImages: images([[0, 255, 51], [255], [102, 0, 0, 204]]),
    trainLabels: labels([3, 9, 0]),
    testImages: images([[1, 2]]),
    testLabels: labels([4]),
  };
}

const NAMES: Record<keyof Files, string> = {
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
};

/** Writes `files` to a new temporary folder, gzipping those named in `gzipped`. */
async function writeFiles(files: Files, gzipped: (keyof Files)[] = []): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const key of Object.keys(NAMES) as (keyof Files)[]) {
    const bytes = idxToBytes(files[key]);
    if (gzipped.includes(key)) {
      const stream = ReadableStream.from<BufferSource>([bytes]).pipeThrough(
        new CompressionStream("gzip"),
      );
      await Deno.writeFile(`${dir}/${NAMES[key]}.gz`, stream);
    } else {
      await Deno.writeFile(`${dir}/${NAMES[key]}`, bytes);
    }
  }
  return dir;
}

Deno.test("loadMnist() reads plain and gzipped files from a folder", async () => {
  const dir = await writeFiles(smallFiles(), ["trainImages", "testLabels"]);
  try {
    const { train, test } = await loadMnist({ dir });
    strictEqual(train.n, 3);
    strictEqual(test.n, 1);
    deepStrictEqual(Array.from(train.y), [3, 9, 0]);
    deepStrictEqual(Array.from(test.y), [4]);
    deepStrictEqual(Array.from(train.x.subarray(0, 4)), [0, 1, Math.fround(0.2), 0]);
    deepStrictEqual(Array.from(train.x.subarray(784, 786)), [1, 0]);
    deepStrictEqual(
      Array.from(train.x.subarray(2 * 784, 2 * 784 + 4)),
      [Math.fround(0.4), 0, 0, Math.fround(0.8)],
    );
    strictEqual(train.x.filter((v) => v !== 0).length, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const BAD: {
  name: string;
  change: (files: Files) => void;
  code: DataFormatErrorCode;
  message: RegExp;
}[] = [
  {
    name: "more labels than images",
    change: (f) => (f.trainLabels = labels([1, 2, 3, 4])),
    code: "mismatch",
    message: /train-labels-idx1-ubyte: 4 labels for the 3 images of .*train-images-idx3-ubyte$/,
  },
  {
    name: "fewer labels than images",
    change: (f) => (f.trainLabels = labels([3, 9])),
    code: "mismatch",
    message: /train-labels-idx1-ubyte: 2 labels for the 3 images of .*train-images-idx3-ubyte$/,
  },
  {
    name: "a label that is not a digit",
    change: (f) => (f.trainLabels = labels([3, 10, 0])),
    code: "bad-label",
    message: /train-labels-idx1-ubyte: label 10 of example 1 is not a digit$/,
  },
  {
    name: "images that are not 28x28",
    change: (f) => (f.testImages = { type: "u8", dims: [1, 28, 27], data: new Uint8Array(756) }),
    code: "bad-dims",
    message:
      /t10k-images-idx3-ubyte: MNIST images must have dimensions \(n, 28, 28\), got \(1, 28, 27\)$/,
  },
  {
    name: "images that are not u8",
    change: (f) => (f.testImages = { type: "f32", dims: [1, 28, 28], data: new Float32Array(784) }),
    code: "bad-type",
    message: /t10k-images-idx3-ubyte: MNIST images must be u8, got f32$/,
  },
  {
    name: "labels with two dimensions",
    change: (f) => (f.testLabels = { type: "u8", dims: [1, 1], data: new Uint8Array(1) }),
    code: "bad-dims",
    message: /t10k-labels-idx1-ubyte: MNIST labels must have dimensions \(n\), got \(1, 1\)$/,
  },
];

for (const { name, change, code, message } of BAD) {
  Deno.test(`loadMnist() rejects ${name}`, async () => {
    const files = smallFiles();
    change(files);
    const dir = await writeFiles(files);
    try {
      await rejects(loadMnist({ dir }), (error) => {
        ok(error instanceof DataFormatError, `expected a DataFormatError, got ${error}`);
        strictEqual(error.code, code);
        ok(message.test(error.message), `message ${JSON.stringify(error.message)} !~ ${message}`);
        return true;
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("loadMnist() names a missing file", async () => {
  const dir = await writeFiles(smallFiles());
  try {
    await Deno.remove(`${dir}/t10k-images-idx3-ubyte`);
    await rejects(loadMnist({ dir }), (error) => {
      ok(error instanceof Deno.errors.NotFound);
      strictEqual(
        error.message,
        `MNIST file not found: ${dir}/t10k-images-idx3-ubyte (nor with .gz)`,
      );
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
