// coroutines' lessons, the talk's last server: its generator scheduler hands each fib to a pool
// and waits on the future, so (1) beside one fib(30) hog its short requests keep flowing
// (collapse at most 3 with 2 workers, where `eventloop`, computing on its one thread, collapses
// by an order of magnitude and more), and (2) the scheduler never blocks on a fib: its
// event-loop delay stays far below a long fib's time while the pool computes, where
// `eventloop`'s grows to one. Both are ratios measured in the same run.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { EVENT_LOOP_SAMPLE_MS } from '../../services/lab/metrics.js';
import {
  loopRequests,
  measureCollapse,
  metricsOf,
  referenceFib,
  sample,
  startVariant,
  TestClient,
  type RunningVariant,
} from '../helpers.js';

/**
 * The hog of the event-loop delay lesson. Node samples the loop every EVENT_LOOP_SAMPLE_MS
 * (100 ms) and a sample is late by as much as the loop was blocked, so the hog must block for
 * much longer than the machine's own noise (tens of ms on a shared 2-core machine): fib(36),
 * 100 to 300 ms in Node, where fib(30) takes 5 to 10.
 */
const ELD_HOG_N = 36;
const ELD_MS = 4000;

/**
 * A client that asks for fib(n) again and again for `ms`, pausing between a reply and its next
 * request for a random part of the sampler's period, like a user who reads the answer first.
 * Surprising but measured: a client that asks again at once phase-locks the fibs to the
 * sampler. The sample due during a fib fires as it ends and the next is due 100 ms later, so
 * with fib(36) at 105 ms every sample waits 5 ms (one run read p99 11.5 ms beside 105 ms fibs)
 * and with 70 ms fibs every one waits 40. The pauses put the samples at random phases of the
 * fibs. Resolves with the count and the mean time per reply, pauses excluded.
 */
async function askWithPauses(port: number, n: number, ms: number): Promise<{ count: number; secondsPerReply: number }> {
  const client = await TestClient.connect(port);
  const expected = `fib: ${referenceFib(n)}`;
  const until = performance.now() + ms;
  let count = 0;
  let busy = 0;
  try {
    while (performance.now() < until) {
      const sent = performance.now();
      const reply = await client.ask(String(n));
      busy += performance.now() - sent;
      if (reply !== expected) throw new Error(`fib(${n}) answered ${JSON.stringify(reply)}`);
      count += 1;
      await setTimeout(Math.random() * EVENT_LOOP_SAMPLE_MS);
    }
  } finally {
    client.close();
  }
  return { count, secondsPerReply: busy / 1000 / count };
}

/**
 * The scheduler's event-loop delay p99 while one connection asks for fib(ELD_HOG_N) with pauses
 * and another loops fib(1), and the hog's time per fib in the same stretch. prom-client resets
 * its delay histogram at each scrape, so the scrape before the stretch starts it afresh; each
 * sample includes the sampling interval itself, which is taken off.
 */
async function delayBesideHog(server: RunningVariant): Promise<{ delayP99: number; hogSeconds: number; shown: string }> {
  await loopRequests(server.port, ELD_HOG_N, 1); // warm up: one fib computed
  await metricsOf(server); // resets the delay histogram
  const started = performance.now();
  const [hog, shorts] = await Promise.all([askWithPauses(server.port, ELD_HOG_N, ELD_MS), loopRequests(server.port, 1, ELD_MS)]);
  const elapsed = (performance.now() - started) / 1000;
  const text = await metricsOf(server);
  const delay = (q: string) => sample(text, `nodejs_eventloop_lag_${q}_seconds`) - EVENT_LOOP_SAMPLE_MS / 1000;
  const delayP99 = delay('p99');
  const hogSeconds = hog.secondsPerReply;
  const shown =
    `${server.variant}: event-loop delay p50 ${(delay('p50') * 1000).toFixed(1)}, p90 ${(delay('p90') * 1000).toFixed(1)}, p99 ${(delayP99 * 1000).toFixed(1)} ms beyond the ${EVENT_LOOP_SAMPLE_MS} ms sampling, ` +
    `fib(${ELD_HOG_N}) ${(hogSeconds * 1000).toFixed(0)} ms a reply (${hog.count} in ${elapsed.toFixed(1)} s), ${shorts} fib(1) beside`;
  return { delayP99, hogSeconds, shown };
}

describe('lesson: coroutines', () => {
  it('beside one fib(30) hog its fib(1) loop keeps most of its rate (collapse <= 3 with 2 workers)', async () => {
    const server = await startVariant('coroutines', { POOL_SIZE: '2' });
    try {
      const { ratio, shown } = await measureCollapse(server);
      console.log(shown);
      // A fib(1) costs a trip through the pool (IPC to a child, about 0.1 ms) whether or not a
      // pool process computes a fib(30): the hog takes the other process and a share of the 2
      // cores (1.0x to 1.6x seen; eventloop's is 50x and more). Bound 3: the issue's.
      assert.ok(ratio <= 3, `coroutines: the pool computes the hog, the scheduler keeps serving: ${shown}`);
    } finally {
      await server.stop();
    }
  });

  it("its scheduler never blocks on a fib: event-loop delay p99 under a quarter of a long fib's time, where eventloop's reaches half of one", async () => {
    const coroutines = await startVariant('coroutines', { POOL_SIZE: '2' });
    let ours;
    try {
      ours = await delayBesideHog(coroutines);
    } finally {
      await coroutines.stop();
    }
    const eventloop = await startVariant('eventloop');
    let theirs;
    try {
      theirs = await delayBesideHog(eventloop);
    } finally {
      await eventloop.stop();
    }
    const shown = `${ours.shown}; ${theirs.shown}`;
    console.log(shown);
    // The control: one thread that computes fib is blocked for whole fibs, and a sample that
    // falls into one at a random phase is late by what is left of it. p99 read 0.93x to 1.32x
    // of a fib in 10 runs (threshold 0.5x; before the pauses, phase-locked, 0.11x to 0.85x).
    assert.ok(theirs.delayP99 >= 0.5 * theirs.hogSeconds, `eventloop blocks on each fib: ${shown}`);
    // The scheduler only moves bytes and futures: its delay is the machine's noise (a few ms
    // quiet, up to ~30 ms on a shared machine) against a fib(36) of 100 ms and more.
    assert.ok(ours.delayP99 < 0.25 * ours.hogSeconds, `coroutines' scheduler must not block on a fib: ${shown}`);
  });
});
