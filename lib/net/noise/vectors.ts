/**
 * Noise test vectors in the cacophony JSON format (`{"vectors": [...]}`, the format of the
 * Noise wiki's test vectors): each vector runs a full handshake between an initiator and a
 * responder with fixed keys (Noise Protocol Framework, revision 34, sections 5.3 and 7), checks
 * every message's bytes and the handshake hash, then the transport messages.
 *
 * Messages alternate: the initiator writes message 0, 2, 4, ... and the responder 1, 3, 5, ...,
 * handshake and transport alike; in a one-way pattern the initiator writes every message.
 *
 * This module needs Deno.
 *
 * @module
 */

import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import type { CipherState } from "./cipher_state.ts";
import { keyPairFromSecretKey } from "./crypto.ts";
import { HandshakeState } from "./handshake_state.ts";
import { parseProtocolName } from "./patterns.ts";

/** One message of a vector, in hex. */
export interface NoiseVectorMessage {
  /** The plaintext payload. */
  payload: string;
  /** The message on the wire. */
  ciphertext: string;
}

/** One test vector, with the cacophony field names; byte strings are hex. */
export interface NoiseVector {
  /** The protocol name, such as `Noise_XX_25519_AESGCM_SHA256`. */
  protocol_name: string;
  /** The initiator's prologue. */
  init_prologue?: string;
  /** The initiator's static secret key. */
  init_static?: string;
  /** The initiator's ephemeral secret key. */
  init_ephemeral?: string;
  /** The responder's static public key, as the initiator knows it beforehand. */
  init_remote_static?: string;
  /** The responder's prologue. */
  resp_prologue?: string;
  /** The responder's static secret key. */
  resp_static?: string;
  /** The responder's ephemeral secret key. */
  resp_ephemeral?: string;
  /** The initiator's static public key, as the responder knows it beforehand. */
  resp_remote_static?: string;
  /** The handshake hash both sides must end with. */
  handshake_hash?: string;
  /** The messages, handshake first, then transport. */
  messages: NoiseVectorMessage[];
}

function _bytes(hex: string | undefined, what: string): Uint8Array | undefined {
  if (hex === undefined) return undefined;
  try {
    return hexToBytes(hex);
  } catch (cause) {
    throw new TypeError(`The vector's ${what} is not hex`, { cause });
  }
}

function _keyPair(hex: string | undefined, what: string) {
  const secret = _bytes(hex, what);
  return secret === undefined ? undefined : keyPairFromSecretKey(secret);
}

function _expectEqual(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (bytesToHex(actual) !== bytesToHex(expected)) {
    throw new Error(`${what} is ${bytesToHex(actual)}, expected ${bytesToHex(expected)}`);
  }
}

/**
 * Reads a vector file's text.
 *
 * @param text The JSON text, `{"vectors": [...]}`.
 * @returns The vectors; each has at least a `protocol_name` and a `messages` array.
 * @throws {SyntaxError} If the text is not JSON.
 * @throws {TypeError} If it does not have that shape.
 *
 * @example Usage
 * ```ts
 * import { parseVectorFile } from "@fedgpu/fedgpu/noise";
 * import { strictEqual } from "node:assert/strict";
 *
 * const text = '{"vectors": [{"protocol_name": "Noise_NN_25519_AESGCM_SHA256", "messages": []}]}';
 * strictEqual(parseVectorFile(text)[0]!.protocol_name, "Noise_NN_25519_AESGCM_SHA256");
 * ```
 */
export function parseVectorFile(text: string): NoiseVector[] {
  const json: unknown = JSON.parse(text);
  const vectors = (json as { vectors?: unknown } | null)?.vectors;
  if (!Array.isArray(vectors)) throw new TypeError('A vector file is {"vectors": [...]}');
  vectors.forEach((vector, i) => {
    if (typeof vector?.protocol_name !== "string" || !Array.isArray(vector.messages)) {
      throw new TypeError(`Vector ${i} needs a protocol_name string and a messages array`);
    }
  });
  return vectors;
}

/**
 * Runs one vector: a handshake between an initiator and a responder with the vector's keys and
 * prologues, checking each message's bytes, each recovered payload and the handshake hash, then
 * the transport messages.
 *
 * @param vector The vector.
 * @throws {HandshakeError} `unsupported` if the vector's protocol is not one this library
 *   speaks (another suite, a modifier); any other error is a failed vector.
 * @throws {Error} If a message, a payload or the handshake hash differs from the vector's.
 *
 * @example Usage
 * ```ts
 * import { parseVectorFile, runVector } from "@fedgpu/fedgpu/noise";
 *
 * const text = await Deno.readTextFile(
 *   new URL("../../../tests/testdata/noise/cacophony_25519_aesgcm_sha256.json", import.meta.url),
 * );
 * for (const vector of parseVectorFile(text)) await runVector(vector);
 * ```
 */
export async function runVector(vector: NoiseVector): Promise<void> {
  const pattern = parseProtocolName(vector.protocol_name);
  const initiator = new HandshakeState({
    pattern,
    initiator: true,
    prologue: _bytes(vector.init_prologue ?? "", "init_prologue"),
    s: _keyPair(vector.init_static, "init_static"),
    e: _keyPair(vector.init_ephemeral, "init_ephemeral"),
    rs: _bytes(vector.init_remote_static, "init_remote_static"),
  });
  const responder = new HandshakeState({
    pattern,
    initiator: false,
    prologue: _bytes(vector.resp_prologue ?? "", "resp_prologue"),
    s: _keyPair(vector.resp_static, "resp_static"),
    e: _keyPair(vector.resp_ephemeral, "resp_ephemeral"),
    rs: _bytes(vector.resp_remote_static, "resp_remote_static"),
  });
  let transport:
    | { initiator: [CipherState, CipherState]; responder: [CipherState, CipherState] }
    | undefined;
  for (const [i, message] of vector.messages.entries()) {
    const payload = _bytes(message.payload, `message ${i} payload`)!;
    const expected = _bytes(message.ciphertext, `message ${i} ciphertext`)!;
    const fromInitiator = pattern.oneWay || i % 2 === 0;
    let sent: Uint8Array;
    let received: Uint8Array;
    if (transport === undefined) {
      const [writer, reader] = fromInitiator ? [initiator, responder] : [responder, initiator];
      sent = await writer.writeMessage(payload);
      _expectEqual(sent, expected, `Handshake message ${i}`);
      received = await reader.readMessage(sent);
    } else {
      // The initiator sends with c1 and receives with c2; the responder the reverse.
      const [sender, receiver] = fromInitiator
        ? [transport.initiator[0], transport.responder[0]]
        : [transport.responder[1], transport.initiator[1]];
      sent = await sender.encryptWithAd(new Uint8Array(0), payload);
      _expectEqual(sent, expected, `Transport message ${i}`);
      received = await receiver.decryptWithAd(new Uint8Array(0), sent);
    }
    _expectEqual(received, payload, `The payload read from message ${i}`);
    if (transport === undefined && initiator.isComplete()) {
      if (!responder.isComplete()) throw new Error("The initiator finished, the responder did not");
      const expectedHash = _bytes(vector.handshake_hash, "handshake_hash");
      if (expectedHash !== undefined) {
        _expectEqual(initiator.handshakeHash, expectedHash, "The initiator's handshake hash");
        _expectEqual(responder.handshakeHash, expectedHash, "The responder's handshake hash");
      }
      transport = { initiator: initiator.split(), responder: responder.split() };
    }
  }
}

/**
 * Reads and parses a vector file.
 *
 * @param path Where the file is.
 * @returns The vectors.
 * @throws {Deno.errors.NotFound} If there is no such file.
 * @throws {SyntaxError | TypeError} As {@linkcode parseVectorFile} does.
 *
 * @example Usage
 * ```ts
 * import { loadVectorFile } from "@fedgpu/fedgpu/noise";
 * import { rejects } from "node:assert/strict";
 *
 * await rejects(loadVectorFile("/no/such/vectors.json"), Deno.errors.NotFound);
 * ```
 */
export async function loadVectorFile(path: string | URL): Promise<NoiseVector[]> {
  return parseVectorFile(await Deno.readTextFile(path));
}
