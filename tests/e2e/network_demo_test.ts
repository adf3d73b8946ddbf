import { deepStrictEqual, strictEqual } from "node:assert/strict";

const root = new URL("../../", import.meta.url);

async function demo(args: string[]): Promise<{ lines: string[]; result: Record<string, unknown> }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "demo", ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(stdout);
  strictEqual(code, 0, output + new TextDecoder().decode(stderr));
  const lines = output.trimEnd().split("\n");
  return { lines, result: JSON.parse(lines.at(-1)!) };
}

// The networked demo (a server process, client processes, TCP on loopback) ends with the
// in-process simulation's numbers: the same seeds give the same global model both ways.
Deno.test("deno task demo --network ends with the in-process demo's JSON line", async () => {
  const settings = ["--clients", "20", "--fraction", "0.1", "--rounds", "3", "--target", "0.99"];
  const local = await demo(settings);
  const network = await demo([...settings, "--network", "--processes", "2"]);
  strictEqual(network.result.network, true);
  strictEqual(network.result.processes, 2);
  strictEqual(local.result.network, false);
  for (const key of ["name", "rounds", "accuracy", "loss", "rounds_to_target", "clients", "lr"]) {
    deepStrictEqual(network.result[key], local.result[key], key);
  }
  // Round by round, the test accuracy and losses printed agree.
  const numbers = (lines: string[]) =>
    lines.filter((line) => /^round +\d+ +test acc/.test(line)).map((line) =>
      /test acc +(\S+) +test loss (\S+) +train loss (\S+)/.exec(line)!.slice(1)
    );
  deepStrictEqual(numbers(network.lines), numbers(local.lines));
  strictEqual(numbers(local.lines).length, 3);
});
