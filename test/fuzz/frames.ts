// The fuzz harness's sessions: what one client connection does, generated from a seeded PRNG.
// Random and adversarial request frames (valid numbers dressed in blanks, signs, zeros and
// CRs; numbers out of range; garbage bytes; lines at and over the 64-byte limit; legacy chunks
// with no newline; writes of more than 64 KiB), cut into writes at random byte boundaries and
// pipelined to a random depth, floods of 1- and 2-byte writes, lines trickled a byte at a time
// and finished or left unfinished, and ended in every way a client can end: reading every
// reply, half-closing mid-line, destroying mid-request, or never sending a byte.

import { type Prng } from './prng.js';
import { LINE_LIMIT } from './model.js';

/** The largest n a fuzzed valid request asks for: cheap on every variant. */
export const FUZZ_MAX_N = 25;

export type SessionKind =
  'lines' | 'legacy' | 'overlong' | 'half-close' | 'abrupt' | 'silent' | 'giant' | 'tiny-chunks' | 'partial-line';

export interface Write {
  bytes: Buffer;
  /** Wait for every reply due so far before the next write (always so in legacy mode). */
  awaitReplies: boolean;
  /** A pause after the write, so that the next one tends to arrive as its own segment. */
  pauseMs: number;
}

export type Ending =
  /** Read every reply, then close. */
  | { kind: 'read-all' }
  /** Half-close after the last write (FIN), then read what comes until the server closes. */
  | { kind: 'half-close' }
  /** Destroy the socket once `afterReplies` replies have come (0: right after the last write). */
  | { kind: 'destroy'; afterReplies: number }
  /** After the line_too_long reply, write these bytes (ignored by the server), then half-close. */
  | { kind: 'write-after-too-long'; bytes: Buffer };

export interface Session {
  /** `client.index`: with the run's seed, all it takes to generate this session again. */
  id: string;
  kind: SessionKind;
  writes: Write[];
  ending: Ending;
  /** Request frames in the writes (lines and legacy chunks, valid or not). */
  frames: number;
  /** The last line is left unfinished on purpose: the server answers `line_timeout` after LINE_TIMEOUT_MS. */
  abandonsLine?: boolean;
}

const weights: Record<SessionKind, number> = {
  lines: 40,
  legacy: 12,
  overlong: 12,
  'half-close': 12,
  abrupt: 12,
  silent: 6,
  giant: 6,
  'tiny-chunks': 8,
  'partial-line': 8,
};

/** The longest pause between two bytes of a line trickled and finished: far under the fuzzed LINE_TIMEOUT_MS. */
const TRICKLE_PAUSE_MS = 40;

export function generateSession(prng: Prng, id: string): Session {
  const kind = prng.weighted(weights);
  switch (kind) {
    case 'lines': {
      const lines = requestLines(prng, prng.int(1, 40));
      return { id, kind, writes: splitLines(prng, lines.join('')), ending: { kind: 'read-all' }, frames: lines.length };
    }
    case 'legacy': {
      const chunks = Array.from({ length: prng.int(1, 4) }, () => legacyChunk(prng));
      const writes: Write[] = chunks.map((bytes) => ({ bytes, awaitReplies: true, pauseMs: 0 }));
      let frames = chunks.length;
      const finish = prng.int(0, 2);
      if (finish === 1) {
        const lines = requestLines(prng, prng.int(1, 10));
        writes.push(...splitLines(prng, lines.join('')));
        frames += lines.length;
      } else if (finish === 2) {
        writes.push({ bytes: noNewline(prng, prng.int(LINE_LIMIT + 1, 300)), awaitReplies: true, pauseMs: 0 });
        frames += 1;
      }
      return { id, kind, writes, ending: { kind: 'read-all' }, frames };
    }
    case 'overlong': {
      const before = requestLines(prng, prng.int(0, 8));
      const overlong = noNewline(prng, prng.chance(0.3) ? LINE_LIMIT + 1 : prng.int(LINE_LIMIT + 1, 400));
      const after = prng.chance(0.5) ? `\n${requestLines(prng, prng.int(1, 4)).join('')}` : '';
      const text = Buffer.concat([Buffer.from(before.join(''), 'latin1'), overlong, Buffer.from(after, 'latin1')]);
      const ending: Ending = prng.chance(0.5)
        ? { kind: 'write-after-too-long', bytes: Buffer.from(requestLines(prng, prng.int(1, 3)).join(''), 'latin1') }
        : { kind: 'read-all' };
      return { id, kind, writes: splitLines(prng, text), ending, frames: before.length + 1 };
    }
    case 'half-close': {
      const lines = requestLines(prng, prng.int(1, 12));
      const tail = prng.chance(0.7) ? requestLine(prng).slice(0, prng.int(1, 8)) : '';
      return { id, kind, writes: splitLines(prng, lines.join('') + tail), ending: { kind: 'half-close' }, frames: lines.length };
    }
    case 'abrupt': {
      const lines = requestLines(prng, prng.int(1, 20), 0.3);
      return {
        id,
        kind,
        writes: splitLines(prng, lines.join('')),
        ending: { kind: 'destroy', afterReplies: prng.int(0, lines.length - 1) },
        frames: lines.length,
      };
    }
    case 'silent':
      return {
        id,
        kind,
        writes: [],
        ending: prng.chance(0.5) ? { kind: 'half-close' } : { kind: 'destroy', afterReplies: 0 },
        frames: 0,
      };
    case 'tiny-chunks': {
      // Line framing: up to 200 lines in 1- and 2-byte writes, pipelined. Legacy framing: 1- and
      // 2-byte chunks, each awaited (each is a request), then perhaps lines in tiny writes.
      const writes: Write[] = [];
      let frames = 0;
      if (prng.chance(0.5)) {
        const chunks = Array.from({ length: prng.int(5, 40) }, () => legacyChunk(prng).subarray(0, prng.int(1, 2)));
        writes.push(...chunks.map((bytes) => ({ bytes, awaitReplies: true, pauseMs: 0 })));
        frames += chunks.length;
      }
      if (writes.length === 0 || prng.chance(0.5)) {
        const lines = requestLines(prng, prng.int(10, 200));
        writes.push(...tinyWrites(prng, lines.join('')));
        frames += lines.length;
      }
      return { id, kind, writes, ending: { kind: 'read-all' }, frames };
    }
    case 'partial-line': {
      // A line trickled a byte at a time, after legacy chunks or lines (both framings), then
      // finished, or left unfinished until the server gives up on it (line_timeout, then closes).
      const writes: Write[] = [];
      let frames = 0;
      if (prng.chance(0.5)) {
        const chunks = Array.from({ length: prng.int(1, 3) }, () => legacyChunk(prng));
        writes.push(...chunks.map((bytes) => ({ bytes, awaitReplies: true, pauseMs: 0 })));
        frames += chunks.length;
      }
      const before = requestLines(prng, prng.int(1, 6));
      frames += before.length;
      const line = requestLine(prng).slice(0, 8) || '7';
      const abandons = prng.chance(0.5);
      const trickled = abandons ? line.slice(0, prng.int(1, line.length)) : line;
      // The write that switches to line framing (or goes on with it) ends with the line's first byte.
      writes.push({
        bytes: Buffer.from(before.join('') + trickled[0], 'latin1'),
        awaitReplies: true,
        pauseMs: prng.int(1, TRICKLE_PAUSE_MS),
      });
      for (const byte of trickled.slice(1)) {
        writes.push({ bytes: Buffer.from(byte, 'latin1'), awaitReplies: false, pauseMs: prng.int(1, TRICKLE_PAUSE_MS) });
      }
      if (!abandons) {
        writes.push({ bytes: Buffer.from(prng.pick(['\n', '\r\n']), 'latin1'), awaitReplies: false, pauseMs: 0 });
        frames += 1;
      }
      return { id, kind, writes, ending: { kind: 'read-all' }, frames, abandonsLine: abandons };
    }
    case 'giant': {
      // More than one 64 KiB socket read with no newline: the server reads it in two chunks.
      const prefix = prng.chance(0.5) ? requestLines(prng, prng.int(1, 3)).join('') : '';
      const giant = prng.chance(0.5) ? Buffer.alloc(prng.int(65_537, 70_000), '1') : noNewline(prng, prng.int(65_537, 70_000));
      const writes: Write[] = prefix ? [{ bytes: Buffer.from(prefix, 'latin1'), awaitReplies: true, pauseMs: 0 }] : [];
      writes.push({ bytes: giant, awaitReplies: false, pauseMs: 0 });
      return { id, kind, writes, ending: { kind: 'half-close' }, frames: (prefix.match(/\n/g)?.length ?? 0) + 1 };
    }
  }
}

/** `count` request lines, each with its terminator; `slow` is the share asking fib(20..25). */
function requestLines(prng: Prng, count: number, slow = 0.05): string[] {
  return Array.from({ length: count }, () =>
    prng.chance(slow) ? `${prng.int(20, FUZZ_MAX_N)}\n` : requestLine(prng) + prng.pick(['\n', '\n', '\n', '\r\n', '\r\r\n']),
  );
}

/** One request's text, without its terminator (may hold any byte but a newline). */
function requestLine(prng: Prng): string {
  switch (prng.weighted({ valid: 60, outOfRange: 12, bad: 20, boundary: 8 })) {
    case 'valid':
      return dressed(prng, String(prng.int(0, 19)));
    case 'outOfRange':
      return dressed(
        prng,
        prng.pick([
          String(prng.int(41, 1_000_000)),
          `-${prng.int(1, 1_000_000)}`,
          '9'.repeat(prng.int(7, 40)),
          `+${prng.int(79, 99)}`,
        ]),
      );
    case 'bad':
      return prng.pick([
        '',
        'abc',
        '1.5',
        '0x10',
        '1 2',
        '+-3',
        '- 4',
        '1e3',
        'six',
        '\u0000',
        '\u00ff\u00fe',
        '٣', // an Arabic-Indic digit: not ASCII
        randomText(prng, prng.int(1, 20)),
      ]);
    case 'boundary': {
      // Exactly at the limit (answered) or one byte over (line_too_long), in blanks around a digit.
      const length = prng.pick([LINE_LIMIT, LINE_LIMIT, LINE_LIMIT - 1, LINE_LIMIT + 1]);
      return ' '.repeat(length - 1) + String(prng.int(0, 9));
    }
  }
  return '';
}

/** A number with blanks around it, a sign, leading zeros. */
function dressed(prng: Prng, number: string): string {
  const blanks = () => (prng.chance(0.3) ? prng.pick([' ', '\t', '  ', ' \t ']) : '');
  const sign = number.startsWith('-') ? '' : prng.chance(0.1) ? '+' : '';
  const zeros = prng.chance(0.1) ? '0'.repeat(prng.int(1, 3)) : '';
  return `${blanks()}${sign}${zeros}${number}${blanks()}`;
}

/** A legacy request: one chunk with no newline, at most 64 bytes, maybe a trailing CR. */
function legacyChunk(prng: Prng): Buffer {
  const text = prng.chance(0.7) ? dressed(prng, String(prng.int(0, 19))) : requestLine(prng);
  const chunk = (text + (prng.chance(0.2) ? '\r' : '')).slice(0, LINE_LIMIT);
  return Buffer.from(chunk.length > 0 ? chunk : '7', 'latin1');
}

/** Random bytes other than a newline. */
function noNewline(prng: Prng, length: number): Buffer {
  const bytes = prng.bytes(length);
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a) bytes[i] = 0x20;
  return bytes;
}

function randomText(prng: Prng, length: number): string {
  return noNewline(prng, length).toString('latin1');
}

/**
 * Cuts line-mode bytes into writes of 1 and 2 bytes, not awaited. The first write holds the first
 * line whole, so the server sees line framing from its first chunk.
 */
function tinyWrites(prng: Prng, text: string): Write[] {
  const bytes = Buffer.from(text, 'latin1');
  const writes: Write[] = [];
  let start = bytes.indexOf(0x0a) + 1;
  writes.push({ bytes: bytes.subarray(0, start), awaitReplies: false, pauseMs: 0 });
  while (start < bytes.length) {
    const end = Math.min(bytes.length, start + prng.int(1, 2));
    writes.push({ bytes: bytes.subarray(start, end), awaitReplies: false, pauseMs: prng.chance(0.02) ? 1 : 0 });
    start = end;
  }
  return writes;
}

/**
 * Cuts line-mode bytes into writes at random boundaries. The first write holds the first
 * newline, so the server sees line framing from its first chunk (a connection's first chunk
 * decides between legacy and line mode); later cuts may fall anywhere, down to single bytes.
 */
function splitLines(prng: Prng, text: string | Buffer): Write[] {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  const firstNewline = bytes.indexOf(0x0a);
  if (firstNewline === -1) return bytes.length > 0 ? [{ bytes, awaitReplies: false, pauseMs: 0 }] : [];
  const largest = prng.pick([1, 3, 16, 200, bytes.length]);
  const awaitShare = prng.pick([0, 0.3, 1]);
  const writes: Write[] = [];
  let at = Math.min(bytes.length, firstNewline + 1 + prng.int(0, largest));
  let start = 0;
  while (start < bytes.length) {
    writes.push({
      bytes: bytes.subarray(start, at),
      awaitReplies: prng.chance(awaitShare),
      pauseMs: prng.chance(0.1) ? prng.int(1, 3) : 0,
    });
    start = at;
    at = Math.min(bytes.length, at + prng.int(1, largest));
  }
  return writes;
}
