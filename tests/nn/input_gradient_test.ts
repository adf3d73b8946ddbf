import { ok, strictEqual } from "node:assert/strict";
import {
  Chain,
  Dense,
  inputGradient,
  type Layer,
  type Model,
  relu,
  Rng,
  softmax,
} from "../../mod.ts";
import {
  assertAllClose,
  assertThrowsWith,
  centralDifferences,
  randomArray,
  randomLabels,
  refMetrics,
} from "./_reference.ts";

// The reference is central differences (h = 1e-5) of a float64 re-implementation of the mean
// loss, as a function of the inputs: O(h²) truncation plus ~1e-11 cancellation error. The
// float32 forward and backward passes add about 1e-6 relative error.
const TOL = { rtol: 1e-4, atol: 2e-6 };
const H = 1e-5;
/** No value entering a relu may be closer than this to the kink, where differences lie. */
const KINK_MARGIN = 1e-3;

/**
 * Random parameters and a batch from the first seed that keeps relu inputs off the kink and
 * some relus open (the numeric gradient not all near zero), with that numeric gradient.
 */
function gradCase(layers: Layer[], batch: number, classes: number) {
  for (let seed = 1; seed < 100; seed++) {
    const rng = new Rng(seed);
    const model = Chain(...layers);
    model.params.set(randomArray(rng, model.params.length, 0.6));
    const x = randomArray(rng, batch * model.inputSize);
    const y = randomLabels(rng, batch, classes);
    if (refMetrics(model.layers, model.params, x, y).trace.reluMargin < KINK_MARGIN) continue;
    const loss = (p: Float64Array) => refMetrics(model.layers, model.params, p, y).loss;
    const numeric = centralDifferences(loss, x, H);
    if (numeric.some((g) => Math.abs(g) > 1e-2)) return { model, x, y, numeric };
  }
  throw new Error("no seed keeps the relu inputs away from the kink and some of them open");
}

const CASES: readonly { name: string; layers: () => Layer[]; batch: number; classes: number }[] = [
  {
    name: "Dense(4, 6, relu), Dense(6, 3), softmax; 5 examples",
    layers: () => [Dense(4, 6, relu), Dense(6, 3), softmax],
    batch: 5,
    classes: 3,
  },
  {
    name: "relu, Dense(4, 3), softmax (relu on the inputs); 3 examples",
    layers: () => [relu, Dense(4, 3), softmax],
    batch: 3,
    classes: 3,
  },
  {
    name: "Dense(3, 5), relu, Dense(5, 4, relu), Dense(4, 2) without softmax; 1 example",
    layers: () => [Dense(3, 5), relu, Dense(5, 4, relu), Dense(4, 2)],
    batch: 1,
    classes: 2,
  },
  {
    name: "Dense(7, 4), softmax (labels use 2 of 4 outputs); 8 examples",
    layers: () => [Dense(7, 4), softmax],
    batch: 8,
    classes: 2,
  },
];

for (const { name, layers, batch, classes } of CASES) {
  Deno.test(`inputGradient() is the gradient of the mean loss in the inputs: Chain(${name})`, () => {
    const { model, x, y, numeric } = gradCase(layers(), batch, classes);
    const before = model.params.slice();
    const analytic = inputGradient(model, x, y);
    strictEqual(analytic.length, x.length);
    assertAllClose(analytic, numeric, TOL, "dL/dx");
    ok(model.params.every((p, i) => Object.is(p, before[i])), "the model is left alone");
  });
}

Deno.test("inputGradient() rejects bad arguments with TypeError and RangeError", () => {
  const model: Model = Chain(Dense(4, 3), softmax);
  const x = new Float32Array(8);
  const cases: [() => unknown, typeof TypeError | typeof RangeError, string][] = [
    [
      () => inputGradient(model, [1, 2, 3, 4] as unknown as Float32Array, [0]),
      TypeError,
      "Inputs must be a Float32Array, got [object Array]",
    ],
    [
      () => inputGradient(model, new Float32Array(5), [0]),
      RangeError,
      "Input of 5 values is not a positive whole number of examples of 4",
    ],
    [
      () => inputGradient(model, new Float32Array(0), []),
      RangeError,
      "Input of 0 values is not a positive whole number of examples of 4",
    ],
    [() => inputGradient(model, x, [0]), RangeError, "Expected 2 labels, one per example, got 1"],
    [() => inputGradient(model, x, [0, 1.5]), TypeError, "Label 1 must be an integer, got 1.5"],
    [() => inputGradient(model, x, [NaN, 0]), TypeError, "Label 0 must be an integer, got NaN"],
    [() => inputGradient(model, x, [3, 0]), RangeError, "Label 0 must be in [0, 3), got 3"],
    [() => inputGradient(model, x, [0, -1]), RangeError, "Label 1 must be in [0, 3), got -1"],
  ];
  for (const [fn, errorClass, message] of cases) assertThrowsWith(fn, errorClass, message);
});
