// The queue variant when Redis fails or no worker answers, with a real redis-server: killed and
// restarted (empty) under load, every request gets exactly one reply (a result or
// `unavailable`), the front answers at once while Redis is away and recovers by itself; with no
// worker running, the front's deadline answers `unavailable` and withdraws the request.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient, metricsOf, sample } from '../helpers.js';
import { formatTally, loadAndTally, metricOf, startQueue, waitFor } from './helpers.js';

describe('queue: Redis failing', () => {
  it(
    'Redis killed and restarted under load: exactly one reply per request, and the front recovers by itself',
    { timeout: 120_000 },
    async () => {
      const queue = await startQueue({
        workers: 2,
        workerEnv: { CLAIM_IDLE_MS: '1000' },
        frontEnv: { QUEUE_DEADLINE_MS: '5000' },
      });
      try {
        let phase: 'before' | 'down' | 'after' = 'before';
        const seen = { before: 0, down: 0, after: 0 };
        let stopping = false;
        const load = loadAndTally(queue.front.port, {
          connections: 6,
          depth: 2,
          ns: [20, 22, 24, 25, 26, 27],
          stop: () => stopping,
          onReply: (reply) => void (reply.startsWith('fib: ') && (seen[phase] += 1)),
        });
        await waitFor('results before the outage', () => seen.before >= 200);
        await queue.redis.kill();
        phase = 'down';
        await waitFor(
          'the front to see Redis gone',
          async () => sample(await metricsOf(queue.front), 'lab_queue_redis_up') === 0,
        );
        // A new request is refused at once; the ones in flight wait for Redis (or their deadline).
        const probe = await TestClient.connect(queue.front.port);
        assert.match(await probe.ask('6'), /^error: unavailable \S/);
        probe.close();
        await queue.redis.restart();
        phase = 'after';
        await waitFor(
          'results again after the restart',
          () => seen.after >= 200,
          () => `${JSON.stringify(seen)}; front: ${queue.front.stderr()}`,
        );
        stopping = true;
        const tally = await load;
        const front = await metricsOf(queue.front);
        const unavailable = (reason: string) => sample(front, 'lab_queue_unavailable_total', { reason });
        console.log(
          `queue Redis restart: ${formatTally(tally)}; results before ${seen.before}, while down ${seen.down}, after ${seen.after}; ` +
            `unavailable: at once ${unavailable('redis_down')}, lost with Redis ${unavailable('redis_lost')}, at the deadline ${unavailable('deadline')}`,
        );
        assert.equal(tally.lost, 0, formatTally(tally));
        assert.equal(tally.duplicates, 0, formatTally(tally));
        assert.equal(tally.wrong, 0, formatTally(tally));
        assert.deepEqual(Object.keys(tally.errors), ['unavailable'], formatTally(tally));
        assert.equal(tally.results + tally.errors.unavailable!, tally.sent, formatTally(tally));
        assert.ok(unavailable('redis_down') >= 1, 'new requests answered at once while Redis was down');
        assert.ok(
          unavailable('redis_lost') + unavailable('deadline') >= 1,
          'the requests in flight were answered once Redis had lost them',
        );
        assert.equal(sample(front, 'lab_queue_redis_up'), 1);
        // Workers came back by themselves too: both answer again.
        for (const worker of queue.workers) {
          assert.equal(await metricOf(worker.metricsPort, 'lab_queue_redis_up'), 1, `${worker.name} reconnected`);
        }
        const client = await TestClient.connect(queue.front.port);
        assert.equal(await client.ask('6'), 'fib: 8');
        client.close();
      } finally {
        await queue.stop();
      }
    },
  );

  it('answers unavailable at once while Redis is down, before any deadline', { timeout: 60_000 }, async () => {
    const queue = await startQueue({ workers: 1, frontEnv: { QUEUE_DEADLINE_MS: '600000' } });
    const client = await TestClient.connect(queue.front.port);
    try {
      assert.equal(await client.ask('6'), 'fib: 8');
      await queue.redis.kill();
      await waitFor('the front to see Redis gone', async () => sample(await metricsOf(queue.front), 'lab_queue_redis_up') === 0);
      assert.match(await client.ask('6'), /^error: unavailable \S/);
      assert.equal(sample(await metricsOf(queue.front), 'lab_queue_unavailable_total', { reason: 'redis_down' }), 1);
      await queue.redis.restart();
      await waitFor('the front to be back', async () => sample(await metricsOf(queue.front), 'lab_queue_redis_up') === 1);
      assert.equal(await client.ask('7'), 'fib: 13');
    } finally {
      client.close();
      await queue.stop();
    }
  });
});

describe('queue: no worker', () => {
  it(
    'answers unavailable at the deadline, withdraws the request, and serves once a worker comes',
    { timeout: 60_000 },
    async () => {
      const queue = await startQueue({ workers: 0, frontEnv: { QUEUE_DEADLINE_MS: '300' } });
      const client = await TestClient.connect(queue.front.port);
      const redis = queue.redis.client();
      try {
        assert.match(await client.ask('25'), /^error: unavailable no worker answered within 300 ms/);
        assert.equal(sample(await metricsOf(queue.front), 'lab_queue_unavailable_total', { reason: 'deadline' }), 1);
        await waitFor('the request to be withdrawn from the stream', async () => (await redis.xlen('lab:fib:requests')) === 0);
        const worker = await queue.addWorker({ WORKER_NAME: 'late' });
        assert.equal(await client.ask('5'), 'fib: 5');
        assert.equal(
          await metricOf(worker.metricsPort, 'lab_queue_worker_jobs_total', { outcome: 'replied' }),
          1,
          'the worker computed only the request still waited for',
        );
      } finally {
        client.close();
        await queue.stop();
      }
    },
  );

  it('answers overloaded while the request stream is full, and serves again once it drains', { timeout: 60_000 }, async () => {
    const queue = await startQueue({ workers: 0, frontEnv: { QUEUE_STREAM_MAX_LEN: '2' } });
    const waiting = await TestClient.connect(queue.front.port);
    const other = await TestClient.connect(queue.front.port);
    try {
      await waiting.write('5\n6\n7\n');
      await waitFor(
        'the front to see the stream full',
        async () => sample(await metricsOf(queue.front), 'lab_queue_stream_entries') >= 2,
      );
      assert.match(await other.ask('8'), /^error: overloaded .*QUEUE_STREAM_MAX_LEN 2/);
      await queue.addWorker({ WORKER_NAME: 'w1' });
      assert.deepEqual(await waiting.readLines(3), ['fib: 5', 'fib: 8', 'fib: 13']);
      let reply = '';
      await waitFor(
        'the front to take requests again',
        async () => (reply = await other.ask('8')) === 'fib: 21',
        () => reply,
      );
    } finally {
      waiting.close();
      other.close();
      await queue.stop();
    }
  });

  it('exits 2 naming the option on bad configuration', async () => {
    const { runLab } = await import('../helpers.js');
    const { code, stderr } = await runLab(['serve', 'queue', '--port', '0', '--metrics-port', '0'], { QUEUE_DEADLINE_MS: '0' });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /QUEUE_DEADLINE_MS/);
    const bad = await runLab(['serve', 'queue', '--port', '0', '--metrics-port', '0'], { REDIS_URL: 'localhost:6379' });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /REDIS_URL/);
  });
});
