/**
 * Clients trained in parallel: a pool of workers, each running the CPU Wasm engine on the
 * shared training data. A client's training depends only on the global parameters, its
 * examples and its random stream, so it gives the same bits on any worker; the caller folds
 * the updates in in client order, so a parallel round equals a sequential one bit for bit.
 *
 * This module needs Deno.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { type Backend, CpuBackend } from "../compute/backend.ts";
import type { Dataset } from "../data/dataset.ts";
import { modelToBytes } from "../nn/codec.ts";
import type { Model } from "../nn/model.ts";
import { type BatchMetrics, type Metrics, sumBatches } from "../nn/train.ts";
import type { LocalTraining } from "./local.ts";

/** Examples per forward pass of {@linkcode TrainerPool.evaluate}, as `evaluate`'s default. */
const EVAL_BATCH = 1000;

/** The local training settings a task carries. */
export type TaskOptions = Partial<LocalTraining> & Pick<LocalTraining, "lr">;

/** One client's training. */
export interface TrainTask {
  /** The global parameters to start from (copied to the worker). */
  global: Float32Array;
  /** The client's examples: indices into the pool's dataset. */
  indices: Uint32Array;
  /** Local training settings. */
  options: TaskOptions;
  /** Seed and stream of the client's shuffling. */
  seed: number;
  /** Stream key of the client's shuffling. */
  stream: number[];
}

/** A trained client. */
export interface TrainedClient {
  /** Its trained parameters minus the global ones. */
  delta: Float32Array;
  /** Mean training loss of its last epoch. */
  loss: number;
}

/** @internal The first message to a worker. */
export interface _WorkerInit {
  type: "init";
  model: Uint8Array;
  train: Dataset | null;
  test: Dataset | null;
}

/** The data a {@linkcode TrainerPool} holds. */
export interface PoolData {
  /** Training data, which the tasks' indices refer to. */
  train?: Dataset;
  /** Held-out data for {@linkcode TrainerPool.evaluate}. */
  test?: Dataset;
}

/** @internal A task sent to a worker. */
export type _TrainRequest =
  | TrainTask & { type: "train"; id: number }
  | {
    type: "evaluate";
    id: number;
    global: Float32Array;
    batchSize: number;
    from: number;
    to: number;
  };

/** @internal A worker's answer. */
export type _TrainReply =
  | { type: "trained"; id: number; delta: Float32Array; loss: number }
  | { type: "evaluated"; id: number; batches: BatchMetrics }
  | { type: "failed"; id: number; message: string };

/**
 * Whether `backend` is the CPU Wasm engine: the engine a {@linkcode TrainerPool}'s workers run,
 * so the only one whose results they reproduce bit for bit.
 *
 * @param backend The backend.
 * @returns True for `createBackend("cpu")`'s engine.
 */
export function onWasmEngine(backend: Backend): boolean {
  return backend instanceof CpuBackend && backend.engine === "wasm";
}

/**
 * Refuses a backend other than the CPU Wasm engine for work handed to a pool.
 *
 * @param backend The backend the caller would otherwise use.
 * @param work What the pool would do, such as `"training"`.
 * @throws {RangeError} If `backend` is not the CPU Wasm engine.
 */
export function checkPoolBackend(backend: Backend, work: string): void {
  if (!onWasmEngine(backend)) {
    throw new RangeError(
      `Parallel ${work} runs on the CPU Wasm engine; the backend is ${backend.kind}: ` +
        backend.device,
    );
  }
}

/** Thrown when a worker cannot be started or fails. */
export class TrainerPoolError extends Error {
  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options The cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TrainerPoolError";
  }
}

/** The dataset with its arrays in shared memory (see `shared`), or null. */
function sharedData(data: Dataset | undefined): Dataset | null {
  return data === undefined ? null : { ...data, x: shared(data.x), y: shared(data.y) };
}

/**
 * The array in shared memory (copied there once per pool unless it already is), so workers
 * read it without copies of their own.
 */
function shared<T extends Float32Array | Int32Array>(array: T): T {
  if (array.buffer instanceof SharedArrayBuffer) return array;
  const buffer = new SharedArrayBuffer(array.byteLength);
  const copy = new (array.constructor as new (buffer: SharedArrayBuffer) => T)(buffer);
  copy.set(array);
  return copy;
}

interface Pending {
  task: _TrainRequest;
  resolve: (reply: _TrainReply) => void;
  reject: (error: Error) => void;
}

/**
 * Workers that train clients of one model architecture on one dataset, and score models on
 * held-out data.
 *
 * @example Usage
 * ```ts ignore
 * const pool = new TrainerPool(2, model, { train, test });
 * const { delta } = await pool.train({ global: model.params, indices, options, seed, stream });
 * pool.close();
 * ```
 */
export class TrainerPool {
  readonly #workers: Worker[] = [];
  readonly #idle: Worker[] = [];
  readonly #queue: Pending[] = [];
  readonly #running = new Map<Worker, Pending>();
  readonly #test: Dataset | null;
  #nextId = 1;
  #failure: TrainerPoolError | null = null;

  /**
   * Starts the workers.
   *
   * @param size Workers, at least 1.
   * @param model Any model of the architecture to train (its parameters are not used).
   * @param data The training data the tasks' indices refer to, and held-out data to score.
   * @throws {TrainerPoolError} If a worker cannot be started (it needs read permission for
   *   its module where the module is a local file).
   */
  constructor(size: number, model: Model, data: PoolData) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`Trainer pool size must be a positive integer, got ${size}`);
    }
    const url = new URL("./train_worker.ts", import.meta.url);
    if (
      url.protocol === "file:" &&
      Deno.permissions.querySync({ name: "read", path: url }).state !== "granted"
    ) {
      throw new TrainerPoolError(
        `Parallel training needs read permission for ${fileURLToPath(url)} (run with --allow-read)`,
      );
    }
    const init: _WorkerInit = {
      type: "init",
      model: modelToBytes(model),
      train: sharedData(data.train),
      test: sharedData(data.test),
    };
    this.#test = init.test;
    try {
      for (let i = 0; i < size; i++) {
        const worker = new Worker(url.href, { type: "module" });
        worker.onmessage = (event: MessageEvent<_TrainReply>) => this.#answer(worker, event.data);
        worker.onerror = (event) => {
          event.preventDefault();
          this.#fail(new TrainerPoolError(`A trainer worker failed: ${event.message}`));
        };
        worker.postMessage(init);
        this.#workers.push(worker);
        this.#idle.push(worker);
      }
    } catch (error) {
      this.close();
      throw new TrainerPoolError(
        `Cannot start trainer workers: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /** Workers in the pool. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Trains one client on the next free worker.
   *
   * @returns The client's update and loss.
   * @throws {TrainerPoolError} If the pool was closed or a worker failed.
   */
  async train(task: TrainTask): Promise<TrainedClient> {
    const reply = await this.#run({ ...task, type: "train", id: this.#nextId++ });
    if (reply.type !== "trained") throw new TrainerPoolError("Unexpected worker reply");
    return { delta: reply.delta, loss: reply.loss };
  }

  /**
   * Scores parameters on the held-out data, its batches of 1,000 split over the workers: the
   * bits of `evaluate` (and the CPU backend's) on one thread.
   *
   * @param params The model's parameters.
   * @returns Loss, accuracy and example count.
   * @throws {Error} If the pool holds no held-out data.
   * @throws {TrainerPoolError} If the pool was closed or a worker failed.
   */
  async evaluate(params: Float32Array): Promise<Metrics> {
    const test = this.#test;
    if (test === null) throw new Error("The trainer pool holds no held-out data");
    const batches = Math.ceil(test.n / EVAL_BATCH);
    const parts = Math.min(this.#workers.length, batches);
    const replies = await Promise.all(Array.from({ length: parts }, (_, p) =>
      this.#run({
        type: "evaluate",
        id: this.#nextId++,
        global: params,
        batchSize: EVAL_BATCH,
        from: Math.floor(p * batches / parts),
        to: Math.floor((p + 1) * batches / parts),
      })));
    return sumBatches(
      replies.map((reply) => {
        if (reply.type !== "evaluated") throw new TrainerPoolError("Unexpected worker reply");
        return reply.batches;
      }),
      test.n,
    );
  }

  #run(task: _TrainRequest): Promise<_TrainReply> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    if (this.#workers.length === 0) {
      return Promise.reject(new TrainerPoolError("The trainer pool is closed"));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ task, resolve, reject });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#idle.length > 0 && this.#queue.length > 0) {
      const worker = this.#idle.pop()!;
      const pending = this.#queue.shift()!;
      this.#running.set(worker, pending);
      worker.postMessage(pending.task);
    }
  }

  #answer(worker: Worker, reply: _TrainReply): void {
    const pending = this.#running.get(worker);
    if (pending === undefined || pending.task.id !== reply.id) return;
    this.#running.delete(worker);
    this.#idle.push(worker);
    if (reply.type === "failed") {
      pending.reject(
        new TrainerPoolError(`A worker's ${pending.task.type} task failed: ${reply.message}`),
      );
    } else {
      pending.resolve(reply);
    }
    this.#dispatch();
  }

  #fail(error: TrainerPoolError): void {
    this.#failure ??= error;
    for (const pending of [...this.#running.values(), ...this.#queue]) pending.reject(error);
    this.#running.clear();
    this.#queue.length = 0;
  }

  /** Stops the workers; tasks not yet answered are rejected. */
  close(): void {
    for (const worker of this.#workers) worker.terminate();
    this.#workers.length = 0;
    this.#idle.length = 0;
    this.#fail(new TrainerPoolError("The trainer pool is closed"));
    this.#failure = null;
  }
}
