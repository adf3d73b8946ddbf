import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { run } from "./_run.ts";
import { mlp, parseHidden, parseShards } from "../../lib/cli/network.ts";
import { processShards } from "../../lib/cli/demo_network.ts";
import { UsageError } from "../../lib/cli/args.ts";
import { mnist2nn } from "../../mod.ts";

Deno.test("fedgpu lists the server and client commands", async () => {
  const { lines } = await run(["--help"]);
  match(lines.join("\n"), /\n {2}server +A FedAvg server/);
  match(lines.join("\n"), /\n {2}client +Federated clients/);
});

Deno.test("fedgpu server --help and client --help list their flags", async () => {
  const server = await run(["server", "--help"]);
  strictEqual(server.status, 0);
  for (
    const flag of [
      "--port",
      "--key-file",
      "--rounds",
      "--fraction",
      "--min-clients",
      "--min-updates",
      "--round-timeout",
      "--checkpoint",
      "--resume",
      "--metrics-out",
      "--allow-client",
      "--target",
      "--parallel",
    ]
  ) match(server.lines.join("\n"), new RegExp(`${flag}\\b`));
  const client = await run(["client", "--help"]);
  strictEqual(client.status, 0);
  for (
    const flag of ["--fingerprint", "--data", "--shard", "--of", "--backend", "--max-retries"]
  ) match(client.lines.join("\n"), new RegExp(`${flag}\\b`));
});

Deno.test("fedgpu server and client reject bad flags with exit status 2 and the flag named", async () => {
  const cases: [string[], RegExp][] = [
    [["server", "--rounds", "0"], /--rounds must be a positive integer, got "0"/],
    [["server", "--fraction", "1.5"], /--fraction must be a number in \(0, 1\]/],
    [["server", "--resume"], /--resume needs --checkpoint/],
    [["server", "--hidden", "200,x"], /--hidden must list positive integers, got "x"/],
    [["server", "--port=-1"], /--port must be a non-negative integer/],
    [["server", "--parallel", "0"], /--parallel must be a positive integer/],
    [["server", "--bogus"], /bogus/],
    [["client", "--shard", "100", "--fingerprint", "SHA256:x"], /--shard 100 is outside 0-99/],
    [["client", "--shard", "0-3", "--id", "a", "--fingerprint", "SHA256:x"], /--id names one/],
    [["client", "--shard", "a", "--fingerprint", "SHA256:x"], /--shard must look like/],
    [["client", "--fingerprint-file", "/nonexistent/fp"], /Pin the server/],
    [["client", "--partition", "zipf", "--fingerprint", "SHA256:x"], /--partition must be one/],
    [["simulate", "--processes", "2"], /--processes applies to --network/],
    [["simulate", "--network", "--parallel", "2"], /--parallel applies to in-process runs/],
  ];
  for (const [argv, pattern] of cases) {
    const { status, errors } = await run(argv);
    strictEqual(status, 2, `${argv.join(" ")}: ${errors}`);
    match(errors, pattern);
  }
});

Deno.test("fedgpu server reports a checkpoint from other settings and exits 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/ckpt`, new TextEncoder().encode("not a checkpoint at all, no"));
    const { status, errors } = await run([
      "server",
      "--port",
      "0",
      "--test",
      "none",
      "--features",
      "4",
      "--classes",
      "2",
      "--key-file",
      `${dir}/key.json`,
      "--fingerprint-out",
      `${dir}/fp`,
      "--checkpoint",
      `${dir}/ckpt`,
      "--resume",
    ]);
    strictEqual(status, 1);
    match(errors, /fedgpu server: .*ckpt is not a fedgpu checkpoint/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseShards reads single shards, ranges and lists", () => {
  deepStrictEqual(parseShards("3", 10), [3]);
  deepStrictEqual(parseShards("0-3,8,2", 10), [0, 1, 2, 3, 8]);
  for (const bad of ["", "3-1", "1-", "x", "10"]) {
    let error: unknown;
    try {
      parseShards(bad, 10);
    } catch (caught) {
      error = caught;
    }
    ok(error instanceof UsageError, bad);
  }
});

Deno.test("parseHidden and mlp build the 2NN bit for bit", () => {
  deepStrictEqual(parseHidden("200,200"), [200, 200]);
  deepStrictEqual(parseHidden("none"), []);
  const model = mlp(784, parseHidden("200,200"), 10, 3);
  const reference = mnist2nn(3);
  strictEqual(String(model), String(reference));
  deepStrictEqual(new Uint8Array(model.params.buffer), new Uint8Array(reference.params.buffer));
  strictEqual(String(mlp(4, [], 2, 0)), "Chain(Dense(4 => 2), softmax)");
});

Deno.test("processShards covers every client exactly once, in contiguous ranges", () => {
  for (const [clients, processes] of [[100, 10], [7, 3], [5, 5], [10, 4]]) {
    const seen: number[] = [];
    for (let p = 0; p < processes!; p++) {
      const [first, last] = processShards(clients!, processes!, p);
      ok(last >= first);
      for (let c = first; c <= last; c++) seen.push(c);
    }
    deepStrictEqual(seen, Array.from({ length: clients! }, (_, i) => i));
  }
});

Deno.test("fedgpu server --ws-port serves a TCP client and a client --url ws:// in one run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const serverLines: string[] = [];
    const server = run([
      "server",
      "--port",
      "0",
      "--ws-port",
      "0",
      "--rounds",
      "2",
      "--fraction",
      "1",
      "--min-clients",
      "2",
      "--test",
      "none",
      "--hidden",
      "16",
      "--strategy",
      "fedyogi",
      "--clip",
      "10",
      "--parallel",
      "1",
      "--key-file",
      `${dir}/key.json`,
      "--fingerprint-out",
      `${dir}/fp`,
      "--metrics-out",
      `${dir}/metrics.jsonl`,
    ], serverLines);
    let text = "";
    // Bounded by count: the server prints its addresses right after it starts listening.
    for (let tries = 0; tries < 6000 && !/listening on ws:/.test(text); tries++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      text = serverLines.join("\n");
    }
    const tcpPort = /listening on [^\s]+:(\d+)$/m.exec(text)![1]!;
    const url = /listening on (ws:\/\/\S+)/.exec(text)![1]!;
    const common = ["--fingerprint-file", `${dir}/fp`, "--of", "100", "--quiet"];
    const clients = await Promise.all([
      run(["client", "--port", tcpPort, "--shard", "0", ...common]),
      run(["client", "--url", url, "--shard", "1", ...common]),
    ]);
    for (const client of clients) strictEqual(client.status, 0, client.errors);
    const done = await server;
    strictEqual(done.status, 0, done.errors);
    const records = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n")
      .map((line) => JSON.parse(line));
    deepStrictEqual(records.map((record) => record.clients), [["0", "1"], ["0", "1"]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
