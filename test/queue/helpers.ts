// Test helpers of the `queue` variant, all real: a Debian `redis-server` on a free port (which a
// test can kill and start again on the same port), `lab worker` processes (killed with -9,
// paused, stopped), the whole variant (Redis, workers and `lab serve queue`) in the shape
// `startVariant` gives, and a load that tallies every reply at the client.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { spawnLab, type LabProcess } from '../../services/loadgen/local.js';
import { TestClient, fetchText, freePort, referenceFib, sample, startVariant, type RunningVariant } from '../helpers.js';

/** Where the Debian package puts it; PATH is searched when it is elsewhere. */
const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';

/** A real redis-server without persistence: a restart comes back empty, as a crashed cache would. */
export class RedisProcess {
  private child: ChildProcess | null = null;
  private inspector: Redis | null = null;

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisProcess> {
    const redis = await RedisProcess.notStarted();
    await redis.restart();
    return redis;
  }

  /** One on a free port that is not started yet (restart() starts it): Redis down when a process starts. */
  static async notStarted(): Promise<RedisProcess> {
    return new RedisProcess(await freePort());
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The running redis-server's pid (for CPU accounting). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts redis-server (again) on its port; resolves once it accepts connections. */
  async restart(): Promise<void> {
    const child = spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.once('error', (error) =>
        reject(new Error(`cannot start ${REDIS_SERVER} (${error.message}): apt-get install redis-server`)),
      );
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)));
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) resolve();
      });
    });
    child.stdout.resume();
  }

  /** Kills redis-server (SIGKILL: a crash) and resolves once it has exited. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.removeAllListeners('exit');
    child.kill('SIGKILL');
    await once(child, 'exit');
  }

  /** A connection for the test to look inside the queue with. */
  client(): Redis {
    this.inspector ??= new Redis(this.url, { protocol: 2, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    return this.inspector;
  }

  async stop(): Promise<void> {
    this.inspector?.disconnect();
    this.inspector = null;
    await this.kill();
  }
}

/** A `lab worker` process; stop() sends SIGTERM by default (finish the job, exit). */
export interface RunningWorker extends LabProcess {
  name: string;
  metricsPort: number;
  /** This worker's /metrics text. */
  metrics(): Promise<string>;
}

/** Starts `lab worker` against `redisUrl` and resolves once it prints its `ready` line. */
export async function startWorker(redisUrl: string, env: Record<string, string> = {}): Promise<RunningWorker> {
  const lab = await spawnLab(['worker', '--metrics-port', '0'], {
    env: { HOST: '127.0.0.1', REDIS_URL: redisUrl, ...env },
    ready: /^worker (\S+) ready .*metrics=\S+:(\d+)$/m,
  });
  const metricsPort = Number(lab.ready[2]);
  return {
    ...lab,
    name: lab.ready[1]!,
    metricsPort,
    metrics: async () => (await fetchText(`http://127.0.0.1:${metricsPort}/metrics`)).body,
  };
}

/** The whole variant: Redis, `workers` workers and a front (`lab serve queue`), all on free ports. */
export interface RunningQueue {
  redis: RedisProcess;
  workers: RunningWorker[];
  front: RunningVariant;
  /** What a front or worker needs to join this queue (REDIS_URL). */
  env: Record<string, string>;
  addWorker(env?: Record<string, string>): Promise<RunningWorker>;
  stop(): Promise<void>;
}

export async function startQueue({
  workers = 2,
  workerEnv = {},
  frontEnv = {},
}: { workers?: number; workerEnv?: Record<string, string>; frontEnv?: Record<string, string> } = {}): Promise<RunningQueue> {
  const redis = await RedisProcess.start();
  const env = { REDIS_URL: redis.url };
  const running: RunningWorker[] = [];
  const addWorker = async (extra: Record<string, string> = {}) => {
    const worker = await startWorker(redis.url, { ...workerEnv, ...extra });
    running.push(worker);
    return worker;
  };
  try {
    for (let i = 1; i <= workers; i++) await addWorker({ WORKER_NAME: `w${i}` });
    const front = await startVariant('queue', { ...env, ...frontEnv });
    return {
      redis,
      workers: running,
      front,
      env,
      addWorker,
      async stop() {
        await front.stop('SIGKILL');
        await Promise.all(running.map((worker) => worker.stop('SIGKILL')));
        await redis.stop();
      },
    };
  } catch (error) {
    await Promise.all(running.map((worker) => worker.stop('SIGKILL')));
    await redis.stop();
    throw error;
  }
}

/** How many workers the conformance suite's backend starts. */
export const BACKEND_WORKERS = 2;

/** For the conformance suite: Redis and BACKEND_WORKERS workers; fronts started with `env` join them. */
export async function startQueueBackend(): Promise<{ env: Record<string, string>; stop(): Promise<void> }> {
  const redis = await RedisProcess.start();
  const workers: RunningWorker[] = [];
  for (let i = 1; i <= BACKEND_WORKERS; i++) workers.push(await startWorker(redis.url, { WORKER_NAME: `w${i}` }));
  return {
    env: { REDIS_URL: redis.url },
    async stop() {
      await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
      await redis.stop();
    },
  };
}

export { waitFor } from '../helpers.js';

/** A sample from a process's /metrics (NaN when absent). */
export async function metricOf(metricsPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sample((await fetchText(`http://127.0.0.1:${metricsPort}/metrics`)).body, name, labels);
}

/** Every reply of a load, counted at the client. */
export interface Tally {
  sent: number;
  /** Replies `fib: <the right value>`. */
  results: number;
  /** Replies `fib: ` with a wrong value. */
  wrong: number;
  /** Error replies by code. */
  errors: Record<string, number>;
  /** Lines that came after every request of the connection had its reply (a second answer). */
  duplicates: number;
  /** Requests without a reply (connection closed, or no reply within the timeout). */
  lost: number;
}

/** The marker request each connection ends with; the load never sends this n. */
const MARKER_N = 3;

/**
 * Loads `port` from `connections` connections, each keeping `depth` requests in flight (n taken
 * in turn from `ns`), until `stop()` says so; then lets every request be answered and ends each
 * connection with a marker request, so a second reply to any request would show up before the
 * marker's. `onReply` sees each reply as it comes (for a test that waits for a state).
 */
export async function loadAndTally(
  port: number,
  {
    connections,
    depth,
    ns,
    stop,
    onReply = () => {},
    replyTimeoutMs = 30_000,
  }: {
    connections: number;
    depth: number;
    ns: number[];
    stop: () => boolean;
    onReply?: (reply: string) => void;
    replyTimeoutMs?: number;
  },
): Promise<Tally> {
  const tally: Tally = { sent: 0, results: 0, wrong: 0, errors: {}, duplicates: 0, lost: 0 };
  if (ns.includes(MARKER_N)) throw new Error(`the load may not use n = ${MARKER_N}: it marks the end`);
  const one = async (index: number) => {
    const client = await TestClient.connect(port);
    const expected: number[] = [];
    let next = index;
    const send = async () => {
      const n = ns[next++ % ns.length]!;
      expected.push(n);
      tally.sent += 1;
      await client.write(`${n}\n`);
    };
    try {
      for (let i = 0; i < depth; i++) await send();
      while (expected.length > 0) {
        const n = expected.shift()!;
        let reply: string;
        try {
          reply = await client.line(replyTimeoutMs);
        } catch {
          tally.lost += expected.length + 1;
          return;
        }
        onReply(reply);
        if (reply.startsWith('fib: ')) {
          if (reply === `fib: ${referenceFib(n)}`) tally.results += 1;
          else tally.wrong += 1;
        } else {
          const code = /^error: (\w+)/.exec(reply)?.[1] ?? 'unparsed';
          tally.errors[code] = (tally.errors[code] ?? 0) + 1;
        }
        if (!stop()) await send();
      }
      await client.write(`${MARKER_N}\n`);
      for (let markers = 1; ;) {
        const line = await client.line(replyTimeoutMs);
        if (line === `fib: ${referenceFib(MARKER_N)}`) break;
        if (line.startsWith('error: ') && markers < 50) {
          // The marker itself was refused (Redis still away, say): ask again.
          markers += 1;
          await client.write(`${MARKER_N}\n`);
          continue;
        }
        tally.duplicates += 1;
      }
    } finally {
      client.close();
    }
  };
  await Promise.all(Array.from({ length: connections }, (_, index) => one(index)));
  return tally;
}

export function formatTally(tally: Tally): string {
  const errors = Object.entries(tally.errors)
    .map(([code, count]) => `${code} ${count}`)
    .join(', ');
  return `sent ${tally.sent}, results ${tally.results}, wrong ${tally.wrong}, errors {${errors}}, duplicates ${tally.duplicates}, lost ${tally.lost}`;
}
