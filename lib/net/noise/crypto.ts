/**
 * The crypto functions of `Noise_*_25519_AESGCM_SHA256` (Noise Protocol Framework, revision 34,
 * section 4): X25519 for `GENERATE_KEYPAIR` and `DH` (section 12.1), AES-256-GCM for `ENCRYPT`
 * and `DECRYPT` (section 12.4), SHA-256 for `HASH` with `HMAC-HASH` and `HKDF` built on it
 * (sections 4.3 and 12.5).
 *
 * X25519 and SHA-256 come from @noble; AES-GCM runs in WebCrypto, so `ENCRYPT` and `DECRYPT`
 * are async and take a non-extractable `CryptoKey`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { x25519 } from "@noble/curves/ed25519.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { HandshakeError } from "./errors.ts";

/** DHLEN: bytes of an X25519 public key and of a DH output (section 4.1). */
export const DHLEN = 32;
/** HASHLEN: bytes of a SHA-256 output (section 4.3). */
export const HASHLEN = 32;
/** Bytes of a cipher key (section 4.2). */
export const KEYLEN = 32;
/** Bytes of the authentication tag that `ENCRYPT` appends (section 4.2). */
export const TAGLEN = 16;
/** The largest Noise message, handshake or transport, in bytes (section 3). */
export const MAX_MESSAGE_LEN = 65535;
/** The nonce 2^64-1, which Noise reserves: no message is ever sent with it (section 5.1). */
export const MAX_NONCE = 2n ** 64n - 1n;

/** An X25519 key pair. */
export interface KeyPair {
  /** The public key, {@linkcode DHLEN} bytes. */
  readonly publicKey: Uint8Array;
  /** The secret key, 32 bytes. */
  readonly secretKey: Uint8Array;
}

/**
 * Checks that `bytes` is a `Uint8Array` of `length` bytes.
 *
 * @param bytes The value to check.
 * @param length The length it must have.
 * @param what What it is, for the message.
 * @throws {TypeError} If it is not a `Uint8Array`.
 * @throws {RangeError} If it has another length.
 */
export function checkBytes(bytes: unknown, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`The ${what} must be a Uint8Array`);
  if (bytes.length !== length) {
    throw new RangeError(`The ${what} must be ${length} bytes, got ${bytes.length}`);
  }
}

/**
 * `GENERATE_KEYPAIR()`: a fresh X25519 key pair from the system's secure random source.
 *
 * @returns The key pair.
 *
 * @example Usage
 * ```ts
 * import { generateKeyPair } from "@fedgpu/fedgpu/noise";
 * import { strictEqual } from "node:assert/strict";
 *
 * const { publicKey, secretKey } = generateKeyPair();
 * strictEqual(publicKey.length + secretKey.length, 64);
 * ```
 */
export function generateKeyPair(): KeyPair {
  const secretKey = x25519.utils.randomSecretKey();
  return { publicKey: x25519.getPublicKey(secretKey), secretKey };
}

/**
 * The key pair of an X25519 secret key.
 *
 * @param secretKey The 32-byte secret key (copied).
 * @returns The key pair.
 * @throws {RangeError} If the key is not 32 bytes.
 *
 * @example Usage
 * ```ts
 * import { generateKeyPair, keyPairFromSecretKey } from "@fedgpu/fedgpu/noise";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const pair = generateKeyPair();
 * deepStrictEqual(keyPairFromSecretKey(pair.secretKey).publicKey, pair.publicKey);
 * ```
 */
export function keyPairFromSecretKey(secretKey: Uint8Array): KeyPair {
  checkBytes(secretKey, 32, "X25519 secret key");
  return { publicKey: x25519.getPublicKey(secretKey), secretKey: secretKey.slice() };
}

/**
 * `DH(key_pair, public_key)`: the X25519 shared secret of a key pair and a public key.
 *
 * A public key of low order gives the all-zero output, which is rejected (section 12.1 allows
 * this; it stops a peer from forcing a known shared secret).
 *
 * @param keyPair The local key pair.
 * @param publicKey The remote public key, {@linkcode DHLEN} bytes.
 * @returns The {@linkcode DHLEN}-byte shared secret.
 * @throws {RangeError} If a key is not 32 bytes.
 * @throws {HandshakeError} `bad-key` if the output is all zeros.
 *
 * @example Usage
 * ```ts
 * import { dh, generateKeyPair } from "@fedgpu/fedgpu/noise";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const alice = generateKeyPair();
 * const bob = generateKeyPair();
 * deepStrictEqual(dh(alice, bob.publicKey), dh(bob, alice.publicKey));
 * ```
 */
export function dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array {
  checkBytes(keyPair.secretKey, 32, "X25519 secret key");
  checkBytes(publicKey, DHLEN, "X25519 public key");
  try {
    return x25519.getSharedSecret(keyPair.secretKey, publicKey);
  } catch (cause) {
    // noble refuses the all-zero output, the only way X25519 fails on well-sized keys.
    throw new HandshakeError(
      "bad-key",
      "X25519 gave an all-zero shared secret: the public key is of low order",
      { cause },
    );
  }
}

/**
 * `HASH(data)`: SHA-256.
 *
 * @param data The bytes to hash.
 * @returns The {@linkcode HASHLEN}-byte digest.
 *
 * @example Usage
 * ```ts
 * import { hash } from "@fedgpu/fedgpu/noise";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(hash(new Uint8Array(0))[0], 0xe3);
 * ```
 */
export function hash(data: Uint8Array): Uint8Array {
  return sha256(data);
}

/**
 * `HKDF(chaining_key, input_key_material, num_outputs)` exactly as section 4.3 defines it:
 * `temp_key = HMAC-HASH(chaining_key, input_key_material)`, then
 * `output1 = HMAC-HASH(temp_key, 0x01)`, `output2 = HMAC-HASH(temp_key, output1 || 0x02)` and,
 * for three outputs, `output3 = HMAC-HASH(temp_key, output2 || 0x03)`. The temporary key is
 * wiped before returning.
 *
 * @param chainingKey The {@linkcode HASHLEN}-byte chaining key.
 * @param inputKeyMaterial Zero or 32 bytes (DHLEN) of key material.
 * @param numOutputs 2 or 3.
 * @returns The outputs, each {@linkcode HASHLEN} bytes.
 * @throws {RangeError} If the chaining key is not 32 bytes, the key material is neither empty
 *   nor 32 bytes, or `numOutputs` is not 2 or 3.
 *
 * @example Usage
 * ```ts
 * import { hkdf } from "@fedgpu/fedgpu/noise";
 * import { strictEqual } from "node:assert/strict";
 *
 * const [ck, k] = hkdf(new Uint8Array(32), new Uint8Array(32), 2);
 * strictEqual(ck!.length + k!.length, 64);
 * ```
 */
export function hkdf(
  chainingKey: Uint8Array,
  inputKeyMaterial: Uint8Array,
  numOutputs: 2 | 3,
): Uint8Array[] {
  checkBytes(chainingKey, HASHLEN, "chaining key");
  if (inputKeyMaterial.length !== 0 && inputKeyMaterial.length !== DHLEN) {
    throw new RangeError(
      `HKDF key material must be 0 or ${DHLEN} bytes, got ${inputKeyMaterial.length}`,
    );
  }
  if (numOutputs !== 2 && numOutputs !== 3) {
    throw new RangeError(`HKDF gives 2 or 3 outputs, not ${numOutputs}`);
  }
  const tempKey = hmac(sha256, chainingKey, inputKeyMaterial);
  const outputs: Uint8Array[] = [];
  let previous = new Uint8Array(0);
  for (let i = 1; i <= numOutputs; i++) {
    const input = new Uint8Array(previous.length + 1);
    input.set(previous);
    input[previous.length] = i;
    previous = hmac(sha256, tempKey, input);
    input.fill(0);
    outputs.push(previous);
  }
  tempKey.fill(0);
  return outputs;
}

/** `bytes` as WebCrypto takes it: a view of an `ArrayBuffer` (copied from a shared one). */
function _view(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : bytes.slice();
}

/**
 * Imports a raw 32-byte key for AES-256-GCM as a non-extractable WebCrypto key.
 *
 * @param key The {@linkcode KEYLEN}-byte key (not kept: WebCrypto copies it).
 * @returns The key, for {@linkcode encrypt} and {@linkcode decrypt}.
 * @throws {RangeError} If the key is not 32 bytes.
 *
 * @example Usage
 * ```ts
 * import { importCipherKey } from "@fedgpu/fedgpu/noise";
 * import { strictEqual } from "node:assert/strict";
 *
 * const key = await importCipherKey(new Uint8Array(32));
 * strictEqual(key.extractable, false);
 * ```
 */
export function importCipherKey(key: Uint8Array): Promise<CryptoKey> {
  checkBytes(key, KEYLEN, "cipher key");
  return crypto.subtle.importKey("raw", _view(key), "AES-GCM", false, ["encrypt", "decrypt"]);
}

/** The 96-bit GCM nonce of section 12.4: 32 zero bits, then `n` as a big-endian 64-bit integer. */
function _nonce(n: bigint): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, n);
  return iv;
}

/**
 * `ENCRYPT(k, n, ad, plaintext)`: AES-256-GCM with the nonce of section 12.4 and a 16-byte tag.
 *
 * @param key The key, from {@linkcode importCipherKey}.
 * @param n The nonce, 0 to 2^64-1.
 * @param ad The associated data.
 * @param plaintext The bytes to encrypt.
 * @returns The ciphertext followed by the {@linkcode TAGLEN}-byte tag.
 *
 * @example Usage
 * ```ts
 * import { encrypt, importCipherKey } from "@fedgpu/fedgpu/noise";
 * import { strictEqual } from "node:assert/strict";
 *
 * const key = await importCipherKey(new Uint8Array(32));
 * const ciphertext = await encrypt(key, 0n, new Uint8Array(0), new Uint8Array(5));
 * strictEqual(ciphertext.length, 5 + 16);
 * ```
 */
export async function encrypt(
  key: CryptoKey,
  n: bigint,
  ad: Uint8Array,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const params = { name: "AES-GCM", iv: _nonce(n), additionalData: _view(ad), tagLength: 128 };
  return new Uint8Array(await crypto.subtle.encrypt(params, key, _view(plaintext)));
}

/**
 * `DECRYPT(k, n, ad, ciphertext)`: AES-256-GCM decryption, checking the tag.
 *
 * @param key The key, from {@linkcode importCipherKey}.
 * @param n The nonce, 0 to 2^64-1.
 * @param ad The associated data.
 * @param ciphertext The ciphertext followed by its tag.
 * @returns The plaintext.
 * @throws {HandshakeError} `decrypt` if authentication fails.
 *
 * @example Usage
 * ```ts
 * import { decrypt, encrypt, importCipherKey } from "@fedgpu/fedgpu/noise";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const key = await importCipherKey(new Uint8Array(32));
 * const ad = new Uint8Array([1]);
 * const ciphertext = await encrypt(key, 7n, ad, new Uint8Array([2, 3]));
 * deepStrictEqual(await decrypt(key, 7n, ad, ciphertext), new Uint8Array([2, 3]));
 * ```
 */
export async function decrypt(
  key: CryptoKey,
  n: bigint,
  ad: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  const params = { name: "AES-GCM", iv: _nonce(n), additionalData: _view(ad), tagLength: 128 };
  try {
    return new Uint8Array(await crypto.subtle.decrypt(params, key, _view(ciphertext)));
  } catch (cause) {
    throw new HandshakeError("decrypt", "Decryption failed: the message is not authentic", {
      cause,
    });
  }
}
