/**
 * The `fedgpu` command line.
 *
 * ```sh
 * deno run -A jsr:@fedgpu/fedgpu/cli simulate --rounds 50
 * deno task fedgpu repro --partition iid      # from a checkout
 * ```
 *
 * @module
 */

import { WebGpuUnavailableError } from "../compute/webgpu/runtime.ts";
import { UsageError } from "./args.ts";
import { type Output, reproCommand, simulateCommand } from "./simulate.ts";

export type { Output };

const COMMANDS: Record<
  string,
  { run: (argv: string[], out: Output) => Promise<number>; help: string }
> = {
  simulate: { run: simulateCommand, help: "FedAvg on MNIST simulated in process (the demo)" },
  repro: { run: reproCommand, help: "Reproduce the FedAvg paper's 2NN rounds-to-97% numbers" },
};

function _usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length)) + 2;
  return [
    "Usage: fedgpu <command> [options]",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, { help }]) => `  ${name.padEnd(width)}${help}`),
    "",
    "Run `fedgpu <command> --help` for a command's options.",
  ].join("\n");
}

/**
 * Runs the command line on `argv`.
 *
 * @param argv The arguments, starting with the command.
 * @param out Where output lines go (default: standard output).
 * @returns The exit status: 0 on success, 2 on a usage error.
 */
export async function main(
  argv: string[],
  out: Output = { line: (text) => console.log(text) },
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    out.line(_usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    console.error(`fedgpu: unknown command ${JSON.stringify(name)}\n\n${_usage()}`);
    return 2;
  }
  try {
    return await command.run(rest, out);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`fedgpu ${name}: ${error.message}\nRun \`fedgpu ${name} --help\` for usage.`);
      return 2;
    }
    if (error instanceof WebGpuUnavailableError) {
      console.error(`fedgpu ${name}: ${error.message}; use --backend cpu`);
      return 1;
    }
    throw error;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
