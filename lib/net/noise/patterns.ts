/**
 * Handshake patterns as data (Noise Protocol Framework, revision 34, section 7): the one-way
 * patterns (7.4), the fundamental interactive patterns (7.5) and the deferred patterns (7.6),
 * written as the spec writes them, and protocol names (section 8) for the one suite this
 * library speaks, `25519_AESGCM_SHA256`. Modifiers (psk, fallback) are not supported.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { HandshakeError } from "./errors.ts";

/** A token of a handshake message (section 7.1). */
export type Token = "e" | "s" | "ee" | "es" | "se" | "ss";

/** A token of a pre-message: a public key known before the handshake. */
export type PreMessageToken = "e" | "s";

/** A handshake pattern: who knows which keys beforehand, then the tokens of each message. */
export interface HandshakePattern {
  /** The pattern's name, such as `XX` or `X1K1`. */
  readonly name: string;
  /** The initiator's keys that the responder knows beforehand (`-> s` before `...`). */
  readonly initiatorPreMessage: readonly PreMessageToken[];
  /** The responder's keys that the initiator knows beforehand (`<- s` before `...`). */
  readonly responderPreMessage: readonly PreMessageToken[];
  /** The messages in order: the initiator sends the even ones, the responder the odd ones. */
  readonly messages: readonly (readonly Token[])[];
  /** Whether this is a one-way pattern (one message; only the initiator sends afterwards). */
  readonly oneWay: boolean;
}

/** The cipher suite of every protocol name this library accepts (section 8). */
export const SUITE = "25519_AESGCM_SHA256";

// Section 7, line by line: pre-messages, then "...", then the messages.
const _NOTATION: Record<string, readonly string[]> = {
  // 7.4 One-way handshake patterns
  N: ["<- s", "...", "-> e, es"],
  K: ["-> s", "<- s", "...", "-> e, es, ss"],
  X: ["<- s", "...", "-> e, es, s, ss"],
  // 7.5 Interactive handshake patterns (fundamental)
  NN: ["-> e", "<- e, ee"],
  NK: ["<- s", "...", "-> e, es", "<- e, ee"],
  NX: ["-> e", "<- e, ee, s, es"],
  XN: ["-> e", "<- e, ee", "-> s, se"],
  XK: ["<- s", "...", "-> e, es", "<- e, ee", "-> s, se"],
  XX: ["-> e", "<- e, ee, s, es", "-> s, se"],
  KN: ["-> s", "...", "-> e", "<- e, ee, se"],
  KK: ["-> s", "<- s", "...", "-> e, es, ss", "<- e, ee, se"],
  KX: ["-> s", "...", "-> e", "<- e, ee, se, s, es"],
  IN: ["-> e, s", "<- e, ee, se"],
  IK: ["<- s", "...", "-> e, es, s, ss", "<- e, ee, se"],
  IX: ["-> e, s", "<- e, ee, se, s, es"],
  // 7.6 Interactive handshake patterns (deferred)
  NK1: ["<- s", "...", "-> e", "<- e, ee, es"],
  NX1: ["-> e", "<- e, ee, s", "-> es"],
  X1N: ["-> e", "<- e, ee", "-> s", "<- se"],
  X1K: ["<- s", "...", "-> e, es", "<- e, ee", "-> s", "<- se"],
  XK1: ["<- s", "...", "-> e", "<- e, ee, es", "-> s, se"],
  X1K1: ["<- s", "...", "-> e", "<- e, ee, es", "-> s", "<- se"],
  X1X: ["-> e", "<- e, ee, s, es", "-> s", "<- se"],
  XX1: ["-> e", "<- e, ee, s", "-> es, s, se"],
  X1X1: ["-> e", "<- e, ee, s", "-> es, s", "<- se"],
  K1N: ["-> s", "...", "-> e", "<- e, ee", "-> se"],
  K1K: ["-> s", "<- s", "...", "-> e, es", "<- e, ee", "-> se"],
  KK1: ["-> s", "<- s", "...", "-> e", "<- e, ee, se, es"],
  K1K1: ["-> s", "<- s", "...", "-> e", "<- e, ee, es", "-> se"],
  K1X: ["-> s", "...", "-> e", "<- e, ee, s, es", "-> se"],
  KX1: ["-> s", "...", "-> e", "<- e, ee, se, s", "-> es"],
  K1X1: ["-> s", "...", "-> e", "<- e, ee, s", "-> se, es"],
  I1N: ["-> e, s", "<- e, ee", "-> se"],
  I1K: ["<- s", "...", "-> e, es, s", "<- e, ee", "-> se"],
  IK1: ["<- s", "...", "-> e, s", "<- e, ee, se, es"],
  I1K1: ["<- s", "...", "-> e, s", "<- e, ee, es", "-> se"],
  I1X: ["-> e, s", "<- e, ee, s, es", "-> se"],
  IX1: ["-> e, s", "<- e, ee, se, s", "-> es"],
  I1X1: ["-> e, s", "<- e, ee, s", "-> se, es"],
};

const _TOKENS: readonly string[] = ["e", "s", "ee", "es", "se", "ss"];

/** Reads one pattern in the spec's notation; a malformed table entry fails at module load. */
function _parse(name: string, lines: readonly string[]): HandshakePattern {
  const split = lines.indexOf("...");
  const initiatorPreMessage: PreMessageToken[] = [];
  const responderPreMessage: PreMessageToken[] = [];
  const messages: Token[][] = [];
  lines.forEach((line, i) => {
    if (i === split) return;
    const match = /^(->|<-) (.+)$/.exec(line);
    const tokens = match?.[2]?.split(", ") ?? [];
    if (match === null || !tokens.every((token) => _TOKENS.includes(token))) {
      throw new Error(`Pattern ${name} has a malformed line: ${line}`);
    }
    const fromInitiator = match[1] === "->";
    if (i < split) {
      (fromInitiator ? initiatorPreMessage : responderPreMessage).push(
        ...(tokens as PreMessageToken[]),
      );
    } else if (fromInitiator === (messages.length % 2 === 0)) {
      messages.push(tokens as Token[]);
    } else {
      throw new Error(`Pattern ${name} does not alternate directions at: ${line}`);
    }
  });
  return Object.freeze({
    name,
    initiatorPreMessage: Object.freeze(initiatorPreMessage),
    responderPreMessage: Object.freeze(responderPreMessage),
    messages: Object.freeze(messages.map((tokens) => Object.freeze(tokens))),
    oneWay: messages.length === 1,
  });
}

const _PATTERNS: ReadonlyMap<string, HandshakePattern> = new Map(
  Object.entries(_NOTATION).map(([name, lines]) => [name, _parse(name, lines)]),
);

/**
 * The names of every supported pattern: the one-way, fundamental and deferred patterns of
 * section 7.
 */
export const PATTERN_NAMES: readonly string[] = Object.freeze([..._PATTERNS.keys()]);

/**
 * Looks up a handshake pattern by name.
 *
 * @param name The pattern's name, such as `XX`, without modifiers.
 * @returns The pattern (frozen; the same object every time).
 * @throws {HandshakeError} `unsupported` if no pattern has that name.
 *
 * @example Usage
 * ```ts
 * import { handshakePattern } from "@fedgpu/fedgpu/noise";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * deepStrictEqual(handshakePattern("XX").messages, [["e"], ["e", "ee", "s", "es"], ["s", "se"]]);
 * ```
 */
export function handshakePattern(name: string): HandshakePattern {
  const pattern = _PATTERNS.get(name);
  if (pattern === undefined) {
    throw new HandshakeError("unsupported", `Unknown handshake pattern ${JSON.stringify(name)}`);
  }
  return pattern;
}

/**
 * Parses a protocol name (section 8) such as `Noise_XX_25519_AESGCM_SHA256` into its pattern.
 *
 * @param protocolName The full protocol name.
 * @returns The handshake pattern it names.
 * @throws {HandshakeError} `unsupported` if the name is malformed, uses another DH, cipher or
 *   hash than `25519_AESGCM_SHA256`, names an unknown pattern, or has modifiers (`psk0`,
 *   `fallback`).
 *
 * @example Usage
 * ```ts
 * import { HandshakeError, parseProtocolName } from "@fedgpu/fedgpu/noise";
 * import { strictEqual, throws } from "node:assert/strict";
 *
 * strictEqual(parseProtocolName("Noise_IK_25519_AESGCM_SHA256").name, "IK");
 * throws(
 *   () => parseProtocolName("Noise_XX_25519_ChaChaPoly_BLAKE2s"),
 *   (error) => error instanceof HandshakeError && error.code === "unsupported",
 * );
 * ```
 */
export function parseProtocolName(protocolName: string): HandshakePattern {
  const parts = protocolName.split("_");
  if (parts.length !== 5 || parts[0] !== "Noise") {
    throw new HandshakeError(
      "unsupported",
      `Not a Noise protocol name (Noise_PATTERN_DH_CIPHER_HASH): ${JSON.stringify(protocolName)}`,
    );
  }
  const suite = parts.slice(2).join("_");
  if (suite !== SUITE) {
    throw new HandshakeError("unsupported", `Only the ${SUITE} suite is supported, not ${suite}`);
  }
  const full = parts[1]!;
  const name = /^[A-Z0-9]*/.exec(full)![0];
  if (name !== full) {
    throw new HandshakeError(
      "unsupported",
      `Pattern modifiers are not supported: ${full.slice(name.length)} in ${full}`,
    );
  }
  return handshakePattern(name);
}
