// The lesson each variant exists to show, asserted on reply order (never on elapsed time):
// connection A pipelines `1` and `35`; once A's first reply is in, fib(35) has started; then
// connection B sends `1`. On `eventloop` B's reply can only come after A's fib(35) (one thread
// computes everything); on `threadpool` with two workers it comes before.

import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { TestClient, referenceFib, startVariant } from '../helpers.js';

interface Arrival {
  who: 'A: fib(35)' | 'B: fib(1)';
  reply: string;
  atMs: number;
}

async function longThenShort(variant: string, env: Record<string, string>): Promise<Arrival[]> {
  const server = await startVariant(variant, env);
  const a = await TestClient.connect(server.port);
  const b = await TestClient.connect(server.port);
  try {
    const arrivals: Arrival[] = [];
    const t0 = performance.now();
    await a.write('1\n35\n');
    assert.equal(await a.line(), 'fib: 1');
    const long = a.line(60_000).then((reply) => arrivals.push({ who: 'A: fib(35)', reply, atMs: performance.now() - t0 }));
    await b.write('1\n');
    const short = b.line(60_000).then((reply) => arrivals.push({ who: 'B: fib(1)', reply, atMs: performance.now() - t0 }));
    await Promise.all([long, short]);
    assert.deepEqual(arrivals.map((x) => x.reply).sort(), ['fib: 1', `fib: ${referenceFib(35)}`].sort());
    return arrivals;
  } finally {
    a.close();
    b.close();
    await server.stop();
  }
}

const show = (arrivals: Arrival[]) => arrivals.map((x) => `${x.who} at ${x.atMs.toFixed(1)} ms`).join(', then ');

describe('lessons', () => {
  it('eventloop: a short request waits behind a long one on another connection', async () => {
    const arrivals = await longThenShort('eventloop', {});
    console.log(`eventloop: ${show(arrivals)}`);
    assert.deepEqual(
      arrivals.map((x) => x.who),
      ['A: fib(35)', 'B: fib(1)'],
      `expected B after A's fib(35): ${show(arrivals)}`,
    );
  });

  it('threadpool with two workers: the short request is answered while the long one runs', async () => {
    const arrivals = await longThenShort('threadpool', { POOL_SIZE: '2' });
    console.log(`threadpool: ${show(arrivals)}`);
    assert.deepEqual(
      arrivals.map((x) => x.who),
      ['B: fib(1)', 'A: fib(35)'],
      `expected B before A's fib(35): ${show(arrivals)}`,
    );
  });
});
