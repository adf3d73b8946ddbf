/**
 * The project's checks, run by `deno task test`: every step runs, in order, whether or not an
 * earlier one failed, with its output streamed as it comes; a table of the steps and their
 * results comes last, and the exit status is 1 if any step failed.
 *
 * ```sh
 * deno task test              # every step
 * deno task test lint check   # only the named steps, in the table's order
 * ```
 *
 * The name is not `test.ts` on purpose: `deno test` would take that for a test file and run
 * it. A new check is one more entry in `STEPS`. A new test file under `tests/` needs no entry: the
 * `test` step runs every test file outside `tests/compute/`.
 *
 * @module
 */

/** One check: a name for the table and the command that runs it. */
interface Step {
  name: string;
  command: string[];
  /**
   * Whether an abort (SIGABRT, exit 134) after a summary of only passed tests counts as a pass,
   * with a warning: Mesa's llvmpipe WebGPU sometimes corrupts its heap while the process tears
   * down, after every test has passed (the tests' results are in; the process's end is not ours).
   */
  teardownAbortIsPass?: boolean;
}

const STEPS: Step[] = [
  { name: "fmt", command: ["deno", "fmt", "--check"] },
  { name: "lint", command: ["deno", "lint"] },
  // The TF.js side of the comparison benchmark has a config of its own (the root one excludes
  // it, so that `deno check` never fetches TF.js); it is formatted and linted with that config.
  {
    name: "fmt:tfjs",
    command: ["deno", "fmt", "--check", "--config", "bench/tfjs.json", "bench/compare_tfjs.ts"],
  },
  {
    name: "lint:tfjs",
    command: ["deno", "lint", "--config", "bench/tfjs.json", "bench/compare_tfjs.ts"],
  },
  {
    name: "doc",
    command: [
      "deno",
      "doc",
      "--lint",
      "mod.ts",
      "lib/net/mod.ts",
      "lib/net/noise/mod.ts",
      "lib/compute/mod.ts",
      "lib/cli/main.ts",
    ],
  },
  { name: "check", command: ["deno", "check"] },
  {
    name: "test",
    command: ["deno", "test", "-A", "--doc", "--parallel", "--ignore=tests/compute"],
  },
  // WebGPU tests run alone: in parallel with each other they starve the emulated device.
  {
    name: "compute",
    command: ["deno", "test", "-A", "tests/compute"],
    teardownAbortIsPass: true,
  },
];

interface Outcome {
  step: Step;
  code: number;
  seconds: number;
  note?: string;
}

/** Deno's closing summary of a run in which every test passed. */
const _ALL_PASSED = /^ok \| \d+ passed \| 0 failed/m;

async function runStep(step: Step): Promise<Outcome> {
  console.log(`\n==> ${step.name}: ${step.command.join(" ")}`);
  const started = performance.now();
  const [program, ...args] = step.command as [string, ...string[]];
  let code: number;
  try {
    const child = new Deno.Command(program === "deno" ? Deno.execPath() : program, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    // Streamed as it comes; the tail is kept to read the closing summary.
    let tail = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      await Deno.stdout.write(chunk);
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
    }
    code = (await child.status).code;
    if (code === 134 && step.teardownAbortIsPass && _ALL_PASSED.test(tail)) {
      const note = "aborted at exit after all its tests passed (llvmpipe teardown)";
      console.log(`\n${step.name}: WARNING: ${note}`);
      return { step, code: 0, seconds: (performance.now() - started) / 1000, note };
    }
  } catch (error) {
    console.error(`${step.name}: cannot start ${program}: ${(error as Error).message}`);
    code = 127;
  }
  return { step, code, seconds: (performance.now() - started) / 1000 };
}

const unknown = Deno.args.filter((name) => !STEPS.some((step) => step.name === name));
if (unknown.length > 0) {
  console.error(
    `Unknown step ${unknown.join(", ")}; the steps are ${STEPS.map((s) => s.name).join(", ")}`,
  );
  Deno.exit(2);
}
const chosen = Deno.args.length === 0
  ? STEPS
  : STEPS.filter((step) => Deno.args.includes(step.name));

const outcomes: Outcome[] = [];
for (const step of chosen) outcomes.push(await runStep(step));

const width = Math.max(...outcomes.map(({ step }) => step.name.length));
console.log("\nsteps:");
for (const { step, code, seconds, note } of outcomes) {
  const result = code === 0 ? "pass" : `FAIL (exit ${code})`;
  console.log(
    `  ${step.name.padEnd(width)}  ${result.padEnd(15)} ${seconds.toFixed(1)} s` +
      (note === undefined ? "" : `  (${note})`),
  );
}
const failed = outcomes.filter(({ code }) => code !== 0);
console.log(
  failed.length === 0
    ? `all ${outcomes.length} steps passed`
    : `${failed.length} of ${outcomes.length} steps failed: ${
      failed.map(({ step }) => step.name).join(", ")
    }`,
);
if (failed.length > 0) Deno.exit(1);
