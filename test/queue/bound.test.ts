// The request stream's bound (QUEUE_STREAM_MAX_LEN) held across fronts, with real processes and a
// real Redis: three `lab serve queue` fronts share one stream with no worker running, each gets
// many requests at once, and the stream never holds more than the bound. Every request is either
// refused `overloaded` at once or kept in the stream, and a worker started afterwards answers
// every one that was kept.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient, metricsOf, referenceFib, sample, startVariant, type RunningVariant } from '../helpers.js';
import { RedisProcess, startWorker, waitFor, type RunningWorker } from './helpers.js';

const FRONTS = 3;
/** Connections per front, one request each: a request refused is answered at once, whatever the others wait for. */
const REQUESTS_PER_FRONT = 300;
const BOUND = 100;

/** One request on its own connection, and the reply it got (null while it waits). */
interface Sent {
  front: number;
  n: number;
  client: TestClient;
  reply: string | null;
}

describe('queue: the stream bound across fronts', () => {
  it(
    `three fronts, no worker, QUEUE_STREAM_MAX_LEN ${BOUND}: the stream never holds more, the rest is refused overloaded, nothing kept is lost`,
    { timeout: 120_000 },
    async () => {
      const redis = await RedisProcess.start();
      const fronts: RunningVariant[] = [];
      const sent: Sent[] = [];
      let worker: RunningWorker | null = null;
      try {
        // A deadline no test run reaches: nothing leaves the stream until a worker takes it.
        const env = { REDIS_URL: redis.url, QUEUE_STREAM_MAX_LEN: String(BOUND), QUEUE_DEADLINE_MS: '600000' };
        for (let i = 0; i < FRONTS; i++) fronts.push(await startVariant('queue', env));
        // Every connection is open before any request goes out, and the requests go out in turn
        // to each front, so that the three add at the same time.
        const clients = await Promise.all(
          fronts.map((front) => Promise.all(Array.from({ length: REQUESTS_PER_FRONT }, () => TestClient.connect(front.port)))),
        );
        for (let index = 0; index < REQUESTS_PER_FRONT; index++) {
          for (let front = 0; front < FRONTS; front++)
            sent.push({ front, n: 5 + (index % 20), client: clients[front]![index]!, reply: null });
        }
        const inspector = redis.client();
        for (const request of sent) {
          void request.client.write(`${request.n}\n`);
          void request.client.line(600_000).then(
            (reply) => void (request.reply = reply),
            () => {},
          );
        }
        const refused = () => sent.filter((request) => request.reply !== null);
        const added = async () => streamInfo(await inspector.xinfo('STREAM', 'lab:fib:requests'));
        // Every request is decided once the refused ones plus the stream's entries account for all.
        await waitFor(
          'every request refused or in the stream',
          async () => refused().length + (await inspector.xlen('lab:fib:requests')) === sent.length,
          async () => `${refused().length} replies, ${await inspector.xlen('lab:fib:requests')} in the stream, of ${sent.length}`,
        );
        const stream = await added();
        const refusedReplies = refused();
        const accepted = sent.filter((request) => request.reply === null);
        const overloaded = refusedReplies.filter((request) => /^error: overloaded \S/.test(request.reply!));
        const frontMetrics = await Promise.all(fronts.map((front) => metricsOf(front)));
        const counted = frontMetrics.map((text) => sample(text, 'fib_requests_total', { outcome: 'overloaded' }));
        const perFront = fronts.map(
          (_, front) =>
            `front ${front + 1}: accepted ${accepted.filter((request) => request.front === front).length}, refused ${counted[front]}`,
        );
        console.log(
          `queue stream bound across ${FRONTS} fronts: bound ${BOUND}, ${sent.length} requests at once, stream length ${stream.length} ` +
            `(entries ever added ${stream.entriesAdded}); refused overloaded ${overloaded.length}; ${perFront.join('; ')}`,
        );
        assert.ok(
          stream.entriesAdded <= BOUND,
          `${stream.entriesAdded} entries added to the stream (length ${stream.length}), over QUEUE_STREAM_MAX_LEN ${BOUND}`,
        );
        assert.equal(stream.length, accepted.length, 'every request not refused is in the stream');
        assert.equal(
          overloaded.length,
          refusedReplies.length,
          `every refused request got overloaded: ${[...new Set(refusedReplies.map((request) => request.reply))].join(' | ')}`,
        );
        assert.equal(
          counted.reduce((sum, count) => sum + count, 0),
          overloaded.length,
          `fib_requests_total{outcome="overloaded"} of the fronts (${counted.join(', ')}) = the refusals the clients saw`,
        );
        // Each front's own gauge of the stream, at its next look (once a second), within the bound too.
        await waitFor('each front to report the stream', async () =>
          (await Promise.all(fronts.map((front) => metricsOf(front)))).every(
            (text) => sample(text, 'lab_queue_stream_entries') === stream.length,
          ),
        );

        // Nothing kept is lost: a worker now answers every accepted request, each with its own value.
        worker = await startWorker(redis.url, { WORKER_NAME: 'late' });
        await waitFor(
          'a reply to every accepted request',
          () => accepted.every((request) => request.reply !== null),
          () => `${accepted.filter((request) => request.reply !== null).length} of ${accepted.length} answered`,
        );
        const wrong = accepted.filter((request) => request.reply !== `fib: ${referenceFib(request.n)}`);
        assert.deepEqual(
          wrong.map((request) => `${request.n} -> ${request.reply}`),
          [],
          'every accepted request answered with its own value',
        );
        const ok = (await Promise.all(fronts.map((front) => metricsOf(front)))).map((text) =>
          sample(text, 'fib_requests_total', { outcome: 'ok' }),
        );
        assert.equal(
          ok.reduce((sum, count) => sum + count, 0),
          accepted.length,
          `fib_requests_total{outcome="ok"} of the fronts: ${ok.join(', ')}`,
        );
        await waitFor('the stream to be empty', async () => (await inspector.xlen('lab:fib:requests')) === 0);
      } finally {
        for (const request of sent) request.client.close();
        await worker?.stop('SIGKILL');
        await Promise.all(fronts.map((front) => front.stop('SIGKILL')));
        await redis.stop();
      }
    },
  );
});

/** The request stream's length and how many entries were ever added to it (XINFO STREAM, Redis 7). */
function streamInfo(reply: unknown): { length: number; entriesAdded: number } {
  const fields = reply as unknown[];
  const field = (name: string) => Number(fields[fields.indexOf(name) + 1]);
  return { length: field('length'), entriesAdded: field('entries-added') };
}
