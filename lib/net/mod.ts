/**
 * The network room of fedgpu: the Noise secure channel, framing, typed msgpack messages,
 * static keys and key files, and transports. It moves bytes and typed messages and knows
 * nothing of models.
 *
 * @example Usage
 * ```ts
 * import { fingerprint, StaticKeyPair } from "@fedgpu/fedgpu/net";
 * import { ok } from "node:assert/strict";
 *
 * const key = StaticKeyPair.generate();
 * ok(fingerprint(key.publicKey).startsWith("SHA256:"));
 * ```
 *
 * This module needs Deno.
 *
 * @module
 */

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
} from "./message.ts";

export { ChannelError, type ChannelErrorCode } from "./errors.ts";
export { type ByteStream, FrameReader, MAX_FRAME, writeFrame } from "./framing.ts";
export { type ChannelOptions, type Message, MESSAGE_TYPE, SecureChannel } from "./channel.ts";
export { constantTimeEqual, fingerprint, StaticKeyPair } from "./identity.ts";
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
} from "./secure.ts";
export { KeyFileError, loadOrCreateKeyFile } from "./key_file.ts";
export {
  type Connection,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Transport,
  TransportError,
  type TransportErrorCode,
} from "./transport.ts";
export { dialTcp, listenTcp, tcpTransport } from "./tcp.ts";
export {
  dialWebSocket,
  WebSocketConnection,
  type WebSocketConnectionOptions,
  type WebSocketDialOptions,
} from "./websocket.ts";
export {
  listenWebSocket,
  type WebSocketListener,
  type WebSocketListenOptions,
  webSocketTransport,
} from "./websocket_server.ts";
