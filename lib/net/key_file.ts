/**
 * Key files: a server's persistent X25519 static key on disk.
 *
 * A key file is JSON, `{"format":"fedgpu-key","version":1,"publicKey":HEX,"secretKey":HEX}`,
 * created with mode 0600 and refused when others can read it. This module uses Deno's file
 * APIs; the key pair itself ({@linkcode StaticKeyPair}) is in the browser-compatible
 * `identity.ts`.
 *
 * This module needs Deno.
 *
 * @module
 */

import { dirname } from "node:path";
import { StaticKeyPair } from "./identity.ts";

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
