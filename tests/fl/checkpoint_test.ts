import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { Chain, Dense, type Model, modelToBytes, relu, softmax } from "../../mod.ts";
import {
  type Checkpoint,
  CHECKPOINT_VERSION,
  CheckpointError,
  type CheckpointErrorCode,
  checkpointFromBytes,
  checkpointToBytes,
  loadCheckpoint,
  saveCheckpoint,
} from "../../lib/fl/checkpoint.ts";

// ---------------------------------------------------------------------------------------------
// Reference data and helpers

const MAGIC = [0x46, 0x47, 0x43, 0x4b]; // "FGCK"

/** A small model whose parameters include bit patterns a careless codec would lose. */
function model(seed = 3): Model {
  const m = Chain(Dense(5, 8, relu), Dense(8, 3), softmax).initialize(seed);
  const bits = new Uint32Array(m.params.buffer, m.params.byteOffset, m.params.length);
  bits[0] = 0x80000000; // -0
  bits[1] = 0x00000001; // the smallest subnormal
  bits[2] = 0x807fffff; // a negative subnormal
  bits[3] = 0x7fc00001; // a NaN with a payload
  return m;
}

function sample(overrides: Partial<Checkpoint> = {}): Checkpoint {
  return {
    round: 7,
    model: model(),
    sampler: { seed: 42, task: 123 },
    strategy: { name: "fedavg", config: { serverLr: 1 }, state: {} },
    config: { rounds: 20, lr: 0.05, fraction: 0.5, scheme: "iid", resume: true, seed: 42 },
    records: [
      { round: 1, loss: 1.5, accuracy: null, clients: ["0", "1"], test: { loss: 0.5 } },
      { round: 2, loss: 1.25, accuracy: 0.625, clients: [], note: "ünïcode ✓" },
    ],
    ...overrides,
  };
}

function bitsOf(floats: Float32Array): number[] {
  return [...new Uint32Array(floats.buffer, floats.byteOffset, floats.length)];
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** A checkpoint file built by hand from the documented layout. */
async function buildFile(payload: Uint8Array, version = 2): Promise<Uint8Array> {
  const digest = await sha256(payload);
  return new Uint8Array([...MAGIC, version, ...payload, ...digest]);
}

/** A valid payload map, built by hand. */
function payloadMap(m: Model = model(9)): Record<string, unknown> {
  return {
    round: 4,
    model: modelToBytes(m),
    sampler: { seed: 9, task: 31 },
    strategy: { name: "fedavg", config: { serverLr: 1 }, state: {} },
    config: { rounds: 5, lr: 0.1 },
    records: [{ round: 1 }, { round: 2 }, { round: 3 }, { round: 4 }],
    savedAt: "2024-01-02T03:04:05.678Z",
  };
}

/** Asserts that two checkpoints hold the same state, the model bit for bit. */
function assertSameCheckpoint(actual: Checkpoint, expected: Checkpoint): void {
  assert.deepEqual(modelToBytes(actual.model), modelToBytes(expected.model));
  assert.equal(String(actual.model), String(expected.model));
  assert.deepEqual(bitsOf(actual.model.params), bitsOf(expected.model.params));
  const { model: _a, ...rest } = actual;
  const { model: _b, ...expectedRest } = expected;
  assert.deepEqual(rest, expectedRest);
}

/** Calls `fn` and returns the CheckpointError it throws, checking its code. */
function catchCheckpointError(
  fn: () => unknown,
  code: CheckpointErrorCode,
  what = "",
): CheckpointError {
  try {
    fn();
  } catch (error) {
    assert.ok(
      error instanceof CheckpointError,
      `${what}: expected a CheckpointError, got ${error}`,
    );
    assert.equal(error.code, code, `${what}: ${error.message}`);
    assert.equal(error.name, "CheckpointError");
    return error;
  }
  assert.fail(`${what}: expected a CheckpointError with code "${code}", but nothing was thrown`);
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fedgpu-checkpoint-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.chmod(dir, 0o700).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

// ---------------------------------------------------------------------------------------------
// The byte format

Deno.test("checkpointToBytes() writes FGCK, version 2, a msgpack payload and its SHA-256", async () => {
  const checkpoint = sample();
  const before = Date.now();
  const bytes = checkpointToBytes(checkpoint);
  const after = Date.now();
  assert.deepEqual([...bytes.subarray(0, 4)], MAGIC);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), "FGCK");
  assert.equal(bytes[4], 2);
  assert.equal(CHECKPOINT_VERSION, 2);
  const payload = bytes.subarray(5, bytes.length - 32);
  assert.deepEqual(bytes.subarray(bytes.length - 32), await sha256(payload));
  const map = decode(payload) as Record<string, unknown>;
  assert.deepEqual(Object.keys(map).sort(), [
    "config",
    "model",
    "records",
    "round",
    "sampler",
    "savedAt",
    "strategy",
  ]);
  assert.equal(map.round, 7);
  assert.deepEqual(map.model, modelToBytes(checkpoint.model));
  assert.deepEqual(map.sampler, { seed: 42, task: 123 });
  assert.deepEqual(map.strategy, checkpoint.strategy);
  assert.deepEqual(map.config, checkpoint.config);
  assert.deepEqual(map.records, checkpoint.records);
  assert.equal(typeof map.savedAt, "string");
  const savedAt = Date.parse(map.savedAt as string);
  assert.ok(savedAt >= before && savedAt <= after, `savedAt ${map.savedAt} is not now`);
  assert.equal(new Date(savedAt).toISOString(), map.savedAt);
});

Deno.test("checkpointFromBytes() reads a checkpoint built by hand from the documented layout", async () => {
  const m = model(9);
  const bytes = await buildFile(encode(payloadMap(m)));
  const checkpoint = checkpointFromBytes(bytes);
  assertSameCheckpoint(checkpoint, {
    round: 4,
    model: m,
    sampler: { seed: 9, task: 31 },
    strategy: { name: "fedavg", config: { serverLr: 1 }, state: {} },
    config: { rounds: 5, lr: 0.1 },
    records: [{ round: 1 }, { round: 2 }, { round: 3 }, { round: 4 }],
  });
  assert.equal("savedAt" in checkpoint, false);
});

Deno.test("A checkpoint round-trips: model bits, round, sampler, strategy, config, records", () => {
  const checkpoint = sample();
  const copy = checkpointFromBytes(checkpointToBytes(checkpoint));
  assertSameCheckpoint(copy, checkpoint);
  // The special parameter bits survived.
  assert.deepEqual(bitsOf(copy.model.params).slice(0, 4), [
    0x80000000,
    0x00000001,
    0x807fffff,
    0x7fc00001,
  ]);
  // The restored model is a model of its own, not a view of the bytes.
  assert.notEqual(copy.model, checkpoint.model);
  assert.notEqual(copy.model.params.buffer, checkpoint.model.params.buffer);
});

Deno.test("A checkpoint round-trips at round 0 with no records and an empty config", () => {
  const checkpoint = sample({
    round: 0,
    sampler: { seed: 0, task: 0 },
    config: {},
    records: [],
    strategy: { name: "", config: {}, state: {} },
  });
  assertSameCheckpoint(checkpointFromBytes(checkpointToBytes(checkpoint)), checkpoint);
});

Deno.test("A checkpoint round-trips NaN metrics and large integers in its records", () => {
  const checkpoint = sample({
    records: [{ round: 1, loss: NaN, accuracy: -Infinity, examples: 2 ** 53 - 1, ok: false }],
    sampler: { seed: Number.MAX_SAFE_INTEGER, task: 2 ** 40 },
  });
  const copy = checkpointFromBytes(checkpointToBytes(checkpoint));
  assert.ok(Number.isNaN(copy.records[0]!.loss));
  assert.equal(copy.records[0]!.accuracy, -Infinity);
  assert.equal(copy.records[0]!.examples, 2 ** 53 - 1);
  assert.deepEqual(copy.sampler, { seed: Number.MAX_SAFE_INTEGER, task: 2 ** 40 });
});

// ---------------------------------------------------------------------------------------------
// Damaged files

Deno.test("A change to any single byte is caught, with the code for where it is", () => {
  const bytes = checkpointToBytes(sample());
  const payloadEnd = bytes.length - 32;
  for (let i = 0; i < bytes.length; i++) {
    for (const mask of [0x01, 0x80]) {
      const damaged = bytes.slice();
      damaged[i]! ^= mask;
      const code: CheckpointErrorCode = i < 4 ? "not-checkpoint" : i === 4 ? "version" : "corrupt";
      const error = catchCheckpointError(
        () => checkpointFromBytes(damaged),
        code,
        `byte ${i} ^ ${mask}`,
      );
      if (i >= 5 && i < payloadEnd) assert.match(error.message, /digest does not match/);
    }
  }
});

Deno.test("A file without the FGCK magic is not a checkpoint", () => {
  const valid = checkpointToBytes(sample());
  const inputs: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["text", new TextEncoder().encode("round=7\nmodel=...\n".repeat(10))],
    ["lower-case magic", new Uint8Array([...new TextEncoder().encode("fgck"), ...valid.slice(4)])],
    ["a model file", modelToBytes(model())],
    ["the payload alone", valid.slice(5)],
    ["zeros", new Uint8Array(1000)],
  ];
  for (const [what, bytes] of inputs) {
    const error = catchCheckpointError(
      () => checkpointFromBytes(bytes, "x.ckpt"),
      "not-checkpoint",
      what,
    );
    assert.equal(error.message, "x.ckpt is not a fedgpu checkpoint");
  }
});

Deno.test("A checkpoint of another format version is refused as such, naming the version", () => {
  const valid = checkpointToBytes(sample());
  for (const version of [0, 1, 3, 7, 255]) {
    const bytes = valid.slice();
    bytes[4] = version;
    const error = catchCheckpointError(() => checkpointFromBytes(bytes, "state.ckpt"), "version");
    assert.equal(
      error.message,
      `state.ckpt has checkpoint format version ${version}; this library reads version 2`,
    );
  }
  // Even when the rest is of a size or shape this version cannot read.
  catchCheckpointError(() => checkpointFromBytes(new Uint8Array([...MAGIC, 3])), "version");
  catchCheckpointError(
    () => checkpointFromBytes(new Uint8Array([...MAGIC, 3, 1, 2, 3])),
    "version",
  );
});

Deno.test("Every truncation of a checkpoint is refused: corrupt once the magic is whole", () => {
  const bytes = checkpointToBytes(sample());
  for (let length = 0; length < bytes.length; length++) {
    const code = length < 4 ? "not-checkpoint" : "corrupt";
    catchCheckpointError(
      () => checkpointFromBytes(bytes.slice(0, length)),
      code,
      `${length} bytes`,
    );
  }
});

Deno.test("Bytes appended to a checkpoint make it corrupt", () => {
  const bytes = checkpointToBytes(sample());
  for (const extra of [[0], [1, 2, 3], [...bytes.subarray(bytes.length - 32)]]) {
    catchCheckpointError(
      () => checkpointFromBytes(new Uint8Array([...bytes, ...extra])),
      "corrupt",
    );
  }
});

Deno.test("A payload with a valid digest but invalid content is corrupt, saying what is wrong", async () => {
  const broken = modelToBytes(model(9));
  broken[broken.length - 40]! ^= 0xff; // inside the model's own digest-checked body or digest
  const cases: [string, Uint8Array, RegExp][] = [
    ["not msgpack", new Uint8Array([0xc1]), /corrupt/],
    ["an empty payload", new Uint8Array(0), /corrupt/],
    ["two values", new Uint8Array([...encode(payloadMap()), 0xc0]), /corrupt/],
    ["an array", encode([1, 2, 3]), /the payload is not a map/],
    ["a string", encode("checkpoint"), /the payload is not a map/],
  ];
  const fieldCases: [string, unknown, RegExp][] = [
    ["round", -1, /round is not a non-negative integer/],
    ["round", 1.5, /round is not a non-negative integer/],
    ["round", "4", /round is not a non-negative integer/],
    ["round", undefined, /round is not a non-negative integer/],
    ["model", "bytes", /model is not bytes/],
    ["model", [1, 2, 3], /model is not bytes/],
    ["model", undefined, /model is not bytes/],
    ["model", new Uint8Array([1, 2, 3]), /corrupt/],
    ["model", broken, /corrupt/],
    ["sampler", undefined, /sampler is malformed/],
    ["sampler", [9, 31], /sampler is malformed/],
    ["sampler", { seed: 9 }, /sampler is malformed/],
    ["sampler", { seed: 9.5, task: 31 }, /sampler is malformed/],
    ["sampler", { seed: 9, task: "31" }, /sampler is malformed/],
    ["strategy", 5, /strategy is malformed/],
    ["strategy", undefined, /strategy is malformed/],
    ["strategy", "fedavg", /strategy is malformed/],
    ["strategy", { name: "fedavg", config: {} }, /strategy is malformed/],
    ["strategy", { name: 1, config: {}, state: {} }, /strategy is malformed/],
    ["config", [], /config is not a map/],
    ["config", "rounds=5", /config is not a map/],
    ["config", undefined, /config is not a map/],
    ["records", {}, /records is not a list of maps/],
    ["records", [{ round: 1 }, 2], /records is not a list of maps/],
    ["records", [[]], /records is not a list of maps/],
    ["records", undefined, /records is not a list of maps/],
  ];
  for (const [field, value, pattern] of fieldCases) {
    const map = payloadMap();
    if (value === undefined) delete map[field];
    else map[field] = value;
    cases.push([`${field} = ${Deno.inspect(value)}`, encode(map), pattern]);
  }
  for (const [what, payload, pattern] of cases) {
    const bytes = await buildFile(payload);
    const error = catchCheckpointError(
      () => checkpointFromBytes(bytes, "run.ckpt"),
      "corrupt",
      what,
    );
    assert.match(error.message, /^run\.ckpt is corrupt: /, what);
    assert.match(error.message, pattern, what);
    assert.ok(error.cause instanceof Error, `${what}: the cause is kept`);
  }
});

Deno.test("checkpointFromBytes() names the file in its errors, 'checkpoint' by default", () => {
  const error = catchCheckpointError(
    () => checkpointFromBytes(new Uint8Array(3)),
    "not-checkpoint",
  );
  assert.equal(error.message, "checkpoint is not a fedgpu checkpoint");
  const bytes = checkpointToBytes(sample());
  bytes[10]! ^= 1;
  const named = catchCheckpointError(
    () => checkpointFromBytes(bytes, "/data/run/state.ckpt"),
    "corrupt",
  );
  assert.match(named.message, /^\/data\/run\/state\.ckpt is corrupt/);
});

Deno.test("CheckpointError is an Error with a name, a code and an optional cause", () => {
  const cause = new Error("inner");
  const error = new CheckpointError("mismatch", "settings differ", { cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "CheckpointError");
  assert.equal(error.code, "mismatch");
  assert.equal(error.message, "settings differ");
  assert.equal(error.cause, cause);
});

// ---------------------------------------------------------------------------------------------
// Files

Deno.test("saveCheckpoint() then loadCheckpoint() restores the state, leaving one file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.ckpt`;
    const checkpoint = sample();
    await saveCheckpoint(path, checkpoint);
    assert.deepEqual(await listDir(dir), ["state.ckpt"]);
    const loaded = await loadCheckpoint(path);
    assert.ok(loaded !== null);
    assertSameCheckpoint(loaded, checkpoint);
    // The file holds the documented layout.
    const bytes = await Deno.readFile(path);
    assert.deepEqual([...bytes.subarray(0, 5)], [...MAGIC, 2]);
    assert.deepEqual(
      bytes.subarray(bytes.length - 32),
      await sha256(bytes.subarray(5, bytes.length - 32)),
    );
  });
});

Deno.test("saveCheckpoint() replaces an existing checkpoint", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.ckpt`;
    const first = sample({ round: 1, model: model(1), records: [{ round: 1 }] });
    const second = sample({ round: 2, model: model(2), records: [{ round: 1 }, { round: 2 }] });
    await saveCheckpoint(path, first);
    assertSameCheckpoint((await loadCheckpoint(path))!, first);
    await saveCheckpoint(path, second);
    assert.deepEqual(await listDir(dir), ["state.ckpt"]);
    const loaded = (await loadCheckpoint(path))!;
    assertSameCheckpoint(loaded, second);
    assert.notDeepEqual(bitsOf(loaded.model.params), bitsOf(first.model.params));
  });
});

Deno.test("saveCheckpoint() replaces a longer file, truncating nothing into the new one", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.ckpt`;
    await Deno.writeFile(path, new Uint8Array(1 << 16).fill(0xaa));
    // A stale temporary file of an earlier crash, longer than the checkpoint.
    const stale = `${path}.${Deno.pid}.tmp`;
    await Deno.writeFile(stale, new Uint8Array(1 << 16).fill(0x55));
    const checkpoint = sample();
    await saveCheckpoint(path, checkpoint);
    assert.deepEqual(await listDir(dir), ["state.ckpt"]);
    const bytes = await Deno.readFile(path);
    assert.equal(bytes.length, checkpointToBytes(checkpoint).length);
    assertSameCheckpoint(checkpointFromBytes(bytes), checkpoint);
  });
});

Deno.test("loadCheckpoint() returns null when there is no file", async () => {
  await withTempDir(async (dir) => {
    assert.equal(await loadCheckpoint(`${dir}/absent.ckpt`), null);
    assert.equal(await loadCheckpoint(`${dir}/no/such/dir/state.ckpt`), null);
  });
});

Deno.test("loadCheckpoint() of a directory fails instead of reporting no checkpoint", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(loadCheckpoint(dir), (error: unknown) => {
      assert.ok(!(error instanceof CheckpointError));
      assert.ok(error instanceof Error);
      return true;
    });
  });
});

Deno.test("loadCheckpoint() of a damaged file throws a CheckpointError naming the path", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.ckpt`;
    const bytes = checkpointToBytes(sample());
    bytes[bytes.length >> 1]! ^= 0x10;
    await Deno.writeFile(path, bytes);
    await assert.rejects(loadCheckpoint(path), (error: unknown) => {
      assert.ok(error instanceof CheckpointError);
      assert.equal(error.code, "corrupt");
      assert.ok(error.message.startsWith(`${path} is corrupt`), error.message);
      return true;
    });
    await Deno.writeTextFile(path, "not a checkpoint at all");
    await assert.rejects(loadCheckpoint(path), (error: unknown) => {
      assert.ok(error instanceof CheckpointError);
      assert.equal(error.code, "not-checkpoint");
      assert.equal(error.message, `${path} is not a fedgpu checkpoint`);
      return true;
    });
    // The damaged file is left as it is.
    assert.equal(await Deno.readTextFile(path), "not a checkpoint at all");
  });
});

Deno.test("saveCheckpoint() to a directory's path fails, leaving the directory and no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.ckpt`;
    await Deno.mkdir(path);
    await Deno.writeTextFile(`${path}/inside`, "kept");
    await assert.rejects(saveCheckpoint(path, sample()));
    assert.deepEqual(await listDir(dir), ["state.ckpt"]);
    assert.ok((await Deno.stat(path)).isDirectory);
    assert.equal(await Deno.readTextFile(`${path}/inside`), "kept");
  });
});

Deno.test("saveCheckpoint() that cannot write its temporary file keeps the previous checkpoint", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.ckpt`;
    const previous = sample({ round: 3, model: model(3) });
    await saveCheckpoint(path, previous);
    const before = await Deno.readFile(path);
    // Something that is not a file occupies the temporary file's name.
    const blocker = `${path}.${Deno.pid}.tmp`;
    await Deno.mkdir(blocker);
    await assert.rejects(saveCheckpoint(path, sample({ round: 4, model: model(4) })));
    assert.deepEqual(await Deno.readFile(path), before);
    assertSameCheckpoint((await loadCheckpoint(path))!, previous);
    // What was there is not removed.
    assert.ok((await Deno.stat(blocker)).isDirectory);
    assert.deepEqual(await listDir(dir), [`state.ckpt`, `state.ckpt.${Deno.pid}.tmp`].sort());
  });
});

Deno.test("saveCheckpoint() into a missing directory or under a file fails and creates nothing", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      saveCheckpoint(`${dir}/missing/state.ckpt`, sample()),
      Deno.errors.NotFound,
    );
    await Deno.writeTextFile(`${dir}/file`, "a file");
    await assert.rejects(saveCheckpoint(`${dir}/file/state.ckpt`, sample()));
    assert.deepEqual(await listDir(dir), ["file"]);
    assert.equal(await Deno.readTextFile(`${dir}/file`), "a file");
  });
});

Deno.test({
  name: "saveCheckpoint() in a read-only directory fails and keeps the previous checkpoint",
  // Permissions do not bind root, and Windows has no directory modes.
  ignore: Deno.build.os === "windows" || Deno.uid() === 0,
  async fn() {
    await withTempDir(async (dir) => {
      const path = `${dir}/state.ckpt`;
      const previous = sample({ round: 5 });
      await saveCheckpoint(path, previous);
      const before = await Deno.readFile(path);
      await Deno.chmod(dir, 0o500);
      try {
        await assert.rejects(
          saveCheckpoint(path, sample({ round: 6 })),
          Deno.errors.PermissionDenied,
        );
      } finally {
        await Deno.chmod(dir, 0o700);
      }
      assert.deepEqual(await Deno.readFile(path), before);
      assert.deepEqual(await listDir(dir), ["state.ckpt"]);
    });
  },
});

Deno.test("Checkpoints saved one after another each load as written", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.ckpt`;
    const records: Record<string, unknown>[] = [];
    for (let round = 1; round <= 4; round++) {
      records.push({ round, loss: 1 / round });
      const checkpoint = sample({
        round,
        model: model(round),
        sampler: { seed: 42, task: 10 * round },
        records: [...records],
      });
      await saveCheckpoint(path, checkpoint);
      assertSameCheckpoint((await loadCheckpoint(path))!, checkpoint);
    }
    assert.deepEqual(await listDir(dir), ["state.ckpt"]);
  });
});

Deno.test("A checkpoint keeps a strategy's state bytes bit for bit", () => {
  const moments = new Float64Array([Math.PI, -0, 5e-324, -Infinity, NaN]);
  const state = {
    m: new Uint8Array(moments.buffer.slice(0)),
    nested: { step: 3, tags: ["a", "b"], flag: true },
  };
  const copy = checkpointFromBytes(checkpointToBytes(sample({
    strategy: { name: "fedadam", config: { serverLr: 0.01, tau: 1e-3 }, state },
  })));
  assert.deepEqual(copy.strategy, {
    name: "fedadam",
    config: { serverLr: 0.01, tau: 1e-3 },
    state,
  });
  assert.deepEqual(new Uint8Array(copy.strategy.state.m as Uint8Array), state.m);
});
