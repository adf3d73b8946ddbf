/**
 * Flag parsing shared by the `fedgpu` subcommands, on `node:util`'s parseArgs, with errors
 * that name the flag.
 *
 * @module
 */

import { parseArgs } from "node:util";

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
