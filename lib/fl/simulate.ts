/**
 * Federated learning simulated in one process: the server's loop of FedAvg (McMahan et al.
 * 2017, Algorithm 1) over clients that each hold a partition of a dataset.
 *
 * Random streams are keyed by the seed so that a round's outcome depends only on the seed,
 * the round number and the client ids: partition `[1]`, client sampling `[2, round]`, local
 * shuffling `[3, round, client]`.
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
import { checkPoolBackend, TrainerPool } from "./parallel.ts";
import type { Strategy } from "./strategy.ts";

/** Stream keys of the simulation's random numbers (see the module doc). */
export const STREAM = { partition: 1, sample: 2, train: 3 } as const;

/** Options of {@linkcode simulate}. */
export interface SimulateOptions {
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
  /** Local epochs E (default 1). */
  epochs?: number;
  /** Local batch size B (default 10). */
  batchSize?: number;
  /** Local learning rate (default 0.1). */
  lr?: number;
  /** Local SGD momentum (default 0). */
  momentum?: number;
  /** Local weight decay (default 0). */
  weightDecay?: number;
  /** How the training data is split (default "iid"). */
  partition?: PartitionScheme;
  /** Concentration of the Dirichlet partition (default 0.5). */
  alpha?: number;
  /** Shards per client of the "shards" partition (default 2). */
  shardsPerClient?: number;
  /** The aggregation strategy (default the backend's FedAvg). */
  strategy?: Strategy;
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

/**
 * The clients a round trains: `max(round(fraction * count), 1)` of `count` clients drawn
 * without replacement from the stream `[2, round]` (`[2, round, attempt]` for a retried
 * round), as ascending indices. The simulation and the networked server both sample this way.
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
  const config: _Config = {
    clients: options.clients ?? 100,
    fraction: options.fraction ?? 0.1,
    rounds: options.rounds ?? 100,
    epochs: options.epochs ?? 1,
    batchSize: options.batchSize ?? 10,
    lr: options.lr ?? 0.1,
    momentum: options.momentum ?? 0,
    weightDecay: options.weightDecay ?? 0,
    scheme: options.partition ?? "iid",
    alpha: options.alpha ?? 0.5,
    shardsPerClient: options.shardsPerClient ?? 2,
    seed: options.seed ?? 0,
  };
  const { clients, fraction, rounds } = config;
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
  const model = options.model ?? mnist2nn(config.seed);
  const ownBackend = typeof options.backend !== "object";
  const backend = typeof options.backend === "object"
    ? options.backend
    : await createBackend(options.backend ?? "auto");
  let pool: TrainerPool | null = null;
  try {
    if (parallel > 1) {
      checkPoolBackend(backend, "training");
      pool = new TrainerPool(parallel, model, { train: trainData, test: testData });
    }
    const strategy = options.strategy ?? backend.createFedAvg();
    yield* _rounds(backend, strategy, model, { train: trainData, test: testData }, config, pool);
  } finally {
    pool?.close();
    if (ownBackend) backend.dispose();
  }
}

/** Every setting of a simulation, defaults applied. */
interface _Config {
  clients: number;
  fraction: number;
  rounds: number;
  epochs: number;
  batchSize: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  scheme: PartitionScheme;
  alpha: number;
  shardsPerClient: number;
  seed: number;
}

async function* _rounds(
  backend: Backend,
  strategy: Strategy,
  model: Model,
  data: { train: Dataset; test: Dataset | undefined },
  config: _Config,
  pool: TrainerPool | null,
): AsyncGenerator<RoundRecord> {
  const { clients, fraction, rounds, epochs, batchSize, lr, momentum, weightDecay } = config;
  const { scheme, alpha, shardsPerClient, seed } = config;
  const { train: trainData, test: testData } = data;
  const backendName = `${backend.kind}: ${backend.device}`;
  const parts = partition(trainData.y, {
    scheme,
    clients,
    alpha,
    shardsPerClient,
  }, new Rng(seed, [STREAM.partition]));
  const local = model.clone();
  const update = new Float32Array(model.params.length);

  for (let round = 1; round <= rounds; round++) {
    const started = performance.now();
    const sampled = sampleClients(seed, round, clients, fraction);
    strategy.begin(model.params);
    let examples = 0;
    let trainLossSum = 0;
    // With a pool, every client trains at once on the workers; updates are still folded in
    // in client order.
    const trained = pool === null
      ? null
      : sampled.map((client) =>
        parts[client]!.length === 0 ? null : pool.train({
          global: model.params,
          indices: parts[client]!,
          options: { epochs, batchSize, lr, momentum, weightDecay },
          seed,
          stream: [STREAM.train, round, client],
        })
      );
    // A failing round leaves no promise unobserved.
    trained?.forEach((promise) => promise?.catch(() => {}));
    for (const [i, client] of sampled.entries()) {
      const n = parts[client]!.length;
      if (n === 0) continue;
      let delta: Float32Array;
      let loss: number;
      const pending = trained?.[i];
      if (pending) {
        ({ delta, loss } = await pending);
      } else {
        local.params.set(model.params);
        const result = await backend.train(local, subset(trainData, parts[client]!), {
          epochs,
          batchSize,
          lr,
          momentum,
          weightDecay,
          rng: new Rng(seed, [STREAM.train, round, client]),
        });
        for (let j = 0; j < update.length; j++) update[j] = local.params[j]! - model.params[j]!;
        delta = update;
        loss = result.last.loss;
      }
      strategy.accumulate(delta, n);
      examples += n;
      trainLossSum += loss * n;
    }
    if (strategy.count === 0) {
      throw new RangeError(`Round ${round} sampled only clients without data`);
    }
    model.params.set(await strategy.finish());
    const metrics = testData === undefined
      ? { loss: NaN, accuracy: NaN }
      : pool !== null
      ? await pool.evaluate(model.params)
      : await backend.evaluate(model, testData);
    yield {
      round,
      accuracy: metrics.accuracy,
      loss: metrics.loss,
      trainLoss: trainLossSum / examples,
      clients: sampled,
      examples,
      seconds: (performance.now() - started) / 1000,
      model,
      backend: backendName,
    };
  }
}
