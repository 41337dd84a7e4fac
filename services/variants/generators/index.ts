// generators: the talk's generator-based server. One thread, one hand-written scheduler
// (scheduler.ts) running a task per connection; fib itself is a generator that yields every
// FIB_SLICE calls, so requests share the one core round-robin: a fib(1) is answered while a
// fib(32) runs, at the price of a fib that is slower than plain recursion (the bookkeeping of
// an explicit stack, and a trip through the scheduler per slice). Throughput stays one core.
// A task also steps aside after BATCH requests in a row, so a client pipelining thousands of
// fib(1) gets turns like everyone else instead of keeping the core.
//
// The shared server accepts (and counts the cap); everything after, reading, framing, replies,
// the idle timeout, the line deadline and draining, is driven by the scheduler with the shared
// protocol module. A task reads only when its decoder holds no complete request, so what a
// connection holds is at most one socket read beyond the line it waits for.

import type { Socket } from 'node:net';
import { epochMs } from '../../lab/clock.js';
import { BATCH, afterNextPoll, endAndDiscard, limitReadAhead, readWaiting } from '../../server/connection.js';
import type { Outcome } from '../../lab/errors.js';
import { registerGeneratorMetrics } from './metrics.js';
import { type CloseReason } from '../../server/metrics.js';
import { intOption } from '../../lab/options.js';
import { defineVariant, type ConnectionOwner, type VariantContext } from '../../server/plugin.js';
import { generatorsDashboards } from './dashboards.js';
import {
  RequestDecoder,
  SHUTTING_DOWN,
  admit,
  closesConnection,
  formatError,
  formatReply,
  type RequestFrame,
} from '../../server/protocol.js';
import { CPU, Scheduler, type Task, type Wait } from './scheduler.js';

interface GeneratorOptions {
  /** fib calls between two yields to the scheduler. */
  fibSlice: number;
}

export const generators = defineVariant<GeneratorOptions>({
  dashboards: generatorsDashboards,
  name: 'generators',
  hostPort: 25003,
  model: "the talk's round-robin scheduler of generator tasks; fib yields every FIB_SLICE calls",
  shows: 'fairness on one core without threads; throughput stays one core',
  options: {
    fibSlice: intOption({
      flag: '--fib-slice',
      env: 'FIB_SLICE',
      description: 'fib calls between two yields to the scheduler',
      default: 10_000,
      min: 1,
      max: 1_000_000_000,
    }),
  },
  connectionCap: 10_000,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'single',
  // A task is stopped between two slices when its client leaves.
  interruptible: true,
  limits: { memory: '256m', pids: 64 },
  plugin: { level: 'owner', createOwner: async (ctx) => new GeneratorOwner(ctx) },
});

/**
 * fib(n) as a generator: the same calls as the recursive fib (each visit of the explicit stack
 * is one call, in the same order), yielding to the scheduler every `slice` calls.
 */
export function* fibSliced(n: number, slice: number): Generator<Wait, number, undefined> {
  const stack = [n];
  let leaves = 0;
  let budget = slice;
  while (stack.length > 0) {
    const m = stack.pop()!;
    if (--budget === 0) {
      budget = slice;
      yield CPU;
    }
    if (m <= 2) leaves += 1;
    else stack.push(m - 2, m - 1);
  }
  return leaves;
}

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

class GeneratorOwner implements ConnectionOwner {
  private readonly scheduler: Scheduler;
  private readonly connections = new Set<Connection>();
  /** Past the drain's cut-off: new lines are answered `unavailable`, idle connections close. */
  private refusing = false;

  constructor(private readonly ctx: VariantContext<GeneratorOptions>) {
    const slices = registerGeneratorMetrics(ctx.metrics.registry);
    this.scheduler = new Scheduler(() => slices.inc());
  }

  liveWorkers(): number {
    return 1;
  }

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
    const startedAt = epochMs();
    const value = yield* fibSliced(admission, this.ctx.own.fibSlice);
    const computeSeconds = (epochMs() - startedAt) / 1000;
    return { outcome: 'ok', reply: formatReply(value), queueWaitSeconds: Math.max(0, startedAt - at) / 1000, computeSeconds };
  }
}
