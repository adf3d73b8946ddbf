/**
 * The SymmetricState object (Noise Protocol Framework, revision 34, section 5.2): the chaining
 * key `ck` and the handshake hash `h` beside a {@linkcode CipherState}. Every DH output goes
 * through `mixKey`; every byte sent or received goes through `mixHash`, so both sides end with
 * the same keys only if they saw the same handshake.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { CipherState } from "./cipher_state.ts";
import { hash, HASHLEN, hkdf } from "./crypto.ts";
import { HandshakeError } from "./errors.ts";

const _EMPTY = new Uint8Array(0);

/**
 * Noise's SymmetricState for SHA-256 and AES-256-GCM. The constructor is
 * `InitializeSymmetric(protocol_name)`.
 *
 * @example Usage
 * ```ts
 * import { SymmetricState } from "@fedgpu/fedgpu/noise";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const name = "Noise_NN_25519_AESGCM_SHA256";
 * const alice = new SymmetricState(name);
 * const bob = new SymmetricState(name);
 * const secret = crypto.getRandomValues(new Uint8Array(32));
 * alice.mixKey(secret);
 * bob.mixKey(secret);
 * const sealed = await alice.encryptAndHash(new Uint8Array([42]));
 * deepStrictEqual(await bob.decryptAndHash(sealed), new Uint8Array([42]));
 * deepStrictEqual(alice.getHandshakeHash(), bob.getHandshakeHash());
 * ```
 */
export class SymmetricState {
  #cipher = new CipherState();
  #ck: Uint8Array;
  #h: Uint8Array;
  #destroyed = false;

  /**
   * `InitializeSymmetric(protocol_name)`: `h` is the name's bytes padded with zeros to 32 bytes
   * when it fits, else `HASH(name)`; `ck = h`; no cipher key.
   *
   * @param protocolName The full protocol name, such as `Noise_XX_25519_AESGCM_SHA256`.
   * @throws {TypeError} If the name is not ASCII.
   */
  constructor(protocolName: string) {
    if (!/^[\x20-\x7e]*$/.test(protocolName)) {
      throw new TypeError(
        `A protocol name is printable ASCII, got ${JSON.stringify(protocolName)}`,
      );
    }
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= HASHLEN) {
      this.#h = new Uint8Array(HASHLEN);
      this.#h.set(name);
    } else {
      this.#h = hash(name);
    }
    this.#ck = this.#h.slice();
  }

  /**
   * `MixKey(input_key_material)`: `ck, temp_k = HKDF(ck, input_key_material, 2)`, then
   * `InitializeKey(temp_k)`. The old chaining key and `temp_k` are wiped.
   *
   * @param inputKeyMaterial A DH output (32 bytes) or nothing.
   * @throws {RangeError} If the key material is neither empty nor 32 bytes.
   * @throws {HandshakeError} `state` after `destroy`.
   */
  mixKey(inputKeyMaterial: Uint8Array): void {
    this.#checkAlive();
    const [ck, tempK] = hkdf(this.#ck, inputKeyMaterial, 2) as [Uint8Array, Uint8Array];
    this.#cipher.initializeKey(tempK);
    tempK.fill(0);
    this.#replaceChainingKey(ck);
  }

  /**
   * `MixHash(data)`: `h = HASH(h || data)`.
   *
   * @param data The bytes to mix in.
   */
  mixHash(data: Uint8Array): void {
    const input = new Uint8Array(HASHLEN + data.length);
    input.set(this.#h);
    input.set(data, HASHLEN);
    this.#h = hash(input);
  }

  /**
   * `MixKeyAndHash(input_key_material)`: `ck, temp_h, temp_k = HKDF(ck, input_key_material, 3)`,
   * `MixHash(temp_h)`, `InitializeKey(temp_k)`. Noise uses it for pre-shared keys (section 9).
   *
   * @param inputKeyMaterial 32 bytes of key material or nothing.
   * @throws {RangeError} If the key material is neither empty nor 32 bytes.
   * @throws {HandshakeError} `state` after `destroy`.
   */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    this.#checkAlive();
    const [ck, tempH, tempK] = hkdf(this.#ck, inputKeyMaterial, 3) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    this.mixHash(tempH);
    this.#cipher.initializeKey(tempK);
    tempH.fill(0);
    tempK.fill(0);
    this.#replaceChainingKey(ck);
  }

  /**
   * `GetHandshakeHash()`: `h`, the transcript hash; after the handshake it identifies the
   * session (channel binding, section 11.2).
   *
   * @returns A copy of `h`.
   */
  getHandshakeHash(): Uint8Array {
    return this.#h.slice();
  }

  /**
   * Whether the cipher has a key, so that `encryptAndHash` encrypts (and adds a 16-byte tag).
   *
   * @returns `HasKey()` of the cipher state.
   */
  hasKey(): boolean {
    return this.#cipher.hasKey();
  }

  /**
   * `EncryptAndHash(plaintext)`: `ciphertext = EncryptWithAd(h, plaintext)`, then
   * `MixHash(ciphertext)`. Without a key the plaintext goes out as it is.
   *
   * @param plaintext The bytes to send.
   * @returns The bytes to put in the message.
   * @throws {HandshakeError} As `CipherState.encryptWithAd` does.
   */
  async encryptAndHash(plaintext: Uint8Array): Promise<Uint8Array> {
    const ciphertext = await this.#cipher.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /**
   * `DecryptAndHash(ciphertext)`: `plaintext = DecryptWithAd(h, ciphertext)`, then
   * `MixHash(ciphertext)`.
   *
   * @param ciphertext The bytes from the message.
   * @returns The plaintext.
   * @throws {HandshakeError} `decrypt` if authentication fails, or as
   *   `CipherState.decryptWithAd` does otherwise.
   */
  async decryptAndHash(ciphertext: Uint8Array): Promise<Uint8Array> {
    const plaintext = await this.#cipher.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /**
   * `Split()`: `temp_k1, temp_k2 = HKDF(ck, "", 2)`; one CipherState for each direction.
   *
   * @returns `[c1, c2]`: c1 encrypts from initiator to responder, c2 the other way.
   * @throws {HandshakeError} `state` after `destroy`.
   */
  split(): [CipherState, CipherState] {
    this.#checkAlive();
    const [k1, k2] = hkdf(this.#ck, _EMPTY, 2) as [Uint8Array, Uint8Array];
    const c1 = new CipherState();
    const c2 = new CipherState();
    c1.initializeKey(k1);
    c2.initializeKey(k2);
    k1.fill(0);
    k2.fill(0);
    return [c1, c2];
  }

  /**
   * Wipes `ck` and the cipher key; `h` stays readable. Later `mixKey`, `mixKeyAndHash`,
   * `encryptAndHash`, `decryptAndHash` and `split` calls throw `state`.
   */
  destroy(): void {
    this.#ck.fill(0);
    this.#cipher.destroy();
    this.#destroyed = true;
  }

  #checkAlive(): void {
    if (this.#destroyed) throw new HandshakeError("state", "This symmetric state was destroyed");
  }

  #replaceChainingKey(ck: Uint8Array): void {
    this.#ck.fill(0);
    this.#ck = ck;
  }
}
