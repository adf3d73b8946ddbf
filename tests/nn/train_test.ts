import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  Chain,
  createDataset,
  type Dataset,
  Dense,
  evaluate,
  evaluateBatches,
  type Metrics,
  type Model,
  relu,
  Rng,
  softmax,
  subset,
  sumBatches,
  train,
  type TrainOptions,
} from "../../mod.ts";
import {
  assertAllClose,
  assertThrowsWith,
  bitsOf,
  centralDifferences,
  randomArray,
  randomLabels,
  refMetrics,
} from "./_reference.ts";

const FEATURES = 4;
const CLASSES = 3;

/** Gaussian blobs: class c centred at 3 e_c (a unit vector) with standard deviation 0.5. */
function blobs(seed: number, n: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float32Array(n * FEATURES);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = rng.int(CLASSES);
    y[i] = label;
    for (let f = 0; f < FEATURES; f++) {
      x[i * FEATURES + f] = (f === label ? 3 : 0) + 0.5 * rng.normal();
    }
  }
  return createDataset(x, y, { features: FEATURES, classes: CLASSES });
}

function blobModel(): Model {
  return Chain(Dense(FEATURES, 8, relu), Dense(8, CLASSES), softmax).initialize(5);
}

function smallData(seed: number, n: number): Dataset {
  const rng = new Rng(seed);
  return createDataset(randomArray(rng, n * FEATURES), randomLabels(rng, n, CLASSES), {
    features: FEATURES,
    classes: CLASSES,
  });
}

/** The smallest gap between the largest and second-largest logit of any example. */
function minTopGap(logits: Float64Array, classes: number): number {
  let gap = Infinity;
  for (let i = 0; i < logits.length; i += classes) {
    const row = Array.from(logits.subarray(i, i + classes)).sort((a, b) => b - a);
    gap = Math.min(gap, row[0]! - row[1]!);
  }
  return gap;
}

Deno.test("train() gives the same bits for the same seed and others for another", () => {
  const data = blobs(1, 60);
  const options: TrainOptions = { epochs: 2, batchSize: 8, lr: 0.05, momentum: 0.9 };
  const a = blobModel();
  const b = blobModel();
  const c = blobModel();
  train(a, data, { ...options, seed: 3 });
  train(b, data, { ...options, seed: 3 });
  train(c, data, { ...options, seed: 4 });
  deepStrictEqual(bitsOf(a.params), bitsOf(b.params));
  notDeepStrictEqual(bitsOf(a.params), bitsOf(c.params));
  notDeepStrictEqual(bitsOf(a.params), bitsOf(blobModel().params), "training changed the model");

  const d = blobModel();
  train(d, data, { ...options, rng: new Rng(3), seed: 99 });
  deepStrictEqual(bitsOf(d.params), bitsOf(a.params), "rng = new Rng(seed) matches seed");
});

Deno.test("train() without shuffling visits the examples in order whatever the seed", () => {
  const data = blobs(2, 30);
  const options: TrainOptions = { epochs: 2, batchSize: 7, lr: 0.05, shuffle: false };
  const a = blobModel();
  const b = blobModel();
  train(a, data, { ...options, seed: 1 });
  train(b, data, { ...options, seed: 2 });
  deepStrictEqual(bitsOf(a.params), bitsOf(b.params));
});

Deno.test("train() learns separable Gaussian blobs and evaluate() agrees with the float64 reference", () => {
  const trainData = blobs(10, 300);
  const testData = blobs(11, 150);
  const model = blobModel();
  const before = refMetrics(model.layers, model.params, testData.x, testData.y);
  const { last, steps } = train(model, trainData, {
    epochs: 5,
    batchSize: 16,
    lr: 0.05,
    momentum: 0.9,
    seed: 1,
  });
  strictEqual(steps, 5 * Math.ceil(300 / 16));
  strictEqual(last.examples, 300);
  ok(last.accuracy > 0.95, `training accuracy ${last.accuracy}`);

  const metrics = evaluate(model, testData);
  const ref = refMetrics(model.layers, model.params, testData.x, testData.y);
  ok(ref.accuracy > 0.95, `reference test accuracy ${ref.accuracy}`);
  ok(ref.loss < before.loss / 4, `loss fell from ${before.loss} to ${ref.loss}`);
  ok(minTopGap(ref.logits, CLASSES) > 1e-4, "no example is a near-tie, so accuracies must agree");
  strictEqual(metrics.examples, 150);
  strictEqual(metrics.accuracy, ref.accuracy);
  // Float32 logits of a 4-8-3 network: within about 1e-6 of float64; 1e-5 on the mean loss.
  assertAllClose([metrics.loss], [ref.loss], { rtol: 0, atol: 1e-5 }, "test loss");
});

Deno.test("train() reports the running loss of the epoch: one full batch gives the loss before the step", () => {
  const data = smallData(3, 12);
  const model = blobModel();
  const ref = refMetrics(model.layers, model.params, data.x, data.y);
  const { last, steps } = train(model, data, { batchSize: 12, lr: 0.1, shuffle: false });
  strictEqual(steps, 1);
  strictEqual(last.examples, 12);
  strictEqual(last.accuracy, ref.accuracy);
  assertAllClose([last.loss], [ref.loss], { rtol: 1e-6, atol: 1e-6 }, "loss");
});

Deno.test("train() uses the last partial batch: 25 examples in batches of 10 take 3 steps", () => {
  const data = smallData(4, 25);
  const lr = 0.5;
  const options: TrainOptions = { epochs: 1, batchSize: 10, lr, shuffle: false };
  const full = blobModel();
  strictEqual(train(full, data, options).steps, 3);
  strictEqual(train(blobModel(), data, { ...options, epochs: 2 }).steps, 6);

  // The same as the first two batches, then one step on the last five examples alone.
  const stepwise = blobModel();
  train(stepwise, subset(data, Array.from({ length: 20 }, (_, i) => i)), options);
  const tail = subset(data, [20, 21, 22, 23, 24]);
  const margin = refMetrics(stepwise.layers, stepwise.params, tail.x, tail.y).trace.reluMargin;
  ok(margin >= 1e-3, `relu inputs stay away from the kink (${margin})`);
  const grad = centralDifferences(
    (p) => refMetrics(stepwise.layers, p, tail.x, tail.y).loss,
    stepwise.params,
    1e-5,
  );
  const expected = Float64Array.from(stepwise.params, (p, i) => p - lr * grad[i]!);
  assertAllClose(full.params, expected, { rtol: 1e-5, atol: 1e-6 }, "params after the last batch");

  train(stepwise, tail, options);
  deepStrictEqual(bitsOf(full.params), bitsOf(stepwise.params));
});

Deno.test("train() calls onEpoch once per epoch, in order, with that epoch's metrics", () => {
  const data = smallData(5, 20);
  const calls: [number, Metrics][] = [];
  const { last, steps } = train(blobModel(), data, {
    epochs: 4,
    batchSize: 6,
    lr: 0.1,
    onEpoch: (epoch, metrics) => calls.push([epoch, metrics]),
  });
  strictEqual(steps, 4 * 4);
  deepStrictEqual(calls.map(([epoch]) => epoch), [1, 2, 3, 4]);
  for (const [, metrics] of calls) {
    strictEqual(metrics.examples, 20);
    ok(metrics.loss > 0 && Number.isFinite(metrics.loss), `loss ${metrics.loss}`);
    ok(metrics.accuracy >= 0 && metrics.accuracy <= 1, `accuracy ${metrics.accuracy}`);
    ok(Number.isInteger(metrics.accuracy * 20), "accuracy counts whole examples");
  }
  deepStrictEqual(calls[3]![1], last);
});

Deno.test("train() rejects bad arguments with RangeError and leaves the model alone", () => {
  const model = blobModel();
  const before = bitsOf(model.params);
  const data = smallData(6, 10);
  const threeFeatures = createDataset(new Float32Array(6), new Int32Array(2), {
    features: 3,
    classes: 3,
  });
  const fiveClasses = createDataset(new Float32Array(8), new Int32Array([4, 0]), {
    features: 4,
    classes: 5,
  });
  const empty = createDataset(new Float32Array(0), new Int32Array(0), {
    features: 4,
    classes: 3,
  });
  const cases: [Dataset, TrainOptions, string][] = [
    [data, { lr: 0.1, epochs: 0 }, "Epochs must be a positive integer, got 0"],
    [data, { lr: 0.1, epochs: 1.5 }, "Epochs must be a positive integer, got 1.5"],
    [data, { lr: 0.1, batchSize: 0 }, "Batch size must be a positive integer, got 0"],
    [data, { lr: 0.1, batchSize: -4 }, "Batch size must be a positive integer, got -4"],
    [data, { lr: 0 }, "Learning rate must be positive and finite, got 0"],
    [data, { lr: -0.1 }, "Learning rate must be positive and finite, got -0.1"],
    [data, { lr: 0.1, momentum: 1 }, "Momentum must be in [0, 1), got 1"],
    [data, { lr: 0.1, weightDecay: -1 }, "Weight decay must be non-negative and finite, got -1"],
    [threeFeatures, { lr: 0.1 }, "Data has 3 features but the model takes 4 inputs"],
    [fiveClasses, { lr: 0.1 }, "Data has 5 classes but the model has 3 outputs"],
    [empty, { lr: 0.1 }, "Cannot train on an empty dataset"],
  ];
  for (const [dataset, options, message] of cases) {
    assertThrowsWith(() => train(model, dataset, options), RangeError, message);
  }
  deepStrictEqual(bitsOf(model.params), before);
});

Deno.test("evaluate() rejects bad arguments with RangeError", () => {
  const model = blobModel();
  const data = smallData(7, 5);
  assertThrowsWith(
    () => evaluate(model, data, { batchSize: 0 }),
    RangeError,
    "Batch size must be a positive integer, got 0",
  );
  const threeFeatures = createDataset(new Float32Array(3), new Int32Array(1), {
    features: 3,
    classes: 3,
  });
  assertThrowsWith(
    () => evaluate(model, threeFeatures),
    RangeError,
    "Data has 3 features but the model takes 4 inputs",
  );
});

Deno.test("evaluate() of an empty dataset has no examples and NaN loss and accuracy", () => {
  const empty = createDataset(new Float32Array(0), new Int32Array(0), {
    features: 4,
    classes: 3,
  });
  deepStrictEqual(evaluate(blobModel(), empty), { loss: NaN, accuracy: NaN, examples: 0 });
});

Deno.test("evaluate() gives the same result for any batch size and leaves the model alone", () => {
  const model = blobModel();
  const before = bitsOf(model.params);
  const data = smallData(8, 23);
  const ref = refMetrics(model.layers, model.params, data.x, data.y);
  const base = evaluate(model, data);
  strictEqual(base.accuracy, ref.accuracy);
  assertAllClose([base.loss], [ref.loss], { rtol: 1e-6, atol: 1e-6 }, "loss");
  for (const batchSize of [1, 2, 7, 22, 23, 24, 1000]) {
    const metrics = evaluate(model, data, { batchSize });
    strictEqual(metrics.examples, 23);
    strictEqual(metrics.accuracy, base.accuracy, `accuracy with batches of ${batchSize}`);
    // Only the float64 order of summing per-example losses changes.
    assertAllClose([metrics.loss], [base.loss], { rtol: 1e-14, atol: 0 }, `loss (${batchSize})`);
  }
  deepStrictEqual(bitsOf(model.params), before);
});

Deno.test("evaluate() of a chain without softmax scores its outputs as logits", () => {
  const model = Chain(Dense(FEATURES, 5, relu), Dense(5, CLASSES)).initialize(9);
  const data = smallData(9, 11);
  const ref = refMetrics(model.layers, model.params, data.x, data.y);
  const metrics = evaluate(model, data);
  strictEqual(metrics.accuracy, ref.accuracy);
  assertAllClose([metrics.loss], [ref.loss], { rtol: 1e-6, atol: 1e-6 }, "loss");
});

Deno.test("evaluateBatches() pieces summed in order by sumBatches() give evaluate()'s bits", () => {
  const model = blobModel();
  const data = smallData(9, 23);
  const whole = evaluate(model, data, { batchSize: 3 });
  // Batches of 3 over 23 examples: 8, the last of 2.
  const pieces = [[0, 2], [2, 2], [2, 5], [5, 8]].map(([from, to]) =>
    evaluateBatches(model, data, { batchSize: 3, from, to })
  );
  deepStrictEqual(pieces.map((p) => p.lossSums.length), [2, 0, 3, 3]);
  deepStrictEqual(sumBatches(pieces, data.n), whole);
  // Each batch's numbers are that batch's own evaluation.
  const last = evaluate(model, subset(data, [21, 22]));
  strictEqual(pieces[3]!.lossSums[2]! / 2, last.loss);
  strictEqual(pieces[3]!.correct[2]! / 2, last.accuracy);
  for (const [from, to] of [[-1, 2], [3, 2], [0, 9], [0.5, 2]]) {
    assertThrowsWith(
      () => evaluateBatches(model, data, { batchSize: 3, from, to }),
      RangeError,
      `Batches [${from}, ${to}) are not within the data's 8`,
    );
  }
});
