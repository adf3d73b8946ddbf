/**
 * fedgpu: federated learning for Deno.
 *
 * Clients train small neural networks on data that never leaves them; a server averages
 * their updates (FedAvg) round by round. This module is the library: the model core
 * (`Chain`, `Dense`, `relu`, `softmax`, `train`, `evaluate`), model bytes, datasets and
 * partitioners, the federated strategies, round driver, server, client and in-process
 * simulation. Sub-entries hold the rest: `./net` (secure channel, messages, transports),
 * `./noise` (the Noise protocol framework and its test vectors), `./compute` (engines and
 * kernels), `./cli` (the `fedgpu` command).
 *
 * @example Usage
 * ```ts
 * import { Chain, Dense, modelFromBytes, modelToBytes, relu, softmax } from "@fedgpu/fedgpu";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const model = Chain(Dense(10, 5, relu), Dense(5, 2), softmax);
 * const probs = model.forward(new Float32Array(4 * 10).fill(1)); // (4, 2)
 * deepStrictEqual(modelFromBytes(modelToBytes(model)).params, model.params);
 * ```
 *
 * @module
 */

export { Rng } from "./lib/rng.ts";

export {
  Dense,
  type DenseLayer,
  formatLayer,
  type Layer,
  MAX_LAYER_WIDTH,
  relu,
  type ReluLayer,
  softmax,
  type SoftmaxLayer,
} from "./lib/nn/layers.ts";
export { Chain, countParams, type DenseParams, MAX_PARAMS, Model } from "./lib/nn/model.ts";
export {
  denseBackward,
  denseForward,
  reluBackward,
  reluForward,
  softmaxCrossEntropy,
  softmaxForward,
} from "./lib/nn/kernels.ts";
export { Sgd, type SgdOptions } from "./lib/nn/optim.ts";
export { inputGradient } from "./lib/nn/gradient.ts";
export {
  type BatchMetrics,
  type BatchOptions,
  checkTrainingInputs,
  evaluate,
  evaluateBatches,
  type Metrics,
  sumBatches,
  train,
  type TrainOptions,
  type TrainResult,
} from "./lib/nn/train.ts";
export {
  DEFAULT_MAX_MODEL_BYTES,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  ModelFormatError,
  type ModelFormatErrorCode,
  modelFromBytes,
  type ModelFromBytesOptions,
  modelToBytes,
} from "./lib/nn/codec.ts";

export { mnist2nn } from "./lib/nn/presets.ts";

export { createDataset, type Dataset, subset } from "./lib/data/dataset.ts";
export {
  DataFormatError,
  type DataFormatErrorCode,
  type DataFormatErrorOptions,
} from "./lib/data/errors.ts";
export {
  type IdxArray,
  type IdxData,
  type IdxOptions,
  idxToBytes,
  type IdxType,
  parseIdx,
} from "./lib/data/idx.ts";
export { readIdx } from "./lib/data/idx_file.ts";
export { loadMnist, type MnistDatasets, type MnistOptions } from "./lib/data/mnist.ts";
export {
  type DirichletOptions,
  type IidOptions,
  partition,
  partitionDirichlet,
  partitionIid,
  type PartitionOptions,
  type PartitionScheme,
  partitionShards,
  type ShardsOptions,
} from "./lib/data/partition.ts";
export { type CsvDataset, type CsvOptions, parseCsv } from "./lib/data/csv.ts";
export { loadCsv } from "./lib/data/csv_file.ts";

export {
  type Backend,
  BACKEND_KINDS,
  type BackendKind,
  CpuBackend,
  createBackend,
  WebGpuBackend,
} from "./lib/compute/backend.ts";
export { Float64WeightedSum, type WeightedSum } from "./lib/compute/reduce.ts";
export { WebGpuUnavailableError } from "./lib/compute/webgpu/runtime.ts";

export {
  LOCAL_TRAINING_DEFAULTS,
  LOCAL_TRAINING_FIELDS,
  type LocalTraining,
  localTraining,
} from "./lib/fl/local.ts";
export type {
  SelectContext,
  StateValue,
  Strategy,
  StrategyState,
  UpdateKind,
} from "./lib/fl/strategies/strategy.ts";
export { FedAvg, type FedAvgOptions } from "./lib/fl/strategies/fedavg.ts";
export { FedAvgM, type FedAvgMOptions } from "./lib/fl/strategies/fedavgm.ts";
export { type AdaptiveOptions, AdaptiveServerOptimizer } from "./lib/fl/strategies/_adaptive.ts";
export { ServerOptimizer } from "./lib/fl/strategies/_server_optimizer.ts";
export { FedAdagrad } from "./lib/fl/strategies/fedadagrad.ts";
export { FedAdam } from "./lib/fl/strategies/fedadam.ts";
export { FedYogi } from "./lib/fl/strategies/fedyogi.ts";
export { FedProx, type FedProxOptions } from "./lib/fl/strategies/fedprox.ts";
export {
  createStrategy,
  STRATEGY_NAMES,
  type StrategyName,
  type StrategyOptions,
} from "./lib/fl/strategies/create.ts";
export {
  applyPipeline,
  ClipStage,
  computeDelta,
  createPipeline,
  invertPipeline,
  l2Norm,
  type StageSpec,
  SUPPORTED_STAGES,
  UPDATE_CODEC,
  UPDATE_STAGES,
  type UpdateStage,
} from "./lib/fl/update.ts";
export {
  type Awaited,
  type DroppedClient,
  type Member,
  RoundDriver,
  type RoundDriverOptions,
  RoundError,
  type RoundOutcome,
  type RoundSettings,
  sampleClients,
  STREAM,
  TRAIN_COLLECT,
  type Workflow,
  type WorkflowContext,
} from "./lib/fl/round.ts";
export {
  Participant,
  type ParticipantOptions,
  type StageHandler,
  type Trainer,
} from "./lib/fl/participant.ts";
export { InMemoryMember } from "./lib/fl/in_memory.ts";
export { type RoundRecord, simulate, type SimulateOptions } from "./lib/fl/simulate.ts";
export {
  type PoolData,
  type TaskOptions,
  type TrainedClient,
  TrainerPool,
  TrainerPoolError,
  type TrainTask,
} from "./lib/fl/parallel.ts";
export { FederatedServer, ServerError, type ServerOptions } from "./lib/fl/server.ts";
export { formatServerRound, roundRecordToJson, type ServerRoundRecord } from "./lib/fl/records.ts";
export {
  backoffDelay,
  ClientError,
  type ClientErrorCode,
  type ClientOptions,
  type ClientSummary,
  type RetryOptions,
  runClient,
} from "./lib/fl/client.ts";
export {
  type Checkpoint,
  CHECKPOINT_VERSION,
  CheckpointError,
  type CheckpointErrorCode,
  checkpointFromBytes,
  checkpointToBytes,
  loadCheckpoint,
  saveCheckpoint,
} from "./lib/fl/checkpoint.ts";
export {
  type ByeMessage,
  CLIENT_ID_PATTERN,
  clientKey,
  type CollectMessage,
  type ErrorMessage,
  type EvaluateMessage,
  type EvaluationMessage,
  FL_PROTOCOL,
  type FlMessage,
  type HelloMessage,
  parseFlMessage,
  type ReadyMessage,
  receiveFl,
  sendFl,
  type StageMessage,
  type StageReplyMessage,
  type TaskMessage,
  type UpdateMessage,
  type WelcomeMessage,
} from "./lib/fl/protocol.ts";

export { fingerprint, StaticKeyPair } from "./lib/net/identity.ts";
export { KeyFileError, loadOrCreateKeyFile } from "./lib/net/key_file.ts";
export {
  type Connection,
  type Listener,
  TransportError,
  type TransportErrorCode,
} from "./lib/net/transport.ts";
export { dialTcp, listenTcp } from "./lib/net/tcp.ts";
export { dialWebSocket } from "./lib/net/websocket.ts";
export { listenWebSocket } from "./lib/net/websocket_server.ts";
export {
  handshakeClient,
  handshakeServer,
  secureReceive,
  secureReceiveBytes,
  secureSend,
  secureSendBytes,
} from "./lib/net/secure.ts";
export { type ChannelOptions, SecureChannel } from "./lib/net/channel.ts";
export type { ByteStream } from "./lib/net/framing.ts";
export { ChannelError, type ChannelErrorCode } from "./lib/net/errors.ts";
export { HandshakeError, type HandshakeErrorCode } from "./lib/net/noise/errors.ts";
