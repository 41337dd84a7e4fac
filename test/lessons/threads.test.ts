// threads' lessons: a thread per connection is started and ended with its connection (no leak
// of threads or memory over many cycles: OS threads counted, the main thread's heap read after a
// full collection), and two connections compute in parallel on two cores (rounds of a pair, the
// median of their ratios).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { STATE_DEADLINE_MS, heapHeld, heapReadable } from '../hardening-helpers.js';
import { TestClient, askRepeatedly, metricsOf, poll, processStatus, sample, startVariant } from '../helpers.js';

const MB = 1024 * 1024;

describe('lesson: threads', () => {
  it("ends each connection's thread with it: over 200 cycles after a warm-up, no thread and no heap is left behind", async () => {
    const snapshots = mkdtempSync(join(tmpdir(), 'threads-heap-'));
    const server = await startVariant('threads', heapReadable(snapshots));
    const pid = server.child.pid!;
    /** Connects, asks fib(1), closes, `count` times, then waits until every connection's thread has ended. */
    const cycles = async (count: number) => {
      for (let cycle = 0; cycle < count; cycle++) {
        const client = await TestClient.connect(server.port);
        assert.equal(await client.ask('1'), 'fib: 1');
        client.close();
        await client.closedPromise;
      }
      return poll(
        async () => sample(await metricsOf(server), 'fib_workers'),
        (value) => value === 0,
        { timeoutMs: STATE_DEADLINE_MS, intervalMs: 50 },
      );
    };
    try {
      const baseline = processStatus(pid);
      // The first cycles grow what the process keeps for good (code compiled, pools, allocator arenas).
      await cycles(100);
      const heapBefore = await heapHeld(server, snapshots);
      const rssBefore = processStatus(pid).rssBytes;
      const { value: workers } = await cycles(200);
      const heapAfter = await heapHeld(server, snapshots);
      const after = processStatus(pid);
      const shown =
        `threads ${baseline.threads} -> ${after.threads}, fib_workers ${workers}; over the last 200 cycles ` +
        `heap held ${(heapBefore / MB).toFixed(2)} -> ${(heapAfter / MB).toFixed(2)} MB, RSS ${(rssBefore / MB).toFixed(1)} -> ${(after.rssBytes / MB).toFixed(1)} MB`;
      console.log(`threads: ${shown}`);
      assert.equal(workers, 0, `fib_workers after the cycles: ${shown}`);
      assert.ok(after.threads <= baseline.threads + 1, `OS threads not back to baseline: ${shown}`);
      // What the main thread keeps alive, after V8 collected all garbage: a leak of 5 KB a
      // connection (its socket, its Worker object) adds 1 MB. Measured: a few KB either way.
      assert.ok(heapAfter - heapBefore < 1 * MB, `the heap still growing over the last 200 cycles: ${shown}`);
      // What each thread's own isolate held (several MB while it runs) shows only in RSS, which
      // the allocator returns when it likes: it swung 12 MB either way between samples of one
      // run. A thread's memory kept per connection would add hundreds of MB.
      assert.ok(after.rssBytes - rssBefore < 64 * MB, `RSS still growing over the last 200 cycles: ${shown}`);
    } finally {
      await server.stop();
      rmSync(snapshots, { recursive: true, force: true });
    }
  });

  it(
    'with two cores, two clients looping fib(27) get at least 1.3x the throughput of one',
    { skip: availableParallelism() < 2 && 'needs 2 CPUs' },
    async () => {
      const server = await startVariant('threads');
      const clients = [await TestClient.connect(server.port), await TestClient.connect(server.port)] as const;
      try {
        // Two connections, two threads, kept for the whole test: each phase measures threads
        // already running and compiled. A new connection per phase measured a new thread's
        // start and warm-up too, two at once in the two-client phase: 1.48-1.86x in 700 ms
        // phases, where 2 s phases read 1.90-2.04x.
        await Promise.all(clients.map((client) => askRepeatedly(client, 27, 300))); // warm up
        // Rounds of a pair, one client and two (the order alternating), each round's own ratio,
        // their median: this VM's speed drifts by up to 20% over seconds, and a single pair of
        // 2 s phases read 1.41x and 1.48x in 2 of 10 runs where the others read 1.90-2.04x.
        const ms = 1000;
        const ROUNDS = 3;
        const oneClient = () => askRepeatedly(clients[0], 27, ms);
        const twoClients = async () =>
          (await Promise.all(clients.map((client) => askRepeatedly(client, 27, ms)))).reduce((a, b) => a + b);
        const rounds: Array<{ one: number; two: number }> = [];
        for (let round = 0; round < ROUNDS; round++) {
          const pair = { one: 0, two: 0 };
          for (const side of round % 2 === 0 ? (['one', 'two'] as const) : (['two', 'one'] as const)) {
            pair[side] = side === 'one' ? await oneClient() : await twoClients();
          }
          rounds.push(pair);
        }
        const ratios = rounds.map(({ one, two }) => two / one).sort((a, b) => a - b);
        const ratio = ratios[Math.floor(ROUNDS / 2)]!;
        const shown = rounds.map(({ one, two }) => `${one} -> ${two}`).join(', ');
        console.log(`threads: fib(27) in rounds of ${ms} ms, one client -> two: ${shown} (median ${ratio.toFixed(2)}x)`);
        assert.ok(
          ratio >= 1.3,
          `two clients against one, fib(27) replies in ${ms} ms: ${shown}: ${ratio.toFixed(2)}x at the median, expected >= 1.3x`,
        );
      } finally {
        for (const client of clients) client.close();
        await server.stop();
      }
    },
  );
});
