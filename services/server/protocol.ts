// The fib wire protocol (docs/protocol.md), in one place: request framing (strict lines, and
// the per-chunk framing of the talk's clients that never send a newline), request parsing,
// reply and error formatting, and the client side's reply decoding. Every variant and the load
// generator use this module; nothing else frames or formats protocol lines.

import { RequestError, isServerErrorCode, type ServerErrorCode } from '../lab/errors.js';

/** A request line (or a legacy chunk) longer than this, without a newline, is `line_too_long`. */
export const MAX_LINE_BYTES = 64;

/**
 * What a decoder may hold (received and not yet taken out, counting its bookkeeping) before it
 * refuses more with `input_overflow`. A server stops reading long before (at its own high-water
 * mark, see connection.ts); this holds even if that back-pressure fails: four socket reads.
 */
export const MAX_BUFFERED_BYTES = 256 * 1024;

/**
 * What the decoder counts for each piece of bookkeeping, next to the bytes themselves: V8's cost
 * of it, rounded up (heap retained per chunk of 1 to 64 bytes, 64-bit V8, Node 20: its bytes and
 * 30 to 80 more in line mode, 19 to 60 more in legacy mode; test/protocol.test.ts holds the
 * decoder to it). A
 * chunk appended to a line-mode buffer is a rope node and a string until the next scan flattens
 * them; a chunk holding a newline keeps where it ends and when it arrived; a legacy chunk is a
 * string and its arrival time.
 */
export const PIECE_BYTES = 72;
export const ENTRY_BYTES = 32;
export const LEGACY_ENTRY_BYTES = 80;

/** The largest n any server may be configured to accept: fib(78) is the last exact double. */
export const FIB_MAX_N_LIMIT = 78;

export type RequestFrame =
  /** One request's text, without its terminator. */
  | { kind: 'request'; text: string }
  /** More than MAX_LINE_BYTES without a newline: reply `line_too_long`, then close. */
  | { kind: 'too_long' }
  /** A line begun and not finished within `ms` (see `expire`): reply `line_timeout`, then close. */
  | { kind: 'line_timeout'; ms: number }
  /** More than MAX_BUFFERED_BYTES held: reply `input_overflow`, then close. */
  | { kind: 'overflow' };

/**
 * Splits a connection's byte stream into requests, one at a time: `feed` stores what arrived,
 * `next` takes the next request out (O(1) per request), so a server decodes only as many
 * requests as it is ready to start and holds a flood of pipelined lines as bytes, not objects.
 *
 * A connection starts in legacy mode: as long as it has never sent a newline, each received
 * chunk is one request, like the talk's `recv(100)`. The first chunk holding a newline switches
 * it to strict line framing for good (that chunk included).
 *
 * `bufferedBytes` counts what the decoder holds, bookkeeping included (a flood of 1-byte chunks
 * costs far more than its bytes), so that a server can stop reading at a bound in memory, not
 * just in bytes. `partialLineAt` says since when an unfinished line has waited for its newline,
 * and `expire` gives up on it.
 *
 * After `too_long`, `line_timeout` or `overflow` the decoder is finished: it takes no more bytes,
 * returns the requests complete before that point, then that frame, then nothing.
 *
 * Bytes are kept as latin1 text, so one character is one byte and lengths are byte counts.
 */
export class RequestDecoder {
  private lineMode = false;
  /** Takes no more bytes (a terminal frame is due, or was returned). */
  private sealed = false;
  /** The terminal frame, returned once the requests before it are out. */
  private last: RequestFrame | null = null;
  /** Line mode: received text not yet taken out, from `pos`; `base` is the stream offset of text[0]. */
  private text = '';
  private pos = 0;
  private base = 0;
  /** Chunks appended to `text` since a scan last flattened it. */
  private pieces = 0;
  /** Line mode: for each fed chunk holding a newline, the stream offset where it ends and when it arrived. */
  private ends: number[] = [];
  private times: number[] = [];
  /** Line mode: when the first byte of the unfinished line at the end arrived; -1: none. */
  private partialAt = -1;
  /** Legacy mode: one request per chunk, not yet taken out, and when each arrived. */
  private legacyTexts: string[] = [];
  private legacyTimes: number[] = [];
  private legacyBytes = 0;
  private at = 0;

  /** Whether a newline has been seen on this connection (strict line framing). */
  get inLineMode(): boolean {
    return this.lineMode;
  }

  /** What the decoder holds, received and not yet taken out, counting its bookkeeping (see PIECE_BYTES). */
  get bufferedBytes(): number {
    return (
      this.text.length -
      this.pos +
      this.pieces * PIECE_BYTES +
      this.ends.length * ENTRY_BYTES +
      this.legacyBytes +
      this.legacyTexts.length * LEGACY_ENTRY_BYTES
    );
  }

  /** When the first byte of an unfinished line arrived (the `at` given to `feed`), or undefined without one. */
  get partialLineAt(): number | undefined {
    return this.partialAt < 0 || this.sealed ? undefined : this.partialAt;
  }

  /** When the chunk completing the request last returned by `next` arrived (the `at` given to `feed`). */
  get receivedAt(): number {
    return this.at;
  }

  /** Stores a received chunk; `at` is when it arrived (not negative). */
  feed(chunk: Buffer, at = 0): void {
    if (this.sealed || chunk.length === 0) return;
    const text = chunk.toString('latin1');
    if (!this.lineMode) {
      if (text.indexOf('\n') === -1) {
        if (text.length > MAX_LINE_BYTES) return this.seal(TOO_LONG);
        this.legacyTexts.push(text);
        this.legacyTimes.push(at);
        this.legacyBytes += text.length;
        if (this.bufferedBytes > MAX_BUFFERED_BYTES) this.seal(OVERFLOW);
        return;
      }
      this.lineMode = true;
    }
    if (this.pos > 0) {
      this.base += this.pos;
      this.text = this.text.slice(this.pos);
      this.pos = 0;
    }
    this.text += text;
    this.pieces += 1;
    const newline = text.lastIndexOf('\n');
    if (newline === -1) {
      if (this.partialAt < 0) this.partialAt = at;
    } else {
      this.ends.push(this.base + this.text.length);
      this.times.push(at);
      this.partialAt = newline === text.length - 1 ? -1 : at;
    }
    if (this.bufferedBytes > MAX_BUFFERED_BYTES) this.seal(OVERFLOW);
  }

  /** The next request, or undefined until more bytes arrive. */
  next(): RequestFrame | undefined {
    if (this.legacyTexts.length > 0) {
      const text = this.legacyTexts.shift()!;
      this.at = this.legacyTimes.shift()!;
      this.legacyBytes -= text.length;
      return { kind: 'request', text: stripCR(text) };
    }
    if (this.pos < this.text.length) {
      const end = this.text.indexOf('\n', this.pos);
      this.pieces = 0; // the scan flattened the text
      if (end === -1 ? this.text.length - this.pos > MAX_LINE_BYTES : end - this.pos > MAX_LINE_BYTES) {
        return this.finish(TOO_LONG);
      }
      if (end !== -1) return this.takeLine(end);
    }
    return this.last ? this.finish(this.last) : undefined;
  }

  /**
   * The unfinished line has waited too long for its newline: it is dropped, no more bytes are
   * taken, and after the requests complete before it `next` returns `line_timeout`.
   */
  expire(ms: number): void {
    if (this.partialLineAt !== undefined) this.seal({ kind: 'line_timeout', ms });
  }

  /** Feeds a chunk and takes every request out at once (the simple form, for clients and tests). */
  push(chunk: Buffer): RequestFrame[] {
    this.feed(chunk);
    const frames: RequestFrame[] = [];
    for (let frame = this.next(); frame; frame = this.next()) frames.push(frame);
    return frames;
  }

  private takeLine(end: number): RequestFrame {
    let last = end;
    if (last > this.pos && this.text.charCodeAt(last - 1) === 13) last -= 1;
    const frame: RequestFrame = { kind: 'request', text: this.text.slice(this.pos, last) };
    this.pos = end + 1;
    // The request is complete with the chunk holding its newline: the first recorded to end past it.
    const newlineAt = this.base + end;
    while (this.ends.length > 1 && this.ends[0]! <= newlineAt) {
      this.ends.shift();
      this.times.shift();
    }
    this.at = this.times[0] ?? 0;
    if (this.pos === this.text.length) {
      this.base += this.pos;
      this.text = '';
      this.pos = 0;
      this.ends.length = 0;
      this.times.length = 0;
    }
    return frame;
  }

  /** Takes no more bytes; `frame` comes after the requests already complete. */
  private seal(frame: RequestFrame): void {
    if (this.sealed) return;
    this.sealed = true;
    this.last = frame;
  }

  private finish(frame: RequestFrame): RequestFrame {
    this.sealed = true;
    this.last = null;
    this.text = '';
    this.pos = 0;
    this.pieces = 0;
    this.partialAt = -1;
    this.ends.length = 0;
    this.times.length = 0;
    this.legacyTexts.length = 0;
    this.legacyTimes.length = 0;
    this.legacyBytes = 0;
    return frame;
  }
}

const TOO_LONG: RequestFrame = { kind: 'too_long' };
const OVERFLOW: RequestFrame = { kind: 'overflow' };

function stripCR(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

const SPACE = 32;
const TAB = 9;
const isBlank = (code: number) => code === SPACE || code === TAB;

/**
 * Parses one request's text into n, or throws a RequestError (`bad_request`, `out_of_range`):
 * an ASCII decimal integer, optionally signed, with spaces and tabs around it. Hand-written (not a
 * regular expression): it runs once per request on every variant's hot path.
 */
export function parseRequest(text: string, maxN: number): number {
  let start = 0;
  let end = text.length;
  while (start < end && isBlank(text.charCodeAt(start))) start += 1;
  while (end > start && isBlank(text.charCodeAt(end - 1))) end -= 1;
  const sign = start < end ? text.charCodeAt(start) : 0;
  const digitsFrom = sign === 43 || sign === 45 ? start + 1 : start; // '+' or '-'
  if (digitsFrom === end) throw new RequestError('bad_request', `expected an integer n, got ${quote(text)}`);
  let n = 0;
  for (let i = digitsFrom; i < end; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) throw new RequestError('bad_request', `expected an integer n, got ${quote(text)}`);
    n = n * 10 + digit;
  }
  if ((sign === 45 && n !== 0) || n > maxN) {
    throw new RequestError('out_of_range', `n must be from 0 to ${maxN}, got ${text.slice(start, end)}`);
  }
  return n;
}

/** A short, printable, single-line rendering of what the client sent. */
function quote(text: string): string {
  return JSON.stringify(text.length > 20 ? `${text.slice(0, 20)}...` : text);
}

/** The codes after which the server closes the connection (it reads nothing more from it). */
export type ClosingCode = 'line_too_long' | 'line_timeout' | 'input_overflow';

export function closesConnection(code: string): code is ClosingCode {
  return code === 'line_too_long' || code === 'line_timeout' || code === 'input_overflow';
}

/** The message of `unavailable` while a server drains. */
export const SHUTTING_DOWN = 'server shutting down';

/** A frame's answer without computing anything: the error line to send. */
export interface Refusal {
  code: ServerErrorCode;
  reply: string;
}

/**
 * The protocol's rules before any work, for every server: a too-long line, a line that timed
 * out, too much input, a request that arrives while the server drains, and a line that is not an
 * n in range get their error line; anything else is the n to compute.
 */
export function admit(frame: RequestFrame, maxN: number, draining: boolean): number | Refusal {
  const refuse = (code: ServerErrorCode, message: string): Refusal => ({ code, reply: formatError(code, message) });
  if (frame.kind !== 'request') {
    if (frame.kind === 'too_long') return refuse('line_too_long', `more than ${MAX_LINE_BYTES} bytes without a newline`);
    if (frame.kind === 'line_timeout') return refuse('line_timeout', `no newline within ${frame.ms} ms of the line's first byte`);
    return refuse('input_overflow', `more than ${MAX_BUFFERED_BYTES} bytes received and not yet answered`);
  }
  if (draining) return refuse('unavailable', SHUTTING_DOWN);
  try {
    return parseRequest(frame.text, maxN);
  } catch (error) {
    if (error instanceof RequestError) return refuse(error.code, error.message);
    throw error;
  }
}

export function formatReply(value: number): string {
  return `fib: ${value}\n`;
}

export function formatError(code: ServerErrorCode, message: string): string {
  return `error: ${code} ${message.replace(/[\r\n]+/g, ' ')}\n`;
}

export function formatRequest(n: number): string {
  return `${n}\n`;
}

export type Reply = { ok: true; value: string } | { ok: false; code: ServerErrorCode | 'bad_reply'; message: string };

const FIB_REPLY = /^fib: ([0-9]+)$/;
const BARE_REPLY = /^([0-9]+)$/;
const ERROR_REPLY = /^error: ([a-z_]+) ?(.*)$/;

/**
 * Parses one reply line (without its newline). `bare` also accepts a plain number, which is
 * how the talk's own Python servers reply.
 */
export function parseReply(line: string, bare = false): Reply {
  const text = stripCR(line);
  const fibMatch = FIB_REPLY.exec(text) ?? (bare ? BARE_REPLY.exec(text) : null);
  if (fibMatch) return { ok: true, value: fibMatch[1] as string };
  const errorMatch = ERROR_REPLY.exec(text);
  if (errorMatch) {
    const code = errorMatch[1] as string;
    if (isServerErrorCode(code)) return { ok: false, code, message: errorMatch[2] ?? '' };
  }
  return { ok: false, code: 'bad_reply', message: `unexpected reply ${quote(text)}` };
}

const FIB_PREFIX = Buffer.from('fib: ', 'latin1');

/** Splits a client's received bytes into reply lines. */
export class ReplyDecoder {
  private buffered = '';

  /**
   * Whether `chunk` is exactly one `fib: <digits>` line with nothing buffered before it: the
   * load generator's hot path counts such a reply without making a string of it. Anything else
   * (false) goes through push() and parseReply() as usual.
   */
  isOneOkReply(chunk: Buffer): boolean {
    const last = chunk.length - 1;
    if (this.buffered !== '' || last <= FIB_PREFIX.length || chunk[last] !== 10) return false;
    for (let i = 0; i < FIB_PREFIX.length; i++) if (chunk[i] !== FIB_PREFIX[i]) return false;
    for (let i = FIB_PREFIX.length; i < last; i++) {
      const byte = chunk[i]!;
      if (byte < 48 || byte > 57) return false;
    }
    return true;
  }

  push(chunk: Buffer): string[] {
    // The usual case, one whole reply in one chunk, without splitting (the load generator's hot path).
    const last = chunk.length - 1;
    if (this.buffered === '' && last >= 0 && chunk[last] === 10 && chunk.indexOf(10) === last) {
      return [chunk.toString('latin1', 0, last)];
    }
    const data = this.buffered + chunk.toString('latin1');
    const lines = data.split('\n');
    this.buffered = lines.pop() as string;
    return lines;
  }
}
