/**
 * The HandshakeState object (Noise Protocol Framework, revision 34, section 5.3): runs a
 * handshake pattern (section 7) token by token over a {@linkcode SymmetricState}, then splits
 * into the two transport {@linkcode CipherState}s.
 *
 * The state machine, checked before every step:
 *
 * ```
 * write <-> read      (whose turn it is; the initiator writes the first message)
 *   -> complete       (after the last message; handshakeHash is final)
 *   -> split          (after split(): secrets wiped, the handshake is spent)
 * busy                (while a writeMessage or readMessage is running)
 * failed              (after any error in a step: secrets wiped, every call throws `state`)
 * ```
 *
 * A step that fails leaves nothing usable: a message that does not decrypt, is too short or
 * carries a low-order key ends the handshake. Only a payload too large to send is refused
 * before anything changes.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { CipherState } from "./cipher_state.ts";
import {
  checkBytes,
  dh,
  DHLEN,
  generateKeyPair,
  type KeyPair,
  MAX_MESSAGE_LEN,
  TAGLEN,
} from "./crypto.ts";
import { HandshakeError } from "./errors.ts";
import {
  type HandshakePattern,
  handshakePattern,
  type PreMessageToken,
  SUITE,
  type Token,
} from "./patterns.ts";
import { SymmetricState } from "./symmetric_state.ts";

/** Options of the {@linkcode HandshakeState} constructor: the arguments of `Initialize()`. */
export interface HandshakeStateOptions {
  /** A pattern name (`"XX"`), or a pattern from `handshakePattern` or `parseProtocolName`. */
  pattern: string | HandshakePattern;
  /** Whether this side starts the handshake. */
  initiator: boolean;
  /** Bytes both sides must agree on beforehand, mixed into the handshake hash (section 6). */
  prologue?: Uint8Array;
  /** The local static key pair; required exactly when the pattern uses it. Copied. */
  s?: KeyPair;
  /** A fixed local ephemeral key pair, for test vectors only; generated when omitted. Copied. */
  e?: KeyPair;
  /** The remote static public key; required exactly when a pre-message carries it. */
  rs?: Uint8Array;
  /** The remote ephemeral public key; required exactly when a pre-message carries it. */
  re?: Uint8Array;
}

/** Where a {@linkcode HandshakeState} is in its state machine. */
export type HandshakeStatus = "write" | "read" | "busy" | "complete" | "split" | "failed";

function _copyKeyPair(keyPair: KeyPair, what: string): KeyPair {
  const { publicKey, secretKey } = keyPair;
  checkBytes(publicKey, DHLEN, `${what} public key`);
  checkBytes(secretKey, 32, `${what} secret key`);
  return { publicKey: publicKey.slice(), secretKey: secretKey.slice() };
}

function _concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * One side of a Noise handshake: Noise's HandshakeState for `Noise_*_25519_AESGCM_SHA256`.
 *
 * @example Usage
 * ```ts
 * import { generateKeyPair, HandshakeState } from "@fedgpu/fedgpu/noise";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const initiator = new HandshakeState({ pattern: "XX", initiator: true, s: generateKeyPair() });
 * const responder = new HandshakeState({ pattern: "XX", initiator: false, s: generateKeyPair() });
 * await responder.readMessage(await initiator.writeMessage()); // -> e
 * await initiator.readMessage(await responder.writeMessage()); // <- e, ee, s, es
 * await responder.readMessage(await initiator.writeMessage()); // -> s, se
 * deepStrictEqual(initiator.handshakeHash, responder.handshakeHash);
 *
 * const [send] = initiator.split();
 * const [receive] = responder.split();
 * const message = await send.encryptWithAd(new Uint8Array(0), new Uint8Array([1, 2]));
 * deepStrictEqual(await receive.decryptWithAd(new Uint8Array(0), message), new Uint8Array([1, 2]));
 * ```
 */
export class HandshakeState {
  /** The handshake pattern. */
  readonly pattern: HandshakePattern;
  /** Whether this side is the initiator. */
  readonly initiator: boolean;
  #ss: SymmetricState;
  #s: KeyPair | undefined;
  #e: KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #status: HandshakeStatus;
  #index = 0;

  /**
   * `Initialize(handshake_pattern, initiator, prologue, s, e, rs, re)`: `InitializeSymmetric`
   * with the protocol name, `MixHash(prologue)`, then `MixHash` of each pre-message public key,
   * the initiator's first.
   *
   * @param options The pattern, the role, the prologue and the keys.
   * @throws {TypeError} If a key the pattern needs for this role is missing, or one it does not
   *   use (or sends in a message) is given, or `initiator` is not a boolean.
   * @throws {RangeError} If a key is not 32 bytes.
   * @throws {HandshakeError} `unsupported` for an unknown pattern name.
   */
  constructor(options: HandshakeStateOptions) {
    const { pattern, initiator, prologue = new Uint8Array(0), s, e, rs, re } = options;
    this.pattern = typeof pattern === "string" ? handshakePattern(pattern) : pattern;
    if (handshakePattern(this.pattern.name) !== this.pattern) {
      throw new TypeError("The pattern must come from handshakePattern or parseProtocolName");
    }
    if (typeof initiator !== "boolean") throw new TypeError("The initiator option is a boolean");
    if (!(prologue instanceof Uint8Array)) throw new TypeError("The prologue is a Uint8Array");
    this.initiator = initiator;

    const { name, initiatorPreMessage, responderPreMessage, messages } = this.pattern;
    const localPre = initiator ? initiatorPreMessage : responderPreMessage;
    const remotePre = initiator ? responderPreMessage : initiatorPreMessage;
    const sent = messages.filter((_, i) => (i % 2 === 0) === initiator).flat();
    const role = initiator ? "initiator" : "responder";
    const expect = (given: unknown, needed: boolean, what: string) => {
      if (needed && given === undefined) {
        throw new TypeError(`The ${name} pattern's ${role} needs ${what}`);
      }
      if (!needed && given !== undefined) {
        throw new TypeError(`The ${name} pattern's ${role} does not take ${what}`);
      }
    };
    expect(s, localPre.includes("s") || sent.includes("s"), "the local static key pair s");
    expect(rs, remotePre.includes("s"), "the remote static key rs before the handshake");
    expect(re, remotePre.includes("e"), "the remote ephemeral key re before the handshake");
    if (localPre.includes("e") && e === undefined) {
      throw new TypeError(`The ${name} pattern's ${role} needs the ephemeral key pair e`);
    }
    this.#s = s === undefined ? undefined : _copyKeyPair(s, "local static");
    this.#e = e === undefined ? undefined : _copyKeyPair(e, "local ephemeral");
    if (rs !== undefined) checkBytes(rs, DHLEN, "remote static key");
    if (re !== undefined) checkBytes(re, DHLEN, "remote ephemeral key");
    this.#rs = rs?.slice();
    this.#re = re?.slice();

    this.#ss = new SymmetricState(this.protocolName);
    this.#ss.mixHash(prologue);
    this.#mixPreMessage(initiatorPreMessage, initiator);
    this.#mixPreMessage(responderPreMessage, !initiator);
    this.#status = initiator ? "write" : "read";
  }

  /** The protocol name, such as `Noise_XX_25519_AESGCM_SHA256`. */
  get protocolName(): string {
    return `Noise_${this.pattern.name}_${SUITE}`;
  }

  /** Where the handshake is: `write` or `read` (whose turn), `busy`, `complete`, `split`, `failed`. */
  get status(): HandshakeStatus {
    return this.#status;
  }

  /**
   * Whether every message of the pattern has been written or read.
   *
   * @returns True once the status is `complete` (or `split`).
   */
  isComplete(): boolean {
    return this.#status === "complete" || this.#status === "split";
  }

  /**
   * The remote party's static public key, once known: given before the handshake, or received
   * in a message (check it before trusting the peer).
   *
   * @returns A copy of the key, or null if it is not known (yet).
   */
  get remoteStaticKey(): Uint8Array | null {
    return this.#rs?.slice() ?? null;
  }

  /**
   * The handshake hash `h` (`GetHandshakeHash()`): equal on both sides exactly when they saw the
   * same handshake; use it for channel binding (section 11.2).
   *
   * @returns A copy of the 32-byte hash.
   * @throws {HandshakeError} `state` before the handshake is complete.
   */
  get handshakeHash(): Uint8Array {
    if (!this.isComplete()) {
      throw new HandshakeError(
        "state",
        `The handshake hash is final only once complete, status is ${this.#status}`,
      );
    }
    return this.#ss.getHandshakeHash();
  }

  /**
   * `WriteMessage(payload, message_buffer)`: the next handshake message, this side's turn.
   *
   * @param payload The payload to send with it (encrypted once a DH has run). Default empty.
   * @returns The message.
   * @throws {HandshakeError} `state` if it is not this side's turn to write; `message-too-large`
   *   if the message would exceed 65535 bytes (the handshake is left as it was); `bad-key` if
   *   the pre-known remote static key is of low order (the handshake fails).
   */
  async writeMessage(payload: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    if (!(payload instanceof Uint8Array)) throw new TypeError("The payload is a Uint8Array");
    const tokens = this.#turn("write");
    const length = this.#overhead(tokens) + payload.length;
    if (length > MAX_MESSAGE_LEN) {
      throw new HandshakeError(
        "message-too-large",
        `A Noise message is at most ${MAX_MESSAGE_LEN} bytes, this one would be ${length}`,
      );
    }
    this.#status = "busy";
    try {
      const parts: Uint8Array[] = [];
      for (const token of tokens) {
        if (token === "e") {
          // e: a fresh ephemeral key (or the fixed one), sent in the clear.
          this.#e ??= generateKeyPair();
          parts.push(this.#e.publicKey.slice());
          this.#ss.mixHash(this.#e.publicKey);
        } else if (token === "s") {
          // s: the static public key, encrypted once a DH has run.
          parts.push(await this.#ss.encryptAndHash(this.#s!.publicKey));
        } else {
          this.#mixDh(token);
        }
      }
      parts.push(await this.#ss.encryptAndHash(payload));
      this.#advance();
      return _concat(parts);
    } catch (error) {
      this.#fail();
      throw error;
    }
  }

  /**
   * `ReadMessage(message, payload_buffer)`: takes the peer's next handshake message.
   *
   * @param message The message as received.
   * @returns The payload it carried.
   * @throws {HandshakeError} `state` if it is not this side's turn to read; otherwise, and the
   *   handshake fails: `message-too-large` over 65535 bytes, `message-too-short` if shorter than
   *   its keys and tags, `decrypt` if a static key or the payload fails authentication,
   *   `bad-key` if a received key is of low order.
   */
  async readMessage(message: Uint8Array): Promise<Uint8Array> {
    if (!(message instanceof Uint8Array)) throw new TypeError("The message is a Uint8Array");
    const tokens = this.#turn("read");
    this.#status = "busy";
    try {
      if (message.length > MAX_MESSAGE_LEN) {
        throw new HandshakeError(
          "message-too-large",
          `A Noise message is at most ${MAX_MESSAGE_LEN} bytes, got ${message.length}`,
        );
      }
      const least = this.#overhead(tokens);
      if (message.length < least) {
        throw new HandshakeError(
          "message-too-short",
          `Handshake message ${
            this.#index + 1
          } of ${this.pattern.name} is at least ${least} bytes, got ${message.length}`,
        );
      }
      let offset = 0;
      for (const token of tokens) {
        if (token === "e") {
          // e: the peer's ephemeral public key, in the clear.
          this.#re = message.slice(offset, offset + DHLEN);
          offset += DHLEN;
          this.#ss.mixHash(this.#re);
        } else if (token === "s") {
          // s: the peer's static public key, encrypted once a DH has run.
          const length = DHLEN + (this.#ss.hasKey() ? TAGLEN : 0);
          this.#rs = await this.#ss.decryptAndHash(message.subarray(offset, offset + length));
          offset += length;
        } else {
          this.#mixDh(token);
        }
      }
      const payload = await this.#ss.decryptAndHash(message.subarray(offset));
      this.#advance();
      return payload;
    } catch (error) {
      this.#fail();
      throw error;
    }
  }

  /**
   * `Split()`: the transport cipher states, once the handshake is complete. The chaining key and
   * the local secret keys are wiped; the handshake hash and remote static key stay readable.
   * In a one-way pattern only the initiator sends: c2 is returned destroyed.
   *
   * @returns `[c1, c2]`: c1 encrypts from initiator to responder, c2 from responder to
   *   initiator. The initiator sends with c1 and receives with c2; the responder the reverse.
   * @throws {HandshakeError} `state` unless the handshake is complete and not yet split.
   */
  split(): [CipherState, CipherState] {
    if (this.#status !== "complete") {
      throw new HandshakeError(
        "state",
        `Split needs a complete handshake, status is ${this.#status}`,
      );
    }
    const [c1, c2] = this.#ss.split();
    if (this.pattern.oneWay) c2.destroy();
    this.#wipe();
    this.#status = "split";
    return [c1, c2];
  }

  /** `MixHash` of each public key in a pre-message; `local` when it lists this side's keys. */
  #mixPreMessage(tokens: readonly PreMessageToken[], local: boolean): void {
    for (const token of tokens) {
      if (token === "s") this.#ss.mixHash(local ? this.#s!.publicKey : this.#rs!);
      else this.#ss.mixHash(local ? this.#e!.publicKey : this.#re!);
    }
  }

  /** Checks that it is this side's turn to `want`, and returns the tokens of the message. */
  #turn(want: "write" | "read"): readonly Token[] {
    if (this.#status !== want) {
      throw new HandshakeError(
        "state",
        `Cannot ${want} a handshake message now: the handshake status is ${this.#status}`,
      );
    }
    return this.pattern.messages[this.#index]!;
  }

  /** Bytes of a message with these tokens and an empty payload: keys, then tags. */
  #overhead(tokens: readonly Token[]): number {
    let keyed = this.#ss.hasKey();
    let length = 0;
    for (const token of tokens) {
      if (token === "e") length += DHLEN;
      else if (token === "s") length += DHLEN + (keyed ? TAGLEN : 0);
      else keyed = true;
    }
    return length + (keyed ? TAGLEN : 0);
  }

  /**
   * ee: DH(e, re); es: DH(e, rs) for the initiator, DH(s, re) for the responder; se: DH(s, re)
   * for the initiator, DH(e, rs) for the responder; ss: DH(s, rs). Then MixKey. The constructor
   * checked that the pattern's keys are there; valid patterns send a key before using it.
   */
  #mixDh(token: Token): void {
    const localEphemeral = token === "ee" || token === (this.initiator ? "es" : "se");
    const remoteEphemeral = token === "ee" || token === (this.initiator ? "se" : "es");
    const local = localEphemeral ? this.#e! : this.#s!;
    const remote = remoteEphemeral ? this.#re! : this.#rs!;
    const shared = dh(local, remote);
    this.#ss.mixKey(shared);
    shared.fill(0);
  }

  #advance(): void {
    this.#index++;
    if (this.#index === this.pattern.messages.length) {
      this.#status = "complete";
    } else {
      this.#status = (this.#index % 2 === 0) === this.initiator ? "write" : "read";
    }
  }

  #fail(): void {
    this.#wipe();
    this.#status = "failed";
  }

  #wipe(): void {
    this.#ss.destroy();
    this.#s?.secretKey.fill(0);
    this.#e?.secretKey.fill(0);
  }
}
