// The queue variant when workers fail, with real processes and a real Redis: a worker killed
// mid-job has its job claimed by another and every request still gets exactly one reply; a job
// whose workers keep dying is dead-lettered and answered `internal`; a stalled worker that comes
// back does not answer a job another worker has answered; a duplicate reply never reaches the
// client.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient, fetchText, metricsOf, referenceFib, sample } from '../helpers.js';
import { formatTally, loadAndTally, metricOf, startQueue, startWorker, waitFor, type RunningWorker } from './helpers.js';

/** Waits until `worker` is computing a job, then kills it with SIGKILL. */
async function killMidJob(worker: RunningWorker): Promise<void> {
  await waitFor(
    `${worker.name} to be computing`,
    async () => (await metricOf(worker.metricsPort, 'lab_queue_worker_busy')) === 1,
    () => worker.stderr(),
  );
  await worker.stop('SIGKILL');
}

describe('queue: workers failing', () => {
  it(
    'kill -9 of a worker mid-job under load: its job is claimed, every request gets exactly one reply',
    { timeout: 120_000 },
    async () => {
      const queue = await startQueue({ workers: 2, workerEnv: { CLAIM_IDLE_MS: '1000' } });
      const redis = queue.redis.client();
      try {
        let stopping = false;
        let results = 0;
        const load = loadAndTally(queue.front.port, {
          connections: 6,
          depth: 2,
          ns: [30, 31, 32, 33],
          stop: () => stopping,
          onReply: (reply) => void (reply.startsWith('fib: ') && (results += 1)),
        });
        await waitFor('the load to be going', () => results >= 20);
        // Kill a worker while it computes; retry with a fresh one if it was between two jobs.
        let victim = queue.workers[0]!;
        let heldJobs: unknown[] = [];
        for (let attempt = 1; attempt <= 3 && heldJobs.length === 0; attempt++) {
          await killMidJob(victim);
          heldJobs = await redis.xpending('lab:fib:requests', 'workers', '-', '+', 10, victim.name);
          if (heldJobs.length === 0) victim = await queue.addWorker({ WORKER_NAME: `w-retry-${attempt}` });
        }
        assert.ok(heldJobs.length > 0, 'a worker was killed while holding a job');
        await waitFor(
          'the killed worker’s job to be claimed and answered',
          async () => (await metricsOf(queue.front).then((text) => sample(text, 'lab_queue_redeliveries_total'))) >= 1,
          async () => `front: ${(await metricsOf(queue.front)).match(/^lab_queue_.*$/gm)?.join('; ')}`,
        );
        const before = results;
        await waitFor('the load to go on after the claim', () => results >= before + 20);
        stopping = true;
        const tally = await load;
        const front = await metricsOf(queue.front);
        const alive = queue.workers.filter((worker) => worker.child.exitCode === null && worker.child.signalCode === null);
        let claims = 0;
        for (const worker of alive) claims += await metricOf(worker.metricsPort, 'lab_queue_claims_total');
        console.log(
          `queue kill -9: ${formatTally(tally)}; killed ${victim.name} holding ${heldJobs.length} job(s); claims by the ${alive.length} others ${claims}; ` +
            `front redeliveries ${sample(front, 'lab_queue_redeliveries_total')}, dropped duplicate ${sample(front, 'lab_queue_dropped_replies_total', { reason: 'duplicate' })}`,
        );
        assert.equal(tally.lost, 0, formatTally(tally));
        assert.equal(tally.duplicates, 0, formatTally(tally));
        assert.equal(tally.wrong, 0, formatTally(tally));
        assert.deepEqual(tally.errors, {}, formatTally(tally));
        assert.equal(tally.results, tally.sent, formatTally(tally));
        assert.ok(claims >= 1, `a surviving worker claimed the dead one's job: ${claims}`);
      } finally {
        await queue.stop();
      }
    },
  );

  it(
    'dead-letters a job after MAX_DELIVERIES deliveries and answers it internal; the connection goes on',
    { timeout: 120_000 },
    async () => {
      const workerEnv = { CLAIM_IDLE_MS: '500', MAX_DELIVERIES: '2' };
      // fib(44): seconds of work, so each worker is surely killed in the middle of it.
      const queue = await startQueue({ workers: 1, workerEnv, frontEnv: { FIB_MAX_N: '44' } });
      const client = await TestClient.connect(queue.front.port);
      try {
        await client.write('44\n');
        // Every worker that takes the job dies computing it: deliveries 1 and 2.
        await killMidJob(queue.workers[0]!);
        await killMidJob(await queue.addWorker({ ...workerEnv, WORKER_NAME: 'second' }));
        // The third delivery is over the bound: dead-lettered without computing.
        const third = await queue.addWorker({ ...workerEnv, WORKER_NAME: 'third' });
        const reply = await client.line(30_000);
        assert.match(reply, /^error: internal .*dead-lettered.*delivered 3 times/, reply);
        const dead = await queue.redis.client().xrange('lab:fib:dead', '-', '+');
        assert.equal(dead.length, 1, JSON.stringify(dead));
        const fields = dead[0]![1];
        const field = (name: string) => fields[fields.indexOf(name) + 1];
        assert.equal(field('n'), '44');
        assert.equal(field('deliveries'), '3');
        assert.equal(field('worker'), 'third');
        const front = await metricsOf(queue.front);
        assert.equal(sample(front, 'lab_queue_dead_letters_total'), 1);
        assert.equal(sample(front, 'fib_requests_total', { outcome: 'internal' }), 1);
        assert.equal(await metricOf(third.metricsPort, 'lab_queue_worker_jobs_total', { outcome: 'dead_lettered' }), 1);
        assert.equal(await client.ask('6'), 'fib: 8', 'the connection is served on');
        console.log(`queue dead letter: ${reply}`);
      } finally {
        client.close();
        await queue.stop();
      }
    },
  );

  it(
    'a stalled worker that comes back does not answer the job another worker claimed and answered',
    { timeout: 60_000 },
    async () => {
      const workerEnv = { CLAIM_IDLE_MS: '500' };
      const queue = await startQueue({ workers: 1, workerEnv });
      const client = await TestClient.connect(queue.front.port);
      const stalled = queue.workers[0]!;
      try {
        await client.write('38\n');
        await waitFor(
          'the first worker to be computing',
          async () => (await metricOf(stalled.metricsPort, 'lab_queue_worker_busy')) === 1,
        );
        stalled.child.kill('SIGSTOP'); // a long GC pause, a frozen VM, a network partition
        const rescuer = await queue.addWorker({ ...workerEnv, WORKER_NAME: 'rescuer' });
        assert.equal(await client.line(30_000), `fib: ${referenceFib(38)}`);
        assert.equal(await metricOf(rescuer.metricsPort, 'lab_queue_claims_total'), 1);
        stalled.child.kill('SIGCONT');
        // It finds the job answered: stops computing it, or computes it and sends no reply.
        const outcome = async (name: string) => metricOf(stalled.metricsPort, 'lab_queue_worker_jobs_total', { outcome: name });
        await waitFor(
          'the stalled worker to give the job up',
          async () => (await outcome('cancelled')) + (await outcome('superseded')) === 1,
        );
        assert.equal(await outcome('replied'), 0);
        assert.equal(await client.ask('3'), 'fib: 2', 'no second reply came before this one');
        const front = await metricsOf(queue.front);
        assert.equal(
          sample(front, 'lab_queue_dropped_replies_total', { reason: 'duplicate' }),
          0,
          'no duplicate even reached the front',
        );
        console.log(`queue stalled worker: cancelled ${await outcome('cancelled')}, superseded ${await outcome('superseded')}`);
      } finally {
        stalled.child.kill('SIGCONT');
        client.close();
        await queue.stop();
      }
    },
  );

  it(
    'drops a second reply to an answered request (as a redelivery after a lost acknowledgement would send)',
    { timeout: 60_000 },
    async () => {
      const queue = await startQueue({ workers: 1 });
      const client = await TestClient.connect(queue.front.port);
      const redis = queue.redis.client();
      try {
        assert.equal(await client.ask('20'), `fib: ${referenceFib(20)}`);
        const [replyKey] = await redis.keys('lab:fib:replies:*');
        assert.ok(replyKey, 'the front has a reply stream');
        // Replay the reply a worker sent for the front's first request.
        await redis.xadd(replyKey, '*', 'r', '1', 'w', 'w1', 'd', '2', 'v', '6765', 's', String(Date.now()), 'c', '0.001');
        await waitFor(
          'the front to drop it',
          async () => sample(await metricsOf(queue.front), 'lab_queue_dropped_replies_total', { reason: 'duplicate' }) === 1,
        );
        assert.equal(await client.ask('3'), 'fib: 2', 'the client saw no second reply');
      } finally {
        client.close();
        await queue.stop();
      }
    },
  );
});

describe('queue: a worker on its own', () => {
  it('finishes the job in hand on SIGTERM, replies, and exits 0 leaving its name free', { timeout: 60_000 }, async () => {
    const queue = await startQueue({ workers: 1 });
    const client = await TestClient.connect(queue.front.port);
    const worker = queue.workers[0]!;
    try {
      const health = await fetchText(`http://127.0.0.1:${worker.metricsPort}/healthz`);
      assert.equal(health.status, 200, health.body);
      assert.equal((JSON.parse(health.body) as { worker: string }).worker, 'w1');
      await client.write('38\n');
      await waitFor(
        'the worker to be computing',
        async () => (await metricOf(worker.metricsPort, 'lab_queue_worker_busy')) === 1,
      );
      const code = worker.stop('SIGTERM');
      assert.equal(await client.line(30_000), `fib: ${referenceFib(38)}`);
      assert.equal(await code, 0, worker.stderr());
      const redis = queue.redis.client();
      assert.equal(await redis.exists('lab:fib:worker:w1'), 0, 'its name lease is released');
      assert.equal(await redis.zscore('lab:fib:workers', 'w1'), null, 'it no longer counts as live');
      const pending = (await redis.xpending('lab:fib:requests', 'workers')) as [number, ...unknown[]];
      assert.equal(pending[0], 0, 'nothing left unacknowledged');
    } finally {
      client.close();
      await queue.stop();
    }
  });

  it(
    'takes the lowest free slot, w1, w2, ..., and a slot a worker left (cleanly or not) is taken again',
    { timeout: 60_000 },
    async () => {
      const queue = await startQueue({ workers: 0 });
      try {
        const [first, second, third] = [await queue.addWorker(), await queue.addWorker(), await queue.addWorker()];
        assert.deepEqual([first.name, second.name, third.name], ['w1', 'w2', 'w3']);
        assert.equal(await second.stop('SIGTERM'), 0, second.stderr());
        assert.equal((await queue.addWorker()).name, 'w2', 'a clean stop frees its slot at once');
        await first.stop('SIGKILL');
        const redis = queue.redis.client();
        const held = await redis.pttl('lab:fib:worker:w1');
        assert.ok(held > 0, `the dead worker's lease still runs: ${held} ms`);
        assert.equal((await queue.addWorker()).name, 'w4', 'not while the dead one still holds it');
        await waitFor("the dead worker's lease to expire", async () => (await redis.exists('lab:fib:worker:w1')) === 0);
        assert.equal((await queue.addWorker()).name, 'w1', 'then its slot is taken back');
      } finally {
        await queue.stop();
      }
    },
  );

  it(
    "the front drops a departed worker's series once its registration lapses, and keeps the others'",
    { timeout: 90_000 },
    async () => {
      const queue = await startQueue({ workers: 0 });
      const clients: TestClient[] = [];
      try {
        const [w1, w2] = [await queue.addWorker(), await queue.addWorker()];
        const answeredBy = async (worker: string) =>
          sample(await metricsOf(queue.front), 'fib_worker_requests_total', { worker });
        // Two fib(30)s at once: one worker each (a worker takes one job at a time).
        for (let i = 0; i < 2; i++) clients.push(await TestClient.connect(queue.front.port));
        await Promise.all(clients.map((client) => client.write('30\n')));
        for (const client of clients) assert.equal(await client.line(30_000), `fib: ${referenceFib(30)}`);
        assert.deepEqual([await answeredBy(w1.name), await answeredBy(w2.name)], [1, 1], 'each answered one');
        await w2.stop('SIGKILL');
        const started = Date.now();
        await waitFor(
          `the front to drop ${w2.name}'s series`,
          async () => Number.isNaN(await answeredBy(w2.name)),
          async () =>
            (await metricsOf(queue.front))
              .split('\n')
              .filter((line) => line.startsWith('fib_worker_requests_total'))
              .join('\n'),
        );
        const gone = Date.now() - started;
        console.log(`queue: ${w2.name}'s series dropped ${gone} ms after it was killed (live window 10 s)`);
        assert.equal(await answeredBy(w1.name), 1, `${w1.name}, still live, keeps its series`);
        assert.equal(sample(await metricsOf(queue.front), 'fib_workers'), 1, 'fib_workers counts the one left');
      } finally {
        for (const client of clients) client.close();
        await queue.stop();
      }
    },
  );

  it('exits 2 naming the option on bad configuration', async () => {
    const worker = startWorker('redis://127.0.0.1:1', { CLAIM_IDLE_MS: 'soon' });
    await assert.rejects(worker, /exited with 2 .*--claim-idle-ms \(CLAIM_IDLE_MS\)/);
    await assert.rejects(startWorker('http://127.0.0.1:6379'), /exited with 2 .*--redis \(REDIS_URL\)/);
  });
});
