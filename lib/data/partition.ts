/**
 * Seeded partitioners that split a dataset's examples among federated clients.
 *
 * - IID: a random permutation cut into equal blocks.
 * - Shards: the pathological non-IID split of McMahan et al., "Communication-Efficient Learning
 *   of Deep Networks from Decentralized Data" (AISTATS 2017), section 3: sort the examples by
 *   label, cut them into `clients x shardsPerClient` shards, deal the shards out at random.
 * - Dirichlet: label skew after Hsu, Qi and Brown, "Measuring the Effects of Non-Identical Data
 *   Distribution for Federated Visual Classification" (2019): for each class, the shares of
 *   the clients are drawn from Dirichlet(alpha).
 *
 * Each returns one `Uint32Array` of example indices per client. Every example goes to exactly
 * one client; no index repeats. The same labels, options and generator state give the same
 * partition.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { Rng } from "../rng.ts";

/** Options of {@linkcode partitionIid}. */
export interface IidOptions {
  /** The number of clients, an integer in [1, n]. */
  clients: number;
}

/** Options of {@linkcode partitionShards}. */
export interface ShardsOptions {
  /** The number of clients, an integer >= 1. */
  clients: number;
  /** Shards dealt to each client, an integer >= 1. Default 2. */
  shardsPerClient?: number;
}

/** Options of {@linkcode partitionDirichlet}. */
export interface DirichletOptions {
  /** The number of clients, an integer in [1, n]. */
  clients: number;
  /** The Dirichlet concentration, > 0: small values give each client few classes. */
  alpha: number;
  /** The number of classes, above every label. Default: the largest label + 1. */
  classes?: number;
}

/** The partitioning schemes of {@linkcode partition}. */
export type PartitionScheme = "iid" | "shards" | "dirichlet";

/** Options of {@linkcode partition}. */
export interface PartitionOptions {
  /** Which partitioner to use. */
  scheme: PartitionScheme;
  /** The number of clients. */
  clients: number;
  /** For `shards`: shards per client (default 2). */
  shardsPerClient?: number;
  /** For `dirichlet`: the concentration, required. */
  alpha?: number;
  /** For `dirichlet`: the number of classes (default: the largest label + 1). */
  classes?: number;
}

/**
 * Splits `n` examples evenly at random: client `c` of `C` gets positions
 * `[floor(c * n / C), floor((c + 1) * n / C))` of a random permutation of `0..n-1` (drawn with
 * `rng.permutation(n)`), so sizes differ by at most one and every example is used.
 *
 * @param n The number of examples.
 * @param options `clients`: the number of clients, in [1, n].
 * @param rng The generator to draw the permutation from; it advances.
 * @returns One array of example indices per client.
 * @throws {TypeError} If `rng` is not an {@linkcode Rng}.
 * @throws {RangeError} If `n` is not a non-negative integer below 2^32, or `clients` is not an
 *   integer in [1, n].
 *
 * @example Usage
 * ```ts
 * import { partitionIid, Rng } from "@fedgpu/fedgpu";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const parts = partitionIid(60000, { clients: 100 }, new Rng(1));
 * deepStrictEqual(parts.length, 100);
 * deepStrictEqual(parts.every((p) => p.length === 600), true);
 * ```
 */
export function partitionIid(n: number, options: IidOptions, rng: Rng): Uint32Array[] {
  _checkRng(rng);
  if (!Number.isInteger(n) || n < 0 || n >= 0x100000000) {
    throw new RangeError(`Example count must be an integer in [0, 2^32), got ${n}`);
  }
  _checkClients(options.clients, n);
  return _blocks(rng.permutation(n), options.clients);
}

/**
 * The pathological non-IID split of McMahan et al. (2017): the examples are sorted by label
 * (ties by index), cut into `S = clients * shardsPerClient` shards of consecutive sorted
 * positions, shard `s` covering `[floor(s * n / S), floor((s + 1) * n / S))`, and the shards
 * are dealt out by a random permutation of `0..S-1` (drawn with `rng.permutation(S)`): client
 * `c` gets the shards at places `c * shardsPerClient` to `(c + 1) * shardsPerClient - 1` of it,
 * in that order. With MNIST's 60000 examples, 100 clients and 2 shards each, that is 200
 * shards of 300, the paper's setting; most clients then see only two digits.
 *
 * @param labels Class labels, non-negative integers, one per example.
 * @param options `clients`, and `shardsPerClient` (default 2).
 * @param rng The generator to deal the shards with; it advances.
 * @returns One array of example indices per client: its shards, concatenated.
 * @throws {TypeError} If `rng` is not an {@linkcode Rng}.
 * @throws {RangeError} If a label is not a non-negative integer, `clients` or `shardsPerClient`
 *   is not a positive integer, or there are more shards than examples.
 *
 * @example Usage
 * ```ts
 * import { partitionShards, Rng } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);
 * const parts = partitionShards(labels, { clients: 10, shardsPerClient: 2 }, new Rng(7));
 * for (const part of parts) {
 *   strictEqual(part.length, 100);
 *   strictEqual(new Set(Array.from(part, (i) => labels[i])).size <= 2, true);
 * }
 * ```
 */
export function partitionShards(
  labels: ArrayLike<number>,
  options: ShardsOptions,
  rng: Rng,
): Uint32Array[] {
  _checkRng(rng);
  _checkLabels(labels);
  const { clients, shardsPerClient = 2 } = options;
  _checkClients(clients, labels.length);
  if (!Number.isSafeInteger(shardsPerClient) || shardsPerClient < 1) {
    throw new RangeError(`Shards per client must be a positive integer, got ${shardsPerClient}`);
  }
  const shardCount = clients * shardsPerClient;
  if (shardCount > labels.length) {
    throw new RangeError(
      `Cannot cut ${labels.length} examples into ${shardCount} shards (${clients} clients x ${shardsPerClient})`,
    );
  }
  const order = new Uint32Array(labels.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((a, b) => labels[a]! - labels[b]! || a - b);
  const shards = _blocks(order, shardCount);
  const deal = rng.permutation(shardCount);
  const parts: Uint32Array[] = [];
  for (let c = 0; c < clients; c++) {
    const mine = Array.from(deal.subarray(c * shardsPerClient, (c + 1) * shardsPerClient));
    parts.push(_concat(mine.map((s) => shards[s]!)));
  }
  return parts;
}

/**
 * Label-skewed split (Hsu et al. 2019). For each class `k` in turn, from 0 up: the indices of
 * its examples, in increasing order, are shuffled (`rng.shuffle`); the clients' shares
 * `p ~ Dirichlet(alpha, ..., alpha)` are drawn as normalized Gamma(alpha) variates
 * (`rng.gamma`, taken in log space so a tiny `alpha` cannot underflow them all to zero); the
 * class's `m` examples are apportioned by the largest-remainder method (each client gets
 * `floor(p_c * m)`, and the rest go one each to the clients with the largest fractional parts,
 * ties to the lower client); and client 0 takes the first examples of the shuffled order,
 * client 1 the next, and so on. A client's indices are grouped by class, in class order.
 *
 * Small `alpha` (0.1) gives most clients one or two classes, large `alpha` (100) nearly the
 * global label mix. Clients can receive no examples at all, more often the smaller `alpha`.
 *
 * @param labels Class labels, non-negative integers below `classes`, one per example.
 * @param options `clients`, `alpha`, and `classes` (default: the largest label + 1).
 * @param rng The generator to draw the shuffles and shares from; it advances.
 * @returns One array of example indices per client.
 * @throws {TypeError} If `rng` is not an {@linkcode Rng}.
 * @throws {RangeError} If a label is not a non-negative integer below `classes`, `clients` is
 *   not an integer in [1, n], `alpha` is not positive and finite, or `classes` is not a
 *   positive integer.
 *
 * @example Usage
 * ```ts
 * import { partitionDirichlet, Rng } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);
 * const parts = partitionDirichlet(labels, { clients: 20, alpha: 0.5 }, new Rng(3));
 * strictEqual(parts.reduce((sum, p) => sum + p.length, 0), 1000);
 * ```
 */
export function partitionDirichlet(
  labels: ArrayLike<number>,
  options: DirichletOptions,
  rng: Rng,
): Uint32Array[] {
  _checkRng(rng);
  const maxLabel = _checkLabels(labels);
  const { clients, alpha, classes = maxLabel + 1 } = options;
  _checkClients(clients, labels.length);
  if (!(alpha > 0) || !Number.isFinite(alpha)) {
    throw new RangeError(`Alpha must be positive and finite, got ${alpha}`);
  }
  if (!Number.isSafeInteger(classes) || classes < 1) {
    throw new RangeError(`Classes must be a positive integer, got ${classes}`);
  }
  if (maxLabel >= classes) {
    throw new RangeError(`Label ${maxLabel} is outside [0, ${classes})`);
  }
  const members: number[][] = Array.from({ length: classes }, () => []);
  for (let i = 0; i < labels.length; i++) members[labels[i]!]!.push(i);
  const pieces: Uint32Array[][] = Array.from({ length: clients }, () => []);
  for (const indices of members) {
    const order = rng.shuffle(Uint32Array.from(indices));
    const counts = _apportion(_dirichlet(clients, alpha, rng), order.length);
    let start = 0;
    counts.forEach((count, c) => {
      pieces[c]!.push(order.subarray(start, start + count));
      start += count;
    });
  }
  return pieces.map(_concat);
}

/**
 * Partitions by scheme name: `iid` calls {@linkcode partitionIid} with `labels.length`,
 * `shards` {@linkcode partitionShards}, `dirichlet` {@linkcode partitionDirichlet}; the same
 * generator state gives the same result as the direct call.
 *
 * @param labels Class labels, one per example.
 * @param options The `scheme`, `clients`, and the scheme's own options.
 * @param rng The generator; it advances.
 * @returns One array of example indices per client.
 * @throws {TypeError} If `rng` is not an {@linkcode Rng}.
 * @throws {RangeError} If the scheme is unknown, `dirichlet` lacks `alpha`, or the chosen
 *   partitioner rejects its arguments.
 *
 * @example Usage
 * ```ts
 * import { partition, Rng } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const labels = Int32Array.from({ length: 600 }, (_, i) => i % 10);
 * const parts = partition(labels, { scheme: "shards", clients: 10 }, new Rng(5));
 * strictEqual(parts.length, 10);
 * ```
 */
export function partition(
  labels: ArrayLike<number>,
  options: PartitionOptions,
  rng: Rng,
): Uint32Array[] {
  const { scheme, clients, shardsPerClient, alpha, classes } = options;
  switch (scheme) {
    case "iid":
      return partitionIid(labels.length, { clients }, rng);
    case "shards":
      return partitionShards(labels, { clients, shardsPerClient }, rng);
    case "dirichlet":
      if (alpha === undefined) {
        throw new RangeError("Dirichlet partitioning needs alpha");
      }
      return partitionDirichlet(labels, { clients, alpha, classes }, rng);
    default:
      throw new RangeError(`Unknown partition scheme ${JSON.stringify(scheme)}`);
  }
}

function _checkRng(rng: Rng): void {
  if (!(rng instanceof Rng)) throw new TypeError("Partitioning needs an Rng");
}

function _checkClients(clients: number, n: number): void {
  if (!Number.isSafeInteger(clients) || clients < 1) {
    throw new RangeError(`Clients must be a positive integer, got ${clients}`);
  }
  if (clients > n) {
    throw new RangeError(`Cannot split ${n} examples among ${clients} clients`);
  }
}

/** Checks that every label is a non-negative integer and returns the largest (-1 if none). */
function _checkLabels(labels: ArrayLike<number>): number {
  let max = -1;
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (!Number.isSafeInteger(label) || label < 0) {
      throw new RangeError(`Label ${label} of example ${i} is not a non-negative integer`);
    }
    if (label > max) max = label;
  }
  return max;
}

/** Consecutive blocks of `order`: block p is [floor(p n / parts), floor((p + 1) n / parts)). */
function _blocks(order: Uint32Array, parts: number): Uint32Array[] {
  const n = order.length;
  return Array.from(
    { length: parts },
    (_, p) => order.slice(Math.floor(p * n / parts), Math.floor((p + 1) * n / parts)),
  );
}

function _concat(arrays: Uint32Array[]): Uint32Array {
  const out = new Uint32Array(arrays.reduce((sum, a) => sum + a.length, 0));
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

/** A Dirichlet(alpha, ..., alpha) sample of `k` shares that sum to 1. */
function _dirichlet(k: number, alpha: number, rng: Rng): number[] {
  // log Gamma(alpha) variates; below 1 through Gamma(alpha) = Gamma(alpha + 1) U^(1/alpha).
  const logs = Array.from({ length: k }, () => {
    if (alpha >= 1) return Math.log(rng.gamma(alpha));
    const u = 1 - rng.float(); // (0, 1]
    return Math.log(rng.gamma(alpha + 1)) + Math.log(u) / alpha;
  });
  const top = logs.reduce((a, b) => Math.max(a, b), -Infinity);
  const weights = logs.map((l) => Math.exp(l - top));
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

/** Splits `m` items by `shares` (summing to 1) with the largest-remainder method. */
function _apportion(shares: number[], m: number): number[] {
  const quotas = shares.map((p) => p * m);
  const counts = quotas.map(Math.floor);
  const left = m - counts.reduce((a, b) => a + b, 0);
  const byRemainder = quotas
    .map((q, c) => ({ c, r: q - counts[c]! }))
    .sort((a, b) => b.r - a.r || a.c - b.c);
  for (let i = 0; i < left; i++) counts[byRemainder[i]!.c]! += 1;
  return counts;
}
