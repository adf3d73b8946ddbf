import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  createBackend,
  createStrategy,
  FedAdagrad,
  FedAdam,
  FedAvg,
  FedAvgM,
  FedProx,
  FedYogi,
  localTraining,
  Rng,
  Sgd,
  type Strategy,
  STRATEGY_NAMES,
} from "../../mod.ts";

/**
 * Reddi et al. 2021, Algorithm 2, and FedAvgM, written out from the paper for one coordinate
 * at a time, in float64: the slow reference the strategies are held to.
 */
function referenceRun(
  rule: "avgm" | "adagrad" | "adam" | "yogi",
  x0: Float32Array,
  rounds: { updates: Float32Array[]; weights: number[] }[],
  h: { eta: number; beta: number; beta1: number; beta2: number; tau: number },
): Float64Array[] {
  const n = x0.length;
  let x = Float64Array.from(x0);
  const m = new Float64Array(n);
  const v = new Float64Array(n).fill(rule === "avgm" ? 0 : h.tau * h.tau);
  const out: Float64Array[] = [];
  for (const { updates, weights } of rounds) {
    const total = weights.reduce((a, b) => a + b, 0);
    const next = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let delta = 0;
      updates.forEach((u, k) => delta += weights[k]! * u[i]!);
      delta /= total;
      if (rule === "avgm") {
        m[i] = h.beta * m[i]! + delta;
        next[i] = x[i]! + h.eta * m[i]!;
        continue;
      }
      m[i] = h.beta1 * m[i]! + (1 - h.beta1) * delta;
      const d2 = delta * delta;
      if (rule === "adagrad") v[i] = v[i]! + d2;
      else if (rule === "adam") v[i] = h.beta2 * v[i]! + (1 - h.beta2) * d2;
      else v[i] = v[i]! - (1 - h.beta2) * d2 * Math.sign(v[i]! - d2);
      next[i] = x[i]! + h.eta * m[i]! / (Math.sqrt(v[i]!) + h.tau);
    }
    // The global model is float32 between rounds.
    x = Float64Array.from(Float32Array.from(next));
    out.push(x);
  }
  return out;
}

function randomRounds(seed: number, size: number, count: number) {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const clients = 1 + rng.int(5);
    return {
      updates: Array.from(
        { length: clients },
        () => Float32Array.from({ length: size }, () => rng.normal() * 0.05),
      ),
      weights: Array.from({ length: clients }, () => 1 + rng.int(600)),
    };
  });
}

async function runStrategy(
  strategy: Strategy,
  x0: Float32Array,
  rounds: { updates: Float32Array[]; weights: number[] }[],
): Promise<Float32Array[]> {
  let x: Float32Array = x0.slice();
  const out: Float32Array[] = [];
  for (const { updates, weights } of rounds) {
    strategy.begin(x);
    updates.forEach((u, k) => strategy.accumulate(u, weights[k]!));
    x = await strategy.finish();
    out.push(x);
  }
  return out;
}

const H = { eta: 0.03, beta: 0.7, beta1: 0.85, beta2: 0.95, tau: 1e-3 };

Deno.test("server optimizers follow Reddi et al. 2021, Algorithm 2, round after round", async () => {
  const backend = await createBackend("cpu");
  try {
    const size = 37;
    const x0 = Float32Array.from({ length: size }, (_, i) => Math.sin(i));
    const rounds = randomRounds(3, size, 6);
    const cases: [Parameters<typeof referenceRun>[0], () => Strategy][] = [
      ["avgm", () => new FedAvgM({ serverLr: H.eta, momentum: H.beta })],
      ["adagrad", () => new FedAdagrad({ serverLr: H.eta, beta1: H.beta1, tau: H.tau })],
      ["adam", () => new FedAdam({ serverLr: H.eta, beta1: H.beta1, beta2: H.beta2, tau: H.tau })],
      ["yogi", () => new FedYogi({ serverLr: H.eta, beta1: H.beta1, beta2: H.beta2, tau: H.tau })],
    ];
    for (const [rule, make] of cases) {
      const want = referenceRun(rule, x0, rounds, H);
      for (const strategy of [make(), make()]) {
        const got = await runStrategy(strategy, x0, rounds);
        got.forEach((x, r) => {
          for (let i = 0; i < size; i++) {
            const tolerance = 1e-6 * (1 + Math.abs(want[r]![i]!));
            ok(Math.abs(x[i]! - want[r]![i]!) <= tolerance, `${rule} round ${r} index ${i}`);
          }
        });
      }
    }
    // On the Wasm engine's sum the optimizers keep the bits of the JavaScript sum.
    const js = await runStrategy(new FedAdam(), x0, rounds);
    const wasm = await runStrategy(new FedAdam({ sum: backend.createWeightedSum() }), x0, rounds);
    deepStrictEqual(wasm, js);
  } finally {
    backend.dispose();
  }
});

Deno.test("FedAvgM with momentum 0 and FedProx are FedAvg on the server", async () => {
  const size = 11;
  const x0 = Float32Array.from({ length: size }, (_, i) => i / 7);
  const rounds = randomRounds(5, size, 3);
  const plain = await runStrategy(new FedAvg({ serverLr: 0.5 }), x0, rounds);
  const prox = await runStrategy(new FedProx(new FedAvg({ serverLr: 0.5 })), x0, rounds);
  deepStrictEqual(prox, plain);
  const momentumless = await runStrategy(new FedAvgM({ serverLr: 0.5, momentum: 0 }), x0, rounds);
  momentumless.forEach((x, r) => {
    for (let i = 0; i < size; i++) ok(Math.abs(x[i]! - plain[r]![i]!) <= 1e-6, `round ${r}`);
  });
});

Deno.test("a strategy's saved state resumes it bit for bit", async () => {
  const size = 23;
  const x0 = Float32Array.from({ length: size }, (_, i) => Math.cos(i));
  const rounds = randomRounds(9, size, 6);
  for (const name of STRATEGY_NAMES) {
    const straight = await runStrategy(createStrategy(name), x0, rounds);
    const first = createStrategy(name);
    const before = await runStrategy(first, x0, rounds.slice(0, 3));
    const state = structuredClone(first.saveState?.() ?? {});
    const resumed = createStrategy(name);
    resumed.loadState?.(state);
    const after = await runStrategy(resumed, before.at(-1)!, rounds.slice(3));
    deepStrictEqual([...before, ...after], straight, name);
  }
});

Deno.test("strategies refuse bad hyperparameters and bad state with RangeError", () => {
  throws(() => new FedAdam({ beta1: 1 }), /beta1 must be in \[0, /);
  throws(() => new FedYogi({ tau: 0 }), /tau must be in \(0, /);
  throws(() => new FedAvgM({ momentum: -0.1 }), /Server momentum must be in/);
  throws(() => new FedProx(new FedAvg(), { mu: 0 }), /Proximal coefficient mu/);
  throws(() => createStrategy("fedsgd"), TypeError);
  const adam = new FedAdam();
  throws(() => adam.loadState({ m: new Uint8Array(8) }), /must hold m, v/);
  throws(() => adam.loadState({ m: new Uint8Array(7), v: new Uint8Array(8) }), /float64/);
  adam.loadState({ m: new Uint8Array(16), v: new Uint8Array(16) });
  throws(() => adam.begin(new Float32Array(3)), /has 2 values, the model has 3/);
});

Deno.test("FedProx sets the proximal term of its clients' local training", () => {
  const strategy = new FedProx(new FedAdam(), { mu: 0.3 });
  const local = strategy.configure(4, localTraining({ lr: 0.2 }));
  strictEqual(local.proximalMu, 0.3);
  strictEqual(local.lr, 0.2);
  strictEqual(strategy.config.inner, "fedadam");
});

Deno.test("Sgd's proximal term is the gradient of mu/2 ||w - w0||^2 (finite differences)", () => {
  const rng = new Rng(4);
  const n = 6;
  const w0 = Float32Array.from({ length: n }, () => rng.normal());
  const grads = Float32Array.from({ length: n }, () => rng.normal());
  const mu = 0.7;
  const lr = 0.125;
  for (const momentum of [0, 0.9]) {
    const params = w0.slice();
    const sgd = new Sgd(n, { lr, momentum, proximalMu: mu });
    sgd.step(params, grads); // at the anchor the proximal gradient is zero
    const after1 = params.slice();
    sgd.step(params, grads);
    // The proximal gradient at after1, by central differences of mu/2 ||w - w0||^2.
    const prox = (w: Float64Array) => mu / 2 * w.reduce((s, x, i) => s + (x - w0[i]!) ** 2, 0);
    for (let i = 0; i < n; i++) {
      const h = 1e-4;
      const up = Float64Array.from(after1);
      const down = Float64Array.from(after1);
      up[i]! += h;
      down[i]! -= h;
      const g = grads[i]! + (prox(up) - prox(down)) / (2 * h);
      const v1 = grads[i]!;
      const step = momentum === 0 ? g : momentum * v1 + g;
      ok(Math.abs(params[i]! - (after1[i]! - lr * step)) <= 1e-5, `momentum ${momentum}, ${i}`);
    }
  }
});
