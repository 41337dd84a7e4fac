// One load-generator connection to a fib server: writes request lines, matches reply lines to
// requests in order (the protocol answers in request order), and turns every way a request can
// fail into one of the lab's outcome codes (errors.ts).

import { connect, type Socket } from 'node:net';
import type { ClientErrorCode, Outcome } from '../common/errors.js';
import { ReplyDecoder, formatRequest, parseReply } from '../common/protocol.js';

export interface Answer {
  outcome: Outcome;
  /** The reply's value when ok. */
  value?: string;
}

interface Pending {
  resolve(answer: Answer): void;
  timer: NodeJS.Timeout;
}

export class ClientConnection {
  private readonly decoder = new ReplyDecoder();
  private readonly pending: Pending[] = [];
  private closedWith: ClientErrorCode | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      for (const line of this.decoder.push(chunk)) {
        const next = this.pending.shift();
        if (!next) continue; // a reply nobody asked for (e.g. the cap's overloaded line)
        clearTimeout(next.timer);
        const reply = parseReply(line);
        next.resolve(reply.ok ? { outcome: 'ok', value: reply.value } : { outcome: reply.code });
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => this.fail('closed'));
  }

  /** Opens a connection; rejects with `connect_error` (or `timeout`). */
  static open(host: string, port: number, timeoutMs: number): Promise<ClientConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ClientFailure('timeout'));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new ClientConnection(socket));
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
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // The connection is out of step now: everything on it fails and it closes.
        this.fail('timeout');
      }, timeoutMs);
      this.pending.push({ resolve, timer });
      this.socket.write(formatRequest(n));
    });
  }

  close(): void {
    this.closedWith ??= 'closed';
    this.socket.end();
    this.socket.destroySoon();
  }

  destroy(): void {
    this.fail('closed');
  }

  private fail(code: ClientErrorCode): void {
    this.closedWith ??= code;
    for (const pending of this.pending.splice(0)) {
      clearTimeout(pending.timer);
      pending.resolve({ outcome: code });
    }
    this.socket.destroy();
  }
}

export class ClientFailure extends Error {
  constructor(readonly code: ClientErrorCode) {
    super(code);
  }
}
