// The protocol module against every way TCP can split a frame: the whole stream as one chunk,
// byte by byte, and cut in two at every byte boundary (on a connection already in line mode);
// and the decoder's own accounting of what it holds, against the heap it really retains.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  MAX_BUFFERED_BYTES,
  MAX_LINE_BYTES,
  ReplyDecoder,
  RequestDecoder,
  admit,
  formatError,
  formatReply,
  parseReply,
  parseRequest,
  type RequestFrame,
} from '../services/server/protocol.js';
import { HIGH_WATER_BYTES } from '../services/server/connection.js';
import { RequestError } from '../services/lab/errors.js';

const STREAM = '6\n  12\t\r\n30\r\nabc\n\n-1\n';
const EXPECTED: RequestFrame[] = ['6', '  12\t', '30', 'abc', '', '-1'].map((text) => ({ kind: 'request', text }));

/** A decoder already in line mode, as every connection is after its first line. */
function lineModeDecoder(): RequestDecoder {
  const decoder = new RequestDecoder();
  assert.deepEqual(decoder.push(Buffer.from('1\n')), [{ kind: 'request', text: '1' }]);
  return decoder;
}

function feed(decoder: RequestDecoder, chunks: string[]): RequestFrame[] {
  return chunks.flatMap((chunk) => decoder.push(Buffer.from(chunk, 'latin1')));
}

describe('RequestDecoder in line mode', () => {
  it('decodes the stream as one chunk', () => {
    assert.deepEqual(feed(lineModeDecoder(), [STREAM]), EXPECTED);
  });

  it('decodes the stream byte by byte', () => {
    assert.deepEqual(feed(lineModeDecoder(), [...STREAM]), EXPECTED);
  });

  it('decodes the stream split in two at every byte boundary', () => {
    for (let cut = 1; cut < STREAM.length; cut++) {
      const frames = feed(lineModeDecoder(), [STREAM.slice(0, cut), STREAM.slice(cut)]);
      assert.deepEqual(frames, EXPECTED, `split at byte ${cut}`);
    }
  });

  it('decodes the stream split in three at every pair of boundaries', () => {
    for (let a = 1; a < STREAM.length - 1; a++) {
      for (let b = a + 1; b < STREAM.length; b++) {
        const frames = feed(lineModeDecoder(), [STREAM.slice(0, a), STREAM.slice(a, b), STREAM.slice(b)]);
        assert.deepEqual(frames, EXPECTED, `split at bytes ${a} and ${b}`);
      }
    }
  });

  it('accepts a line of exactly 64 bytes, split anywhere', () => {
    const line = `${' '.repeat(MAX_LINE_BYTES - 2)}12`;
    for (let cut = 1; cut <= line.length; cut++) {
      const frames = feed(lineModeDecoder(), [line.slice(0, cut), `${line.slice(cut)}\n`]);
      assert.deepEqual(frames, [{ kind: 'request', text: line }], `split at byte ${cut}`);
    }
  });

  it('reports too_long as soon as 65 bytes arrive without a newline, then nothing more', () => {
    const decoder = lineModeDecoder();
    assert.deepEqual(feed(decoder, ['5\n', '7'.repeat(MAX_LINE_BYTES)]), [{ kind: 'request', text: '5' }]);
    assert.deepEqual(feed(decoder, ['7']), [{ kind: 'too_long' }]);
    assert.deepEqual(feed(decoder, ['\n3\n']), []);
  });

  it('reports too_long for a long line that arrives with its newline in one chunk', () => {
    assert.deepEqual(feed(lineModeDecoder(), [`2\n${'1'.repeat(MAX_LINE_BYTES + 1)}\n4\n`]), [
      { kind: 'request', text: '2' },
      { kind: 'too_long' },
    ]);
  });
});

describe('RequestDecoder in legacy mode (clients that never send a newline)', () => {
  it("answers each chunk as one request, as the talk's recv(100) does", () => {
    const decoder = new RequestDecoder();
    assert.deepEqual(feed(decoder, ['30']), [{ kind: 'request', text: '30' }]);
    assert.deepEqual(feed(decoder, ['1']), [{ kind: 'request', text: '1' }]);
    assert.equal(decoder.inLineMode, false);
  });

  it('switches to line framing for good at the first newline', () => {
    const decoder = new RequestDecoder();
    assert.deepEqual(feed(decoder, ['30']), [{ kind: 'request', text: '30' }]);
    assert.deepEqual(feed(decoder, ['5\n2']), [{ kind: 'request', text: '5' }]);
    assert.equal(decoder.inLineMode, true);
    assert.deepEqual(feed(decoder, ['0']), []);
    assert.deepEqual(feed(decoder, ['\n']), [{ kind: 'request', text: '20' }]);
  });

  it('gives line_too_long to a chunk over 64 bytes', () => {
    const decoder = new RequestDecoder();
    assert.deepEqual(feed(decoder, ['1'.repeat(MAX_LINE_BYTES)]), [{ kind: 'request', text: '1'.repeat(MAX_LINE_BYTES) }]);
    assert.deepEqual(feed(decoder, ['1'.repeat(MAX_LINE_BYTES + 1)]), [{ kind: 'too_long' }]);
    assert.deepEqual(feed(decoder, ['1']), []);
  });
});

describe('RequestDecoder: what it holds, and for how long', () => {
  // The heap a decoder retains, measured with the garbage collector run before and after.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const DECODERS = 200;

  /**
   * Feeds DECODERS decoders copies of `chunk` as a server does (connection.ts): until one counts
   * HIGH_WATER_BYTES, where the server stops reading, or `most` chunks. The heap each retains,
   * and what it says it holds.
   */
  function heldBy(lineMode: boolean, chunk: string, most: number) {
    const buffers = Array.from({ length: most }, () => Buffer.from(chunk, 'latin1'));
    const fill = (count: number) => {
      const decoders = Array.from({ length: count }, () => (lineMode ? lineModeDecoder() : new RequestDecoder()));
      let chunks = 0;
      for (const decoder of decoders) {
        chunks = 0;
        while (chunks < most && decoder.bufferedBytes < HIGH_WATER_BYTES)
          decoder.feed(buffers[chunks]!, 1.7e12 + chunks++ * 0.37);
      }
      return { decoders, chunks };
    };
    fill(2); // compiled before the measurement, not during it
    gc();
    gc();
    const before = heapInUse();
    const { decoders, chunks } = fill(DECODERS);
    gc();
    gc();
    const retained = (heapInUse() - before) / DECODERS;
    return { retained, counted: decoders[0]!.bufferedBytes, chunks };
  }

  /** Objects on the heap (not code, which the compiler adds and drops as it likes). */
  function heapInUse(): number {
    return getHeapSpaceStatistics()
      .filter((space) => !space.space_name.includes('code'))
      .reduce((sum, space) => sum + space.space_used_size, 0);
  }

  // The figures: 16 KiB received as 2-byte chunks retained 605 KB in line mode while the
  // decoder counted 16 KiB; 8,192 legacy bytes retained 719 KB while it counted none (so a server
  // never stopped reading).
  for (const [mode, chunk, most] of [
    ['line mode', '1\n', 8192],
    ['line mode', '12', 8192],
    ['line mode', '7', 16384],
    ['legacy mode', '12', 4096],
    ['legacy mode', '1', 8192],
  ] as const) {
    it(`${mode}: chunks of ${JSON.stringify(chunk)} up to the high-water mark retain no more heap than bufferedBytes counts`, () => {
      const { retained, counted, chunks } = heldBy(mode === 'line mode', chunk, most);
      const summary = `${chunks} chunks (${chunks * chunk.length} bytes) retained ${Math.round(retained)} bytes per decoder; bufferedBytes ${counted}`;
      console.log(`${mode}, chunks of ${JSON.stringify(chunk)}: ${summary}`);
      // The decoder object and its arrays' headers come on top of what it holds.
      assert.ok(retained <= counted + 2048, `the decoder under-counts what it holds: ${summary}`);
      assert.ok(counted >= HIGH_WATER_BYTES, `a server would never stop reading: ${summary}`);
    });
  }

  it('refuses input_overflow past MAX_BUFFERED_BYTES, after the requests complete before it, then takes nothing more', () => {
    const decoder = lineModeDecoder();
    decoder.feed(Buffer.from('5\n'));
    let fed = 0;
    while (decoder.bufferedBytes <= MAX_BUFFERED_BYTES && fed < 1_000_000) {
      decoder.feed(Buffer.from('7\n'));
      fed += 1;
    }
    const held = decoder.bufferedBytes;
    decoder.feed(Buffer.from('8\n'));
    assert.equal(decoder.bufferedBytes, held, 'nothing more taken once past the limit');
    const frames = [];
    for (let frame = decoder.next(); frame; frame = decoder.next()) frames.push(frame);
    assert.deepEqual(frames[0], { kind: 'request', text: '5' });
    assert.equal(frames.length, fed + 2, `${fed} lines of 7 fed before the limit`);
    assert.deepEqual(frames.at(-2), { kind: 'request', text: '7' });
    assert.deepEqual(frames.at(-1), { kind: 'overflow' });
    assert.match((admit({ kind: 'overflow' }, 40, false) as { reply: string }).reply, /^error: input_overflow \S.*\n$/);
  });

  it('says since when an unfinished line has waited, in line mode only', () => {
    const legacy = new RequestDecoder();
    legacy.feed(Buffer.from('3'), 5);
    assert.equal(legacy.partialLineAt, undefined, 'a legacy chunk is a whole request');
    const decoder = lineModeDecoder();
    assert.equal(decoder.partialLineAt, undefined);
    decoder.feed(Buffer.from('1\n2'), 10);
    assert.equal(decoder.partialLineAt, 10);
    decoder.feed(Buffer.from('3'), 20);
    assert.equal(decoder.partialLineAt, 10, 'from its first byte, whatever follows');
    decoder.feed(Buffer.from('\n4'), 30);
    assert.equal(decoder.partialLineAt, 30, 'the next line begun in the chunk that finished this one');
    decoder.feed(Buffer.from('\n'), 40);
    assert.equal(decoder.partialLineAt, undefined);
    assert.deepEqual(
      [decoder.next(), decoder.receivedAt, decoder.next(), decoder.receivedAt, decoder.next(), decoder.receivedAt],
      [{ kind: 'request', text: '1' }, 10, { kind: 'request', text: '23' }, 30, { kind: 'request', text: '4' }, 40],
    );
  });

  it('expires an unfinished line: the lines before it are answered, then line_timeout, then nothing more', () => {
    const decoder = lineModeDecoder();
    decoder.feed(Buffer.from('6\n2'), 1);
    decoder.expire(1500);
    decoder.feed(Buffer.from('\n9\n'), 2);
    assert.deepEqual(
      [decoder.next(), decoder.next(), decoder.next()],
      [{ kind: 'request', text: '6' }, { kind: 'line_timeout', ms: 1500 }, undefined],
    );
    assert.equal(decoder.partialLineAt, undefined);
    assert.match(
      (admit({ kind: 'line_timeout', ms: 1500 }, 40, false) as { reply: string }).reply,
      /^error: line_timeout .*1500 ms/,
    );
    const finished = lineModeDecoder();
    finished.expire(1500);
    assert.deepEqual(finished.push(Buffer.from('4\n')), [{ kind: 'request', text: '4' }], 'no unfinished line: nothing expires');
  });
});

describe('parseRequest', () => {
  const code = (text: string, maxN = 40) => {
    try {
      parseRequest(text, maxN);
      return 'ok';
    } catch (error) {
      assert.ok(error instanceof RequestError);
      assert.doesNotMatch(error.message, /\n/);
      return error.code;
    }
  };

  it('accepts decimal integers with spaces and tabs around them', () => {
    assert.equal(parseRequest('6', 40), 6);
    assert.equal(parseRequest(' \t30 \t', 40), 30);
    assert.equal(parseRequest('0', 40), 0);
    assert.equal(parseRequest('+7', 40), 7);
    assert.equal(parseRequest('-0', 40), 0);
    assert.equal(parseRequest('040', 40), 40);
  });

  it('answers bad_request for anything that is not an integer', () => {
    for (const text of ['', ' ', 'abc', '1.5', '1e3', '0x10', '6 7', '٣', '6a', '--1']) {
      assert.equal(code(text), 'bad_request', JSON.stringify(text));
    }
  });

  it('answers out_of_range outside 0..FIB_MAX_N', () => {
    assert.equal(code('-1'), 'out_of_range');
    assert.equal(code('41'), 'out_of_range');
    assert.equal(code('40'), 'ok');
    assert.equal(code('11', 10), 'out_of_range');
    assert.equal(code('99999999999999999999999999'), 'out_of_range');
  });
});

describe('admit', () => {
  it('answers a frame without work where the protocol says so, else gives the n to compute', () => {
    const request = (text: string): RequestFrame => ({ kind: 'request', text });
    assert.equal(admit(request(' 7'), 40, false), 7);
    assert.equal((admit({ kind: 'too_long' }, 40, false) as { code: string }).code, 'line_too_long');
    assert.equal((admit(request('7'), 40, true) as { code: string }).code, 'unavailable');
    assert.equal((admit(request('x'), 40, false) as { code: string }).code, 'bad_request');
    assert.match((admit(request('41'), 40, false) as { reply: string }).reply, /^error: out_of_range .*\n$/);
  });
});

describe('replies', () => {
  it('formats values and errors as single lines', () => {
    assert.equal(formatReply(832040), 'fib: 832040\n');
    assert.equal(formatError('bad_request', 'two\nlines'), 'error: bad_request two lines\n');
  });

  it("parses replies, errors and bare numbers (the talk's own servers)", () => {
    assert.deepEqual(parseReply('fib: 8'), { ok: true, value: '8' });
    assert.deepEqual(parseReply('fib: 8\r'), { ok: true, value: '8' });
    assert.deepEqual(parseReply('error: out_of_range n must be from 0 to 40, got 41'), {
      ok: false,
      code: 'out_of_range',
      message: 'n must be from 0 to 40, got 41',
    });
    assert.equal(parseReply('8').ok, false);
    assert.deepEqual(parseReply('8', true), { ok: true, value: '8' });
    assert.equal((parseReply('error: no_such_code x') as { code: string }).code, 'bad_reply');
  });

  it('splits reply lines however they arrive', () => {
    const stream = 'fib: 1\nfib: 832040\nerror: bad_request x\n';
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new ReplyDecoder();
      const lines = [...decoder.push(Buffer.from(stream.slice(0, cut))), ...decoder.push(Buffer.from(stream.slice(cut)))];
      assert.deepEqual(lines, ['fib: 1', 'fib: 832040', 'error: bad_request x'], `split at ${cut}`);
    }
  });

  it('tells a chunk that is exactly one ok reply, and nothing else, without decoding it', () => {
    const decoder = new ReplyDecoder();
    for (const reply of ['fib: 1\n', 'fib: 832040\n']) assert.ok(decoder.isOneOkReply(Buffer.from(reply)), reply);
    for (const other of [
      'fib: 1',
      'fib: \n',
      'fib: 1\r\n',
      'fib: 1\nfib: 1\n',
      'fib: x\n',
      'fib:  1\n',
      'error: bad_request x\n',
      '1\n',
      '',
    ])
      assert.ok(!decoder.isOneOkReply(Buffer.from(other)), JSON.stringify(other));
    // Part of an error line is buffered: a chunk that looks like an ok reply is the end of that line.
    assert.deepEqual(decoder.push(Buffer.from('error: bad_request ')), []);
    assert.ok(!decoder.isOneOkReply(Buffer.from('fib: 1\n')));
    assert.deepEqual(decoder.push(Buffer.from('fib: 1\n')), ['error: bad_request fib: 1']);
  });
});
