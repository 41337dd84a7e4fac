// One load-generator connection to a fib server: writes request lines, matches reply lines to
// requests in order (the protocol answers in request order), and turns every way a request can
// fail into one of the lab's outcome codes (errors.ts). In legacy mode it talks like the talk's
// own clients and servers: a request is the bare number without a newline, one at a time, and a
// reply may be a bare number.

import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ClientErrorCode, Outcome } from '../lab/errors.js';
import { ReplyDecoder, formatRequest, parseReply } from '../server/protocol.js';

/** Called once with a request's outcome. */
export type OnAnswer = (outcome: Outcome) => void;

/** What the load drivers need of a connection (ClientConnection, or a test's fake). */
export interface FibConnection {
  readonly isOpen: boolean;
  /**
   * Sends fib(n); `onAnswer` is called once with its outcome, never synchronously (a callback,
   * not a Promise: this is the generator's hot path, once per request).
   */
  send(n: number, timeoutMs: number, onAnswer: OnAnswer): void;
  close(): void;
  destroy(): void;
}

/** How often a connection looks for timed-out requests: one timer per connection, not per request (the hot path). */
const TIMEOUT_CHECKS_PER_TIMEOUT = 10;

export class ClientConnection implements FibConnection {
  private readonly decoder = new ReplyDecoder();
  /** The requests in flight, oldest first: who to answer, and when each times out (performance.now()). */
  private readonly waiting: OnAnswer[] = [];
  private readonly deadlines: number[] = [];
  private closedWith: ClientErrorCode | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  /** The last request line sent, kept: a closed loop sends the same n over and over. */
  private lastN = -1;
  private lastLine = '';

  private constructor(
    private readonly socket: Socket,
    private readonly legacy: boolean,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      // The common case, one whole ok reply in a chunk, without making a string of it.
      if (!this.legacy && this.decoder.isOneOkReply(chunk)) return this.answer('ok');
      for (const line of this.decoder.push(chunk)) {
        const reply = parseReply(line, this.legacy);
        this.answer(reply.ok ? 'ok' : reply.code);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => this.fail('closed'));
  }

  /** The oldest request's reply came. A reply nobody asked for (e.g. the cap's overloaded line) is dropped. */
  private answer(outcome: Outcome): void {
    const onAnswer = this.waiting.shift();
    if (!onAnswer) return;
    this.deadlines.shift();
    onAnswer(outcome);
  }

  /** Opens a connection; rejects with `connect_error` (or `timeout`). */
  static open(host: string, port: number, timeoutMs: number, legacy = false): Promise<ClientConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ClientFailure('timeout'));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new ClientConnection(socket, legacy));
      });
      socket.once('error', () => {
        clearTimeout(timer);
        reject(new ClientFailure('connect_error'));
      });
    });
  }

  get isOpen(): boolean {
    return this.closedWith === null;
  }

  send(n: number, timeoutMs: number, onAnswer: OnAnswer): void {
    const closedWith = this.closedWith;
    if (closedWith) {
      queueMicrotask(() => onAnswer(closedWith));
      return;
    }
    this.watchdog ??= setInterval(() => this.checkTimeouts(), Math.max(10, timeoutMs / TIMEOUT_CHECKS_PER_TIMEOUT)).unref();
    this.waiting.push(onAnswer);
    this.deadlines.push(performance.now() + timeoutMs);
    if (n !== this.lastN) {
      this.lastN = n;
      this.lastLine = this.legacy ? String(n) : formatRequest(n);
    }
    this.socket.write(this.lastLine);
  }

  /** The oldest request is overdue: the connection is out of step, so everything on it fails and it closes. */
  private checkTimeouts(): void {
    const oldest = this.deadlines[0];
    if (oldest !== undefined && performance.now() >= oldest) this.fail('timeout');
  }

  close(): void {
    this.closedWith ??= 'closed';
    if (this.watchdog) clearInterval(this.watchdog);
    this.socket.end();
    this.socket.destroySoon();
  }

  destroy(): void {
    this.fail('closed');
  }

  private fail(code: ClientErrorCode): void {
    this.closedWith ??= code;
    if (this.watchdog) clearInterval(this.watchdog);
    this.deadlines.length = 0;
    // Later, not from inside close() or destroy(): their callers are not re-entered.
    const failed = this.waiting.splice(0);
    if (failed.length > 0) queueMicrotask(() => failed.forEach((onAnswer) => onAnswer(code)));
    this.socket.destroy();
  }
}

export class ClientFailure extends Error {
  constructor(readonly code: ClientErrorCode) {
    super(code);
  }
}
