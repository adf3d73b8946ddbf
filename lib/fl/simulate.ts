/**
 * Federated learning simulated in one process: the server's loop of FedAvg (McMahan et al.
 * 2017, Algorithm 1) over clients that each hold a partition of a dataset.
 *
 * Random streams are keyed by the seed so that a round's outcome depends only on the seed,
 * the round number and the client ids: partition `[1]`, client sampling `[2, round]`, local
 * shuffling `[3, round, client]`.
 *
 * This module needs Deno.
 *
 * @module
 */

import { type Backend, type BackendKind, createBackend } from "../compute/backend.ts";
import { type Dataset, subset } from "../data/dataset.ts";
import { loadMnist } from "../data/mnist.ts";
import { partition, type PartitionScheme } from "../data/partition.ts";
import type { Model } from "../nn/model.ts";
import { mnist2nn } from "../nn/presets.ts";
import { Rng } from "../rng.ts";
import { InMemoryMember, JobQueue, SharedModelCache } from "./in_memory.ts";
import { type LocalTraining, localTraining } from "./local.ts";
import { checkPoolBackend, TrainerPool } from "./parallel.ts";
import { Participant, type StageHandler, type Trainer } from "./participant.ts";
import { RoundDriver, RoundError, sampleClients, STREAM, type Workflow } from "./round.ts";
import { createStrategy, type StrategyOptions } from "./strategies/create.ts";
import type { Strategy } from "./strategies/strategy.ts";
import type { StageSpec } from "./update.ts";

export { sampleClients, STREAM };

/** Options of {@linkcode simulate}. */
export interface SimulateOptions extends Partial<LocalTraining> {
  /** The initial global model, trained in place (default {@linkcode mnist2nn} of `seed`). */
  model?: Model;
  /** Data split over the clients (default MNIST's 60,000 training images). */
  train?: Dataset;
  /** Held-out data scored after each round (default MNIST's 10,000 test images). */
  test?: Dataset;
  /** Number of clients K (default 100). */
  clients?: number;
  /** Fraction C of clients sampled each round, in (0, 1] (default 0.1; at least one client). */
  fraction?: number;
  /** Number of rounds (default 100). */
  rounds?: number;
  /** How the training data is split (default "iid"). */
  partition?: PartitionScheme;
  /** Concentration of the Dirichlet partition (default 0.5). */
  alpha?: number;
  /** Shards per client of the "shards" partition (default 2). */
  shardsPerClient?: number;
  /**
   * The aggregation strategy: a strategy, or a name of `createStrategy` built on the backend's
   * weighted sum (default `fedavg`).
   */
  strategy?: Strategy | string;
  /** Hyperparameters of a strategy given by name. */
  strategyOptions?: StrategyOptions;
  /** The update pipeline every client applies (default none). */
  pipeline?: StageSpec[];
  /** The round's workflow (default train → collect). */
  workflow?: Workflow;
  /** Handlers of workflow stages every in-process client runs, by stage name. */
  stages?: Record<string, StageHandler>;
  /**
   * The engine that trains, evaluates and aggregates: a {@linkcode Backend} (left open), or a
   * kind to create one for the run (default `auto`: WebGPU on a hardware adapter, else CPU).
   */
  backend?: Backend | BackendKind;
  /** Seed of every random choice (default 0). */
  seed?: number;
  /**
   * Workers that train a round's clients at the same time and share the scoring of the test
   * data (default 1: the backend trains the clients one after another). More than 1 needs the
   * CPU Wasm engine as the backend (`"cpu"`) and permission to read this module's folder; the
   * updates are folded in in client order and the test batches summed in order, so every round
   * has the same bits as with 1.
   */
  parallel?: number;
}

/** What happened in one round. */
export interface RoundRecord {
  /** Round number, from 1. */
  round: number;
  /** Test accuracy of the new global model (NaN without test data). */
  accuracy: number;
  /** Test loss of the new global model (NaN without test data). */
  loss: number;
  /** Example-weighted mean of the clients' training loss during their last local epoch. */
  trainLoss: number;
  /** Ids of the clients sampled this round, ascending. */
  clients: number[];
  /** Examples the sampled clients hold. */
  examples: number;
  /** Wall-clock seconds the round took, training and evaluation. */
  seconds: number;
  /** The global model after the round: the live model, updated in place by later rounds. */
  model: Model;
  /** The backend that ran the round: kind and device, e.g. `cpu: CPU (Wasm SIMD engine)`. */
  backend: string;
}

function _check(condition: boolean, message: string): void {
  if (!condition) throw new RangeError(message);
}

/**
 * Runs FedAvg in process and yields a record after every round.
 *
 * Each round samples `max(round(C * K), 1)` clients without replacement; each trains a copy of
 * the global model for E epochs with batch size B on its partition; the strategy folds in the
 * updates weighted by example counts. Same options and seed, same bits.
 *
 * @param options Clients, fraction, rounds, epochs, batch size, learning rate, partition, seed.
 * @returns An async iterator of round records; stop early by breaking out of the loop.
 * @throws {RangeError} If an option is out of range (when iteration starts).
 *
 * @example Usage
 * ```ts
 * import { Chain, createDataset, Dense, relu, Rng, simulate, softmax } from "@fedgpu/fedgpu";
 * import { ok } from "node:assert/strict";
 *
 * // Two Gaussian blobs, split over 10 clients.
 * const rng = new Rng(7);
 * const n = 400;
 * const x = new Float32Array(n * 2);
 * const y = new Int32Array(n);
 * for (let i = 0; i < n; i++) {
 *   y[i] = i % 2;
 *   x[2 * i] = rng.normal() + (y[i] ? 2 : -2);
 *   x[2 * i + 1] = rng.normal();
 * }
 * const data = createDataset(x, y, { features: 2, classes: 2 });
 * let last = 0;
 * for await (const record of simulate({
 *   model: Chain(Dense(2, 8, relu), Dense(8, 2), softmax),
 *   train: data,
 *   test: data,
 *   clients: 10,
 *   fraction: 0.5,
 *   rounds: 5,
 *   batchSize: 10,
 *   lr: 0.1,
 *   backend: "cpu",
 * })) {
 *   last = record.accuracy;
 * }
 * ok(last > 0.9);
 * ```
 */
export async function* simulate(options: SimulateOptions = {}): AsyncGenerator<RoundRecord> {
  const clients = options.clients ?? 100;
  const fraction = options.fraction ?? 0.1;
  const rounds = options.rounds ?? 100;
  const seed = options.seed ?? 0;
  const training = localTraining(options);
  const parallel = options.parallel ?? 1;
  _check(
    Number.isInteger(parallel) && parallel >= 1,
    `Parallel workers must be a positive integer, got ${parallel}`,
  );
  _check(
    Number.isInteger(clients) && clients >= 1,
    `Clients must be a positive integer, got ${clients}`,
  );
  _check(fraction > 0 && fraction <= 1, `Client fraction must be in (0, 1], got ${fraction}`);
  _check(
    Number.isInteger(rounds) && rounds >= 0,
    `Rounds must be a non-negative integer, got ${rounds}`,
  );
  let trainData = options.train;
  let testData = options.test;
  if (trainData === undefined) {
    const mnist = await loadMnist();
    trainData = mnist.train;
    testData ??= mnist.test;
  }
  const model = options.model ?? mnist2nn(seed);
  const ownBackend = typeof options.backend !== "object";
  const backend = typeof options.backend === "object"
    ? options.backend
    : await createBackend(options.backend ?? "auto");
  let pool: TrainerPool | null = null;
  let strategy: Strategy | null = null;
  try {
    if (parallel > 1) {
      checkPoolBackend(backend, "training");
      pool = new TrainerPool(parallel, model, { train: trainData, test: testData });
    }
    strategy = typeof options.strategy === "object" ? options.strategy : createStrategy(
      options.strategy ?? "fedavg",
      options.strategyOptions,
      backend.createWeightedSum(),
    );
    const members = _members(backend, trainData, pool, options, { clients, seed });
    yield* _rounds(backend, strategy, model, testData, pool, members, {
      seed,
      fraction,
      rounds,
      training,
      pipeline: options.pipeline ?? [],
      workflow: options.workflow,
    });
  } finally {
    if (typeof options.strategy !== "object") strategy?.dispose?.();
    pool?.close();
    if (ownBackend) backend.dispose();
  }
}

/** The in-process clients: client `k` holds partition `k` and has key `k`. */
function _members(
  backend: Backend,
  train: Dataset,
  pool: TrainerPool | null,
  options: SimulateOptions,
  run: { clients: number; seed: number },
): InMemoryMember[] {
  const parts = partition(train.y, {
    scheme: options.partition ?? "iid",
    clients: run.clients,
    alpha: options.alpha ?? 0.5,
    shardsPerClient: options.shardsPerClient ?? 2,
  }, new Rng(run.seed, [STREAM.partition]));
  const queue = new JobQueue();
  const models = new SharedModelCache();
  return parts.map((indices, k) => {
    // With a pool, every client trains at once on the workers; the driver still folds the
    // updates in in client order.
    const trainer: Trainer | undefined = pool === null ? undefined : async (local, task) => {
      const { delta, loss } = await pool.train({
        global: local.params,
        indices,
        options: task.training,
        seed: task.seed,
        stream: task.stream,
      });
      return { delta, loss, accuracy: NaN };
    };
    const participant = new Participant({
      id: String(k),
      data: { n: indices.length, load: () => subset(train, indices) },
      backend,
      ...(options.stages === undefined ? {} : { stages: options.stages }),
      ...(trainer === undefined ? {} : { trainer }),
    });
    // Pool jobs run at once; backend jobs one at a time, each client trained when its update
    // is collected.
    return pool === null
      ? new InMemoryMember(participant, k, queue, models, { lazy: true })
      : new InMemoryMember(participant, k, new JobQueue(), models);
  });
}

async function* _rounds(
  backend: Backend,
  strategy: Strategy,
  model: Model,
  testData: Dataset | undefined,
  pool: TrainerPool | null,
  members: InMemoryMember[],
  run: {
    seed: number;
    fraction: number;
    rounds: number;
    training: LocalTraining;
    pipeline: StageSpec[];
    workflow: Workflow | undefined;
  },
): AsyncGenerator<RoundRecord> {
  const backendName = `${backend.kind}: ${backend.device}`;
  let task = 0;
  const driver = new RoundDriver({
    model,
    strategy,
    ...(run.workflow === undefined ? {} : { workflow: run.workflow }),
    settings: {
      seed: run.seed,
      fraction: run.fraction,
      minUpdates: 1,
      maxAttempts: 1,
      roundTimeoutMs: Infinity,
      uploadTimeoutMs: Infinity,
      training: run.training,
      pipeline: run.pipeline,
    },
    candidates: () => members,
    waitForCandidates: () => Promise.resolve(),
    evaluate: (current) =>
      testData === undefined
        ? Promise.resolve({ loss: NaN, accuracy: NaN })
        : pool !== null
        ? pool.evaluate(current.params)
        : backend.evaluate(current, testData),
    nextTask: () => ++task,
    log: () => {},
  });
  for (let round = 1; round <= run.rounds; round++) {
    const started = performance.now();
    let outcome;
    try {
      outcome = await driver.run(round);
    } catch (error) {
      if (error instanceof RoundError) {
        throw new RangeError(`Round ${round} sampled only clients without data`);
      }
      throw error;
    }
    yield {
      round,
      accuracy: outcome.metrics.accuracy,
      loss: outcome.metrics.loss,
      trainLoss: outcome.trainLoss,
      clients: outcome.sampled.map((member) => member.key),
      examples: outcome.examples,
      seconds: (performance.now() - started) / 1000,
      model,
      backend: backendName,
    };
  }
}
