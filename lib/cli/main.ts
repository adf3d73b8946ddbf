/**
 * The `fedgpu` command line.
 *
 * ```sh
 * deno run -A jsr:@fedgpu/fedgpu/cli simulate --rounds 50
 * deno task fedgpu repro --partition iid      # from a checkout
 * deno task fedgpu server --min-clients 10    # a FedAvg server on port 3000
 * deno task fedgpu client --shard 0-9         # ten MNIST clients in one process
 * ```
 *
 * @module
 */

import { WebGpuUnavailableError } from "../compute/webgpu/runtime.ts";
import { DataFormatError } from "../data/errors.ts";
import { CheckpointError } from "../fl/checkpoint.ts";
import { ServerError } from "../fl/server.ts";
import { KeyFileError } from "../net/key_file.ts";
import { ModelFormatError } from "../nn/codec.ts";
import { UsageError } from "./args.ts";
import { clientCommand, serverCommand } from "./network.ts";
import { type Output, reproCommand, simulateCommand } from "./simulate.ts";

export type { Output };

const COMMANDS: Record<
  string,
  { run: (argv: string[], out: Output) => Promise<number>; help: string }
> = {
  simulate: { run: simulateCommand, help: "FedAvg on MNIST simulated in process (the demo)" },
  repro: { run: reproCommand, help: "Reproduce the FedAvg paper's 2NN rounds-to-97% numbers" },
  server: { run: serverCommand, help: "A FedAvg server that clients connect to over TCP" },
  client: { run: clientCommand, help: "Federated clients training on their own data" },
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

/** Failures a user can act on from their message alone: no stack trace. */
function _isExpected(error: unknown): boolean {
  return error instanceof CheckpointError || error instanceof ServerError ||
    error instanceof KeyFileError || error instanceof DataFormatError ||
    error instanceof ModelFormatError || error instanceof Deno.errors.AddrInUse ||
    error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied ||
    error instanceof RangeError;
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
    if (_isExpected(error)) {
      console.error(`fedgpu ${name}: ${(error as Error).message}`);
      return 1;
    }
    throw error;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
