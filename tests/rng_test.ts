import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { Rng } from "../lib/rng.ts";

// A slow reference in BigInt arithmetic, written from the published algorithm:
// xoshiro128** 1.1 (Blackman and Vigna, https://prng.di.unimi.it/xoshiro128starstar.c).
// Seeding, as documented in lib/rng.ts: the state is the first four little-endian 32-bit words
// of SHA-256("fedgpu-rng/v1" || each key of [seed, ...stream] as 8 big-endian bytes); the
// reference hashes with WebCrypto, independently of the library's hash.

const MASK = 0xffffffffn;

function refRotl(x: bigint, k: bigint): bigint {
  return ((x << k) | (x >> (32n - k))) & MASK;
}

class RefXoshiro128ss {
  #s: bigint[];

  constructor(state: bigint[]) {
    this.#s = [...state];
  }

  static async seeded(keys: number[]): Promise<RefXoshiro128ss> {
    const tag = [..."fedgpu-rng/v1"].map((c) => c.charCodeAt(0));
    const bytes = [...tag];
    for (const key of keys) {
      const k = BigInt(key);
      for (let shift = 56n; shift >= 0n; shift -= 8n) bytes.push(Number((k >> shift) & 0xffn));
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
    const state: bigint[] = [];
    for (let i = 0; i < 4; i++) {
      let word = 0n;
      for (let b = 3; b >= 0; b--) word = (word << 8n) | BigInt(digest[4 * i + b]!);
      state.push(word);
    }
    return new RefXoshiro128ss(state);
  }

  next(): number {
    const s = this.#s;
    const result = (refRotl((s[1]! * 5n) & MASK, 7n) * 9n) & MASK;
    const t = (s[1]! << 9n) & MASK;
    s[2] = s[2]! ^ s[0]!;
    s[3] = s[3]! ^ s[1]!;
    s[1] = s[1]! ^ s[2]!;
    s[0] = s[0]! ^ s[3]!;
    s[2] = s[2]! ^ t;
    s[3] = refRotl(s[3]!, 11n);
    return Number(result);
  }
}

Deno.test("reference xoshiro128** reproduces the published outputs for state {1, 2, 3, 4}", () => {
  const ref = new RefXoshiro128ss([1n, 2n, 3n, 4n]);
  deepStrictEqual(Array.from({ length: 10 }, () => ref.next()), [
    11520,
    0,
    5927040,
    70819200,
    2031721883,
    1637235492,
    1287239034,
    3734860849,
    3729100597,
    4258142804,
  ]);
});

const SEEDS: [number, number[]][] = [
  [0, []],
  [1, []],
  [42, []],
  [42, [0]],
  [42, [3, 7]],
  [0xffffffff, []],
  [2 ** 32, []],
  [2 ** 53 - 1, [2 ** 53 - 1]],
  [123456789012345, [2 ** 40 + 5, 0, 17]],
];

for (const [seed, stream] of SEEDS) {
  Deno.test(`Rng(${seed}, [${stream}]).u32() matches the reference`, async () => {
    const rng = new Rng(seed, stream);
    const ref = await RefXoshiro128ss.seeded([seed, ...stream]);
    for (let i = 0; i < 200; i++) strictEqual(rng.u32(), ref.next(), `output ${i}`);
  });
}

Deno.test("Rng.float() takes 27 + 26 bits of two outputs", async () => {
  const rng = new Rng(7);
  const ref = await RefXoshiro128ss.seeded([7]);
  for (let i = 0; i < 100; i++) {
    const hi = ref.next() >>> 5;
    const lo = ref.next() >>> 6;
    strictEqual(rng.float(), (hi * 2 ** 26 + lo) / 2 ** 53);
  }
});

Deno.test("Rng.int(2^32) returns the raw outputs", async () => {
  const rng = new Rng(8);
  const ref = await RefXoshiro128ss.seeded([8]);
  for (let i = 0; i < 100; i++) strictEqual(rng.int(2 ** 32), ref.next());
});

Deno.test("Rng streams depend on seed and path", () => {
  const draw = (rng: Rng) => Array.from({ length: 8 }, () => rng.u32());
  deepStrictEqual(draw(new Rng(5)), draw(new Rng(5, [])));
  deepStrictEqual(draw(new Rng(5, [1, 2])), draw(new Rng(5, [1, 2])));
  const distinct = [new Rng(5), new Rng(6), new Rng(5, [0]), new Rng(5, [1, 2]), new Rng(5, [2, 1])]
    .map((rng) => draw(rng).join());
  strictEqual(new Set(distinct).size, distinct.length);
  // Pairs that collided when the seed and path were folded into 32 bits.
  notDeepStrictEqual(draw(new Rng(42, [1646, 7])), draw(new Rng(42, [5439, 0])));
  notDeepStrictEqual(draw(new Rng(2 ** 32)), draw(new Rng(2553968393)));
});

Deno.test("Rng.fork() seeds a child with the next output and advances the parent by one", async () => {
  const parent = new Rng(9);
  const child = parent.fork([4]);
  const ref = await RefXoshiro128ss.seeded([9]);
  const childRef = await RefXoshiro128ss.seeded([ref.next(), 4]);
  for (let i = 0; i < 10; i++) strictEqual(child.u32(), childRef.next());
  strictEqual(parent.u32(), ref.next());
});

function meanAndVariance(values: Float64Array): [number, number] {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
  return [mean, variance];
}

/** Asserts |actual - expected| < tolerance, with a message that shows both. */
function near(actual: number, expected: number, tolerance: number, what: string): void {
  ok(
    Math.abs(actual - expected) < tolerance,
    `${what}: ${actual}, expected ${expected} +- ${tolerance}`,
  );
}

Deno.test("Rng.float() is uniform on [0, 1)", () => {
  const n = 200_000;
  const rng = new Rng(10);
  const values = Float64Array.from({ length: n }, () => rng.float());
  ok(values.every((v) => v >= 0 && v < 1));
  const [mean, variance] = meanAndVariance(values);
  // Standard errors: sqrt(1/12 / n) = 0.00065 for the mean, sqrt((1/80 - 1/144) / n) = 0.00017
  // for the variance; tolerances are 5 of them.
  near(mean, 0.5, 0.0033, "mean");
  near(variance, 1 / 12, 0.00085, "variance");
});

Deno.test("Rng.int() is uniform (chi-square over 10 bins)", () => {
  const n = 100_000;
  const rng = new Rng(11);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < n; i++) counts[rng.int(10)]++;
  const chi2 = counts.reduce((a, c) => a + (c - n / 10) ** 2 / (n / 10), 0);
  // The 99.9% quantile of chi-square with 9 degrees of freedom.
  ok(chi2 < 27.88, `chi-square ${chi2} for counts ${counts}`);
});

Deno.test("Rng.int() has no modulo bias for a bound near 2^32", () => {
  // With n = 3 * 2^30, u32 % n would put half the mass in the first third.
  const n = 3 * 2 ** 30;
  const rng = new Rng(12);
  let low = 0;
  const draws = 30_000;
  for (let i = 0; i < draws; i++) {
    const x = rng.int(n);
    ok(Number.isInteger(x) && x >= 0 && x < n);
    if (x < 2 ** 30) low++;
  }
  near(low / draws, 1 / 3, 0.015, "share of the first third");
});

Deno.test("Rng.normal() is standard normal", () => {
  const n = 200_000;
  const rng = new Rng(13);
  const values = Float64Array.from({ length: n }, () => rng.normal());
  const [mean, variance] = meanAndVariance(values);
  near(mean, 0, 5 / Math.sqrt(n), "mean");
  near(variance, 1, 5 * Math.sqrt(2 / n), "variance");
  // P(|Z| < 1) = 0.682689; standard error sqrt(p (1 - p) / n) = 0.00104.
  const inside = values.filter((v) => Math.abs(v) < 1).length / n;
  near(inside, 0.682689, 0.0052, "share within one sd");
});

for (const k of [0.3, 1, 5]) {
  Deno.test(`Rng.gamma(${k}) has mean and variance ${k}`, () => {
    const n = 100_000;
    const rng = new Rng(14, [k * 10]);
    const values = Float64Array.from({ length: n }, () => rng.gamma(k));
    ok(values.every((v) => v >= 0 && Number.isFinite(v)));
    const [mean, variance] = meanAndVariance(values);
    // Gamma(k, 1): variance k, fourth central moment 3k(k + 2); tolerances are 5 standard errors.
    near(mean, k, 5 * Math.sqrt(k / n), "mean");
    near(variance, k, 5 * Math.sqrt((3 * k * (k + 2) - k * k) / n), "variance");
  });
}

Deno.test("Rng.permutation() and shuffle() are uniform over orders", () => {
  const rng = new Rng(15);
  const p = rng.permutation(1000);
  ok(p instanceof Uint32Array);
  deepStrictEqual(Array.from(p).sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  const counts = new Map<string, number>();
  const n = 60_000;
  for (let i = 0; i < n; i++) {
    const key = rng.shuffle(["a", "b", "c"]).join("");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  strictEqual(counts.size, 6);
  const chi2 = [...counts.values()].reduce((a, c) => a + (c - n / 6) ** 2 / (n / 6), 0);
  // The 99.9% quantile of chi-square with 5 degrees of freedom.
  ok(chi2 < 20.52, `chi-square ${chi2} for ${JSON.stringify([...counts])}`);
  notDeepStrictEqual(
    Array.from(new Rng(1).permutation(20)),
    Array.from(new Rng(2).permutation(20)),
  );
  deepStrictEqual(new Rng(3).permutation(0), new Uint32Array(0));
});

Deno.test("Rng rejects bad arguments", () => {
  for (const seed of [-1, 1.5, 2 ** 53, NaN, Infinity]) {
    throws(
      () => new Rng(seed),
      new RangeError(`Seed must be an integer in [0, 2^53), got ${seed}`),
    );
  }
  throws(
    () => new Rng(1, [2, -3]),
    new RangeError("Stream key must be an integer in [0, 2^53), got -3"),
  );
  const rng = new Rng(0);
  for (const bound of [0, -1, 1.5, 2 ** 32 + 1, NaN]) {
    throws(
      () => rng.int(bound),
      new RangeError(`Bound must be an integer in [1, 2^32], got ${bound}`),
    );
  }
  for (const shape of [0, -1, NaN, Infinity]) {
    throws(
      () => rng.gamma(shape),
      new RangeError(`Gamma shape must be positive and finite, got ${shape}`),
    );
  }
});
