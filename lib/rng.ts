/**
 * The one seeded random number generator of the library.
 *
 * xoshiro128** 1.1 (D. Blackman, S. Vigna, "Scrambled Linear Pseudorandom Number Generators",
 * ACM TOMS 2021). Its 128-bit state is the first 16 bytes (four little-endian 32-bit words) of
 * SHA-256 over the ASCII tag `fedgpu-rng/v1` followed by the seed and each stream key as 8-byte
 * big-endian integers. Distinct (seed, stream) pairs thus get unrelated states, with no
 * collisions to worry about; the same pair gives the same numbers on every platform, since all
 * arithmetic is on 32-bit integers and floats are built from integer bits.
 *
 * Not for cryptography: secrets come from `crypto.getRandomValues`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";

const _MAX_SEED = Number.MAX_SAFE_INTEGER;
const _TAG = new TextEncoder().encode("fedgpu-rng/v1");

function _checkKey(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > _MAX_SEED) {
    throw new RangeError(`${name} must be an integer in [0, 2^53), got ${value}`);
  }
}

/**
 * A seeded generator of uniform, normal and gamma variates, permutations and shuffles.
 *
 * @example Usage
 * ```ts
 * import { Rng } from "@fedgpu/fedgpu";
 * import { strictEqual } from "node:assert/strict";
 *
 * const a = new Rng(42);
 * const b = new Rng(42);
 * strictEqual(a.float(), b.float());
 * // Independent streams: round 3, client 7 of the run seeded 42.
 * const c = new Rng(42, [3, 7]);
 * strictEqual(c.int(10) < 10, true);
 * ```
 */
export class Rng {
  #s = new Uint32Array(4);
  #spareNormal: number | undefined = undefined;

  /**
   * Creates a generator.
   *
   * @param seed An integer in [0, 2^53).
   * @param stream A path of integers in [0, 2^53) naming an independent stream of the seed,
   *   such as `[round, client]`; generators with different paths are uncorrelated.
   * @throws {RangeError} If the seed or a path element is not an integer in range.
   */
  constructor(seed: number, stream: readonly number[] = []) {
    _checkKey(seed, "Seed");
    const keys = [seed, ...stream];
    const message = new Uint8Array(_TAG.length + 8 * keys.length);
    message.set(_TAG);
    const view = new DataView(message.buffer);
    keys.forEach((key, i) => {
      _checkKey(key, "Stream key");
      view.setUint32(_TAG.length + 8 * i, Math.floor(key / 0x100000000));
      view.setUint32(_TAG.length + 8 * i + 4, key >>> 0);
    });
    const digest = new DataView(sha256(message).buffer);
    for (let i = 0; i < 4; i++) this.#s[i] = digest.getUint32(4 * i, true);
    // xoshiro's all-zero state is a fixed point (probability 2^-128, but cheap to rule out).
    if ((this.#s[0]! | this.#s[1]! | this.#s[2]! | this.#s[3]!) === 0) this.#s[0] = 1;
  }

  /**
   * A generator for a sub-stream of this one, derived from its next output and `keys`.
   * Advances this generator by one step.
   *
   * @param keys Integers naming the sub-stream.
   * @returns A new, independent generator.
   */
  fork(keys: readonly number[] = []): Rng {
    return new Rng(this.u32(), keys);
  }

  /** The next uniformly distributed unsigned 32-bit integer. */
  u32(): number {
    const s = this.#s;
    const s0 = s[0]!, s1 = s[1]!, s2 = s[2]! ^ s0, s3 = s[3]! ^ s1;
    const result = Math.imul(_rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    s[0] = s0 ^ s3;
    s[1] = s1 ^ s2;
    s[2] = s2 ^ (s1 << 9);
    s[3] = _rotl(s3, 11);
    return result;
  }

  /** A uniform float64 in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.u32() >>> 5; // 27 bits
    const lo = this.u32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /**
   * A uniform integer in [0, n), without modulo bias (rejection sampling).
   *
   * @param n The exclusive upper bound, an integer in [1, 2^32].
   * @throws {RangeError} If `n` is out of range.
   */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0x100000000) {
      throw new RangeError(`Bound must be an integer in [1, 2^32], got ${n}`);
    }
    // Accept values below the largest multiple of n that fits in 2^32.
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.u32();
      if (x < limit) return x % n;
    }
  }

  /** A standard normal variate (Marsaglia's polar method). */
  normal(): number {
    if (this.#spareNormal !== undefined) {
      const spare = this.#spareNormal;
      this.#spareNormal = undefined;
      return spare;
    }
    for (;;) {
      const u = 2 * this.float() - 1;
      const v = 2 * this.float() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) {
        const f = Math.sqrt(-2 * Math.log(s) / s);
        this.#spareNormal = v * f;
        return u * f;
      }
    }
  }

  /**
   * A Gamma(shape, 1) variate (Marsaglia and Tsang, ACM TOMS 2000; shape < 1 by the
   * `Gamma(shape + 1) * U^(1/shape)` boost).
   *
   * For shapes far below 1 the result can underflow to 0; work in log space there (as
   * `partitionDirichlet` does).
   *
   * @param shape The shape parameter, > 0.
   * @throws {RangeError} If `shape` is not positive and finite.
   */
  gamma(shape: number): number {
    if (!(shape > 0) || !Number.isFinite(shape)) {
      throw new RangeError(`Gamma shape must be positive and finite, got ${shape}`);
    }
    if (shape < 1) {
      const u = this.float();
      return this.gamma(shape + 1) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.float();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /**
   * Shuffles `array` in place (Fisher–Yates).
   *
   * @param array The array to shuffle.
   * @returns The same array.
   */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /**
   * A uniformly random permutation of 0..n-1.
   *
   * @param n The length, a non-negative integer below 2^32.
   * @returns The permutation.
   * @throws {RangeError} If `n` is out of range.
   */
  permutation(n: number): Uint32Array {
    if (!Number.isInteger(n) || n < 0 || n >= 0x100000000) {
      throw new RangeError(`Permutation length must be an integer in [0, 2^32), got ${n}`);
    }
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    return this.shuffle(out);
  }
}

function _rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
