/**
 * One load run: the server process (`bench/_load_server.ts`) and the client-swarm process
 * (`bench/_swarm.ts`) started side by side, the server's JSON summary and the swarm's parsed.
 * Shared by `bench/server_bench.ts` and `tests/e2e/load_test.ts`.
 *
 * @module
 */

/** The shape of a load run. */
export interface LoadOptions {
  /** Clients in the swarm; the server waits for all of them. */
  clients: number;
  /** Rounds the server runs. */
  rounds: number;
  /** Fraction of the clients sampled each round (default 1: every client every round). */
  fraction?: number;
  /** Input features of the model and the clients' data (default 64). */
  features?: number;
  /** Hidden units of the model (default 512). */
  hidden?: number;
  /** Classes of the model and the clients' data (default 10). */
  classes?: number;
  /** Examples per client (default 10). */
  examples?: number;
  /** The server's round, upload and handshake timeouts, in ms (default 60 s). */
  timeoutMs?: number;
  /** Collect garbage in the server every this many ms (default 0: V8 decides). */
  gcMs?: number;
  /** V8 flags of the server process, such as `--max-semi-space-size=1`. */
  v8Flags?: string[];
  /** Kill both processes after this long, in ms (default 10 minutes). */
  killAfterMs?: number;
}

/** What the server process reports after its rounds (sizes in MiB, per-round lists). */
export interface ServerSummary {
  clients: number;
  fraction: number;
  params: number;
  rounds: number;
  /** Wall-clock seconds from all clients connected to the last round done. */
  seconds: number;
  rounds_per_second: number;
  /** Updates aggregated, clients sampled, clients dropped and attempts, per round. */
  updates: number[];
  sampled: number[];
  dropped: number[];
  attempts: number[];
  /** RSS once every client had connected. */
  rss_connected_mb: number;
  /** Peak RSS of the whole run (`VmHWM`, else the highest per-round sample). */
  peak_rss_mb: number;
  peak_rss_bytes: number;
  /** `VmHWM` or `memoryUsage-sampled`. */
  peak_rss_source: string;
  gc_ms: number;
}

/** What the swarm process reports once its clients are done. */
export interface SwarmSummary {
  clients: number;
  finished: number;
  failed: number;
  trained: number;
  updates: number;
  connections: number;
  reconnects: number;
}

/** A finished load run. */
export interface LoadResult {
  server: ServerSummary;
  swarm: SwarmSummary;
}

const _here = new URL(".", import.meta.url);

async function* _lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, newline);
      pending = pending.slice(newline + 1);
    }
  }
  if (pending.length > 0) yield pending;
}

async function _text(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const piece of stream.pipeThrough(new TextDecoderStream())) text += piece;
  return text;
}

function _tail(text: string, lines = 20): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Runs the server and the swarm, each in its own process, until the server's rounds are done.
 *
 * @param options The run's shape.
 * @returns Both summaries.
 * @throws {Error} If either process fails, with the ends of their output.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const shape = [
    "--features",
    String(options.features ?? 64),
    "--classes",
    String(options.classes ?? 10),
  ];
  const v8Flags = [...(options.v8Flags ?? []), ...(options.gcMs ? ["--expose-gc"] : [])];
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(v8Flags.length > 0 ? [`--v8-flags=${v8Flags.join(",")}`] : []),
      new URL("_load_server.ts", _here).pathname,
      "--clients",
      String(options.clients),
      "--rounds",
      String(options.rounds),
      "--fraction",
      String(options.fraction ?? 1),
      "--hidden",
      String(options.hidden ?? 512),
      "--timeout-ms",
      String(options.timeoutMs ?? 60_000),
      "--gc-ms",
      String(options.gcMs ?? 0),
      ...shape,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let swarm: Deno.ChildProcess | undefined;
  let killed = false;
  const killer = setTimeout(() => {
    killed = true;
    for (const child of [server, swarm]) {
      try {
        child?.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
  }, options.killAfterMs ?? 600_000);
  const serverErr = _text(server.stderr);
  try {
    const lines = _lines(server.stdout);
    const first = await lines.next();
    if (first.done) {
      const status = await server.status;
      throw new Error(`The server exited (${status.code}) before listening:\n${await serverErr}`);
    }
    const { port, fingerprint } = JSON.parse(first.value) as { port: number; fingerprint: string };
    swarm = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("_swarm.ts", _here).pathname,
        "--port",
        String(port),
        "--fingerprint",
        fingerprint,
        "--clients",
        String(options.clients),
        "--examples",
        String(options.examples ?? 10),
        ...shape,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const swarmOut = _text(swarm.stdout);
    const swarmErr = _text(swarm.stderr);
    let serverOut = "";
    for await (const line of lines) serverOut += line + "\n";
    const serverStatus = await server.status;
    // A failed server leaves its clients retrying: stop them rather than wait them out.
    if (!serverStatus.success) swarm.kill("SIGKILL");
    const swarmStatus = await swarm.status;
    const report = async () =>
      `server (exit ${serverStatus.code}):\n${_tail(serverOut + (await serverErr))}\n` +
      `swarm (exit ${swarmStatus.code}):\n${_tail((await swarmOut) + (await swarmErr))}`;
    if (!serverStatus.success || !swarmStatus.success) {
      const why = killed ? `was stopped after ${options.killAfterMs ?? 600_000} ms` : "failed";
      throw new Error(`The load run of ${options.clients} clients ${why}:\n${await report()}`);
    }
    const last = (text: string) => JSON.parse(text.trimEnd().split("\n").at(-1)!);
    return { server: last(serverOut), swarm: last(await swarmOut) };
  } finally {
    clearTimeout(killer);
    for (const child of [server, swarm]) {
      try {
        child?.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
    await Promise.allSettled([server.status, swarm?.status]);
  }
}
