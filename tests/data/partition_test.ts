import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  partition,
  partitionDirichlet,
  partitionIid,
  partitionShards,
} from "../../lib/data/partition.ts";
import { Rng } from "../../lib/rng.ts";

// MNIST's training label counts.
const MNIST_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];

/** Labels with the given class counts, in a shuffled order. */
function labelsWithCounts(counts: number[], seed: number): Int32Array {
  const labels = new Int32Array(counts.reduce((a, b) => a + b, 0));
  let k = 0;
  counts.forEach((count, label) => labels.fill(label, k, k += count));
  return new Rng(seed).shuffle(labels);
}

/** Asserts that the parts hold every index in [0, n) at most once, and returns how many. */
function assertDisjoint(parts: Uint32Array[], n: number): number {
  const seen = new Uint8Array(n);
  let total = 0;
  for (const part of parts) {
    ok(part instanceof Uint32Array);
    for (const i of part) {
      ok(i < n, `index ${i} out of range`);
      strictEqual(seen[i], 0, `index ${i} assigned twice`);
      seen[i] = 1;
      total++;
    }
  }
  return total;
}

function sizes(parts: Uint32Array[]): number[] {
  return parts.map((p) => p.length);
}

Deno.test("partitionIid() gives MNIST's 100 clients 600 examples each", () => {
  const parts = partitionIid(60000, { clients: 100 }, new Rng(1));
  strictEqual(parts.length, 100);
  deepStrictEqual(sizes(parts), new Array(100).fill(600));
  strictEqual(assertDisjoint(parts, 60000), 60000);
});

Deno.test("partitionIid() spreads the remainder so sizes differ by at most one", () => {
  for (
    const [n, clients, expected] of [
      [10, 3, [3, 3, 4]],
      [7, 7, [1, 1, 1, 1, 1, 1, 1]],
      [11, 4, [2, 3, 3, 3]],
      [5, 1, [5]],
    ] as const
  ) {
    const parts = partitionIid(n, { clients }, new Rng(2));
    deepStrictEqual(sizes(parts), expected);
    strictEqual(assertDisjoint(parts, n), n);
  }
});

Deno.test("partitionIid() mixes sorted labels evenly across clients", () => {
  // Labels sorted in blocks of 1000: an unshuffled split would give each client one class.
  const labels = Int32Array.from({ length: 10000 }, (_, i) => Math.floor(i / 1000));
  for (const part of partitionIid(10000, { clients: 10 }, new Rng(3))) {
    const counts = new Array(10).fill(0);
    for (const i of part) counts[labels[i]!]++;
    // Each count is hypergeometric with mean 100 and sd about 9.
    ok(counts.every((c) => c > 60 && c < 140), `class counts ${counts}`);
  }
});

Deno.test("partitionIid() depends only on the seed", () => {
  deepStrictEqual(
    partitionIid(1000, { clients: 7 }, new Rng(11)),
    partitionIid(1000, { clients: 7 }, new Rng(11)),
  );
  notDeepStrictEqual(
    partitionIid(1000, { clients: 7 }, new Rng(11)),
    partitionIid(1000, { clients: 7 }, new Rng(12)),
  );
});

Deno.test("partitionShards() follows McMahan et al.: 200 shards of 300 sorted examples", () => {
  const labels = labelsWithCounts(MNIST_COUNTS, 4);
  const parts = partitionShards(labels, { clients: 100, shardsPerClient: 2 }, new Rng(5));
  strictEqual(parts.length, 100);
  strictEqual(assertDisjoint(parts, 60000), 60000);
  // Positions in the order sorted by label, ties by index (a counting sort).
  const position = new Uint32Array(60000);
  let k = 0;
  for (let label = 0; label < 10; label++) {
    for (let i = 0; i < 60000; i++) if (labels[i] === label) position[i] = k++;
  }
  const shardsSeen = new Set<number>();
  let fewLabels = 0;
  for (const part of parts) {
    strictEqual(part.length, 600);
    // The client's sorted positions form two runs of 300, each one whole shard.
    const shards = new Set(Array.from(part, (i) => Math.floor(position[i]! / 300)));
    strictEqual(shards.size, 2);
    for (const shard of shards) {
      strictEqual(
        Array.from(part).filter((i) => Math.floor(position[i]! / 300) === shard).length,
        300,
      );
      ok(!shardsSeen.has(shard));
      shardsSeen.add(shard);
    }
    const distinct = new Set(Array.from(part, (i) => labels[i]!)).size;
    ok(distinct <= 4);
    if (distinct <= 2) fewLabels++;
  }
  strictEqual(shardsSeen.size, 200);
  // Only the 9 shards that straddle a class boundary hold two labels.
  ok(fewLabels >= 91, `${fewLabels} clients see at most two labels`);
});

Deno.test("partitionShards() uses every example when shards do not divide n", () => {
  const labels = Int32Array.from([2, 0, 1, 0, 2, 1, 0, 1, 2, 0]);
  const parts = partitionShards(labels, { clients: 3, shardsPerClient: 1 }, new Rng(6));
  strictEqual(assertDisjoint(parts, 10), 10);
  deepStrictEqual(sizes(parts).sort(), [3, 3, 4]);
  // Sorted by label, ties by index: 1 3 6 9 | 2 5 7 | 0 4 8 -> shards [1 3 6] [9 2 5] [7 0 4 8].
  const shards = parts.map((p) => Array.from(p)).sort((a, b) => a[0]! - b[0]!);
  deepStrictEqual(shards, [[1, 3, 6], [7, 0, 4, 8], [9, 2, 5]]);
});

Deno.test("partitionShards() defaults to two shards per client and depends only on the seed", () => {
  const labels = labelsWithCounts([50, 50, 50, 50], 7);
  const a = partitionShards(labels, { clients: 10 }, new Rng(8));
  deepStrictEqual(sizes(a), new Array(10).fill(20));
  deepStrictEqual(a, partitionShards(labels, { clients: 10, shardsPerClient: 2 }, new Rng(8)));
  notDeepStrictEqual(a, partitionShards(labels, { clients: 10 }, new Rng(9)));
});

/** Mean total-variation distance between each client's label mix and the global one. */
function labelSkew(parts: Uint32Array[], labels: Int32Array, classes: number): number {
  const global = new Array(classes).fill(0);
  for (const label of labels) global[label] += 1 / labels.length;
  let sum = 0;
  let counted = 0;
  for (const part of parts) {
    if (part.length === 0) continue;
    const local = new Array(classes).fill(0);
    for (const i of part) local[labels[i]!] += 1 / part.length;
    sum += local.reduce((s, p, k) => s + Math.abs(p - global[k]), 0) / 2;
    counted++;
  }
  return sum / counted;
}

Deno.test("partitionDirichlet() assigns every example once for any alpha", () => {
  const labels = labelsWithCounts([1000, 1200, 800, 1000, 1000, 900, 1100, 1000, 1000, 1000], 10);
  for (const alpha of [0.001, 0.1, 1, 100]) {
    const parts = partitionDirichlet(labels, { clients: 20, alpha }, new Rng(11));
    strictEqual(parts.length, 20);
    strictEqual(assertDisjoint(parts, labels.length), labels.length);
  }
});

Deno.test("partitionDirichlet() skews labels far more for small alpha", () => {
  const labels = labelsWithCounts(MNIST_COUNTS, 12);
  const skew = (alpha: number) =>
    labelSkew(partitionDirichlet(labels, { clients: 100, alpha }, new Rng(13)), labels, 10);
  const small = skew(0.1);
  const large = skew(100);
  ok(small > 0.6, `skew at alpha 0.1: ${small}`);
  ok(large < 0.1, `skew at alpha 100: ${large}`);
  // An IID split sits at the sampling noise floor, close to the large-alpha one.
  const iid = labelSkew(partitionIid(60000, { clients: 100 }, new Rng(14)), labels, 10);
  ok(iid < 0.1, `skew of iid: ${iid}`);
});

Deno.test("partitionDirichlet() draws shares from Dirichlet(alpha)", () => {
  // Two clients: client 0's share of each class is Beta(alpha, alpha), variance 1/(4(2a + 1)).
  const classes = 400;
  const labels = Int32Array.from({ length: classes * 100 }, (_, i) => i % classes);
  for (const alpha of [0.3, 1, 2]) {
    const [first] = partitionDirichlet(labels, { clients: 2, alpha }, new Rng(15));
    const share = new Array(classes).fill(0);
    for (const i of first!) share[labels[i]!] += 1 / 100;
    const mean = share.reduce((a, b) => a + b, 0) / classes;
    const variance = share.reduce((a, s) => a + (s - mean) ** 2, 0) / classes;
    const expected = 1 / (4 * (2 * alpha + 1));
    ok(Math.abs(mean - 0.5) < 0.1, `alpha ${alpha}: mean share ${mean}`);
    ok(
      Math.abs(variance - expected) < 0.2 * expected,
      `alpha ${alpha}: variance ${variance}, expected ${expected}`,
    );
  }
});

Deno.test("partitionDirichlet() gives nearly each class to one client when alpha is tiny", () => {
  // For tiny alpha, log Gamma(alpha) is about -Exp(1) / alpha, so the runner-up's share passes
  // 15% (no client gets 9 of a class's 10 examples) when the gap between the two smallest of
  // five Exp(1) draws, itself Exp(4), is below alpha ln(0.85 / 0.15): with probability 0.0069,
  // some 69 of 10000 classes.
  const classes = 10000;
  const labels = Int32Array.from({ length: classes * 10 }, (_, i) => i % classes);
  const parts = partitionDirichlet(labels, { clients: 5, alpha: 1e-3 }, new Rng(16));
  const top = new Int32Array(classes);
  for (const part of parts) {
    const counts = new Int32Array(classes);
    for (const i of part) counts[labels[i]!]!++;
    counts.forEach((c, k) => (top[k] = Math.max(top[k]!, c)));
  }
  const split = top.filter((c) => c < 9).length;
  ok(split > 35 && split < 110, `${split} of ${classes} classes split`);
});

Deno.test("partitionDirichlet() honours classes beyond the largest label", () => {
  const labels = Int32Array.from([0, 1, 1, 0, 2, 2]);
  const parts = partitionDirichlet(labels, { clients: 2, alpha: 1, classes: 5 }, new Rng(17));
  strictEqual(assertDisjoint(parts, 6), 6);
});

Deno.test("partitionDirichlet() depends only on the seed", () => {
  const labels = labelsWithCounts([100, 100, 100], 18);
  const run = (seed: number) =>
    partitionDirichlet(labels, { clients: 6, alpha: 0.5 }, new Rng(seed));
  deepStrictEqual(run(19), run(19));
  notDeepStrictEqual(run(19), run(20));
});

Deno.test("partition() matches the partitioner it names", () => {
  const labels = labelsWithCounts([30, 30, 30, 30], 21);
  deepStrictEqual(
    partition(labels, { scheme: "iid", clients: 4 }, new Rng(22)),
    partitionIid(120, { clients: 4 }, new Rng(22)),
  );
  deepStrictEqual(
    partition(labels, { scheme: "shards", clients: 4, shardsPerClient: 3 }, new Rng(22)),
    partitionShards(labels, { clients: 4, shardsPerClient: 3 }, new Rng(22)),
  );
  deepStrictEqual(
    partition(labels, { scheme: "dirichlet", clients: 4, alpha: 0.3 }, new Rng(22)),
    partitionDirichlet(labels, { clients: 4, alpha: 0.3 }, new Rng(22)),
  );
});

Deno.test("partitioners reject bad arguments", () => {
  const labels = Int32Array.from([0, 1, 0, 1]);
  const rng = new Rng(0);
  const cases: [() => unknown, Error][] = [
    [
      () => partitionIid(4, { clients: 2 }, {} as Rng),
      new TypeError("Partitioning needs an Rng"),
    ],
    [
      () => partitionIid(-1, { clients: 1 }, rng),
      new RangeError("Example count must be an integer in [0, 2^32), got -1"),
    ],
    [
      () => partitionIid(2.5, { clients: 1 }, rng),
      new RangeError("Example count must be an integer in [0, 2^32), got 2.5"),
    ],
    [
      () => partitionIid(4, { clients: 0 }, rng),
      new RangeError("Clients must be a positive integer, got 0"),
    ],
    [
      () => partitionIid(4, { clients: 1.5 }, rng),
      new RangeError("Clients must be a positive integer, got 1.5"),
    ],
    [
      () => partitionIid(4, { clients: 5 }, rng),
      new RangeError("Cannot split 4 examples among 5 clients"),
    ],
    [
      () => partitionShards(labels, { clients: 2, shardsPerClient: 0 }, rng),
      new RangeError("Shards per client must be a positive integer, got 0"),
    ],
    [
      () => partitionShards(labels, { clients: 2, shardsPerClient: 3 }, rng),
      new RangeError("Cannot cut 4 examples into 6 shards (2 clients x 3)"),
    ],
    [
      () => partitionShards([0, -1, 0, 1], { clients: 2 }, rng),
      new RangeError("Label -1 of example 1 is not a non-negative integer"),
    ],
    [
      () => partitionDirichlet([0, 1, 0.5, 1], { clients: 2, alpha: 1 }, rng),
      new RangeError("Label 0.5 of example 2 is not a non-negative integer"),
    ],
    [
      () => partitionDirichlet(labels, { clients: 5, alpha: 1 }, rng),
      new RangeError("Cannot split 4 examples among 5 clients"),
    ],
    ...[0, -1, NaN, Infinity].map((alpha): [() => unknown, Error] => [
      () => partitionDirichlet(labels, { clients: 2, alpha }, rng),
      new RangeError(`Alpha must be positive and finite, got ${alpha}`),
    ]),
    [
      () => partitionDirichlet(labels, { clients: 2, alpha: 1, classes: 0 }, rng),
      new RangeError("Classes must be a positive integer, got 0"),
    ],
    [
      () => partitionDirichlet(labels, { clients: 2, alpha: 1, classes: 1 }, rng),
      new RangeError("Label 1 is outside [0, 1)"),
    ],
    [
      () => partition(labels, { scheme: "dirichlet", clients: 2 }, rng),
      new RangeError("Dirichlet partitioning needs alpha"),
    ],
    [
      () => partition(labels, { scheme: "random" as "iid", clients: 2 }, rng),
      new RangeError('Unknown partition scheme "random"'),
    ],
  ];
  for (const [fn, error] of cases) throws(fn, error);
});
