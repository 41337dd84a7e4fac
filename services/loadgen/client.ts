// One load-generator connection to a fib server: writes request lines, matches reply lines to
// requests in order (the protocol answers in request order), and turns every way a request can
// fail into one of the lab's outcome codes (errors.ts). In legacy mode it talks like the talk's
// own clients and servers: a request is the bare number without a newline, one at a time, and a
// reply may be a bare number.

import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ClientErrorCode, Outcome } from '../lab/errors.js';
import { ReplyDecoder, formatRequest, parseReply } from '../server/protocol.js';

export interface Answer {
  outcome: Outcome;
  /** The reply's value when ok. */
  value?: string;
}

/** What the load drivers need of a connection (ClientConnection, or a test's fake). */
export interface FibConnection {
  readonly isOpen: boolean;
  /** Sends fib(n) and resolves with its answer; never rejects. */
  request(n: number, timeoutMs: number): Promise<Answer>;
  close(): void;
  destroy(): void;
}

interface Pending {
  resolve(answer: Answer): void;
  /** When it times out, on performance.now(). */
  deadline: number;
}

/** How often a connection looks for timed-out requests: one timer per connection, not per request (the hot path). */
const TIMEOUT_CHECKS_PER_TIMEOUT = 10;

export class ClientConnection implements FibConnection {
  private readonly decoder = new ReplyDecoder();
  private readonly pending: Pending[] = [];
  private closedWith: ClientErrorCode | null = null;
  private watchdog: NodeJS.Timeout | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly legacy: boolean,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      for (const line of this.decoder.push(chunk)) {
        const next = this.pending.shift();
        if (!next) continue; // a reply nobody asked for (e.g. the cap's overloaded line)
        // The common reply first, without a regular expression.
        if (!this.legacy && line.startsWith('fib: ') && !line.endsWith('\r')) {
          next.resolve({ outcome: 'ok', value: line.slice(5) });
          continue;
        }
        const reply = parseReply(line, this.legacy);
        next.resolve(reply.ok ? { outcome: 'ok', value: reply.value } : { outcome: reply.code });
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => this.fail('closed'));
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

  /** Sends fib(n) and resolves with its answer; never rejects. */
  request(n: number, timeoutMs: number): Promise<Answer> {
    if (this.closedWith) return Promise.resolve({ outcome: this.closedWith });
    this.watchdog ??= setInterval(() => this.checkTimeouts(), Math.max(10, timeoutMs / TIMEOUT_CHECKS_PER_TIMEOUT)).unref();
    return new Promise((resolve) => {
      this.pending.push({ resolve, deadline: performance.now() + timeoutMs });
      this.socket.write(this.legacy ? String(n) : formatRequest(n));
    });
  }

  /** The oldest request is overdue: the connection is out of step, so everything on it fails and it closes. */
  private checkTimeouts(): void {
    const oldest = this.pending[0];
    if (oldest && performance.now() >= oldest.deadline) this.fail('timeout');
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
    for (const pending of this.pending.splice(0)) pending.resolve({ outcome: code });
    this.socket.destroy();
  }
}

export class ClientFailure extends Error {
  constructor(readonly code: ClientErrorCode) {
    super(code);
  }
}
