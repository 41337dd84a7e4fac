// One client connection served with the shared protocol: framing, parsing, handing each request
// to the variant's handler, replies written strictly in request order (even when the handler
// finishes them out of order), back-pressure, per-request metrics, and draining at shutdown.
// Every variant that serves a socket in this process uses it; only the handler differs.

import type { Socket } from 'node:net';
import { epochMs } from './clock.js';
import { RequestError, type Outcome } from './errors.js';
import type { FibResult } from './messages.js';
import type { RequestRecorder } from './metrics.js';
import { RequestDecoder, SHUTTING_DOWN, admit, formatError, formatReply, type RequestFrame } from './protocol.js';

/**
 * How a parsed request reaches a CPU. A handler may answer synchronously (fib on the event
 * loop): the reply is then written before the next request of the connection is looked at.
 * It throws (or rejects with) a RequestError to answer with an error code; `signal` aborts
 * when the client has gone or the drain timeout has passed.
 */
export type RequestHandler = (n: number, signal: AbortSignal) => FibResult | Promise<FibResult>;

export interface ConnectionSettings {
  handler: RequestHandler;
  fibMaxN: number;
  maxPipeline: number;
  recorder: RequestRecorder;
}

interface Slot {
  receivedAt: number;
  reply?: string;
  outcome?: Outcome;
  result?: FibResult;
  closeAfter?: boolean;
  controller?: AbortController;
}

interface Received {
  frame: RequestFrame;
  receivedAt: number;
}

export class LineConnection {
  private readonly decoder = new RequestDecoder();
  /** Decoded requests not yet started, because maxPipeline are already in flight. */
  private readonly waiting: Received[] = [];
  /** Started requests, in request order; the head is written as soon as it has its reply. */
  private readonly slots: Slot[] = [];
  private state: 'open' | 'closing' | 'draining' | 'closed' = 'open';
  private writeBlocked = false;
  private pumping = false;
  private readonly closed: Promise<void>;

  constructor(
    readonly socket: Socket,
    private readonly settings: ConnectionSettings,
  ) {
    socket.setNoDelay(true);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.writeBlocked = false;
      this.pump();
    });
    socket.on('error', () => {
      // ECONNRESET and the like: 'close' follows and cleans up.
    });
    socket.once('close', () => this.onClose());
    this.pump(); // servers accept with pauseOnConnect: start reading
  }

  /** Resolves once the socket has closed. */
  get done(): Promise<void> {
    return this.closed;
  }

  /** Shutdown: answer what has started, refuse new lines with `unavailable`, then close. */
  drain(): Promise<void> {
    if (this.state === 'open') this.state = 'draining';
    this.pump();
    this.endIfIdle();
    return this.closed;
  }

  /** The drain timeout passed: answer everything still pending `unavailable` and close. */
  abort(): void {
    if (this.state === 'closed') return;
    for (const slot of this.slots) {
      if (slot.reply === undefined) {
        slot.controller?.abort();
        this.fill(slot, 'unavailable', formatError('unavailable', SHUTTING_DOWN));
      }
    }
    this.flush();
    this.end();
    this.socket.setTimeout(1000, () => this.socket.destroy());
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    const receivedAt = epochMs();
    for (const frame of this.decoder.push(chunk)) this.waiting.push({ frame, receivedAt });
    this.pump();
  }

  /** Starts waiting requests while fewer than maxPipeline are in flight. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.waiting.length > 0 && this.slots.length < this.settings.maxPipeline && this.state !== 'closed') {
        if (this.state === 'closing') {
          this.waiting.length = 0;
          break;
        }
        this.start(this.waiting.shift()!);
      }
    } finally {
      this.pumping = false;
    }
    const mayRead = this.state === 'open' || this.state === 'draining';
    if (this.waiting.length > 0 || this.writeBlocked || !mayRead) this.socket.pause();
    else this.socket.resume();
  }

  private start({ frame, receivedAt }: Received): void {
    const slot: Slot = { receivedAt };
    this.slots.push(slot);
    this.settings.recorder.inflight(1);
    const admission = admit(frame, this.settings.fibMaxN, this.state === 'draining');
    if ('code' in admission) {
      if (admission.code === 'line_too_long') {
        this.state = 'closing';
        slot.closeAfter = true;
      }
      return this.settle(slot, admission.code, admission.reply);
    }
    slot.controller = new AbortController();
    let answer: FibResult | Promise<FibResult>;
    try {
      answer = this.settings.handler(admission.n, slot.controller.signal);
    } catch (error) {
      return this.fail(slot, error);
    }
    if (answer instanceof Promise) {
      answer.then(
        (result) => this.succeed(slot, result),
        (error: unknown) => this.fail(slot, error),
      );
    } else {
      this.succeed(slot, answer);
    }
  }

  private succeed(slot: Slot, result: FibResult): void {
    slot.result = result;
    this.settle(slot, 'ok', formatReply(result.value));
  }

  private fail(slot: Slot, error: unknown): void {
    if (error instanceof RequestError) return this.settle(slot, error.code, formatError(error.code, error.message));
    this.settle(slot, 'internal', formatError('internal', 'the request failed inside the server'));
  }

  private settle(slot: Slot, outcome: Outcome, reply: string): void {
    if (slot.reply !== undefined || this.state === 'closed') return;
    this.fill(slot, outcome, reply);
    this.flush();
    this.pump();
    this.endIfIdle();
  }

  private fill(slot: Slot, outcome: Outcome, reply: string): void {
    slot.outcome = outcome;
    slot.reply = reply;
  }

  /** Writes every reply at the head of the queue that is ready, in request order. */
  private flush(): void {
    const { recorder } = this.settings;
    while (this.slots.length > 0 && this.slots[0]!.reply !== undefined) {
      const slot = this.slots.shift()!;
      if (!this.socket.write(slot.reply!)) this.writeBlocked = true;
      const writtenAt = epochMs();
      recorder.inflight(-1);
      recorder.finished({
        outcome: slot.outcome!,
        durationSeconds: (writtenAt - slot.receivedAt) / 1000,
        ...(slot.result && {
          queueWaitSeconds: Math.max(0, slot.result.startedAt - slot.receivedAt) / 1000,
          computeSeconds: slot.result.computeSeconds,
        }),
      });
      if (slot.closeAfter) {
        this.end();
        break;
      }
    }
  }

  private endIfIdle(): void {
    if (this.state === 'draining' && this.slots.length === 0 && this.waiting.length === 0) this.end();
  }

  /** Half-closes after the last reply; nothing more is read or started. */
  private end(): void {
    if (this.state === 'closed') return;
    this.state = 'closing';
    this.waiting.length = 0;
    this.socket.end();
  }

  private onClose(): void {
    const abandoned = this.slots.length;
    this.state = 'closed';
    for (const slot of this.slots) slot.controller?.abort();
    this.slots.length = 0;
    this.waiting.length = 0;
    if (abandoned > 0) this.settings.recorder.inflight(-abandoned);
  }
}
