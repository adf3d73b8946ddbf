/**
 * The client side of a round, apart from any network: what a client does with a task (decode
 * the model, train locally, compute the delta, run the update pipeline), an evaluation request
 * or a workflow stage. The networked client (`client.ts`) and the in-process simulation
 * (`in_memory.ts`) both answer the server's messages through it, so both give the same bits.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Backend } from "../compute/backend.ts";
import type { Dataset } from "../data/dataset.ts";
import { modelFromBytes } from "../nn/codec.ts";
import type { Model } from "../nn/model.ts";
import { Rng } from "../rng.ts";
import type {
  EvaluateMessage,
  EvaluationMessage,
  StageMessage,
  StageReplyMessage,
  TaskMessage,
  UpdateMessage,
} from "./protocol.ts";
import {
  applyPipeline,
  computeDelta,
  createPipeline,
  SUPPORTED_STAGES,
  UPDATE_CODEC,
} from "./update.ts";

/** What a client does in a workflow stage: answers the parcels it got with parcels to send. */
export type StageHandler = (
  message: StageMessage,
  client: { id: string; key: number },
) => Promise<{ to: number[]; data: Uint8Array[] }> | { to: number[]; data: Uint8Array[] };

/** Trains a copy of the global model and returns its update (the default trains on a backend). */
export type Trainer = (
  model: Model,
  task: TaskMessage,
) => Promise<{ delta: Float32Array; loss: number; accuracy: number }>;

/** Options of {@linkcode Participant}. */
export interface ParticipantOptions {
  /** The client's id. */
  id: string;
  /** Its local data (never sent), or how to load it when needed. */
  data: Dataset | { n: number; load(): Dataset };
  /** The engine it trains and evaluates on. */
  backend: Backend;
  /** Handlers of workflow stages, by stage name. */
  stages?: Record<string, StageHandler>;
  /** Replaces the backend's training (the simulation's parallel workers use this). */
  trainer?: Trainer;
}

/**
 * One client's answers to the server's requests.
 *
 * @example Usage
 * ```ts ignore
 * const client = new Participant({ id: "7", data, backend });
 * const update = await client.train(task); // an update message, ready to send
 * ```
 */
export class Participant {
  /** The client's id. */
  readonly id: string;
  /** The examples it holds. */
  readonly examples: number;
  /** Its client key, once the server's welcome has told it (-1 before). */
  key: number = -1;
  readonly #data: Dataset | { n: number; load(): Dataset };
  readonly #backend: Backend;
  readonly #stages: Record<string, StageHandler>;
  readonly #trainer: Trainer;

  /**
   * Creates the participant.
   *
   * @param options Id, data, backend, stage handlers.
   */
  constructor(options: ParticipantOptions) {
    this.id = options.id;
    this.#data = options.data;
    this.examples = options.data.n;
    this.#backend = options.backend;
    this.#stages = options.stages ?? {};
    this.#trainer = options.trainer ?? ((model, task) => this.#trainOnBackend(model, task));
  }

  /** The local data. */
  data(): Dataset {
    const data = this.#data;
    return "load" in data ? data.load() : data;
  }

  /** The update stages this client implements. */
  get supportedStages(): string[] {
    return [...SUPPORTED_STAGES];
  }

  /**
   * Trains on a task and returns the update to send.
   *
   * @param task The task.
   * @param model The task's model, already decoded (default: decoded from the task).
   * @returns The update message.
   * @throws {RangeError} If the model does not fit the data, or the pipeline is unknown.
   * @throws {ModelFormatError} If the task's model bytes are malformed.
   */
  async train(task: TaskMessage, model?: Model): Promise<UpdateMessage> {
    const started = performance.now();
    const stages = createPipeline(task.pipeline);
    const local = model?.clone() ?? modelFromBytes(task.model);
    const result = await this.#trainer(local, task);
    const delta = applyPipeline(stages, result.delta);
    return {
      type: "update",
      task: task.task,
      stages: stages.map((stage) => stage.id),
      codec: UPDATE_CODEC,
      delta,
      examples: this.examples,
      loss: result.loss,
      accuracy: result.accuracy,
      seconds: (performance.now() - started) / 1000,
    };
  }

  async #trainOnBackend(
    model: Model,
    task: TaskMessage,
  ): Promise<{ delta: Float32Array; loss: number; accuracy: number }> {
    const global = model.params.slice();
    const result = await this.#backend.train(model, this.data(), {
      ...task.training,
      rng: new Rng(task.seed, task.stream),
    });
    return {
      delta: computeDelta(model.params, global),
      loss: result.last.loss,
      accuracy: result.last.accuracy,
    };
  }

  /**
   * Scores a model on the local data.
   *
   * @param request The evaluation request.
   * @returns The answer.
   * @throws {RangeError} If the model does not fit the data.
   */
  async evaluate(request: EvaluateMessage): Promise<EvaluationMessage> {
    const metrics = await this.#backend.evaluate(modelFromBytes(request.model), this.data());
    return {
      type: "evaluation",
      task: request.task,
      examples: metrics.examples,
      loss: metrics.loss,
      accuracy: metrics.accuracy,
    };
  }

  /**
   * Answers a workflow stage through its handler.
   *
   * @param message The stage message.
   * @returns The reply.
   * @throws {RangeError} If this client has no handler for the stage.
   */
  async stage(message: StageMessage): Promise<StageReplyMessage> {
    const handler = Object.hasOwn(this.#stages, message.stage)
      ? this.#stages[message.stage]
      : undefined;
    if (handler === undefined) {
      throw new RangeError(`This client has no handler for workflow stage ${message.stage}`);
    }
    const { to, data } = await handler(message, { id: this.id, key: this.key });
    return { type: "stage-reply", task: message.task, stage: message.stage, to, data };
  }
}
