// gil's lessons, each a ratio measured in one run: the talk's perf2-during-perf1 demo (a fib(1)
// loop loses most of its throughput while a fib(30) loop runs, where `threads` keeps it), and
// two CPU-bound clients sharing one core's worth of CPU because only the lock holder computes.

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { loopRequests, startVariant, twoCpuBoundClients } from '../helpers.js';

const MS = 2000;

/**
 * fib(1) replies in MS alone, then in MS while another connection loops fib(30). The long loop
 * keeps two requests in flight, so its thread always has the next fib(30) waiting: on a loaded
 * machine the gaps between its replies would otherwise let short requests slip through.
 */
async function perf2DuringPerf1(variant: string): Promise<{ alone: number; during: number }> {
  const server = await startVariant(variant);
  try {
    await loopRequests(server.port, 1, 300); // warm up
    const alone = await loopRequests(server.port, 1, MS);
    const [, during] = await Promise.all([loopRequests(server.port, 30, MS, 2), loopRequests(server.port, 1, MS)]);
    return { alone, during };
  } finally {
    await server.stop();
  }
}

describe('lesson: gil', () => {
  it("a fib(1) loop drops at least 10x while fib(30) loops (the talk's demo); threads keeps a third of it", async () => {
    const gil = await perf2DuringPerf1('gil');
    const threads = await perf2DuringPerf1('threads');
    const shown =
      `fib(1) replies in ${MS} ms alone -> during fib(30): gil ${gil.alone} -> ${gil.during} (${(gil.alone / gil.during).toFixed(1)}x fewer), ` +
      `threads ${threads.alone} -> ${threads.during} (${(threads.alone / threads.during).toFixed(1)}x fewer)`;
    console.log(`gil: ${shown}`);
    assert.ok(gil.alone >= 10 * gil.during, `gil should drop at least 10x: ${shown}`);
    assert.ok(threads.during * 3 >= threads.alone, `threads should keep at least a third: ${shown}`);
  });

  it(
    'two CPU-bound clients together use at most 1.2 cores',
    { skip: availableParallelism() < 2 && 'needs 2 CPUs to mean anything' },
    async () => {
      const server = await startVariant('gil');
      try {
        const { counts, cores } = await twoCpuBoundClients(server, MS);
        console.log(`gil: two fib(30) loops for ${MS} ms: ${counts.join(' + ')} replies, ${cores.toFixed(2)} cores used`);
        assert.ok(
          counts.every((count) => count > 0),
          `both clients must be served: ${counts}`,
        );
        assert.ok(cores <= 1.2, `gil used ${cores.toFixed(2)} cores with two CPU-bound clients`);
      } finally {
        await server.stop();
      }
    },
  );
});
