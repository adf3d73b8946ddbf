import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { FedAvg, Rng } from "../../mod.ts";

/** The FedAvg average written from its definition, in float64. */
function referenceAverage(
  global: Float32Array,
  updates: Float32Array[],
  weights: number[],
  serverLr = 1,
): Float64Array {
  const total = weights.reduce((a, b) => a + b, 0);
  const out = new Float64Array(global.length);
  for (let i = 0; i < global.length; i++) {
    let sum = 0;
    for (let k = 0; k < updates.length; k++) sum += weights[k]! * updates[k]![i]!;
    out[i] = global[i]! + serverLr * sum / total;
  }
  return out;
}

function randomVector(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal());
}

Deno.test("FedAvg weights clients by example count", () => {
  const rng = new Rng(1);
  for (const [clients, size] of [[1, 1], [3, 17], [10, 1001]] as const) {
    const global = randomVector(rng, size);
    const updates = Array.from({ length: clients }, () => randomVector(rng, size));
    const weights = updates.map(() => 1 + rng.int(600));
    const fedavg = new FedAvg();
    fedavg.begin(global);
    updates.forEach((u, k) => fedavg.accumulate(u, weights[k]!));
    strictEqual(fedavg.count, clients);
    const got = fedavg.finish() as Float32Array;
    const want = referenceAverage(global, updates, weights);
    for (let i = 0; i < size; i++) {
      ok(Math.abs(got[i]! - want[i]!) <= 1e-6 * (1 + Math.abs(want[i]!)), `index ${i}`);
    }
  }
});

Deno.test("FedAvg scales the averaged update by the server learning rate", () => {
  const fedavg = new FedAvg({ serverLr: 0.5 });
  fedavg.begin(new Float32Array([1, 2]));
  fedavg.accumulate(new Float32Array([2, -4]), 1);
  deepStrictEqual(fedavg.finish(), new Float32Array([2, 0]));
});

Deno.test("FedAvg gives the same bits for the same updates and starts each round afresh", () => {
  const rng = new Rng(2);
  const global = randomVector(rng, 100);
  const updates = [randomVector(rng, 100), randomVector(rng, 100)];
  const run = (fedavg: FedAvg) => {
    fedavg.begin(global);
    updates.forEach((u, k) => fedavg.accumulate(u, k + 1));
    return fedavg.finish();
  };
  const reused = new FedAvg();
  const first = run(reused);
  deepStrictEqual(run(reused), first);
  deepStrictEqual(run(new FedAvg()), first);
});

Deno.test("FedAvg does not modify the global parameters or the updates", () => {
  const global = new Float32Array([1, 2, 3]);
  const update = new Float32Array([1, 1, 1]);
  const fedavg = new FedAvg();
  fedavg.begin(global);
  fedavg.accumulate(update, 5);
  fedavg.finish();
  deepStrictEqual(global, new Float32Array([1, 2, 3]));
  deepStrictEqual(update, new Float32Array([1, 1, 1]));
});

Deno.test("FedAvg rejects bad updates and leaves the round's sum unchanged", () => {
  const fedavg = new FedAvg();
  fedavg.begin(new Float32Array([0, 0]));
  fedavg.accumulate(new Float32Array([1, 1]), 1);
  const cases: [Float32Array, number, RegExp][] = [
    [new Float32Array([1]), 1, /Update has 1 values, the model has 2/],
    [new Float32Array([1, NaN]), 1, /non-finite value at index 1/],
    [new Float32Array([Infinity, 1]), 1, /non-finite value at index 0/],
    [new Float32Array([1, 1]), 0, /weight must be positive and finite, got 0/],
    [new Float32Array([1, 1]), -3, /weight must be positive/],
    [new Float32Array([1, 1]), NaN, /weight must be positive/],
  ];
  for (const [update, weight, message] of cases) {
    throws(
      () => fedavg.accumulate(update, weight),
      (e) => e instanceof RangeError && message.test(e.message),
    );
  }
  strictEqual(fedavg.count, 1);
  deepStrictEqual(fedavg.finish(), new Float32Array([1, 1]));
});

Deno.test("FedAvg refuses to finish a round without updates or to work outside a round", () => {
  const fedavg = new FedAvg();
  throws(() => fedavg.accumulate(new Float32Array(1), 1), /begin\(\) before accumulate/);
  throws(() => fedavg.finish(), /begin\(\) before finish/);
  fedavg.begin(new Float32Array(1));
  throws(() => fedavg.finish(), /without updates/);
  throws(() => new FedAvg({ serverLr: 0 }), RangeError);
});
