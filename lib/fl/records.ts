/**
 * A server round's record, its JSON line and its progress line.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { DroppedClient } from "./round.ts";

/** What happened in one round of a {@linkcode FederatedServer}. */
export interface ServerRoundRecord {
  /** Round number, from 1. */
  round: number;
  /** Attempts the round took (1 unless it was retried). */
  attempts: number;
  /** Test accuracy of the new global model (NaN without test data). */
  accuracy: number;
  /** Test loss of the new global model (NaN without test data). */
  loss: number;
  /** Example-weighted mean training loss the clients reported. */
  trainLoss: number;
  /** Ids of the clients whose updates were aggregated, in aggregation order. */
  clients: string[];
  /** Ids of the clients sampled. */
  sampled: string[];
  /** Sampled clients left out, and why. */
  dropped: DroppedClient[];
  /** Examples behind the aggregated updates. */
  examples: number;
  /** Clients connected when the round was sampled. */
  connected: number;
  /** Example-weighted accuracy of the new model on the clients' data (NaN if not asked). */
  clientAccuracy: number;
  /** Example-weighted loss of the new model on the clients' data (NaN if not asked). */
  clientLoss: number;
  /** Wall-clock seconds of the round, retries included. */
  seconds: number;
}

/** A JSON-ready copy of a round record (NaN becomes null; snake_case keys). */
export function roundRecordToJson(record: ServerRoundRecord): Record<string, unknown> {
  const finite = (value: number) => Number.isFinite(value) ? value : null;
  return {
    round: record.round,
    attempts: record.attempts,
    accuracy: finite(record.accuracy),
    loss: finite(record.loss),
    train_loss: finite(record.trainLoss),
    clients: record.clients,
    sampled: record.sampled,
    dropped: record.dropped,
    examples: record.examples,
    connected: record.connected,
    client_accuracy: finite(record.clientAccuracy),
    client_loss: finite(record.clientLoss),
    seconds: Number(record.seconds.toFixed(3)),
  };
}

/**
 * Formats a round's progress line.
 *
 * @param record The round.
 * @param elapsed Seconds since the run started.
 * @returns The line.
 */
export function formatServerRound(record: ServerRoundRecord, elapsed: number): string {
  const percent = (value: number) => `${(100 * value).toFixed(2)}%`;
  return [
    `round ${String(record.round).padStart(4)}`,
    `test acc ${percent(record.accuracy).padStart(7)}`,
    `test loss ${record.loss.toFixed(4)}`,
    `train loss ${record.trainLoss.toFixed(4)}`,
    `${record.clients.length}/${record.sampled.length} clients`,
    ...(record.dropped.length > 0 ? [`${record.dropped.length} dropped`] : []),
    ...(record.attempts > 1 ? [`${record.attempts} attempts`] : []),
    `${record.seconds.toFixed(1)} s`,
    `(${elapsed.toFixed(0)} s total)`,
  ].join("  ");
}
