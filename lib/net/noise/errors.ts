/**
 * The error of the Noise layer (Noise Protocol Framework, revision 34): a handshake or a
 * `CipherState` that cannot go on says why with a machine-readable code. Bad
 * arguments (a key of the wrong length, a nonce out of range) are still `TypeError` /
 * `RangeError`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/**
 * Why a handshake or a cipher state failed:
 *
 * - `state`: a call out of order (reading when it is this side's turn to write, splitting
 *   before the handshake is complete), or any call after a failure, which leaves the state dead.
 * - `decrypt`: a message failed authentication (tampered, truncated inside a ciphertext, or
 *   made with other keys than the ones expected).
 * - `message-too-short`: a message shorter than its pattern's keys and tags (section 5.3).
 * - `message-too-large`: a message over 65535 bytes, the Noise limit (section 3).
 * - `bad-key`: a remote public key of low order, so that DH gives all zeros (section 12.1).
 * - `nonce-exhausted`: the nonce reached 2^64-1, the value Noise reserves (section 5.1).
 * - `unsupported`: a protocol name outside `Noise_*_25519_AESGCM_SHA256`, an unknown pattern,
 *   or a modifier (psk, fallback).
 * - `timeout`, `closed`: the secure channel's handshake was cut off (the peer stalled or hung up).
 * - `unknown-client`: a server refused a client key that is not on its allow-list.
 * - `pinned-key-mismatch`: a client refused a server key other than the one it pinned.
 */
export type HandshakeErrorCode =
  | "state"
  | "decrypt"
  | "message-too-short"
  | "message-too-large"
  | "bad-key"
  | "nonce-exhausted"
  | "unsupported"
  | "timeout"
  | "closed"
  | "unknown-client"
  | "pinned-key-mismatch";

/**
 * A failed Noise handshake or cipher operation, with a machine-readable
 * {@linkcode HandshakeErrorCode}.
 *
 * @example Usage
 * ```ts
 * import { HandshakeError, HandshakeState } from "@fedgpu/fedgpu/noise";
 * import { rejects } from "node:assert/strict";
 *
 * const initiator = new HandshakeState({ pattern: "NN", initiator: true });
 * await rejects(
 *   initiator.readMessage(new Uint8Array(32)),
 *   (error) => error instanceof HandshakeError && error.code === "state",
 * );
 * ```
 */
export class HandshakeError extends Error {
  /** Why it failed. */
  readonly code: HandshakeErrorCode;

  /**
   * Creates the error.
   *
   * @param code Why it failed.
   * @param message A sentence saying so.
   * @param options The underlying cause, if any.
   */
  constructor(code: HandshakeErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HandshakeError";
    this.code = code;
  }
}
