// The process of one `processes` connection: receives the socket from its parent, serves it
// with the shared LineConnection (fib inline: it has a whole process to itself), reports every
// request to the parent in batches (the parent keeps the metrics), and exits when the
// connection closes. The talk's fork-per-client server.

import type { Socket } from 'node:net';
import { LineConnection } from '../../server/connection.js';
import { computeFib } from '../../server/fib.js';
import type { ConnectionCommand, ObservationBatch } from './messages.js';
import type { Outcome } from '../../lab/errors.js';
import type { CloseReason, RequestObservation, RequestRecorder } from '../../server/metrics.js';

const FLUSH_MS = 100;

/** Forwards a connection's recorder calls to the parent, every FLUSH_MS at most. */
class ParentRecorder implements RequestRecorder {
  private inflightDelta = 0;
  private observations: RequestObservation[] = [];
  private closes: CloseReason[] = [];
  private timer: NodeJS.Timeout | null = null;

  inflight(delta: number): void {
    this.inflightDelta += delta;
    this.schedule();
  }

  finished(outcome: Outcome, durationSeconds: number, queueWaitSeconds: number, computeSeconds: number): void {
    this.observations.push(
      Number.isNaN(computeSeconds)
        ? { outcome, durationSeconds }
        : { outcome, durationSeconds, queueWaitSeconds, computeSeconds },
    );
    this.schedule();
  }

  closed(reason: CloseReason): void {
    this.closes.push(reason);
    this.schedule();
  }

  flush(done?: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.inflightDelta === 0 && this.observations.length === 0 && this.closes.length === 0) return void done?.();
    const batch: ObservationBatch = {
      type: 'observed',
      inflight: this.inflightDelta,
      observations: this.observations,
      closed: this.closes,
    };
    this.inflightDelta = 0;
    this.observations = [];
    this.closes = [];
    process.send!(batch, undefined, {}, () => done?.());
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }
}

const recorder = new ParentRecorder();
let connection: LineConnection | null = null;

process.on('message', (command: ConnectionCommand, handle?: Socket) => {
  switch (command.type) {
    case 'serve':
      connection = new LineConnection(handle!, {
        handler: (n) => computeFib({ n }),
        abortable: false,
        fibMaxN: command.fibMaxN,
        maxPipeline: command.maxPipeline,
        idleTimeoutMs: command.idleTimeoutMs,
        lineTimeoutMs: command.lineTimeoutMs,
        recorder,
      });
      void connection.done.then(() => recorder.flush(() => process.disconnect()));
      break;
    case 'drain':
      if (connection) void connection.drain();
      else process.disconnect();
      break;
    case 'abort':
      connection?.abort();
      break;
  }
});
// The parent is gone: nobody would read our reports or stop us.
process.on('disconnect', () => process.exit(0));
