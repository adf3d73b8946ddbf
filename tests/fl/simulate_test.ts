import { deepStrictEqual, notDeepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  Chain,
  createDataset,
  type Dataset,
  Dense,
  partition,
  relu,
  Rng,
  type RoundRecord,
  simulate,
  type SimulateOptions,
  softmax,
  STREAM,
  subset,
  train,
} from "../../mod.ts";

/** Three Gaussian blobs in 4 dimensions. */
function blobs(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 4);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = rng.int(3);
    for (let f = 0; f < 4; f++) x[i * 4 + f] = rng.normal() + (f === y[i] ? 3 : 0);
  }
  return createDataset(x, y, { features: 4, classes: 3 });
}

function smallModel() {
  return Chain(Dense(4, 8, relu), Dense(8, 3), softmax).initialize(3);
}

async function collect(options: SimulateOptions): Promise<RoundRecord[]> {
  const records: RoundRecord[] = [];
  for await (const record of simulate({ backend: "cpu", ...options })) {
    records.push({ ...record, clients: [...record.clients] });
  }
  return records;
}

Deno.test("simulate() with one client equals training that client's data locally", async () => {
  const data = blobs(120, 1);
  const options = { clients: 1, fraction: 1, epochs: 2, batchSize: 10, lr: 0.05, seed: 9 };
  const model = smallModel();
  const start = model.params.slice();
  const records = await collect({ ...options, model, train: data, rounds: 1 });
  strictEqual(records.length, 1);

  const [indices] = partition(
    data.y,
    { scheme: "iid", clients: 1 },
    new Rng(9, [STREAM.partition]),
  );
  const local = smallModel();
  deepStrictEqual(local.params, start);
  train(local, subset(data, indices!), {
    epochs: 2,
    batchSize: 10,
    lr: 0.05,
    rng: new Rng(9, [STREAM.train, 1, 0]),
  });
  // FedAvg of one client: w + (w1 - w) = w1, up to float rounding of the difference.
  for (let i = 0; i < start.length; i++) {
    ok(Math.abs(model.params[i]! - local.params[i]!) <= 1e-6, `parameter ${i}`);
  }
});

Deno.test("simulate() averages the sampled clients' models weighted by their sizes", async () => {
  const data = blobs(101, 2); // clients of 33, 34 and 34 examples
  const model = smallModel();
  const start = model.params.slice();
  const records = await collect({
    model,
    train: data,
    clients: 3,
    fraction: 1,
    rounds: 1,
    batchSize: 8,
    lr: 0.05,
    seed: 4,
  });
  deepStrictEqual(records[0]!.clients, [0, 1, 2]);
  strictEqual(records[0]!.examples, 101);

  const parts = partition(data.y, { scheme: "iid", clients: 3 }, new Rng(4, [STREAM.partition]));
  const want = new Float64Array(start.length);
  parts.forEach((indices, client) => {
    const local = smallModel();
    train(local, subset(data, indices), {
      batchSize: 8,
      lr: 0.05,
      rng: new Rng(4, [STREAM.train, 1, client]),
    });
    for (let i = 0; i < want.length; i++) {
      want[i]! += indices.length * (local.params[i]! - start[i]!) / data.n;
    }
  });
  for (let i = 0; i < want.length; i++) {
    ok(Math.abs(model.params[i]! - (start[i]! + want[i]!)) <= 1e-6, `parameter ${i}`);
  }
});

Deno.test("simulate() gives the same bits for the same seed and different ones for another", async () => {
  const data = blobs(300, 3);
  const run = async (seed: number) => {
    const model = smallModel();
    const records = await collect({
      model,
      train: data,
      test: data,
      clients: 10,
      fraction: 0.3,
      rounds: 3,
      lr: 0.05,
      seed,
      partition: "dirichlet",
      alpha: 0.5,
    });
    return { params: model.params, accuracy: records.map((r) => r.accuracy), records };
  };
  const a = await run(5);
  const b = await run(5);
  deepStrictEqual(b.params, a.params);
  deepStrictEqual(b.accuracy, a.accuracy);
  const c = await run(6);
  notDeepStrictEqual(c.params, a.params);
});

Deno.test("simulate() samples round(C * K) distinct clients per round and learns", async () => {
  const data = blobs(600, 4);
  const records = await collect({
    model: smallModel(),
    train: data,
    test: blobs(300, 5),
    clients: 20,
    fraction: 0.25,
    rounds: 8,
    lr: 0.1,
    seed: 1,
  });
  strictEqual(records.length, 8);
  for (const [i, record] of records.entries()) {
    strictEqual(record.round, i + 1);
    strictEqual(record.clients.length, 5);
    strictEqual(new Set(record.clients).size, 5);
    ok(record.clients.every((c, j) => c >= 0 && c < 20 && (j === 0 || c > record.clients[j - 1]!)));
    strictEqual(record.examples, 5 * 30);
    ok(Number.isFinite(record.trainLoss) && record.seconds >= 0);
  }
  ok(records[7]!.accuracy > 0.9, `accuracy ${records[7]!.accuracy}`);
  ok(records[7]!.loss < records[0]!.loss);
  // Rounds sample differently.
  notDeepStrictEqual(records[0]!.clients, records[1]!.clients);
});

Deno.test("simulate() without test data reports NaN test metrics", async () => {
  const records = await collect({
    model: smallModel(),
    train: blobs(50, 6),
    clients: 5,
    fraction: 0.2,
    rounds: 1,
  });
  ok(Number.isNaN(records[0]!.accuracy) && Number.isNaN(records[0]!.loss));
});

Deno.test("simulate() rejects out-of-range options", async () => {
  const base = { model: smallModel(), train: blobs(20, 7) };
  const cases: [SimulateOptions, RegExp][] = [
    [{ clients: 0 }, /Clients must be a positive integer, got 0/],
    [{ clients: 2.5 }, /Clients must be a positive integer/],
    [{ fraction: 0 }, /Client fraction must be in \(0, 1\], got 0/],
    [{ fraction: 1.5 }, /Client fraction must be in \(0, 1\]/],
    [{ rounds: -1 }, /Rounds must be a non-negative integer/],
  ];
  for (const [options, message] of cases) {
    await rejects(
      collect({ ...base, ...options }),
      (e) => e instanceof RangeError && message.test(e.message),
    );
  }
});
