/**
 * A worker of {@linkcode TrainerPool} (`parallel.ts`): it holds the model's architecture and
 * the training and held-out data (shared, not copied), and trains one client at a time on the
 * CPU Wasm engine, answering with the client's update, or scores a range of held-out batches.
 * Not meant to be imported.
 *
 * This module needs Deno.
 *
 * @module
 */

import { wasmEvaluateBatches, wasmTrain } from "../compute/cpu/train.ts";
import { type Dataset, subset } from "../data/dataset.ts";
import { modelFromBytes } from "../nn/codec.ts";
import type { Model } from "../nn/model.ts";
import { Rng } from "../rng.ts";
import type { _TrainReply, _TrainRequest, _WorkerInit } from "./parallel.ts";

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<_WorkerInit | _TrainRequest>) => void) | null;
  postMessage(message: _TrainReply, transfer?: Transferable[]): void;
};

let model: Model | null = null;
let train: Dataset | null = null;
let test: Dataset | null = null;

scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === "init") {
    model = modelFromBytes(message.model);
    train = message.train;
    test = message.test;
    return;
  }
  try {
    if (model === null) throw new Error("Trainer worker used before init");
    if (message.type === "evaluate") {
      if (test === null) throw new Error("No held-out data");
      model.params.set(message.global);
      const { batchSize, from, to } = message;
      const batches = wasmEvaluateBatches(model, test, { batchSize, from, to });
      scope.postMessage({ type: "evaluated", id: message.id, batches });
      return;
    }
    if (train === null) throw new Error("The trainer pool holds no training data");
    const shard = subset(train, message.indices);
    model.params.set(message.global);
    const result = wasmTrain(model, shard, {
      ...message.options,
      rng: new Rng(message.seed, message.stream),
    });
    const delta = new Float32Array(model.params.length);
    const local = model.params;
    const global = message.global;
    for (let i = 0; i < delta.length; i++) delta[i] = local[i]! - global[i]!;
    scope.postMessage(
      { type: "trained", id: message.id, delta, loss: result.last.loss },
      [delta.buffer],
    );
  } catch (error) {
    scope.postMessage({
      type: "failed",
      id: message.id,
      message: error instanceof Error ? error.message : String(error),
    });
  }
};
