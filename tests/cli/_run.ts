/** Runs the `fedgpu` command line in process, capturing its output lines and errors. */

import { main } from "../../lib/cli/main.ts";

/**
 * Runs `fedgpu argv` and returns its exit status, output lines and standard error text;
 * `lines`, if given, receives the lines as they come.
 */
export async function run(
  argv: string[],
  lines: string[] = [],
): Promise<{ status: number; lines: string[]; errors: string }> {
  const errors: string[] = [];
  const originalError = console.error;
  console.error = (...args: unknown[]) => errors.push(args.join(" "));
  try {
    const status = await main(argv, { line: (text) => lines.push(text) });
    return { status, lines, errors: errors.join("\n") };
  } finally {
    console.error = originalError;
  }
}
