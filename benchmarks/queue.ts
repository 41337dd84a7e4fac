// The `queue` variant's two figures, printed, not asserted (LAB issue 12):
//   1. Scale-out: fib(27) requests per second with 1, 2 and 4 workers, each held to 0.5 core by
//      its own CFS quota (a cgroup per worker, as a container would have), against the ideal line
//      workers x 0.5 / t(fib(27)), t measured on one unthrottled core in the same run, and against
//      as many bare fib loops under the same quotas, run just before (what the shared host gives).
//   2. The front's cost: fib(1) round trips on one connection, `queue` (front + Redis + a worker)
//      against `eventloop` (fib inline), in the same run.
//
//   npm run build && node dist/benchmarks/queue.js [seconds per measurement, default 10]
//
// Needs redis-server, and root for the quotas (cgroup v1 `cpu` or v2 `cpu.max`); without them the
// workers run unlimited and the report says so.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fib } from '../services/server/fib.js';
import { TestClient, cpuSeconds, referenceFib, startVariant } from '../test/helpers.js';
import { RedisProcess, startWorker, type RunningWorker } from '../test/queue/helpers.js';

const SECONDS = Number(process.argv[2] ?? 10);
const QUOTA_CORES = 0.5;
const N = 27;

/** A CPU quota for one process, as a cgroup of its own (v1 `cpu` controller, or v2 `cpu.max`). */
class CpuQuota {
  private constructor(private readonly dir: string) {}

  /** Null when this process may not create cgroups (not root, or no writable cpu controller). */
  static create(name: string, cores: number): CpuQuota | null {
    const period = 100_000;
    const quota = Math.round(cores * period);
    try {
      if (existsSync('/sys/fs/cgroup/cpu/cgroup.procs')) {
        const dir = join('/sys/fs/cgroup/cpu', name);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'cpu.cfs_period_us'), String(period));
        writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
        return new CpuQuota(dir);
      }
      if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
        const dir = join('/sys/fs/cgroup', name);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'cpu.max'), `${quota} ${period}`);
        return new CpuQuota(dir);
      }
    } catch {
      // not permitted here
    }
    return null;
  }

  /** Moves a whole process (every thread) into the group. */
  add(pid: number): void {
    writeFileSync(join(this.dir, 'cgroup.procs'), String(pid));
  }

  /** CFS periods in which the group was throttled so far. */
  throttledPeriods(): number {
    const stat = readFileSync(join(this.dir, 'cpu.stat'), 'utf8');
    return Number(/^(?:nr_throttled) (\d+)/m.exec(stat)?.[1] ?? NaN);
  }

  /** Removes the group once its processes have exited. */
  async remove(): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        return rmdirSync(this.dir);
      } catch {
        await sleep(20); // the kernel frees the group a moment after its last process exits
      }
    }
  }
}

/** Seconds one fib(n) takes on one unthrottled core here (median of a few runs). */
function fibSeconds(n: number): number {
  const runs: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    fib(n);
    runs.push((performance.now() - t0) / 1000);
  }
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)]!;
}

/** Closed-loop load: `connections` connections keeping `depth` fib(n) in flight for `ms`; replies per second. */
async function throughput(port: number, n: number, connections: number, depth: number, ms: number): Promise<number> {
  const expected = `fib: ${referenceFib(n)}`;
  const until = performance.now() + ms;
  let answered = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      const client = await TestClient.connect(port);
      try {
        await client.write(`${n}\n`.repeat(depth));
        let outstanding = depth;
        while (outstanding > 0) {
          const reply = await client.line(60_000);
          if (reply !== expected) throw new Error(`fib(${n}) answered ${reply}`);
          outstanding -= 1;
          if (performance.now() < until) {
            answered += 1;
            outstanding += 1;
            await client.write(`${n}\n`);
          }
        }
      } finally {
        client.close();
      }
    }),
  );
  return answered / (ms / 1000);
}

/** One connection, one fib(1) at a time, for `ms`: round-trip percentiles in microseconds. */
async function roundTrips(port: number, ms: number): Promise<{ count: number; p50: number; p99: number; mean: number }> {
  const client = await TestClient.connect(port);
  const times: number[] = [];
  const until = performance.now() + ms;
  try {
    while (performance.now() < until) {
      const t0 = performance.now();
      const reply = await client.ask('1');
      times.push((performance.now() - t0) * 1000);
      if (reply !== 'fib: 1') throw new Error(`fib(1) answered ${reply}`);
    }
  } finally {
    client.close();
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { count: times.length, p50: at(0.5), p99: at(0.99), mean: times.reduce((a, b) => a + b, 0) / times.length };
}

/**
 * `count` processes computing fib(n) back to back, each held to QUOTA_CORES like a worker: what
 * this host gives that many quota-bound processes right now (the machine is shared). Req/s.
 */
async function bareLoops(count: number, n: number, ms: number): Promise<number> {
  const fibModule = new URL('../services/server/fib.js', import.meta.url).href;
  const code =
    `import { fib } from ${JSON.stringify(fibModule)};` +
    `process.stdin.once('data', () => { const until = performance.now() + ${ms}; let done = 0;` +
    ` while (performance.now() < until) { fib(${n}); done += 1; } console.log(done); process.exit(0); });`;
  const loops = Array.from({ length: count }, (_, i) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
    const quota = CpuQuota.create(`lab-queue-bench-bare-${i + 1}`, QUOTA_CORES);
    quota?.add(child.pid!);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const done = new Promise<number>((resolve) => child.once('exit', () => resolve(Number(out.trim()))));
    return { child, quota, done };
  });
  await sleep(300); // every loop has loaded its module (and sits in its cgroup) before any starts
  for (const { child } of loops) child.stdin.write('go\n');
  const counts = await Promise.all(loops.map(({ done }) => done));
  for (const { quota } of loops) await quota?.remove();
  return counts.reduce((a, b) => a + b, 0) / (ms / 1000);
}

async function scaleOut(redis: RedisProcess): Promise<void> {
  const t = fibSeconds(N);
  const probe = CpuQuota.create('lab-queue-bench-probe', QUOTA_CORES);
  await probe?.remove();
  const quotas = probe !== null;
  console.log(
    `\n1. fib(${N}) throughput, closed loop, ${SECONDS} s per row; fib(${N}) takes ${(t * 1000).toFixed(2)} ms on one core here; ` +
      (quotas
        ? `each worker in its own cgroup with a ${QUOTA_CORES}-core CFS quota (period 100 ms)`
        : 'NO QUOTA: cgroups are not writable here, workers run unlimited'),
  );
  console.log(
    'workers  quota/worker  ideal req/s  bare loops req/s  queue req/s  of ideal  of bare  cores used/worker  throttled periods/worker  CPU ms/request: workers front redis',
  );
  const front = await startVariant('queue', { REDIS_URL: redis.url, QUEUE_KEY_PREFIX: 'bench:scale' });
  const workers: Array<{ worker: RunningWorker; quota: CpuQuota | null }> = [];
  try {
    for (const count of [1, 2, 4]) {
      while (workers.length < count) {
        const worker = await startWorker(redis.url, {
          WORKER_NAME: `bench-${workers.length + 1}`,
          QUEUE_KEY_PREFIX: 'bench:scale',
        });
        const quota = CpuQuota.create(`lab-queue-bench-${workers.length + 1}`, QUOTA_CORES);
        quota?.add(worker.child.pid!);
        workers.push({ worker, quota });
      }
      const bare = await bareLoops(count, N, SECONDS * 1000);
      await throughput(front.port, N, count * 2, 2, 1000); // warm-up: every worker busy, quotas in effect
      const cpu0 = workers.map(({ worker }) => cpuSeconds(worker.child.pid!));
      const others0 = [cpuSeconds(front.child.pid!), cpuSeconds(redis.pid!)];
      const throttled0 = workers.map(({ quota }) => quota?.throttledPeriods() ?? 0);
      const t0 = performance.now();
      const rate = await throughput(front.port, N, count * 2, 2, SECONDS * 1000);
      const elapsed = (performance.now() - t0) / 1000;
      const cores = workers.map(({ worker }, i) => (cpuSeconds(worker.child.pid!) - cpu0[i]!) / elapsed);
      const [frontCpu, redisCpu] = [cpuSeconds(front.child.pid!), cpuSeconds(redis.pid!)].map((v, i) => v - others0[i]!);
      const perRequest = (cpu: number) => ((cpu / (rate * elapsed)) * 1000).toFixed(2);
      const workerCpu = cores.reduce((a, b) => a + b, 0) * elapsed;
      const throttled = workers.map(({ quota }, i) => (quota?.throttledPeriods() ?? 0) - throttled0[i]!);
      const ideal = (count * (quotas ? QUOTA_CORES : 1)) / t;
      console.log(
        `${String(count).padStart(7)}  ${(quotas ? `${QUOTA_CORES} core` : 'none').padStart(12)}  ${ideal.toFixed(1).padStart(11)}  ` +
          `${bare.toFixed(1).padStart(16)}  ${rate.toFixed(1).padStart(11)}  ${`${((rate / ideal) * 100).toFixed(0)}%`.padStart(8)}  ` +
          `${`${((rate / bare) * 100).toFixed(0)}%`.padStart(7)}  ` +
          `${cores
            .map((c) => c.toFixed(2))
            .join(' ')
            .padStart(17)}  ${throttled.join(' ').padStart(24)}  ` +
          `${perRequest(workerCpu)} ${perRequest(frontCpu!)} ${perRequest(redisCpu!)}`,
      );
    }
  } finally {
    await front.stop();
    for (const { worker } of workers) await worker.stop('SIGKILL');
    for (const { quota } of workers) await quota?.remove();
  }
}

async function overhead(redis: RedisProcess): Promise<void> {
  console.log(`\n2. fib(1) on one connection, one request at a time, ${SECONDS} s each, same run (no quotas)`);
  console.log('variant                           requests   req/s      p50      p99     mean   (queue: front + redis + worker)');
  const worker = await startWorker(redis.url, { WORKER_NAME: 'bench-overhead', QUEUE_KEY_PREFIX: 'bench:overhead' });
  const queue = await startVariant('queue', { REDIS_URL: redis.url, QUEUE_KEY_PREFIX: 'bench:overhead' });
  const eventloop = await startVariant('eventloop');
  const rows: Array<[string, Awaited<ReturnType<typeof roundTrips>>]> = [];
  try {
    for (const [name, port, pids] of [
      ['eventloop', eventloop.port, [eventloop.child.pid!]],
      ['queue (front + Redis + 1 worker)', queue.port, [queue.child.pid!, redis.pid!, worker.child.pid!]],
    ] as const) {
      await roundTrips(port, 1000); // warm-up
      const cpu0 = pids.map((pid) => cpuSeconds(pid));
      const result = await roundTrips(port, SECONDS * 1000);
      const cpu = pids.map((pid, i) => ((cpuSeconds(pid) - cpu0[i]!) / result.count) * 1e6);
      rows.push([name, result]);
      const us = (v: number) => `${v.toFixed(0)} us`.padStart(8);
      console.log(
        `${name.padEnd(34)}${String(result.count).padStart(8)}  ${(result.count / SECONDS).toFixed(0).padStart(6)}  ${us(result.p50)} ${us(result.p99)} ${us(result.mean)}` +
          `   CPU per request: ${cpu.map((v) => `${v.toFixed(0)} us`).join(' + ')}`,
      );
      await sleep(200);
    }
  } finally {
    await queue.stop();
    await eventloop.stop();
    await worker.stop('SIGKILL');
  }
  const [base, queued] = [rows[0]![1], rows[1]![1]];
  console.log(
    `the front's overhead per fib(1): +${(queued.p50 - base.p50).toFixed(0)} us at p50 (${(queued.p50 / base.p50).toFixed(1)}x eventloop), ` +
      `+${(queued.mean - base.mean).toFixed(0)} us on average`,
  );
}

const redis = await RedisProcess.start();
try {
  console.log(
    `queue benchmark: redis-server on 127.0.0.1:${redis.port}; reproduce with: node dist/benchmarks/queue.js ${SECONDS}`,
  );
  await scaleOut(redis);
  await overhead(redis);
} finally {
  await redis.stop();
}
