import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { ChannelError } from "../../lib/net/errors.ts";
import {
  decodeMessage,
  encodeMessage,
  isRecord,
  MESSAGE_TYPE_MSGPACK,
  MessageError,
  type MessageErrorCode,
  type MessageProtocol,
  type RawMessage,
  read,
  receiveMessage,
  sendMessage,
} from "../../lib/net/message.ts";
import { connectedPair } from "./_pair.ts";

const PROTOCOL: MessageProtocol = { name: "test-proto", version: 3, types: ["ping", "pong"] };
const text = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Helpers

/** A msgpack fixstr, written byte by byte (for strings of at most 31 ASCII characters). */
function fixstr(value: string): number[] {
  assert.ok(value.length <= 31 && [...value].every((c) => c.charCodeAt(0) < 0x80));
  return [0xa0 | value.length, ...text.encode(value)];
}

/** Concatenates byte lists. */
function concat(...parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Calls `fn` and returns the MessageError it throws, checking its class and code. */
function catchMessageError(fn: () => unknown, code: MessageErrorCode): MessageError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof MessageError, `Expected a MessageError, got ${error}`);
    assert.equal(error.code, code, `${error.name}: ${error.message}`);
    assert.equal(error.name, "MessageError");
    return error;
  }
  assert.fail(`Expected a MessageError with code "${code}", but nothing was thrown`);
}

/** Asserts that `fn` throws a MessageError `invalid` whose message names `field` and `type`. */
function assertInvalid(fn: () => unknown, type: string, field: string): MessageError {
  const error = catchMessageError(fn, "invalid");
  assert.match(error.message, new RegExp(`^Field ${field} of an? ${type} message must be `));
  return error;
}

/** A decoded message made by hand, bypassing the envelope. */
function raw(fields: Record<string, unknown>, type = "ping"): RawMessage {
  return { type, fields };
}

/** The bytes of a map built from `fields`, with the test protocol's envelope by default. */
function wire(fields: Record<string, unknown>): Uint8Array {
  return encode({ p: PROTOCOL.name, v: PROTOCOL.version, type: "ping", ...fields });
}

// ---------------------------------------------------------------------------------------------
// Encoding

Deno.test("encodeMessage() writes the msgpack map {p, v, type} byte for byte", () => {
  const protocol: MessageProtocol = { name: "t", version: 1, types: ["ping"] };
  // fixmap of 3: "p" -> "t", "v" -> 1, "type" -> "ping".
  const expected = concat([0x83], fixstr("p"), fixstr("t"), fixstr("v"), [0x01], fixstr("type"), [
    ...fixstr("ping"),
  ]);
  assert.deepEqual(encodeMessage(protocol, "ping", {}), expected);
});

Deno.test("encodeMessage() puts the envelope first, then the fields in order", () => {
  const protocol: MessageProtocol = { name: "t", version: 2, types: ["ping"] };
  const bytes = encodeMessage(protocol, "ping", { n: 5, s: "ab", b: true, m: -1 });
  const expected = concat(
    [0x87],
    fixstr("p"),
    fixstr("t"),
    fixstr("v"),
    [0x02],
    fixstr("type"),
    fixstr("ping"),
    fixstr("n"),
    [0x05],
    fixstr("s"),
    fixstr("ab"),
    fixstr("b"),
    [0xc3],
    fixstr("m"),
    [0xff], // negative fixint -1
  );
  assert.deepEqual(bytes, expected);
});

Deno.test("encodeMessage() carries every kind of field value, decoded independently", () => {
  const fields = {
    int: 123456789,
    negative: -42,
    big: 2 ** 53 - 1,
    float: 0.1,
    nan: NaN,
    infinity: -Infinity,
    string: "héllo wörld ✓",
    empty: "",
    yes: true,
    no: false,
    nothing: null,
    bytes: new Uint8Array([0, 1, 254, 255]),
    list: [1, "two", [3], { four: 4 }],
    nested: { a: { b: { c: [new Uint8Array([9])] } } },
  };
  const decoded = decode(encodeMessage(PROTOCOL, "pong", fields));
  assert.deepEqual(decoded, { p: "test-proto", v: 3, type: "pong", ...fields });
});

Deno.test("encodeMessage() keeps the envelope when a field is named p, v or type", () => {
  const bytes = encodeMessage(PROTOCOL, "ping", { p: "other", v: 99, type: "pong", x: 1 });
  const decoded = decode(bytes) as Record<string, unknown>;
  assert.equal(decoded.p, "test-proto");
  assert.equal(decoded.v, 3);
  assert.equal(decoded.type, "ping");
  assert.equal(decoded.x, 1);
  assert.deepEqual(Object.keys(decoded), ["p", "v", "type", "x"]);
});

// ---------------------------------------------------------------------------------------------
// Decoding: the envelope

Deno.test("decodeMessage() reads a hand-built message: its type and every field", () => {
  const protocol: MessageProtocol = { name: "t", version: 1, types: ["ping"] };
  const bytes = concat(
    [0x84],
    fixstr("p"),
    fixstr("t"),
    fixstr("v"),
    [0x01],
    fixstr("type"),
    fixstr("ping"),
    fixstr("n"),
    [0xcd, 0x12, 0x34], // uint16 0x1234
  );
  const message = decodeMessage(protocol, bytes);
  assert.equal(message.type, "ping");
  assert.deepEqual(message.fields, { p: "t", v: 1, type: "ping", n: 0x1234 });
});

Deno.test("decodeMessage() reverses encodeMessage() for each of the protocol's types", () => {
  for (const type of PROTOCOL.types) {
    const fields = { a: 1.5, b: [1, 2, 3], c: new Uint8Array([7, 8]), d: { e: "f" } };
    const message = decodeMessage(PROTOCOL, encodeMessage(PROTOCOL, type, fields));
    assert.equal(message.type, type);
    assert.deepEqual(message.fields, { p: "test-proto", v: 3, type, ...fields });
  }
});

Deno.test("decodeMessage() reads a message that is an unaligned view into a larger buffer", () => {
  const inner = wire({ bytes: new Uint8Array([1, 2, 3, 4, 5]), n: 7 });
  const outer = new Uint8Array(inner.length + 3);
  outer.set(inner, 1);
  const message = decodeMessage(PROTOCOL, outer.subarray(1, 1 + inner.length));
  assert.deepEqual(message.fields.bytes, new Uint8Array([1, 2, 3, 4, 5]));
  assert.equal(message.fields.n, 7);
});

Deno.test("decodeMessage() refuses bytes that are not msgpack as malformed", () => {
  const cases: [string, number[]][] = [
    ["empty input", []],
    ["a reserved type byte", [0xc1]],
    ["a map with a reserved byte as its key", [0x81, 0xc1, 0x01]],
    ["an ext value", [0xd4, 0x01, 0x00]],
    ["a timestamp", [0xd6, 0xff, 0, 0, 0, 0]],
    ["text", [...text.encode("hello, world")]],
  ];
  for (const [what, bytes] of cases) {
    const error = catchMessageError(
      () => decodeMessage(PROTOCOL, new Uint8Array(bytes)),
      "malformed",
    );
    assert.match(error.message, /not valid msgpack/, what);
    assert.ok(error.cause instanceof Error, `${what}: the decoder's error is the cause`);
  }
});

Deno.test("decodeMessage() refuses every truncation of a valid message as malformed", () => {
  const bytes = wire({ bytes: new Uint8Array([1, 2, 3]), list: [1, 2], s: "text", f: 0.25 });
  assert.equal(decodeMessage(PROTOCOL, bytes).type, "ping");
  for (let length = 0; length < bytes.length; length++) {
    const error = catchMessageError(
      () => decodeMessage(PROTOCOL, bytes.slice(0, length)),
      "malformed",
    );
    assert.match(error.message, /not valid msgpack/, `cut to ${length} bytes`);
  }
});

Deno.test("decodeMessage() refuses trailing bytes after the map as malformed", () => {
  const bytes = wire({});
  for (const extra of [[0x00], [0xc0], [...wire({})]]) {
    catchMessageError(() => decodeMessage(PROTOCOL, concat(bytes, extra)), "malformed");
  }
});

Deno.test("decodeMessage() refuses a msgpack value that is not a map as malformed", () => {
  const values: unknown[] = [
    [PROTOCOL.name, PROTOCOL.version, "ping"],
    [],
    "ping",
    42,
    -1.5,
    true,
    null,
    new Uint8Array([0x83]),
  ];
  for (const value of values) {
    const error = catchMessageError(() => decodeMessage(PROTOCOL, encode(value)), "malformed");
    assert.equal(error.message, "A message is not a msgpack map", String(value));
  }
});

Deno.test("decodeMessage() refuses huge declared lengths without allocating them", () => {
  const head = [...wire({})].slice(1); // the map's entries, without its fixmap header
  // Each reason shows the refusal came from the declared length itself, before any allocation
  // or any loop over items: either the length is over its limit, or the input ends after the
  // items actually present.
  const cases: [string, number[], RegExp][] = [
    ["array32 of 2^32-1 items", [0xdd, 0xff, 0xff, 0xff, 0xff], /array length \(4294967295\) >/],
    ["array16 of 65535 items, none present", [0xdc, 0xff, 0xff], /outside the bounds/],
    ["map32 of 2^32-1 entries", [0xdf, 0xff, 0xff, 0xff, 0xff], /map length \(4294967295\) >/],
    ["bin32 of 2^32-1 bytes", [0xc6, 0xff, 0xff, 0xff, 0xff], /bin length \(4294967295\) >/],
    ["bin16 of 65535 bytes, 3 present", [0xc5, 0xff, 0xff, 1, 2, 3], /bin length \(65535\) >/],
    ["str32 of 2^32-1 bytes", [0xdb, 0xff, 0xff, 0xff, 0xff], /byte length \(4294967295\) >/],
    ["ext32 of 2^32-1 bytes", [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], /ext length \(4294967295\) >/],
  ];
  for (const [what, value, reason] of cases) {
    // A map of the envelope plus one field "x" holding the hostile value.
    const bytes = concat([0x84], head, fixstr("x"), value);
    const error = catchMessageError(() => decodeMessage(PROTOCOL, bytes), "malformed");
    assert.match(error.message, reason, what);
  }
  // The top-level map itself declaring 2^32-1 entries.
  catchMessageError(
    () => decodeMessage(PROTOCOL, concat([0xdf, 0xff, 0xff, 0xff, 0xff], head)),
    "malformed",
  );
});

Deno.test("decodeMessage() refuses an array of more than 65536 items, all present", () => {
  const items = new Array<null>(65536).fill(null);
  assert.equal((decodeMessage(PROTOCOL, wire({ items })).fields.items as null[]).length, 65536);
  const bytes = wire({ items: [...items, null] });
  catchMessageError(() => decodeMessage(PROTOCOL, bytes), "malformed");
});

Deno.test("decodeMessage() refuses a map of more than 64 entries", () => {
  const fields: Record<string, number> = {};
  for (let i = 0; i < 61; i++) fields[`f${i}`] = i; // 3 envelope entries + 61 = 64
  assert.equal(decodeMessage(PROTOCOL, wire(fields)).fields.f60, 60);
  fields.f61 = 61;
  catchMessageError(() => decodeMessage(PROTOCOL, wire(fields)), "malformed");
});

Deno.test("decodeMessage() refuses a map with the key __proto__ as malformed", () => {
  const bytes = concat([0x84], [...wire({})].slice(1), fixstr("__proto__"), [0x80]);
  catchMessageError(() => decodeMessage(PROTOCOL, bytes), "malformed");
});

Deno.test("decodeMessage() refuses another protocol's messages", () => {
  const cases: [unknown, string][] = [
    ["other-proto", '"other-proto"'],
    ["TEST-PROTO", '"TEST-PROTO"'],
    ["test-proto ", '"test-proto "'],
    ["", '""'],
    [3, "3"],
    [null, "null"],
  ];
  for (const [p, shown] of cases) {
    const error = catchMessageError(() => decodeMessage(PROTOCOL, wire({ p })), "protocol");
    assert.equal(
      error.message,
      `A message of protocol ${shown} arrived; expected test-proto`,
    );
  }
  const missing = encode({ v: 3, type: "ping" });
  const error = catchMessageError(() => decodeMessage(PROTOCOL, missing), "protocol");
  assert.match(error.message, /protocol undefined arrived; expected test-proto/);
});

Deno.test("decodeMessage() refuses versions other than the protocol's", () => {
  for (const v of [0, 2, 4, -3, 3.5, "3", null, [3]]) {
    const error = catchMessageError(() => decodeMessage(PROTOCOL, wire({ v })), "version");
    assert.equal(
      error.message,
      `A message of test-proto version ${JSON.stringify(v)} arrived; this end speaks version 3`,
    );
  }
  catchMessageError(
    () => decodeMessage(PROTOCOL, encode({ p: "test-proto", type: "ping" })),
    "version",
  );
});

Deno.test("decodeMessage() refuses types the protocol does not list", () => {
  for (const type of ["pang", "PING", "ping ", "", "constructor", "toString", 1, null, ["ping"]]) {
    const error = catchMessageError(() => decodeMessage(PROTOCOL, wire({ type })), "unknown-type");
    assert.equal(error.message, `Unknown test-proto message type ${JSON.stringify(type)}`);
  }
  catchMessageError(
    () => decodeMessage(PROTOCOL, encode({ p: "test-proto", v: 3 })),
    "unknown-type",
  );
});

Deno.test("decodeMessage() checks the protocol, then the version, then the type", () => {
  const all = encode({ p: "x", v: 9, type: "nope" });
  catchMessageError(() => decodeMessage(PROTOCOL, all), "protocol");
  const versionAndType = encode({ p: "test-proto", v: 9, type: "nope" });
  catchMessageError(() => decodeMessage(PROTOCOL, versionAndType), "version");
});

Deno.test("MessageError is an Error with a name, a code and an optional cause", () => {
  const cause = new RangeError("inner");
  const error = new MessageError("invalid", "Field x is wrong", { cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "MessageError");
  assert.equal(error.code, "invalid");
  assert.equal(error.message, "Field x is wrong");
  assert.equal(error.cause, cause);
  assert.equal(new MessageError("version", "v").cause, undefined);
});

// ---------------------------------------------------------------------------------------------
// isRecord

Deno.test("isRecord() accepts maps and refuses arrays, bytes and scalars", () => {
  for (const value of [{}, { a: 1 }, Object.create(null), decode(encode({ k: [1] }))]) {
    assert.equal(isRecord(value), true, Deno.inspect(value));
  }
  for (const value of [null, undefined, [], [1], new Uint8Array(2), "map", 1, true, NaN]) {
    assert.equal(isRecord(value), false, Deno.inspect(value));
  }
});

// ---------------------------------------------------------------------------------------------
// Field readers

Deno.test("read.int() accepts integers within its bounds, the bounds included", () => {
  assert.equal(read.int(raw({ n: 0 }), "n"), 0);
  assert.equal(read.int(raw({ n: Number.MAX_SAFE_INTEGER }), "n"), Number.MAX_SAFE_INTEGER);
  assert.equal(read.int(raw({ n: -5 }), "n", -5, 5), -5);
  assert.equal(read.int(raw({ n: 5 }), "n", -5, 5), 5);
  assert.equal(read.int(raw({ n: 3.0 }), "n", 1, 3), 3);
});

Deno.test("read.int() refuses non-integers, other types and values out of bounds", () => {
  const defaults: unknown[] = [-1, 0.5, 2 ** 53, NaN, Infinity, -Infinity, "3", null, true, [1]];
  for (const n of [...defaults, undefined]) {
    const error = assertInvalid(() => read.int(raw({ n }), "n"), "ping", "n");
    assert.match(error.message, /an integer in \[0, 9007199254740991\]/);
  }
  assertInvalid(() => read.int(raw({}), "n"), "ping", "n");
  assertInvalid(() => read.int(raw({ n: 6 }), "n", -5, 5), "ping", "n");
  assertInvalid(() => read.int(raw({ n: -6 }), "n", -5, 5), "ping", "n");
  // Another field's value does not stand in for the one asked for.
  assertInvalid(() => read.int(raw({ m: 1 }), "n"), "ping", "n");
});

Deno.test("read.int() names the message type, the field and the value it got", () => {
  assert.throws(() => read.int(raw({ count: -7 }, "pong"), "count", 0, 10), {
    name: "MessageError",
    message: "Field count of a pong message must be an integer in [0, 10], got -7",
  });
  assert.throws(() => read.int(raw({ count: [1, 2] }), "count"), {
    message: /got an array$/,
  });
  assert.throws(() => read.int(raw({}), "count"), { message: /got undefined$/ });
  assert.throws(() => read.int(raw({ count: new Uint8Array(9) }), "count"), {
    message: /got 9 bytes$/,
  });
  assert.throws(() => read.int(raw({ count: "x".repeat(100) }), "count"), {
    message: new RegExp(`got "${"x".repeat(40)}\\.\\.\\."$`),
  });
});

Deno.test("read.number() accepts finite numbers within bounds and refuses the rest", () => {
  assert.equal(read.number(raw({ x: -1e300 }), "x"), -1e300);
  assert.equal(read.number(raw({ x: 0.25 }), "x", 0.25, 0.5), 0.25);
  assert.equal(read.number(raw({ x: 0.5 }), "x", 0.25, 0.5), 0.5);
  assert.ok(Object.is(read.number(raw({ x: -0 }), "x", 0), -0));
  for (const x of [NaN, Infinity, -Infinity, "1", null, undefined, false, {}]) {
    const error = assertInvalid(() => read.number(raw({ x }), "x"), "ping", "x");
    assert.match(error.message, /a finite number in \[-Infinity, Infinity\]/);
  }
  assertInvalid(() => read.number(raw({ x: 0.2499 }), "x", 0.25, 0.5), "ping", "x");
  assertInvalid(() => read.number(raw({ x: 0.5001 }), "x", 0.25, 0.5), "ping", "x");
});

Deno.test("read.metric() accepts any number, NaN and infinities included, and nothing else", () => {
  assert.ok(Number.isNaN(read.metric(raw({ loss: NaN }), "loss")));
  assert.equal(read.metric(raw({ loss: Infinity }), "loss"), Infinity);
  assert.equal(read.metric(raw({ loss: -3.5 }), "loss"), -3.5);
  for (const loss of ["NaN", null, undefined, true, [1], new Uint8Array(4)]) {
    const error = assertInvalid(() => read.metric(raw({ loss }), "loss"), "ping", "loss");
    assert.match(error.message, /must be a number, got/);
  }
});

Deno.test("read.string() checks the type, the length and the pattern", () => {
  assert.equal(read.string(raw({ s: "" }), "s"), "");
  assert.equal(read.string(raw({ s: "x".repeat(1024) }), "s"), "x".repeat(1024));
  assert.equal(read.string(raw({ s: "abc" }), "s", 3, /^[a-c]+$/), "abc");
  assertInvalid(() => read.string(raw({ s: "x".repeat(1025) }), "s"), "ping", "s");
  assertInvalid(() => read.string(raw({ s: "abcd" }), "s", 3), "ping", "s");
  const error = assertInvalid(
    () => read.string(raw({ s: "abd" }), "s", 3, /^[a-c]+$/),
    "ping",
    "s",
  );
  assert.equal(
    error.message,
    "Field s of a ping message must be a string of at most 3 characters matching /^[a-c]+$/, " +
      'got "abd"',
  );
  for (const s of [1, null, undefined, ["a"], new Uint8Array([0x61]), { s: "a" }]) {
    assertInvalid(() => read.string(raw({ s }), "s"), "ping", "s");
  }
});

Deno.test("read.bytes() returns the bytes themselves and enforces the limit", () => {
  const bytes = new Uint8Array([5, 6, 7]);
  assert.equal(read.bytes(raw({ b: bytes }), "b"), bytes);
  assert.equal(read.bytes(raw({ b: bytes }), "b", 3), bytes);
  assert.deepEqual(read.bytes(raw({ b: new Uint8Array(0) }), "b", 0), new Uint8Array(0));
  const error = assertInvalid(() => read.bytes(raw({ b: bytes }), "b", 2), "ping", "b");
  assert.equal(error.message, "Field b of a ping message must be bytes (at most 2), got 3 bytes");
  for (const b of [[5, 6, 7], "abc", null, undefined, 3, new Uint16Array(2), bytes.buffer]) {
    assertInvalid(() => read.bytes(raw({ b }), "b"), "ping", "b");
  }
});

Deno.test("read.strings() checks the array, its size and every item", () => {
  assert.deepEqual(read.strings(raw({ l: [] }), "l"), []);
  assert.deepEqual(read.strings(raw({ l: ["a", "bb"] }), "l", 2, 2), ["a", "bb"]);
  const many = Array.from({ length: 64 }, (_, i) => `s${i}`);
  assert.deepEqual(read.strings(raw({ l: many }), "l"), many);
  assertInvalid(() => read.strings(raw({ l: [...many, "one more"] }), "l"), "ping", "l");
  assertInvalid(() => read.strings(raw({ l: ["a", "bbb"] }), "l", 2, 2), "ping", "l");
  assertInvalid(() => read.strings(raw({ l: ["a", "b", "c"] }), "l", 2, 2), "ping", "l");
  for (const l of [["a", 1], ["a", null], [["a"]], "a", null, undefined, { 0: "a" }]) {
    assertInvalid(() => read.strings(raw({ l }), "l"), "ping", "l");
  }
});

Deno.test("read.ints() checks the array, its size and every item's range", () => {
  assert.deepEqual(read.ints(raw({ l: [] }), "l"), []);
  assert.deepEqual(read.ints(raw({ l: [0, 1, Number.MAX_SAFE_INTEGER] }), "l"), [
    0,
    1,
    Number.MAX_SAFE_INTEGER,
  ]);
  assert.deepEqual(read.ints(raw({ l: [-2, 2] }), "l", 2, -2, 2), [-2, 2]);
  const sixteen = Array.from({ length: 16 }, (_, i) => i);
  assert.deepEqual(read.ints(raw({ l: sixteen }), "l"), sixteen);
  assertInvalid(() => read.ints(raw({ l: [...sixteen, 16] }), "l"), "ping", "l");
  assertInvalid(() => read.ints(raw({ l: [-3] }), "l", 2, -2, 2), "ping", "l");
  assertInvalid(() => read.ints(raw({ l: [3] }), "l", 2, -2, 2), "ping", "l");
  for (const l of [[-1], [0.5], [NaN], [2 ** 53], ["1"], [null], 1, null, undefined, "12"]) {
    assertInvalid(() => read.ints(raw({ l }), "l"), "ping", "l");
  }
});

// ---------------------------------------------------------------------------------------------
// Over a secure channel

Deno.test("sendMessage() sends one channel message of type 16 holding the map", async () => {
  const pair = await connectedPair();
  try {
    assert.equal(MESSAGE_TYPE_MSGPACK, 16);
    const fields = { n: 1, bytes: new Uint8Array(100_000).fill(7), list: ["a"] };
    await sendMessage(pair.client, PROTOCOL, "pong", fields);
    const { type, data } = await pair.server.receive();
    assert.equal(type, 16);
    assert.deepEqual(decode(data), { p: "test-proto", v: 3, type: "pong", ...fields });
  } finally {
    await pair.close();
  }
});

Deno.test("receiveMessage() returns what sendMessage() sent, in order, both ways", async () => {
  const pair = await connectedPair();
  try {
    await sendMessage(pair.client, PROTOCOL, "ping", { seq: 1 });
    await sendMessage(pair.client, PROTOCOL, "pong", { seq: 2, s: "ß" });
    const first = await receiveMessage(pair.server, PROTOCOL);
    const second = await receiveMessage(pair.server, PROTOCOL);
    assert.deepEqual(first, {
      type: "ping",
      fields: { p: "test-proto", v: 3, type: "ping", seq: 1 },
    });
    assert.deepEqual(second, {
      type: "pong",
      fields: { p: "test-proto", v: 3, type: "pong", seq: 2, s: "ß" },
    });
    await sendMessage(pair.server, PROTOCOL, "pong", { back: true });
    const reply = await receiveMessage(pair.client, PROTOCOL);
    assert.equal(reply.type, "pong");
    assert.equal(reply.fields.back, true);
  } finally {
    await pair.close();
  }
});

Deno.test("receiveMessage() refuses a non-msgpack channel message and closes the channel", async () => {
  const pair = await connectedPair();
  try {
    await pair.client.send(2, encode({ p: "test-proto", v: 3, type: "ping" }));
    await assert.rejects(receiveMessage(pair.server, PROTOCOL), (error: unknown) => {
      assert.ok(error instanceof ChannelError, `Expected a ChannelError, got ${error}`);
      assert.equal(error.code, "unexpected-type");
      assert.match(error.message, /got type 2/);
      return true;
    });
    assert.equal(pair.server.closed, true);
    // The peer hears the goodbye.
    await assert.rejects(pair.client.receive(), (error: unknown) => {
      assert.ok(error instanceof ChannelError);
      assert.equal(error.code, "closed");
      return true;
    });
  } finally {
    await pair.close();
  }
});

Deno.test("receiveMessage() refuses a text channel message with unexpected-type", async () => {
  const pair = await connectedPair();
  try {
    await pair.client.send(1, text.encode("ping"));
    await assert.rejects(receiveMessage(pair.server, PROTOCOL), (error: unknown) => {
      assert.ok(error instanceof ChannelError);
      assert.equal(error.code, "unexpected-type");
      return true;
    });
  } finally {
    await pair.close();
  }
});

Deno.test("receiveMessage() throws a MessageError for a bad envelope and leaves the channel open", async () => {
  const pair = await connectedPair();
  try {
    await pair.client.send(16, new Uint8Array([0xc1]));
    await pair.client.send(16, encode({ p: "test-proto", v: 4, type: "ping" }));
    await pair.client.send(16, encode({ p: "test-proto", v: 3, type: "pang" }));
    await sendMessage(pair.client, PROTOCOL, "ping", { ok: 1 });
    const codes: string[] = [];
    for (let i = 0; i < 3; i++) {
      try {
        await receiveMessage(pair.server, PROTOCOL);
        assert.fail("a bad message was accepted");
      } catch (error) {
        assert.ok(error instanceof MessageError, `Expected a MessageError, got ${error}`);
        codes.push(error.code);
      }
      assert.equal(pair.server.closed, false);
    }
    assert.deepEqual(codes, ["malformed", "version", "unknown-type"]);
    const good = await receiveMessage(pair.server, PROTOCOL);
    assert.equal(good.fields.ok, 1);
  } finally {
    await pair.close();
  }
});
