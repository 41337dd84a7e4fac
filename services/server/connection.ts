// One client connection served with the shared protocol: framing, parsing, handing each request
// to the variant's handler, replies written strictly in request order (even when the handler
// finishes them out of order), back-pressure both ways, per-request metrics, the idle timeout,
// and draining at shutdown. Every variant that serves a socket in this process uses it; only
// the handler differs.
//
// What it guarantees, whatever the client does:
// - A pipelining client cannot starve the others: at most BATCH requests are started per turn,
//   then the connection yields to the event loop; at most `maxPipeline` are in flight; and bytes
//   beyond HIGH_WATER_BYTES stay unread in the kernel (TCP flow control slows the client down).
// - What a connection holds is bounded in memory, not only in bytes: the decoder counts its
//   bookkeeping (a flood of 1-byte chunks costs far more than its bytes) against HIGH_WATER_BYTES,
//   and a paused socket reads at most one chunk ahead (limitReadAhead).
// - A connection always ends: after `line_too_long`, a line not finished within `lineTimeoutMs`
//   of its first byte (`line_timeout`), an idle timeout (which fires again after every request
//   it found in flight) or the drain, the server half-closes and keeps reading (discarding)
//   until the client closes too, or cuts it off after CLOSE_LINGER_MS. A socket is never
//   destroyed with unread bytes while the client may still be waiting for replies (that would
//   send a reset instead of a FIN).
// - At shutdown nothing that reached the server is dropped silently: lines read before the
//   drain's cut-off are answered, lines read after it get `unavailable`, and the connection
//   half-closes only once the event loop has polled its socket after the drain began, so bytes
//   already in the kernel's buffer are read and answered first; right before its FIN (and before
//   an idle or line timeout closes it) it reads what reached the kernel since that poll
//   (readWaiting). What is left is TCP's own race: bytes that arrive between that read and the
//   FIN, microseconds apart unless the process is descheduled in between.

import { readSync } from 'node:fs';
import type { Socket } from 'node:net';
import { epochMs } from '../lab/clock.js';
import { RequestError, type Outcome } from '../lab/errors.js';
import type { FibResult } from './messages.js';
import type { CloseReason, RequestRecorder } from './metrics.js';
import {
  RequestDecoder,
  SHUTTING_DOWN,
  admit,
  closesConnection,
  formatError,
  formatReply,
  type ClosingCode,
  type RequestFrame,
} from './protocol.js';

/**
 * How a parsed request reaches a CPU. A handler may answer synchronously (fib on the event
 * loop): the reply is then written with the rest of its batch. It throws (or rejects with) a
 * RequestError to answer with an error code; `signal` aborts when the client has gone or the
 * drain timeout has passed (only for handlers that say they honour it: `abortable`).
 */
export type RequestHandler = (n: number, signal: AbortSignal) => FibResult | Promise<FibResult>;

export interface ConnectionSettings {
  handler: RequestHandler;
  /** The handler honours its AbortSignal: an AbortController is made per request only then. */
  abortable: boolean;
  fibMaxN: number;
  maxPipeline: number;
  /** Close the connection after this long with nothing in flight and nothing received; 0: never. */
  idleTimeoutMs: number;
  /** A line must be finished within this long of its first byte, or `line_timeout` closes the connection; 0: never. */
  lineTimeoutMs: number;
  recorder: RequestRecorder;
}

/** Requests started per turn of the event loop, per connection, before it yields to the others. */
export const BATCH = 64;
/**
 * What a connection holds received and not yet started, counting the decoder's bookkeeping
 * (RequestDecoder.bufferedBytes), before it stops reading (TCP then pushes back). It may hold one
 * socket read (64 KiB at most) more: the chunk that crossed it.
 */
export const HIGH_WATER_BYTES = 16 * 1024;
/** After the server half-closes, how long the client has to close its side before it is cut off. */
export const CLOSE_LINGER_MS = 5000;

/**
 * Replies to requests up to this n that finish together (a pipelined batch answered on the event
 * loop) are written together; before a larger one starts, the replies before it are written, so
 * a client sees fib(1)'s reply before a fib(35) behind it blocks the loop, as with the talk's
 * servers. fib(20) takes tens of microseconds.
 */
const WRITE_TOGETHER_MAX_N = 20;

/**
 * Past the drain's cut-off, an idle connection half-closes once the event loop has polled it
 * without finding new bytes (those are answered `unavailable` first); a client that keeps sending
 * is cut off after this many polls all the same.
 */
const SHUTDOWN_POLLS = 10;

/** The signal of handlers that cannot be aborted: never fires, shared, no allocation per request. */
const NEVER_ABORTED = new AbortController().signal;

/** A request started and not yet written, in request order. */
interface Started {
  receivedAt: number;
  /** Set once answered. */
  reply: string | undefined;
  outcome: Outcome;
  /** Where fib ran: when it started (epoch ms) and how long it took. */
  startedAt: number;
  computeSeconds: number;
  controller: AbortController | null;
  /** `line_too_long`, `line_timeout`, `input_overflow`: close after writing it. */
  closeAfter: boolean;
}

export class LineConnection {
  private readonly decoder = new RequestDecoder();
  /** Started requests in request order; `head` is the oldest not yet written. */
  private started: Started[] = [];
  private head = 0;
  private state: 'open' | 'draining' | 'closing' | 'closed' = 'open';
  /** Past the drain's cut-off: new lines are answered `unavailable`. */
  private refusing = false;
  /** The client half-closed: answer what it sent, then close. */
  private peerEnded = false;
  /** The last pump stopped with complete requests still undecoded (its batch or the pipeline was full). */
  private morePending = false;
  private resumeScheduled = false;
  private writeBlocked = false;
  private reading = false;
  /** When reading last resumed (epoch ms): a line's deadline counts only time spent reading. */
  private readingSince = 0;
  /** Armed while a line is unfinished; checks its deadline when it fires. */
  private lineTimer: NodeJS.Timeout | null = null;
  private pumping = false;
  private closeReason: CloseReason = 'client';
  /** Chunks received so far: tells the shutdown whether bytes arrived while it waited for a poll. */
  private chunks = 0;
  private shutdownPolls = 0;
  private shutdownScheduled = false;
  private linger: NodeJS.Timeout | null = null;
  private readonly closed: Promise<void>;

  constructor(
    readonly socket: Socket,
    private readonly settings: ConnectionSettings,
  ) {
    // Half-closed by the client ("send these, then EOF") still gets every reply.
    socket.allowHalfOpen = true;
    socket.setNoDelay(true);
    this.closed = new Promise((resolve) => {
      if (socket.closed) resolve();
      else socket.once('close', () => resolve());
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.writeBlocked = false;
      this.pump();
    });
    socket.on('end', () => {
      this.peerEnded = true;
      this.endIfDone();
    });
    socket.on('error', () => {
      // ECONNRESET and the like: 'close' follows and cleans up.
    });
    socket.once('close', () => this.onClose());
    // Not setTimeout(ms, callback): that listener runs once, and the timer must keep firing after
    // a timeout that found a request in flight.
    if (settings.idleTimeoutMs > 0) {
      socket.setTimeout(settings.idleTimeoutMs);
      socket.on('timeout', () => this.onIdle());
    }
    limitReadAhead(socket);
    if (socket.closed) this.onClose();
    else this.pump(); // servers accept with pauseOnConnect: start reading
  }

  /** Resolves once the socket has closed. */
  get done(): Promise<void> {
    return this.closed;
  }

  /** Requests started and not yet written. */
  get inFlight(): number {
    return this.started.length - this.head;
  }

  /**
   * Shutdown: what has started is answered; lines read from now until the event loop has polled
   * this socket once more are still served (they reached the server before the drain); later
   * ones get `unavailable`; the connection half-closes once nothing is left in flight.
   */
  drain(): Promise<void> {
    if (this.state === 'open') this.state = 'draining';
    afterNextPoll(() => {
      this.refusing = true;
      this.pump();
    });
    return this.closed;
  }

  /** The drain timeout passed: answer everything still pending `unavailable` and close. */
  abort(): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.refusing = true;
    const unavailable = formatError('unavailable', SHUTTING_DOWN);
    for (let i = this.head; i < this.started.length; i++) {
      const request = this.started[i]!;
      if (request.reply !== undefined) continue;
      request.controller?.abort();
      request.outcome = 'unavailable';
      request.reply = unavailable;
    }
    // Requests read but not started get the same answer (written with the others, below).
    this.pumping = true;
    try {
      for (let frame = this.decoder.next(); frame; frame = this.decoder.next()) this.start(frame);
    } finally {
      this.pumping = false;
    }
    this.flush();
    // One more poll: lines already on their way get `unavailable` too, then the FIN.
    this.shutdownPolls = SHUTDOWN_POLLS - 1;
    this.endIfDone();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closing' || this.state === 'closed') return; // after our FIN: nobody to answer
    this.chunks += 1;
    this.decoder.feed(chunk, epochMs());
    if (this.lineTimer === null && this.settings.lineTimeoutMs > 0 && this.decoder.partialLineAt !== undefined) {
      this.armLineTimer(this.settings.lineTimeoutMs);
    }
    this.pump();
  }

  /** Starts decoded requests, at most BATCH per turn and `maxPipeline` in flight, then writes what is ready. */
  private pump(): void {
    if (this.pumping || this.state === 'closed') return;
    this.pumping = true;
    let budget = BATCH;
    this.morePending = false;
    try {
      while (this.state !== 'closing') {
        if (this.writeBlocked) {
          // The client is not reading its replies: start nothing more until they drain.
          this.morePending = this.decoder.bufferedBytes > 0;
          break;
        }
        if (this.inFlight >= this.settings.maxPipeline) {
          this.flush(); // replies answered on the spot free their places
          if (this.inFlight >= this.settings.maxPipeline) {
            this.morePending = this.decoder.bufferedBytes > 0;
            break;
          }
          continue;
        }
        if (budget === 0) {
          // Yield to the other connections; carry on after their I/O.
          this.morePending = true;
          if (!this.resumeScheduled) {
            this.resumeScheduled = true;
            setImmediate(() => {
              this.resumeScheduled = false;
              this.pump();
            });
          }
          break;
        }
        const frame = this.decoder.next();
        if (!frame) break;
        budget -= 1;
        this.start(frame);
      }
    } finally {
      this.pumping = false;
    }
    this.flush();
    this.updateReading();
    this.endIfDone();
  }

  private start(frame: RequestFrame): void {
    const request: Started = {
      receivedAt: this.decoder.receivedAt,
      reply: undefined,
      outcome: 'ok',
      startedAt: NaN,
      computeSeconds: NaN,
      controller: null,
      closeAfter: false,
    };
    this.started.push(request);
    this.settings.recorder.inflight(1);
    const admission = admit(frame, this.settings.fibMaxN, this.refusing);
    if (typeof admission !== 'number') {
      request.closeAfter = closesConnection(admission.code);
      return this.settle(request, admission.code, admission.reply);
    }
    if (admission > WRITE_TOGETHER_MAX_N) this.flush();
    let signal = NEVER_ABORTED;
    if (this.settings.abortable) {
      request.controller = new AbortController();
      signal = request.controller.signal;
    }
    let answer: FibResult | Promise<FibResult>;
    try {
      answer = this.settings.handler(admission, signal);
    } catch (error) {
      return this.fail(request, error);
    }
    if (answer instanceof Promise) {
      answer.then(
        (result) => this.succeed(request, result),
        (error: unknown) => this.fail(request, error),
      );
    } else {
      this.succeed(request, answer);
    }
  }

  private succeed(request: Started, result: FibResult): void {
    request.startedAt = result.startedAt;
    request.computeSeconds = result.computeSeconds;
    this.settle(request, 'ok', formatReply(result.value));
  }

  private fail(request: Started, error: unknown): void {
    if (error instanceof RequestError) return this.settle(request, error.code, formatError(error.code, error.message));
    this.settle(request, 'internal', formatError('internal', 'the request failed inside the server'));
  }

  private settle(request: Started, outcome: Outcome, reply: string): void {
    if (request.reply !== undefined || this.state === 'closed') return;
    request.outcome = outcome;
    request.reply = reply;
    // Within a pump the batch is written at its end, in one write; otherwise now.
    if (!this.pumping) this.pump();
  }

  /** Writes every reply at the head of the queue that is ready, in request order, in one write. */
  private flush(): void {
    const first = this.started[this.head];
    if (first?.reply === undefined || this.state === 'closed') return;
    const { recorder } = this.settings;
    const writtenAt = epochMs();
    let out = '';
    let written = 0;
    let closeAfter: CloseReason | null = null;
    while (this.head < this.started.length) {
      const request = this.started[this.head]!;
      if (request.reply === undefined) break;
      this.head += 1;
      written += 1;
      out += request.reply;
      const queueWait = Number.isNaN(request.startedAt) ? NaN : Math.max(0, request.startedAt - request.receivedAt) / 1000;
      recorder.finished(request.outcome, (writtenAt - request.receivedAt) / 1000, queueWait, request.computeSeconds);
      if (request.closeAfter) {
        closeAfter = request.outcome as ClosingCode;
        break;
      }
    }
    recorder.inflight(-written);
    if (this.head === this.started.length) {
      this.started = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.started.length) {
      this.started = this.started.slice(this.head);
      this.head = 0;
    }
    if (this.state !== 'closing' && !this.socket.write(out, 'latin1')) this.writeBlocked = true;
    if (closeAfter) this.end(closeAfter);
  }

  /** Reads while there is room: not while replies are stuck in the kernel or too many bytes wait undecoded. */
  private updateReading(): void {
    const wanted =
      this.state === 'closing' || // discard until the client's FIN
      (this.state !== 'closed' && !this.writeBlocked && !this.resumeScheduled && this.decoder.bufferedBytes < HIGH_WATER_BYTES);
    if (wanted === this.reading) return;
    this.reading = wanted;
    if (wanted) {
      this.readingSince = epochMs();
      this.socket.resume();
    } else {
      this.socket.pause();
    }
  }

  /** Half-closes once nothing is in flight, when the client has half-closed or the drain has cut off. */
  private endIfDone(): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (this.inFlight > 0 || this.morePending) return;
    if (this.peerEnded) this.end('client');
    else if (this.refusing) this.endAfterPoll();
  }

  /**
   * The drain's FIN, once the event loop has polled this socket and found nothing new: bytes that
   * were already on their way are read and answered `unavailable` first, not dropped with a reset.
   */
  private endAfterPoll(): void {
    if (this.shutdownScheduled) return;
    this.shutdownScheduled = true;
    const chunks = this.chunks;
    afterNextPoll(() => {
      this.shutdownScheduled = false;
      if (this.state === 'closing' || this.state === 'closed' || this.inFlight > 0 || this.morePending) return;
      // Lines that reached the kernel since that poll (the loop may have been busy since) are
      // answered `unavailable` before the FIN, even when the client has had its SHUTDOWN_POLLS.
      this.readLate();
      if (this.ending || this.inFlight > 0 || this.morePending) return;
      if (this.chunks === chunks || ++this.shutdownPolls >= SHUTDOWN_POLLS) this.end('shutdown');
      else this.endAfterPoll();
    });
  }

  /** Half-closed or closed (a getter: what readLate did is not narrowed away). */
  private get ending(): boolean {
    return this.state === 'closing' || this.state === 'closed';
  }

  /**
   * Feeds what the kernel holds for this socket and no poll has read yet (see readWaiting); not
   * while reading is paused: bytes then wait in the kernel on purpose.
   */
  private readLate(): void {
    if (!this.reading) return;
    const late = readWaiting(this.socket);
    if (late !== null) this.onData(late);
  }

  /**
   * The socket's idle timer fired (nothing read, nothing written for idleTimeoutMs): close if
   * nothing is in flight (no reply line: nothing was asked). With a request in flight it fires
   * again idleTimeoutMs after the reply's write. Lines that wait because the client has not read
   * its replies for that long do not keep the connection: that client is not reading.
   */
  private onIdle(): void {
    if (this.state !== 'open' && this.state !== 'draining') return;
    if (this.inFlight > 0 || (this.morePending && !this.writeBlocked)) return;
    const chunks = this.chunks;
    this.readLate();
    if (this.chunks === chunks) this.end('idle');
  }

  private armLineTimer(ms: number): void {
    this.lineTimer = setTimeout(() => this.onLineTimer(), ms);
    this.lineTimer.unref();
  }

  /**
   * A line was unfinished when its timer was armed. Its deadline counts only time spent reading:
   * while the connection does not read (its client has not read the replies, or lines wait for
   * their turn), the newline may be waiting in the kernel.
   */
  private onLineTimer(): void {
    this.lineTimer = null;
    if (this.state !== 'open' && this.state !== 'draining') return;
    const since = this.decoder.partialLineAt;
    if (since === undefined) return; // finished meanwhile
    const deadline = this.settings.lineTimeoutMs;
    if (!this.reading) return this.armLineTimer(deadline);
    const waited = epochMs() - Math.max(since, this.readingSince);
    if (waited < deadline) return this.armLineTimer(deadline - waited);
    this.readLate(); // its newline may have just arrived
    if (this.decoder.partialLineAt !== since || this.ending) {
      if (this.lineTimer === null && this.decoder.partialLineAt !== undefined) this.armLineTimer(deadline);
      return;
    }
    this.decoder.expire(deadline); // answered `line_timeout` after the lines before it, then closed
    this.pump();
  }

  /** Half-closes after the last reply; reads on (discarding) until the client closes, or cuts it off. */
  private end(reason: CloseReason): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    this.closeReason = reason;
    this.linger = endAndDiscard(this.socket);
    this.reading = true;
  }

  private onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.linger) clearTimeout(this.linger);
    if (this.lineTimer) clearTimeout(this.lineTimer);
    const abandoned = this.inFlight;
    for (let i = this.head; i < this.started.length; i++) this.started[i]!.controller?.abort();
    this.started = [];
    this.head = 0;
    if (abandoned > 0) this.settings.recorder.inflight(-abandoned);
    this.settings.recorder.closed(this.closeReason);
  }
}

/** Where readWaiting reads (at most this much at once); what it returns is copied out of it. */
const READ_WAITING = Buffer.allocUnsafe(64 * 1024);

/**
 * Reads, now, what the kernel holds for `socket` that Node has not read yet: Node reads a socket
 * only when the event loop polls, and a loop busy between that poll and a decision to close
 * would otherwise close on stale news (strace showed requests in the kernel for up to 17 ms
 * before a drain's shutdown(2), then read and dropped). Null when nothing waits, when Node holds
 * unread bytes of its own (they come first), or where the socket has no file descriptor. A read
 * of the descriptor behind libuv's back is safe here: libuv reads it only when the loop polls.
 */
export function readWaiting(socket: Socket): Buffer | null {
  if (socket.readableLength > 0 || socket.readableEnded) return null;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  // Non-blocking (libuv's sockets are): EAGAIN when nothing waits, thrown as an error whose stack
  // trace would cost 3 times the read (27 us, not 8.5): every connection of a drain does this once
  // in the same turn, and that turn delays every FIN. 0 is the client's FIN, left for libuv to read.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const read = readSync(fd, READ_WAITING, 0, READ_WAITING.length, null);
    return read > 0 ? Buffer.from(READ_WAITING.subarray(0, read)) : null;
  } catch {
    return null;
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

/**
 * Makes a paused socket stop reading from the kernel after one chunk. A paused stream reads ahead
 * up to its high-water mark (16 KiB), and 16 KiB of 1-byte chunks cost about 3 MB of heap there (a
 * Buffer and an ArrayBuffer each, about 200 bytes), past any bound the decoder keeps. Node has no
 * public way to set it on a socket it accepted or received from another process, hence the
 * stream's own state; reading while flowing is not affected (chunks are handed over as they come).
 */
export function limitReadAhead(socket: Socket): void {
  const state = (socket as unknown as { _readableState?: { highWaterMark: number } })._readableState;
  if (state) state.highWaterMark = 1;
}

/**
 * Half-closes a socket (after what was written), then reads and drops whatever the client still
 * sends until it closes its side, so the connection ends with a FIN, never a reset; a client
 * that does not close within CLOSE_LINGER_MS is cut off. Returns the cut-off timer.
 */
export function endAndDiscard(socket: Socket, message?: string): NodeJS.Timeout {
  socket.resume();
  if (message === undefined) socket.end();
  else socket.end(message);
  const timer = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS).unref();
  socket.once('close', () => clearTimeout(timer));
  return timer;
}

/**
 * Runs `fn` after the event loop has polled for I/O once more: bytes already in the kernel's
 * buffers when this is called (and sockets whose reading starts in this turn) are read first.
 * setImmediate runs after this turn's poll; the inner one after the next turn's.
 */
export function afterNextPoll(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
}
