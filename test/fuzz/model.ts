// The fuzz harness's model of the protocol (docs/protocol.md): from the bytes a client wrote,
// and how they were cut into writes, the replies a correct server sends, in order, and whether
// it closes. Written from the specification, independently of services/server/protocol.ts, on
// bytes rather than strings, so that a shared mistake does not hide in both.

import { referenceFib } from '../helpers.js';

/** A request line or legacy chunk longer than this, without a newline, is `line_too_long`. */
export const LINE_LIMIT = 64;

/**
 * Whether a client that half-closes (`printf '6\n' | nc -N`) still gets the replies of the
 * complete lines it sent. TCP's half-close exists for this; the harness holds servers to it.
 */
export const HALF_CLOSE_ANSWERED = true;

export type ExpectedReply =
  { kind: 'fib'; n: number } | { kind: 'error'; code: 'bad_request' | 'out_of_range' | 'line_too_long' | 'line_timeout' };

export interface Expectation {
  replies: ExpectedReply[];
  /** How many replies are due once writes 0..i have been read. */
  dueAfterWrite: number[];
  /** The last reply is line_too_long or line_timeout: the server closes after it and reads nothing more. */
  serverCloses: boolean;
}

const NEWLINE = 0x0a;
const CR = 0x0d;
const isBlank = (byte: number) => byte === 0x20 || byte === 0x09;
const isDigit = (byte: number) => byte >= 0x30 && byte <= 0x39;

/**
 * The replies to a connection's writes. The connection starts in legacy mode: every write with
 * no newline is one request (the caller waits for its reply before the next write, so a write
 * is a received chunk); the first write holding a newline switches to line framing for good.
 * `abandonsLine`: the client then waits, leaving the line it began unfinished, so the server
 * answers `line_timeout` once LINE_TIMEOUT_MS has passed, and closes.
 */
export function expectReplies(writes: readonly Buffer[], fibMaxN: number, abandonsLine = false): Expectation {
  const replies: ExpectedReply[] = [];
  const dueAfterWrite: number[] = [];
  let lineMode = false;
  let partial = 0; // bytes of the current unterminated line
  let line: number[] = [];
  let closed = false;
  for (const write of writes) {
    if (!closed && !lineMode && !write.includes(NEWLINE)) {
      if (write.length > LINE_LIMIT) {
        replies.push({ kind: 'error', code: 'line_too_long' });
        closed = true;
      } else {
        replies.push(answer(Buffer.from(write), fibMaxN));
      }
    } else if (!closed) {
      lineMode = true;
      for (const byte of write) {
        if (byte === NEWLINE) {
          replies.push(answer(Buffer.from(line), fibMaxN));
          line = [];
          partial = 0;
          continue;
        }
        line.push(byte);
        partial += 1;
        if (partial > LINE_LIMIT) {
          replies.push({ kind: 'error', code: 'line_too_long' });
          closed = true;
          break;
        }
      }
    }
    dueAfterWrite.push(replies.length);
  }
  if (abandonsLine && !closed && lineMode && line.length > 0) {
    replies.push({ kind: 'error', code: 'line_timeout' });
    closed = true;
  }
  return { replies, dueAfterWrite, serverCloses: closed };
}

/** The reply to one request's bytes (without the newline): one trailing CR is ignored. */
export function answer(request: Buffer, fibMaxN: number): ExpectedReply {
  let end = request.length;
  if (end > 0 && request[end - 1] === CR) end -= 1;
  let start = 0;
  while (start < end && isBlank(request[start]!)) start += 1;
  while (end > start && isBlank(request[end - 1]!)) end -= 1;
  let negative = false;
  if (start < end && (request[start] === 0x2b || request[start] === 0x2d)) {
    negative = request[start] === 0x2d;
    start += 1;
  }
  if (start === end) return { kind: 'error', code: 'bad_request' };
  for (let i = start; i < end; i++) if (!isDigit(request[i]!)) return { kind: 'error', code: 'bad_request' };
  while (start < end - 1 && request[start] === 0x30) start += 1; // leading zeros
  const n = end - start > 6 ? Infinity : Number(request.toString('latin1', start, end));
  if ((negative && n !== 0) || n > fibMaxN) return { kind: 'error', code: 'out_of_range' };
  return { kind: 'fib', n };
}

/** Whether a reply line is the expected one (an error's message is free text, its code is not). */
export function matches(line: string, expected: ExpectedReply): boolean {
  if (expected.kind === 'fib') return line === `fib: ${referenceFib(expected.n)}`;
  return line.startsWith(`error: ${expected.code} `) && line.length > `error: ${expected.code} `.length;
}

export function describeReply(expected: ExpectedReply): string {
  return expected.kind === 'fib' ? `fib: ${referenceFib(expected.n)}` : `error: ${expected.code} ...`;
}
