import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { Chain, Dense, modelFromBytes, modelToBytes, relu, softmax } from "../../mod.ts";
import { ChannelError } from "../../lib/net/errors.ts";
import {
  decodeMessage,
  MessageError,
  type MessageErrorCode,
  type RawMessage,
} from "../../lib/net/message.ts";
import {
  CLIENT_ID_PATTERN,
  clientKey,
  FL_PROTOCOL,
  type FlMessage,
  parseFlMessage,
  receiveFl,
  sendFl,
  type UpdateMessage,
} from "../../lib/fl/protocol.ts";
import { connectedPair } from "../net/_pair.ts";
import type { StageSpec } from "../../lib/fl/update.ts";

// ---------------------------------------------------------------------------------------------
// Reference data

/** Float32 bit patterns that a careless codec would not carry: signed zeros, subnormals, NaNs. */
const DELTA_BITS = [
  0x00000000, // +0
  0x80000000, // -0
  0x00000001, // smallest positive subnormal
  0x80000001, // smallest negative subnormal
  0x007fffff, // largest subnormal
  0x807fffff, // largest negative subnormal
  0x00800000, // smallest normal
  0x3f800000, // 1
  0xbf800000, // -1
  0x3dcccccd, // 0.1f
  0x7f7fffff, // largest finite
  0xff7fffff, // most negative finite
  0x7f800000, // +Infinity
  0xff800000, // -Infinity
  0x7fc00000, // the canonical quiet NaN
  0x7fc00001, // a quiet NaN with a payload
  0xffc12345, // a negative NaN with a payload
  0x12345678,
];

/** Floats with exactly the given bit patterns. */
function floatsOfBits(bits: readonly number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

/** The bit patterns of `floats`. */
function bitsOf(floats: Float32Array): number[] {
  return [...new Uint32Array(floats.buffer, floats.byteOffset, floats.length)];
}

/** The little-endian bytes of the given float32 bit patterns, written with a DataView. */
function littleEndianBytes(bits: readonly number[]): Uint8Array {
  const bytes = new Uint8Array(4 * bits.length);
  const view = new DataView(bytes.buffer);
  bits.forEach((value, i) => view.setUint32(4 * i, value, true));
  return bytes;
}

const MODEL = Chain(Dense(3, 4, relu), Dense(4, 2), softmax).initialize(5);
const MODEL_BYTES = modelToBytes(MODEL);

/** One valid message of each type, as a client or server would hand it to `sendFl`. */
function samples(): FlMessage[] {
  return [
    {
      type: "hello",
      id: "client-7.a:b_C",
      examples: 1234,
      backends: ["cpu", "webgpu"],
      stages: ["clip"],
    },
    { type: "welcome", round: 3, key: 2 ** 48 + 5 },
    {
      type: "task",
      task: 17,
      round: 3,
      model: MODEL_BYTES,
      training: {
        epochs: 2,
        batchSize: 32,
        lr: 0.05,
        momentum: 0.9,
        weightDecay: 1e-4,
        proximalMu: 0.01,
      },
      pipeline: [{ id: "clip", params: [1.5] }],
      seed: 2 ** 53 - 1,
      stream: [3, 3, 7],
      timeoutMs: 60_000,
    },
    { type: "ready", task: 17, examples: 1234 },
    { type: "collect", task: 17 },
    {
      type: "update",
      task: 17,
      stages: ["clip"],
      codec: "float32",
      delta: floatsOfBits(DELTA_BITS),
      examples: 1234,
      loss: 0.6931,
      accuracy: 0.5,
      seconds: 1.25,
    },
    { type: "evaluate", task: 18, model: MODEL_BYTES },
    { type: "evaluation", task: 18, examples: 0, loss: NaN, accuracy: NaN },
    {
      type: "stage",
      task: 17,
      stage: "share-keys",
      from: [3, 2 ** 48 + 1],
      data: [new Uint8Array([1, 2]), new Uint8Array(0)],
    },
    {
      type: "stage-reply",
      task: 17,
      stage: "share-keys",
      to: [-1, 3],
      data: [new Uint8Array([9]), new Uint8Array([8, 7])],
    },
    { type: "error", code: "duplicate-id", message: "Client id 7 is taken — try another ✓" },
    { type: "bye", reason: "training is over" },
  ];
}

/** The map a message travels as, built by hand: the envelope, then the fields. */
function wireMap(message: FlMessage): Record<string, unknown> {
  const map: Record<string, unknown> = { p: "fedgpu-fl", v: 2 };
  for (const [key, value] of Object.entries(message)) {
    if (key === "training") Object.assign(map, value);
    else if (key === "pipeline") {
      map[key] = (value as StageSpec[]).map((stage) => [stage.id, ...stage.params]);
    } else map[key] = key === "delta" ? littleEndianBytes(bitsOf(value as Float32Array)) : value;
  }
  return map;
}

/** Valid wire fields of each type (without the envelope), to spoil one field at a time. */
const VALID: Record<string, Record<string, unknown>> = {
  hello: { id: "c1", examples: 10, backends: ["cpu"], stages: [] },
  welcome: { round: 1, key: 0 },
  task: {
    task: 1,
    round: 1,
    model: MODEL_BYTES,
    epochs: 1,
    batchSize: 8,
    lr: 0.1,
    momentum: 0,
    weightDecay: 0,
    proximalMu: 0,
    pipeline: [],
    seed: 0,
    stream: [],
    timeoutMs: 1000,
  },
  ready: { task: 1, examples: 1 },
  collect: { task: 1 },
  update: {
    task: 1,
    stages: [],
    codec: "float32",
    delta: new Uint8Array(8),
    examples: 1,
    loss: 1,
    accuracy: 0,
    seconds: 0,
  },
  evaluate: { task: 1, model: MODEL_BYTES },
  evaluation: { task: 1, examples: 0, loss: 1, accuracy: 0 },
  stage: { task: 1, stage: "s", from: [1], data: [new Uint8Array(1)] },
  "stage-reply": { task: 1, stage: "s", to: [-1], data: [new Uint8Array(1)] },
  error: { code: "x", message: "y" },
  bye: { reason: "done" },
};

const MISSING = Symbol("missing");

/** The bytes of a message of `type`: its valid fields with `changes` applied. */
function wireBytes(type: string, changes: Record<string, unknown> = {}): Uint8Array {
  const map: Record<string, unknown> = { p: "fedgpu-fl", v: 2, type, ...VALID[type] };
  for (const [key, value] of Object.entries(changes)) {
    if (value === MISSING) delete map[key];
    else map[key] = value;
  }
  return encode(map);
}

/** Decodes and validates bytes as a received message would be. */
function parse(bytes: Uint8Array): FlMessage {
  return parseFlMessage(decodeMessage(FL_PROTOCOL, bytes));
}

/** Calls `fn` and returns the MessageError it throws, checking its code. */
function catchMessageError(fn: () => unknown, code: MessageErrorCode, what = ""): MessageError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof MessageError, `${what}: expected a MessageError, got ${error}`);
    assert.equal(error.code, code, `${what}: ${error.message}`);
    return error;
  }
  assert.fail(`${what}: expected a MessageError with code "${code}", but nothing was thrown`);
}

/** Compares a parsed message with the one sent, delta bits included. */
function assertSameMessage(actual: FlMessage, expected: FlMessage, what: string): void {
  if (expected.type === "update") {
    assert.equal(actual.type, "update", what);
    const { delta, ...rest } = actual as UpdateMessage;
    const { delta: expectedDelta, ...expectedRest } = expected;
    assert.ok(delta instanceof Float32Array, `${what}: delta is a Float32Array`);
    assert.deepEqual(bitsOf(delta), bitsOf(expectedDelta), `${what}: delta bits`);
    assert.deepEqual(rest, expectedRest, what);
  } else {
    assert.deepEqual(actual, expected, what);
  }
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** The key of a non-decimal id, computed from the documented rule with WebCrypto. */
async function hashedKey(id: string): Promise<number> {
  const digest = await sha256(new TextEncoder().encode(id));
  return 2 ** 48 + digest[0]! * 2 ** 24 + digest[1]! * 2 ** 16 + digest[2]! * 2 ** 8 +
    digest[3]!;
}

// ---------------------------------------------------------------------------------------------
// The protocol's envelope

Deno.test("FL_PROTOCOL is fedgpu-fl version 2 with the twelve documented message types", () => {
  assert.equal(FL_PROTOCOL.name, "fedgpu-fl");
  assert.equal(FL_PROTOCOL.version, 2);
  assert.deepEqual([...FL_PROTOCOL.types].sort(), [
    "bye",
    "collect",
    "error",
    "evaluate",
    "evaluation",
    "hello",
    "ready",
    "stage",
    "stage-reply",
    "task",
    "update",
    "welcome",
  ]);
  assert.deepEqual(samples().map((message) => message.type).sort(), [...FL_PROTOCOL.types].sort());
});

Deno.test("A message of another protocol, version or type is refused before its fields", () => {
  const cases: [Record<string, unknown>, MessageErrorCode][] = [
    [{ p: "fedgpu-fl2" }, "protocol"],
    [{ p: "fedgpu" }, "protocol"],
    [{ p: MISSING }, "protocol"],
    [{ v: 0 }, "version"],
    [{ v: 1 }, "version"],
    [{ v: 3 }, "version"],
    [{ v: "1" }, "version"],
    [{ v: MISSING }, "version"],
    [{ type: "hello2" }, "unknown-type"],
    [{ type: "Hello" }, "unknown-type"],
    [{ type: MISSING }, "unknown-type"],
  ];
  for (const [changes, code] of cases) {
    catchMessageError(() => parse(wireBytes("hello", changes)), code, JSON.stringify(changes));
  }
});

Deno.test("Bytes that are not a msgpack map are malformed", () => {
  const valid = wireBytes("task");
  const inputs: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["text", new TextEncoder().encode('{"p":"fedgpu-fl","v":1,"type":"bye"}')],
    ["a reserved byte", new Uint8Array([0xc1])],
    ["an array", encode(["fedgpu-fl", 1, "bye", "done"])],
    ["a string", encode("bye")],
    ["trailing bytes", new Uint8Array([...valid, 0x00])],
  ];
  for (let length = 0; length < valid.length; length += 7) {
    inputs.push([`cut to ${length} bytes`, valid.slice(0, length)]);
  }
  for (const [what, bytes] of inputs) catchMessageError(() => parse(bytes), "malformed", what);
});

Deno.test("parseFlMessage() refuses a raw message of a type the protocol does not know", () => {
  const raw: RawMessage = { type: "shutdown", fields: { p: "fedgpu-fl", v: 2, type: "shutdown" } };
  const error = catchMessageError(() => parseFlMessage(raw), "unknown-type");
  assert.match(error.message, /"shutdown"/);
});

// ---------------------------------------------------------------------------------------------
// Round trips without a channel

Deno.test("Every message type parses from hand-encoded wire bytes into exactly its fields", () => {
  for (const message of samples()) {
    const bytes = encode(wireMap(message));
    assertSameMessage(parse(bytes), message, message.type);
  }
});

Deno.test("Unknown extra fields are dropped from the parsed message", () => {
  const parsed = parse(wireBytes("collect", { extra: "ignored", more: [1, 2] }));
  assert.deepEqual(parsed, { type: "collect", task: 1 });
});

Deno.test("update deltas carry float32 bits exactly: signed zeros, subnormals, NaN payloads", () => {
  const bytes = littleEndianBytes(DELTA_BITS);
  const parsed = parse(wireBytes("update", { delta: bytes })) as UpdateMessage;
  assert.deepEqual(bitsOf(parsed.delta), DELTA_BITS);
  assert.ok(Object.is(parsed.delta[1], -0));
  assert.equal(parsed.delta[2], 2 ** -149);
  assert.equal(parsed.delta[5], -(2 ** -126 - 2 ** -149));
  assert.equal(parsed.delta[7], 1);
  assert.equal(parsed.delta[12], Infinity);
});

Deno.test("update deltas decode from an unaligned view into the message bytes", () => {
  // The msgpack decoder hands out bin fields as views into the input; put the input at an odd
  // offset so the delta's bytes start at an address no Float32Array may view directly.
  const bits = [0x3f800000, 0x80000000, 0x00000001, 0xc0490fdb];
  const bytes = wireBytes("update", { delta: littleEndianBytes(bits) });
  for (let shift = 1; shift < 4; shift++) {
    const buffer = new Uint8Array(bytes.length + shift);
    buffer.set(bytes, shift);
    const raw = decodeMessage(FL_PROTOCOL, buffer.subarray(shift));
    const delta = raw.fields.delta as Uint8Array;
    assert.equal(delta.length, 16);
    const parsed = parseFlMessage(raw) as UpdateMessage;
    assert.deepEqual(bitsOf(parsed.delta), bits, `shifted by ${shift}`);
  }
  // And straight from an unaligned subarray of a raw message's fields.
  const buffer = new Uint8Array(1 + 16);
  buffer.set(littleEndianBytes(bits), 1);
  const raw: RawMessage = {
    type: "update",
    fields: { ...VALID.update, delta: buffer.subarray(1) },
  };
  assert.deepEqual(bitsOf((parseFlMessage(raw) as UpdateMessage).delta), bits);
});

Deno.test("A parsed update's delta is a copy, not a view that later writes would change", () => {
  const bytes = littleEndianBytes([0x3f800000]);
  const raw: RawMessage = { type: "update", fields: { ...VALID.update, delta: bytes } };
  const parsed = parseFlMessage(raw) as UpdateMessage;
  bytes.fill(0);
  assert.equal(parsed.delta[0], 1);
});

Deno.test("An empty update delta is accepted as zero parameters", () => {
  const parsed = parse(wireBytes("update", { delta: new Uint8Array(0) })) as UpdateMessage;
  assert.equal(parsed.delta.length, 0);
});

// ---------------------------------------------------------------------------------------------
// Field validation

/** [message type, field, bad value] triples, each of which must be refused as invalid. */
const INVALID: [string, string, unknown][] = [
  // hello
  ["hello", "id", MISSING],
  ["hello", "id", ""],
  ["hello", "id", "has space"],
  ["hello", "id", "x".repeat(65)],
  ["hello", "id", "slash/id"],
  ["hello", "id", "accénted"],
  ["hello", "id", "trailing\n"],
  ["hello", "id", 7],
  ["hello", "examples", -1],
  ["hello", "examples", 1.5],
  ["hello", "examples", 2 ** 40 + 1],
  ["hello", "examples", NaN],
  ["hello", "examples", "10"],
  ["hello", "examples", MISSING],
  ["hello", "backends", "cpu"],
  ["hello", "backends", ["a", "b", "c", "d", "e", "f", "g", "h", "i"]],
  ["hello", "backends", ["x".repeat(17)]],
  ["hello", "backends", ["cpu", 1]],
  ["hello", "backends", MISSING],
  ["hello", "stages", MISSING],
  ["hello", "stages", "clip"],
  ["hello", "stages", [1]],
  // welcome
  ["welcome", "round", 0],
  ["welcome", "round", MISSING],
  ["welcome", "key", -1],
  ["welcome", "key", 2 ** 53],
  ["welcome", "key", 0.5],
  ["welcome", "key", MISSING],
  // task
  ["task", "task", 0],
  ["task", "task", 1.5],
  ["task", "task", "1"],
  ["task", "round", 0],
  ["task", "model", "bytes"],
  ["task", "model", [1, 2, 3]],
  ["task", "model", MISSING],
  ["task", "epochs", 0],
  ["task", "epochs", 1_000_001],
  ["task", "batchSize", 0],
  ["task", "batchSize", 2 ** 24 + 1],
  ["task", "batchSize", 8.5],
  ["task", "lr", 0],
  ["task", "lr", -0.1],
  ["task", "lr", NaN],
  ["task", "lr", Infinity],
  ["task", "lr", "0.1"],
  ["task", "momentum", -0.1],
  ["task", "momentum", 1],
  ["task", "momentum", NaN],
  ["task", "weightDecay", -1e-9],
  ["task", "weightDecay", Infinity],
  ["task", "seed", -1],
  ["task", "seed", 1.5],
  ["task", "seed", 2 ** 53],
  ["task", "stream", 3],
  ["task", "stream", [1, 2, 3, 4, 5, 6, 7, 8, 9]],
  ["task", "stream", [-1]],
  ["task", "stream", [0.5]],
  ["task", "stream", ["1"]],
  ["task", "timeoutMs", -1],
  ["task", "timeoutMs", NaN],
  ["task", "timeoutMs", Infinity],
  ["task", "timeoutMs", MISSING],
  // ready
  ["ready", "task", 0],
  ["ready", "task", MISSING],
  ["ready", "examples", 0],
  ["ready", "examples", -5],
  ["ready", "examples", 2 ** 40 + 1],
  // collect
  ["collect", "task", "1"],
  ["collect", "task", -1],
  ["collect", "task", MISSING],
  // update
  ["update", "delta", new Uint8Array(5)],
  ["update", "delta", new Uint8Array(3)],
  ["update", "delta", new Uint8Array(4097)],
  ["update", "delta", [0, 0, 0, 0]],
  ["update", "delta", MISSING],
  ["task", "proximalMu", -1],
  ["task", "proximalMu", MISSING],
  ["task", "pipeline", MISSING],
  ["task", "pipeline", "clip"],
  ["task", "pipeline", [[]]],
  ["task", "pipeline", [["clip", "1"]]],
  ["task", "pipeline", [["Clip!", 1]]],
  ["task", "pipeline", [["clip", NaN]]],
  ["update", "stages", MISSING],
  ["update", "stages", ["x".repeat(33)]],
  ["update", "codec", "float16"],
  ["update", "codec", MISSING],
  ["stage", "stage", MISSING],
  ["stage", "from", "x"],
  ["stage", "data", [new Uint8Array(1), new Uint8Array(1)]],
  ["stage", "from", [-2]],
  ["stage", "data", ["text"]],
  ["stage-reply", "to", [-2]],
  ["stage-reply", "data", MISSING],
  ["update", "task", 0],
  ["update", "examples", 0],
  ["update", "examples", 1.25],
  ["update", "loss", "0.5"],
  ["update", "loss", MISSING],
  ["update", "accuracy", null],
  ["update", "seconds", -1],
  ["update", "seconds", NaN],
  // evaluate
  ["evaluate", "task", 0],
  ["evaluate", "model", MISSING],
  ["evaluate", "model", "model"],
  // evaluation
  ["evaluation", "examples", -1],
  ["evaluation", "examples", 0.5],
  ["evaluation", "loss", MISSING],
  ["evaluation", "accuracy", "1"],
  // error
  ["error", "code", "x".repeat(65)],
  ["error", "code", 400],
  ["error", "code", MISSING],
  ["error", "message", "x".repeat(4097)],
  ["error", "message", MISSING],
  // bye
  ["bye", "reason", MISSING],
  ["bye", "reason", "x".repeat(4097)],
  ["bye", "reason", ["done"]],
];

Deno.test("The valid base messages of the validation table parse", () => {
  for (const type of FL_PROTOCOL.types) assert.equal(parse(wireBytes(type)).type, type);
});

Deno.test("Each missing, mistyped or out-of-range field is refused as invalid, by name", () => {
  for (const [type, field, value] of INVALID) {
    const what = `${type}.${field} = ${
      value === MISSING ? "missing" : Deno.inspect(value, { strAbbreviateSize: 20 })
    }`;
    const error = catchMessageError(
      () => parse(wireBytes(type, { [field]: value })),
      "invalid",
      what,
    );
    assert.match(error.message, new RegExp(`^Field ${field} of a.? ${type} message must `), what);
  }
});

Deno.test("A delta that is not whole float32 values is refused with its byte count", () => {
  for (const length of [1, 2, 3, 5, 6, 7, 1023]) {
    const error = catchMessageError(
      () => parse(wireBytes("update", { delta: new Uint8Array(length) })),
      "invalid",
    );
    assert.equal(
      error.message,
      `Field delta of an update message must hold float32 values, got ${length} bytes`,
    );
  }
});

Deno.test("Values on the edge of each range are accepted as they are", () => {
  const cases: [string, string, unknown][] = [
    ["hello", "id", "x".repeat(64)],
    ["hello", "id", "A.z_0:9-"],
    ["hello", "examples", 0],
    ["hello", "examples", 2 ** 40],
    ["hello", "backends", []],
    ["hello", "backends", ["a", "b", "c", "d", "e", "f", "g", "h"]],
    ["hello", "backends", ["x".repeat(16)]],
    ["welcome", "key", Number.MAX_SAFE_INTEGER],
    ["task", "epochs", 1_000_000],
    ["task", "batchSize", 2 ** 24],
    ["task", "lr", Number.MIN_VALUE],
    ["task", "lr", 1e300],
    ["task", "momentum", 1 - Number.EPSILON],
    ["task", "proximalMu", 0],
    ["task", "proximalMu", 1e6],
    ["task", "seed", Number.MAX_SAFE_INTEGER],
    ["task", "stream", [0, 1, 2, 3, 4, 5, 6, Number.MAX_SAFE_INTEGER]],
    ["task", "timeoutMs", 0],
    ["task", "timeoutMs", 0.5],
    ["ready", "examples", 2 ** 40],
    ["update", "loss", NaN],
    ["update", "accuracy", NaN],
    ["update", "loss", Infinity],
    ["update", "seconds", 0],
    ["evaluation", "loss", NaN],
    ["error", "code", "x".repeat(64)],
    ["error", "message", "y".repeat(4096)],
    ["error", "message", ""],
    ["bye", "reason", "z".repeat(4096)],
  ];
  for (const [type, field, value] of cases) {
    const parsed = parse(wireBytes(type, { [field]: value })) as unknown as Record<
      string,
      unknown
    >;
    const training = parsed.training as Record<string, unknown> | undefined;
    const got = training !== undefined && field in training ? training[field] : parsed[field];
    assert.deepEqual(got, value, `${type}.${field}`);
  }
});

Deno.test("Huge declared lengths of arrays and bytes are refused as malformed, unallocated", () => {
  // task with its stream last: the encoder writes [] as the single byte 0x90 at the end.
  const task = wireBytes("task", { stream: MISSING });
  const head = encode({ ...decode(task) as Record<string, unknown>, stream: [] });
  assert.equal(head.at(-1), 0x90);
  // Each reason shows the refusal came from the declared length itself, before any allocation
  // or any loop over items: the length is over its limit, or the input ends after the items
  // actually present.
  const hostile: [string, number[], RegExp][] = [
    ["array32 of 2^32-1 items", [0xdd, 0xff, 0xff, 0xff, 0xff], /array length \(4294967295\) >/],
    ["array16 of 65535 items, 2 present", [0xdc, 0xff, 0xff, 0x01, 0x02], /outside the bounds/],
    ["array32 of 2^20 items, 1 present", [0xdd, 0x00, 0x10, 0x00, 0x00, 0x01], /\(1048576\) >/],
    ["bin32 of 2^32-1 bytes", [0xc6, 0xff, 0xff, 0xff, 0xff], /bin length \(4294967295\) >/],
    ["str32 of 2^32-1 bytes", [0xdb, 0xff, 0xff, 0xff, 0xff], /byte length \(4294967295\) >/],
    ["map32 of 2^32-1 entries", [0xdf, 0xff, 0xff, 0xff, 0xff], /map length \(4294967295\) >/],
  ];
  for (const [what, value, reason] of hostile) {
    const bytes = new Uint8Array([...head.subarray(0, head.length - 1), ...value]);
    const error = catchMessageError(() => parse(bytes), "malformed", what);
    assert.match(error.message, reason, what);
  }
  // The same for the update's delta, its last field.
  const update = encode({
    ...decode(wireBytes("update", { delta: MISSING })) as object,
    delta: new Uint8Array(0),
  });
  assert.deepEqual([...update.subarray(-2)], [0xc4, 0x00]); // bin8 of 0 bytes
  const hugeDelta = new Uint8Array([...update.subarray(0, -2), 0xc6, 0x7f, 0xff, 0xff, 0xfc]);
  catchMessageError(() => parse(hugeDelta), "malformed", "bin32 delta of 2^31-4 bytes");
});

// ---------------------------------------------------------------------------------------------
// Client ids and keys

Deno.test("CLIENT_ID_PATTERN admits 1-64 letters, digits and . _ : - only", () => {
  for (const id of ["a", "0", "x".repeat(64), "Node-1.eu_west:3", "..", "-"]) {
    assert.ok(CLIENT_ID_PATTERN.test(id), id);
  }
  for (
    const id of ["", "x".repeat(65), "a b", "a/b", "a\\b", "é", "a\n", "\na", "a\0", "id!", "+1"]
  ) {
    assert.ok(!CLIENT_ID_PATTERN.test(id), JSON.stringify(id));
  }
});

Deno.test("clientKey() maps decimal ids below 2^48 to their value", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["1", 1],
    ["7", 7],
    ["42", 42],
    ["1000", 1000],
    ["99999999999999", 99_999_999_999_999], // 14 digits
    ["100000000000000", 100_000_000_000_000], // 15 digits
    ["281474976710655", 2 ** 48 - 1], // the largest decimal key
  ];
  for (const [id, key] of cases) assert.equal(clientKey(id), key, id);
});

Deno.test("clientKey() hashes every other id into [2^48, 2^48 + 2^32) by its SHA-256", async () => {
  const ids = [
    "00",
    "007",
    "042",
    "-1",
    "+1",
    "1.0",
    "1e3",
    " 42",
    "42 ",
    "0x10",
    "281474976710656", // 2^48
    "999999999999999", // 15 digits, above 2^48
    "1".repeat(16),
    "9".repeat(64),
    "9007199254740993",
    "client-a",
    "Client-A",
    "٣", // an Arabic-Indic digit is not a decimal digit here
    "",
  ];
  for (const id of ids) {
    const key = clientKey(id);
    assert.equal(key, await hashedKey(id), JSON.stringify(id));
    assert.ok(Number.isSafeInteger(key) && key >= 2 ** 48 && key < 2 ** 48 + 2 ** 32, id);
  }
});

Deno.test("clientKey() of known ids matches fixed SHA-256 prefixes", () => {
  // SHA-256("abc") = ba7816bf...; SHA-256("") = e3b0c442...
  assert.equal(clientKey("abc"), 2 ** 48 + 0xba7816bf);
  assert.equal(clientKey(""), 2 ** 48 + 0xe3b0c442);
});

Deno.test("clientKey() orders decimal ids numerically, below every hashed id", () => {
  const ids = ["10", "9", "0", "100", "client", "2", "001"];
  const sorted = [...ids].sort((a, b) => clientKey(a) - clientKey(b));
  assert.deepEqual(sorted.slice(0, 5), ["0", "2", "9", "10", "100"]);
  assert.ok(sorted.slice(5).every((id) => clientKey(id) >= 2 ** 48));
});

// ---------------------------------------------------------------------------------------------
// Over a secure channel

Deno.test("sendFl() sends each message as one type-16 msgpack map of its wire fields", async () => {
  const pair = await connectedPair();
  try {
    for (const message of samples()) {
      await sendFl(pair.client, message);
      const { type, data } = await pair.server.receive();
      assert.equal(type, 16, message.type);
      assert.deepEqual(decode(data), { ...wireMap(message), type: message.type }, message.type);
    }
  } finally {
    await pair.close();
  }
});

Deno.test("sendFl() leaves the message it sends unchanged", async () => {
  const pair = await connectedPair();
  try {
    const message = samples().find((m) => m.type === "update") as UpdateMessage;
    const delta = message.delta;
    await sendFl(pair.client, message);
    await pair.server.receive();
    assert.equal(message.delta, delta);
    assert.ok(message.delta instanceof Float32Array);
    assert.deepEqual(bitsOf(message.delta), DELTA_BITS);
  } finally {
    await pair.close();
  }
});

Deno.test("receiveFl() returns every message sendFl() sent, both ways, in order", async () => {
  const pair = await connectedPair();
  try {
    const messages = samples();
    for (const message of messages) await sendFl(pair.client, message);
    for (const message of messages) {
      assertSameMessage(await receiveFl(pair.server), message, `client to server: ${message.type}`);
    }
    for (const message of messages) await sendFl(pair.server, message);
    for (const message of messages) {
      assertSameMessage(await receiveFl(pair.client), message, `server to client: ${message.type}`);
    }
  } finally {
    await pair.close();
  }
});

Deno.test("A task's model arrives as bytes that decode to the same model", async () => {
  const pair = await connectedPair();
  try {
    await sendFl(pair.server, samples().find((m) => m.type === "task")!);
    const task = await receiveFl(pair.client);
    assert.equal(task.type, "task");
    if (task.type !== "task") return;
    assert.deepEqual(task.model, MODEL_BYTES);
    const model = modelFromBytes(task.model);
    assert.equal(String(model), String(MODEL));
    assert.deepEqual(bitsOf(model.params), bitsOf(MODEL.params));
  } finally {
    await pair.close();
  }
});

Deno.test("A large update delta crosses the channel bit for bit", async () => {
  const pair = await connectedPair();
  try {
    const bits = Array.from({ length: 300_000 }, (_, i) => (Math.imul(i, 0x9e3779b1) >>> 0));
    const message: UpdateMessage = {
      type: "update",
      task: 9,
      stages: [],
      codec: "float32",
      delta: floatsOfBits(bits),
      examples: 3,
      loss: 0.1,
      accuracy: 0.9,
      seconds: 2,
    };
    await sendFl(pair.client, message);
    const received = await receiveFl(pair.server) as UpdateMessage;
    assert.equal(received.delta.length, bits.length);
    assert.deepEqual(bitsOf(received.delta), bits);
  } finally {
    await pair.close();
  }
});

Deno.test("receiveFl() refuses a non-msgpack channel message with unexpected-type", async () => {
  const pair = await connectedPair();
  try {
    await pair.client.send(2, encode(wireMap(samples()[0]!)));
    await assert.rejects(receiveFl(pair.server), (error: unknown) => {
      assert.ok(error instanceof ChannelError, `Expected a ChannelError, got ${error}`);
      assert.equal(error.code, "unexpected-type");
      return true;
    });
    assert.equal(pair.server.closed, true);
  } finally {
    await pair.close();
  }
});

Deno.test("receiveFl() refuses an invalid field and leaves the channel to the caller", async () => {
  const pair = await connectedPair();
  try {
    await pair.client.send(16, wireBytes("hello", { id: "has space" }));
    await pair.client.send(16, wireBytes("hello", { v: 1 }));
    await sendFl(pair.client, { type: "bye", reason: "after the bad ones" });
    await assert.rejects(receiveFl(pair.server), (error: unknown) => {
      assert.ok(error instanceof MessageError, `Expected a MessageError, got ${error}`);
      assert.equal(error.code, "invalid");
      assert.match(error.message, /^Field id of a hello message/);
      return true;
    });
    await assert.rejects(receiveFl(pair.server), (error: unknown) => {
      assert.ok(error instanceof MessageError);
      assert.equal(error.code, "version");
      return true;
    });
    assert.equal(pair.server.closed, false);
    assert.deepEqual(await receiveFl(pair.server), { type: "bye", reason: "after the bad ones" });
  } finally {
    await pair.close();
  }
});
