// generators' lessons: round-robin fairness on one core. A fib(1) sent while a fib(32) runs on
// another connection is answered first, after only a few of the long one's slices; and however
// many connections compute, the variant uses one core.

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { TestClient, metricsOf, referenceFib, sample, startVariant, twoCpuBoundClients } from '../helpers.js';

/**
 * Under half of the 435 slices of a fib(32) at the default FIB_SLICE (10000 calls). Typically
 * the fib(1) takes the time of under 10 slices; the bound leaves room for the scheduling noise
 * of a loaded machine (a millisecond is ~20 slices).
 */
const SLICE_BOUND = 200;

describe('lesson: generators', () => {
  it('answers a fib(1) while a fib(32) runs, within a few of its slices', async () => {
    const server = await startVariant('generators');
    const long = await TestClient.connect(server.port);
    const short = await TestClient.connect(server.port);
    try {
      assert.equal(await short.ask('2'), 'fib: 1');
      const order: string[] = [];
      const idle = sample(await metricsOf(server), 'fib_generator_slices_total');
      const sentAt = performance.now();
      await long.write('32\n');
      let longMs = NaN;
      const longDone = long.line().then((reply) => {
        longMs = performance.now() - sentAt;
        order.push(`fib(32): ${reply}`);
      });
      // /metrics is answered between two slices: once the count moves, fib(32) is running.
      let running = idle;
      while (running === idle && order.length === 0) running = sample(await metricsOf(server), 'fib_generator_slices_total');
      const shortAt = performance.now();
      assert.equal(await short.ask('1'), 'fib: 1');
      const shortMs = performance.now() - shortAt;
      order.push('fib(1)');
      await longDone;
      // Only fib tasks yield slices, and fib(1) is a single call: every slice counted was fib(32)'s.
      const longSlices = sample(await metricsOf(server), 'fib_generator_slices_total') - idle;
      const waited = shortMs / (longMs / longSlices);
      console.log(
        `generators: fib(32) took ${longMs.toFixed(1)} ms in ${longSlices} slices; fib(1) sent meanwhile was answered in ` +
          `${shortMs.toFixed(2)} ms, the time of ${waited.toFixed(1)} slices`,
      );
      assert.deepEqual(order, ['fib(1)', `fib(32): fib: ${referenceFib(32)}`], order.join(', '));
      assert.ok(waited <= SLICE_BOUND, `fib(1) waited the time of ${waited.toFixed(1)} slices, bound ${SLICE_BOUND}`);
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
