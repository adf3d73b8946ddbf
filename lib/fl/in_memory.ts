/**
 * In-process members of a round: each wraps a {@linkcode Participant} and answers the round
 * driver's messages as a networked client would, without a network. Messages are handed over
 * as objects; the round's encoded model is decoded once per task and shared.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { modelFromBytes } from "../nn/codec.ts";
import type { Model } from "../nn/model.ts";
import type { Participant } from "./participant.ts";
import type { FlMessage, TaskMessage, UpdateMessage } from "./protocol.ts";
import type { Awaited, Member } from "./round.ts";
import { SUPPORTED_STAGES } from "./update.ts";

/** Runs jobs one after another (clients of one process share one backend). */
export class JobQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * Queues a job.
   *
   * @param job The job.
   * @returns Its result.
   */
  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(job);
    this.#tail = result.catch(() => {});
    return result;
  }
}

/** The decoded model of the latest task, shared by every in-process member. */
export class SharedModelCache {
  #bytes: Uint8Array | null = null;
  #model: Model | null = null;

  /**
   * The model `bytes` encode, decoded once.
   *
   * @param bytes A task's model.
   * @returns The model (clone it before training).
   */
  get(bytes: Uint8Array): Model {
    if (this.#bytes !== bytes || this.#model === null) {
      this.#model = modelFromBytes(bytes);
      this.#bytes = bytes;
    }
    return this.#model;
  }
}

interface Deferred {
  promise: Promise<Promise<FlMessage>>;
  resolve: (reply: Promise<FlMessage>) => void;
}

/** A {@linkcode Member} that is a {@linkcode Participant} in this process. */
export class InMemoryMember implements Member {
  /** The client's id. */
  readonly id: string;
  /** Its key. */
  readonly key: number;
  /** Update stages it supports. */
  readonly stages: readonly string[] = SUPPORTED_STAGES;
  readonly #participant: Participant;
  readonly #queue: JobQueue;
  readonly #models: SharedModelCache;
  readonly #mailbox = new Map<string, Deferred>();
  #held: (() => Promise<UpdateMessage>) | null = null;
  readonly #lazy: boolean;

  /**
   * Creates the member.
   *
   * @param participant The client.
   * @param key Its key.
   * @param queue Where its training and evaluation jobs run (shared with the other members).
   * @param models The shared model decoder.
   * @param options `lazy`: train when the update is collected rather than when the task
   *   arrives (one update in memory at a time; the same bits). Without it, training starts at
   *   once (parallel workers train a round's clients together).
   */
  constructor(
    participant: Participant,
    key: number,
    queue: JobQueue,
    models: SharedModelCache,
    options: { lazy?: boolean } = {},
  ) {
    this.#lazy = options.lazy ?? false;
    this.#participant = participant;
    this.id = participant.id;
    this.key = key;
    participant.key = key;
    this.#queue = queue;
    this.#models = models;
  }

  /** The examples it holds. */
  get examples(): number {
    return this.#participant.examples;
  }

  #slot(type: Awaited, task: number): Deferred {
    const key = `${type}:${task}`;
    let slot = this.#mailbox.get(key);
    if (slot === undefined) {
      let resolve!: (reply: Promise<FlMessage>) => void;
      const promise = new Promise<Promise<FlMessage>>((r) => resolve = r);
      slot = { promise, resolve };
      this.#mailbox.set(key, slot);
    }
    return slot;
  }

  #post(type: Awaited, task: number, reply: Promise<FlMessage>): void {
    reply.catch(() => {});
    this.#slot(type, task).resolve(reply);
  }

  /**
   * Hands the client a message; its answer is posted for {@linkcode InMemoryMember.expect}.
   *
   * @param message The message.
   * @returns True.
   */
  send(message: FlMessage, _timeoutMs: number): Promise<boolean> {
    const participant = this.#participant;
    switch (message.type) {
      case "task": {
        const task = message as TaskMessage;
        const model = this.#models.get(task.model);
        const train = () => this.#queue.run(() => participant.train(task, model));
        const ready = { type: "ready" as const, task: task.task, examples: participant.examples };
        if (this.#lazy) {
          // Trained when collected: one update in memory at a time, as a server holds them.
          this.#held = train;
          this.#post("ready", task.task, Promise.resolve(ready));
        } else {
          const update = train();
          update.catch(() => {});
          this.#held = () => update;
          this.#post("ready", task.task, update.then(() => ready));
        }
        break;
      }
      case "collect": {
        const held = this.#held?.();
        this.#held = null;
        this.#post(
          "update",
          message.task,
          held ?? Promise.reject(new Error(`Task ${message.task} is not held`)),
        );
        break;
      }
      case "evaluate":
        this.#post(
          "evaluation",
          message.task,
          this.#queue.run(() => participant.evaluate(message)),
        );
        break;
      case "stage":
        this.#post("stage-reply", message.task, participant.stage(message));
        break;
      default:
        break;
    }
    return Promise.resolve(true);
  }

  /**
   * The client's answer of `type` for `task`.
   *
   * @returns The message; rejects with the client's failure.
   */
  async expect(type: Awaited, task: number, _timeoutMs: number): Promise<FlMessage | string> {
    const reply = await this.#slot(type, task).promise;
    this.#mailbox.delete(`${type}:${task}`);
    return await reply;
  }

  /**
   * An in-process client that sends an invalid update is a bug: the round fails with it.
   *
   * @throws {RangeError} Always.
   */
  fail(code: string, message: string): Promise<void> {
    return Promise.reject(new RangeError(`Client ${this.id} (${code}): ${message}`));
  }
}
