/**
 * Identities: persistent X25519 static keys in key files, and fingerprints that clients pin.
 *
 * A key file is JSON, `{"format":"fedgpu-key","version":1,"publicKey":HEX,"secretKey":HEX}`,
 * created with mode 0600 and refused when others can read it. A fingerprint is
 * `SHA256:` followed by the base64 (no padding) of SHA-256 over the public key, the form SSH
 * prints. Secret keys are never printed: a key pair inspects as its fingerprint alone.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { dirname } from "node:path";

/** An X25519 key pair whose secret half never shows in logs or inspection. */
export class StaticKeyPair {
  /** The public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  #secretKey: Uint8Array;

  /**
   * Wraps a key pair.
   *
   * @param secretKey The 32-byte secret key.
   * @param publicKey The matching public key (derived when omitted).
   * @throws {RangeError} If a key is not 32 bytes or the public key does not match.
   */
  constructor(secretKey: Uint8Array, publicKey?: Uint8Array) {
    if (secretKey.length !== 32) {
      throw new RangeError(`An X25519 secret key is 32 bytes, got ${secretKey.length}`);
    }
    const derived = x25519.getPublicKey(secretKey);
    if (publicKey !== undefined && !constantTimeEqual(publicKey, derived)) {
      throw new RangeError("The public key does not match the secret key");
    }
    this.#secretKey = secretKey.slice();
    this.publicKey = derived;
  }

  /**
   * A new random key pair.
   *
   * @returns The key pair.
   */
  static generate(): StaticKeyPair {
    const secret = crypto.getRandomValues(new Uint8Array(32));
    try {
      return new StaticKeyPair(secret);
    } finally {
      secret.fill(0);
    }
  }

  /** The secret key (a copy); handle with care. */
  get secretKey(): Uint8Array {
    return this.#secretKey.slice();
  }

  /** The public key's fingerprint. */
  get fingerprint(): string {
    return fingerprint(this.publicKey);
  }

  /** Overwrites the secret key with zeros; the pair is unusable afterwards. */
  wipe(): void {
    this.#secretKey.fill(0);
  }

  /** Shows the fingerprint only. */
  toString(): string {
    return `StaticKeyPair(${this.fingerprint})`;
  }

  /** Shows the fingerprint only, in `console.log` and `Deno.inspect`. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }

  /** Shows the fingerprint only, in `JSON.stringify`. */
  toJSON(): { fingerprint: string } {
    return { fingerprint: this.fingerprint };
  }
}

/**
 * The fingerprint of a public key: `SHA256:` and the unpadded base64 of its SHA-256.
 *
 * @param publicKey The 32-byte public key.
 * @returns The fingerprint.
 */
export function fingerprint(publicKey: Uint8Array): string {
  return `SHA256:${btoa(String.fromCharCode(...sha256(publicKey))).replace(/=+$/, "")}`;
}

/** A key file that exists but cannot be used. */
export class KeyFileError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong with which file.
   */
  constructor(message: string) {
    super(message);
    this.name = "KeyFileError";
  }
}

function _hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function _fromHex(text: unknown, what: string, path: string): Uint8Array {
  if (typeof text !== "string" || !/^[0-9a-f]{64}$/i.test(text)) {
    throw new KeyFileError(`Key file ${path} has no valid ${what} (64 hex digits)`);
  }
  return Uint8Array.from(text.match(/../g)!, (pair) => parseInt(pair, 16));
}

/**
 * Loads the static key pair from `path`, creating the file (mode 0600, and its folder) with a
 * new random key when it does not exist.
 *
 * @param path The key file.
 * @returns The key pair and whether it was just created.
 * @throws {KeyFileError} If the file is readable by group or others, malformed, or its keys
 *   do not match.
 */
export async function loadOrCreateKeyFile(
  path: string,
): Promise<{ key: StaticKeyPair; created: boolean }> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw new KeyFileError(
        `Key file ${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}); ` +
          `run chmod 600 on it`,
      );
    }
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    const key = StaticKeyPair.generate();
    const secret = key.secretKey;
    const body = JSON.stringify({
      format: "fedgpu-key",
      version: 1,
      publicKey: _hex(key.publicKey),
      secretKey: _hex(secret),
    });
    secret.fill(0);
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeTextFile(path, body + "\n", { mode: 0o600, createNew: true });
    await Deno.chmod(path, 0o600);
    return { key, created: true };
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyFileError(`Key file ${path} is not JSON`);
  }
  if (parsed?.format !== "fedgpu-key" || parsed.version !== 1) {
    throw new KeyFileError(`Key file ${path} is not a fedgpu key file of version 1`);
  }
  const secret = _fromHex(parsed.secretKey, "secret key", path);
  try {
    return {
      key: new StaticKeyPair(secret, _fromHex(parsed.publicKey, "public key", path)),
      created: false,
    };
  } catch (error) {
    throw new KeyFileError(`Key file ${path}: ${(error as Error).message}`);
  } finally {
    secret.fill(0);
  }
}

/**
 * Compares two byte arrays in time independent of where they differ.
 *
 * @param a One array.
 * @param b The other.
 * @returns Whether they are equal.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
