// `lab worker`: one worker of the `queue` variant. It reads the request stream through the
// workers' consumer group, one job at a time, computes fib, replies to the front that owns the
// client's connection and acknowledges, in one atomic step.
//
// Failures it handles: a worker that dies or stalls mid-job stops reporting on it, so after
// CLAIM_IDLE_MS another worker claims it (XAUTOCLAIM); a job delivered more than MAX_DELIVERIES
// times is dead-lettered and answered `internal`; a job whose front gave up (deadline, client
// gone) is stopped mid-computation; Redis going away makes it wait and reconnect with backoff.
// A long fib runs on a piscina thread, not on the event loop, so the worker can keep telling
// Redis it is still at it (claimed jobs would otherwise be the ones that take longest) and can
// stop one whose front no longer waits.

import { randomBytes } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { Piscina } from 'piscina';
import { CgroupReader } from '../../lab/cgroup.js';
import { computeFib } from '../../server/fib.js';
import type { FibResult, FibTask } from '../../server/messages.js';
import { createMetricsServer } from '../../lab/http.js';
import { eventLoopSampler } from '../../lab/metrics.js';
import { createQueueWorkerMetrics, type QueueWorkerMetrics } from './metrics.js';
import { FIB_MAX_N_LIMIT } from '../../server/protocol.js';
import { listen } from '../../server/server.js';
import { resolveOptions, type RawOptions } from '../../lab/options.js';
import { decodeRequest, encodeReply, queueKeys, type QueueKeys, type RequestEntry } from './messages.js';
import { queue } from './index.js';
import { REDIS_URL_OPTION, queueWorkerOptions, redactRedisUrl, type QueueWorkerOptions } from './options.js';
import {
  RedisClock,
  UrlGuard,
  connectRedis,
  ensureGroup,
  isNoGroupError,
  reconnectDelay,
  refusalOf,
  whenReady,
} from './redis.js';

/** The names of the slots workers claim (leaseName): w1, w2, ... */
export const SLOT_PREFIX = 'w';
/** A worker's name lease lasts this long unless renewed (every REGISTER_EVERY_MS). */
const LEASE_MS = 10_000;
const REGISTER_EVERY_MS = 2000;
/** Reply streams are capped near this length (a front reads and trims its own far sooner). */
const REPLY_MAX_LENGTH = 10_000;
/** The dead-letter stream keeps about this many jobs. */
const DEAD_MAX_LENGTH = 1000;
/** How often a worker that acknowledged jobs trims the request stream (a safety net: see queueTrim). */
const TRIM_EVERY_MS = 1000;
/**
 * Jobs up to this n (a few milliseconds at most) are computed on the event loop: handing them to
 * the thread costs a good share of that, and they end long before a heartbeat is due. Longer
 * ones run on the thread, where the worker can report on them and stop them.
 */
const INLINE_MAX_N = 30;
/** On SIGTERM, how often a reply is retried while Redis is away before the job is left to be redelivered. */
const REPLY_ATTEMPTS_WHEN_STOPPING = 5;

interface Job {
  id: string;
  fields: string[];
  /** 1 on first delivery; claims count further deliveries. */
  deliveries: number;
}

export class QueueWorker {
  readonly metrics: QueueWorkerMetrics;
  /**
   * Resolves once the worker has its name and takes jobs (false: stopped before that); rejects
   * with a ConfigError when Redis refuses the URL before that (see UrlGuard).
   */
  readonly ready: Promise<boolean>;
  private readonly keys: QueueKeys;
  private readonly commands: Redis;
  /** Dedicated to the blocking XREADGROUP. */
  private readonly reads: Redis;
  private readonly clock = new RedisClock();
  private readonly guard: UrlGuard;
  private readonly token = randomBytes(8).toString('hex');
  private readonly stopController = new AbortController();
  private readonly claimScanMs: number;
  private readonly blockMs: number;
  private readonly heartbeatMs: number;
  private workerName: string | null = null;
  private pool: Piscina<FibTask, FibResult> | null = null;
  private claimCursor = '0-0';
  private nextClaimAt = 0;
  private acksSinceTrim = 0;
  private timers: NodeJS.Timeout[] = [];
  private loop: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | null = null;

  private readonly http: HttpServer;

  private constructor(
    readonly options: QueueWorkerOptions,
    metrics: QueueWorkerMetrics,
    private readonly log: (line: string) => void,
  ) {
    this.metrics = metrics;
    this.http = createMetricsServer(metrics.registry, () => ({
      ok: this.workerName !== null && this.stopping === null, // healthy once it has joined the queue
      status: this.stopping ? 'stopping' : this.workerName ? 'ok' : 'starting',
      variant: queue.name,
      worker: this.workerName,
      redis: this.commands.status,
    }));
    this.keys = queueKeys(options.keyPrefix);
    const tell = (line: string) => log(`worker ${this.workerName ?? '(starting)'}: ${line}`);
    this.guard = new UrlGuard(options.redisUrl);
    this.commands = connectRedis(options.redisUrl, 'worker', tell, this.guard);
    this.reads = connectRedis(options.redisUrl, 'worker-reads', tell, this.guard);
    this.commands.on('ready', () => {
      metrics.redisUp.set(1);
      // A failure here (Redis gone again) is retried: the group by the work loop, the name by the next register.
      if (this.workerName) void this.rejoin().catch((error: unknown) => this.refused(error));
    });
    this.commands.on('close', () => metrics.redisUp.set(0));
    // Scan for stalled jobs a few times per claim interval; block on new ones no longer than that.
    this.claimScanMs = Math.max(100, Math.floor(options.claimIdleMs / 4));
    this.blockMs = Math.min(1000, this.claimScanMs);
    this.heartbeatMs = Math.min(500, Math.floor(options.claimIdleMs / 3));
    this.ready = this.prepare();
    this.ready.catch(() => {}); // handled by whoever awaits it (runWorker); not an unhandled rejection meanwhile
  }

  /** Starts serving /metrics and /healthz at once, then connects; see `ready`. */
  static async start(options: QueueWorkerOptions, log: (line: string) => void = console.error): Promise<QueueWorker> {
    const worker = new QueueWorker(options, createQueueWorkerMetrics({ variant: queue.name, cgroup: new CgroupReader() }), log);
    try {
      await listen(worker.http, options.metricsPort, options.host);
    } catch (error) {
      await worker.stop();
      throw error;
    }
    return worker;
  }

  /** The consumer name, also the `worker` label (null until ready). */
  get name(): string | null {
    return this.workerName;
  }

  get metricsAddress(): AddressInfo {
    return this.http.address() as AddressInfo;
  }

  /** Finishes the job in hand (computes it, replies, acknowledges), takes no other, closes. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopController.abort();
      await this.ready.catch(() => false);
      await this.loop;
      for (const timer of this.timers) clearInterval(timer);
      if (this.workerName && this.commands.status === 'ready') {
        await this.commands.zrem(this.keys.workers, this.workerName).catch(() => {});
        const lease = this.keys.lease(this.workerName);
        if ((await this.commands.get(lease).catch(() => null)) === this.token) await this.commands.del(lease).catch(() => {});
      }
      await this.pool?.destroy();
      this.commands.disconnect();
      this.reads.disconnect();
      if (this.http.listening) {
        this.http.closeAllConnections();
        await new Promise<void>((resolve) => this.http.close(() => resolve()));
      }
    })();
    return this.stopping;
  }

  private get stopSignal(): AbortSignal {
    return this.stopController.signal;
  }

  private async prepare(): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      if (!(await Promise.race([whenReady(this.commands, this.stopSignal), this.guard.refused]))) return false;
      try {
        this.workerName = this.options.name ?? (await this.leaseName());
        await this.rejoin();
        break;
      } catch (error) {
        if (this.refused(error)) await this.guard.refused; // rejects: the start ends here
        this.log(`worker: could not join the queue yet (${(error as Error).message})`);
        await Promise.race([delay(reconnectDelay(attempt)), this.guard.refused]);
      }
    }
    this.guard.started();
    this.metrics.nameWorker(this.workerName);
    this.pool = new Piscina<FibTask, FibResult>({
      filename: new URL('./compute.js', import.meta.url).href,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
    });
    await this.pool.run({ n: 1 }); // warm: the thread has loaded its module before the first job
    this.timers.push(setInterval(() => void this.register().catch(() => {}), REGISTER_EVERY_MS));
    this.timers.push(setInterval(() => void this.trim(), TRIM_EVERY_MS));
    this.timers.push(this.clock.keepSynced(this.commands));
    for (const timer of this.timers) timer.unref();
    if (this.stopSignal.aborted) return false;
    this.loop = this.work();
    return true;
  }

  /**
   * Whether `error` is Redis refusing the URL (see refusalOf): reported to the guard while
   * starting, logged once started.
   */
  private refused(error: unknown): boolean {
    const problem = refusalOf(error);
    if (problem === null) return false;
    if (!this.guard.refuse(problem)) this.log(`worker ${this.workerName}: Redis refused ${REDIS_URL_OPTION}: ${problem}`);
    return true;
  }

  /**
   * The lowest free slot, `w1`, `w2`, ...: a replica index claimed in Redis under a lease (renewed
   * every REGISTER_EVERY_MS, released on a clean stop, expiring LEASE_MS after a worker died). A
   * stable, low-cardinality name and `worker` label: N workers are w1..wN whatever their
   * containers are called, and a recreated container takes its predecessor's slot back. Not the
   * host name (in compose a container's id, new at every recreation) nor compose's replica number
   * (visible only through the Docker API; Swarm's {{.Task.Slot}} exists only in Swarm), which
   * would hold the Docker socket in every worker or work under one orchestrator only.
   */
  private async leaseName(): Promise<string> {
    for (let slot = 1; ; slot++) {
      const candidate = `${SLOT_PREFIX}${slot}`;
      const taken = await this.commands.queueRegister(
        this.keys.lease(candidate),
        this.keys.workers,
        this.token,
        LEASE_MS,
        candidate,
        0,
      );
      if (taken === 1) return candidate;
    }
  }

  /** After (re)connecting: the group exists (Redis may have restarted empty), the worker is registered. */
  private async rejoin(): Promise<void> {
    await ensureGroup(this.commands, this.keys);
    await this.register();
    await this.clock.sync(this.commands);
  }

  private async register(): Promise<void> {
    const name = this.workerName!;
    const force = this.options.name === null ? 0 : 1;
    const held = await this.commands.queueRegister(this.keys.lease(name), this.keys.workers, this.token, LEASE_MS, name, force);
    if (held === 0) this.log(`worker ${name}: another live worker now holds this name; give each worker its own (WORKER_NAME)`);
  }

  /**
   * Takes jobs until stopped, one at a time: the next is read only once this worker is free (a
   * job read ahead would wait behind a long one, the head-of-line blocking this lab is about),
   * but while the last one's reply is still on its way.
   */
  private async work(): Promise<void> {
    let failures = 0;
    let sending: Promise<void> = Promise.resolve();
    while (!this.stopSignal.aborted) {
      if (!(await whenReady(this.commands, this.stopSignal)) || !(await whenReady(this.reads, this.stopSignal))) break;
      try {
        const job = await this.nextJob();
        failures = 0;
        await sending;
        if (job) {
          // The event-loop delay is sampled while a job is in hand (EventLoopSampler).
          const unhold = eventLoopSampler.hold();
          try {
            ({ sending } = await this.handle(job));
          } finally {
            unhold();
          }
        }
      } catch (error) {
        if (isNoGroupError(error)) {
          await ensureGroup(this.commands, this.keys).catch(() => {}); // Redis restarted empty
          continue;
        }
        if (this.stopSignal.aborted) break;
        await delay(reconnectDelay(++failures)); // Redis went away mid-command: wait, then look again
      }
    }
    await sending;
  }

  /** A job to claim from a silent worker first, else the next new one (blocking a little while). */
  private async nextJob(): Promise<Job | null> {
    if (Date.now() >= this.nextClaimAt) {
      const claimed = await this.commands.queueClaim(
        this.keys.requests,
        this.keys.group,
        this.workerName!,
        this.options.claimIdleMs,
        this.claimCursor,
      );
      this.claimCursor = claimed[0];
      if (claimed.length === 4) {
        this.metrics.claims.inc();
        this.log(`worker ${this.workerName}: claimed job ${claimed[1]} (delivery ${claimed[3]}) from a silent worker`);
        return { id: claimed[1], fields: claimed[2], deliveries: claimed[3] };
      }
      if (this.claimCursor === '0-0') this.nextClaimAt = Date.now() + this.claimScanMs;
    }
    const answer = await this.reads.xreadgroup(
      'GROUP',
      this.keys.group,
      this.workerName!,
      'COUNT',
      1,
      'BLOCK',
      this.blockMs,
      'STREAMS',
      this.keys.requests,
      '>',
    );
    const entry = answer?.[0]?.[1][0];
    if (!entry?.[1]) return null;
    return { id: entry[0], fields: entry[1], deliveries: 1 };
  }

  /** Computes a job (or dead-letters it); resolves once it is computed, with its reply on its way. */
  private async handle(job: Job): Promise<{ sending: Promise<void> }> {
    const request = decodeRequest(job.fields);
    if (!request || request.n < 0 || request.n > FIB_MAX_N_LIMIT) {
      return { sending: this.deadLetter(job, request, 'the entry is not a request this worker understands') };
    }
    if (job.deliveries > this.options.maxDeliveries) {
      const reason = `delivered ${job.deliveries} times, more than MAX_DELIVERIES (${this.options.maxDeliveries})`;
      return { sending: this.deadLetter(job, request, reason) };
    }
    const result = await this.compute(job, request.n);
    if (!result) return { sending: Promise.resolve() };
    const startedAt = this.clock.toRedis(result.startedAt);
    this.metrics.queueWait.observe(Math.max(0, startedAt - request.enqueuedAt) / 1000);
    this.metrics.compute.observe(result.computeSeconds);
    const reply = encodeReply({
      kind: 'result',
      request: request.request,
      worker: this.workerName!,
      deliveries: job.deliveries,
      value: result.value,
      startedAt,
      computeSeconds: result.computeSeconds,
    });
    const send = () =>
      this.commands.queueReply(
        this.keys.requests,
        this.keys.replies(request.front),
        this.keys.group,
        job.id,
        REPLY_MAX_LENGTH,
        ...reply,
      );
    const sending = this.settle(job, send).then((outcome) => {
      if (outcome !== null) this.metrics.jobs.labels({ outcome: outcome === 0 ? 'superseded' : 'replied' }).inc();
    });
    return { sending };
  }

  /**
   * fib(n) for a job: a short one on the event loop, a long one on the thread while the event
   * loop reports on it (null: stopped, because its front gave up or another worker took it).
   */
  private async compute(job: Job, n: number): Promise<FibResult | null> {
    this.metrics.busy.set(1);
    if (n <= INLINE_MAX_N) {
      const result = computeFib({ n });
      this.metrics.busy.set(0);
      return result;
    }
    const controller = new AbortController();
    const heartbeat = setInterval(() => void this.heartbeat(job, controller), this.heartbeatMs);
    try {
      return await this.pool!.run({ n }, { signal: controller.signal });
    } catch (error) {
      if (controller.signal.aborted) {
        this.metrics.jobs.labels({ outcome: 'cancelled' }).inc();
        return null;
      }
      // The thread failed (not the job's fault): leave the job to be redelivered after CLAIM_IDLE_MS.
      this.log(`worker ${this.workerName}: computing job ${job.id} failed (${(error as Error).message})`);
      return null;
    } finally {
      clearInterval(heartbeat);
      this.metrics.busy.set(0);
    }
  }

  /** Tells Redis this worker is still at `job`; stops it when its front gave up or another worker took it. */
  private async heartbeat(job: Job, controller: AbortController): Promise<void> {
    try {
      const mine = await this.commands.queueHeartbeat(this.keys.requests, this.keys.group, this.workerName!, job.id);
      if (mine !== 1 && !controller.signal.aborted) controller.abort();
    } catch {
      // Redis is away: keep computing; the reply waits for it.
    }
  }

  private async deadLetter(job: Job, request: RequestEntry | null, reason: string): Promise<void> {
    const dead = [
      ...job.fields,
      'id',
      job.id,
      'deliveries',
      String(job.deliveries),
      'worker',
      this.workerName!,
      'reason',
      reason,
    ];
    const reply = request
      ? encodeReply({
          kind: 'dead_letter',
          request: request.request,
          worker: this.workerName!,
          deliveries: job.deliveries,
          message: `the job was dead-lettered: ${reason}`,
        })
      : ['invalid', job.id];
    const outcome = await this.settle(job, () =>
      this.commands.queueDeadLetter(
        this.keys.requests,
        this.keys.replies(request?.front ?? '-'),
        this.keys.dead,
        this.keys.group,
        job.id,
        REPLY_MAX_LENGTH,
        DEAD_MAX_LENGTH,
        dead.length,
        ...dead,
        ...reply,
      ),
    );
    if (outcome === null) return;
    this.metrics.jobs.labels({ outcome: outcome === 0 ? 'superseded' : 'dead_lettered' }).inc();
    if (outcome !== 0) this.log(`worker ${this.workerName}: dead-lettered job ${job.id}: ${reason}`);
  }

  /**
   * Sends a job's reply-and-acknowledge, retrying while Redis is away. Null: it could not be
   * sent (Redis lost the queue, or the worker is stopping and Redis stayed away), so the job is
   * left to be redelivered, or was lost with Redis and its front answers it `unavailable`.
   */
  private async settle(job: Job, send: () => Promise<0 | 1 | 2>): Promise<0 | 1 | 2 | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await send();
        this.acksSinceTrim += 1;
        return outcome;
      } catch (error) {
        if (isNoGroupError(error)) return null;
        if (attempt === 1) this.refused(error); // said once; retried like an outage (the ACL may be put right)
        if (this.stopSignal.aborted && attempt >= REPLY_ATTEMPTS_WHEN_STOPPING) {
          this.log(`worker ${this.workerName}: Redis away, job ${job.id} left unacknowledged: another worker will take it`);
          return null;
        }
        await delay(reconnectDelay(attempt));
        if (!this.stopSignal.aborted) await whenReady(this.commands, this.stopSignal);
      }
    }
  }

  /** Trims the request stream of anything before the oldest job still pending (see queueTrim). */
  private async trim(): Promise<void> {
    if (this.acksSinceTrim === 0 || this.commands.status !== 'ready') return;
    this.acksSinceTrim = 0;
    await this.commands.queueTrim(this.keys.requests, this.keys.group).catch(() => {});
  }
}

/** `lab worker`: runs one worker until SIGTERM / SIGINT, then finishes its job and exits 0. */
export async function runWorker(raw: RawOptions<QueueWorkerOptions>): Promise<void> {
  const options = resolveOptions(queueWorkerOptions, raw);
  const worker = await QueueWorker.start(options);
  const { address, port } = worker.metricsAddress;
  const stop = (signal: string) => {
    console.error(`worker ${worker.name ?? '(starting)'}: ${signal}: finishing the job in hand, then exiting`);
    worker.stop().then(
      () => process.exit(0),
      (error: Error) => {
        console.error(`worker: stop failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  console.error(`worker: connecting to Redis at ${redactRedisUrl(options.redisUrl)}`);
  let ready: boolean;
  try {
    ready = await worker.ready;
  } catch (error) {
    await worker.stop(); // Redis refused the URL: `lab` says so in one line and exits 2
    throw error;
  }
  if (ready) {
    const host = address.includes(':') ? `[${address}]` : address;
    console.log(`worker ${worker.name} ready redis=${redactRedisUrl(options.redisUrl)} metrics=${host}:${port}`);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
