/**
 * Identities: X25519 static key pairs, and the fingerprints that clients pin.
 *
 * A fingerprint is `SHA256:` followed by the base64 (no padding) of SHA-256 over the public
 * key, the form SSH prints. Secret keys are never printed: a key pair inspects as its
 * fingerprint alone. Persistent keys live in key files (see `key_file.ts`).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { x25519 } from "@noble/curves/ed25519.js";

/** An X25519 key pair whose secret half never shows in logs or inspection. */
export class StaticKeyPair {
  /** The public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  #secretKey: Uint8Array;

  /**
   * Wraps a key pair.
   *
   * @param secretKey The 32-byte secret key.
   * @param publicKey The matching public key (derived when omitted).
   * @throws {RangeError} If a key is not 32 bytes or the public key does not match.
   */
  constructor(secretKey: Uint8Array, publicKey?: Uint8Array) {
    if (secretKey.length !== 32) {
      throw new RangeError(`An X25519 secret key is 32 bytes, got ${secretKey.length}`);
    }
    const derived = x25519.getPublicKey(secretKey);
    if (publicKey !== undefined && !constantTimeEqual(publicKey, derived)) {
      throw new RangeError("The public key does not match the secret key");
    }
    this.#secretKey = secretKey.slice();
    this.publicKey = derived;
  }

  /**
   * A new random key pair.
   *
   * @returns The key pair.
   */
  static generate(): StaticKeyPair {
    const secret = crypto.getRandomValues(new Uint8Array(32));
    try {
      return new StaticKeyPair(secret);
    } finally {
      secret.fill(0);
    }
  }

  /** The secret key (a copy); handle with care. */
  get secretKey(): Uint8Array {
    return this.#secretKey.slice();
  }

  /** The public key's fingerprint. */
  get fingerprint(): string {
    return fingerprint(this.publicKey);
  }

  /** Overwrites the secret key with zeros; the pair is unusable afterwards. */
  wipe(): void {
    this.#secretKey.fill(0);
  }

  /** Shows the fingerprint only. */
  toString(): string {
    return `StaticKeyPair(${this.fingerprint})`;
  }

  /** Shows the fingerprint only, in `console.log` and `Deno.inspect`. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }

  /** Shows the fingerprint only, in `JSON.stringify`. */
  toJSON(): { fingerprint: string } {
    return { fingerprint: this.fingerprint };
  }
}

/**
 * The fingerprint of a public key: `SHA256:` and the unpadded base64 of its SHA-256.
 *
 * @param publicKey The 32-byte public key.
 * @returns The fingerprint.
 */
export function fingerprint(publicKey: Uint8Array): string {
  return `SHA256:${btoa(String.fromCharCode(...sha256(publicKey))).replace(/=+$/, "")}`;
}

/**
 * Compares two byte arrays in time independent of where they differ.
 *
 * @param a One array.
 * @param b The other.
 * @returns Whether they are equal.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
