/**
 * The CipherState object (Noise Protocol Framework, revision 34, section 5.1): a cipher key `k`
 * and a 64-bit nonce `n`, encrypting and decrypting with AES-256-GCM (section 12.4). Both
 * directions of a transport session are CipherStates, from `split`.
 *
 * Limits (sections 3, 5.1, 11.3):
 *
 * - A message is at most 65535 bytes, tag included, when written and when read.
 * - The nonce never wraps: 2^64-1 is reserved, so once `n` reaches it every `encryptWithAd` and
 *   `decryptWithAd` throws `nonce-exhausted`. At one message a nanosecond that is 584 years
 *   away; `rekey` does not reset the nonce, a new handshake does.
 * - `rekey` replaces `k` with `REKEY(k)`: the first 32 bytes of `ENCRYPT(k, 2^64-1, "", 32 zero
 *   bytes)` (section 4.2); both sides must rekey at the same message.
 *
 * The raw key is imported into WebCrypto once, on first use, and wiped when the key is replaced
 * or the state destroyed.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import {
  checkBytes,
  decrypt,
  encrypt,
  importCipherKey,
  KEYLEN,
  MAX_MESSAGE_LEN,
  MAX_NONCE,
  TAGLEN,
} from "./crypto.ts";
import { HandshakeError } from "./errors.ts";

const _EMPTY = new Uint8Array(0);

/**
 * A cipher key and its nonce: Noise's CipherState.
 *
 * Await each call before the next one on the same state: the nonce is taken when a call starts,
 * so overlapping calls never share a nonce, but they may finish out of order.
 *
 * @example Usage
 * ```ts
 * import { CipherState } from "@fedgpu/fedgpu/noise";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const key = crypto.getRandomValues(new Uint8Array(32));
 * const sender = new CipherState();
 * const receiver = new CipherState();
 * sender.initializeKey(key);
 * receiver.initializeKey(key);
 * const ad = new TextEncoder().encode("header");
 * const message = await sender.encryptWithAd(ad, new Uint8Array([1, 2, 3]));
 * deepStrictEqual(await receiver.decryptWithAd(ad, message), new Uint8Array([1, 2, 3]));
 * ```
 */
export class CipherState {
  #k: Uint8Array | undefined;
  #key: Promise<CryptoKey> | undefined;
  #n = 0n;
  #destroyed = false;

  /**
   * `InitializeKey(key)`: sets `k` (copied) and resets `n` to 0; the previous key is wiped.
   * Without a key, `encryptWithAd` and `decryptWithAd` return their input unchanged.
   *
   * @param key The 32-byte key, or `undefined` for no key (Noise's `empty`).
   * @throws {RangeError} If the key is not 32 bytes.
   * @throws {HandshakeError} `state` if the state was destroyed.
   */
  initializeKey(key: Uint8Array | undefined): void {
    this.#checkAlive();
    if (key !== undefined) checkBytes(key, KEYLEN, "cipher key");
    this.#wipe();
    this.#k = key?.slice();
    this.#n = 0n;
  }

  /**
   * `HasKey()`.
   *
   * @returns Whether `k` is set.
   */
  hasKey(): boolean {
    return this.#k !== undefined;
  }

  /**
   * The nonce the next message will use.
   *
   * @returns `n`.
   */
  get nonce(): bigint {
    return this.#n;
  }

  /**
   * `SetNonce(nonce)`: for out-of-order transport messages (section 11.4), where the nonce
   * travels with each message and the application rejects replays.
   *
   * @param nonce The new `n`, an integer from 0 to 2^64-1.
   * @throws {RangeError} If `nonce` is not such an integer.
   * @throws {HandshakeError} `state` if the state was destroyed.
   */
  setNonce(nonce: bigint | number): void {
    this.#checkAlive();
    if (typeof nonce === "number" && !Number.isSafeInteger(nonce)) {
      throw new RangeError(`A nonce must be an integer, got ${nonce}`);
    }
    const n = BigInt(nonce);
    if (n < 0n || n > MAX_NONCE) throw new RangeError(`A nonce must be 0 to 2^64-1, got ${n}`);
    this.#n = n;
  }

  /**
   * `EncryptWithAd(ad, plaintext)`: `ENCRYPT(k, n++, ad, plaintext)`, or `plaintext` (copied)
   * when there is no key.
   *
   * @param ad The associated data.
   * @param plaintext The bytes to encrypt.
   * @returns The ciphertext with its 16-byte tag.
   * @throws {HandshakeError} `message-too-large` if the result would exceed 65535 bytes,
   *   `nonce-exhausted` once `n` has reached 2^64-1, `state` if the state was destroyed.
   */
  async encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
    this.#checkAlive();
    const tag = this.hasKey() ? TAGLEN : 0;
    if (plaintext.length + tag > MAX_MESSAGE_LEN) {
      throw new HandshakeError(
        "message-too-large",
        `A Noise message is at most ${MAX_MESSAGE_LEN} bytes, got ${plaintext.length + tag}`,
      );
    }
    if (!this.hasKey()) return plaintext.slice();
    const n = this.#takeNonce();
    return await encrypt(await this.#cryptoKey(), n, ad, plaintext);
  }

  /**
   * `DecryptWithAd(ad, ciphertext)`: `DECRYPT(k, n++, ad, ciphertext)`, or `ciphertext`
   * (copied) when there is no key. On an authentication failure `n` is left as it was, as
   * section 5.1 asks, so a caller may drop the message and go on.
   *
   * @param ad The associated data.
   * @param ciphertext The ciphertext with its 16-byte tag.
   * @returns The plaintext.
   * @throws {HandshakeError} `decrypt` if authentication fails, `message-too-large` over 65535
   *   bytes, `message-too-short` without room for a tag, `nonce-exhausted` once `n` has reached
   *   2^64-1, `state` if the state was destroyed.
   */
  async decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
    this.#checkAlive();
    if (ciphertext.length > MAX_MESSAGE_LEN) {
      throw new HandshakeError(
        "message-too-large",
        `A Noise message is at most ${MAX_MESSAGE_LEN} bytes, got ${ciphertext.length}`,
      );
    }
    if (!this.hasKey()) return ciphertext.slice();
    if (ciphertext.length < TAGLEN) {
      throw new HandshakeError(
        "message-too-short",
        `A ciphertext holds at least its ${TAGLEN}-byte tag, got ${ciphertext.length} bytes`,
      );
    }
    const n = this.#takeNonce();
    try {
      return await decrypt(await this.#cryptoKey(), n, ad, ciphertext);
    } catch (error) {
      if (this.#n === n + 1n) this.#n = n;
      throw error;
    }
  }

  /**
   * `Rekey()`: sets `k` to `REKEY(k)`, keeping `n` (sections 4.2 and 11.3). The old key is wiped.
   *
   * @throws {HandshakeError} `state` if there is no key or the state was destroyed.
   */
  async rekey(): Promise<void> {
    this.#checkAlive();
    if (!this.hasKey()) throw new HandshakeError("state", "Rekey needs a cipher key");
    const block = await encrypt(await this.#cryptoKey(), MAX_NONCE, _EMPTY, new Uint8Array(KEYLEN));
    this.#wipe();
    this.#k = block.slice(0, KEYLEN);
    block.fill(0);
  }

  /**
   * Wipes the key; every later call throws `state`. Call it when the session ends.
   */
  destroy(): void {
    this.#wipe();
    this.#destroyed = true;
  }

  #checkAlive(): void {
    if (this.#destroyed) throw new HandshakeError("state", "This cipher state was destroyed");
  }

  #takeNonce(): bigint {
    if (this.#n >= MAX_NONCE) {
      throw new HandshakeError(
        "nonce-exhausted",
        "The nonce reached 2^64-1: rekeying is not enough, run a new handshake",
      );
    }
    return this.#n++;
  }

  #cryptoKey(): Promise<CryptoKey> {
    this.#key ??= importCipherKey(this.#k!);
    return this.#key;
  }

  #wipe(): void {
    this.#k?.fill(0);
    this.#k = undefined;
    this.#key = undefined;
  }
}
