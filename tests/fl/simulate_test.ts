import {
  deepStrictEqual,
  notDeepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  Chain,
  CpuBackend,
  createDataset,
  type Dataset,
  Dense,
  evaluate,
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
  TrainerPool,
  TrainerPoolError,
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

Deno.test("simulate() with parallel workers gives every round the sequential run's bits", async () => {
  const data = blobs(400, 8);
  const run = async (parallel: number) => {
    const model = smallModel();
    const rounds: { params: Float32Array; record: RoundRecord }[] = [];
    for await (
      const record of simulate({
        model,
        train: data,
        test: blobs(100, 9),
        clients: 12,
        fraction: 0.5,
        rounds: 4,
        lr: 0.05,
        momentum: 0.5,
        epochs: 2,
        seed: 3,
        partition: "dirichlet",
        alpha: 0.3,
        backend: "cpu",
        parallel,
      })
    ) {
      rounds.push({ params: record.model.params.slice(), record: { ...record } });
    }
    return rounds;
  };
  const sequential = await run(1);
  for (const parallel of [2, 3]) {
    const parallelRun = await run(parallel);
    strictEqual(parallelRun.length, sequential.length);
    for (const [i, { params, record }] of parallelRun.entries()) {
      const want = sequential[i]!;
      deepStrictEqual(
        new Uint32Array(params.buffer),
        new Uint32Array(want.params.buffer),
        `round ${i + 1}, ${parallel} workers`,
      );
      for (const key of ["accuracy", "loss", "trainLoss", "examples", "clients"] as const) {
        deepStrictEqual(record[key], want.record[key], `${key}, round ${i + 1}`);
      }
    }
  }
});

Deno.test("simulate() refuses parallel training off the Wasm engine and bad worker counts", async () => {
  const base = { model: smallModel(), train: blobs(40, 7), clients: 4, rounds: 1 };
  await rejects(
    collect({ ...base, parallel: 2, backend: new CpuBackend("reference") }),
    (e) => e instanceof RangeError && /CPU Wasm engine/.test(e.message),
  );
  for (const parallel of [0, 1.5, -2]) {
    await rejects(
      collect({ ...base, parallel }),
      (e) =>
        e instanceof RangeError && /Parallel workers must be a positive integer/.test(e.message),
    );
  }
});

Deno.test("TrainerPool trains like the backend, reports a failed task and keeps serving", async () => {
  const data = blobs(90, 10);
  const model = smallModel();
  const pool = new TrainerPool(2, model, { train: data });
  try {
    const options = { epochs: 1, batchSize: 7, lr: 0.1, momentum: 0, weightDecay: 0 };
    const indices = Uint32Array.from({ length: 30 }, (_, i) => 2 * i + 1);
    const task = { global: model.params, indices, options, seed: 4, stream: [STREAM.train, 1, 5] };
    const bad = pool.train({ ...task, indices: Uint32Array.of(1, 90) });
    const good = pool.train(task);
    await rejects(bad, (e) => e instanceof TrainerPoolError && /outside \[0, 90\)/.test(e.message));
    const { delta, loss } = await good;
    // The reference: the same client trained here, with the slow obviously-correct engine.
    const local = model.clone();
    const result = train(local, subset(data, indices), {
      ...options,
      rng: new Rng(4, [STREAM.train, 1, 5]),
    });
    const want = local.params.map((v, i) => v - model.params[i]!);
    deepStrictEqual(new Uint32Array(delta.buffer), new Uint32Array(want.buffer));
    strictEqual(loss, result.last.loss);
    // Still serving after the failure.
    deepStrictEqual((await pool.train(task)).delta, delta);
  } finally {
    pool.close();
  }
  await rejects(
    pool.train({
      global: model.params,
      indices: Uint32Array.of(0),
      options: { lr: 0.1 },
      seed: 0,
      stream: [],
    }),
    /closed/,
  );
  throws(() => new TrainerPool(0, model, { train: data }), /positive integer/);
  // Closing rejects what is queued or running; nothing is left pending.
  const closing = new TrainerPool(1, model, { train: data });
  const queued = [1, 2, 3].map((c) =>
    closing.train({
      global: model.params,
      indices: Uint32Array.of(c, c + 1),
      options: { lr: 0.1 },
      seed: 0,
      stream: [STREAM.train, 1, c],
    })
  );
  closing.close();
  for (const task of queued) await rejects(task, /closed/);
});

Deno.test("parallel training without read permission fails with a clear TrainerPoolError", async () => {
  const script = new URL("./_parallel_no_read.ts", import.meta.url);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", script.href],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  strictEqual(code, 0, new TextDecoder().decode(stderr));
  strictEqual(
    out.trim(),
    `TrainerPoolError: Parallel training needs read permission for ${
      fileURLToPath(new URL("../../lib/fl/train_worker.ts", import.meta.url))
    } (run with --allow-read)`,
  );
});

Deno.test("TrainerPool.evaluate splits the batches over workers and keeps evaluate's bits", async () => {
  const model = smallModel();
  const data = blobs(60, 11);
  for (const [n, workers] of [[2500, 2], [2500, 3], [3000, 4], [999, 2], [0, 2]] as const) {
    const test = n === 0
      ? createDataset(new Float32Array(0), new Int32Array(0), {
        features: 4,
        classes: 3,
      })
      : blobs(n, 12 + n);
    const pool = new TrainerPool(workers, model, { train: data, test });
    try {
      const got = await pool.evaluate(model.params);
      const want = evaluate(model, test);
      deepStrictEqual(got, want, `${n} examples, ${workers} workers`);
    } finally {
      pool.close();
    }
  }
  const pool = new TrainerPool(1, model, { train: data });
  try {
    await rejects(pool.evaluate(model.params), /no held-out data/);
  } finally {
    pool.close();
  }
  // A pool for scoring alone refuses to train, typed, and keeps scoring.
  const test = blobs(1500, 14);
  const scorers = new TrainerPool(2, model, { test });
  try {
    await rejects(
      scorers.train({
        global: model.params,
        indices: Uint32Array.of(0),
        options: { lr: 0.1 },
        seed: 0,
        stream: [],
      }),
      (e) => e instanceof TrainerPoolError && /holds no training data/.test(e.message),
    );
    deepStrictEqual(await scorers.evaluate(model.params), evaluate(model, test));
  } finally {
    scorers.close();
  }
});
