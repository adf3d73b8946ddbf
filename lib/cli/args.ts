/**
 * Flag parsing shared by the `fedgpu` subcommands, on `node:util`'s parseArgs, with errors
 * that name the flag.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  createStrategy,
  STRATEGY_NAMES,
  type StrategyName,
  type StrategyOptions,
} from "../fl/strategies/create.ts";
import type { StageSpec } from "../fl/update.ts";

/** A command-line mistake: unknown flag, missing or malformed value. Exit status 2. */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong, naming the flag.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A flag's description: its type, default and help text. */
export interface FlagSpec {
  /** `string` flags take a value; `boolean` flags do not. */
  type: "string" | "boolean";
  /** One-letter alias. */
  short?: string;
  /** Help text. */
  help: string;
  /** Value name shown in help, e.g. `N`. */
  value?: string;
  /** Whether the flag may repeat (its value is then an array). */
  multiple?: boolean;
}

/**
 * Parses `argv` against `flags`, turning parseArgs' errors into {@linkcode UsageError}s.
 *
 * @param argv The arguments after the subcommand.
 * @param flags The accepted flags.
 * @returns The values given, by flag name.
 * @throws {UsageError} On an unknown flag, a missing value, or a stray positional argument.
 */
export function parseFlags(
  argv: string[],
  flags: Record<string, FlagSpec>,
): Record<string, string | boolean | string[] | undefined> {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const [name, spec] of Object.entries(flags)) {
    options[name] = {
      type: spec.type,
      ...(spec.short === undefined ? {} : { short: spec.short }),
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length > 0) throw new UsageError(`Unexpected argument: ${positionals[0]}`);
    return values as Record<string, string | boolean | string[] | undefined>;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    // parseArgs explains over several lines; keep the lines that say what was wrong.
    const lines = (error as Error).message.split("\n").filter((line) => !/^To specify/.test(line));
    throw new UsageError(lines.join(" "));
  }
}

/**
 * Reads a numeric flag.
 *
 * @param values Parsed flags.
 * @param name The flag.
 * @param fallback Value when the flag is absent.
 * @param check What the value must satisfy: `"int>0"`, `"int>=0"`, `"prob"` (0, 1], `">0"` or
 *   `"any"`.
 * @returns The number.
 * @throws {UsageError} If the value is not a number of that kind.
 */
export function numberFlag(
  values: Record<string, string | boolean | string[] | undefined>,
  name: string,
  fallback: number,
  check: "int>0" | "int>=0" | "prob" | ">0" | "any",
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  const ok = typeof raw === "string" && raw.trim() !== "" && Number.isFinite(value) && {
    "int>0": Number.isInteger(value) && value > 0,
    "int>=0": Number.isInteger(value) && value >= 0,
    "prob": value > 0 && value <= 1,
    ">0": value > 0,
    "any": true,
  }[check];
  if (!ok) {
    const want = {
      "int>0": "a positive integer",
      "int>=0": "a non-negative integer",
      "prob": "a number in (0, 1]",
      ">0": "a positive number",
      "any": "a number",
    }[check];
    throw new UsageError(`--${name} must be ${want}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * Reads a flag whose value is one of `choices`.
 *
 * @param values Parsed flags.
 * @param name The flag.
 * @param choices Accepted values; the first is the default.
 * @returns The value.
 * @throws {UsageError} If the value is not one of the choices.
 */
export function choiceFlag<T extends string>(
  values: Record<string, string | boolean | string[] | undefined>,
  name: string,
  choices: readonly T[],
): T {
  const raw = values[name] ?? choices[0];
  if (!choices.includes(raw as T)) {
    throw new UsageError(
      `--${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(raw)}`,
    );
  }
  return raw as T;
}

/**
 * Formats help text for a command.
 *
 * @param usage The usage line.
 * @param summary What the command does.
 * @param flags The accepted flags.
 * @returns The help text.
 */
export function formatHelp(
  usage: string,
  summary: string,
  flags: Record<string, FlagSpec>,
): string {
  const rows = Object.entries(flags).map(([name, spec]) => {
    const short = spec.short === undefined ? "    " : `-${spec.short}, `;
    return [`  ${short}--${name}${spec.value === undefined ? "" : ` ${spec.value}`}`, spec.help];
  });
  const width = Math.max(...rows.map(([left]) => left!.length)) + 2;
  return [
    `Usage: ${usage}`,
    "",
    summary,
    "",
    "Options:",
    ...rows.map(([left, help]) => left!.padEnd(width) + help),
  ].join("\n");
}

/** Flags of the aggregation strategy and the update pipeline, shared by every command. */
export const STRATEGY_FLAGS: Record<string, FlagSpec> = {
  strategy: {
    type: "string",
    value: "S",
    help: `Aggregation: ${STRATEGY_NAMES.join(" | ")} (default fedavg)`,
  },
  "server-lr": {
    type: "string",
    value: "ETA",
    help: "Server learning rate η (default 1; 0.01 for fedadagrad, fedadam, fedyogi)",
  },
  "server-momentum": { type: "string", value: "B", help: "fedavgm's momentum (default 0.9)" },
  beta1: { type: "string", value: "B1", help: "Adaptive strategies' β1 (default 0.9)" },
  beta2: { type: "string", value: "B2", help: "fedadam's and fedyogi's β2 (default 0.99)" },
  tau: { type: "string", value: "T", help: "Adaptive strategies' τ (default 1e-3)" },
  mu: { type: "string", value: "MU", help: "fedprox's proximal coefficient μ (default 0.01)" },
  clip: { type: "string", value: "S", help: "Clip every update to L2 norm S on the client" },
};

/** The flag of each strategy hyperparameter. */
const _HYPER_FLAGS: Record<keyof StrategyOptions, string> = {
  serverLr: "server-lr",
  serverMomentum: "server-momentum",
  beta1: "beta1",
  beta2: "beta2",
  tau: "tau",
  mu: "mu",
};

/** The strategy and pipeline the flags ask for. */
export interface StrategyChoice {
  /** The strategy's name. */
  strategy: StrategyName;
  /** Its hyperparameters (only those given). */
  strategyOptions: StrategyOptions;
  /** The update pipeline. */
  pipeline: StageSpec[];
}

/**
 * Reads {@linkcode STRATEGY_FLAGS}.
 *
 * @param values Parsed flags.
 * @returns The choice.
 * @throws {UsageError} On a bad value, or a hyperparameter the strategy does not take.
 */
export function strategyFlags(
  values: Record<string, string | boolean | string[] | undefined>,
): StrategyChoice {
  const strategy = choiceFlag(values, "strategy", STRATEGY_NAMES);
  const takes: Record<StrategyName, string[]> = {
    fedavg: ["server-lr"],
    fedavgm: ["server-lr", "server-momentum"],
    fedadagrad: ["server-lr", "beta1", "tau"],
    fedadam: ["server-lr", "beta1", "beta2", "tau"],
    fedyogi: ["server-lr", "beta1", "beta2", "tau"],
    fedprox: ["server-lr", "mu"],
  };
  const strategyOptions: StrategyOptions = {};
  for (const [key, flag] of Object.entries(_HYPER_FLAGS) as [keyof StrategyOptions, string][]) {
    if (values[flag] === undefined) continue;
    if (!takes[strategy].includes(flag)) {
      throw new UsageError(`--${flag} does not apply to --strategy ${strategy}`);
    }
    strategyOptions[key] = numberFlag(values, flag, 0, flag === "server-lr" ? ">0" : "any");
  }
  try {
    createStrategy(strategy, strategyOptions);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const pipeline = values.clip === undefined
    ? []
    : [{ id: "clip", params: [numberFlag(values, "clip", 1, ">0")] }];
  return { strategy, strategyOptions, pipeline };
}

/**
 * The flags that give `choice` to another command (the demo's server process).
 *
 * @param choice The strategy and pipeline.
 * @returns Command-line arguments.
 */
export function strategyArgs(choice: StrategyChoice): string[] {
  const args = ["--strategy", choice.strategy];
  for (const [key, value] of Object.entries(choice.strategyOptions)) {
    args.push(`--${_HYPER_FLAGS[key as keyof StrategyOptions]}`, String(value));
  }
  for (const stage of choice.pipeline) args.push(`--${stage.id}`, String(stage.params[0]));
  return args;
}
