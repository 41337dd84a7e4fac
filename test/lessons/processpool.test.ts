// processpool's lesson on failure: a pool process killed mid-request costs exactly that
// request (answered `internal`), every other request is answered, and the pool is back to full size.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitUntilComputing } from '../hardening-helpers.js';
import { TestClient, childProcesses, metricsOf, poll, referenceFib, sample, startVariant } from '../helpers.js';

describe('lesson: processpool', () => {
  it('answers internal for the request of a killed pool process, the others as usual, and refills the pool', async () => {
    const server = await startVariant('processpool', { POOL_SIZE: '2' });
    const pid = server.child.pid!;
    const a = await TestClient.connect(server.port);
    const b = await TestClient.connect(server.port);
    try {
      const pool = childProcesses(pid).map((c) => c.pid);
      assert.equal(pool.length, 2, `a full pool from the start: ${pool}`);
      await a.write('38\n');
      await b.write('38\n');
      // Both are computing now, one per pool process.
      await Promise.all(pool.map((worker) => waitUntilComputing(worker)));
      process.kill(pool[0]!, 'SIGKILL');
      const replies = (await Promise.all([a.line(), b.line()])).sort();
      assert.equal(replies.length, 2);
      assert.match(replies[0], /^error: internal \S/, replies.join(' | '));
      assert.equal(replies[1], `fib: ${referenceFib(38)}`, replies.join(' | '));
      // Both connections keep being served, by a full pool again.
      assert.equal(await a.ask('20'), 'fib: 6765');
      assert.equal(await b.ask('21'), 'fib: 10946');
      const { value: now } = await poll(
        () => childProcesses(pid),
        (children) => children.length === 2,
        { timeoutMs: 5000, intervalMs: 50 },
      );
      const metrics = await metricsOf(server);
      console.log(
        `processpool: pool ${pool.join(',')} -> killed ${pool[0]} -> pool ${now.map((c) => c.pid).join(',')}; replies ${replies.join(' | ')}`,
      );
      assert.equal(now.length, 2, `pool size after the kill: ${JSON.stringify(now)}`);
      assert.ok(!now.some((c) => c.pid === pool[0]), 'the killed process was replaced');
      assert.equal(sample(metrics, 'fib_workers'), 2);
      assert.equal(sample(metrics, 'fib_requests_total', { outcome: 'internal' }), 1);
      for (const worker of ['0', '1'])
        assert.ok(sample(metrics, 'fib_worker_requests_total', { worker }) >= 0, `series for worker ${worker}`);
    } finally {
      a.close();
      b.close();
      await server.stop();
    }
  });
});
