// A generator task per connection, on the shared scheduler (scheduler.ts): the connection
// owner of the variants whose server is the talk's generator scheduler. Everything about a
// connection, reading, framing, replies, the idle timeout, the line deadline and draining, is
// driven by its task with the shared protocol module; how a fib is computed is the variant's
// (`compute`): sliced inline, yielding the CPU every few calls, or handed to a pool, waiting on
// a future. A task reads only when its decoder holds no complete request, so what a connection
// holds is at most one socket read beyond the line it waits for. A task also steps aside after
// BATCH requests in a row, so a client pipelining thousands of fib(1) gets turns like everyone
// else.

import type { Socket } from 'node:net';
import { epochMs } from '../lab/clock.js';
import { RequestError, type Outcome } from '../lab/errors.js';
import { BATCH, afterNextPoll, endAndDiscard, limitReadAhead, readWaiting } from './connection.js';
import type { FibResult } from './messages.js';
import type { CloseReason } from './metrics.js';
import type { ConnectionOwner, VariantContext } from './plugin.js';
import {
  RequestDecoder,
  SHUTTING_DOWN,
  admit,
  closesConnection,
  formatError,
  formatReply,
  type RequestFrame,
} from './protocol.js';
import { CPU, Scheduler, type Task, type Wait } from './scheduler.js';

/** How a task computes fib(n): a generator that yields what it waits for and returns the result. */
export type Computation = Generator<Wait, FibResult, undefined>;

/** Thrown into a task when the drain timeout passes. */
class DrainTimeout extends Error {}

interface Connection {
  socket: Socket;
  task: Task;
  /** The socket's idle timer fired while nothing was in flight (cleared by the next bytes). */
  idle: boolean;
  /** A request is being answered. */
  busy: boolean;
  /** Wakes the task waiting to read when its unfinished line's deadline comes. */
  lineTimer: NodeJS.Timeout | null;
}

/** Serves every connection with a generator task on one scheduler; the subclass computes fib. */
export abstract class TaskPerConnectionOwner<O = object> implements ConnectionOwner {
  protected readonly scheduler: Scheduler;
  private readonly connections = new Set<Connection>();
  /** Past the drain's cut-off: new lines are answered `unavailable`, idle connections close. */
  private refusing = false;

  /** `onSlice` hears each CPU slice a task yields. */
  constructor(
    protected readonly ctx: VariantContext<O>,
    onSlice?: () => void,
  ) {
    this.scheduler = new Scheduler(onSlice);
  }

  /** fib(n) for one request, as a computation the task runs (yield* ...); a RequestError is answered with its code. */
  protected abstract compute(n: number): Computation;

  abstract liveWorkers(): number;

  adopt(socket: Socket, release: () => void): void {
    socket.setNoDelay(true);
    socket.allowHalfOpen = true;
    const connection: Connection = { socket, task: undefined as unknown as Task, idle: false, busy: false, lineTimer: null };
    let reason: CloseReason = 'client';
    connection.task = this.serve(connection, (why) => (reason = why));
    this.connections.add(connection);
    // A client that leaves stops its task, even in the middle of a fib.
    socket.once('close', () => this.scheduler.cancel(connection.task));
    socket.on('error', () => {});
    limitReadAhead(socket);
    const { idleTimeoutMs } = this.ctx.options;
    if (idleTimeoutMs > 0) {
      // A listener that stays (not setTimeout's once): it fires again after a request it found in flight.
      socket.setTimeout(idleTimeoutMs);
      socket.on('timeout', () => {
        if (connection.busy) return; // working on it: the reply's write re-arms the timer
        connection.idle = true;
        this.scheduler.wake(connection.task);
      });
    }
    this.scheduler.spawn(connection.task, () => {
      if (connection.lineTimer) clearTimeout(connection.lineTimer);
      this.connections.delete(connection);
      this.ctx.metrics.recorder.closed(reason);
      endAndDiscard(socket);
      if (socket.closed) release();
      else socket.once('close', release);
    });
  }

  async drain(): Promise<void> {
    const closed = [...this.connections].map(
      ({ socket }) => new Promise<void>((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve()))),
    );
    // Lines already on their way are read and answered first (see LineConnection.drain).
    afterNextPoll(() => {
      this.refusing = true;
      for (const { task } of this.connections) this.scheduler.wake(task); // idle readers notice the drain
    });
    await Promise.all(closed);
  }

  abort(): void {
    for (const { task } of this.connections) this.scheduler.interrupt(task, new DrainTimeout());
  }

  /** Frees what computes fib (a pool); called after every connection has closed. */
  async close(): Promise<void> {}

  /** One connection's task: read, frame, compute (yielding), reply, in request order. */
  private *serve(connection: Connection, closing: (reason: CloseReason) => void): Task {
    const { socket } = connection;
    const { recorder } = this.ctx.metrics;
    const { lineTimeoutMs } = this.ctx.options;
    const decoder = new RequestDecoder();
    let inARow = 0;
    try {
      for (;;) {
        let frame = decoder.next();
        let readingSince = 0;
        while (!frame) {
          const chunk = socket.read() as Buffer | null;
          if (chunk !== null) {
            connection.idle = false;
            decoder.feed(chunk, epochMs());
            frame = decoder.next();
            continue;
          }
          if (socket.readableEnded || socket.destroyed) return closing('client');
          // An unfinished line's deadline counts from when this wait found nothing left to read.
          const partialAt = decoder.partialLineAt;
          let waited = 0;
          if (partialAt !== undefined) {
            const now = epochMs();
            readingSince ||= now;
            waited = now - Math.max(partialAt, readingSince);
          }
          const expired = partialAt !== undefined && waited >= lineTimeoutMs;
          if (this.refusing || connection.idle || expired) {
            // Before closing, what reached the kernel since the last poll (see readWaiting).
            const late = readWaiting(socket);
            if (late !== null) {
              connection.idle = false;
              decoder.feed(late, epochMs());
              frame = decoder.next();
              continue;
            }
          }
          if (this.refusing) return closing('shutdown');
          if (connection.idle) return closing('idle');
          if (expired) {
            decoder.expire(lineTimeoutMs); // answered `line_timeout`, then closed
            frame = decoder.next();
            continue;
          }
          if (partialAt !== undefined) this.wakeAt(connection, lineTimeoutMs - waited);
          inARow = 0;
          yield { kind: 'read', socket };
        }
        if (inARow++ === BATCH) {
          inARow = 0;
          yield CPU; // a pipelining client steps aside like a long fib does
        }
        connection.busy = true;
        recorder.inflight(1);
        const at = decoder.receivedAt;
        const answer = yield* this.answer(frame, at);
        connection.busy = false;
        recorder.inflight(-1);
        recorder.finished(answer.outcome, (epochMs() - at) / 1000, answer.queueWaitSeconds, answer.computeSeconds);
        const flushed = socket.write(answer.reply, 'latin1');
        if (closesConnection(answer.outcome)) return closing(answer.outcome);
        if (!flushed) {
          yield { kind: 'write', socket };
          // Woken by the idle timer, not 'drain': its client has read no reply for that long.
          if (connection.idle) return closing('idle');
        }
      }
    } catch (error) {
      if (!(error instanceof DrainTimeout)) throw error;
      // The drain timeout passed: what is still pending will not be computed.
      let left = connection.busy ? 1 : 0;
      while (decoder.next()) left += 1;
      socket.write(formatError('unavailable', SHUTTING_DOWN).repeat(left));
      for (let i = 0; i < left; i++) recorder.finished('unavailable', 0, NaN, NaN);
      if (connection.busy) recorder.inflight(-1);
      connection.busy = false;
      closing('shutdown');
    } finally {
      // Cancelled because the client left: its request is no longer in flight.
      if (connection.busy) recorder.inflight(-1);
      connection.busy = false;
    }
  }

  /** Wakes the task after `ms` (it re-checks its line's deadline), unless a wake-up is already due. */
  private wakeAt(connection: Connection, ms: number): void {
    if (connection.lineTimer) return;
    connection.lineTimer = setTimeout(() => {
      connection.lineTimer = null;
      this.scheduler.wake(connection.task);
    }, ms);
    connection.lineTimer.unref();
  }

  private *answer(
    frame: RequestFrame,
    at: number,
  ): Generator<Wait, { outcome: Outcome; reply: string; queueWaitSeconds: number; computeSeconds: number }, undefined> {
    const admission = admit(frame, this.ctx.options.fibMaxN, this.refusing);
    if (typeof admission !== 'number')
      return { outcome: admission.code, reply: admission.reply, queueWaitSeconds: NaN, computeSeconds: NaN };
    let result: FibResult;
    try {
      result = yield* this.compute(admission);
    } catch (error) {
      if (error instanceof DrainTimeout) throw error;
      const code = error instanceof RequestError ? error.code : 'internal';
      const message = error instanceof RequestError ? error.message : 'the request failed inside the server';
      return { outcome: code, reply: formatError(code, message), queueWaitSeconds: NaN, computeSeconds: NaN };
    }
    return {
      outcome: 'ok',
      reply: formatReply(result.value),
      queueWaitSeconds: Math.max(0, result.startedAt - at) / 1000,
      computeSeconds: result.computeSeconds,
    };
  }
}
