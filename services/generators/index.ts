// generators: the talk's generator-based server. One thread, one hand-written scheduler
// (scheduler.ts) running a task per connection; fib itself is a generator that yields every
// FIB_SLICE calls, so requests share the one core round-robin: a fib(1) is answered while a
// fib(32) runs, at the price of a fib that is slower than plain recursion (the bookkeeping of
// an explicit stack, and a trip through the scheduler per slice). Throughput stays one core.
//
// The shared server accepts (and counts the cap); everything after, reading, framing, replies
// and draining, is driven by the scheduler with the shared protocol module.

import type { Socket } from 'node:net';
import { epochMs } from '../common/clock.js';
import type { Outcome } from '../common/errors.js';
import { registerGeneratorMetrics } from '../common/metrics.js';
import { RequestDecoder, SHUTTING_DOWN, admit, formatError, formatReply, type RequestFrame } from '../common/protocol.js';
import type { ConnectionOwner, VariantContext, VariantDefinition } from '../common/server.js';
import { CPU, Scheduler, type Task, type Wait } from './scheduler.js';

export const generators: VariantDefinition = {
  name: 'generators',
  model: "the talk's round-robin scheduler of generator tasks; fib yields every FIB_SLICE calls",
  shows: 'fairness on one core without threads; throughput stays one core',
  defaultMaxConnections: 10_000,
  createOwner: async (ctx) => new GeneratorOwner(ctx),
};

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
}

class GeneratorOwner implements ConnectionOwner {
  private readonly scheduler: Scheduler;
  private readonly connections = new Set<Connection>();
  private draining = false;

  constructor(private readonly ctx: VariantContext) {
    ctx.metrics.workers.set(1);
    const slices = registerGeneratorMetrics(ctx.metrics.registry);
    this.scheduler = new Scheduler(() => slices.inc());
  }

  adopt(socket: Socket, release: () => void): void {
    socket.setNoDelay(true);
    const task = this.serve(socket);
    const connection: Connection = { socket, task };
    this.connections.add(connection);
    // A client that leaves stops its task, even in the middle of a fib.
    socket.once('close', () => this.scheduler.cancel(task));
    socket.on('error', () => {});
    this.scheduler.spawn(task, () => {
      this.connections.delete(connection);
      if (!socket.destroyed) socket.end();
      release();
    });
  }

  async drain(): Promise<void> {
    this.draining = true;
    const closed = [...this.connections].map(
      ({ socket }) => new Promise<void>((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve()))),
    );
    for (const { task } of this.connections) this.scheduler.wake(task); // idle readers notice the drain
    await Promise.all(closed);
  }

  abort(): void {
    for (const { task } of this.connections) this.scheduler.interrupt(task, new DrainTimeout());
  }

  async close(): Promise<void> {}

  /** One connection's task: read, frame, compute (yielding), reply, in request order. */
  private *serve(socket: Socket): Task {
    const { recorder } = this.ctx.metrics;
    const decoder = new RequestDecoder();
    const received: Array<{ frame: RequestFrame; at: number }> = [];
    let inProgress = false;
    try {
      for (;;) {
        while (received.length === 0) {
          const chunk = socket.read() as Buffer | null;
          if (chunk !== null) {
            const at = epochMs();
            const frames = decoder.push(chunk);
            recorder.inflight(frames.length);
            for (const frame of frames) received.push({ frame, at });
            continue;
          }
          // Draining: lines that already arrived were answered `unavailable`; now close.
          if (this.draining || socket.readableEnded || socket.destroyed) return;
          yield { kind: 'read', socket };
        }
        const { frame, at } = received.shift()!;
        inProgress = true;
        const answer = yield* this.answer(frame, at);
        inProgress = false;
        recorder.inflight(-1);
        recorder.finished({ outcome: answer.outcome, durationSeconds: (epochMs() - at) / 1000, ...answer.timing });
        const flushed = socket.write(answer.reply);
        if (frame.kind === 'too_long') return;
        if (!flushed) yield { kind: 'write', socket };
      }
    } catch (error) {
      if (!(error instanceof DrainTimeout)) throw error;
      // The drain timeout passed: what is still pending will not be computed.
      const left = received.length + (inProgress ? 1 : 0);
      socket.write(formatError('unavailable', SHUTTING_DOWN).repeat(left));
      for (let i = 0; i < left; i++) recorder.finished({ outcome: 'unavailable', durationSeconds: 0 });
      recorder.inflight(-left);
      received.length = 0;
      inProgress = false;
    } finally {
      // Cancelled because the client left: its pending requests are no longer in flight.
      const left = received.length + (inProgress ? 1 : 0);
      if (left > 0) recorder.inflight(-left);
    }
  }

  private *answer(
    frame: RequestFrame,
    at: number,
  ): Generator<
    Wait,
    { outcome: Outcome; reply: string; timing?: { queueWaitSeconds: number; computeSeconds: number } },
    undefined
  > {
    const admission = admit(frame, this.ctx.options.fibMaxN, this.draining);
    if ('code' in admission) return { outcome: admission.code, reply: admission.reply };
    const startedAt = epochMs();
    const value = yield* fibSliced(admission.n, this.ctx.options.fibSlice);
    const computeSeconds = (epochMs() - startedAt) / 1000;
    return {
      outcome: 'ok',
      reply: formatReply(value),
      timing: { queueWaitSeconds: Math.max(0, startedAt - at) / 1000, computeSeconds },
    };
  }
}
