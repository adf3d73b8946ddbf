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

Deno.test("fedgpu simulate trains MNIST with every --strategy", async () => {
  // Five rounds from a 10% model: each strategy must be well on its way (measured: 75-93%).
  const flags: Record<string, string[]> = {
    fedavg: [],
    fedavgm: ["--server-momentum", "0.5"],
    fedadagrad: [],
    fedadam: ["--server-lr", "0.01"],
    fedyogi: ["--beta2", "0.99"],
    fedprox: ["--mu", "0.01", "--clip", "5"],
  };
  for (const [strategy, extra] of Object.entries(flags)) {
    const { status, lines, errors } = await run([
      "simulate",
      "--strategy",
      strategy,
      ...extra,
      "--rounds",
      "5",
      "--target",
      "0.99",
    ]);
    strictEqual(status, 0, errors);
    const json = JSON.parse(lines.at(-1)!);
    strictEqual(json.strategy, strategy);
    strictEqual(json.rounds, 5);
    ok(json.accuracy > 0.6, `${strategy}: ${json.accuracy}`);
  }
});

Deno.test("strategy flags are checked against the strategy they belong to", async () => {
  const cases: [string[], RegExp][] = [
    [["--strategy", "fedsgd"], /--strategy must be one of fedavg, fedavgm, fedadagrad/],
    [["--strategy", "fedavg", "--beta1", "0.9"], /--beta1 does not apply to --strategy fedavg/],
    [["--strategy", "fedadam", "--beta1", "1"], /beta1 must be in \[0, /],
    [["--strategy", "fedprox", "--mu", "0"], /Proximal coefficient mu must be in/],
    [["--clip", "0"], /--clip must be a positive number/],
    [["--server-lr", "0"], /--server-lr must be a positive number/],
  ];
  for (const [argv, pattern] of cases) {
    const { status, errors } = await run(["simulate", ...argv]);
    strictEqual(status, 2, argv.join(" "));
    match(errors, pattern);
  }
});
