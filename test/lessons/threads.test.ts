// threads' lessons: a thread per connection is started and ended with its connection (no leak
// of threads or memory over many cycles), and two connections compute in parallel on two cores.

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestClient, loopRequests, metricsOf, poll, processStatus, sample, startVariant } from '../helpers.js';

const MB = 1024 * 1024;

describe('lesson: threads', () => {
  it("ends each connection's thread with it: after 500 cycles threads are back to baseline and memory has levelled off", async () => {
    const server = await startVariant('threads');
    const pid = server.child.pid!;
    try {
      const baseline = processStatus(pid);
      const rss: number[] = [];
      for (let cycle = 1; cycle <= 500; cycle++) {
        const client = await TestClient.connect(server.port);
        assert.equal(await client.ask('1'), 'fib: 1');
        client.close();
        await client.closedPromise;
        if (cycle % 100 === 0) {
          await sleep(100);
          rss.push(processStatus(pid).rssBytes);
        }
      }
      const { value: workers } = await poll(
        async () => sample(await metricsOf(server), 'fib_workers'),
        (value) => value === 0,
        { timeoutMs: 2500, intervalMs: 50 },
      );
      const after = processStatus(pid);
      const shown = `threads ${baseline.threads} -> ${after.threads}; RSS every 100 cycles (MB): ${rss.map((b) => (b / MB).toFixed(1)).join(', ')}`;
      console.log(`threads: ${shown}`);
      assert.equal(workers, 0, `fib_workers after the cycles: ${shown}`);
      assert.ok(after.threads <= baseline.threads + 1, `OS threads not back to baseline: ${shown}`);
      // A leak of even 20 KB a cycle would add 4 MB over the last 200 cycles.
      assert.ok(rss[4]! - rss[2]! < 4 * MB, `memory still growing over the last 200 cycles: ${shown}`);
    } finally {
      await server.stop();
    }
  });

  it(
    'with two cores, two clients looping fib(27) get at least 1.3x the throughput of one',
    { skip: availableParallelism() < 2 && 'needs 2 CPUs' },
    async () => {
      const server = await startVariant('threads');
      try {
        await loopRequests(server.port, 27, 300); // warm up
        const ms = 2000;
        const one = await loopRequests(server.port, 27, ms);
        const two = (await Promise.all([loopRequests(server.port, 27, ms), loopRequests(server.port, 27, ms)])).reduce(
          (a, b) => a + b,
        );
        const ratio = two / one;
        console.log(`threads: fib(27) in ${ms} ms: one client ${one}, two clients ${two} (${ratio.toFixed(2)}x)`);
        assert.ok(ratio >= 1.3, `two clients got ${two} replies, one got ${one}: ${ratio.toFixed(2)}x, expected >= 1.3x`);
      } finally {
        await server.stop();
      }
    },
  );
});
