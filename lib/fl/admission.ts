/**
 * Admission of a client: the Noise handshake, the allow-list, the hello and the update stages
 * the run requires, each with a deadline; a refused client is told why (an error message with
 * a code) before the connection closes, so it does not retry a silent hang-up.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { SecureChannel } from "../net/channel.ts";
import { ChannelError } from "../net/errors.ts";
import { fingerprint, type StaticKeyPair } from "../net/identity.ts";
import { MessageError } from "../net/message.ts";
import { handshakeServer } from "../net/secure.ts";
import type { Connection } from "../net/transport.ts";
import { type FlMessage, type HelloMessage, receiveFl, sendFl } from "./protocol.ts";

/** What admission checks a client against. */
export interface AdmissionPolicy {
  /** The server's static key. */
  staticKey: StaticKeyPair;
  /** How long the handshake, and then the hello, may take, in ms. */
  handshakeTimeoutMs: number;
  /** The largest message the client may send. */
  maxMessageBytes: number;
  /** Fingerprints of the client keys allowed in, or null for every client. */
  allowed: ReadonlySet<string> | null;
  /** Update stages every client must support. */
  requiredStages: readonly string[];
  /** Whether the server is shutting down (an admitted client is then told goodbye). */
  closing(): boolean;
  /** Logs a refusal. */
  refuse(message: string): void;
}

/**
 * Admits a client, or refuses it.
 *
 * @param conn The client's byte stream.
 * @param policy What to check.
 * @returns The client's hello and its channel, or null if it was refused (the connection is
 *   then closed).
 */
export async function admit(
  conn: Connection,
  policy: AdmissionPolicy,
): Promise<{ hello: HelloMessage; channel: SecureChannel } | null> {
  const refuse = policy.refuse;
  let channel: SecureChannel;
  try {
    channel = await handshakeServer(conn, {
      staticKey: policy.staticKey,
      handshakeTimeoutMs: policy.handshakeTimeoutMs,
      maxMessageBytes: policy.maxMessageBytes,
      idleTimeoutMs: Infinity,
    });
  } catch (error) {
    refuse((error as Error).message);
    return null;
  }
  // The allow-list is checked here rather than inside the handshake so that a refused client
  // learns why (`unknown-client`) instead of retrying a silent hang-up; it is answered after
  // its first message, so that its hello does not race the hang-up.
  const key = channel.remoteStaticKey;
  const stranger = policy.allowed === null ||
      (key !== null && policy.allowed.has(fingerprint(key)))
    ? null
    : `Client key ${key === null ? "(none)" : fingerprint(key)} is not on the allow-list`;
  let hello: FlMessage;
  try {
    hello = await _withTimeout(receiveFl(channel), policy.handshakeTimeoutMs, () => {
      channel.close().catch(() => {});
      return new ChannelError("timeout", "No hello in time");
    });
  } catch (error) {
    refuse(stranger ?? (error as Error).message);
    if (stranger !== null) await _sendError(channel, "unknown-client", stranger);
    else if (error instanceof MessageError) {
      await _sendError(channel, error.code, error.message);
    }
    await channel.close().catch(() => {});
    return null;
  }
  const refusal: [string, string] | null = stranger !== null
    ? ["unknown-client", stranger]
    : hello.type !== "hello"
    ? ["unexpected", `Expected a hello message, got ${hello.type}`]
    : null;
  if (refusal !== null) {
    refuse(refusal[1]);
    await _sendError(channel, ...refusal);
    await channel.close();
    return null;
  }
  const greeting = hello as HelloMessage;
  if (policy.closing()) {
    await sendFl(channel, { type: "bye", reason: "the server is shutting down" }).catch(() => {});
    await channel.close();
    return null;
  }
  const missing = policy.requiredStages.find((stage) => !greeting.stages.includes(stage));
  if (missing !== undefined) {
    const message = `This run requires update stage ${missing}, which the client lacks`;
    refuse(message);
    await _sendError(channel, "unsupported-stage", message);
    await channel.close();
    return null;
  }
  return { hello: greeting, channel };
}

async function _sendError(channel: SecureChannel, code: string, message: string): Promise<void> {
  await sendFl(channel, { type: "error", code, message }).catch(() => {});
}

function _withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
