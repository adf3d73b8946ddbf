/**
 * The demo over the network: `fedgpu simulate --network` starts a `fedgpu server` process and
 * client processes on loopback (the K clients spread over them, each client its own
 * connection), relays the server's round lines, and summarizes like the in-process demo.
 * With the same seed the global model is the in-process simulation's, bit for bit.
 *
 * @module
 */

import type { Output, RunConfig, RunSummary } from "./simulate.ts";
import { strategyArgs } from "./args.ts";

/** The clients of process `p` of `processes`: a contiguous range of shard indices. */
export function processShards(clients: number, processes: number, p: number): [number, number] {
  return [Math.floor((p * clients) / processes), Math.floor(((p + 1) * clients) / processes) - 1];
}

async function* _lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    yield* lines;
  }
  if (pending !== "") yield pending;
}

/**
 * Runs the demo's federated training as a server process and `processes` client processes.
 *
 * @param config The run's settings (clients K, fraction, rounds, target, ...).
 * @param processes Client processes to spread the K clients over.
 * @param out Where lines go.
 * @param mnistDir A folder with MNIST IDX files instead of the npm package's.
 * @returns The summary, as the in-process demo's.
 * @throws {Error} If the server or a client process fails.
 */
export async function runNetworked(
  config: RunConfig,
  processes: number,
  out: Output,
  mnistDir?: string,
): Promise<RunSummary> {
  const dir = await Deno.makeTempDir({ prefix: "fedgpu-demo-" });
  const main = new URL("./main.ts", import.meta.url).href;
  const shared = [
    "--seed",
    String(config.seed),
    ...(mnistDir === undefined ? [] : ["--mnist-dir", mnistDir]),
  ];
  const metrics = `${dir}/metrics.jsonl`;
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      main,
      "server",
      "--port",
      "0",
      "--key-file",
      `${dir}/server_key.json`,
      "--fingerprint-out",
      `${dir}/server.fingerprint`,
      "--metrics-out",
      metrics,
      "--rounds",
      String(config.rounds),
      "--target",
      String(config.target),
      "--fraction",
      String(config.fraction),
      "--min-clients",
      String(config.clients),
      "--epochs",
      String(config.epochs),
      "--batch-size",
      String(config.batchSize),
      "--lr",
      String(config.lr),
      ...strategyArgs(config.strategy),
      "--backend",
      config.backend === "webgpu" ? "webgpu" : "cpu",
      ...shared,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const serverErrors = new Response(server.stderr).text();
  const clients: Deno.ChildProcess[] = [];
  const clientErrors: Promise<string>[] = [];
  const started = performance.now();
  let summaryLine = "";
  let records: Record<string, unknown>[] = [];
  try {
    for await (const line of _lines(server.stdout)) {
      const listening = /^listening on (.+):(\d+)$/.exec(line);
      if (listening !== null && clients.length === 0) {
        const fingerprint = (await Deno.readTextFile(`${dir}/server.fingerprint`)).trim();
        out.line(`server on port ${listening[2]}; starting ${processes} client processes`);
        for (let p = 0; p < processes; p++) {
          const [first, last] = processShards(config.clients, processes, p);
          const child = new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "-A",
              main,
              "client",
              "--port",
              listening[2]!,
              "--fingerprint",
              fingerprint,
              "--shard",
              `${first}-${last}`,
              "--of",
              String(config.clients),
              "--partition",
              config.partition,
              "--alpha",
              String(config.alpha),
              "--backend",
              config.backend,
              "--quiet",
              ...shared,
            ],
            stdout: "null",
            stderr: "piped",
          }).spawn();
          clients.push(child);
          clientErrors.push(new Response(child.stderr).text());
        }
      } else if (line.startsWith("round ")) {
        out.line(line);
      } else if (line.startsWith("{")) {
        summaryLine = line;
      } else if (line.startsWith("model ")) {
        out.line(line);
      }
    }
    const status = await server.status;
    if (!status.success) {
      throw new Error(`The server process failed (exit ${status.code}):\n${await serverErrors}`);
    }
    records = await _readRecords(metrics);
  } finally {
    // Clients leave on the server's goodbye; give them a moment, then stop any straggler.
    const deadline = setTimeout(() => {
      for (const child of clients) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already exited.
        }
      }
    }, 30_000);
    const statuses = await Promise.all(clients.map((child) => child.status));
    clearTimeout(deadline);
    try {
      server.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    for (const [p, status] of statuses.entries()) {
      if (!status.success) {
        const errors = (await clientErrors[p]!).trim();
        out.line(`client process ${p} exited with ${status.code}: ${errors}`);
      }
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const seconds = (performance.now() - started) / 1000;
  const result = JSON.parse(summaryLine) as Record<string, unknown>;
  const milestones = [0.9, 0.95, config.target]
    .filter((value, i, all) => all.indexOf(value) === i)
    .sort((a, b) => a - b)
    .map((accuracy) => ({
      accuracy,
      round: (records.find((record) => Number(record.accuracy) >= accuracy)?.round ?? null) as
        | number
        | null,
    }));
  const examples = records.reduce((sum, record) => sum + Number(record.examples), 0);
  const last = records.at(-1);
  return {
    rounds: Number(last?.round ?? 0),
    roundsToTarget: milestones.find((m) => m.accuracy === config.target)!.round,
    accuracy: Number(last?.accuracy ?? NaN),
    loss: Number(last?.loss ?? NaN),
    best: Math.max(0, ...records.map((record) => Number(record.accuracy) || 0)),
    seconds,
    samplesPerSecond: (examples * config.epochs) / seconds,
    milestones,
    backend: result.backend === "webgpu" ? "webgpu" : "cpu",
    device: String(result.adapter ?? ""),
  };
}

async function _readRecords(path: string): Promise<Record<string, unknown>[]> {
  try {
    return (await Deno.readTextFile(path)).trim().split("\n").filter((line) => line !== "")
      .map((line) => JSON.parse(line));
  } catch {
    return [];
  }
}
