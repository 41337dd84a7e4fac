// gilpool's lessons: a thread pool whose fib must hold the emulated GIL. Beside one fib(30) hog
// its short requests find a free worker, then wait for the lock the hog holds, and collapse
// as on `gil` (at least 5x), while `threadpool`, the same pool without the lock, measured in the
// same run, keeps them flowing (at most 3x). With a hog on each worker, the workers compute
// one at a time: the pool uses about one core. And a pool thread terminated while it holds the
// lock (its client left) does not take the lock with it.

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { TestClient, measureCollapse, startLongRequest, startVariant, twoCpuBoundClients, waitForMetric } from '../helpers.js';

describe('lesson: gilpool', () => {
  it('beside one fib(30) hog its fib(1) loop collapses at least 5x, while threadpool (no GIL) stays within 3x', async () => {
    const gilpool = await startVariant('gilpool', { POOL_SIZE: '2' });
    let ours;
    try {
      ours = await measureCollapse(gilpool);
    } finally {
      await gilpool.stop();
    }
    const threadpool = await startVariant('threadpool', { POOL_SIZE: '2' });
    let theirs;
    try {
      theirs = await measureCollapse(threadpool);
    } finally {
      await threadpool.stop();
    }
    const shown = `${ours.shown}; ${theirs.shown}`;
    console.log(shown);
    // The short request's worker waits a switch interval (5 ms) for the lock while the hog's
    // computes; it gets through only in the hog's gaps (a fib(30) reply and the next request),
    // so the collapse is about (fib(30) + gap) / gap, like gil's in the spotlight (11x to 32x).
    assert.ok(ours.ratio >= 5, `gilpool: the short requests convoy behind the hog's lock: ${shown}`);
    // The same pool without the lock: the second worker serves the short requests (about 1x to 2x).
    assert.ok(theirs.ratio <= 3, `threadpool: a free worker serves the short requests: ${shown}`);
  });

  it(
    'with a hog on each of its 2 workers the pool uses at most 1.2 cores: only the lock holder computes',
    { skip: availableParallelism() < 2 && 'needs 2 CPUs to mean anything' },
    async () => {
      const server = await startVariant('gilpool', { POOL_SIZE: '2' });
      try {
        const { counts, cores } = await twoCpuBoundClients(server, 2000);
        console.log(`gilpool: two fib(30) loops for 2000 ms: ${counts.join(' + ')} replies, ${cores.toFixed(2)} cores used`);
        assert.ok(
          counts.every((count) => count > 0),
          `both clients must be served: ${counts}`,
        );
        assert.ok(cores <= 1.2, `gilpool used ${cores.toFixed(2)} cores with a hog on each worker`);
      } finally {
        await server.stop();
      }
    },
  );

  it('a pool thread terminated while it holds the lock (its client left) leaves the lock free', async () => {
    const server = await startVariant('gilpool', { POOL_SIZE: '1' });
    const leaving = await TestClient.connect(server.port);
    const next = await TestClient.connect(server.port);
    try {
      await startLongRequest(leaving, 40); // the one pool thread computes, holding the lock
      await waitForMetric(server, 'fib_inflight_requests', (value) => value === 1);
      leaving.reset(); // piscina terminates the thread
      // Without the lock released on the thread's exit, its replacement would wait for it forever.
      assert.equal(await next.ask('20', 10_000), 'fib: 6765');
    } finally {
      leaving.close();
      next.close();
      await server.stop();
    }
  });
});
