/**
 * Runs `browser_smoke.ts` in headless Chromium and in Deno and compares the results: the same
 * parameter bits from the Wasm engine, the reference engine and FedAvg, the same metrics, and
 * the same WGSL sources. The page script is bundled with `deno bundle --platform browser` and
 * served from 127.0.0.1 (a secure context, as WebGPU requires); it posts its result back.
 *
 * ```sh
 * deno run -A tools/run_browser_smoke.ts             # prints one JSON line; exits 1 on a mismatch
 * CHROMIUM=/path/to/chrome deno run -A tools/run_browser_smoke.ts
 * ```
 *
 * Chromium comes from `$CHROMIUM` or the first of `chromium`, `chromium-browser`,
 * `google-chrome` on the PATH (Debian: `apt-get install chromium`).
 *
 * @module
 */

import { smoke, type SmokeResult } from "./browser_smoke.ts";

const _NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];

/** Chromium flags that give a headless page a software WebGPU adapter (SwiftShader). */
export const WEBGPU_FLAGS: readonly string[] = [
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-vulkan=swiftshader",
];

/**
 * Finds a Chromium executable.
 *
 * @returns Its path, or null if there is none.
 */
export async function findChromium(): Promise<string | null> {
  const given = Deno.env.get("CHROMIUM");
  if (given) return given;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of _NAMES) {
      const path = `${dir}/${name}`;
      try {
        if ((await Deno.stat(path)).isFile) return path;
      } catch {
        // Not there.
      }
    }
  }
  return null;
}

/** Options of {@linkcode runInChromium}. */
export interface ChromiumOptions {
  /** The Chromium executable; default {@linkcode findChromium}'s. */
  chromium?: string;
  /** How long to wait for the page's result, in milliseconds; default 180000. */
  timeoutMs?: number;
  /** Extra Chromium flags ({@linkcode WEBGPU_FLAGS}, say). */
  flags?: readonly string[];
}

/** What the page reported, with the browser's version. */
export interface ChromiumRun {
  /** `chromium --version`. */
  version: string;
  /** The page's result. */
  result: SmokeResult;
}

async function _output(command: string, args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(`${command} ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
  return new TextDecoder().decode(stdout).trim();
}

/**
 * Bundles the page script, serves it, and runs it in headless Chromium.
 *
 * @param options The executable, the time limit, extra flags.
 * @returns The page's result.
 * @throws {Error} If there is no Chromium, the page reports an error, or no result comes in
 *   time.
 */
export async function runInChromium(options: ChromiumOptions = {}): Promise<ChromiumRun> {
  const chromium = options.chromium ?? await findChromium();
  if (chromium === null) throw new Error("No Chromium found: set CHROMIUM or install chromium");
  const version = await _output(chromium, ["--version"]);
  const dir = await Deno.makeTempDir({ prefix: "browser_smoke_" });
  const abort = new AbortController();
  let child: Deno.ChildProcess | null = null;
  try {
    const bundlePath = `${dir}/page.js`;
    await _output(Deno.execPath(), [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      "-o",
      bundlePath,
      new URL("_browser_page.ts", import.meta.url).pathname,
    ]);
    const bundle = await Deno.readTextFile(bundlePath);
    const { promise: posted, resolve } = Promise.withResolvers<string>();
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: abort.signal,
      onListen: () => {},
    }, async (request) => {
      const path = new URL(request.url).pathname;
      if (request.method === "POST" && path === "/result") {
        resolve(await request.text());
        return new Response(null, { status: 204 });
      }
      if (path === "/page.js") {
        return new Response(bundle, { headers: { "content-type": "text/javascript" } });
      }
      if (path === "/") {
        return new Response(
          '<!doctype html><meta charset="utf-8"><script type="module" src="/page.js"></script>',
          { headers: { "content-type": "text/html; charset=utf-8" } },
        );
      }
      return new Response("Not found", { status: 404 });
    });
    child = new Deno.Command(chromium, {
      args: [
        "--headless",
        "--no-sandbox",
        "--no-first-run",
        "--disable-dev-shm-usage",
        `--user-data-dir=${dir}/profile`,
        ...(options.flags ?? []),
        `http://127.0.0.1:${server.addr.port}/`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const timeoutMs = options.timeoutMs ?? 180_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`No result from Chromium within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    const exited = child.status.then((status) => {
      throw new Error(`Chromium exited (code ${status.code}) before the page reported`);
    });
    let text: string;
    try {
      text = await Promise.race([posted, timeout, exited]);
    } finally {
      clearTimeout(timer);
    }
    const report: { result?: SmokeResult; error?: string } = JSON.parse(text);
    if (report.error !== undefined) throw new Error(`The page failed: ${report.error}`);
    return { version, result: report.result! };
  } finally {
    if (child !== null) await _stop(child);
    abort.abort();
    await _removeDir(dir);
  }
}

/** Asks Chromium to quit (it then ends its own helper processes), killing it if it hangs. */
async function _stop(child: Deno.ChildProcess): Promise<void> {
  const signal = (name: Deno.Signal) => {
    try {
      child.kill(name);
    } catch {
      // Already gone.
    }
  };
  signal("SIGTERM");
  const timer = setTimeout(() => signal("SIGKILL"), 10_000);
  await child.status;
  clearTimeout(timer);
}

/** Removes the profile folder, retrying while exiting helper processes still write there. */
async function _removeDir(dir: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      return await Deno.remove(dir, { recursive: true });
    } catch (error) {
      if (attempt === 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/**
 * The fields of a Chromium run that differ from the Deno run's (everything but the WebGPU
 * ones, which depend on the adapter).
 *
 * @param browser The page's result.
 * @param deno The same checks run in Deno.
 * @returns The names of the fields that differ.
 */
export function mismatches(browser: SmokeResult, deno: SmokeResult): string[] {
  const fields = [
    "wasmParams",
    "referenceParams",
    "wasmTrain",
    "wasmEvaluate",
    "fedAvgParams",
    "wgsl",
  ] as const;
  return fields.filter((field) => JSON.stringify(browser[field]) !== JSON.stringify(deno[field]));
}

if (import.meta.main) {
  const { version, result } = await runInChromium({ flags: [...WEBGPU_FLAGS] });
  const deno = await smoke();
  const differ = mismatches(result, deno);
  console.log(JSON.stringify({
    name: "browser_smoke",
    chromium: version,
    deno: Deno.version.deno,
    same: differ.length === 0,
    mismatches: differ,
    chromiumResult: result,
    denoResult: deno,
  }));
  if (differ.length > 0) Deno.exit(1);
}
