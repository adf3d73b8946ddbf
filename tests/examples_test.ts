import { ok, strictEqual } from "node:assert/strict";
import { Rng } from "../mod.ts";

const root = new URL("../", import.meta.url);

Deno.test("examples/csv_federated.ts learns three blobs from a CSV file", async () => {
  // Three well-separated Gaussian blobs in 3 dimensions, labelled by name.
  const rng = new Rng(11);
  const names = ["setosa", "versicolor", "virginica"];
  const rows = ["x,y,z,species"];
  for (let i = 0; i < 300; i++) {
    const c = rng.int(3);
    const point = [0, 1, 2].map((d) => (rng.normal() + (d === c ? 4 : 0)).toFixed(4));
    rows.push(`${point.join(",")},${names[c]}`);
  }
  const path = await Deno.makeTempFile({ suffix: ".csv" });
  try {
    await Deno.writeTextFile(path, rows.join("\n") + "\n");
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "examples/csv_federated.ts", path, "--label", "species", "--rounds", "5"],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const output = new TextDecoder().decode(stdout);
    strictEqual(code, 0, output + new TextDecoder().decode(stderr));
    const lines = output.trimEnd().split("\n");
    ok(lines[0]!.startsWith("300 rows, 3 features, classes setosa, versicolor, virginica"));
    strictEqual(lines.filter((line) => line.startsWith("round ")).length, 5);
    const result = JSON.parse(lines[lines.length - 1]!);
    ok(result.accuracy > 0.9, `accuracy ${result.accuracy}`);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("examples/csv_federated.ts without a file prints usage and exits 2", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/csv_federated.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  strictEqual(code, 2);
  ok(new TextDecoder().decode(stderr).includes("Usage: examples/csv_federated.ts"));
});

Deno.test("examples/async_server.ts and two examples/async_client.ts train MNIST over TCP", async () => {
  // The examples keep their key files in .fedgpu/ of the working directory: use a fresh one.
  const cwd = await Deno.makeTempDir({ prefix: "fedgpu-examples-" });
  const config = new URL("deno.json", root).pathname;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(listener.addr.port);
  listener.close();
  const spawn = (file: string, args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", config, new URL(file, root).pathname, ...args],
      cwd,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  try {
    await Deno.mkdir(`${cwd}/.fedgpu`);
    const server = spawn("examples/async_server.ts", [
      "--port",
      port,
      "--clients",
      "2",
      "--rounds",
      "1",
    ]);
    // The clients pin the fingerprint the server writes at start; they retry until it listens.
    while (!(await Deno.stat(`${cwd}/.fedgpu/server.fingerprint`).catch(() => null))) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const clients = ["0", "1"].map((shard) =>
      spawn("examples/async_client.ts", ["--shard", shard, "--of", "30", "--port", port])
    );
    const [serverOut, ...clientOuts] = await Promise.all(
      [server, ...clients].map((child) => child.output()),
    );
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    strictEqual(serverOut!.code, 0, text(serverOut!.stdout) + text(serverOut!.stderr));
    const lines = text(serverOut!.stdout).trimEnd().split("\n");
    const round = lines.find((line) => /^round +1 /.test(line));
    ok(round !== undefined && /2\/2 clients/.test(round), lines.join("\n"));
    const accuracy = Number(/test accuracy (\S+)$/.exec(lines.at(-1)!)![1]);
    ok(accuracy > 0.8, `accuracy ${accuracy}`);
    for (const out of clientOuts) {
      strictEqual(out.code, 0, text(out.stderr));
      ok(text(out.stdout).includes("training finished; trained 1 times, sent 1 updates"));
    }
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
