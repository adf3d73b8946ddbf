/**
 * The options of a federated server, their defaults and checks, and what a checkpoint must
 * share with the run that resumes it.
 *
 * This module needs Deno.
 *
 * @module
 */

import type { Backend, BackendKind } from "../compute/backend.ts";
import type { Dataset } from "../data/dataset.ts";
import type { StaticKeyPair } from "../net/identity.ts";
import type { Listener } from "../net/transport.ts";
import type { Model } from "../nn/model.ts";
import { type Checkpoint, CheckpointError } from "./checkpoint.ts";
import { LOCAL_TRAINING_FIELDS, type LocalTraining, localTraining } from "./local.ts";
import type { RoundSettings, Workflow } from "./round.ts";
import type { StrategyOptions } from "./strategies/create.ts";
import type { Strategy } from "./strategies/strategy.ts";
import type { StageSpec } from "./update.ts";

/** Options of {@linkcode FederatedServer.start}. */
export interface ServerOptions extends Partial<LocalTraining> {
  /** The initial global model (replaced by the checkpoint's when resuming). */
  model: Model;
  /** The server's persistent static key (see `loadOrCreateKeyFile`). */
  staticKey: StaticKeyPair;
  /**
   * Where clients connect (default one TCP listener on `hostname`:`port`); the server closes
   * them when it closes.
   */
  listeners?: Listener[];
  /** Address of the default TCP listener (default `127.0.0.1`; `0.0.0.0` for every interface). */
  hostname?: string;
  /** Port of the default TCP listener (default 3000; 0 picks a free one). */
  port?: number;
  /** Rounds to run in all, counting those of a resumed checkpoint (default 100). */
  rounds?: number;
  /** Fraction C of the connected clients sampled each round, in (0, 1] (default 0.1). */
  fraction?: number;
  /** Connected clients to wait for before a round starts (default 1). */
  minClients?: number;
  /** Fewest updates a round needs; with fewer it is retried (default 1). */
  minUpdates?: number;
  /** Attempts at one round before giving up with a `ServerError` (default 10). */
  maxAttempts?: number;
  /** How long a round waits for its clients to train, in milliseconds (default 120 s). */
  roundTimeoutMs?: number;
  /** How long one client's update may take to arrive once collected, in ms (default 60 s). */
  uploadTimeoutMs?: number;
  /** Seed of client sampling and local shuffling (default 0). */
  seed?: number;
  /**
   * The aggregation strategy: a strategy, or a name of `createStrategy` built on the
   * backend's weighted sum (default `fedavg`).
   */
  strategy?: Strategy | string;
  /** Hyperparameters of a strategy given by name. */
  strategyOptions?: StrategyOptions;
  /** The update pipeline every client must apply (default none). */
  pipeline?: StageSpec[];
  /** The round's workflow (default train → collect). */
  workflow?: Workflow;
  /** The engine that evaluates and aggregates (default `cpu`). */
  backend?: Backend | BackendKind;
  /** Held-out data scored after every round. */
  test?: Dataset;
  /**
   * Workers that score `test` after every round, its batches split between them (default 1:
   * the backend scores it). More than 1 needs the CPU Wasm engine as the backend and read
   * permission for `lib/fl/`; the scores keep their bits.
   */
  parallel?: number;
  /** Stop once the test accuracy reaches this. */
  target?: number;
  /** Ask the round's clients to score the new model on their own data after each round. */
  clientEval?: boolean;
  /** Checkpoint file, written atomically after every round. */
  checkpoint?: string;
  /** Continue from `checkpoint` when the file exists. */
  resume?: boolean;
  /** File that receives one JSON line per round. */
  metricsOut?: string;
  /** Fingerprints of the client keys allowed in (default: every client). */
  allowedClients?: Iterable<string>;
  /** The most clients connected at once (default 10,000). */
  maxClients?: number;
  /** How long a client has to complete the handshake and say hello, in ms (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Where log lines go (default `console.log`). */
  log?: (line: string) => void;
}

/** Every setting of a server run, defaults applied. */
export interface ServerSettings extends RoundSettings {
  rounds: number;
  minClients: number;
  target: number;
  maxClients: number;
  handshakeTimeoutMs: number;
}

function _check(condition: boolean, message: string): void {
  if (!condition) throw new RangeError(message);
}

/**
 * A server run's settings with defaults filled in, every value checked.
 *
 * @param options The server's options.
 * @returns The settings.
 * @throws {RangeError} If a setting is out of range.
 */
export function serverSettings(options: ServerOptions): ServerSettings {
  const settings: ServerSettings = {
    rounds: options.rounds ?? 100,
    fraction: options.fraction ?? 0.1,
    minClients: options.minClients ?? 1,
    minUpdates: options.minUpdates ?? 1,
    maxAttempts: options.maxAttempts ?? 10,
    roundTimeoutMs: options.roundTimeoutMs ?? 120_000,
    uploadTimeoutMs: options.uploadTimeoutMs ?? 60_000,
    training: localTraining(options),
    pipeline: options.pipeline ?? [],
    seed: options.seed ?? 0,
    target: options.target ?? Infinity,
    maxClients: options.maxClients ?? 10_000,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
  };
  const { rounds, fraction, minClients, minUpdates, maxAttempts } = settings;
  const positiveInt = (value: number) => Number.isInteger(value) && value >= 1;
  _check(Number.isInteger(rounds) && rounds >= 0, `Rounds must be a non-negative integer`);
  _check(fraction > 0 && fraction <= 1, `Client fraction must be in (0, 1], got ${fraction}`);
  _check(positiveInt(minClients), `minClients must be a positive integer, got ${minClients}`);
  _check(positiveInt(minUpdates), `minUpdates must be a positive integer, got ${minUpdates}`);
  _check(positiveInt(maxAttempts), `maxAttempts must be a positive integer, got ${maxAttempts}`);
  _check(Number.isSafeInteger(settings.seed) && settings.seed >= 0, `Seed must be an integer`);
  _check(settings.roundTimeoutMs > 0, `Round timeout must be positive`);
  _check(settings.uploadTimeoutMs > 0, `Upload timeout must be positive`);
  _check(positiveInt(settings.maxClients), `maxClients must be a positive integer`);
  return settings;
}

/** The settings a checkpoint must share with the run that resumes it. */
export function runConfig(options: ServerOptions, settings: ServerSettings): Checkpoint["config"] {
  const config: Checkpoint["config"] = {
    params: options.model.params.length,
    architecture: String(options.model),
    fraction: settings.fraction,
    seed: settings.seed,
    pipeline: JSON.stringify(settings.pipeline),
  };
  for (const field of LOCAL_TRAINING_FIELDS) config[field] = settings.training[field];
  return config;
}

/**
 * Refuses to resume a checkpoint written with other settings or another strategy.
 *
 * @throws {CheckpointError} `mismatch`, naming the first setting that differs.
 */
export function checkCompatible(
  saved: Checkpoint,
  options: ServerOptions,
  settings: ServerSettings,
  strategy: Strategy,
): void {
  const mismatch = (field: string, was: unknown, is: unknown) =>
    new CheckpointError(
      "mismatch",
      `${options.checkpoint} was written with ${field} ${JSON.stringify(was)}` +
        `, this run has ${JSON.stringify(is)}; resume with the same settings or start ` +
        `a new checkpoint`,
    );
  const want = runConfig(options, settings);
  for (const [field, value] of Object.entries(want)) {
    if (saved.config[field] !== value) throw mismatch(field, saved.config[field], value);
  }
  if (saved.strategy.name !== strategy.name) {
    throw mismatch("strategy", saved.strategy.name, strategy.name);
  }
  const config = strategy.config;
  for (const field of new Set([...Object.keys(config), ...Object.keys(saved.strategy.config)])) {
    if (saved.strategy.config[field] !== config[field]) {
      throw mismatch(`strategy ${field}`, saved.strategy.config[field], config[field]);
    }
  }
}
