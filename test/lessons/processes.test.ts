// processes' lesson: a process per connection is forked for it and reaped after it, so many
// connect/disconnect cycles leave neither leaked children nor zombies.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient, childProcesses, metricsOf, poll, sample, startVariant } from '../helpers.js';

describe('lesson: processes', () => {
  it('forks a child per connection and reaps it: no zombies and no leaked processes after 100 cycles', async () => {
    const server = await startVariant('processes');
    const pid = server.child.pid!;
    try {
      const during: number[] = [];
      for (let cycle = 1; cycle <= 100; cycle++) {
        const client = await TestClient.connect(server.port);
        assert.equal(await client.ask('10'), 'fib: 55');
        if (cycle % 25 === 0) during.push(childProcesses(pid).length);
        client.close();
        await client.closedPromise;
      }
      const { value: children } = await poll(
        () => childProcesses(pid),
        (now) => now.length === 0,
        { timeoutMs: 5000, intervalMs: 50 },
      );
      const workers = sample(await metricsOf(server), 'fib_workers');
      const shown = `children while connected (every 25 cycles): ${during.join(', ')}; after: ${JSON.stringify(children)}; fib_workers ${workers}`;
      console.log(`processes: ${shown}`);
      assert.ok(
        during.every((count) => count === 1),
        `one child per open connection: ${shown}`,
      );
      assert.deepEqual(children, [], `leaked or unreaped children: ${shown}`);
      assert.equal(workers, 0, shown);
      const requests = sample(await metricsOf(server), 'fib_requests_total', { outcome: 'ok' });
      assert.equal(requests, 100, 'the parent counts the requests its children served');
    } finally {
      await server.stop();
    }
  });
});
