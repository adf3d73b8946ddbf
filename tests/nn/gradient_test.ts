import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  Chain,
  createDataset,
  type Dataset,
  Dense,
  type Layer,
  type Model,
  relu,
  Rng,
  Sgd,
  softmax,
  train,
} from "../../mod.ts";
import {
  assertAllClose,
  assertThrowsWith,
  centralDifferences,
  randomArray,
  randomLabels,
  refMetrics,
} from "./_reference.ts";

// The analytic gradient comes out of one full-batch step of plain SGD with lr = 1:
// after = fl32(before - grad), so grad = before - after up to one float32 rounding of the
// result (about 6e-8 of |before - grad|). The reference is central differences (h = 1e-5) of a
// float64 re-implementation of the mean loss: O(h²) truncation plus ~1e-11 cancellation error.
// The forward and backward passes in float32 add about 1e-6 relative error.
const GRAD_TOL = { rtol: 1e-4, atol: 2e-6 };
const H = 1e-5;
/** No value entering a relu may be closer than this to the kink, where differences lie. */
const KINK_MARGIN = 1e-3;

const N = 7;

interface GradCase {
  model: Model;
  data: Dataset;
  margin: number;
}

/**
 * Random parameters (biases included) and data for `layers`, from the first seed whose relu
 * inputs all stay at least KINK_MARGIN away from zero.
 */
function gradCase(layers: Layer[], classes: number): GradCase {
  for (let seed = 1; seed < 100; seed++) {
    const rng = new Rng(seed);
    const model = Chain(...layers);
    model.params.set(randomArray(rng, model.params.length, 0.6));
    const x = randomArray(rng, N * model.inputSize);
    const y = randomLabels(rng, N, classes);
    const margin = refMetrics(model.layers, model.params, x, y).trace.reluMargin;
    if (margin >= KINK_MARGIN) {
      return { model, data: createDataset(x, y, { features: model.inputSize, classes }), margin };
    }
  }
  throw new Error("no seed keeps the relu inputs away from the kink");
}

/** before - after of one full-batch step of plain SGD with lr = 1, in float64. */
function analyticGradient(model: Model, data: Dataset): Float64Array {
  const copy = model.clone();
  const { steps } = train(copy, data, {
    epochs: 1,
    batchSize: data.n,
    lr: 1,
    momentum: 0,
    weightDecay: 0,
    shuffle: false,
  });
  strictEqual(steps, 1);
  return Float64Array.from(model.params, (p, i) => p - copy.params[i]!);
}

function numericGradient(model: Model, data: Dataset, at: ArrayLike<number> = model.params) {
  return centralDifferences((p) => refMetrics(model.layers, p, data.x, data.y).loss, at, H);
}

const CHAINS: readonly { name: string; layers: () => Layer[]; classes: number }[] = [
  {
    name: "Dense(4, 6, relu), Dense(6, 3), softmax",
    layers: () => [Dense(4, 6, relu), Dense(6, 3), softmax],
    classes: 3,
  },
  {
    name: "Dense(4, 6), relu, Dense(6, 3), softmax",
    layers: () => [Dense(4, 6), relu, Dense(6, 3), softmax],
    classes: 3,
  },
  {
    name: "Dense(4, 6, relu), Dense(6, 3) without softmax",
    layers: () => [Dense(4, 6, relu), Dense(6, 3)],
    classes: 3,
  },
  {
    name: "Dense(4, 5, relu), Dense(5, 6, relu), Dense(6, 3), softmax",
    layers: () => [Dense(4, 5, relu), Dense(5, 6, relu), Dense(6, 3), softmax],
    classes: 3,
  },
  {
    name: "Dense(3, 5, relu), relu, Dense(5, 4), relu, Dense(4, 2), softmax",
    layers: () => [Dense(3, 5, relu), relu, Dense(5, 4), relu, Dense(4, 2), softmax],
    classes: 2,
  },
  {
    name: "relu, Dense(4, 3), softmax (relu on the inputs)",
    layers: () => [relu, Dense(4, 3), softmax],
    classes: 3,
  },
  {
    name: "Dense(4, 3), softmax (fewer classes in the data than outputs)",
    layers: () => [Dense(4, 3), softmax],
    classes: 2,
  },
];

for (const { name, layers, classes } of CHAINS) {
  Deno.test(`train() back-propagates the gradient of the mean loss: Chain(${name})`, () => {
    const { model, data } = gradCase(layers(), classes);
    const analytic = analyticGradient(model, data);
    const numeric = numericGradient(model, data);
    ok(
      numeric.some((g) => Math.abs(g) > 1e-2),
      "the check is not vacuous: some gradients are far from zero",
    );
    assertAllClose(analytic, numeric, GRAD_TOL, "gradient");
  });
}

Deno.test("train() back-propagates a mean over the batch: duplicating the data keeps the gradient", () => {
  const { model, data } = gradCase([Dense(4, 6, relu), Dense(6, 3), softmax], 3);
  const x = new Float32Array(2 * data.x.length);
  x.set(data.x);
  x.set(data.x, data.x.length);
  const y = new Int32Array(2 * data.n);
  y.set(data.y);
  y.set(data.y, data.n);
  const doubled = createDataset(x, y, { features: data.features, classes: data.classes });
  assertAllClose(
    analyticGradient(model, doubled),
    numericGradient(model, data),
    GRAD_TOL,
    "gradient on duplicated data",
  );
});

Deno.test("train() applies weight decay as grad + weightDecay * params", () => {
  const { model, data } = gradCase([Dense(4, 6, relu), Dense(6, 3), softmax], 3);
  const lr = 0.25;
  const weightDecay = 0.1;
  const copy = model.clone();
  train(copy, data, { epochs: 1, batchSize: data.n, lr, weightDecay, shuffle: false });
  const grad = numericGradient(model, data);
  const expected = Float64Array.from(model.params, (p, i) => p - lr * (grad[i]! + weightDecay * p));
  assertAllClose(copy.params, expected, { rtol: 1e-5, atol: 1e-6 }, "params after one step");
});

Deno.test("train() applies momentum across steps as v = momentum * v + grad", () => {
  const { model, data } = gradCase([Dense(4, 6, relu), Dense(6, 3), softmax], 3);
  const lr = 0.05;
  const momentum = 0.5;
  const options = { batchSize: data.n, lr, momentum, shuffle: false };
  const one = model.clone();
  train(one, data, { ...options, epochs: 1 });
  const two = model.clone();
  const { steps } = train(two, data, { ...options, epochs: 2 });
  strictEqual(steps, 2);

  // Step 1: v1 = g(p0), p1 = p0 - lr v1. Step 2: v2 = momentum v1 + g(p1), p2 = p1 - lr v2.
  const g0 = numericGradient(model, data);
  const p1 = Float64Array.from(model.params, (p, i) => p - lr * g0[i]!);
  assertAllClose(one.params, p1, { rtol: 1e-5, atol: 1e-6 }, "params after step 1");
  const margin = refMetrics(model.layers, one.params, data.x, data.y).trace.reluMargin;
  ok(margin >= KINK_MARGIN, `step 1 keeps relu inputs away from the kink (${margin})`);
  const g1 = numericGradient(model, data, one.params);
  const p2 = Float64Array.from(one.params, (p, i) => p - lr * (momentum * g0[i]! + g1[i]!));
  assertAllClose(two.params, p2, { rtol: 1e-5, atol: 1e-6 }, "params after step 2");
});

// Hand-derived updates over three steps. All numbers are dyadic, so float32 holds them exactly.
const SGD_CASES: readonly {
  name: string;
  options: { lr: number; momentum?: number; weightDecay?: number };
  start: number[];
  grads: number[][];
  expected: number[][];
}[] = [
  {
    // p -= 0.5 g
    name: "plain",
    options: { lr: 0.5 },
    start: [1, -2],
    grads: [[1, 0.5], [1, 0.5], [-4, 0]],
    expected: [[0.5, -2.25], [0, -2.5], [2, -2.5]],
  },
  {
    // g' = g + 0.5 p; p -= 0.5 g'
    // 1: g' = 1 + 0.5 = 1.5, p = 0.25; 2: g' = 1.125, p = -0.3125; 3: g' = 0.84375, p = -0.734375.
    name: "weight decay",
    options: { lr: 0.5, weightDecay: 0.5 },
    start: [1],
    grads: [[1], [1], [1]],
    expected: [[0.25], [-0.3125], [-0.734375]],
  },
  {
    // v = 0.5 v + g; p -= 0.5 v
    // 1: v = 1, p = 0.5; 2: v = -1.5, p = 1.25; 3: v = 3.25, p = -0.375.
    name: "momentum",
    options: { lr: 0.5, momentum: 0.5 },
    start: [1],
    grads: [[1], [-2], [4]],
    expected: [[0.5], [1.25], [-0.375]],
  },
  {
    // g' = g + 0.5 p; v = 0.5 v + g'; p -= 0.5 v
    // 1: g' = 1.5, v = 1.5, p = 0.25; 2: g' = 1.125, v = 1.875, p = -0.6875;
    // 3: g' = 0.65625, v = 1.59375, p = -1.484375.
    name: "momentum and weight decay",
    options: { lr: 0.5, momentum: 0.5, weightDecay: 0.5 },
    start: [1],
    grads: [[1], [1], [1]],
    expected: [[0.25], [-0.6875], [-1.484375]],
  },
];

for (const { name, options, start, grads, expected } of SGD_CASES) {
  Deno.test(`Sgd.step() matches hand-derived updates over three steps: ${name}`, () => {
    const params = new Float32Array(start);
    const sgd = new Sgd(params.length, options);
    grads.forEach((g, step) => {
      sgd.step(params, new Float32Array(g));
      deepStrictEqual(Array.from(params), expected[step], `after step ${step + 1}`);
    });
  });
}

Deno.test("Sgd rejects out-of-range options with RangeError", () => {
  const cases: [{ lr: number; momentum?: number; weightDecay?: number }, string][] = [
    [{ lr: 0 }, "Learning rate must be positive and finite, got 0"],
    [{ lr: -0.1 }, "Learning rate must be positive and finite, got -0.1"],
    [{ lr: NaN }, "Learning rate must be positive and finite, got NaN"],
    [{ lr: Infinity }, "Learning rate must be positive and finite, got Infinity"],
    [{ lr: 0.1, momentum: 1 }, "Momentum must be in [0, 1), got 1"],
    [{ lr: 0.1, momentum: -0.5 }, "Momentum must be in [0, 1), got -0.5"],
    [{ lr: 0.1, momentum: NaN }, "Momentum must be in [0, 1), got NaN"],
    [{ lr: 0.1, weightDecay: -1 }, "Weight decay must be non-negative and finite, got -1"],
    [
      { lr: 0.1, weightDecay: Infinity },
      "Weight decay must be non-negative and finite, got Infinity",
    ],
  ];
  for (const [options, message] of cases) {
    assertThrowsWith(() => new Sgd(3, options), RangeError, message);
  }
});
