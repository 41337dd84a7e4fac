// `processes`: the parent and the process that owns one connection.

import type { CloseReason, RequestObservation } from '../../server/metrics.js';

/** Parent -> the process that owns one connection (`processes`). */
export type ConnectionCommand =
  /** Sent with the socket handle: serve it with these settings. */
  | { type: 'serve'; fibMaxN: number; maxPipeline: number; idleTimeoutMs: number; lineTimeoutMs: number }
  /** Shutdown: answer what has started, then close. */
  | { type: 'drain' }
  /** The drain timeout passed: answer what is left `unavailable` and close. */
  | { type: 'abort' };

/** The process that owns a connection -> its parent, which keeps the metrics. */
export interface ObservationBatch {
  type: 'observed';
  /** Net change of requests in flight since the last batch. */
  inflight: number;
  observations: RequestObservation[];
  /** Connections that ended since the last batch, and why. */
  closed: CloseReason[];
}
