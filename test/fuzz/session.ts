// Plays one fuzz session against a server over a real socket and judges what came back against
// the model: every reply the client got must be the expected one, in order; a client that
// stays to read everything must get every reply; a server that answers line_too_long, or whose
// client half-closed, must close the connection. Never waits without a deadline.

import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { deadline } from '../hardening-helpers.js';
import type { Session } from './frames.js';
import { HALF_CLOSE_ANSWERED, describeReply, expectReplies, matches, type Expectation } from './model.js';

export interface SessionOutcome {
  /** Replies received and checked against the model. */
  replies: number;
  /** What went wrong, in one line, or null. */
  failure: string | null;
}

export interface SessionLimits {
  fibMaxN: number;
  /** How long any one awaited state (a reply, a close) may take. */
  replyTimeoutMs: number;
}

/** A socket's reply lines and fate, with a way to wait for either. */
class Observed {
  readonly lines: string[] = [];
  ended = false;
  closed = false;
  error: string | null = null;
  private buffered = '';
  private wakers: Array<() => void> = [];

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      const parts = (this.buffered + chunk.toString('latin1')).split('\n');
      this.buffered = parts.pop()!;
      this.lines.push(...parts);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.error ??= error.code ?? error.message;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Resolves true once `condition` holds, false at the deadline. */
  async until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wakers.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  get partial(): string {
    return this.buffered;
  }

  private wake(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const wake of wakers) wake();
  }
}

export async function runSession(port: number, session: Session, limits: SessionLimits): Promise<SessionOutcome> {
  const expectation = expectReplies(
    session.writes.map((write) => write.bytes),
    limits.fibMaxN,
    session.abandonsLine,
  );
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  try {
    await Promise.race([
      once(socket, 'connect'),
      deadline(limits.replyTimeoutMs).then(() => Promise.reject(new Error('timeout'))),
    ]);
  } catch (error) {
    socket.destroy();
    return { replies: 0, failure: `could not connect: ${(error as Error).message}` };
  }
  const observed = new Observed(socket);
  try {
    const problem = await play(session, expectation, observed, limits);
    return { replies: observed.lines.length, failure: problem ?? judge(expectation, observed.lines) };
  } finally {
    socket.destroy();
  }
}

/** Runs the writes and the ending; returns a failure that the replies alone would not show. */
async function play(
  session: Session,
  expectation: Expectation,
  observed: Observed,
  limits: SessionLimits,
): Promise<string | null> {
  const { socket } = observed;
  const gone = () => observed.closed || observed.ended;
  const wait = (condition: () => boolean) => observed.until(condition, limits.replyTimeoutMs);
  const due = expectation.replies.length;
  for (const [i, write] of session.writes.entries()) {
    if (gone()) break; // the server closed (line_too_long): judged on the replies
    socket.write(write.bytes);
    const dueNow = expectation.dueAfterWrite[i]!;
    if (write.awaitReplies && !(await wait(() => observed.lines.length >= dueNow || gone())))
      return `no reply #${observed.lines.length + 1} within ${limits.replyTimeoutMs} ms after write ${i} (${dueNow} due)`;
    if (write.pauseMs > 0) await sleep(write.pauseMs);
  }
  const { ending } = session;
  if (ending.kind === 'destroy') {
    await wait(() => observed.lines.length >= Math.min(ending.afterReplies, due) || gone());
    socket.destroy();
    return null;
  }
  if (ending.kind === 'half-close') socket.end();
  const everything = ending.kind === 'read-all' || expectation.serverCloses || HALF_CLOSE_ANSWERED;
  if (everything) {
    const settled = await wait(() => observed.lines.length >= due || observed.closed);
    const got = `${observed.lines.length} of ${due} replies`;
    const after = ending.kind === 'half-close' ? ' (the client had half-closed)' : '';
    if (!settled) return `got ${got} within ${limits.replyTimeoutMs} ms${after} (partial ${JSON.stringify(observed.partial)})`;
    if (observed.lines.length < due) return judge(expectation, observed.lines) ?? `the server closed after ${got}${after}`;
  }
  if (ending.kind === 'write-after-too-long' && expectation.serverCloses) {
    // Bytes after the reply land in a socket the server no longer reads: it must close anyway.
    if (!observed.closed) socket.write(ending.bytes);
    socket.end();
  }
  const closes = expectation.serverCloses || ending.kind !== 'read-all';
  if (closes && !(await wait(() => observed.ended || observed.closed))) {
    const why = expectation.serverCloses ? 'after line_too_long' : 'after the client half-closed';
    return `the server did not close the connection ${why} within ${limits.replyTimeoutMs} ms`;
  }
  return null;
}

/** Compares the replies received with the model's, position by position. */
function judge(expectation: Expectation, lines: readonly string[]): string | null {
  for (const [i, line] of lines.entries()) {
    const expected = expectation.replies[i];
    if (!expected) return `reply #${i + 1} ${JSON.stringify(line)}: only ${expectation.replies.length} replies are due`;
    if (!matches(line, expected)) return `reply #${i + 1} ${JSON.stringify(line)}, expected ${describeReply(expected)}`;
  }
  return null;
}

/** A session's writes, printable: each write's bytes as a JSON string, long ones cut. */
export function describeWrites(session: Session): string {
  const shown = session.writes.map((write) => {
    const text = write.bytes.toString('latin1');
    return JSON.stringify(text.length > 80 ? `${text.slice(0, 60)}...(${text.length} bytes)` : text);
  });
  const ending = session.ending.kind === 'destroy' ? `destroy after ${session.ending.afterReplies} replies` : session.ending.kind;
  return `[${shown.join(', ')}] then ${ending}`;
}
