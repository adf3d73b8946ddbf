/**
 * One round driver for the server and the simulation: select → configure → run the round's
 * workflow → aggregate in a fixed order → evaluate → record. The server adds the checkpoint
 * after each round; the simulation runs the same driver over in-process members
 * (`in_memory.ts`), so "same answer both ways" holds by construction.
 *
 * A *workflow* is a named sequence of stages with per-stage deadlines and dropout bookkeeping.
 * The default, {@linkcode TRAIN_COLLECT}, sends every sampled client its task, waits for each
 * to say `ready`, then collects the updates one at a time in ascending client-key order (so
 * the aggregate's bits do not depend on who finished first, and the server's memory stays
 * O(parameters)). Workflows of several stages (secure aggregation) relay parcels among the
 * round's clients through {@linkcode WorkflowContext.exchange}.
 *
 * Random streams: sampling `[2, round]` (`[2, round, attempt]` for a retry), local shuffling
 * `[3, round, client key]`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { modelToBytes } from "../nn/codec.ts";
import type { Model } from "../nn/model.ts";
import { Rng } from "../rng.ts";
import type { LocalTraining } from "./local.ts";
import type {
  EvaluationMessage,
  FlMessage,
  StageReplyMessage,
  TaskMessage,
  UpdateMessage,
} from "./protocol.ts";
import type { Strategy } from "./strategies/strategy.ts";
import { createPipeline, invertPipeline, type StageSpec, type UpdateStage } from "./update.ts";

/** Stream keys of the random numbers of a run. */
export const STREAM = { partition: 1, sample: 2, train: 3 } as const;

/** The messages a member is awaited for. */
export type Awaited = "ready" | "update" | "evaluation" | "stage-reply";

/** A client as the round driver sees it: a networked connection or an in-process client. */
export interface Member {
  /** The client's id. */
  readonly id: string;
  /** Its key: orders clients and names their random streams. */
  readonly key: number;
  /** The examples it says it holds. */
  readonly examples: number;
  /** The update stages it supports. */
  readonly stages: readonly string[];
  /**
   * Sends a message; false (the member is gone) if it fails or misses `timeoutMs`.
   */
  send(message: FlMessage, timeoutMs: number): Promise<boolean>;
  /**
   * Waits for the member's message of `type` for `task`: the message, or a string saying why
   * it will not come (the member drops out). A rejection is fatal to the round.
   */
  expect(type: Awaited, task: number, timeoutMs: number): Promise<FlMessage | string>;
  /** Tells the member what it did wrong and ends it. */
  fail(code: string, message: string): Promise<void>;
}

/** Why a sampled client's update is missing from a round. */
export interface DroppedClient {
  /** The client's id. */
  id: string;
  /** What happened: disconnected, timed out, or sent an invalid update. */
  reason: string;
}

/** The settings of rounds. */
export interface RoundSettings {
  /** Seed of sampling and local shuffling. */
  seed: number;
  /** Fraction C of the candidates sampled each round. */
  fraction: number;
  /** Fewest updates a round needs; with fewer it is retried. */
  minUpdates: number;
  /** Attempts at a round before it fails. */
  maxAttempts: number;
  /** How long clients have to train (the `train` stage), in ms. */
  roundTimeoutMs: number;
  /** How long one update may take to arrive once collected, in ms. */
  uploadTimeoutMs: number;
  /** The run's local training (a strategy may change it per round). */
  training: LocalTraining;
  /** The update pipeline every client applies. */
  pipeline: StageSpec[];
}

/**
 * The clients a round trains: `max(round(fraction * count), 1)` of `count` clients drawn
 * without replacement from the stream `[2, round]` (`[2, round, attempt]` for a retried
 * round), as ascending indices.
 *
 * @param seed The run's seed.
 * @param round The round number.
 * @param count Clients to sample from.
 * @param fraction Fraction C in (0, 1].
 * @param attempt The attempt at the round, from 0.
 * @returns The sampled indices, ascending.
 */
export function sampleClients(
  seed: number,
  round: number,
  count: number,
  fraction: number,
  attempt = 0,
): number[] {
  const perRound = Math.max(Math.round(fraction * count), 1);
  const stream = attempt === 0 ? [STREAM.sample, round] : [STREAM.sample, round, attempt];
  return Array.from(new Rng(seed, stream).permutation(count).subarray(0, perRound))
    .sort((a, b) => a - b);
}

/** What a workflow works with in one attempt at a round. */
export interface WorkflowContext {
  /** The round, from 1. */
  readonly round: number;
  /** The attempt, from 0. */
  readonly attempt: number;
  /** The task id of this attempt (every message of the round repeats it). */
  readonly task: number;
  /** The sampled clients that hold data, in ascending key order. */
  readonly members: readonly Member[];
  /** The round settings. */
  readonly settings: RoundSettings;
  /** The task message for a member (the encoded model is shared, not copied). */
  taskFor(member: Member): TaskMessage;
  /** Leaves a member out of the round with a reason. */
  drop(member: Member, reason: string): void;
  /** Whether the member is still in the round. */
  live(member: Member): boolean;
  /**
   * Checks an update (length, codec, pipeline) and folds it into the strategy; an invalid
   * one fails the member and drops it.
   *
   * @returns Whether it was aggregated.
   */
  accumulate(member: Member, update: UpdateMessage): Promise<boolean>;
  /**
   * One relay stage: each live member is sent the parcels other members addressed to it in
   * the previous exchange, and answers with parcels of its own; members that do not answer
   * within `timeoutMs` drop out. Parcels addressed to the server (key -1) are returned.
   *
   * @returns The server's parcels by sender key.
   */
  exchange(stage: string, timeoutMs: number): Promise<Map<number, Uint8Array[]>>;
}

/** A named sequence of stages run by the round driver. */
export interface Workflow {
  /** Its name, for logs. */
  readonly name: string;
  /** Its stages' names, in order. */
  readonly stages: readonly string[];
  /** Runs one attempt at a round; updates reach the strategy through `accumulate`. */
  run(context: WorkflowContext): Promise<void>;
}

/**
 * The default workflow: `train` (every member gets its task and says `ready` within the
 * round's deadline), then `collect` (updates pulled one at a time in ascending key order).
 */
export const TRAIN_COLLECT: Workflow = Object.freeze({
  name: "train-collect",
  stages: Object.freeze(["train", "collect"]),
  async run(context: WorkflowContext): Promise<void> {
    const { members, task, settings } = context;
    const readies = members.map((m) => m.expect("ready", task, settings.roundTimeoutMs));
    await Promise.all(
      members.map((member) => member.send(context.taskFor(member), settings.roundTimeoutMs)),
    );
    for (let i = 0; i < members.length; i++) {
      const member = members[i]!;
      const ready = await readies[i]!;
      if (typeof ready === "string") {
        context.drop(member, ready);
        continue;
      }
      const collected = member.expect("update", task, settings.uploadTimeoutMs);
      await member.send({ type: "collect", task }, settings.uploadTimeoutMs);
      const update = await collected;
      if (typeof update === "string") context.drop(member, update);
      else await context.accumulate(member, update as UpdateMessage);
    }
  },
});

/** What came of one round. */
export interface RoundOutcome {
  /** The round number. */
  round: number;
  /** Attempts it took. */
  attempts: number;
  /** Test loss and accuracy of the new model (NaN without test data). */
  metrics: { loss: number; accuracy: number };
  /** Example-weighted loss and accuracy on the clients' data (NaN unless asked). */
  clientMetrics: { loss: number; accuracy: number };
  /** Example-weighted mean training loss the clients reported. */
  trainLoss: number;
  /** Members sampled in the last attempt, in key order. */
  sampled: Member[];
  /** Members whose updates were aggregated, in aggregation order. */
  delivered: Member[];
  /** Sampled members left out, and why. */
  dropped: DroppedClient[];
  /** Examples behind the aggregated updates. */
  examples: number;
  /** Candidates when the round was sampled. */
  connected: number;
}

/** A round that got too few updates in every attempt. */
export class RoundError extends Error {
  /** `round-failed`: a round got too few updates in every attempt. */
  readonly code: "round-failed";

  /**
   * Creates the error.
   *
   * @param code What went wrong.
   * @param message A sentence saying so.
   */
  constructor(code: "round-failed", message: string) {
    super(message);
    this.name = "ServerError";
    this.code = code;
  }
}

/** Options of {@linkcode RoundDriver}. */
export interface RoundDriverOptions {
  /** The global model, updated in place after each round. */
  model: Model;
  /** The aggregation strategy. */
  strategy: Strategy;
  /** The workflow (default {@linkcode TRAIN_COLLECT}). */
  workflow?: Workflow;
  /** The round settings. */
  settings: RoundSettings;
  /** The candidates of a round, in ascending key order. */
  candidates(): Member[];
  /** Resolves once `count` candidates exist. */
  waitForCandidates(count: number): Promise<void>;
  /** Fewest candidates a round waits for (default 1). */
  minCandidates?: number;
  /** Scores the new global model on held-out data. */
  evaluate(model: Model): Promise<{ loss: number; accuracy: number }>;
  /** Ask the delivered clients to score the new model on their data. */
  clientEval?: boolean;
  /** The next task id (unique within the run). */
  nextTask(): number;
  /** Where log lines go. */
  log(line: string): void;
}

/** Runs rounds. */
export class RoundDriver {
  readonly #options: RoundDriverOptions;
  readonly #workflow: Workflow;
  readonly #pipeline: UpdateStage[];

  /**
   * Creates a driver.
   *
   * @param options The model, strategy, workflow, settings and the members' source.
   * @throws {RangeError} If the pipeline is invalid.
   */
  constructor(options: RoundDriverOptions) {
    this.#options = options;
    this.#workflow = options.workflow ?? TRAIN_COLLECT;
    this.#pipeline = createPipeline(options.settings.pipeline);
  }

  /**
   * Runs one round to its end, retrying with a fresh sample while too few updates arrive.
   *
   * @param round The round number.
   * @returns The outcome; the model holds the new global parameters.
   * @throws {RoundError} If every attempt got too few updates.
   */
  async run(round: number): Promise<RoundOutcome> {
    const { settings, strategy, model, log } = this.#options;
    const minCandidates = this.#options.minCandidates ?? 1;
    for (let attempt = 0;; attempt++) {
      if (this.#options.candidates().length < minCandidates) {
        log(
          `round ${round}: waiting for ${minCandidates} clients ` +
            `(${this.#options.candidates().length} connected)`,
        );
      }
      await this.#options.waitForCandidates(minCandidates);
      const result = await this.#attempt(round, attempt);
      if (strategy.count >= settings.minUpdates) {
        model.params.set(await strategy.finish());
        const metrics = await this.#options.evaluate(model);
        const clientMetrics = this.#options.clientEval
          ? await this.#clientEvaluation(result.delivered)
          : { loss: NaN, accuracy: NaN };
        return { ...result, round, attempts: attempt + 1, metrics, clientMetrics };
      }
      const message = `round ${round}: ${strategy.count} of ${result.sampled.length} updates ` +
        `arrived, ${settings.minUpdates} needed`;
      if (attempt + 1 >= settings.maxAttempts) {
        throw new RoundError(
          "round-failed",
          `${message}, in each of ${settings.maxAttempts} attempts`,
        );
      }
      log(`${message}; retrying with a new sample`);
    }
  }

  /** One attempt: select, configure, run the workflow over the strategy. */
  async #attempt(round: number, attempt: number) {
    const { settings, strategy, model } = this.#options;
    const candidates = this.#options.candidates();
    const context = {
      seed: settings.seed,
      round,
      attempt,
      candidates: candidates.length,
      fraction: settings.fraction,
    };
    const indices = strategy.select?.(context) ??
      sampleClients(settings.seed, round, candidates.length, settings.fraction, attempt);
    indices.forEach((index, i) => {
      if (!Number.isInteger(index) || index < 0 || index >= candidates.length) {
        throw new RangeError(
          `Strategy ${strategy.name} selected candidate ${index} of ${candidates.length}`,
        );
      }
      if (i > 0 && index <= indices[i - 1]!) {
        throw new RangeError(`Strategy ${strategy.name} must select ascending distinct candidates`);
      }
    });
    const picked = indices.map((index) => candidates[index]!);
    const training = strategy.configure?.(round, settings.training) ?? settings.training;
    const task = this.#options.nextTask();
    const bytes = modelToBytes(model);
    const members = picked.filter((member) => member.examples > 0);
    const dropped: DroppedClient[] = [];
    const gone = new Set<Member>();
    const delivered: Member[] = [];
    let examples = 0;
    let trainLossSum = 0;
    let inboxes = new Map<number, { from: number[]; data: Uint8Array[] }>();
    const pipeline = this.#pipeline;
    const params = model.params.length;
    const drop = (member: Member, reason: string) => {
      if (gone.has(member)) return;
      gone.add(member);
      dropped.push({ id: member.id, reason });
    };
    const workflowContext: WorkflowContext = {
      round,
      attempt,
      task,
      members,
      settings,
      taskFor: (member) => ({
        type: "task",
        task,
        round,
        model: bytes,
        training,
        pipeline: settings.pipeline,
        seed: settings.seed,
        stream: [STREAM.train, round, member.key],
        timeoutMs: settings.roundTimeoutMs,
      }),
      drop,
      live: (member) => !gone.has(member),
      accumulate: async (member, update) => {
        try {
          if (update.delta.length !== params) {
            throw new RangeError(
              `Update has ${update.delta.length} values, the model has ${params}`,
            );
          }
          const delta = invertPipeline(pipeline, update.stages, update.delta);
          strategy.accumulate(delta, update.examples);
        } catch (error) {
          if (!(error instanceof RangeError)) throw error;
          await member.fail("invalid", error.message);
          drop(member, `invalid update: ${error.message}`);
          return false;
        }
        delivered.push(member);
        examples += update.examples;
        trainLossSum += update.loss * update.examples;
        return true;
      },
      exchange: async (stage, timeoutMs) => {
        const live = members.filter((member) => !gone.has(member));
        const replies = live.map((member) => member.expect("stage-reply", task, timeoutMs));
        await Promise.all(live.map((member) => {
          const inbox = inboxes.get(member.key) ?? { from: [], data: [] };
          return member.send({ type: "stage", task, stage, ...inbox }, timeoutMs);
        }));
        const next = new Map<number, { from: number[]; data: Uint8Array[] }>();
        const toServer = new Map<number, Uint8Array[]>();
        const keys = new Set(live.map((member) => member.key));
        for (let i = 0; i < live.length; i++) {
          const member = live[i]!;
          const reply = await replies[i]!;
          if (typeof reply === "string") {
            drop(member, reply);
            continue;
          }
          const { to, data, stage: answered } = reply as StageReplyMessage;
          const stranger = to.find((key) => key !== -1 && !keys.has(key));
          if (answered !== stage || stranger !== undefined) {
            const message = answered !== stage
              ? `Answered stage ${answered} in stage ${stage}`
              : `Addressed client ${stranger}, which is not in the round`;
            await member.fail("invalid", message);
            drop(member, `invalid stage reply: ${message}`);
            continue;
          }
          to.forEach((key, j) => {
            if (key === -1) {
              const parcels = toServer.get(member.key) ?? [];
              parcels.push(data[j]!);
              toServer.set(member.key, parcels);
              return;
            }
            const inbox = next.get(key) ?? { from: [], data: [] };
            inbox.from.push(member.key);
            inbox.data.push(data[j]!);
            next.set(key, inbox);
          });
        }
        inboxes = next;
        return toServer;
      },
    };
    strategy.begin(model.params);
    await this.#workflow.run(workflowContext);
    return {
      sampled: picked,
      delivered,
      dropped,
      examples,
      trainLoss: examples > 0 ? trainLossSum / examples : NaN,
      connected: candidates.length,
    };
  }

  async #clientEvaluation(members: Member[]): Promise<{ loss: number; accuracy: number }> {
    const task = this.#options.nextTask();
    const model = modelToBytes(this.#options.model);
    const timeoutMs = this.#options.settings.roundTimeoutMs;
    const pending = members.map((member) => member.expect("evaluation", task, timeoutMs));
    await Promise.all(
      members.map((member) => member.send({ type: "evaluate", task, model }, timeoutMs)),
    );
    const answers = await Promise.all(pending);
    let examples = 0;
    let loss = 0;
    let correct = 0;
    for (const answer of answers) {
      if (typeof answer === "string") continue;
      const evaluation = answer as EvaluationMessage;
      if (evaluation.examples === 0) continue;
      examples += evaluation.examples;
      loss += evaluation.loss * evaluation.examples;
      correct += evaluation.accuracy * evaluation.examples;
    }
    return examples === 0
      ? { loss: NaN, accuracy: NaN }
      : { loss: loss / examples, accuracy: correct / examples };
  }
}
