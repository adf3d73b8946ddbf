/**
 * The project's CPU engine against PyTorch and TensorFlow.js on one workload: the FedAvg
 * paper's 2NN (784-200-200-10, relu, relu, softmax cross-entropy) trained with plain SGD (lr
 * 0.1, no momentum) on the first 6,000 MNIST training images scaled to [0, 1], shuffled each
 * epoch, at batch sizes 10 and 64. Each system trains a warm-up epoch, then the timed epochs;
 * throughput is timed examples over timed seconds. Every system starts from the engine's
 * initial parameters, and the engine and TensorFlow.js also visit the examples in the same
 * order, so their losses agree to float rounding.
 *
 * - engine: `createBackend("cpu")`, whatever that engine is at the time of the run.
 * - PyTorch (`bench/compare_torch.py`): the first of `python3`, `/usr/bin/python3` that can
 *   import torch (`pip install torch`, which brings Intel MKL and oneDNN; or Debian's
 *   `apt-get install python3-torch`), once with torch's default thread count, once with one
 *   thread and once with a thread per core; skipped when no python has torch. Nothing is
 *   installed: the report names the torch found (version, pip or Debian, its BLAS, threads).
 * - TensorFlow.js (`bench/compare_tfjs.ts`): tfjs-core ops with `tf.train.sgd`, on the `cpu`
 *   and `wasm` backends, each in its own process.
 *
 * Prints a table, one JSON line per system and batch size, the ratios, and last one JSON line
 * named `bench-compare`: samples/s per system and batch size, and the ratios engine/PyTorch and
 * engine/TF.js (above 1: the engine is faster), each against the faster configuration of the
 * other system.
 *
 * ```sh
 * deno task bench:compare
 * deno task bench:compare --examples 2000 --epochs 2 --systems engine,tfjs-wasm
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { createBackend, loadMnist, mnist2nn, Rng } from "../mod.ts";

const SYSTEMS = ["engine", "pytorch", "tfjs-cpu", "tfjs-wasm"] as const;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    examples: { type: "string", default: "6000" },
    epochs: { type: "string", default: "3" },
    warmup: { type: "string", default: "1" },
    batch: { type: "string", default: "10,64" },
    lr: { type: "string", default: "0.1" },
    seed: { type: "string", default: "1" },
    systems: { type: "string", default: SYSTEMS.join(",") },
    "torch-threads": { type: "string", default: "default,1,cores" },
    python: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(`Usage: deno task bench:compare [options]
  --examples N        MNIST training examples to train on (default 6000)
  --epochs N          timed epochs (default 3)
  --warmup N          untimed epochs before them (default 1)
  --batch LIST        batch sizes (default 10,64)
  --lr X              SGD learning rate (default 0.1)
  --seed N            seed of the shuffling (default 1)
  --systems LIST      of ${SYSTEMS.join(", ")} (default all)
  --torch-threads L   PyTorch thread counts: "default" is torch's own, "cores" the CPU count
                      (default default,1,cores; repeats run once)
  --python PATH       python with torch (default: python3, then /usr/bin/python3)`);
  Deno.exit(0);
}

function positiveInteger(text: string, flag: string, min = 1): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`--${flag} must be an integer >= ${min}, got ${text}`);
  }
  return value;
}

const examples = positiveInteger(values.examples, "examples");
const epochs = positiveInteger(values.epochs, "epochs");
const warmup = positiveInteger(values.warmup, "warmup", 0);
const seed = positiveInteger(values.seed, "seed", 0);
const batches = values.batch.split(",").map((b) => positiveInteger(b, "batch"));
const lr = Number(values.lr);
if (!(lr > 0)) throw new RangeError(`--lr must be positive, got ${values.lr}`);
const systems = values.systems.split(",");
for (const system of systems) {
  if (!(SYSTEMS as readonly string[]).includes(system)) {
    throw new RangeError(`--systems: ${system} is not one of ${SYSTEMS.join(", ")}`);
  }
}

/** One measurement: a system in one configuration at one batch size. */
interface Row {
  system: "engine" | "pytorch" | "tfjs";
  /** Backend and threads, as shown in the table, e.g. `threads=1 (default)`. */
  config: string;
  /** Name in the summary line, e.g. `pytorch/threads=1` or `tfjs/wasm`. */
  key: string;
  batch: number;
  samples_per_s: number;
  seconds: number;
  /** Running training loss and accuracy of the last timed epoch. */
  loss: number;
  accuracy: number;
  [extra: string]: unknown;
}

/** A system or configuration that did not run. */
interface Skip {
  system: string;
  config: string;
  reason: string;
}

/** Other work on the machine skews every number: the 1-minute load average before the runs. */
const loadBefore = Deno.loadavg()[0]!;
const rows: Row[] = [];
const skips: Skip[] = [];
const progress = (line: string) => console.error(`[bench:compare] ${line}`);

const { train: data } = await loadMnist({ trainLimit: examples, testLimit: 1 });
const initial = mnist2nn(0);
const layers = initial.dense.map(({ spec }) => [spec.nIn, spec.nOut]);
// A run has learned when its last epoch's loss is below 3/4 of the common starting loss.
const initialLoss = await (async () => {
  const backend = await createBackend("cpu");
  try {
    return (await backend.evaluate(initial, data)).loss;
  } finally {
    backend.dispose();
  }
})();

// The examples and initial parameters for the other systems, in the machine's byte order.
const dataDir = await Deno.makeTempDir({ prefix: "fedgpu-bench-compare-" });
try {
  await Deno.writeFile(join(dataDir, "x.f32"), _bytes(data.x));
  await Deno.writeFile(join(dataDir, "y.i32"), _bytes(data.y));
  await Deno.writeFile(join(dataDir, "init.f32"), _bytes(initial.params));
  await Deno.writeTextFile(
    join(dataDir, "meta.json"),
    JSON.stringify({ n: data.n, features: data.features, classes: data.classes, layers }),
  );
  const common = [
    `--data=${dataDir}`,
    `--batch=${batches.join(",")}`,
    `--epochs=${epochs}`,
    `--warmup=${warmup}`,
    `--lr=${lr}`,
    `--seed=${seed}`,
  ];
  for (const system of systems) {
    progress(`${system}...`);
    if (system === "engine") await runEngine();
    else if (system === "pytorch") await runTorch(common);
    else await runTfjs(system.slice("tfjs-".length), common);
  }
} finally {
  await Deno.remove(dataDir, { recursive: true });
}

report();

/** Trains the project's CPU engine in this process. */
async function runEngine(): Promise<void> {
  const backend = await createBackend("cpu");
  try {
    for (const batch of batches) {
      const model = mnist2nn(0);
      // One generator across both calls: each epoch gets the next permutation, as in tfjs.
      const rng = new Rng(seed);
      if (warmup > 0) {
        await backend.train(model, data, { epochs: warmup, batchSize: batch, lr, rng });
      }
      const started = performance.now();
      const { last } = await backend.train(model, data, { epochs, batchSize: batch, lr, rng });
      const seconds = (performance.now() - started) / 1000;
      rows.push({
        system: "engine",
        config: backend.device,
        key: "engine",
        batch,
        samples_per_s: epochs * data.n / seconds,
        seconds,
        loss: last.loss,
        accuracy: last.accuracy,
        device: backend.device,
      });
    }
  } finally {
    backend.dispose();
  }
}

/** Finds a python that imports torch and runs `compare_torch.py` with it. */
async function runTorch(common: string[]): Promise<void> {
  const candidates = values.python === undefined
    ? ["python3", "/usr/bin/python3"]
    : [values.python];
  let python: string | undefined;
  for (const candidate of candidates) {
    const probe = await _spawn(candidate, ["-c", "import torch"]);
    if (probe?.code === 0) {
      python = candidate;
      break;
    }
  }
  if (python === undefined) {
    const line = "PyTorch: skipped (no python3 imports torch: pip install torch)";
    console.log(line);
    skips.push({ system: "pytorch", config: "-", reason: "torch not installed" });
    return;
  }
  const script = fileURLToPath(new URL("./compare_torch.py", import.meta.url));
  await _collect("pytorch", "-", "PyTorch", python, [
    script,
    ...common,
    `--threads=${values["torch-threads"]}`,
  ], (line) => ({
    config: `threads=${line.threads}${line.default_threads === true ? " (default)" : ""}`,
    key: `pytorch/threads=${line.threads}`,
  }));
}

/** Runs `compare_tfjs.ts` for one TF.js backend in its own Deno process. */
async function runTfjs(backend: string, common: string[]): Promise<void> {
  const script = fileURLToPath(new URL("./compare_tfjs.ts", import.meta.url));
  // TF.js is no dependency of the library: its packages are in a config of their own.
  const config = fileURLToPath(new URL("./tfjs.json", import.meta.url));
  await _collect(
    "tfjs",
    backend,
    `TF.js ${backend}`,
    Deno.execPath(),
    ["run", "-A", `--config=${config}`, script, ...common, `--backend=${backend}`],
    (line) => ({
      config: `${backend}${line.simd === true ? " simd" : ""}, threads=${line.threads}`,
      key: `tfjs/${backend}`,
    }),
  );
}

/**
 * Runs a measuring process and adds the JSON lines it prints as rows (or a skip); anything
 * else it prints is passed on to stderr.
 */
async function _collect(
  system: "pytorch" | "tfjs",
  config: string,
  label: string,
  command: string,
  args: string[],
  describe: (line: Record<string, unknown>) => { config: string; key: string },
): Promise<void> {
  const result = await _spawn(command, args);
  if (result === undefined) {
    skips.push({ system, config, reason: `${command} not found` });
    console.log(`${label}: skipped (${command} not found)`);
    return;
  }
  let measured = 0;
  for (const text of result.stdout.split("\n")) {
    if (!text.startsWith("{")) {
      if (text.trim() !== "") console.error(text);
      continue;
    }
    const line = JSON.parse(text) as Record<string, unknown>;
    if (line.skipped === true) {
      const reason = String(line.reason);
      skips.push({ system, config, reason });
      console.log(`${label}: skipped (${reason})`);
      continue;
    }
    const { batch, samples_per_s, seconds, loss, accuracy, ...extra } = line;
    delete extra.system;
    rows.push({
      system,
      ...describe(line),
      batch: Number(batch),
      samples_per_s: Number(samples_per_s),
      seconds: Number(seconds),
      loss: Number(loss),
      accuracy: Number(accuracy),
      ...extra,
    });
    measured++;
  }
  if (result.code !== 0) {
    const tail = result.stderr.trim().split("\n").slice(-15).join("\n");
    console.error(tail);
    const reason = `exit code ${result.code}${measured > 0 ? ` after ${measured} rows` : ""}`;
    skips.push({ system, config, reason });
    console.log(`${label}: failed (${reason}; its error output is above)`);
  }
}

/** Runs a process to completion; undefined if the program does not exist. */
async function _spawn(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string } | undefined> {
  try {
    const output = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Which BLAS a library path is; Debian's libblas3 (reference, netlib) lives in .../blas/. */
function _blasKind(path: string | null): string | null {
  if (path === null) return null;
  if (/\/blas\/libblas\.so/.test(path)) return "reference";
  if (path.startsWith("mkl")) return "mkl";
  return ["openblas", "blis", "atlas", "mkl"].find((kind) => path.includes(kind)) ?? "other";
}

function _bytes(array: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** The table, the JSON lines and the summary line (last). */
function report(): void {
  const engineRate = new Map(
    rows.filter((r) => r.system === "engine").map((r) => [r.batch, r.samples_per_s]),
  );
  const ratio = (row: Row) => {
    const engine = engineRate.get(row.batch);
    return engine === undefined ? null : engine / row.samples_per_s;
  };
  const learned = (row: Row) => Number.isFinite(row.loss) && row.loss < 0.75 * initialLoss;

  const cores = navigator.hardwareConcurrency;
  console.log(
    `\n2NN 784-200-200-10, SGD lr ${lr}, ${data.n} MNIST examples, ${warmup} warm-up + ${epochs} ` +
      `timed epochs, ${cores} CPU cores (load average ${loadBefore.toFixed(2)} before, ` +
      `${Deno.loadavg()[0]!.toFixed(2)} after), initial loss ${initialLoss.toFixed(4)}\n` +
      "engine ÷ this: engine samples/s over this system's; loss, acc: running, of the last epoch\n",
  );
  const header = [
    "system",
    "backend / threads",
    "batch",
    "samples/s",
    "engine ÷ this",
    "loss",
    "acc",
  ];
  const table = rows.map((row) => {
    const r = ratio(row);
    return [
      row.system,
      row.config,
      String(row.batch),
      row.samples_per_s.toFixed(0),
      r === null ? "-" : `${r.toFixed(2)}x`,
      row.loss.toFixed(4),
      `${(100 * row.accuracy).toFixed(1)}%${learned(row) ? "" : " (did not learn)"}`,
    ];
  });
  const widths = header.map((h, i) =>
    Math.max(h.length, ...table.map((cells) => cells[i]!.length))
  );
  const line = (cells: string[]) =>
    cells.map((cell, i) => i >= 2 && i <= 4 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))
      .join("  ").trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const cells of table) console.log(line(cells));
  for (const { system, config, reason } of skips) {
    console.log(`${system}${config === "-" ? "" : ` ${config}`}: skipped (${reason})`);
  }
  const torch = rows.find((row) => row.system === "pytorch");
  const torchBlas = typeof torch?.blas === "string" ? torch.blas : null;
  if (torch !== undefined) {
    const threads = rows.filter((row) => row.system === "pytorch").find((row) =>
      row.config.includes("(default)")
    )?.config.replace(" (default)", "");
    console.log(
      `PyTorch ${torch.version} (${torch.install ?? "unknown install"}, ${
        torch.torch_path ?? "?"
      }): matrix products on ${torchBlas ?? "unknown"}; MKL ${torch.mkl ? "yes" : "no"}, ` +
        `oneDNN ${torch.mkldnn ? "yes" : "no"}; default ${threads ?? "threads unknown"}`,
    );
    if (_blasKind(torchBlas) === "reference") {
      console.log(
        "  that is the reference BLAS: PyTorch runs several times faster on an optimized one " +
          "(apt-get install libopenblas0)",
      );
    }
  }
  console.log();

  for (const row of rows) {
    const { system, config, key, batch, samples_per_s, seconds, loss, accuracy, ...extra } = row;
    const r = ratio(row);
    console.log(JSON.stringify({
      name: "bench-compare-run",
      system,
      config,
      key,
      batch,
      samples_per_s: Math.round(samples_per_s),
      seconds: +seconds.toFixed(3),
      loss: +loss.toFixed(5),
      accuracy,
      learned: learned(row),
      engine_ratio: r === null ? null : +r.toFixed(3),
      ...extra,
    }));
  }
  for (const skip of skips) {
    console.log(JSON.stringify({ name: "bench-compare-run", ...skip, skipped: true }));
  }

  // Each ratio is against the other system's fastest configuration at that batch size.
  const best = (system: Row["system"], batch: number) => {
    const candidates = rows.filter((r) => r.system === system && r.batch === batch);
    return candidates.length === 0
      ? undefined
      : candidates.reduce((a, b) => (b.samples_per_s > a.samples_per_s ? b : a));
  };
  const ratios = (system: Row["system"]) =>
    Object.fromEntries(batches.map((batch) => {
      const other = best(system, batch);
      const engine = engineRate.get(batch);
      return [
        batch,
        other === undefined || engine === undefined
          ? null
          : +(engine / other.samples_per_s).toFixed(3),
      ];
    }));
  const engineOverTorch = ratios("pytorch");
  const engineOverTfjs = ratios("tfjs");
  for (const [name, values] of [["PyTorch", engineOverTorch], ["TF.js", engineOverTfjs]] as const) {
    const parts = batches.map((batch) => {
      const r = values[batch];
      return `batch ${batch}: ${r === null || r === undefined ? "n/a" : `${r.toFixed(2)}x`}`;
    });
    console.log(`engine / ${name} (fastest configuration): ${parts.join(", ")}`);
  }

  const samplesPerS: Record<string, Record<string, number>> = {};
  for (const row of rows) (samplesPerS[row.key] ??= {})[row.batch] = Math.round(row.samples_per_s);
  console.log(JSON.stringify({
    name: "bench-compare",
    model: "2nn-784-200-200-10",
    examples: data.n,
    epochs,
    warmup,
    lr,
    cores,
    load_before: +loadBefore.toFixed(2),
    load_after: +Deno.loadavg()[0]!.toFixed(2),
    initial_loss: +initialLoss.toFixed(5),
    samples_per_s: samplesPerS,
    engine_over_pytorch: engineOverTorch,
    engine_over_tfjs: engineOverTfjs,
    pytorch_version: torch?.version ?? null,
    pytorch_install: torch?.install ?? null,
    pytorch_blas: torchBlas,
    pytorch_blas_kind: _blasKind(torchBlas),
    skipped: skips.map(({ system, config }) => config === "-" ? system : `${system} ${config}`),
    all_learned: rows.every(learned),
  }));
}
