import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { DataFormatError, type DataFormatErrorCode } from "../../lib/data/errors.ts";
import { decodeIdx, type IdxArray, idxToBytes, parseIdx } from "../../lib/data/idx.ts";
import { readIdx } from "../../lib/data/idx_file.ts";

/** Asserts that `fn` throws a DataFormatError with `code` and a message matching `message`. */
function throwsFormat(fn: () => unknown, code: DataFormatErrorCode, message: RegExp): void {
  throws(fn, (error) => {
    ok(error instanceof DataFormatError, `expected a DataFormatError, got ${error}`);
    strictEqual(error.name, "DataFormatError");
    strictEqual(error.code, code);
    ok(message.test(error.message), `message ${JSON.stringify(error.message)} !~ ${message}`);
    return true;
  });
}

async function gzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = ReadableStream.from<BufferSource>([bytes]).pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// Hand-encoded files: header, then big-endian data, with the values they hold.
const VECTORS: { name: string; bytes: number[]; expected: IdxArray }[] = [
  {
    name: "u8",
    bytes: [0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2, 255],
    expected: { type: "u8", dims: [3], data: new Uint8Array([1, 2, 255]) },
  },
  {
    name: "i8",
    bytes: [0, 0, 0x09, 1, 0, 0, 0, 3, 0xff, 0x80, 0x7f],
    expected: { type: "i8", dims: [3], data: new Int8Array([-1, -128, 127]) },
  },
  {
    name: "i16",
    bytes: [0, 0, 0x0b, 2, 0, 0, 0, 1, 0, 0, 0, 3, 0x01, 0x02, 0xff, 0xfe, 0x80, 0x00],
    expected: { type: "i16", dims: [1, 3], data: new Int16Array([258, -2, -32768]) },
  },
  {
    name: "i32",
    bytes: [0, 0, 0x0c, 1, 0, 0, 0, 2, 0x12, 0x34, 0x56, 0x78, 0x80, 0, 0, 0],
    expected: { type: "i32", dims: [2], data: new Int32Array([0x12345678, -2147483648]) },
  },
  {
    name: "f32",
    // 1.5 = 0x3fc00000, -2 = 0xc0000000, 0.1 = 0x3dcccccd
    bytes: [0, 0, 0x0d, 1, 0, 0, 0, 3, 0x3f, 0xc0, 0, 0, 0xc0, 0, 0, 0, 0x3d, 0xcc, 0xcc, 0xcd],
    expected: { type: "f32", dims: [3], data: new Float32Array([1.5, -2, 0.1]) },
  },
  {
    name: "f64",
    // 1.5 = 0x3ff8000000000000, -0.1 = 0xbfb999999999999a
    bytes: [
      ...[0, 0, 0x0e, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1],
      ...[0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xbf, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a],
    ],
    expected: { type: "f64", dims: [1, 2, 1], data: new Float64Array([1.5, -0.1]) },
  },
];

for (const { name, bytes, expected } of VECTORS) {
  Deno.test(`parseIdx() reads big-endian ${name} data`, () => {
    const idx = parseIdx(new Uint8Array(bytes));
    strictEqual(idx.type, expected.type);
    deepStrictEqual(idx.dims, expected.dims);
    strictEqual(idx.data.constructor, expected.data.constructor);
    deepStrictEqual(Array.from(idx.data), Array.from(expected.data));
  });

  Deno.test(`idxToBytes() writes big-endian ${name} data`, () => {
    deepStrictEqual(Array.from(idxToBytes(expected)), bytes);
  });
}

Deno.test("parseIdx() and idxToBytes() round-trip a 3-D array", () => {
  const data = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => (i - 7) / 3);
  const idx = parseIdx(idxToBytes({ type: "f32", dims: [2, 3, 4], data }));
  deepStrictEqual(idx, { type: "f32", dims: [2, 3, 4], data });
});

Deno.test("parseIdx() copies the data out of its input", () => {
  const bytes = new Uint8Array([0, 0, 0x08, 1, 0, 0, 0, 2, 5, 6]);
  const idx = parseIdx(bytes);
  bytes[8] = 99;
  deepStrictEqual(Array.from(idx.data), [5, 6]);
});

Deno.test("parseIdx() reads from a view at an odd offset", () => {
  const backing = new Uint8Array([9, 0, 0, 0x0b, 1, 0, 0, 0, 1, 0x01, 0x02, 9]);
  const idx = parseIdx(backing.subarray(1, 11));
  deepStrictEqual(Array.from(idx.data), [258]);
});

const BAD: { name: string; bytes: number[]; code: DataFormatErrorCode; message: RegExp }[] = [
  { name: "empty input", bytes: [], code: "truncated", message: /^IDX data is empty$/ },
  {
    name: "a truncated header",
    bytes: [0, 0, 8],
    code: "truncated",
    message: /^IDX header is truncated: 3 of 4 bytes$/,
  },
  {
    name: "truncated dimensions",
    bytes: [0, 0, 8, 2, 0, 0, 0, 1, 0, 0],
    code: "truncated",
    message: /^IDX header is truncated: 10 of 12 bytes for 2 dimensions$/,
  },
  {
    name: "a bad magic",
    bytes: [0x12, 0x34, 8, 1, 0, 0, 0, 1, 0],
    code: "bad-magic",
    message: /^IDX magic must start with two zero bytes, got 0x12 0x34$/,
  },
  {
    name: "a nonzero second magic byte",
    bytes: [0, 1, 8, 1, 0, 0, 0, 1, 0],
    code: "bad-magic",
    message: /got 0x00 0x01$/,
  },
  {
    name: "an unknown type",
    bytes: [0, 0, 0x0a, 1, 0, 0, 0, 1, 0],
    code: "bad-type",
    message: /^Unknown IDX type code 0x0a$/,
  },
  {
    name: "zero dimensions",
    bytes: [0, 0, 8, 0],
    code: "bad-dims",
    message: /^IDX dimension count must be in \[1, 8\], got 0$/,
  },
  {
    name: "nine dimensions",
    bytes: [0, 0, 8, 9, ...new Array(36).fill(0)],
    code: "bad-dims",
    message: /got 9$/,
  },
  {
    name: "a zero dimension",
    bytes: [0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 0],
    code: "bad-dims",
    message: /^IDX dimension 1 is 0; dimensions must be at least 1$/,
  },
  {
    name: "data shorter than declared",
    bytes: [0, 0, 0x0b, 1, 0, 0, 0, 2, 1, 2, 3],
    code: "truncated",
    message: /^IDX data is truncated: 3 of 4 bytes$/,
  },
  {
    name: "data longer than declared",
    bytes: [0, 0, 0x08, 1, 0, 0, 0, 2, 1, 2, 3],
    code: "size-mismatch",
    message: /^IDX data has 1 bytes after the declared 2$/,
  },
  {
    name: "a declared size over the maximum",
    bytes: [0, 0, 0x08, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    code: "too-large",
    message: /^IDX data of 4294967295 x 4294967295 u8 exceeds the maximum of 2147483648 bytes$/,
  },
  {
    name: "eight maximal dimensions",
    bytes: [0, 0, 0x0e, 8, ...new Array(32).fill(0xff)],
    code: "too-large",
    message: /exceeds the maximum/,
  },
];

for (const { name, bytes, code, message } of BAD) {
  Deno.test(`parseIdx() rejects ${name}`, () => {
    throwsFormat(() => parseIdx(new Uint8Array(bytes)), code, message);
  });
}

Deno.test("parseIdx() counts maxBytes in bytes, not elements", () => {
  const ok4 = [0, 0, 0x0b, 1, 0, 0, 0, 2, 0, 1, 0, 2]; // two i16: 4 bytes
  deepStrictEqual(Array.from(parseIdx(new Uint8Array(ok4), { maxBytes: 4 }).data), [1, 2]);
  throwsFormat(
    () => parseIdx(new Uint8Array(ok4), { maxBytes: 3 }),
    "too-large",
    /^IDX data of 2 i16 exceeds the maximum of 3 bytes$/,
  );
});

Deno.test("parseIdx() rejects bad arguments", () => {
  throws(
    () => parseIdx([0, 0, 8, 1] as unknown as Uint8Array),
    new TypeError("IDX input must be a Uint8Array"),
  );
  for (const maxBytes of [-1, 1.5, NaN, Infinity]) {
    throws(
      () => parseIdx(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 1, 0]), { maxBytes }),
      new RangeError(`Maximum bytes must be a non-negative integer, got ${maxBytes}`),
    );
  }
});

Deno.test("idxToBytes() rejects inconsistent arrays", () => {
  throws(
    () => idxToBytes({ type: "f16" as "f32", dims: [1], data: new Float32Array(1) }),
    new TypeError('Unknown IDX type "f16"'),
  );
  throws(
    () => idxToBytes({ type: "u8", dims: [1], data: new Int8Array(1) }),
    new TypeError("IDX u8 data must be a Uint8Array"),
  );
  throws(
    () => idxToBytes({ type: "f64", dims: [2], data: new Float32Array(2) }),
    new TypeError("IDX f64 data must be a Float64Array"),
  );
  throws(
    () => idxToBytes({ type: "u8", dims: [], data: new Uint8Array(1) }),
    new RangeError("IDX dimension count must be in [1, 8], got 0"),
  );
  for (const dim of [0, 1.5, 2 ** 32]) {
    throws(
      () => idxToBytes({ type: "u8", dims: [dim], data: new Uint8Array(1) }),
      new RangeError(`IDX dimensions must be integers in [1, 2^32), got ${dim}`),
    );
  }
  throws(
    () => idxToBytes({ type: "i32", dims: [2, 2], data: new Int32Array(3) }),
    new RangeError("IDX data holds 3 elements, but dimensions 2 x 2 need 4"),
  );
});

Deno.test("decodeIdx() parses plain and gzipped bytes, shared memory included", async () => {
  const f64 = VECTORS.find((v) => v.name === "f64")!;
  const plain = new Uint8Array(f64.bytes);
  const packed = await gzip(plain);
  const shared = new Uint8Array(new SharedArrayBuffer(packed.length));
  shared.set(packed);
  for (const bytes of [plain, packed, shared]) {
    deepStrictEqual(await decodeIdx(bytes), f64.expected);
  }
  await rejects(decodeIdx(packed, { maxBytes: 8 }), (error) => {
    ok(error instanceof DataFormatError);
    strictEqual(error.code, "too-large");
    return true;
  });
  await rejects(decodeIdx(packed.subarray(0, packed.length - 6)), (error) => {
    ok(error instanceof DataFormatError);
    strictEqual(error.code, "bad-gzip");
    return true;
  });
  await rejects(
    decodeIdx([0, 0] as unknown as Uint8Array),
    new TypeError("IDX input must be a Uint8Array"),
  );
  await rejects(
    decodeIdx(plain, { maxBytes: -1 }),
    new RangeError("Maximum bytes must be a non-negative integer, got -1"),
  );
});

Deno.test("readIdx() reads plain and gzipped files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const f64 = VECTORS.find((v) => v.name === "f64")!;
    const plain = new Uint8Array(f64.bytes);
    await Deno.writeFile(`${dir}/plain`, plain);
    await Deno.writeFile(`${dir}/packed.gz`, await gzip(plain));
    for (const path of [`${dir}/plain`, `${dir}/packed.gz`]) {
      const idx = await readIdx(path);
      deepStrictEqual(idx, f64.expected);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readIdx() names the missing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await rejects(readIdx(`${dir}/nope`), (error) => {
      ok(error instanceof Deno.errors.NotFound);
      strictEqual(error.message, `IDX file not found: ${dir}/nope`);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readIdx() prefixes format errors with the path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/bad`, new Uint8Array([0, 0, 8, 1, 0, 0, 0, 2, 1]));
    await rejects(readIdx(`${dir}/bad`), (error) => {
      ok(error instanceof DataFormatError);
      strictEqual(error.code, "truncated");
      strictEqual(error.message, `${dir}/bad: IDX data is truncated: 1 of 2 bytes`);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readIdx() stops decompressing past maxBytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // 16 MiB of zeros declared as one u8 vector; gzip shrinks it to a few KiB.
    const big = idxToBytes({ type: "u8", dims: [2 ** 24], data: new Uint8Array(2 ** 24) });
    const packed = await gzip(big);
    ok(packed.length < 100_000);
    await Deno.writeFile(`${dir}/bomb.gz`, packed);
    await rejects(readIdx(`${dir}/bomb.gz`, { maxBytes: 1000 }), (error) => {
      ok(error instanceof DataFormatError);
      strictEqual(error.code, "too-large");
      ok(/^.*bomb\.gz: Gzip data decompresses to more than 1036 bytes$/.test(error.message));
      return true;
    });
    strictEqual((await readIdx(`${dir}/bomb.gz`)).data.length, 2 ** 24);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readIdx() rejects corrupt gzip data", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const packed = await gzip(new Uint8Array(VECTORS[0]!.bytes));
    await Deno.writeFile(`${dir}/cut.gz`, packed.subarray(0, packed.length - 6));
    await rejects(readIdx(`${dir}/cut.gz`), (error) => {
      ok(error instanceof DataFormatError);
      strictEqual(error.code, "bad-gzip");
      strictEqual(error.message, `${dir}/cut.gz: Gzip data is corrupt`);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
