// The queue variant when Redis fails or no worker answers, with a real redis-server: killed and
// restarted (empty) under load, every request gets exactly one reply (a result or
// `unavailable`), the front answers at once while Redis is away and recovers by itself; with no
// worker running, the front's deadline answers `unavailable` and withdraws the request. A URL
// Redis itself refuses (no such database, wrong credentials, a user without the permissions) is
// bad configuration: front and worker exit 2 at once; a Redis merely down at start is waited for.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient, metricsOf, runLab, sample, startVariant, type RunningVariant } from '../helpers.js';
import {
  RedisProcess,
  formatTally,
  loadAndTally,
  metricOf,
  startQueue,
  startWorker,
  waitFor,
  type RunningWorker,
} from './helpers.js';

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
        // Requests surely held by Redis when it dies: with the workers frozen for a moment, the
        // front's next requests sit in the stream (added, nobody answering). Killed at a random
        // instant instead, every request in flight could be between the front and Redis, or
        // answered, and none lost with Redis (1 run in about 20).
        for (const worker of queue.workers) worker.child.kill('SIGSTOP');
        let held = 0;
        try {
          await waitFor('requests waiting in the stream, the workers frozen', async () => {
            held = await queue.redis.client().xlen('lab:fib:requests');
            return held >= 1;
          });
          await queue.redis.kill();
        } finally {
          for (const worker of queue.workers) worker.child.kill('SIGCONT');
        }
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
            `unavailable: at once ${unavailable('redis_down')}, lost with Redis ${unavailable('redis_lost')}, at the deadline ${unavailable('deadline')} ` +
            `(${held} held by Redis when it died)`,
        );
        assert.equal(tally.lost, 0, formatTally(tally));
        assert.equal(tally.duplicates, 0, formatTally(tally));
        assert.equal(tally.wrong, 0, formatTally(tally));
        assert.deepEqual(Object.keys(tally.errors), ['unavailable'], formatTally(tally));
        assert.equal(tally.results + tally.errors.unavailable!, tally.sent, formatTally(tally));
        assert.ok(unavailable('redis_down') >= 1, 'new requests answered at once while Redis was down');
        assert.ok(
          unavailable('redis_lost') + unavailable('deadline') >= 1,
          `the ${held} requests Redis held when it died were answered once it had lost them`,
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
      // The third is refused as it is added (the front's own look at the stream is older): its
      // reply comes in its turn, after the two that were kept.
      await waiting.write('5\n6\n7\n');
      await waitFor(
        'the front to see the stream full',
        async () => sample(await metricsOf(queue.front), 'lab_queue_stream_entries') >= 2,
      );
      assert.match(await other.ask('8'), /^error: overloaded .*QUEUE_STREAM_MAX_LEN 2/);
      assert.equal(await queue.redis.client().xlen('lab:fib:requests'), 2);
      await queue.addWorker({ WORKER_NAME: 'w1' });
      const replies = await waiting.readLines(3);
      assert.deepEqual(replies.slice(0, 2), ['fib: 5', 'fib: 8']);
      assert.match(replies[2]!, /^error: overloaded .*QUEUE_STREAM_MAX_LEN 2/);
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
    const { code, stderr } = await runLab(['serve', 'queue', '--port', '0', '--metrics-port', '0'], { QUEUE_DEADLINE_MS: '0' });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /QUEUE_DEADLINE_MS/);
    const bad = await runLab(['serve', 'queue', '--port', '0', '--metrics-port', '0'], { REDIS_URL: 'localhost:6379' });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /REDIS_URL/);
  });
});

describe('queue: Redis at start, refusing the URL or down', () => {
  it(
    'exits 2 with one line naming REDIS_URL, without retrying: no such database, wrong or missing password, a user without the permissions (front and worker)',
    { timeout: 120_000 },
    async () => {
      const redis = await RedisProcess.start();
      const inspector = redis.client();
      const host = `127.0.0.1:${redis.port}`;
      const connectionsReceived = async () =>
        Number(/^total_connections_received:(\d+)/m.exec(await inspector.info('stats'))?.[1]);
      /** Runs `lab serve queue` and `lab worker` against `url`; each must exit 2 on its own, saying `reason` in one line. */
      const expectRefused = async (what: string, url: string, reason: RegExp) => {
        for (const args of [
          ['serve', 'queue', '--port', '0', '--metrics-port', '0'],
          ['worker', '--metrics-port', '0'],
        ]) {
          const before = await connectionsReceived();
          // The timeout only ends a process that retries forever (the old behaviour): it exits 2 long before.
          const { code, stderr } = await runLab(args, { HOST: '127.0.0.1', REDIS_URL: url }, 30_000);
          const connections = (await connectionsReceived()) - before;
          const lines = stderr.trim().split('\n');
          const context = `lab ${args[0]}, ${what}: exit ${code}, ${connections} connections, stderr:\n${stderr}`;
          assert.equal(code, 2, context);
          assert.deepEqual(
            lines.filter((line) => line.includes('REDIS_URL')),
            [lines.at(-1)],
            `one line names the option, the last: ${context}`,
          );
          assert.match(lines.at(-1)!, /^lab: invalid --redis \(REDIS_URL\): redis:\/\/\S+: /, context);
          assert.match(lines.at(-1)!, reason, context);
          assert.doesNotMatch(stderr, /unreachable|reconnect|retrying|could not join/, `no retry loop: ${context}`);
          assert.doesNotMatch(stderr, /:wrong@/, `the password is not shown: ${context}`);
          // Its two connections (commands, and replies or reads), each once: it did not go round again.
          assert.ok(connections <= 2, `${connections} connections to Redis: ${context}`);
        }
      };
      try {
        await inspector.call('ACL', 'SETUSER', 'lab', 'on', '>right', '~*', '+@all');
        await inspector.call('ACL', 'SETUSER', 'reader', 'on', '>pw', '~*', '+@read', '+@connection');
        await expectRefused(
          'database 99 of a server with 16',
          `redis://${host}/99`,
          /no such database \(ERR DB index is out of range\)/,
        );
        await expectRefused('a wrong password', `redis://lab:wrong@${host}`, /refused the credentials \(WRONGPASS /);
        await expectRefused(
          'a user that may only read',
          `redis://reader:pw@${host}`,
          /lacks a permission the queue needs \(NOPERM /,
        );
        // This connection stays authenticated; new ones need the password from now on.
        await inspector.config('SET', 'requirepass', 'right');
        await expectRefused('no password where one is required', `redis://${host}`, /refused the credentials \(NOAUTH /);
      } finally {
        await redis.stop();
      }
    },
  );

  it(
    'once started, a refusal is an outage: said once naming REDIS_URL, retried, and served again once put right',
    { timeout: 60_000 },
    async () => {
      const queue = await startQueue({ workers: 1 });
      const admin = queue.redis.client();
      const client = await TestClient.connect(queue.front.port);
      try {
        const worker = queue.workers[0]!;
        const connectionsReceived = async () => Number(/^total_connections_received:(\d+)/m.exec(await admin.info('stats'))?.[1]);
        assert.equal(await client.ask('6'), 'fib: 8');
        // The password changes under them: their connections are cut and come back to NOAUTH.
        await admin.config('SET', 'requirepass', 'changed');
        const before = await connectionsReceived();
        await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
        await waitFor(
          'the front to see Redis refuse it',
          async () => sample(await metricsOf(queue.front), 'lab_queue_redis_up') === 0,
        );
        assert.match(await client.ask('6'), /^error: unavailable \S/);
        const refused = /refused --redis \(REDIS_URL\): .*NOAUTH/;
        await waitFor(
          'front and worker to say why',
          () => refused.test(queue.front.stderr()) && refused.test(worker.stderr()),
          () => `front: ${queue.front.stderr()}\nworker: ${worker.stderr()}`,
        );
        // Their four connections come back several times each (backoff from 100 ms) before it is put right.
        await waitFor('front and worker to try again', async () => (await connectionsReceived()) - before >= 12);
        await admin.config('SET', 'requirepass', '');
        await waitFor('the front to be back', async () => sample(await metricsOf(queue.front), 'lab_queue_redis_up') === 1);
        let reply = '';
        await waitFor(
          'the worker to answer again',
          async () => (reply = await client.ask('6')) === 'fib: 8',
          () => reply,
        );
        for (const [name, stderr] of Object.entries({ front: queue.front.stderr(), worker: worker.stderr() })) {
          const refusals = stderr.split('\n').filter((line) => line.includes('refused --redis'));
          // One line per connection (two each), not one per reconnection attempt.
          assert.ok(refusals.length <= 2, `${name}: ${refusals.length} lines:\n${stderr}`);
        }
        assert.equal(queue.front.child.exitCode, null, 'the front is still running');
      } finally {
        client.close();
        await queue.stop();
      }
    },
  );

  it('waits for a Redis that is merely down at start: front and worker join once it comes up', { timeout: 60_000 }, async () => {
    const redis = await RedisProcess.notStarted();
    let redisStarted = false;
    let front: RunningVariant | null = null;
    // Started first: by the time the front has waited for Redis, so has the worker.
    const workerUp: Promise<RunningWorker> = startWorker(redis.url, { WORKER_NAME: 'w1' });
    workerUp.catch(() => {}); // awaited below
    try {
      // The front waits a few seconds for Redis, then serves `unavailable` until it comes.
      front = await startVariant('queue', { REDIS_URL: redis.url });
      assert.match(front.stderr(), /unreachable .*reconnecting with backoff/);
      assert.match(front.stderr(), /Redis not reachable yet/);
      const probe = await TestClient.connect(front.port);
      assert.match(await probe.ask('6'), /^error: unavailable \S/);
      probe.close();
      await redis.restart();
      redisStarted = true;
      const worker = await workerUp;
      assert.match(worker.stderr(), /unreachable .*reconnecting with backoff/, 'the worker found Redis down and waited');
      await waitFor('the front to reach Redis', async () => sample(await metricsOf(front!), 'lab_queue_redis_up') === 1);
      const client = await TestClient.connect(front.port);
      assert.equal(await client.ask('6'), 'fib: 8');
      client.close();
    } finally {
      if (!redisStarted) await redis.restart(); // so that a worker still waiting comes up, to be stopped
      await (await workerUp.catch(() => null))?.stop('SIGKILL');
      await front?.stop('SIGKILL');
      await redis.stop();
    }
  });
});
