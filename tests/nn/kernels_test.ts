import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  denseBackward,
  denseForward,
  reluBackward,
  reluForward,
  Rng,
  softmaxCrossEntropy,
  softmaxForward,
} from "../../mod.ts";
import {
  assertAllClose,
  centralDifferences,
  randomArray,
  randomLabels,
  refArgmax,
  refCrossEntropy,
  refDense,
  refDenseScale,
  refSoftmax,
} from "./_reference.ts";

// Tolerances: the kernels compute in float32 (24-bit mantissa, unit roundoff 6e-8); the
// references in float64. A sum of n float32 products is within about n * 6e-8 of the exact sum,
// relative to the sum of the terms' magnitudes, so 1e-5 of that scale covers n <= 17 with room.
const RTOL = 1e-5;
const ATOL = 1e-6;

/** (batch, nIn, nOut): odd sizes, single examples and a batch of 13. */
const SHAPES: readonly (readonly [number, number, number])[] = [
  [1, 1, 1],
  [13, 1, 1],
  [1, 3, 7],
  [13, 3, 7],
  [1, 17, 5],
  [13, 17, 5],
  [2, 7, 3],
];

/** Input zero fractions: dense inputs, and mostly-zero inputs like MNIST pixels or relu outputs. */
const ZERO_FRACTIONS = [0, 0.6, 1];

function denseCase(seed: number, batch: number, nIn: number, nOut: number, zeros: number) {
  const rng = new Rng(seed, [batch, nIn, nOut, Math.round(zeros * 10)]);
  return {
    x: randomArray(rng, batch * nIn, 1, zeros),
    w: randomArray(rng, nIn * nOut),
    b: randomArray(rng, nOut),
    dy: randomArray(rng, batch * nOut),
  };
}

Deno.test("denseForward() matches the float64 reference, with and without fused relu", () => {
  for (const [batch, nIn, nOut] of SHAPES) {
    for (const zeros of ZERO_FRACTIONS) {
      for (const fuseRelu of [false, true]) {
        const { x, w, b } = denseCase(1, batch, nIn, nOut, zeros);
        const y = new Float32Array(batch * nOut).fill(NaN); // overwritten, never read
        denseForward(x, w, b, y, batch, nIn, nOut, fuseRelu);
        assertAllClose(
          y,
          refDense(x, w, b, batch, nIn, nOut, fuseRelu),
          { rtol: RTOL, atol: ATOL, scale: refDenseScale(x, w, b, batch, nIn, nOut) },
          `y of (${batch}, ${nIn}) x (${nIn}, ${nOut}), zeros ${zeros}, relu ${fuseRelu}`,
        );
        if (fuseRelu) ok(y.every((v) => v >= 0), "fused relu leaves no negative output");
      }
    }
  }
});

Deno.test("denseForward() gives exactly the bias for an all-zero input row", () => {
  const w = new Float32Array([1, 2, 3, 4, 5, 6]); // (2, 3)
  const b = new Float32Array([0.5, -1.5, 2]);
  const x = new Float32Array([0, -0, 1, 0]); // (2, 2): a zero row, then [1, 0]
  const y = new Float32Array(6);
  denseForward(x, w, b, y, 2, 2, 3, false);
  deepStrictEqual(Array.from(y), [0.5, -1.5, 2, 1.5, 0.5, 5]);
  denseForward(x, w, b, y, 2, 2, 3, true);
  deepStrictEqual(Array.from(y), [0.5, 0, 2, 1.5, 0.5, 5]);
});

Deno.test("denseBackward() matches the float64 reference for dw, db and dx", () => {
  for (const [batch, nIn, nOut] of SHAPES) {
    for (const zeros of ZERO_FRACTIONS) {
      const { x, w, dy } = denseCase(2, batch, nIn, nOut, zeros);
      const dw = new Float32Array(nIn * nOut);
      const db = new Float32Array(nOut);
      const dx = new Float32Array(batch * nIn).fill(NaN); // overwritten, never read
      denseBackward(x, w, dy, dx, dw, db, batch, nIn, nOut);

      // dw[k][o] = sum_i x[i][k] dy[i][o]; db[o] = sum_i dy[i][o]; dx[i][k] = sum_o dy[i][o] w[k][o].
      const refDw = new Float64Array(nIn * nOut);
      const scaleDw = new Float64Array(nIn * nOut);
      for (let k = 0; k < nIn; k++) {
        for (let o = 0; o < nOut; o++) {
          for (let i = 0; i < batch; i++) {
            refDw[k * nOut + o]! += x[i * nIn + k]! * dy[i * nOut + o]!;
            scaleDw[k * nOut + o]! += Math.abs(x[i * nIn + k]! * dy[i * nOut + o]!);
          }
        }
      }
      const refDb = new Float64Array(nOut);
      const scaleDb = new Float64Array(nOut);
      for (let o = 0; o < nOut; o++) {
        for (let i = 0; i < batch; i++) {
          refDb[o]! += dy[i * nOut + o]!;
          scaleDb[o]! += Math.abs(dy[i * nOut + o]!);
        }
      }
      const refDx = new Float64Array(batch * nIn);
      const scaleDx = new Float64Array(batch * nIn);
      for (let i = 0; i < batch; i++) {
        for (let k = 0; k < nIn; k++) {
          for (let o = 0; o < nOut; o++) {
            refDx[i * nIn + k]! += dy[i * nOut + o]! * w[k * nOut + o]!;
            scaleDx[i * nIn + k]! += Math.abs(dy[i * nOut + o]! * w[k * nOut + o]!);
          }
        }
      }
      const what = `(${batch}, ${nIn}) x (${nIn}, ${nOut}), zeros ${zeros}`;
      assertAllClose(dw, refDw, { rtol: RTOL, atol: ATOL, scale: scaleDw }, `dw of ${what}`);
      assertAllClose(db, refDb, { rtol: RTOL, atol: ATOL, scale: scaleDb }, `db of ${what}`);
      assertAllClose(dx, refDx, { rtol: RTOL, atol: ATOL, scale: scaleDx }, `dx of ${what}`);

      // dx = null skips the input gradient and changes nothing else.
      const dw2 = new Float32Array(nIn * nOut);
      const db2 = new Float32Array(nOut);
      denseBackward(x, w, dy, null, dw2, db2, batch, nIn, nOut);
      assertAllClose(dw2, refDw, { rtol: RTOL, atol: ATOL, scale: scaleDw }, `dw (no dx) ${what}`);
      assertAllClose(db2, refDb, { rtol: RTOL, atol: ATOL, scale: scaleDb }, `db (no dx) ${what}`);
    }
  }
});

Deno.test("denseBackward() accumulates into dw and db with +=", () => {
  // Hand-derived: x = [[1, 2]], w (2, 1) = [[3], [4]], dy = [[0.5]].
  // dw = xᵀ dy = [[0.5], [1]], db = [0.5], dx = dy wᵀ = [[1.5, 2]].
  const x = new Float32Array([1, 2]);
  const w = new Float32Array([3, 4]);
  const dy = new Float32Array([0.5]);
  const dw = new Float32Array([10, 20]);
  const db = new Float32Array([-1]);
  const dx = new Float32Array([7, 7]);
  denseBackward(x, w, dy, dx, dw, db, 1, 2, 1);
  deepStrictEqual(Array.from(dw), [10.5, 21]);
  deepStrictEqual(Array.from(db), [-0.5]);
  deepStrictEqual(Array.from(dx), [1.5, 2], "dx is overwritten, not accumulated");
  denseBackward(x, w, dy, dx, dw, db, 1, 2, 1);
  deepStrictEqual(Array.from(dw), [11, 22]);
  deepStrictEqual(Array.from(db), [0]);
  deepStrictEqual(Array.from(dx), [1.5, 2]);
});

Deno.test("reluForward() computes max(0, x), also in place", () => {
  const x = new Float32Array([-2, -0, 0, 1e-30, 3.5, -1e30, Infinity, -Infinity]);
  const expected = [0, 0, 0, Math.fround(1e-30), 3.5, 0, Infinity, 0];
  const y = new Float32Array(x.length).fill(NaN);
  reluForward(x, y, x.length);
  deepStrictEqual(Array.from(y), expected);
  reluForward(x, x, x.length);
  deepStrictEqual(Array.from(x), expected);
});

Deno.test("reluForward() and reluBackward() touch only the first n values", () => {
  const x = new Float32Array([-1, 2, -3, 4]);
  const y = new Float32Array([9, 9, 9, 9]);
  reluForward(x, y, 2);
  deepStrictEqual(Array.from(y), [0, 2, 9, 9]);
  const dx = new Float32Array([9, 9, 9, 9]);
  reluBackward(new Float32Array([1, 1, 1, 1]), new Float32Array([5, 6, 7, 8]), dx, 3);
  deepStrictEqual(Array.from(dx), [5, 6, 7, 9]);
});

Deno.test("reluBackward() passes the gradient where the output is positive, also in place", () => {
  const x = new Float32Array([-2, 0, 1e-30, 3.5, -1]);
  const y = new Float32Array(x.length);
  reluForward(x, y, x.length);
  const dy = new Float32Array([10, 20, 30, 40, 50]);
  const dx = new Float32Array(x.length).fill(NaN);
  reluBackward(y, dy, dx, x.length);
  deepStrictEqual(Array.from(dx), [0, 0, 30, 40, 0]);
  reluBackward(y, dy, dy, x.length);
  deepStrictEqual(Array.from(dy), [0, 0, 30, 40, 0]);
});

Deno.test("softmaxForward() rows sum to 1 and match the float64 reference", () => {
  const rng = new Rng(3);
  for (const [batch, classes] of [[1, 1], [1, 2], [13, 3], [5, 10], [2, 17]] as const) {
    const z = randomArray(rng, batch * classes, 4);
    const p = new Float32Array(z.length).fill(NaN);
    softmaxForward(z, p, batch, classes);
    // Each probability is a few float32 roundings of an exp and a division: 1e-6 relative.
    assertAllClose(p, refSoftmax(z, batch, classes), { rtol: 1e-6, atol: 1e-7 }, "p");
    for (let i = 0; i < batch; i++) {
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += p[i * classes + c]!;
      ok(Math.abs(sum - 1) <= classes * 1.2e-7, `row ${i} of ${batch}x${classes} sums to ${sum}`);
    }
    softmaxForward(z, z, batch, classes);
    deepStrictEqual(z, p, "in place gives the same bits");
  }
});

Deno.test("softmaxForward() is stable for huge logits", () => {
  const z = new Float32Array([
    [1e4, -1e4, 0],
    [1e4, 1e4, -1e4],
    [3e38, -3e38, 0],
    [-1e4, -1e4, -1e4],
  ].flat());
  const p = new Float32Array(z.length);
  softmaxForward(z, p, 4, 3);
  ok(p.every(Number.isFinite), `no NaN or Infinity: ${p}`);
  deepStrictEqual(Array.from(p).slice(0, 9), [1, 0, 0, 0.5, 0.5, 0, 1, 0, 0]);
  assertAllClose(p.subarray(9), [1 / 3, 1 / 3, 1 / 3], { rtol: 1e-6, atol: 0 }, "equal row");
});

Deno.test("softmaxCrossEntropy() loss and correct count match the float64 reference", () => {
  const rng = new Rng(4);
  for (const [batch, classes] of [[1, 1], [1, 2], [13, 3], [6, 10]] as const) {
    const z = randomArray(rng, batch * classes, 3);
    const labels = randomLabels(rng, batch, classes);
    const { lossSum, correct } = softmaxCrossEntropy(z, labels, null, batch, classes);
    const losses = refCrossEntropy(z, labels, batch, classes);
    const expected = losses.reduce((a, v) => a + v, 0);
    assertAllClose([lossSum], [expected], { rtol: 1e-6, atol: 1e-7 }, "lossSum");
    const guesses = refArgmax(z, batch, classes);
    strictEqual(correct, guesses.filter((g, i) => g === labels[i]).length);
  }
});

Deno.test("softmaxCrossEntropy() counts hand-picked correct guesses", () => {
  const z = new Float32Array([
    [2, 1, 0],
    [0, 5, 1],
    [3, 3, 1], // tie: the first largest counts as the guess
    [-1, -2, -0.5],
  ].flat());
  const { correct } = softmaxCrossEntropy(z, [0, 2, 0, 2], null, 4, 3);
  strictEqual(correct, 3);
});

Deno.test("softmaxCrossEntropy() gradient matches central differences of the float64 mean loss", () => {
  const rng = new Rng(5);
  for (const [batch, classes] of [[1, 2], [4, 3], [13, 5]] as const) {
    const z = randomArray(rng, batch * classes, 2);
    const labels = randomLabels(rng, batch, classes);
    const dz = new Float32Array(z.length).fill(NaN);
    softmaxCrossEntropy(z, labels, dz, batch, classes);
    const meanLoss = (logits: Float64Array) =>
      refCrossEntropy(logits, labels, batch, classes).reduce((a, v) => a + v, 0) / batch;
    const numeric = centralDifferences(meanLoss, z, 1e-5);
    // Central differences err by O(h²) ≈ 1e-10 plus 1e-16 / h ≈ 1e-11; the kernel by float32.
    assertAllClose(dz, numeric, { rtol: 1e-5, atol: 1e-7 }, `dz of ${batch}x${classes}`);
    // Each row of (softmax - onehot) / batch sums to zero.
    for (let i = 0; i < batch; i++) {
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += dz[i * classes + c]!;
      ok(Math.abs(sum) < 1e-6, `row ${i} sums to ${sum}`);
    }
  }
});

Deno.test("softmaxCrossEntropy() is stable for logits like 1000", () => {
  const z = new Float32Array([1000, 0, -1000, 1000, 1000, 1000, -1000, 1000, 999]);
  const dz = new Float32Array(z.length);
  const { lossSum, correct } = softmaxCrossEntropy(z, [2, 1, 1], dz, 3, 3);
  // Row 0: -log softmax[2] = logsumexp - z[2] = 1000 + log(1 + e^-1000 + e^-2000) + 1000 = 2000.
  // Row 1: three equal logits: log 3. Row 2: 1000 + log(1 + e^-1) - 1000 = log(1 + e^-1).
  const expected = 2000 + Math.log(3) + Math.log(1 + Math.exp(-1));
  ok(Number.isFinite(lossSum), `finite loss: ${lossSum}`);
  assertAllClose([lossSum], [expected], { rtol: 1e-12, atol: 0 }, "lossSum");
  strictEqual(correct, 1); // rows 0 and 1 guess class 0 (the first of a tie); row 2 guesses 1
  ok(dz.every(Number.isFinite), `finite gradient: ${dz}`);
  const third = 1 / 3;
  const p = 1 / (1 + Math.exp(-1));
  assertAllClose(
    dz,
    [1 / 3, 0, -1 / 3, third / 3, (third - 1) / 3, third / 3, 0, (p - 1) / 3, (1 - p) / 3],
    { rtol: 1e-6, atol: 1e-7 },
    "dz",
  );
});
