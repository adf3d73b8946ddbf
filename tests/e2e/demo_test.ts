import { ok, strictEqual } from "node:assert/strict";

const root = new URL("../../", import.meta.url);

// The headline claim, end to end: `deno task demo` (FedAvg, 2NN, 100 IID clients, C=0.1, E=1,
// B=10) reaches 97% test accuracy within the 87 rounds of McMahan et al. 2017, Table 1.
Deno.test("deno task demo reaches 97% test accuracy within the paper's 87 rounds", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "demo", "--rounds", "87"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(stdout);
  strictEqual(code, 0, output + new TextDecoder().decode(stderr));
  const lines = output.trimEnd().split("\n");
  const result = JSON.parse(lines[lines.length - 1]!);
  strictEqual(result.name, "demo");
  ok(result.accuracy >= 0.97, `accuracy ${result.accuracy}`);
  ok(result.rounds_to_target !== null && result.rounds_to_target <= 87, output);
  strictEqual(lines.filter((line) => line.startsWith("round ")).length, result.rounds);
});
