// Fault tests over loopback with real processes: clients SIGKILLed in the middle of a round,
// and a server SIGKILLed in the middle of training and restarted with --resume.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Rng } from "../../mod.ts";

const main = new URL("../../lib/cli/main.ts", import.meta.url).href;

/** Writes train and test CSVs of four Gaussian blobs in 20 dimensions. */
async function writeBlobs(dir: string, n: number): Promise<void> {
  const rng = new Rng(21);
  const rows = (count: number) => {
    const lines: string[] = [];
    for (let i = 0; i < count; i++) {
      const label = i % 4;
      const x = Array.from({ length: 20 }, (_, j) => (rng.normal() + (j % 4 === label ? 1 : 0)));
      lines.push([...x.map((v) => v.toFixed(4)), String(label)].join(","));
    }
    return lines.join("\n") + "\n";
  };
  await Deno.writeTextFile(`${dir}/train.csv`, rows(n));
  await Deno.writeTextFile(`${dir}/test.csv`, rows(400));
}

/** A process whose stdout lines can be awaited one pattern at a time. */
class Proc {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly stderr: Promise<string>;
  #waiters: { pattern: RegExp; resolve: (line: string) => void; fail: () => void }[] = [];
  readonly done: Promise<void>;

  constructor(args: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.stderr = new Response(this.child.stderr).text();
    this.done = this.#read();
  }

  async #read(): Promise<void> {
    let pending = "";
    for await (const text of this.child.stdout.pipeThrough(new TextDecoderStream())) {
      pending += text;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        this.lines.push(line);
        this.#waiters = this.#waiters.filter((waiter) => {
          if (!waiter.pattern.test(line)) return true;
          waiter.resolve(line);
          return false;
        });
      }
    }
    for (const waiter of this.#waiters) waiter.fail();
    this.#waiters = [];
  }

  /**
   * Resolves with the first line (past or future) matching `pattern`; rejects once the output
   * ends without one, or after a wait that only a hung process reaches.
   */
  waitFor(pattern: RegExp, timeoutMs = 600_000): Promise<string> {
    const seen = this.lines.find((line) => pattern.test(line));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        reject(new Error(`No line matching ${pattern} (${why}):\n${this.lines.join("\n")}`));
      };
      const timer = setTimeout(() => fail(`${timeoutMs} ms passed`), timeoutMs);
      this.#waiters.push({
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
        fail: () => fail("the output ended"),
      });
    });
  }

  async finish(): Promise<Deno.CommandStatus> {
    const status = await this.child.status;
    await this.done;
    return status;
  }

  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }
}

function serverArgs(dir: string, extra: string[]): string[] {
  return [
    "server",
    "--key-file",
    `${dir}/server_key.json`,
    "--fingerprint-out",
    `${dir}/server.fingerprint`,
    "--test",
    `${dir}/test.csv`,
    "--hidden",
    "256",
    "--lr",
    "0.05",
    "--seed",
    "5",
    ...extra,
  ];
}

function clientArgs(dir: string, port: string, shards: string, of: number): string[] {
  return [
    "client",
    "--port",
    port,
    "--fingerprint-file",
    `${dir}/server.fingerprint`,
    "--data",
    `${dir}/train.csv`,
    "--shard",
    shards,
    "--of",
    String(of),
    "--seed",
    "5",
    "--retry-initial",
    "100",
    "--retry-max",
    "400",
    "--max-retries",
    "100",
  ];
}

async function readRecords(path: string): Promise<Record<string, unknown>[]> {
  return (await Deno.readTextFile(path)).trim().split("\n").map((line) => JSON.parse(line));
}

Deno.test({
  name: "30% of clients SIGKILLed mid-round: the round completes with the rest",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "fedgpu-faults-" });
    const procs: Proc[] = [];
    try {
      await writeBlobs(dir, 4000);
      // Long local training (30 epochs): a client killed as it begins round 2 cannot finish it.
      const server = new Proc(serverArgs(dir, [
        "--port",
        "0",
        "--rounds",
        "2",
        "--fraction",
        "1",
        "--min-clients",
        "10",
        "--epochs",
        "30",
        "--metrics-out",
        `${dir}/metrics.jsonl`,
      ]));
      procs.push(server);
      const port = /:(\d+)$/.exec(await server.waitFor(/^listening on /))![1]!;
      const clients = Array.from(
        { length: 10 },
        (_, i) => new Proc(clientArgs(dir, port, String(i), 10)),
      );
      procs.push(...clients);
      // Each kill lands once its client has begun round 2's training (30 local epochs): it was
      // sampled, and its update cannot have been sent.
      const killed = [2, 5, 8];
      for (const i of killed) {
        await clients[i]!.waitFor(/training for round 2$/);
        clients[i]!.kill();
      }
      const status = await server.finish();
      strictEqual(status.code, 0, server.lines.join("\n") + (await server.stderr));
      const records = await readRecords(`${dir}/metrics.jsonl`);
      deepStrictEqual(records.map((record) => record.round), [1, 2]);
      strictEqual((records[0]!.clients as string[]).length, 10);
      // Round 2 was under way when the kills came: the killed clients are dropped from it.
      const second = records[1]!;
      strictEqual((second.sampled as string[]).length, 10);
      deepStrictEqual(
        (second.dropped as { id: string }[]).map((drop) => drop.id).sort(),
        killed.map(String),
      );
      deepStrictEqual(
        second.clients,
        ["0", "1", "3", "4", "6", "7", "9"],
      );
      for (const [i, client] of clients.entries()) {
        const exit = await client.finish();
        if (!killed.includes(i)) strictEqual(exit.code, 0, await client.stderr);
      }
    } finally {
      for (const proc of procs) proc.kill();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a FedAvg and a FedAdam server SIGKILLed mid-training and resumed end with the same bits",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "fedgpu-resume-" });
    const procs: Proc[] = [];
    const run = async (
      name: string,
      killAfterRound: number | null,
      strategy: string[],
    ): Promise<Uint8Array> => {
      const common = [
        ...strategy,
        "--rounds",
        "5",
        "--fraction",
        "0.75",
        "--min-clients",
        "4",
        "--epochs",
        "10",
        "--checkpoint",
        `${dir}/${name}.ckpt`,
        "--metrics-out",
        `${dir}/${name}.jsonl`,
        "--save-model",
        `${dir}/${name}.model`,
      ];
      let server = new Proc(serverArgs(dir, ["--port", "0", ...common]));
      procs.push(server);
      const port = /:(\d+)$/.exec(await server.waitFor(/^listening on /))![1]!;
      const clients = [
        new Proc(clientArgs(dir, port, "0-1", 4)),
        new Proc(clientArgs(dir, port, "2-3", 4)),
      ];
      procs.push(...clients);
      if (killAfterRound !== null) {
        await server.waitFor(new RegExp(`^round +${killAfterRound} `));
        server.kill();
        await server.finish();
        server = new Proc(serverArgs(dir, ["--port", port, "--resume", ...common]));
        procs.push(server);
        // The kill lands after round 2's checkpoint, normally inside round 3.
        const resumedAfter = Number(
          /resumed after round (\d+)/.exec(await server.waitFor(/^model /))?.[1],
        );
        ok(resumedAfter >= killAfterRound && resumedAfter < 5, server.lines.join("\n"));
      }
      const status = await server.finish();
      strictEqual(status.code, 0, server.lines.join("\n") + (await server.stderr));
      for (const client of clients) strictEqual((await client.finish()).code, 0);
      const records = await readRecords(`${dir}/${name}.jsonl`);
      deepStrictEqual(records.map((record) => record.round), [1, 2, 3, 4, 5]);
      return await Deno.readFile(`${dir}/${name}.model`);
    };
    try {
      await writeBlobs(dir, 2000);
      // FedAdam's moments live in the checkpoint: a resume that lost them would differ.
      for (const strategy of [[], ["--strategy", "fedadam", "--server-lr", "0.01"]]) {
        const name = strategy[1] ?? "fedavg";
        const straight = await run(`${name}-straight`, null, strategy);
        const resumed = await run(`${name}-resumed`, 2, strategy);
        strictEqual(resumed.length, straight.length);
        ok(resumed.every((byte, i) => byte === straight[i]), `${name}: the models' bytes differ`);
      }
    } finally {
      for (const proc of procs) proc.kill();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
