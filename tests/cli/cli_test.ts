import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { run } from "./_run.ts";

Deno.test("fedgpu with no command prints usage and exits 2", async () => {
  const { status, lines } = await run([]);
  strictEqual(status, 2);
  match(lines.join("\n"), /Usage: fedgpu <command>/);
});

Deno.test("fedgpu rejects an unknown command with exit status 2", async () => {
  const { status, errors } = await run(["serve-me"]);
  strictEqual(status, 2);
  match(errors, /unknown command "serve-me"/);
});

Deno.test("fedgpu simulate --help lists every flag", async () => {
  const { status, lines } = await run(["simulate", "--help"]);
  strictEqual(status, 0);
  const help = lines.join("\n");
  for (
    const flag of [
      "--rounds",
      "--target",
      "--clients",
      "--partition",
      "--seed",
      "--lr",
      "--batch-size",
      "--backend",
      "--parallel",
    ]
  ) {
    match(help, new RegExp(flag));
  }
});

Deno.test("fedgpu simulate and repro name the bad flag", async () => {
  const cases: [string[], RegExp][] = [
    [["simulate", "--rounds", "ten"], /--rounds must be a positive integer, got "ten"/],
    [["simulate", "--rounds", "0"], /--rounds must be a positive integer/],
    [["simulate", "--target", "1.5"], /--target must be a number in \(0, 1\]/],
    [["simulate", "--partition", "random"], /--partition must be one of iid, shards, dirichlet/],
    [["simulate", "--lr=-1"], /--lr must be a positive number, got "-1"/],
    [["simulate", "--lr", "-1"], /Option '--lr' argument is ambiguous/],
    [["simulate", "--bogus"], /Unknown option '--bogus'/],
    [["simulate", "--backend", "gpu"], /--backend must be one of auto, cpu, webgpu, got "gpu"/],
    [["simulate", "extra"], /Unexpected argument: extra/],
    [["simulate", "--parallel", "0"], /--parallel must be a positive integer, got "0"/],
    [["simulate", "--seed"], /--seed/],
    [["repro"], /--partition must be iid or shards/],
    [["repro", "--partition", "dirichlet"], /--partition must be iid or shards/],
    [["repro", "--partition", "iid", "--grid", "0.1,x"], /--grid must list positive/],
  ];
  for (const [argv, message] of cases) {
    const { status, errors } = await run(argv);
    strictEqual(status, 2, argv.join(" "));
    match(errors, message);
  }
});

Deno.test("fedgpu simulate trains on MNIST and prints a JSON line last", async () => {
  // One client of 600 examples per round, two rounds: a real but short run.
  const { status, lines } = await run([
    "simulate",
    "--rounds",
    "2",
    "--fraction",
    "0.01",
    "--seed",
    "3",
    "--backend",
    "cpu",
  ]);
  strictEqual(status, 0);
  const rounds = lines.filter((line) => line.startsWith("round "));
  strictEqual(rounds.length, 2);
  match(lines.join("\n"), /\| summary/);
  const result = JSON.parse(lines[lines.length - 1]!);
  deepStrictEqual(
    [result.name, result.rounds, result.partition, result.seed, result.clients],
    ["demo", 2, "iid", 3, 100],
  );
  // A 2NN trained on 1,200 examples is far better than chance (10%) on the 10,000 test images.
  ok(result.accuracy > 0.6 && result.accuracy < 0.97, `accuracy ${result.accuracy}`);
  strictEqual(result.rounds_to_target, null);
  // By default one worker per core (up to 4) trains the clients; one worker gives the same run.
  strictEqual(result.parallel, Math.max(1, Math.min(4, navigator.hardwareConcurrency)));
  const one = await run(["simulate", "--rounds", "2", "--fraction", "0.01", "--seed", "3"].concat(
    ["--backend", "cpu", "--parallel", "1"],
  ));
  strictEqual(one.status, 0);
  const single = JSON.parse(one.lines[one.lines.length - 1]!);
  strictEqual(single.parallel, 1);
  deepStrictEqual([single.accuracy, single.loss], [result.accuracy, result.loss]);
});
