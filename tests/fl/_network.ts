/**
 * Helpers of the networked tests: a small synthetic task, its partition as the simulation
 * makes it, and a server with in-process clients on loopback.
 */

import {
  Chain,
  createDataset,
  type Dataset,
  Dense,
  type Model,
  partition,
  relu,
  Rng,
  softmax,
  STREAM,
  subset,
} from "../../mod.ts";

/** Four Gaussian blobs in 6 dimensions: n examples, seeded. */
export function blobs(n: number, seed = 11): Dataset {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 6);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 4;
    for (let j = 0; j < 6; j++) x[6 * i + j] = rng.normal() + (j % 4 === y[i] ? 2 : 0);
  }
  return createDataset(x, y, { features: 6, classes: 4 });
}

/** The small model of these tests. */
export function smallModel(seed = 0): Model {
  return Chain(Dense(6, 16, relu), Dense(16, 4), softmax).initialize(seed);
}

/** The clients' shards exactly as `simulate` partitions them. */
export function shards(data: Dataset, clients: number, seed: number): Dataset[] {
  return partition(data.y, { scheme: "iid", clients }, new Rng(seed, [STREAM.partition]))
    .map((indices) => subset(data, indices));
}
