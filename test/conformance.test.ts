// The shared conformance suite: every variant of the table (services/variants/index.ts), run as its own
// `lab serve` process on port 0 (the CPython ones too: `lab serve` starts their python3), is
// checked on real sockets against the protocol (docs/protocol.md). What each variant can produce comes from its row: clients that take turns (sync),
// a running fib that can be stopped (interruptible), a fixed set of workers and a bounded queue.
// The same cases run on a throwaway row that is in no table of the lab's (test/throwaway-variant.ts),
// served in this process: a new variant gets the whole suite from its row alone.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Variant } from '../services/server/plugin.js';
import { VARIANTS } from '../services/variants/index.js';
import { BACKENDS } from './backends.js';
import { serveInProcess, throwaway } from './throwaway-variant.js';
import { BACKEND_WORKERS } from './queue/helpers.js';
import {
  TestClient,
  fetchText,
  metricsOf,
  referenceFib,
  sample,
  startLongRequest,
  startVariant,
  treeCpuSeconds,
  waitUntil,
  waitUntilDraining,
  type RunningVariant,
} from './helpers.js';

/** The environment a variant is tested with: a fixed set of two workers where it has one. */
function testEnv(variant: Variant, workers = '2'): Record<string, string> {
  const option = variant.workersOption ? (variant.options as Record<string, { env: string }>)[variant.workersOption] : undefined;
  return option ? { [option.env]: workers } : {};
}

/**
 * Room for two requests, one worker busy and one waiting (or, where the workers are the
 * backend's, as many as it started and none waiting): the third concurrent request finds the
 * queue full.
 */
function tinyQueueEnv(variant: Variant): Record<string, string> | null {
  const options = variant.options as Record<string, { env: string }>;
  const queue = variant.queueOption ? options[variant.queueOption] : undefined;
  if (!queue) return null;
  if (variant.workersOption) return { ...testEnv(variant, '1'), [queue.env]: '1' };
  return { [queue.env]: String(2 - BACKEND_WORKERS) };
}

/** What the suite needs of a running variant: its ports, its stop (SIGTERM drains; resolves with the exit code), its log, its process. */
type ServedVariant = Pick<RunningVariant, 'port' | 'metricsPort' | 'stop' | 'stderr'> & { child: { pid?: number } };

for (const row of VARIANTS) conformance(row, (env) => startVariant(row.name, env));
conformance(throwaway, (env) => serveInProcess(throwaway, env));

/** The suite's cases for one row, each server started by `start` with `env` added to its configuration. */
function conformance(row: Variant, start: (env: Record<string, string>) => Promise<ServedVariant>): void {
  const { name: variant, takesTurns, interruptible } = row;
  let env = testEnv(row);
  const boundedQueue = tinyQueueEnv(row);
  describe(`conformance: ${variant}`, () => {
    let server: ServedVariant;
    let stopBackend = async () => {};
    before(async () => {
      if (row.backend) {
        const backend = await BACKENDS[row.backend]();
        env = { ...env, ...backend.env };
        stopBackend = () => backend.stop();
      }
      server = await start(env);
    });
    after(async () => {
      await server?.stop();
      await stopBackend();
    });

    it('answers fib(n) for n = 0..25', async () => {
      const client = await TestClient.connect(server.port);
      try {
        for (let n = 0; n <= 25; n++) assert.equal(await client.ask(String(n)), `fib: ${referenceFib(n)}`, `n=${n}`);
      } finally {
        client.close();
      }
    });

    it('answers pipelined requests in request order', async () => {
      const client = await TestClient.connect(server.port);
      try {
        const ns = [25, 1, 22, 2, 0, 24, 3, 18, 1];
        await client.write(ns.map((n) => `${n}\n`).join(''));
        assert.deepEqual(
          await client.readLines(ns.length),
          ns.map((n) => `fib: ${referenceFib(n)}`),
        );
      } finally {
        client.close();
      }
    });

    it('decodes requests split at every byte boundary, and byte by byte, in line mode', async () => {
      const client = await TestClient.connect(server.port);
      try {
        assert.equal(await client.ask('1'), 'fib: 1'); // now in line mode
        const stream = '12\n 7\r\n\t3 \n';
        const expected = ['fib: 144', 'fib: 13', 'fib: 2'];
        // The pauses space the writes out so the server most likely reads the parts apart; the
        // decoder's own tests (test/protocol.test.ts) cover every split deterministically.
        for (let cut = 1; cut < stream.length; cut++) {
          await client.write(stream.slice(0, cut));
          await sleep(2);
          await client.write(stream.slice(cut));
          assert.deepEqual(await client.readLines(3), expected, `split at byte ${cut}`);
        }
        for (const byte of stream) {
          await client.write(byte);
          await sleep(1);
        }
        assert.deepEqual(await client.readLines(3), expected, 'byte by byte');
      } finally {
        client.close();
      }
    });

    it('answers each bad input with its error line and keeps the connection serving', async () => {
      const client = await TestClient.connect(server.port);
      try {
        const cases: Array<[string, string]> = [
          ['abc', 'bad_request'],
          ['', 'bad_request'],
          ['1.5', 'bad_request'],
          ['6 7', 'bad_request'],
          ['-1', 'out_of_range'],
          ['41', 'out_of_range'],
          ['123456789012345678901234567890', 'out_of_range'],
        ];
        for (const [request, code] of cases) {
          const reply = await client.ask(request);
          assert.match(
            reply,
            new RegExp(`^error: ${code} \\S`),
            `request ${JSON.stringify(request)} got ${JSON.stringify(reply)}`,
          );
          assert.equal(await client.ask('6'), 'fib: 8', `after ${JSON.stringify(request)}`);
        }
      } finally {
        client.close();
      }
    });

    it('answers line_too_long, then closes the connection', async () => {
      const client = await TestClient.connect(server.port);
      try {
        assert.equal(await client.ask('5'), 'fib: 5');
        await client.write('1'.repeat(65));
        assert.match(await client.line(), /^error: line_too_long \S/);
        await client.waitClosed();
      } finally {
        client.close();
      }
    });

    it('answers line_too_long to a legacy chunk over 64 bytes, then closes', async () => {
      const client = await TestClient.connect(server.port);
      try {
        await client.write('2'.repeat(65));
        assert.match(await client.line(), /^error: line_too_long \S/);
        await client.waitClosed();
      } finally {
        client.close();
      }
    });

    it("answers the talk's clients, which send b'30' and b'1' with no newline", async () => {
      // perf1 and perf2 take turns; on a variant that takes turns each has the server to itself in turn.
      const perf1 = await TestClient.connect(server.port);
      const perf2 = takesTurns ? null : await TestClient.connect(server.port);
      try {
        for (let i = 0; i < 3; i++) {
          await perf1.write('30');
          assert.equal(await perf1.line(), 'fib: 832040');
          if (perf2) {
            await perf2.write('1');
            assert.equal(await perf2.line(), 'fib: 1');
          }
        }
        perf1.close();
        const later = perf2 ?? (await TestClient.connect(server.port));
        for (let i = 0; i < 3; i++) {
          await later.write('1');
          assert.equal(await later.line(), 'fib: 1');
        }
        later.close();
      } finally {
        perf1.close();
        perf2?.close();
      }
    });

    it(`serves many concurrent clients, each pipelining${takesTurns ? ' (one after another)' : ''}`, async () => {
      const clients = await Promise.all(Array.from({ length: 30 }, () => TestClient.connect(server.port)));
      try {
        await Promise.all(
          clients.map(async (client, i) => {
            const ns = Array.from({ length: 8 }, (_, j) => (i * 7 + j * 5) % 23);
            await client.write(ns.map((n) => `${n}\n`).join(''));
            assert.deepEqual(
              await client.readLines(ns.length),
              ns.map((n) => `fib: ${referenceFib(n)}`),
              `client ${i}`,
            );
            client.close(); // a variant that takes turns serves the next client only now
          }),
        );
      } finally {
        for (const client of clients) client.close();
      }
    });

    it('keeps serving when a client disconnects mid-request', async () => {
      const leaver = await TestClient.connect(server.port);
      await startLongRequest(leaver, 34);
      leaver.reset();
      const client = await TestClient.connect(server.port);
      try {
        assert.equal(await client.ask('20'), 'fib: 6765');
      } finally {
        client.close();
      }
    });

    it('serves /metrics with the variant label and /healthz', async () => {
      const client = await TestClient.connect(server.port);
      assert.equal(await client.ask('6'), 'fib: 8');
      assert.match(await client.ask('abc'), /^error: bad_request /);
      client.close();
      const health = await fetchText(`http://127.0.0.1:${server.metricsPort}/healthz`);
      assert.equal(health.status, 200);
      assert.equal((JSON.parse(health.body) as { status: string }).status, 'ok');
      const { status, body } = await fetchText(`http://127.0.0.1:${server.metricsPort}/metrics`);
      assert.equal(status, 200);
      for (const name of [
        'fib_requests_total',
        'fib_request_duration_seconds_bucket',
        'fib_queue_wait_seconds_bucket',
        'fib_compute_seconds_bucket',
        'fib_connections_active',
        'fib_inflight_requests',
        'fib_workers',
        'lab_cpu_quota_cores',
        'lab_cpu_usage_seconds_total',
        'lab_memory_bytes',
        // The runtime's own series, with the variant label like the rest.
        ...(row.runtime === 'node'
          ? [
              'lab_event_loop_busy_seconds_total',
              // Node's default metrics the lab reads (DEFAULT_METRICS), one by one from prom-client.
              'nodejs_eventloop_lag_seconds',
              'nodejs_eventloop_lag_p99_seconds',
              'nodejs_heap_size_used_bytes',
              'process_cpu_seconds_total',
            ]
          : ['process_cpu_seconds_total', 'python_gc_objects_collected_total']),
      ]) {
        assert.match(body, new RegExp(`^${name}\\{[^}]*variant="${variant}"`, 'm'), `${name} with variant="${variant}"`);
      }
      const ok = /^fib_requests_total\{outcome="ok",variant="[^"]+"\} (\d+)/m.exec(body);
      assert.ok(ok && Number(ok[1]) > 0, `fib_requests_total{outcome="ok"} should count the requests so far: ${ok?.[0]}`);
      assert.match(body, /^fib_requests_total\{outcome="bad_request",variant="[^"]+"\} [1-9]/m);
    });

    it('refuses connections over the cap with overloaded, and serves again once one leaves', async () => {
      const capped = await start({ ...env, MAX_CONNECTIONS: '2' });
      const clients: TestClient[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          clients.push(await TestClient.connect(capped.port));
          // A variant that takes turns serves only the first; the second waits its turn (and counts).
          if (i === 0 || !takesTurns) assert.equal(await clients[i]!.ask('1'), 'fib: 1');
        }
        const over = await TestClient.connect(capped.port);
        clients.push(over);
        assert.match(await over.line(), /^error: overloaded \S/);
        await over.waitClosed();
        clients[0]!.close();
        await clients[0]!.closedPromise;
        if (takesTurns) {
          assert.equal(await clients[1]!.ask('6'), 'fib: 8', 'the waiting client gets its turn');
          clients[1]!.close();
        }
        // The server notices the close asynchronously: wait until it counts one connection fewer.
        const open = takesTurns ? 0 : 1;
        await waitUntil('the server has released the closed connections', async () => {
          const active = sample(await metricsOf(capped), 'fib_connections_active');
          return active === open ? null : `fib_connections_active ${active}, want ${open}`;
        });
        const next = await TestClient.connect(capped.port);
        clients.push(next);
        assert.equal(await next.ask('6'), 'fib: 8');
      } finally {
        for (const client of clients) client.close();
        await capped.stop();
      }
    });

    it('drains on SIGTERM: answers the request in flight, closes every connection, exits 0', async () => {
      const draining = await start(env);
      const busy = await TestClient.connect(draining.port);
      const idle = await TestClient.connect(draining.port);
      try {
        if (!takesTurns) assert.equal(await idle.ask('1'), 'fib: 1');
        await startLongRequest(busy, 32);
        const code = draining.stop('SIGTERM');
        assert.equal(await busy.line(), `fib: ${referenceFib(32)}`);
        await busy.waitClosed();
        // A variant that takes turns never served `idle`: it tells it so before closing.
        if (takesTurns) assert.match(await idle.line(), /^error: unavailable \S/);
        await idle.waitClosed();
        assert.equal(await code, 0, draining.stderr());
        await assert.rejects(TestClient.connect(draining.port), 'no new connections after shutdown');
      } finally {
        idle.close();
        busy.close();
        await draining.stop('SIGKILL');
      }
    });

    if (interruptible) {
      it('stops computing for a client that left mid-request', async () => {
        const leaver = await TestClient.connect(server.port);
        await startLongRequest(leaver, 40); // seconds of CPU if it were left running
        leaver.reset();
        await waitUntil('the server has dropped the request', async () => {
          const inflight = sample(await metricsOf(server), 'fib_inflight_requests');
          return inflight === 0 ? null : `fib_inflight_requests ${inflight}`;
        });
        // A measurement over a window (cores used), not a wait: fib(40) would keep a core busy for seconds.
        const pid = server.child.pid!;
        const before = treeCpuSeconds(pid);
        const t0 = performance.now();
        await sleep(1000);
        const cores = (treeCpuSeconds(pid) - before) / ((performance.now() - t0) / 1000);
        assert.ok(cores < 0.5, `${cores.toFixed(2)} cores used in the second after the client left`);
        const client = await TestClient.connect(server.port);
        assert.equal(await client.ask('20'), 'fib: 6765');
        client.close();
      });

      it('answers new requests during the drain unavailable, after the ones in flight', async () => {
        const draining = await start(env);
        const client = await TestClient.connect(draining.port);
        try {
          await startLongRequest(client, 40);
          const code = draining.stop('SIGTERM');
          await waitUntilDraining(draining);
          await client.write('1\n');
          assert.equal(await client.line(), `fib: ${referenceFib(40)}`);
          assert.match(await client.line(), /^error: unavailable \S/);
          await client.waitClosed();
          assert.equal(await code, 0, draining.stderr());
        } finally {
          client.close();
          await draining.stop('SIGKILL');
        }
      });

      it('answers what is still running unavailable when the drain timeout passes', async () => {
        const draining = await start({ ...env, DRAIN_TIMEOUT_MS: '200' });
        const client = await TestClient.connect(draining.port);
        try {
          await startLongRequest(client, 40);
          const code = draining.stop('SIGTERM');
          assert.match(await client.line(), /^error: unavailable \S/);
          await client.waitClosed();
          assert.equal(await code, 0, draining.stderr());
        } finally {
          client.close();
          await draining.stop('SIGKILL');
        }
      });
    }

    if (boundedQueue) {
      it('answers overloaded when its queue is full, and keeps the connection', async () => {
        const small = await start({ ...env, ...boundedQueue });
        const client = await TestClient.connect(small.port);
        try {
          await client.write('33\n33\n33\n');
          const replies = await client.readLines(3);
          assert.deepEqual(replies.slice(0, 2), [`fib: ${referenceFib(33)}`, `fib: ${referenceFib(33)}`], replies.join(' | '));
          assert.match(replies[2]!, /^error: overloaded \S/, replies.join(' | '));
          assert.equal(await client.ask('6'), 'fib: 8');
        } finally {
          client.close();
          await small.stop();
        }
      });
    }
  });
}
