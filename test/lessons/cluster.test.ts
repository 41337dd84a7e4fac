// cluster's lessons: the primary's /metrics adds up its workers; a killed worker is replaced and
// takes only its own connections with it; and connections, not requests, are what is balanced.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestClient, childProcesses, loopRequests, metricsOf, poll, referenceFib, sample, startVariant } from '../helpers.js';

const workerCounts = (metrics: string) =>
  [0, 1].map((worker) => sample(metrics, 'fib_worker_requests_total', { worker: String(worker) }));

describe('lesson: cluster', () => {
  it("reports on the primary's /metrics the sum over all workers", async () => {
    const server = await startVariant('cluster', { WORKERS: '2' });
    try {
      const clients = await Promise.all(Array.from({ length: 4 }, () => TestClient.connect(server.port)));
      await Promise.all(
        clients.map(async (client, i) => {
          for (let j = 0; j < 25; j++) assert.equal(await client.ask(String((i + j) % 20)), `fib: ${referenceFib((i + j) % 20)}`);
          client.close();
        }),
      );
      const metrics = await metricsOf(server);
      const perWorker = workerCounts(metrics);
      const total = sample(metrics, 'fib_requests_total', { outcome: 'ok' });
      console.log(`cluster: 100 requests sent; fib_requests_total ${total}; per worker ${perWorker.join(' + ')}`);
      assert.equal(total, 100, 'fib_requests_total{outcome="ok"} sums both workers');
      assert.equal(sample(metrics, 'fib_request_duration_seconds_count'), 100);
      assert.equal(perWorker[0]! + perWorker[1]!, 100, `per-worker series ${perWorker}`);
      assert.ok(
        perWorker.every((count) => count > 0),
        `both workers served: ${perWorker}`,
      );
      assert.equal(sample(metrics, 'fib_workers'), 2);
    } finally {
      await server.stop();
    }
  });

  it('replaces a killed worker: its connection closes, the other keeps being served', async () => {
    const server = await startVariant('cluster', { WORKERS: '2' });
    const pid = server.child.pid!;
    const clients = [await TestClient.connect(server.port), await TestClient.connect(server.port)];
    try {
      for (const client of clients) assert.equal(await client.ask('10'), 'fib: 55');
      const before = childProcesses(pid).map((c) => c.pid);
      assert.equal(before.length, 2);
      process.kill(before[0]!, 'SIGKILL');
      await Promise.race(clients.map((client) => client.closedPromise));
      await sleep(100);
      const closed = clients.filter((client) => client.closed);
      assert.equal(closed.length, 1, "exactly the killed worker's connection closes");
      const survivor = clients.find((client) => !client.closed)!;
      assert.equal(await survivor.ask('12'), 'fib: 144');
      const { value: after } = await poll(
        () => childProcesses(pid).filter((c) => !c.zombie),
        (live) => live.length === 2,
        { timeoutMs: 5000, intervalMs: 50 },
      );
      console.log(`cluster: workers ${before.join(',')} -> killed ${before[0]} -> ${after.map((c) => c.pid).join(',')}`);
      assert.equal(after.length, 2, 'back to two workers');
      assert.ok(!after.some((c) => c.pid === before[0]));
      for (let i = 0; i < 4; i++) {
        const client = await TestClient.connect(server.port);
        assert.equal(await client.ask('6'), 'fib: 8', 'new connections are served by both workers');
        client.close();
      }
    } finally {
      for (const client of clients) client.close();
      await server.stop();
    }
  });

  it('balances connections, not requests: a hog connection keeps one worker busy, short requests go to the other', async () => {
    const server = await startVariant('cluster', { WORKERS: '2' });
    try {
      const before = workerCounts(await metricsOf(server));
      const [hog, short] = await Promise.all([loopRequests(server.port, 30, 2000), loopRequests(server.port, 1, 2000)]);
      const after = workerCounts(await metricsOf(server));
      const served = after.map((count, i) => count - before[i]!).sort((a, b) => a - b);
      console.log(
        `cluster: hog connection ${hog} x fib(30), short connection ${short} x fib(1); per worker ${served.join(' and ')}`,
      );
      // Each connection stays on the worker it was given: each worker's count is one connection's.
      assert.deepEqual(
        served,
        [hog, short].sort((a, b) => a - b),
        `per-worker counts ${served} vs connections ${hog}, ${short}`,
      );
      assert.ok(short > 10 * hog, `short requests are not stuck behind the hog: ${short} vs ${hog}`);
    } finally {
      await server.stop();
    }
  });
});
