/**
 * Run without --allow-read by simulate_test.ts: parallel training must refuse with a clear,
 * typed error instead of failing inside a worker.
 *
 * @module
 */

import { Chain, createDataset, Dense, relu, simulate, softmax } from "../../mod.ts";

const x = Float32Array.from({ length: 400 }, (_, i) => (i * 7919) % 13 / 13);
const y = Int32Array.from({ length: 100 }, (_, i) => i % 3);
const data = createDataset(x, y, { features: 4, classes: 3 });
const model = Chain(Dense(4, 8, relu), Dense(8, 3), softmax).initialize(1);
try {
  for await (
    const _ of simulate({ model, train: data, clients: 4, rounds: 1, backend: "cpu", parallel: 2 })
  ) {
    console.log("trained");
  }
} catch (error) {
  console.log(`${(error as Error).name}: ${(error as Error).message}`);
}
