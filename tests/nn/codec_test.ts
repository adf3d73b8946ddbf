import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  Chain,
  DEFAULT_MAX_MODEL_BYTES,
  Dense,
  Model,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  ModelFormatError,
  modelFromBytes,
  modelToBytes,
  relu,
  Rng,
  softmax,
} from "../../mod.ts";
import { assertThrowsWith, bitsOf, randomArray } from "./_reference.ts";

/** The chain of the format's documentation, with random parameters (biases included). */
function example(): Model {
  const model = Chain(Dense(10, 5, relu), Dense(5, 2), softmax);
  model.params.set(randomArray(new Rng(21), model.params.length));
  return model;
}

/** Whether two models have the same layers and the same parameter bits. */
function sameModel(a: Model, b: Model): boolean {
  try {
    deepStrictEqual(a.layers, b.layers);
    deepStrictEqual(bitsOf(a.params), bitsOf(b.params));
    return true;
  } catch {
    return false;
  }
}

/** Encodes a body map the way the format describes it. */
function body(layers: unknown[], params: Uint8Array): Uint8Array {
  return encode({ layers, params });
}

/** Little-endian float32 bytes of `values`. */
function floatBytes(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

/** An envelope around `bodyBytes` with a correct digest; `fields` overrides any entry. */
function seal(bodyBytes: Uint8Array, fields: Record<string, unknown> = {}): Uint8Array {
  return encode({
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    body: bodyBytes,
    sha256: sha256(bodyBytes),
    ...fields,
  });
}

function dense(nIn: unknown, nOut: unknown, activation: unknown = "identity") {
  return { kind: "dense", nIn, nOut, activation };
}

function assertFormatError(fn: () => unknown, code: string, message: string | RegExp): void {
  assertThrowsWith(fn, ModelFormatError, message, code);
}

Deno.test("modelToBytes() writes the documented envelope: format, version, body, SHA-256", () => {
  const model = example();
  const envelope = decode(modelToBytes(model)) as Record<string, unknown>;
  deepStrictEqual(Object.keys(envelope).sort(), ["body", "format", "sha256", "version"]);
  strictEqual(envelope.format, "fedgpu-model");
  strictEqual(envelope.version, 1);
  ok(envelope.body instanceof Uint8Array && envelope.sha256 instanceof Uint8Array);
  deepStrictEqual(Array.from(envelope.sha256), Array.from(sha256(envelope.body)));

  const decoded = decode(envelope.body) as { layers: unknown; params: Uint8Array };
  deepStrictEqual(decoded.layers, [
    { kind: "dense", nIn: 10, nOut: 5, activation: "relu" },
    { kind: "dense", nIn: 5, nOut: 2, activation: "identity" },
    { kind: "softmax" },
  ]);
  strictEqual(decoded.params.length, 67 * 4);
  const view = new DataView(decoded.params.buffer, decoded.params.byteOffset, 67 * 4);
  const bits = bitsOf(model.params);
  for (let i = 0; i < 67; i++) strictEqual(view.getUint32(i * 4, true), bits[i], `param ${i}`);
});

Deno.test("modelFromBytes() restores the example chain bit for bit", () => {
  const model = example();
  const bytes = modelToBytes(model);
  const copy = modelFromBytes(bytes);
  ok(sameModel(copy, model));
  strictEqual(String(copy), "Chain(Dense(10 => 5, relu), Dense(5 => 2), softmax)");
  strictEqual(copy.layers[2], softmax, "softmax is the library's own layer");
  deepStrictEqual(modelToBytes(copy), bytes, "re-encoding gives the same bytes");
  const x = randomArray(new Rng(22), 3 * 10);
  deepStrictEqual(bitsOf(copy.forward(x)), bitsOf(model.forward(x)));
  copy.params[0] = 123;
  ok(model.params[0] !== 123, "the decoded model owns its parameters");
});

Deno.test("modelFromBytes() restores -0, infinities, subnormals and quiet NaN payloads bit for bit", () => {
  const model = Chain(Dense(3, 2), relu, Dense(2, 2), softmax); // 14 parameters
  const bits = new Uint32Array([
    0x80000000, // -0
    0x00000000, // +0
    0x7f800000, // Infinity
    0xff800000, // -Infinity
    0x00000001, // smallest subnormal, 2^-149
    0x80000001, // -2^-149
    0x007fffff, // largest subnormal
    0x00800000, // smallest normal, 2^-126
    0x7f7fffff, // largest finite float32
    0x3eaaaaab, // 1/3
    0x7fc00000, // the canonical quiet NaN
    0x7fc12345, // a quiet NaN with a payload
    0xffc00001, // a negative quiet NaN with a payload
    0xbf800000, // -1
  ]);
  model.params.set(new Float32Array(bits.buffer));
  deepStrictEqual(bitsOf(model.params), bits, "the special values are in place");
  deepStrictEqual(bitsOf(modelFromBytes(modelToBytes(model)).params), bits);
});

Deno.test("modelFromBytes() restores signaling NaN bits too", () => {
  const model = Chain(Dense(1, 2));
  const bits = new Uint32Array([0x7f800001, 0x7fa00000, 0xff800abc, 0x7fbfffff]);
  new Uint32Array(model.params.buffer).set(bits);
  deepStrictEqual(bitsOf(model.params), bits, "the signaling NaNs are in place");
  deepStrictEqual(bitsOf(modelFromBytes(modelToBytes(model)).params), bits);
});

Deno.test("modelFromBytes() round-trips chains of every layer kind", () => {
  const rng = new Rng(23);
  const chains: Model[] = [
    Chain(Dense(1, 1)),
    Chain(Dense(4, 6), relu, Dense(6, 3)),
    Chain(relu, Dense(3, 7, relu), Dense(7, 5, relu), Dense(5, 2), softmax),
  ];
  for (const model of chains) {
    model.params.set(randomArray(rng, model.params.length));
    const copy = modelFromBytes(modelToBytes(model));
    ok(sameModel(copy, model), String(model));
    strictEqual(String(copy), String(model));
  }
});

Deno.test("modelFromBytes() reads bytes at any offset of a larger buffer", () => {
  const model = example();
  const bytes = modelToBytes(model);
  const padded = new Uint8Array(bytes.length + 8).fill(0xc1);
  padded.set(bytes, 3);
  ok(sameModel(modelFromBytes(padded.subarray(3, 3 + bytes.length)), model));
});

Deno.test("modelFromBytes() rejects input that is not a Uint8Array with TypeError", () => {
  const bytes = modelToBytes(example());
  const cases: unknown[] = [
    bytes.buffer,
    Array.from(bytes),
    "model",
    null,
    undefined,
    new Int8Array(bytes.buffer),
    new Uint8ClampedArray(bytes),
    new DataView(bytes.buffer),
  ];
  for (const value of cases) {
    assertThrowsWith(
      () => modelFromBytes(value as Uint8Array),
      TypeError,
      "Model bytes must be a Uint8Array",
    );
  }
});

Deno.test("modelFromBytes() checks maxBytes before decoding anything", () => {
  strictEqual(DEFAULT_MAX_MODEL_BYTES, 2 ** 30);
  const garbage = new Uint8Array(10).fill(0xc1); // 0xc1 is never valid msgpack
  assertFormatError(
    () => modelFromBytes(garbage, { maxBytes: 5 }),
    "too-large",
    "Model bytes are 10 bytes, over the limit of 5",
  );
  assertFormatError(
    () => modelFromBytes(garbage, { maxBytes: 10 }),
    "corrupt",
    /^Model bytes are corrupt/,
  );
  const bytes = modelToBytes(example());
  assertFormatError(
    () => modelFromBytes(bytes, { maxBytes: bytes.length - 1 }),
    "too-large",
    `Model bytes are ${bytes.length} bytes, over the limit of ${bytes.length - 1}`,
  );
  ok(sameModel(modelFromBytes(bytes, { maxBytes: bytes.length }), example()));
});

Deno.test("modelFromBytes() rejects empty bytes as truncated", () => {
  assertFormatError(() => modelFromBytes(new Uint8Array(0)), "truncated", "Model bytes are empty");
});

Deno.test("modelFromBytes() throws ModelFormatError for every truncation, never a model", () => {
  const bytes = modelToBytes(example());
  const problems: string[] = [];
  for (let length = 0; length < bytes.length; length++) {
    try {
      modelFromBytes(bytes.slice(0, length));
      problems.push(`${length}: returned a model`);
    } catch (error) {
      if (!(error instanceof ModelFormatError)) problems.push(`${length}: threw ${error}`);
    }
  }
  deepStrictEqual(problems, []);
});

Deno.test("modelFromBytes() reports every truncation with code truncated", () => {
  const bytes = modelToBytes(example());
  const other: string[] = [];
  for (let length = 0; length < bytes.length; length++) {
    try {
      modelFromBytes(bytes.slice(0, length));
    } catch (error) {
      const code = (error as ModelFormatError).code;
      if (code !== "truncated") other.push(`${length}: ${code}: ${(error as Error).message}`);
    }
  }
  deepStrictEqual(other.slice(0, 3), [], `${other.length} of ${bytes.length} prefixes`);
});

Deno.test("modelFromBytes() never turns a single flipped bit into a different model", () => {
  const model = example();
  const bytes = modelToBytes(model);
  const problems: string[] = [];
  let rejected = 0;
  for (let bit = 0; bit < bytes.length * 8; bit++) {
    const flipped = bytes.slice();
    flipped[bit >> 3]! ^= 1 << (bit & 7);
    try {
      const decoded = modelFromBytes(flipped);
      if (!sameModel(decoded, model)) problems.push(`bit ${bit}: a different model`);
    } catch (error) {
      if (error instanceof ModelFormatError) rejected++;
      else problems.push(`bit ${bit}: threw ${error}`);
    }
  }
  deepStrictEqual(problems, []);
  ok(rejected > bytes.length * 8 * 0.99, `${rejected} of ${bytes.length * 8} flips rejected`);
});

Deno.test("modelFromBytes() rejects trailing bytes after the envelope as corrupt", () => {
  const bytes = modelToBytes(example());
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assertFormatError(
    () => modelFromBytes(longer),
    "corrupt",
    /^Model bytes are corrupt \(envelope\)/,
  );
});

Deno.test("modelFromBytes() rejects hostile msgpack headers without allocating", () => {
  const deep = new Uint8Array(100_001).fill(0x91); // 100000 nested one-element arrays
  deep[100_000] = 0x01;
  const cases: [string, Uint8Array][] = [
    ["bin32 of 4 GiB", new Uint8Array([0xc6, 0xff, 0xff, 0xff, 0xff])],
    ["str32 of 4 GiB", new Uint8Array([0xdb, 0xff, 0xff, 0xff, 0xff])],
    ["array32 of 2^32 - 1 items", new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])],
    ["map32 of 2^32 - 1 entries", new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff])],
    ["an ext value", new Uint8Array([0xd4, 0x01, 0x02])],
    ["an unused type byte", new Uint8Array([0xc1])],
    ["deep nesting", deep],
  ];
  for (const [name, bytes] of cases) {
    try {
      modelFromBytes(bytes);
    } catch (error) {
      ok(error instanceof ModelFormatError, `${name}: ${error}`);
      continue;
    }
    throw new Error(`${name} decoded into a model`);
  }
});

Deno.test("modelFromBytes() rejects envelopes that are not fedgpu models with code not-a-model", () => {
  const b = body([dense(1, 1)], floatBytes([0.5, 0.25]));
  const cases: [string, Uint8Array][] = [
    ["another format tag", seal(b, { format: "not-a-model" })],
    ["no format tag", encode({ version: 1, body: b, sha256: sha256(b) })],
    ["an array", encode([MODEL_FORMAT, 1, b, sha256(b)])],
    ["a string", encode(MODEL_FORMAT)],
    ["a bin", encode(b)],
    ["nil", encode(null)],
  ];
  for (const [name, bytes] of cases) {
    try {
      assertFormatError(
        () => modelFromBytes(bytes),
        "not-a-model",
        "Bytes are not a fedgpu model envelope",
      );
    } catch (error) {
      throw new Error(name, { cause: error });
    }
  }
});

Deno.test("modelFromBytes() rejects other format versions with code version", () => {
  const b = body([dense(1, 1)], floatBytes([0.5, 0.25]));
  ok(sameModel(modelFromBytes(seal(b)), new Model([Dense(1, 1)], new Float32Array([0.5, 0.25]))));
  for (const version of [2, 0, "1", null]) {
    assertFormatError(
      () => modelFromBytes(seal(b, { version })),
      "version",
      `Model format version ${String(version)} is not supported (this library reads version 1)`,
    );
  }
  // An encoded model with its version rewritten to 2.
  const envelope = decode(modelToBytes(example())) as Record<string, unknown>;
  assertFormatError(
    () => modelFromBytes(encode({ ...envelope, version: 2 })),
    "version",
    "Model format version 2 is not supported (this library reads version 1)",
  );
});

Deno.test("modelFromBytes() rejects an envelope without its body or digest with code corrupt", () => {
  const b = body([dense(1, 1)], floatBytes([0.5, 0.25]));
  const message = "Model envelope lacks its body or digest";
  const cases: [string, Uint8Array][] = [
    ["no body", encode({ format: MODEL_FORMAT, version: 1, sha256: sha256(b) })],
    ["no digest", encode({ format: MODEL_FORMAT, version: 1, body: b })],
    ["a 31-byte digest", seal(b, { sha256: sha256(b).subarray(0, 31) })],
    ["a string body", seal(b, { body: "body" })],
    ["a hex digest", seal(b, { sha256: Array.from(sha256(b)) })],
  ];
  for (const [name, bytes] of cases) {
    try {
      assertFormatError(() => modelFromBytes(bytes), "corrupt", message);
    } catch (error) {
      throw new Error(name, { cause: error });
    }
  }
});

Deno.test("modelFromBytes() rejects a body that fails its digest with code checksum", () => {
  const bytes = modelToBytes(example());
  const envelope = decode(bytes) as { body: Uint8Array; sha256: Uint8Array };
  const badDigest = envelope.sha256.slice();
  badDigest[31]! ^= 0x80;
  const badBody = envelope.body.slice();
  badBody[badBody.length - 1]! ^= 0x01; // the last parameter's sign bit
  const message = "Model bytes fail their SHA-256 check";
  assertFormatError(
    () => modelFromBytes(encode({ ...envelope, sha256: badDigest })),
    "checksum",
    message,
  );
  assertFormatError(
    () => modelFromBytes(encode({ ...envelope, body: badBody })),
    "checksum",
    message,
  );
});

Deno.test("modelFromBytes() rejects a body that is not the documented map with codes corrupt and truncated", () => {
  const b = body([dense(1, 1)], floatBytes([0.5, 0.25]));
  const cases: [string, Uint8Array, string, string | RegExp][] = [
    ["an unused type byte", new Uint8Array([0xc1]), "corrupt", /^Model bytes are corrupt \(body\)/],
    ["a cut body", b.subarray(0, 5), "truncated", "Model bytes are truncated (body)"],
    ["no params", encode({ layers: [dense(1, 1)] }), "corrupt", /lacks its layers or parameters/],
    ["no layers", encode({ params: floatBytes([1, 2]) }), "corrupt", /lacks its layers/],
    ["params as an array", encode({ layers: [dense(1, 1)], params: [1, 2] }), "corrupt", /lacks/],
    ["layers as a map", encode({ layers: { 0: dense(1, 1) }, params: b }), "corrupt", /lacks/],
    ["an array body", encode([[dense(1, 1)], floatBytes([1, 2])]), "corrupt", /lacks/],
  ];
  for (const [name, bodyBytes, code, message] of cases) {
    try {
      assertFormatError(() => modelFromBytes(seal(bodyBytes)), code, message);
    } catch (error) {
      throw new Error(name, { cause: error });
    }
  }
});

Deno.test("modelFromBytes() rejects an inconsistent architecture under a valid digest with code architecture", () => {
  const p = (n: number) => floatBytes(new Array(n).fill(0.5));
  const cases: [string, Uint8Array, string | RegExp][] = [
    [
      "layers that do not chain",
      body([dense(10, 5), dense(4, 2)], p(50 + 5 + 8 + 2)),
      "Model bytes hold an invalid chain: Layer 2 (Dense(4 => 2)) expects 4 inputs but receives 5",
    ],
    [
      "too few parameter bytes",
      body([dense(10, 5, "relu"), dense(5, 2), { kind: "softmax" }], p(66)),
      "Model bytes hold 264 parameter bytes, the architecture needs 268",
    ],
    [
      "too many parameter bytes",
      body([dense(1, 1)], p(3)),
      "Model bytes hold 12 parameter bytes, the architecture needs 8",
    ],
    [
      "parameter bytes not a multiple of 4",
      body([dense(1, 1)], new Uint8Array(9)),
      "Model bytes hold 9 parameter bytes, the architecture needs 8",
    ],
    [
      "softmax before the end",
      body([dense(2, 2), { kind: "softmax" }, dense(2, 2)], p(12)),
      "Model bytes hold an invalid chain: softmax must be the last layer, found at layer 2",
    ],
    [
      "no layers",
      body([], p(0)),
      "Model bytes hold an invalid chain: A chain needs at least one Dense layer",
    ],
    [
      "no dense layer",
      body([{ kind: "relu" }], p(0)),
      "Model bytes hold an invalid chain: A chain needs at least one Dense layer",
    ],
    [
      "an unknown layer kind",
      body([dense(1, 1), { kind: "conv" }], p(2)),
      "Model bytes have an unknown layer kind in layer 2: conv",
    ],
    [
      "an unknown activation",
      body([dense(1, 1, "sigmoid")], p(2)),
      'Model bytes have an invalid layer 1: Dense activation must be "identity" or "relu", got "sigmoid"',
    ],
    [
      "a zero width",
      body([dense(0, 1)], p(1)),
      "Model bytes have an invalid layer 1: Dense nIn must be an integer in [1, 16777216], got 0",
    ],
    [
      "a fractional width",
      body([dense(2, 1.5)], p(5)),
      "Model bytes have an invalid layer 1: Dense nOut must be an integer in [1, 16777216], got 1.5",
    ],
    [
      "a width given as a string",
      body([dense("1", 1)], p(2)),
      "Model bytes have an invalid layer 1: Dense nIn must be an integer in [1, 16777216], got 1",
    ],
    ["a layer that is not a map", body([5], p(0)), "Model bytes have a malformed layer 1"],
    [
      "2^31 parameters",
      body([dense(65536, 32768)], p(0)),
      "Model bytes hold an invalid chain: Model exceeds the limit of 268435456 parameters",
    ],
    [
      "2^27 parameters and none given",
      body([dense(16384, 8192)], p(0)),
      "Model bytes hold 0 parameter bytes, the architecture needs 536903680",
    ],
  ];
  for (const [name, bodyBytes, message] of cases) {
    try {
      assertFormatError(() => modelFromBytes(seal(bodyBytes)), "architecture", message);
    } catch (error) {
      throw new Error(name, { cause: error });
    }
  }
});

Deno.test("ModelFormatError is an Error with a name and a code", () => {
  const error = new ModelFormatError("checksum", "Model bytes fail their SHA-256 check");
  ok(error instanceof Error);
  strictEqual(error.name, "ModelFormatError");
  strictEqual(error.code, "checksum");
  strictEqual(error.message, "Model bytes fail their SHA-256 check");
});
