import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  Chain,
  countParams,
  Dense,
  type Layer,
  MAX_LAYER_WIDTH,
  MAX_PARAMS,
  Model,
  relu,
  Rng,
  softmax,
} from "../../mod.ts";
import { assertAllClose, assertThrowsWith, bitsOf, randomArray, refOutputs } from "./_reference.ts";

function example(): Model {
  return Chain(Dense(10, 5, relu), Dense(5, 2), softmax);
}

Deno.test("Chain() builds Dense(10, 5, relu), Dense(5, 2), softmax with 67 parameters", () => {
  const model = example();
  strictEqual(model.params.length, 10 * 5 + 5 + 5 * 2 + 2);
  strictEqual(model.params.length, 67);
  strictEqual(countParams(model.layers), 67);
  strictEqual(model.inputSize, 10);
  strictEqual(model.outputSize, 2);
  strictEqual(model.endsWithSoftmax, true);
  strictEqual(model.layers.length, 3);
  deepStrictEqual(model.layers[0], { kind: "dense", nIn: 10, nOut: 5, activation: "relu" });
  deepStrictEqual(model.layers[1], { kind: "dense", nIn: 5, nOut: 2, activation: "identity" });
  strictEqual(model.layers[2], softmax);
  strictEqual(Chain(Dense(3, 4), relu, Dense(4, 1)).endsWithSoftmax, false);
});

Deno.test("Model.dense holds views of each layer's weight and bias into params", () => {
  const model = example();
  const [first, second] = model.dense;
  strictEqual(model.dense.length, 2);
  ok(first && second);
  // Layout: w1 (10, 5) at 0, b1 (5) at 50, w2 (5, 2) at 55, b2 (2) at 65.
  deepStrictEqual([first.layer, first.offset, first.w.length, first.b.length], [0, 0, 50, 5]);
  deepStrictEqual([second.layer, second.offset, second.w.length, second.b.length], [1, 55, 10, 2]);
  for (const view of [first.w, first.b, second.w, second.b]) {
    strictEqual(view.buffer, model.params.buffer);
  }
  strictEqual(first.b.byteOffset - model.params.byteOffset, 50 * 4);
  strictEqual(second.w.byteOffset - model.params.byteOffset, 55 * 4);
  strictEqual(second.b.byteOffset - model.params.byteOffset, 65 * 4);

  first.w[7] = 42;
  first.b[4] = 43;
  second.w[9] = 44;
  second.b[1] = 45;
  deepStrictEqual(
    [model.params[7], model.params[54], model.params[64], model.params[66]],
    [42, 43, 44, 45],
  );
  model.params[65] = -1;
  strictEqual(second.b[0], -1);
});

Deno.test("Model.forward() matches the float64 reference and its rows sum to 1", () => {
  const rng = new Rng(11);
  const model = example();
  model.params.set(randomArray(rng, model.params.length, 0.5)); // biases too
  for (const batch of [1, 6, 13]) {
    const x = randomArray(rng, batch * 10, 1, 0.3);
    const input = x.slice();
    const probs = model.forward(x);
    deepStrictEqual(x, input, "forward leaves its input alone");
    strictEqual(probs.length, batch * 2);
    // Float32 sums of at most 10 terms then a softmax: 1e-6 absolute on probabilities.
    assertAllClose(probs, refOutputs(model.layers, model.params, x, batch), {
      rtol: 1e-5,
      atol: 1e-6,
    }, `probabilities of a batch of ${batch}`);
    for (let i = 0; i < batch; i++) {
      const sum = probs[2 * i]! + probs[2 * i + 1]!;
      ok(Math.abs(sum - 1) < 1e-6, `row ${i} sums to ${sum}`);
    }
    deepStrictEqual(model.forward(x, batch), probs, "an explicit batch gives the same result");
  }
});

Deno.test("Model.forward() without softmax returns logits matching the float64 reference", () => {
  const rng = new Rng(12);
  const model = Chain(Dense(3, 6), relu, Dense(6, 4, relu), Dense(4, 3));
  model.params.set(randomArray(rng, model.params.length, 0.7));
  const x = randomArray(rng, 5 * 3);
  assertAllClose(model.forward(x), refOutputs(model.layers, model.params, x, 5), {
    rtol: 1e-5,
    atol: 1e-6,
  }, "logits");
  strictEqual(model.forward(new Float32Array(0)).length, 0, "an empty batch gives no outputs");
});

Deno.test("Model.forward() rejects input that is not whole examples with RangeError", () => {
  const model = example();
  assertThrowsWith(
    () => model.forward(new Float32Array(25)),
    RangeError,
    "Input of 25 values is not a whole number of examples of 10",
  );
  assertThrowsWith(
    () => model.forward(new Float32Array(30), 4),
    RangeError,
    "Input of 30 values is not 4 examples of 10",
  );
  assertThrowsWith(
    () => model.forward(new Float32Array(20), 2.5),
    RangeError,
    "Input of 20 values is not 2.5 examples of 10",
  );
  assertThrowsWith(
    () => model.forward(new Float32Array(0), -1),
    RangeError,
    "Input of 0 values is not -1 examples of 10",
  );
});

Deno.test("Chain() rejects invalid chains with TypeError", () => {
  const cases: [string, () => unknown, string][] = [
    [
      "mismatched sizes",
      () => Chain(Dense(10, 5), Dense(4, 2)),
      "Layer 2 (Dense(4 => 2)) expects 4 inputs but receives 5",
    ],
    [
      "mismatched sizes across a relu layer",
      () => Chain(Dense(10, 5, relu), relu, Dense(6, 2, relu)),
      "Layer 3 (Dense(6 => 2, relu)) expects 6 inputs but receives 5",
    ],
    [
      "softmax in the middle",
      () => Chain(Dense(10, 5), softmax, Dense(5, 2)),
      "softmax must be the last layer, found at layer 2",
    ],
    [
      "softmax first",
      () => Chain(softmax, Dense(5, 2)),
      "softmax must be the last layer, found at layer 1",
    ],
    [
      "two softmax layers",
      () => Chain(Dense(5, 2), softmax, softmax),
      "softmax must be the last layer, found at layer 2",
    ],
    ["no layers", () => Chain(), "A chain needs at least one Dense layer"],
    ["no Dense layer", () => Chain(relu, softmax), "A chain needs at least one Dense layer"],
  ];
  for (const [name, fn, message] of cases) {
    try {
      assertThrowsWith(fn, TypeError, message);
    } catch (error) {
      throw new Error(`case "${name}"`, { cause: error });
    }
  }
});

Deno.test("Chain() rejects values that are not layers with TypeError naming their position", () => {
  const cases: [unknown, string][] = [
    [null, "Layer 2 is not a layer: null"],
    [42, "Layer 2 is not a layer: 42"],
    ["relu", 'Layer 2 is not a layer: "relu"'],
    [{ kind: "conv" }, 'Layer 2 is not a layer: {"kind":"conv"}'],
    [[relu], 'Layer 2 is not a layer: [{"kind":"relu"}]'],
  ];
  for (const [value, message] of cases) {
    assertThrowsWith(() => Chain(Dense(3, 3), value as Layer), TypeError, message);
  }
});

Deno.test("Chain() rejects non-layers that JSON cannot print with a message naming their position", () => {
  const circular: Record<string, unknown> = { kind: "loop" };
  circular.self = circular;
  for (const value of [10n, circular]) {
    assertThrowsWith(() => Chain(Dense(3, 3), value as unknown as Layer), TypeError, /^Layer 2\b/);
  }
});

Deno.test("Chain() rejects hand-built dense records that Dense() would refuse", () => {
  const records = [
    { kind: "dense", nIn: 2.5, nOut: 2, activation: "identity" },
    { kind: "dense", nIn: 0, nOut: 2, activation: "identity" },
    { kind: "dense", nIn: -3, nOut: 2, activation: "identity" },
    { kind: "dense", nIn: 2, nOut: NaN, activation: "identity" },
    { kind: "dense", nIn: "2", nOut: 2, activation: "relu" },
    { kind: "dense", nIn: 2, nOut: 2, activation: "sigmoid" },
    { kind: "dense", nIn: 2, nOut: 2 },
  ];
  const problems: string[] = [];
  for (const record of records) {
    const what = JSON.stringify(record);
    try {
      problems.push(`${what} built ${String(Chain(record as unknown as Layer))}`);
    } catch (error) {
      const clear = (error instanceof TypeError || error instanceof RangeError) &&
        /layer 1|nIn|nOut|activation/i.test(error.message);
      if (!clear) problems.push(`${what} threw ${error}`);
    }
  }
  deepStrictEqual(problems, []);
});

Deno.test("Chain() rejects models over MAX_PARAMS with RangeError before allocating", () => {
  strictEqual(MAX_PARAMS, 2 ** 28);
  assertThrowsWith(
    () => Chain(Dense(16384, 16384)),
    RangeError,
    "Model exceeds the limit of 268435456 parameters",
  );
  assertThrowsWith(
    () => Chain(Dense(MAX_LAYER_WIDTH, MAX_LAYER_WIDTH)),
    RangeError,
    "Model exceeds the limit of 268435456 parameters",
  );
});

Deno.test("new Model() rejects a parameter buffer of the wrong length with RangeError", () => {
  const layers = [Dense(10, 5, relu), Dense(5, 2), softmax];
  assertThrowsWith(
    () => new Model(layers, new Float32Array(66)),
    RangeError,
    "Model needs 67 parameters, got 66",
  );
  const params = new Float32Array(67).fill(0.25);
  const model = new Model(layers, params);
  strictEqual(model.params, params, "the given buffer is used, not copied");
  ok(new Model(layers).params.every((p) => p === 0), "parameters default to zeros");
});

Deno.test("Dense() rejects sizes that are not integers in [1, MAX_LAYER_WIDTH] with RangeError", () => {
  strictEqual(MAX_LAYER_WIDTH, 2 ** 24);
  const cases: [number, number, string][] = [
    [0, 5, "Dense nIn must be an integer in [1, 16777216], got 0"],
    [-1, 5, "Dense nIn must be an integer in [1, 16777216], got -1"],
    [1.5, 5, "Dense nIn must be an integer in [1, 16777216], got 1.5"],
    [NaN, 5, "Dense nIn must be an integer in [1, 16777216], got NaN"],
    [Infinity, 5, "Dense nIn must be an integer in [1, 16777216], got Infinity"],
    [2 ** 24 + 1, 5, "Dense nIn must be an integer in [1, 16777216], got 16777217"],
    [5, 0, "Dense nOut must be an integer in [1, 16777216], got 0"],
    [5, 2.5, "Dense nOut must be an integer in [1, 16777216], got 2.5"],
    [5, 2 ** 24 + 1, "Dense nOut must be an integer in [1, 16777216], got 16777217"],
  ];
  for (const [nIn, nOut, message] of cases) {
    assertThrowsWith(() => Dense(nIn, nOut), RangeError, message);
  }
  deepStrictEqual(Dense(2 ** 24, 1), {
    kind: "dense",
    nIn: 2 ** 24,
    nOut: 1,
    activation: "identity",
  });
});

Deno.test("Dense() rejects activations other than relu with TypeError", () => {
  assertThrowsWith(
    () => Dense(3, 2, softmax as never),
    TypeError,
    "Dense takes relu as its activation; put softmax after it as a layer of its own",
  );
  assertThrowsWith(
    () => Dense(3, 2, { kind: "sigmoid" } as never),
    TypeError,
    "Dense activation must be relu, got sigmoid",
  );
  assertThrowsWith(
    () => Dense(3, 2, { kind: "relu" } as never),
    TypeError,
    "Dense activation must be relu, got relu",
  );
});

Deno.test("Model.initialize() gives the same bits for the same seed and others for another", () => {
  const a = example().initialize(7);
  const b = example().initialize(7);
  deepStrictEqual(bitsOf(a.params), bitsOf(b.params));
  const c = example().initialize(8);
  notDeepStrictEqual(bitsOf(a.params.subarray(0, 50)), bitsOf(c.params.subarray(0, 50)));
  notDeepStrictEqual(bitsOf(a.params.subarray(55, 65)), bitsOf(c.params.subarray(55, 65)));
  strictEqual(a.initialize(8), a, "initialize returns the model");
  deepStrictEqual(bitsOf(a.params), bitsOf(c.params));
  deepStrictEqual(
    bitsOf(example().params),
    bitsOf(example().initialize(0).params),
    "Chain seeds 0",
  );
});

Deno.test("Model.initialize() sets every bias to zero", () => {
  const model = example();
  model.params.fill(3);
  model.initialize(1);
  for (const { w, b } of model.dense) {
    ok(b.every((v) => Object.is(v, 0)), `biases are +0: ${b}`);
    ok(w.every((v) => v !== 3 && v !== 0), "weights are drawn afresh");
  }
});

function stats(values: Float32Array) {
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let sq = 0;
  let maxAbs = 0;
  for (const v of values) {
    sq += (v - mean) ** 2;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  return { mean, std: Math.sqrt(sq / (values.length - 1)), maxAbs };
}

Deno.test("Model.initialize() draws He-normal weights, std sqrt(2 / nIn), before a relu", () => {
  const std = Math.sqrt(2 / 784);
  for (const layers of [[Dense(784, 200, relu), Dense(200, 10)], [Dense(784, 200), relu]]) {
    const w = new Model(layers).initialize(1).dense[0]!.w;
    const n = w.length; // 156800
    const s = stats(w);
    // Standard errors: mean std / sqrt(n) ≈ 1.3e-4; std about std / sqrt(2n) ≈ 0.18%.
    ok(Math.abs(s.mean) < 5 * std / Math.sqrt(n), `mean ${s.mean}`);
    ok(Math.abs(s.std / std - 1) < 0.01, `std ${s.std}, expected ${std}`);
    // Normal, not uniform: P(|w| < std) = 0.6827 (uniform of the same std: 0.577), P(|w| > 3
    // std) = 0.0027 (uniform: 0); standard errors 0.0012 and 0.00013.
    const within = w.filter((v) => Math.abs(v) < std).length / n;
    ok(Math.abs(within - 0.6827) < 0.006, `P(|w| < std) = ${within}`);
    const tail = w.filter((v) => Math.abs(v) > 3 * std).length / n;
    ok(Math.abs(tail - 0.0027) < 0.0007, `P(|w| > 3 std) = ${tail}`);
  }
});

Deno.test("Model.initialize() draws Glorot-uniform weights within sqrt(6 / (nIn + nOut)) otherwise", () => {
  const limit = Math.sqrt(6 / (784 + 200));
  for (const layers of [[Dense(784, 200), softmax], [Dense(784, 200), Dense(200, 10, relu)]]) {
    const w = new Model(layers).initialize(2).dense[0]!.w;
    const n = w.length;
    const s = stats(w);
    ok(s.maxAbs <= Math.fround(limit), `max |w| = ${s.maxAbs}, limit ${limit}`);
    ok(s.maxAbs > 0.999 * limit, `the whole range is used: max |w| = ${s.maxAbs}`);
    ok(Math.abs(s.mean) < 5 * (limit / Math.sqrt(3)) / Math.sqrt(n), `mean ${s.mean}`);
    ok(Math.abs(s.std / (limit / Math.sqrt(3)) - 1) < 0.01, `std ${s.std}`);
    // Ten equal bins of [-limit, limit) each hold n / 10 ± 4 standard errors (~3%).
    const bins = new Array(10).fill(0);
    for (const v of w) bins[Math.min(9, Math.floor((v / limit + 1) * 5))]++;
    for (const count of bins) ok(Math.abs(count / (n / 10) - 1) < 0.03, `bins ${bins}`);
  }
});

Deno.test("String(model) prints the chain the way Flux does", () => {
  const cases: [Model, string][] = [
    [example(), "Chain(Dense(10 => 5, relu), Dense(5 => 2), softmax)"],
    [Chain(Dense(4, 6), relu, Dense(6, 3)), "Chain(Dense(4 => 6), relu, Dense(6 => 3))"],
    [Chain(Dense(1, 1)), "Chain(Dense(1 => 1))"],
  ];
  for (const [model, text] of cases) strictEqual(String(model), text);
});

Deno.test("Model.clone() copies the parameters into an independent model", () => {
  const model = example().initialize(3);
  const before = bitsOf(model.params);
  const copy = model.clone();
  deepStrictEqual(bitsOf(copy.params), before);
  deepStrictEqual(copy.layers, model.layers);
  ok(copy.params.buffer !== model.params.buffer, "a new buffer");
  strictEqual(copy.dense[1]!.w.buffer, copy.params.buffer, "views point into the copy");
  copy.params.fill(1);
  copy.dense[0]!.w[0] = 5;
  deepStrictEqual(bitsOf(model.params), before, "the original is untouched");
  model.params[0] = -5;
  strictEqual(copy.params[0], 5, "the copy is untouched");
});
