/**
 * The Noise Protocol Framework (revision 34) as fedgpu implements it: `CipherState`,
 * `SymmetricState`, `HandshakeState`, the handshake patterns, the 25519/AESGCM/SHA256 suite,
 * and the cacophony test-vector runner.
 *
 * @example Usage
 * ```ts
 * import { parseProtocolName } from "@fedgpu/fedgpu/noise";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(parseProtocolName("Noise_XX_25519_AESGCM_SHA256").name, "XX");
 * ```
 *
 * This module needs Deno.
 *
 * @module
 */

export { HandshakeError, type HandshakeErrorCode } from "./errors.ts";
export {
  decrypt,
  dh,
  DHLEN,
  encrypt,
  generateKeyPair,
  hash,
  HASHLEN,
  hkdf,
  importCipherKey,
  KEYLEN,
  type KeyPair,
  keyPairFromSecretKey,
  MAX_MESSAGE_LEN,
  MAX_NONCE,
  TAGLEN,
} from "./crypto.ts";
export { CipherState } from "./cipher_state.ts";
export { SymmetricState } from "./symmetric_state.ts";
export {
  HandshakeState,
  type HandshakeStateOptions,
  type HandshakeStatus,
} from "./handshake_state.ts";
export {
  type HandshakePattern,
  handshakePattern,
  parseProtocolName,
  PATTERN_NAMES,
  type PreMessageToken,
  SUITE,
  type Token,
} from "./patterns.ts";
export {
  loadVectorFile,
  type NoiseVector,
  type NoiseVectorMessage,
  parseVectorFile,
  runVector,
} from "./vectors.ts";
