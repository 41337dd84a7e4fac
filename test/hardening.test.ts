// Reproductions of issue 8's hardening defects (and of those the fuzz harness found), one per
// defect and per variant it applies to, each on a real `lab serve` process over real sockets;
// issue 20's second pass is in hardening-second-pass.test.ts. They fail on the code the issue was
// filed against and pass once it is fixed. Every wait is for a state (a reply, a close, a value
// on /metrics, an exit) with a deadline, so a defect shows as a failure with the measured values,
// never as a hung run. The variant list comes from services/variants/index.ts; a variant is named
// by hand only where a defect is about that one variant.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { VARIANT_NAMES } from '../services/variants/index.js';
import { TestClient, metricsOf, sample, type RunningVariant } from './helpers.js';
import {
  PipelineReader,
  TAKES_TURNS,
  TEST_TIMEOUT_MS,
  UNAVAILABLE,
  WAITING_SERVERS,
  fibReply,
  withServer,
  STATE_DEADLINE_MS,
  auditShutdown,
  closedWithin,
  closedLoopThroughShutdown,
  connectWritingAfterFin,
  liveChildren,
  replyOrFate,
  sendOversizedFrameAndHalfClose,
  summarizeAudit,
  terminateWithin,
  waitForActiveConnections,
  waitForNewChild,
  waitForSample,
  waitUntilComputing,
  waitUntilDraining,
  writeAfterLineTooLongAndHalfClose,
} from './hardening-helpers.js';

describe('defect 1: a connection closing after line_too_long is released', { concurrency: WAITING_SERVERS }, () => {
  for (const variant of VARIANT_NAMES) {
    it(
      `${variant}: after 65,537 bytes with no newline and a half-close, the next client is served and both connections are released`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        await withServer(variant, {}, async (server) => {
          const b = await sendOversizedFrameAndHalfClose(server.port, 65_537);
          assert.match(b.reply, /^error: line_too_long \S/, `B's reply: ${b.reply}`);
          assert.ok(b.closedByServer, 'the server closes B after its line_too_long reply');
          const c = await TestClient.connect(server.port);
          const reply = await replyOrFate(c, '6');
          c.close();
          const active = await waitForActiveConnections(server, 0);
          assert.equal(reply, 'fib: 8', `C asked 6 after B had gone (fib_connections_active read ${active.seen.join(' -> ')})`);
          assert.ok(active.met, `fib_connections_active read ${active.seen.join(' -> ')} with B and C gone, not 0`);
        });
      },
    );

    it(
      `${variant}: bytes written after the line_too_long reply, then a half-close, do not keep the connection`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        await withServer(variant, {}, async (server) => {
          const b = await writeAfterLineTooLongAndHalfClose(server.port);
          assert.equal(b.first, 'fib: 1');
          assert.match(b.reply, /^error: line_too_long \S/, `B's reply: ${b.reply}`);
          const active = await waitForActiveConnections(server, 0);
          assert.ok(active.met, `fib_connections_active read ${active.seen.join(' -> ')} with B gone, not 0`);
          const c = await TestClient.connect(server.port);
          assert.equal(await replyOrFate(c, '6'), 'fib: 8');
          c.close();
        });
      },
    );

    it(
      `${variant}: SIGTERM on an idle server after such a client drains at once, not at the drain timeout`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const drainTimeoutMs = 30_000;
        await withServer(variant, { DRAIN_TIMEOUT_MS: String(drainTimeoutMs) }, async (server) => {
          const b = await sendOversizedFrameAndHalfClose(server.port, 65_537);
          assert.match(b.reply, /^error: line_too_long \S/, `B's reply: ${b.reply}`);
          // Idle: nothing in flight, no client connected. A third of the drain timeout is the bound.
          const stopped = await terminateWithin(server, drainTimeoutMs / 3);
          assert.equal(
            stopped.code,
            0,
            `no exit within ${drainTimeoutMs / 3} ms of SIGTERM (DRAIN_TIMEOUT_MS=${drainTimeoutMs}): the leaked connection holds the drain`,
          );
          console.log(`${variant}: idle drain after an oversized client took ${stopped.ms.toFixed(0)} ms`);
        });
      },
    );
  }

  it(
    'eventloop with MAX_CONNECTIONS=1: one oversized client does not lock the server into overloaded',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withServer('eventloop', { MAX_CONNECTIONS: '1' }, async (server) => {
        const b = await sendOversizedFrameAndHalfClose(server.port, 65_537);
        assert.match(b.reply, /^error: line_too_long \S/, `B's reply: ${b.reply}`);
        const active = await waitForActiveConnections(server, 0);
        const c = await TestClient.connect(server.port);
        const reply = await replyOrFate(c, '6');
        c.close();
        assert.equal(reply, 'fib: 8', `C's reply with B gone (fib_connections_active read ${active.seen.join(' -> ')})`);
      });
    },
  );
});

describe('defect 2: the drain loses no request that reached the server', () => {
  it(
    'cluster (WORKERS=1): a line sent while the worker is busy at SIGTERM gets a reply before the FIN',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withServer('cluster', { WORKERS: '1' }, async (server) => {
        const busy = await TestClient.connect(server.port);
        const idle = await TestClient.connect(server.port);
        assert.equal(await busy.ask('1'), 'fib: 1');
        assert.equal(await idle.ask('1'), 'fib: 1');
        const [worker] = liveChildren(server);
        await busy.write('40\n');
        await waitUntilComputing(worker!); // the worker's only thread is inside fib(40)
        server.child.kill('SIGTERM');
        await waitUntilDraining(server);
        const writtenAt = performance.now();
        let finAt: number | null = null;
        idle.socket.once('end', () => (finAt = performance.now()));
        await idle.write('1\n');
        const reply = await idle.line(15_000).catch((error: Error) => `<${error.message}>`);
        const finGap = finAt === null ? 'no FIN yet' : `FIN ${(finAt - writtenAt).toFixed(0)} ms after the write`;
        assert.ok(
          reply === 'fib: 1' || UNAVAILABLE.test(reply),
          `the line written after SIGTERM got ${reply} (${finGap}); expected fib: 1 or error: unavailable`,
        );
        assert.equal(await busy.line(15_000), fibReply(40), 'the request in flight at SIGTERM is answered');
        assert.equal(await server.exited, 0);
      });
    },
  );

  it(
    "cluster (WORKERS=2): SIGTERM while a crashed worker's replacement is still starting drains at once",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      // The drain message reached the replacement before it had a listener and was lost: the
      // primary waited for the drain timeout and the kill grace (17 s with the default 10 s).
      const drainTimeoutMs = 30_000;
      await withServer('cluster', { WORKERS: '2', DRAIN_TIMEOUT_MS: String(drainTimeoutMs) }, async (server) => {
        const workers = liveChildren(server);
        process.kill(workers[0]!, 'SIGKILL');
        const replacement = await waitForNewChild(server, workers);
        // At once: the replacement is still loading its modules (a few hundred ms).
        const stopped = await terminateWithin(server, drainTimeoutMs / 3);
        assert.equal(
          stopped.code,
          0,
          `no exit within ${drainTimeoutMs / 3} ms of SIGTERM (DRAIN_TIMEOUT_MS=${drainTimeoutMs}) with replacement ${replacement} of ${workers[0]} starting`,
        );
        console.log(`cluster: SIGTERM with a replacement worker starting: exit 0 after ${stopped.ms.toFixed(0)} ms`);
      });
    },
  );

  it(
    'processes: a request on a connection younger than its child process, sent before SIGTERM, is answered',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withServer('processes', {}, async (server) => {
        const client = await TestClient.connect(server.port);
        await client.write('30\n');
        const adopted = await waitForActiveConnections(server, 1); // the child is being forked now
        assert.ok(adopted.met, `fib_connections_active read ${adopted.seen.join(' -> ')}`);
        server.child.kill('SIGTERM');
        const reply = await client.line(15_000).catch((error: Error) => `<${error.message}>`);
        // Sent before SIGTERM: the result; `unavailable` if the child read it after the drain began.
        assert.ok(reply === fibReply(30) || UNAVAILABLE.test(reply), `the request got ${reply}`);
        console.log(`processes: a request sent before SIGTERM on a young connection got: ${reply}`);
        assert.ok(await closedWithin(client), 'the server closes the connection once drained');
        assert.equal(await server.exited, 0);
      });
    },
  );

  it(
    'eventloop (DRAIN_TIMEOUT_MS=500) with fib(35) in flight: every request written before SIGTERM gets a reply line, every connection a FIN',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const drainTimeoutMs = 500;
      await withServer('eventloop', { DRAIN_TIMEOUT_MS: String(drainTimeoutMs) }, async (server) => {
        const run = await closedLoopThroughShutdown(server, {
          connections: 8,
          nextN: () => 35,
          thinkMs: 0,
          killAfter: 8,
          deadlineMs: 20_000,
        });
        const audit = auditShutdown(run, { drainTimeoutMs, strictBeforeKill: false, expected: fibReply });
        console.log(`eventloop, fib(35) x 8 connections, DRAIN_TIMEOUT_MS=${drainTimeoutMs}: ${summarizeAudit(audit)}`);
        assert.deepEqual(audit.violations, [], summarizeAudit(audit));
      });
    },
  );

  for (const variant of VARIANT_NAMES) {
    it(
      `${variant}: a client that writes after the drain's FIN does not hold the shutdown`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const drainTimeoutMs = 30_000;
        await withServer(variant, { DRAIN_TIMEOUT_MS: String(drainTimeoutMs) }, async (server) => {
          const late = await connectWritingAfterFin(server.port);
          const stopped = await terminateWithin(server, drainTimeoutMs / 3);
          assert.equal(
            stopped.code,
            0,
            `no exit within ${drainTimeoutMs / 3} ms of SIGTERM (DRAIN_TIMEOUT_MS=${drainTimeoutMs}) once an idle client wrote after the drain's FIN`,
          );
          await late.finished;
        });
      },
    );

    it(
      `${variant}: 16 closed-loop connections through SIGTERM: every request accounted for, no reset`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const drainTimeoutMs = 10_000;
        await withServer(variant, { DRAIN_TIMEOUT_MS: String(drainTimeoutMs) }, async (server) => {
          const run = await closedLoopThroughShutdown(server, {
            connections: 16,
            nextN: (c, i) => 15 + ((c + i) % 11),
            thinkMs: 20,
            killAfter: 48,
            deadlineMs: drainTimeoutMs + 8000,
          });
          const audit = auditShutdown(run, { drainTimeoutMs, strictBeforeKill: true, expected: fibReply });
          const exitMs = run.exitedAt === null ? null : run.exitedAt - run.killedAt;
          const summary = `${summarizeAudit(audit)}; exit ${exitMs === null ? 'none' : `${exitMs.toFixed(0)} ms`} after SIGTERM`;
          console.log(`${variant}, 16 connections, 20 ms think: ${summary}`);
          assert.deepEqual(audit.violations, [], summary);
          // Nothing runs for more than a few milliseconds: the drain has no reason to last.
          assert.ok(
            exitMs !== null && exitMs < drainTimeoutMs / 2,
            `the drain should end long before DRAIN_TIMEOUT_MS: ${summary}`,
          );
        });
      },
    );
  }
});

// 30,000 requests: a row that hands each request to another process (Python's pools, queue's
// Redis) answers a few thousand a second, so 100,000 took up to 70 s a row; a per-request cost
// that grew with the depth (a queue shifted from its front, a buffer copied whole per request)
// would still take this many past the test's timeout.
describe('defect 3: a deep pipeline neither starves other connections nor costs quadratic time', { concurrency: 3 }, () => {
  const total = 30_000;
  /** `1` throughout, with a marker every 3,000 requests (and first and last) so the order shows. */
  const requestAt = (i: number) => (i === total - 1 ? 12 : i % 3_000 === 0 ? 3 + i / 3_000 : 1);
  const pipeline = Array.from({ length: total }, (_, i) => `${requestAt(i)}\n`).join('');

  for (const variant of VARIANT_NAMES.filter((name) => !TAKES_TURNS.includes(name))) {
    it(
      `${variant}: another connection's fib(6) is answered in the first half of 30,000 pipelined requests, which all come back in order`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        // WORKERS=1: cluster's two connections share one worker, as they would share `eventloop`.
        await withServer(variant, { WORKERS: '1' }, async (server) => {
          const b = await TestClient.connect(server.port);
          assert.equal(await b.ask('1'), 'fib: 1');
          const a = connect({ port: server.port, host: '127.0.0.1' });
          a.on('error', () => {});
          await once(a, 'connect');
          const replies = new PipelineReader(a, (i) => fibReply(requestAt(i)), total);
          let aCountAtB = -1;
          b.socket.once('data', () => (aCountAtB = replies.count));
          // B asks while A's pipeline is being worked on: at A's first reply.
          replies.whenFirstReply(() => b.socket.write('6\n'));
          const started = performance.now();
          a.write(pipeline);
          const bReply = await b.line(120_000);
          const complete = await replies.finished(120_000);
          const seconds = (performance.now() - started) / 1000;
          a.destroy();
          b.close();
          console.log(
            `${variant}: B's fib(6) answered after ${aCountAtB} of A's ${total} replies; A's pipeline took ${seconds.toFixed(2)} s`,
          );
          assert.equal(bReply, 'fib: 8');
          assert.ok(complete, `A got ${replies.count} of ${total} replies`);
          assert.deepEqual(replies.mismatches, [], 'A’s replies in request order');
          assert.ok(
            aCountAtB >= 0 && aCountAtB < total / 2,
            `B's reply came after ${aCountAtB} of A's ${total} replies: one pipelining client starves the others`,
          );
        });
      },
    );
  }
});

describe('defect 4: idle connections are closed after IDLE_TIMEOUT_MS', { concurrency: WAITING_SERVERS }, () => {
  const idleTimeoutMs = 200;
  const env = { IDLE_TIMEOUT_MS: String(idleTimeoutMs) };

  for (const variant of VARIANT_NAMES) {
    it(`${variant}: a silent connection is closed with no reply line, and counted`, { timeout: TEST_TIMEOUT_MS }, async () => {
      await withServer(variant, env, async (server) => {
        const metric = { labels: { reason: 'idle' } };
        const before = sample(await metricsOf(server), 'fib_connections_closed_total', metric.labels);
        const silent = await TestClient.connect(server.port);
        const closed = await closedWithin(silent);
        const line = await silent.line(1).catch(() => null);
        silent.close();
        assert.ok(closed, `a connection silent for ${STATE_DEADLINE_MS} ms (IDLE_TIMEOUT_MS=${idleTimeoutMs}) is still open`);
        assert.equal(line, null, 'no reply line: nothing was asked');
        const counted = await waitForSample(
          server,
          'fib_connections_closed_total',
          (value) => value >= (before || 0) + 1,
          metric,
        );
        assert.ok(
          counted.met,
          `fib_connections_closed_total{reason="idle"} read ${counted.seen.join(' -> ')} (before: ${before})`,
        );
        const active = await waitForActiveConnections(server, 0);
        assert.ok(active.met, `fib_connections_active read ${active.seen.join(' -> ')}`);
      });
    });

    it(
      `${variant}: a request in flight longer than the idle timeout is answered, and the connection goes on`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        await withServer(variant, env, async (server) => {
          const client = await TestClient.connect(server.port);
          try {
            // An n in flight for several idle timeouts: up from fib(28) until one takes that long
            // (the first request may include a thread or process start, so it does not count).
            assert.equal(await client.ask('27'), fibReply(27));
            let n = 28;
            let took = 0;
            for (; n <= 40 && took < 3 * idleTimeoutMs; n += 2) {
              const t = performance.now();
              const reply = await replyOrFate(client, String(n), 60_000);
              took = performance.now() - t;
              assert.equal(
                reply,
                fibReply(n),
                `fib(${n}) in flight for ${took.toFixed(0)} ms (IDLE_TIMEOUT_MS=${idleTimeoutMs})`,
              );
            }
            n -= 2;
            assert.ok(
              took > idleTimeoutMs,
              `fib(${n}) took ${took.toFixed(0)} ms, under the idle timeout: the test proved nothing`,
            );
            // Idleness counts from the last reply: a client that asks again at once is not cut off.
            assert.equal(await replyOrFate(client, '6'), 'fib: 8', `the next request right after fib(${n})'s reply`);
            console.log(`${variant}: fib(${n}) in flight ${took.toFixed(0)} ms with IDLE_TIMEOUT_MS=${idleTimeoutMs}: answered`);
          } finally {
            client.close();
          }
        });
      },
    );
  }

  for (const variant of TAKES_TURNS) {
    it(
      `${variant}: a silent client does not hold the server: the next client is served once it is closed`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        await withServer(variant, env, async (server) => {
          const silent = await TestClient.connect(server.port);
          const next = await TestClient.connect(server.port);
          const reply = await replyOrFate(next, '6', STATE_DEADLINE_MS);
          silent.close();
          next.close();
          assert.equal(reply, 'fib: 8', `the client behind a silent one (IDLE_TIMEOUT_MS=${idleTimeoutMs})`);
        });
      },
    );
  }
});

describe('defect 5: connection and worker counts tell the truth', () => {
  it('cluster (WORKERS=2): 3 open connections read fib_connections_active 3', { timeout: TEST_TIMEOUT_MS }, async () => {
    await withServer('cluster', { WORKERS: '2' }, async (server) => {
      const clients = await Promise.all([0, 1, 2].map(() => TestClient.connect(server.port)));
      try {
        for (const client of clients) assert.equal(await client.ask('1'), 'fib: 1');
        const active = await waitForActiveConnections(server, 3);
        assert.ok(active.met, `fib_connections_active read ${active.seen.join(' -> ')} with 3 connections open`);
      } finally {
        for (const client of clients) client.close();
      }
      const gone = await waitForActiveConnections(server, 0);
      assert.ok(gone.met, `fib_connections_active read ${gone.seen.join(' -> ')} with every connection gone`);
    });
  });

  /** Whether the server still runs, or how it ended (the error it printed, else its last line). */
  const status = (server: RunningVariant) => {
    if (server.child.exitCode === null) return 'running';
    const lines = server.stderr().trim().split('\n');
    return `exited ${server.child.exitCode}: ${lines.find((line) => /^[A-Za-z]*Error: /.test(line)) ?? lines.at(-1)}`;
  };

  /**
   * Kills a worker process, then its replacement as soon as it appears: a process that dies that
   * young is replaced only after a pause (no crash loop), during which one worker is missing.
   */
  async function killWorkerAndItsReplacement(server: RunningVariant): Promise<string> {
    const workers = liveChildren(server);
    process.kill(workers[0]!, 'SIGKILL');
    const replacement = await waitForNewChild(server, workers);
    process.kill(replacement, 'SIGKILL');
    return `killed ${workers[0]} and its replacement ${replacement} (workers were ${workers.join(',')})`;
  }

  for (const [variant, env] of [
    ['cluster', { WORKERS: '2' }],
    ['processpool', { POOL_SIZE: '2' }],
    ['coroutines', { POOL_SIZE: '2' }],
  ] as const) {
    it(
      `${variant}: fib_workers drops to 1 while a worker is missing, returns to 2 once it is replaced, and the variant serves on`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        await withServer(variant, env, async (server) => {
          assert.equal(sample(await metricsOf(server), 'fib_workers'), 2);
          const killed = await killWorkerAndItsReplacement(server);
          const dip = await waitForSample(server, 'fib_workers', (value) => value === 1);
          assert.ok(
            dip.met,
            `${killed}; fib_workers read ${dip.seen.join(' -> ')} (-1: no /metrics); the server is ${status(server)}`,
          );
          const back = await waitForSample(server, 'fib_workers', (value) => value === 2);
          assert.ok(
            back.met,
            `${killed}; fib_workers read ${dip.seen.join(' -> ')}, then ${back.seen.join(' -> ')}; the server is ${status(server)}`,
          );
          assert.equal(liveChildren(server).length, 2, 'two live worker processes again');
          for (let i = 0; i < 4; i++) {
            const client = await TestClient.connect(server.port);
            assert.equal(await replyOrFate(client, '6'), 'fib: 8');
            client.close();
          }
          console.log(`${variant}: ${killed}; fib_workers ${dip.seen.join(' -> ')} -> ${back.seen.join(' -> ')}`);
        });
      },
    );
  }

  it(
    'threadpool (POOL_SIZE=2): after piscina replaces the thread of a client that left mid-request, fib_workers reads 2 and both threads compute',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withServer('threadpool', { POOL_SIZE: '2' }, async (server) => {
        const leaver = await TestClient.connect(server.port);
        await leaver.write('40\n');
        await waitUntilComputing(server.child.pid!);
        leaver.close(); // piscina terminates the thread computing it and starts another
        const settled = await waitForSample(server, 'fib_inflight_requests', (value) => value === 0);
        assert.ok(settled.met, `fib_inflight_requests read ${settled.seen.join(' -> ')}`);
        const workers = await waitForSample(server, 'fib_workers', (value) => value === 2);
        assert.ok(workers.met, `fib_workers read ${workers.seen.join(' -> ')}`);
        const clients = await Promise.all([0, 1].map(() => TestClient.connect(server.port)));
        const replies = await Promise.all(clients.map((client) => replyOrFate(client, '30', 30_000)));
        for (const client of clients) client.close();
        assert.deepEqual(replies, [fibReply(30), fibReply(30)]);
      });
    },
  );
});

describe('found by the fuzz harness', { concurrency: WAITING_SERVERS }, () => {
  for (const variant of VARIANT_NAMES) {
    it(
      `${variant}: clients that connect and close (or half-close) at once, sending nothing, are released`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        await withServer(variant, {}, async (server) => {
          const quitter = await TestClient.connect(server.port);
          quitter.close();
          const halfCloser = await TestClient.connect(server.port);
          halfCloser.socket.end();
          const closed = await closedWithin(halfCloser);
          const active = await waitForActiveConnections(server, 0);
          assert.ok(closed, 'the server closes a connection whose client half-closed');
          assert.ok(active.met, `fib_connections_active read ${active.seen.join(' -> ')} with both clients gone, not 0`);
        });
      },
    );

    it(
      `${variant}: complete lines followed by a half-close (printf '25\\n1\\n2\\n' | nc -N) are all answered`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        await withServer(variant, {}, async (server) => {
          const client = await TestClient.connect(server.port);
          await client.write('25\n1\n2\n');
          client.socket.end();
          const replies: string[] = [];
          for (let i = 0; i < 3; i++)
            replies.push(await client.line(STATE_DEADLINE_MS).catch((error: Error) => `<${error.message}>`));
          assert.ok(await closedWithin(client), `the server closes a half-closed connection (replies ${replies.join(' | ')})`);
          assert.deepEqual(
            replies,
            [fibReply(25), 'fib: 1', 'fib: 1'],
            `replies to 25, 1, 2 then a half-close: ${replies.join(' | ')}`,
          );
        });
      },
    );
  }
});
