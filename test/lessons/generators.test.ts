// generators' lessons: round-robin fairness on one core. fib(1)s sent while a fib(32) runs on
// another connection are answered first, each after only a few of the long one's slices; and however
// many connections compute, the variant uses one core.

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { TestClient, metricsOf, referenceFib, sample, startVariant, twoCpuBoundClients } from '../helpers.js';

/**
 * Under half of the 435 slices of a fib(32) at the default FIB_SLICE (10000 calls). The median
 * fib(1) takes the time of 2 to 4 slices on a quiet 2-core machine (5 runs, 41 to 51 fib(1)s
 * each); the bound leaves room for the scheduling noise of a loaded machine.
 */
const SLICE_BOUND = 200;

describe('lesson: generators', () => {
  it('answers fib(1)s while a fib(32) runs, each within a few of its slices', async () => {
    const server = await startVariant('generators');
    const long = await TestClient.connect(server.port);
    const short = await TestClient.connect(server.port);
    try {
      assert.equal(await short.ask('2'), 'fib: 1');
      const idle = sample(await metricsOf(server), 'fib_generator_slices_total');
      const sentAt = performance.now();
      let longMs = NaN;
      let longReply = '';
      await long.write('32\n');
      const longDone = long.line().then((reply) => {
        longMs = performance.now() - sentAt;
        longReply = reply;
      });
      // A closed loop of fib(1) beside it, nothing else asked of the server meanwhile (reading
      // /metrics costs it milliseconds of rendering): the latency of each fib(1) answered
      // while fib(32) was still running.
      const latencies: number[] = [];
      while (!longReply) {
        const at = performance.now();
        assert.equal(await short.ask('1'), 'fib: 1');
        if (!longReply) latencies.push(performance.now() - at);
      }
      await longDone;
      assert.equal(longReply, `fib: ${referenceFib(32)}`);
      // Only fib tasks yield slices, and fib(1) is a single call: every slice counted was fib(32)'s.
      const longSlices = sample(await metricsOf(server), 'fib_generator_slices_total') - idle;
      const sliceMs = longMs / longSlices;
      const sorted = [...latencies].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)]!;
      const waited = median / sliceMs;
      console.log(
        `generators: fib(32) took ${longMs.toFixed(1)} ms in ${longSlices} slices; ${latencies.length} fib(1)s answered ` +
          `meanwhile, median ${median.toFixed(2)} ms (max ${sorted.at(-1)!.toFixed(2)} ms), the time of ${waited.toFixed(1)} slices`,
      );
      // Round-robin: the short connection gets a turn every round, so many fib(1)s pass while
      // one fib(32) runs (a loop that waited for it would get at most one).
      assert.ok(latencies.length >= 10, `only ${latencies.length} fib(1)s answered while fib(32) ran`);
      assert.ok(waited <= SLICE_BOUND, `a fib(1) waited the time of ${waited.toFixed(1)} slices (median), bound ${SLICE_BOUND}`);
    } finally {
      long.close();
      short.close();
      await server.stop();
    }
  });

  it('never uses more than one core', { skip: availableParallelism() < 2 && 'needs 2 CPUs to mean anything' }, async () => {
    const server = await startVariant('generators');
    try {
      const { counts, cores } = await twoCpuBoundClients(server, 2000);
      console.log(`generators: two fib(30) loops for 2000 ms: ${counts.join(' + ')} replies, ${cores.toFixed(2)} cores used`);
      assert.ok(Math.min(...counts) * 2 >= Math.max(...counts), `round-robin shares the core evenly: ${counts}`);
      assert.ok(cores <= 1.15, `generators used ${cores.toFixed(2)} cores`);
    } finally {
      await server.stop();
    }
  });
});
