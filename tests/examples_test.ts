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
