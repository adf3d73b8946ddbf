/**
 * Secure connections: a Noise handshake (Noise_XX_25519_AESGCM_SHA256 by default; NN, NK, IK
 * and XK on request) over a TCP connection, then a {@linkcode SecureChannel}, with the
 * send/receive functions of the original library:
 *
 * ```ts ignore
 * const channel = await handshakeClient(await Deno.connect({ port: 3000 }), { serverFingerprint });
 * await secureSend(channel, "Oh yes");
 * const model = modelFromBytes(await secureReceiveBytes(channel));
 * ```
 *
 * Servers prove a persistent static key; clients pin its fingerprint (or its public key), and
 * a mismatch refuses the connection before the client reveals its own identity. Servers may
 * allow-list client keys by fingerprint.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { type ChannelOptions, MESSAGE_TYPE, SecureChannel } from "./channel.ts";
import { ChannelError } from "./errors.ts";
import { type ByteStream, FrameReader, writeFrame } from "./framing.ts";
import { constantTimeEqual, fingerprint, StaticKeyPair } from "./identity.ts";
import { HandshakeError } from "./noise/errors.ts";
import { HandshakeState } from "./noise/handshake_state.ts";

/** The handshake patterns a channel can use. */
export type ChannelPattern = "XX" | "NN" | "NK" | "IK" | "XK";

const _PATTERNS: readonly ChannelPattern[] = ["XX", "NN", "NK", "IK", "XK"];

/** Options shared by both ends of a handshake. */
export interface HandshakeOptions extends ChannelOptions {
  /** The handshake pattern (default `XX`); both ends must agree. */
  pattern?: ChannelPattern;
  /** The whole handshake's deadline, in milliseconds (default 10 s). */
  handshakeTimeoutMs?: number;
}

/** Options of {@linkcode handshakeServer}. */
export interface ServerHandshakeOptions extends HandshakeOptions {
  /** The server's persistent static key (see `loadOrCreateKeyFile`). */
  staticKey: StaticKeyPair;
  /**
   * Fingerprints of the client keys allowed in; any other client is refused. Omit to admit
   * every client (they are still authenticated: the channel knows their key).
   */
  allowedClients?: Iterable<string>;
}

/** Options of {@linkcode handshakeClient}. */
export interface ClientHandshakeOptions extends HandshakeOptions {
  /** The client's static key (default: a fresh one for this connection). */
  staticKey?: StaticKeyPair;
  /** The server key's fingerprint to pin, as the server prints it. */
  serverFingerprint?: string;
  /** The server's public key: required by NK, IK and XK; pinned like a fingerprint. */
  serverPublicKey?: Uint8Array;
  /** Connect without pinning the server (only for tests and the NN pattern). */
  allowUnpinned?: boolean;
}

function _prologue(pattern: ChannelPattern): Uint8Array {
  return new TextEncoder().encode(`fedgpu/1 Noise_${pattern}_25519_AESGCM_SHA256`);
}

function _pattern(value: unknown): ChannelPattern {
  const pattern = value ?? "XX";
  if (!_PATTERNS.includes(pattern as ChannelPattern)) {
    throw new TypeError(
      `Handshake pattern must be one of ${_PATTERNS.join(", ")}, got ${JSON.stringify(value)}`,
    );
  }
  return pattern as ChannelPattern;
}

/**
 * Runs a handshake to completion over `stream`, calling `verify` whenever the remote static
 * key becomes known (before anything else is sent).
 */
async function _handshake(
  stream: ByteStream,
  state: HandshakeState,
  initiator: boolean,
  options: HandshakeOptions,
  verify: (remoteStatic: Uint8Array) => void,
): Promise<SecureChannel> {
  const deadline = performance.now() + (options.handshakeTimeoutMs ?? 10_000);
  const reader = new FrameReader(stream);
  let verified = false;
  try {
    for (let turn = 0; !state.isComplete(); turn++) {
      if ((turn % 2 === 0) === initiator) {
        await writeFrame(stream, await state.writeMessage(new Uint8Array(0)));
      } else {
        const message = await reader.read(
          Math.max(0, deadline - performance.now()),
          "a handshake message",
        );
        await state.readMessage(message);
      }
      const remote = state.remoteStaticKey;
      if (remote !== null && !verified) {
        verify(remote);
        verified = true;
      }
    }
    const [initiatorToResponder, responderToInitiator] = await state.split();
    return new SecureChannel(stream, reader, {
      send: initiator ? initiatorToResponder : responderToInitiator,
      receive: initiator ? responderToInitiator : initiatorToResponder,
      remoteStaticKey: state.remoteStaticKey,
      handshakeHash: state.handshakeHash,
    }, options);
  } catch (error) {
    try {
      stream.close();
    } catch {
      // Already closed.
    }
    if (error instanceof ChannelError) {
      const code = error.code === "timeout" ? "timeout" : "closed";
      throw new HandshakeError(code, `Handshake failed: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

/**
 * The server's side of a handshake: proves its static key, learns (and may allow-list) the
 * client's.
 *
 * @param stream The accepted connection.
 * @param options The static key, the allow-list, the pattern and limits.
 * @returns The established channel; `remoteStaticKey` is the client's key (XX, IK, XK).
 * @throws {HandshakeError} If the handshake fails: `decrypt` (tampered or garbage messages),
 *   `unknown-client` (not on the allow-list), `timeout`, `closed`, or a malformed message; the
 *   connection is closed.
 */
export async function handshakeServer(
  stream: ByteStream,
  options: ServerHandshakeOptions,
): Promise<SecureChannel> {
  const pattern = _pattern(options.pattern);
  if (!(options.staticKey instanceof StaticKeyPair)) {
    throw new TypeError("handshakeServer needs options.staticKey, a StaticKeyPair");
  }
  const allowed = options.allowedClients === undefined ? null : new Set(options.allowedClients);
  if (allowed !== null && (pattern === "NN" || pattern === "NK")) {
    throw new TypeError(
      `An allow-list needs a pattern in which clients prove a key, not ${pattern}`,
    );
  }
  const state = new HandshakeState({
    pattern,
    initiator: false,
    prologue: _prologue(pattern),
    s: pattern === "NN" ? undefined : options.staticKey,
  });
  return await _handshake(stream, state, false, options, (clientKey) => {
    if (allowed !== null && !allowed.has(fingerprint(clientKey))) {
      throw new HandshakeError(
        "unknown-client",
        `Client key ${fingerprint(clientKey)} is not on the allow-list`,
      );
    }
  });
}

/**
 * The client's side of a handshake: checks the server's static key against the pin before
 * revealing its own.
 *
 * @param stream The connection to the server.
 * @param options The pin (`serverFingerprint` or `serverPublicKey`), the client's key, the
 *   pattern and limits.
 * @returns The established channel; `remoteStaticKey` is the server's key.
 * @throws {TypeError} If nothing pins the server and `allowUnpinned` is not set, or the
 *   pattern needs `serverPublicKey`.
 * @throws {HandshakeError} `pinned-key-mismatch` if the server proves another key, `decrypt`,
 *   `timeout`, `closed` or a malformed message otherwise; the connection is closed.
 */
export async function handshakeClient(
  stream: ByteStream,
  options: ClientHandshakeOptions = {},
): Promise<SecureChannel> {
  const pattern = _pattern(options.pattern);
  const { serverFingerprint, serverPublicKey, allowUnpinned = false } = options;
  const needsKey = pattern === "NK" || pattern === "IK" || pattern === "XK";
  if (needsKey && serverPublicKey === undefined) {
    throw new TypeError(`The ${pattern} pattern needs options.serverPublicKey`);
  }
  if (serverFingerprint === undefined && serverPublicKey === undefined && !allowUnpinned) {
    throw new TypeError(
      "Pin the server: pass options.serverFingerprint (printed by the server) or serverPublicKey",
    );
  }
  if (pattern === "NN" && (serverFingerprint !== undefined || serverPublicKey !== undefined)) {
    throw new TypeError("The NN pattern proves no server key, so a pin cannot be checked");
  }
  const staticKey = options.staticKey ?? StaticKeyPair.generate();
  const state = new HandshakeState({
    pattern,
    initiator: true,
    prologue: _prologue(pattern),
    s: pattern === "NN" || pattern === "NK" ? undefined : staticKey,
    rs: needsKey ? serverPublicKey : undefined,
  });
  return await _handshake(stream, state, true, options, (serverKey) => {
    const pinnedKey = serverPublicKey !== undefined &&
      !constantTimeEqual(serverKey, serverPublicKey);
    const pinnedPrint = serverFingerprint !== undefined &&
      fingerprint(serverKey) !== serverFingerprint;
    if (pinnedKey || pinnedPrint) {
      throw new HandshakeError(
        "pinned-key-mismatch",
        `Server proved key ${fingerprint(serverKey)}, not the pinned ${
          serverFingerprint ?? fingerprint(serverPublicKey!)
        }`,
      );
    }
  });
}

/**
 * Sends a text message.
 *
 * @param channel The channel.
 * @param text The text (UTF-8 on the wire).
 */
export function secureSend(channel: SecureChannel, text: string): Promise<void> {
  return channel.send(MESSAGE_TYPE.text, new TextEncoder().encode(text));
}

/**
 * Receives a text message.
 *
 * @param channel The channel.
 * @returns The text.
 * @throws {ChannelError} `unexpected-type` if the next message is not text (the channel is
 *   closed), or any receive failure.
 */
export async function secureReceive(channel: SecureChannel): Promise<string> {
  const { type, data } = await channel.receive();
  if (type !== MESSAGE_TYPE.text) {
    await channel.close();
    throw new ChannelError("unexpected-type", `Expected a text message, got type ${type}`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    await channel.close();
    throw new ChannelError("protocol", "A text message is not valid UTF-8");
  }
}

/**
 * Sends a bytes message (a model from `modelToBytes`, say).
 *
 * @param channel The channel.
 * @param bytes The bytes.
 */
export function secureSendBytes(channel: SecureChannel, bytes: Uint8Array): Promise<void> {
  return channel.send(MESSAGE_TYPE.bytes, bytes);
}

/**
 * Receives a bytes message.
 *
 * @param channel The channel.
 * @returns The bytes.
 * @throws {ChannelError} `unexpected-type` if the next message is not bytes (the channel is
 *   closed), or any receive failure.
 */
export async function secureReceiveBytes(channel: SecureChannel): Promise<Uint8Array> {
  const { type, data } = await channel.receive();
  if (type !== MESSAGE_TYPE.bytes) {
    await channel.close();
    throw new ChannelError("unexpected-type", `Expected a bytes message, got type ${type}`);
  }
  return data;
}
