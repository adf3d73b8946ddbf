/**
 * fedgpu: federated learning for Deno.
 *
 * Clients train small neural networks on data that never leaves them; a server averages
 * their updates (FedAvg) round by round. This module is the library: the model core
 * (`Chain`, `Dense`, `relu`, `softmax`, `train`, `evaluate`), model bytes, datasets and
 * partitioners, and the federated strategies and in-process simulation.
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
  readIdx,
} from "./lib/data/idx.ts";
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
export { type CsvDataset, type CsvOptions, loadCsv, parseCsv } from "./lib/data/csv.ts";

export {
  type Backend,
  BACKEND_KINDS,
  type BackendKind,
  CpuBackend,
  createBackend,
  WebGpuBackend,
} from "./lib/compute/backend.ts";
export {
  describeAdapter,
  findAdapter,
  GpuDeviceLostError,
  GpuRuntime,
  type KernelName,
  KERNELS,
  STORAGE,
  UNIFORM,
  WebGpuUnavailableError,
} from "./lib/compute/webgpu/runtime.ts";
export { FEDAVG_SLOTS, GpuFedAvg } from "./lib/compute/webgpu/fedavg.ts";

export type { Strategy } from "./lib/fl/strategy.ts";
export { FedAvg, type FedAvgOptions } from "./lib/fl/fedavg.ts";
export { type RoundRecord, simulate, type SimulateOptions, STREAM } from "./lib/fl/simulate.ts";
export {
  type PoolData,
  type TaskOptions,
  type TrainedClient,
  TrainerPool,
  TrainerPoolError,
  type TrainTask,
} from "./lib/fl/parallel.ts";
export {
  type DroppedClient,
  FederatedServer,
  formatServerRound,
  roundRecordToJson,
  ServerError,
  type ServerOptions,
  type ServerRoundRecord,
} from "./lib/fl/server.ts";
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
  type TaskMessage,
  type UpdateMessage,
  type WelcomeMessage,
} from "./lib/fl/protocol.ts";
export {
  decodeMessage,
  encodeMessage,
  encodeMessageParts,
  type FieldReaders,
  isRecord,
  MESSAGE_TYPE_MSGPACK,
  MessageError,
  type MessageErrorCode,
  type MessageProtocol,
  type RawMessage,
  read,
  receiveMessage,
  sendMessage,
} from "./lib/net/message.ts";

export { HandshakeError, type HandshakeErrorCode } from "./lib/net/noise/errors.ts";
export {
  decrypt,
  dh,
  DHLEN,
  encrypt,
  generateKeyPair,
  hash,
  HASHLEN,
  hkdf,
  importCipherKey,
  KEYLEN,
  type KeyPair,
  keyPairFromSecretKey,
  MAX_MESSAGE_LEN,
  MAX_NONCE,
  TAGLEN,
} from "./lib/net/noise/crypto.ts";
export { CipherState } from "./lib/net/noise/cipher_state.ts";
export { SymmetricState } from "./lib/net/noise/symmetric_state.ts";
export {
  HandshakeState,
  type HandshakeStateOptions,
  type HandshakeStatus,
} from "./lib/net/noise/handshake_state.ts";
export {
  type HandshakePattern,
  handshakePattern,
  parseProtocolName,
  PATTERN_NAMES,
  type PreMessageToken,
  SUITE,
  type Token,
} from "./lib/net/noise/patterns.ts";
export {
  loadVectorFile,
  type NoiseVector,
  type NoiseVectorMessage,
  parseVectorFile,
  runVector,
} from "./lib/net/noise/vectors.ts";
export { ChannelError, type ChannelErrorCode } from "./lib/net/errors.ts";
export { type ByteStream, FrameReader, MAX_FRAME, writeFrame } from "./lib/net/framing.ts";
export {
  type ChannelOptions,
  type Message,
  MESSAGE_TYPE,
  SecureChannel,
} from "./lib/net/channel.ts";
export { constantTimeEqual, fingerprint, StaticKeyPair } from "./lib/net/identity.ts";
export { KeyFileError, loadOrCreateKeyFile } from "./lib/net/key_file.ts";
export {
  type Connection,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Transport,
  TransportError,
  type TransportErrorCode,
} from "./lib/net/transport.ts";
export { dialTcp, listenTcp, tcpTransport } from "./lib/net/tcp.ts";
export {
  dialWebSocket,
  WebSocketConnection,
  type WebSocketConnectionOptions,
  type WebSocketDialOptions,
} from "./lib/net/websocket.ts";
export {
  listenWebSocket,
  type WebSocketListener,
  type WebSocketListenOptions,
  webSocketTransport,
} from "./lib/net/websocket_server.ts";
export {
  type ChannelPattern,
  type ClientHandshakeOptions,
  handshakeClient,
  type HandshakeOptions,
  handshakeServer,
  secureReceive,
  secureReceiveBytes,
  secureSend,
  secureSendBytes,
  type ServerHandshakeOptions,
} from "./lib/net/secure.ts";
