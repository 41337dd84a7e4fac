// The queue variant as it scales, with real processes and a real Redis: a worker that joins late
// takes its share of the work; the request stream stays bounded under continuous load; a client
// that leaves mid-request stops the worker computing it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestClient, cpuSeconds, metricsOf, sample } from '../helpers.js';
import { formatTally, loadAndTally, metricOf, startQueue, waitFor } from './helpers.js';

describe('queue: scaling', () => {
  it('a worker joining late takes work', { timeout: 120_000 }, async () => {
    const queue = await startQueue({ workers: 1 });
    try {
      let stopping = false;
      const load = loadAndTally(queue.front.port, { connections: 4, depth: 2, ns: [24, 25, 26], stop: () => stopping });
      const answeredBy = async (worker: string) => sample(await metricsOf(queue.front), 'fib_worker_requests_total', { worker });
      await waitFor('the first worker to answer', async () => (await answeredBy('w1')) >= 50);
      const late = await queue.addWorker({ WORKER_NAME: 'late' });
      const w1AtJoin = await answeredBy('w1');
      await waitFor('the late worker to take work', async () => (await answeredBy('late')) >= 100);
      stopping = true;
      const tally = await load;
      const byLate = await answeredBy('late');
      const byW1 = (await answeredBy('w1')) - w1AtJoin;
      const own = await metricOf(late.metricsPort, 'lab_queue_worker_jobs_total', { outcome: 'replied' });
      console.log(`queue late joiner: since it joined, late answered ${byLate}, w1 ${byW1}; ${formatTally(tally)}`);
      assert.ok(own >= 100, `the late worker's own counter: ${own}`);
      assert.ok(byLate >= byW1 / 4, `a real share of the work: late ${byLate} vs w1 ${byW1} since it joined`);
      assert.equal(tally.results, tally.sent, formatTally(tally));
      await waitFor('fib_workers to count both', async () => sample(await metricsOf(queue.front), 'fib_workers') === 2);
    } finally {
      await queue.stop();
    }
  });

  it(
    'keeps the request stream to the requests in flight under continuous load, and Redis memory flat',
    { timeout: 120_000 },
    async () => {
      const connections = 8;
      const depth = 10;
      const queue = await startQueue({ workers: 2 });
      const redis = queue.redis.client();
      try {
        const usedMemory = async () => Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
        const run = async (requests: number) => {
          let stopping = false;
          let answered = 0;
          const load = loadAndTally(queue.front.port, {
            connections,
            depth,
            ns: [1, 5, 10, 15],
            stop: () => stopping,
            onReply: () => void (answered += 1),
          });
          let longest = 0;
          while (answered < requests) {
            longest = Math.max(longest, await redis.xlen('lab:fib:requests'));
            await sleep(10);
          }
          stopping = true;
          return { tally: await load, longest, memory: await usedMemory() };
        };
        const first = await run(2000);
        const second = await run(20_000);
        console.log(
          `queue stream bound: longest ${first.longest} then ${second.longest} entries (${connections * depth} in flight at most); ` +
            `Redis used_memory ${first.memory} B after ${first.tally.sent} requests, ${second.memory} B after ${second.tally.sent} more; ${formatTally(second.tally)}`,
        );
        for (const { tally, longest } of [first, second]) {
          assert.ok(longest <= connections * depth, `longest stream ${longest} > ${connections * depth} requests in flight`);
          assert.equal(tally.results, tally.sent, formatTally(tally));
        }
        assert.ok(second.memory < first.memory * 1.25, `Redis memory grew from ${first.memory} to ${second.memory} B`);
        await waitFor('the stream to be empty once idle', async () => (await redis.xlen('lab:fib:requests')) === 0);
      } finally {
        await queue.stop();
      }
    },
  );

  it('stops computing for a client that left mid-request', { timeout: 60_000 }, async () => {
    // fib(44): seconds of CPU if it were left running, several heartbeats (at most 500 ms apart) on any machine.
    const queue = await startQueue({ workers: 1, frontEnv: { FIB_MAX_N: '44' } });
    const worker = queue.workers[0]!;
    try {
      const leaver = await TestClient.connect(queue.front.port);
      await leaver.write('44\n');
      await waitFor(
        'the worker to be computing',
        async () => (await metricOf(worker.metricsPort, 'lab_queue_worker_busy')) === 1,
      );
      leaver.reset();
      await waitFor(
        'the worker to stop the job',
        async () => (await metricOf(worker.metricsPort, 'lab_queue_worker_jobs_total', { outcome: 'cancelled' })) === 1,
      );
      const pid = worker.child.pid!;
      const before = cpuSeconds(pid);
      await sleep(1000);
      const used = cpuSeconds(pid) - before;
      assert.ok(used < 0.5, `${used.toFixed(2)} CPU seconds used by the worker in the second after it stopped the job`);
      const client = await TestClient.connect(queue.front.port);
      assert.equal(await client.ask('20'), 'fib: 6765');
      client.close();
    } finally {
      await queue.stop();
    }
  });
});
