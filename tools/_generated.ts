/**
 * Helpers of the generators in `tools/`: formatting generated TypeScript the way `deno fmt`
 * does, and writing or checking a generated file.
 *
 * @module
 */

/**
 * Formats TypeScript source with `deno fmt` and the project's settings.
 *
 * @param source The source text.
 * @returns The formatted text.
 * @throws {Error} If `deno fmt` fails (a syntax error in `source`).
 */
export async function formatTs(source: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=ts", "-"],
    cwd: new URL("..", import.meta.url),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(source));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  if (!success) throw new Error(`deno fmt failed: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout);
}

/**
 * Writes a generated file, or with `--check` in the arguments exits with status 1 when the
 * committed file differs from `text`.
 *
 * @param path The generated file.
 * @param text Its fresh contents.
 * @param command The command that regenerates it, for the message.
 */
export async function writeOrCheck(path: URL, text: string, command: string): Promise<void> {
  const name = path.pathname.slice(new URL("..", import.meta.url).pathname.length);
  if (Deno.args.includes("--check")) {
    let committed = "";
    try {
      committed = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (committed !== text) {
      console.error(`${name} is stale: run \`${command}\``);
      Deno.exit(1);
    }
  } else {
    await Deno.writeTextFile(path, text);
    console.log(`Wrote ${name} (${text.length} characters)`);
  }
}
