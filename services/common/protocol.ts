// The fib wire protocol (LAB-SPEC section 2), in one place: request framing (strict lines, and
// the per-chunk framing of the talk's clients that never send a newline), request parsing,
// reply and error formatting, and the client side's reply decoding. Every variant and the load
// generator use this module; nothing else frames or formats protocol lines.

import { RequestError, isServerErrorCode, type ServerErrorCode } from './errors.js';

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
 * Splits a connection's byte stream into requests.
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
  private buffered = '';
  private finished = false;

  /** Whether a newline has been seen on this connection (strict line framing). */
  get inLineMode(): boolean {
    return this.lineMode;
  }

  push(chunk: Buffer): RequestFrame[] {
    if (this.finished || chunk.length === 0) return [];
    const text = chunk.toString('latin1');
    if (!this.lineMode) {
      if (text.indexOf('\n') === -1) {
        if (text.length > MAX_LINE_BYTES) return this.finish();
        return [{ kind: 'request', text: stripCR(text) }];
      }
      this.lineMode = true;
    }
    const frames: RequestFrame[] = [];
    let data = this.buffered + text;
    let start = 0;
    for (;;) {
      const end = data.indexOf('\n', start);
      if (end === -1) break;
      if (end - start > MAX_LINE_BYTES) {
        frames.push(...this.finish());
        return frames;
      }
      frames.push({ kind: 'request', text: stripCR(data.slice(start, end)) });
      start = end + 1;
    }
    data = data.slice(start);
    if (data.length > MAX_LINE_BYTES) {
      frames.push(...this.finish());
      return frames;
    }
    this.buffered = data;
    return frames;
  }

  private finish(): RequestFrame[] {
    this.finished = true;
    this.buffered = '';
    return [{ kind: 'too_long' }];
  }
}

function stripCR(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

const INTEGER = /^[ \t]*([+-]?)([0-9]+)[ \t]*$/;

/**
 * Parses one request's text into n, or throws a RequestError (`bad_request`, `out_of_range`).
 */
export function parseRequest(text: string, maxN: number): number {
  const match = INTEGER.exec(text);
  if (!match) {
    throw new RequestError('bad_request', `expected an integer n, got ${quote(text)}`);
  }
  const [, sign, digits] = match as unknown as [string, string, string];
  const n = Number(digits);
  if ((sign === '-' && n !== 0) || n > maxN) {
    throw new RequestError('out_of_range', `n must be from 0 to ${maxN}, got ${sign}${digits}`);
  }
  return n;
}

/** A short, printable, single-line rendering of what the client sent. */
function quote(text: string): string {
  return JSON.stringify(text.length > 20 ? `${text.slice(0, 20)}...` : text);
}

/** The message of `unavailable` while a server drains. */
export const SHUTTING_DOWN = 'server shutting down';

/** A frame's answer without computing anything (an error line), or the n to compute. */
export type Admission = { n: number } | { code: ServerErrorCode; reply: string };

/**
 * The protocol's rules before any work, for every server: a too-long line, a request that
 * arrives while the server drains, and a line that is not an n in range get their error line.
 */
export function admit(frame: RequestFrame, maxN: number, draining: boolean): Admission {
  const refuse = (code: ServerErrorCode, message: string): Admission => ({ code, reply: formatError(code, message) });
  if (frame.kind === 'too_long') return refuse('line_too_long', `more than ${MAX_LINE_BYTES} bytes without a newline`);
  if (draining) return refuse('unavailable', SHUTTING_DOWN);
  try {
    return { n: parseRequest(frame.text, maxN) };
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
