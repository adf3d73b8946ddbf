/**
 * Server checkpoints: the global model, the rounds completed, the sampler's state and the
 * metrics so far, written atomically after every round so a killed server resumes where it
 * stopped and ends with the same bits as one that ran straight through.
 *
 * ```
 * file = "FGCK" || version (1 byte) || payload (msgpack map) || SHA-256(payload) (32 bytes)
 * payload = { round, model: bin (modelToBytes), sampler: { seed, task },
 *             strategy: { name, config: map, state: map (bytes kept bit for bit) },
 *             config: map, records: [map...], savedAt: ISO date string }
 * ```
 *
 * Writing goes to a temporary file beside the target, is flushed to disk, then renamed over
 * the target: a reader sees the old checkpoint or the new one, never a torn one.
 *
 * This module needs Deno.
 *
 * @module
 */

import { decode, encode } from "@msgpack/msgpack";
import { sha256 } from "@noble/hashes/sha2.js";
import { isRecord } from "../net/message.ts";
import { modelFromBytes, modelToBytes } from "../nn/codec.ts";
import type { Model } from "../nn/model.ts";
import type { StrategyState } from "./strategies/strategy.ts";

const _MAGIC = [0x46, 0x47, 0x43, 0x4b]; // "FGCK"
/** The checkpoint format version this library writes and reads. */
export const CHECKPOINT_VERSION = 2;
const _DIGEST = 32;

/** What is wrong with a checkpoint file. */
export type CheckpointErrorCode = "not-checkpoint" | "version" | "corrupt" | "mismatch";

/** A checkpoint that cannot be used; the file is left as it is. */
export class CheckpointError extends Error {
  /**
   * `not-checkpoint` (no magic), `version` (written by another format version), `corrupt`
   * (digest or content fails), or `mismatch` (it belongs to another run's settings).
   */
  readonly code: CheckpointErrorCode;

  /**
   * Creates the error.
   *
   * @param code What is wrong.
   * @param message A sentence naming the file.
   * @param options The underlying cause, if any.
   */
  constructor(code: CheckpointErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CheckpointError";
    this.code = code;
  }
}

/** A server's state between rounds. */
export interface Checkpoint {
  /** Rounds completed; the next round is `round + 1`. */
  round: number;
  /** The global model after `round` rounds. */
  model: Model;
  /** The sampler's state: the run's seed and the last task id issued. */
  sampler: { seed: number; task: number };
  /** The aggregation strategy: its name, hyperparameters and state. */
  strategy: {
    name: string;
    config: Record<string, number | string | boolean>;
    state: StrategyState;
  };
  /** The run's settings, to refuse resuming with different ones. */
  config: Record<string, number | string | boolean>;
  /** The record of every completed round, as JSON-ready maps. */
  records: Record<string, unknown>[];
}

/**
 * Encodes a checkpoint.
 *
 * @param checkpoint The state.
 * @returns The file's bytes.
 */
export function checkpointToBytes(checkpoint: Checkpoint): Uint8Array {
  const payload = encode({
    round: checkpoint.round,
    model: modelToBytes(checkpoint.model),
    sampler: checkpoint.sampler,
    strategy: checkpoint.strategy,
    config: checkpoint.config,
    records: checkpoint.records,
    savedAt: new Date().toISOString(),
  }, { ignoreUndefined: true });
  const bytes = new Uint8Array(5 + payload.length + _DIGEST);
  bytes.set(_MAGIC, 0);
  bytes[4] = CHECKPOINT_VERSION;
  bytes.set(payload, 5);
  bytes.set(sha256(payload), 5 + payload.length);
  return bytes;
}

/**
 * Decodes a checkpoint, checking its digest and every field.
 *
 * @param bytes The file's bytes.
 * @param name The file's name, for error messages.
 * @returns The state.
 * @throws {CheckpointError} `not-checkpoint`, `version` or `corrupt`.
 */
export function checkpointFromBytes(bytes: Uint8Array, name = "checkpoint"): Checkpoint {
  if (bytes.length < _MAGIC.length || _MAGIC.some((byte, i) => bytes[i] !== byte)) {
    throw new CheckpointError("not-checkpoint", `${name} is not a fedgpu checkpoint`);
  }
  if (bytes.length > 4 && bytes[4] !== CHECKPOINT_VERSION) {
    throw new CheckpointError(
      "version",
      `${name} has checkpoint format version ${bytes[4]}; this library reads version ` +
        CHECKPOINT_VERSION,
    );
  }
  if (bytes.length < 5 + _DIGEST) {
    throw new CheckpointError("corrupt", `${name} is corrupt: it is truncated`);
  }
  const payload = bytes.subarray(5, bytes.length - _DIGEST);
  const digest = sha256(payload);
  if (digest.some((byte, i) => bytes[bytes.length - _DIGEST + i] !== byte)) {
    throw new CheckpointError("corrupt", `${name} is corrupt: its digest does not match`);
  }
  try {
    const value = decode(payload);
    if (!isRecord(value)) throw new Error("the payload is not a map");
    const { round, model, sampler, strategy, config, records } = value;
    if (typeof round !== "number" || !Number.isInteger(round) || round < 0) {
      throw new Error("round is not a non-negative integer");
    }
    if (!(model instanceof Uint8Array)) throw new Error("model is not bytes");
    if (
      !isRecord(sampler) || !Number.isInteger(sampler.seed) || !Number.isInteger(sampler.task)
    ) {
      throw new Error("sampler is malformed");
    }
    if (
      !isRecord(strategy) || typeof strategy.name !== "string" || !isRecord(strategy.config) ||
      !isRecord(strategy.state)
    ) {
      throw new Error("strategy is malformed");
    }
    if (!isRecord(config)) throw new Error("config is not a map");
    if (!Array.isArray(records) || !records.every(isRecord)) {
      throw new Error("records is not a list of maps");
    }
    return {
      round,
      model: modelFromBytes(model),
      sampler: { seed: sampler.seed as number, task: sampler.task as number },
      strategy: {
        name: strategy.name,
        config: strategy.config as Checkpoint["strategy"]["config"],
        state: strategy.state as StrategyState,
      },
      config: config as Checkpoint["config"],
      records: records as Record<string, unknown>[],
    };
  } catch (cause) {
    throw new CheckpointError(
      "corrupt",
      `${name} is corrupt: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/**
 * Writes a checkpoint atomically: to a temporary file in the same folder, flushed to disk,
 * then renamed over `path`.
 *
 * @param path The checkpoint file.
 * @param checkpoint The state.
 */
export async function saveCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  const bytes = checkpointToBytes(checkpoint);
  const temporary = `${path}.${Deno.pid}.tmp`;
  const file = await Deno.open(temporary, { write: true, create: true, truncate: true });
  try {
    try {
      for (let offset = 0; offset < bytes.length;) {
        offset += await file.write(bytes.subarray(offset));
      }
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (error) {
    // The temporary file is ours (it was opened above): leave nothing behind.
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/**
 * Reads a checkpoint.
 *
 * @param path The checkpoint file.
 * @returns The state, or null if there is no file at `path`.
 * @throws {CheckpointError} If the file is not a valid checkpoint.
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint | null> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  return checkpointFromBytes(bytes, path);
}
