// The fib wire protocol (docs/protocol.md), in one place: request framing (strict lines, and
// the per-chunk framing of the talk's clients that never send a newline), request parsing,
// reply and error formatting, and the client side's reply decoding. Every variant and the load
// generator use this module; nothing else frames or formats protocol lines.

import { RequestError, isServerErrorCode, type ServerErrorCode } from '../lab/errors.js';

/** A request line (or a legacy chunk) longer than this, without a newline, is `line_too_long`. */
export const MAX_LINE_BYTES = 64;

/** The largest n any server may be configured to accept: fib(78) is the last exact double. */
export const FIB_MAX_N_LIMIT = 78;

export type RequestFrame =
  /** One request's text, without its terminator. */
  | { kind: 'request'; text: string }
  /** More than MAX_LINE_BYTES without a newline: reply `line_too_long`, then close. */
  | { kind: 'too_long' };

/**
 * Splits a connection's byte stream into requests, one at a time: `feed` stores what arrived,
 * `next` takes the next request out (O(1) per request), so a server decodes only as many
 * requests as it is ready to start and holds a flood of pipelined lines as bytes, not objects.
 *
 * A connection starts in legacy mode: as long as it has never sent a newline, each received
 * chunk is one request, like the talk's `recv(100)`. The first chunk holding a newline switches
 * it to strict line framing for good (that chunk included). After `too_long` the decoder is
 * finished and returns nothing more.
 *
 * Bytes are kept as latin1 text, so one character is one byte and lengths are byte counts.
 */
export class RequestDecoder {
  private lineMode = false;
  private finished = false;
  /** Line mode: received text not yet taken out, from `pos`. */
  private text = '';
  private pos = 0;
  /** Line mode: for each fed chunk, the index in `text` where it ends and when it arrived. */
  private ends: number[] = [];
  private times: number[] = [];
  /** Legacy mode: one request per chunk, not yet taken out. */
  private readonly legacy: Array<{ frame: RequestFrame; at: number }> = [];
  private at = 0;

  /** Whether a newline has been seen on this connection (strict line framing). */
  get inLineMode(): boolean {
    return this.lineMode;
  }

  /** Bytes received and not yet taken out as requests. */
  get bufferedBytes(): number {
    return this.text.length - this.pos;
  }

  /** When the chunk completing the request last returned by `next` arrived (the `at` given to `feed`). */
  get receivedAt(): number {
    return this.at;
  }

  /** Stores a received chunk; `at` is when it arrived. */
  feed(chunk: Buffer, at = 0): void {
    if (this.finished || chunk.length === 0) return;
    const text = chunk.toString('latin1');
    if (!this.lineMode) {
      if (text.indexOf('\n') === -1) {
        this.legacy.push({ frame: text.length > MAX_LINE_BYTES ? TOO_LONG : { kind: 'request', text: stripCR(text) }, at });
        if (text.length > MAX_LINE_BYTES) this.finished = true;
        return;
      }
      this.lineMode = true;
    }
    if (this.pos > 0) {
      this.text = this.text.slice(this.pos);
      for (let i = 0; i < this.ends.length; i++) this.ends[i]! -= this.pos;
      this.pos = 0;
    }
    this.text += text;
    this.ends.push(this.text.length);
    this.times.push(at);
  }

  /** The next request, or undefined until more bytes arrive. */
  next(): RequestFrame | undefined {
    if (this.legacy.length > 0) {
      const { frame, at } = this.legacy.shift()!;
      this.at = at;
      return frame;
    }
    if (this.finished || !this.lineMode) return undefined;
    const end = this.text.indexOf('\n', this.pos);
    if (end === -1) return this.text.length - this.pos > MAX_LINE_BYTES ? this.finish() : undefined;
    if (end - this.pos > MAX_LINE_BYTES) return this.finish();
    let last = end;
    if (last > this.pos && this.text.charCodeAt(last - 1) === 13) last -= 1;
    const frame: RequestFrame = { kind: 'request', text: this.text.slice(this.pos, last) };
    this.pos = end + 1;
    // The request is complete with the chunk holding its newline.
    while (this.ends.length > 1 && this.ends[0]! <= end) {
      this.ends.shift();
      this.times.shift();
    }
    this.at = this.times[0] ?? 0;
    if (this.pos === this.text.length) {
      this.text = '';
      this.pos = 0;
      this.ends.length = 0;
      this.times.length = 0;
    }
    return frame;
  }

  /** Feeds a chunk and takes every request out at once (the simple form, for clients and tests). */
  push(chunk: Buffer): RequestFrame[] {
    this.feed(chunk);
    const frames: RequestFrame[] = [];
    for (let frame = this.next(); frame; frame = this.next()) frames.push(frame);
    return frames;
  }

  private finish(): RequestFrame {
    this.finished = true;
    this.text = '';
    this.pos = 0;
    this.ends.length = 0;
    this.times.length = 0;
    return TOO_LONG;
  }
}

const TOO_LONG: RequestFrame = { kind: 'too_long' };

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

/** The message of `unavailable` while a server drains. */
export const SHUTTING_DOWN = 'server shutting down';

/** A frame's answer without computing anything: the error line to send. */
export interface Refusal {
  code: ServerErrorCode;
  reply: string;
}

/**
 * The protocol's rules before any work, for every server: a too-long line, a request that
 * arrives while the server drains, and a line that is not an n in range get their error line;
 * anything else is the n to compute.
 */
export function admit(frame: RequestFrame, maxN: number, draining: boolean): number | Refusal {
  const refuse = (code: ServerErrorCode, message: string): Refusal => ({ code, reply: formatError(code, message) });
  if (frame.kind === 'too_long') return refuse('line_too_long', `more than ${MAX_LINE_BYTES} bytes without a newline`);
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

/** Splits a client's received bytes into reply lines. */
export class ReplyDecoder {
  private buffered = '';

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
