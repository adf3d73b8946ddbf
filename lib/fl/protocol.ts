/**
 * The federated-learning protocol between a server and its clients, version 2: msgpack
 * messages (see `lib/net/message.ts`) over a Noise secure channel, each validated field by
 * field on receipt.
 *
 * ```
 * client                                   server
 *   hello {id, examples, backends,   ->
 *          stages}
 *                                    <-    welcome {round}          (or error, then close)
 *                                    <-    task {task, round, model, epochs, batchSize, lr,
 *                                                momentum, weightDecay, proximalMu, pipeline,
 *                                                seed, stream, timeoutMs}
 *   ready {task, examples}           ->                             (trained; update held)
 *                                    <-    collect {task}           (one client at a time)
 *   update {task, stages, codec,     ->
 *           delta, examples, loss,
 *           accuracy, seconds}
 *                                    <-    stage {task, stage, from, data}   (workflows that
 *   stage-reply {task, stage, to,    ->                                relay among clients)
 *                data}
 *                                    <-    evaluate {task, model}   (optional)
 *   evaluation {task, examples,      ->
 *               loss, accuracy}
 *                                    <-    bye {reason}             (training is over)
 *   error {code, message} either way, then the sender closes the connection
 * ```
 *
 * A client announces a trained update with `ready` and sends it only when the server
 * `collect`s it: the server pulls updates one at a time in a fixed order (ascending client
 * key), so its memory stays O(parameters) however many clients report, and the aggregate's
 * bits do not depend on which client finished first.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import type { SecureChannel } from "../net/channel.ts";
import {
  MessageError,
  type MessageProtocol,
  type RawMessage,
  read,
  receiveMessage,
  sendMessage,
} from "../net/message.ts";
import { float32FromBytes, float32ToBytes } from "../nn/codec.ts";
import { LOCAL_TRAINING_FIELDS, type LocalTraining } from "./local.ts";
import type { StageSpec } from "./update.ts";

/** The protocol's name and version on every message. */
export const FL_PROTOCOL: MessageProtocol = {
  name: "fedgpu-fl",
  version: 2,
  types: [
    "hello",
    "welcome",
    "task",
    "ready",
    "collect",
    "update",
    "evaluate",
    "evaluation",
    "stage",
    "stage-reply",
    "error",
    "bye",
  ],
};

/** What a client id may look like: 1-64 letters, digits, `.`, `_`, `:` or `-`. */
export const CLIENT_ID_PATTERN: RegExp = /^[A-Za-z0-9._:-]{1,64}$/;

/** The most examples a client may report. */
const _MAX_EXAMPLES = 2 ** 40;

/** A client introduces itself. */
export interface HelloMessage {
  /** The message type. */
  type: "hello";
  /** The client's id, unique among the server's clients ({@linkcode CLIENT_ID_PATTERN}). */
  id: string;
  /** How many training examples it holds. */
  examples: number;
  /** The compute backends it can train with, such as `["cpu", "webgpu"]`. */
  backends: string[];
  /** The update stages it implements, such as `["clip"]` (see `update.ts`). */
  stages: string[];
}

/** The server admits a client. */
export interface WelcomeMessage {
  /** The message type. */
  type: "welcome";
  /** The round the server is at (the next to run). */
  round: number;
  /** The client key the server uses for this client's random streams and order. */
  key: number;
}

/** The server asks a client to train. */
export interface TaskMessage {
  /** The message type. */
  type: "task";
  /** The task's id, unique within the server's run; `ready` and `update` repeat it. */
  task: number;
  /** The round number, from 1. */
  round: number;
  /** The global model, as `modelToBytes` encodes it. */
  model: Uint8Array;
  /** How to train (sent as top-level fields). */
  training: LocalTraining;
  /** The update stages to apply, in order. */
  pipeline: StageSpec[];
  /** Seed of the local shuffling stream. */
  seed: number;
  /** The stream path of the local shuffling: `new Rng(seed, stream)`. */
  stream: number[];
  /** How long the server waits for `ready`, in milliseconds. */
  timeoutMs: number;
}

/** A client has trained and holds its update. */
export interface ReadyMessage {
  /** The message type. */
  type: "ready";
  /** The task's id. */
  task: number;
  /** The examples it trained on. */
  examples: number;
}

/** The server asks a ready client for its update. */
export interface CollectMessage {
  /** The message type. */
  type: "collect";
  /** The task's id. */
  task: number;
}

/** A client's update: its trained parameters minus the global parameters it was sent. */
export interface UpdateMessage {
  /** The message type. */
  type: "update";
  /** The task's id. */
  task: number;
  /** The ids of the stages the update went through, in order. */
  stages: string[];
  /** How `delta` is encoded: `float32`. */
  codec: string;
  /** The parameter delta. */
  delta: Float32Array;
  /** The examples it trained on (the update's weight). */
  examples: number;
  /** Mean training loss of its last local epoch. */
  loss: number;
  /** Training accuracy of its last local epoch. */
  accuracy: number;
  /** Seconds it spent training. */
  seconds: number;
}

/** The server asks a client to score a model on its local data. */
export interface EvaluateMessage {
  /** The message type. */
  type: "evaluate";
  /** The request's id. */
  task: number;
  /** The model, as `modelToBytes` encodes it. */
  model: Uint8Array;
}

/** A client's score of a model on its local data. */
export interface EvaluationMessage {
  /** The message type. */
  type: "evaluation";
  /** The request's id. */
  task: number;
  /** Examples scored. */
  examples: number;
  /** Mean loss. */
  loss: number;
  /** Accuracy. */
  accuracy: number;
}

/** The server hands a client the messages other clients addressed to it in a stage. */
export interface StageMessage {
  /** The message type. */
  type: "stage";
  /** The task's id. */
  task: number;
  /** The workflow stage, such as `share-keys`. */
  stage: string;
  /** The senders' client keys, one per item of `data`. */
  from: number[];
  /** The payloads. */
  data: Uint8Array[];
}

/** A client's answer to a stage: payloads for other clients of the round (or the server). */
export interface StageReplyMessage {
  /** The message type. */
  type: "stage-reply";
  /** The task's id. */
  task: number;
  /** The workflow stage. */
  stage: string;
  /** The addressees' client keys (-1: the server), one per item of `data`. */
  to: number[];
  /** The payloads. */
  data: Uint8Array[];
}

/** Why an end is closing the connection. */
export interface ErrorMessage {
  /** The message type. */
  type: "error";
  /** A short code, such as `invalid` or `duplicate-id`. */
  code: string;
  /** A sentence for the log. */
  message: string;
}

/** The server is done with the client: training is over. */
export interface ByeMessage {
  /** The message type. */
  type: "bye";
  /** Why, for the log. */
  reason: string;
}

/** Any message of the protocol. */
export type FlMessage =
  | HelloMessage
  | WelcomeMessage
  | TaskMessage
  | ReadyMessage
  | CollectMessage
  | UpdateMessage
  | EvaluateMessage
  | EvaluationMessage
  | StageMessage
  | StageReplyMessage
  | ErrorMessage
  | ByeMessage;

/**
 * Validates a decoded message's fields.
 *
 * @param raw The decoded message (its envelope already checked).
 * @returns The typed message.
 * @throws {MessageError} `invalid` if a field is missing or out of range.
 */
export function parseFlMessage(raw: RawMessage): FlMessage {
  switch (raw.type) {
    case "hello":
      return {
        type: "hello",
        id: read.string(raw, "id", 64, CLIENT_ID_PATTERN),
        examples: read.int(raw, "examples", 0, _MAX_EXAMPLES),
        backends: read.strings(raw, "backends", 8, 16),
        stages: read.strings(raw, "stages", 32, 32),
      };
    case "welcome":
      return {
        type: "welcome",
        round: read.int(raw, "round", 1),
        key: read.int(raw, "key"),
      };
    case "task":
      return {
        type: "task",
        task: read.int(raw, "task", 1),
        round: read.int(raw, "round", 1),
        model: read.bytes(raw, "model"),
        training: _readTraining(raw),
        pipeline: _readPipeline(raw),
        seed: read.int(raw, "seed"),
        stream: read.ints(raw, "stream", 8),
        timeoutMs: read.number(raw, "timeoutMs", 0),
      };
    case "ready":
      return {
        type: "ready",
        task: read.int(raw, "task", 1),
        examples: read.int(raw, "examples", 1, _MAX_EXAMPLES),
      };
    case "collect":
      return { type: "collect", task: read.int(raw, "task", 1) };
    case "update": {
      const bytes = read.bytes(raw, "delta");
      if (bytes.length % 4 !== 0) {
        throw new MessageError(
          "invalid",
          `Field delta of an update message must hold float32 values, got ${bytes.length} bytes`,
        );
      }
      return {
        type: "update",
        task: read.int(raw, "task", 1),
        stages: read.strings(raw, "stages", 32, 32),
        codec: _readCodec(raw),
        delta: float32FromBytes(bytes),
        examples: read.int(raw, "examples", 1, _MAX_EXAMPLES),
        loss: read.metric(raw, "loss"),
        accuracy: read.metric(raw, "accuracy"),
        seconds: read.number(raw, "seconds", 0),
      };
    }
    case "evaluate":
      return { type: "evaluate", task: read.int(raw, "task", 1), model: read.bytes(raw, "model") };
    case "evaluation":
      return {
        type: "evaluation",
        task: read.int(raw, "task", 1),
        examples: read.int(raw, "examples", 0, _MAX_EXAMPLES),
        loss: read.metric(raw, "loss"),
        accuracy: read.metric(raw, "accuracy"),
      };
    case "stage":
      return {
        type: "stage",
        task: read.int(raw, "task", 1),
        stage: read.string(raw, "stage", 64),
        ..._readParcels(raw, "from", -1),
      };
    case "stage-reply": {
      const { from, data } = _readParcels(raw, "to", -1);
      return {
        type: "stage-reply",
        task: read.int(raw, "task", 1),
        stage: read.string(raw, "stage", 64),
        to: from,
        data,
      };
    }
    case "error":
      return {
        type: "error",
        code: read.string(raw, "code", 64),
        message: read.string(raw, "message", 4096),
      };
    case "bye":
      return { type: "bye", reason: read.string(raw, "reason", 4096) };
    default:
      throw new MessageError("unknown-type", `Unknown message type ${JSON.stringify(raw.type)}`);
  }
}

/** The most items one stage message carries. */
const _MAX_PARCELS = 1 << 16;

function _readTraining(raw: RawMessage): LocalTraining {
  return {
    epochs: read.int(raw, "epochs", 1, 1_000_000),
    batchSize: read.int(raw, "batchSize", 1, 1 << 24),
    lr: read.number(raw, "lr", Number.MIN_VALUE),
    momentum: read.number(raw, "momentum", 0, 1 - Number.EPSILON),
    weightDecay: read.number(raw, "weightDecay", 0),
    proximalMu: read.number(raw, "proximalMu", 0),
  };
}

function _readPipeline(raw: RawMessage): StageSpec[] {
  const value = raw.fields.pipeline;
  const bad = (why: string): never => {
    throw new MessageError("invalid", `Field pipeline of a task message ${why}`);
  };
  if (!Array.isArray(value) || value.length > 32) {
    bad("must be a list of at most 32 [id, ...params] stages");
  }
  return (value as unknown[]).map((item) => {
    if (!Array.isArray(item) || item.length < 1 || item.length > 17) {
      bad("must be a list of [id, ...params] stages");
    }
    const [id, ...params] = item as unknown[];
    if (typeof id !== "string" || !/^[a-z0-9-]{1,32}$/.test(id)) {
      bad("must name each stage with 1-32 of a-z, 0-9, -");
    }
    if (!params.every((p) => typeof p === "number" && Number.isFinite(p))) {
      bad("must give each stage finite numeric parameters");
    }
    return { id: id as string, params: params as number[] };
  });
}

function _readCodec(raw: RawMessage): string {
  const codec = read.string(raw, "codec", 32);
  if (codec !== "float32") {
    throw new MessageError(
      "invalid",
      `Field codec of an update message must be "float32", got ${JSON.stringify(codec)}`,
    );
  }
  return codec;
}

function _readParcels(
  raw: RawMessage,
  field: string,
  min: number,
): { from: number[]; data: Uint8Array[] } {
  const keys = read.ints(raw, field, _MAX_PARCELS, min);
  const data = raw.fields.data;
  if (
    !Array.isArray(data) || data.length !== keys.length ||
    !data.every((item) => item instanceof Uint8Array)
  ) {
    throw new MessageError(
      "invalid",
      `Field data of a ${raw.type} message must be a list of bytes, one per ${field}`,
    );
  }
  return { from: keys, data: data as Uint8Array[] };
}

/**
 * Sends a protocol message.
 *
 * @param channel The channel.
 * @param message The message.
 * @throws {ChannelError} If the channel fails.
 */
export function sendFl(channel: SecureChannel, message: FlMessage): Promise<void> {
  // Models and deltas go last and uncopied: a round's one encoded model serves every client.
  switch (message.type) {
    case "update": {
      const { type, delta, ...fields } = message;
      return sendMessage(channel, FL_PROTOCOL, type, fields, {
        key: "delta",
        bytes: float32ToBytes(delta),
      });
    }
    case "task": {
      const { type, model, training, pipeline, ...fields } = message;
      const flat: Record<string, unknown> = {
        ...fields,
        pipeline: pipeline.map((stage) => [stage.id, ...stage.params]),
      };
      for (const field of LOCAL_TRAINING_FIELDS) flat[field] = training[field];
      return sendMessage(channel, FL_PROTOCOL, type, flat, { key: "model", bytes: model });
    }
    case "evaluate": {
      const { type, model, ...fields } = message;
      return sendMessage(channel, FL_PROTOCOL, type, fields, { key: "model", bytes: model });
    }
    default: {
      const { type, ...fields } = message;
      return sendMessage(channel, FL_PROTOCOL, type, fields);
    }
  }
}

/**
 * Receives and validates a protocol message.
 *
 * @param channel The channel.
 * @returns The message.
 * @throws {ChannelError} If the channel fails.
 * @throws {MessageError} If the message is malformed, of another version or type, or has an
 *   invalid field.
 */
export async function receiveFl(channel: SecureChannel): Promise<FlMessage> {
  return parseFlMessage(await receiveMessage(channel, FL_PROTOCOL));
}

/**
 * The numeric key of a client id, which orders clients and names their random streams: the
 * id's value when it is a decimal integer below 2^48 (so clients `0` ... `K-1` get the keys
 * of an in-process simulation's clients), else 2^48 plus 32 bits of the id's SHA-256.
 *
 * @param id The client id.
 * @returns The key, an integer in [0, 2^53).
 */
export function clientKey(id: string): number {
  if (/^(0|[1-9][0-9]{0,14})$/.test(id) && Number(id) < 2 ** 48) return Number(id);
  const digest = sha256(new TextEncoder().encode(id));
  return 2 ** 48 + new DataView(digest.buffer, digest.byteOffset).getUint32(0);
}
