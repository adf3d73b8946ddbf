/**
 * Errors of the secure channel. Handshake failures are {@linkcode HandshakeError}s (from the
 * Noise layer); everything after the handshake is a {@linkcode ChannelError} with a `code`.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/** What went wrong on an established channel (or its byte stream). */
export type ChannelErrorCode =
  | "closed"
  | "truncated"
  | "timeout"
  | "too-large"
  | "decrypt"
  | "protocol"
  | "unexpected-type";

/** A failure of the secure channel; the channel is closed when one is thrown. */
export class ChannelError extends Error {
  /** What went wrong. */
  readonly code: ChannelErrorCode;

  /**
   * Creates the error.
   *
   * @param code What went wrong.
   * @param message A sentence saying so.
   * @param options The underlying cause, if any.
   */
  constructor(code: ChannelErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ChannelError";
    this.code = code;
  }
}
