// The shared process pool: an event loop does the I/O and sends each fib to a fixed pool of
// child processes over IPC, like the talk's ProcessPoolExecutor. Every request pays for
// serialization and two trips across a process boundary: cheap next to a fib(30), most of the
// cost of a fib(1). The pool is created full and warm; a pool process that dies is replaced, and
// the request it was computing is answered `internal`. With POOL_FOLLOWS_QUOTA=1 processes are
// added or retired (once idle) when the CPU quota changes. A result arrives as an IPC message on
// the event loop, which settles the request's promise.
// Written by hand, although libraries pool child processes (workerpool, tinypool): the
// mechanism (dispatch, replacement, cancellation) is small and is part of what it shows.

import { fork, type ChildProcess } from 'node:child_process';
import { RequestError } from '../lab/errors.js';
import type { FibResult, PoolReply, PoolRequest } from './messages.js';
import type { Executor, VariantContext } from './plugin.js';
import { followQuota, poolOptions, startSize, type PoolOptions } from './pools.js';

const CHILD = new URL('./pool-process.js', import.meta.url);
/** A process that crashes this soon after starting is restarted only after a pause (no crash loop). */
const QUICK_DEATH_MS = 1000;

interface Job {
  id: number;
  n: number;
  signal: AbortSignal;
  resolve(result: FibResult): void;
  reject(error: Error): void;
}

/** One pool process and the job it computes. */
interface PoolProcess {
  index: number;
  child: ChildProcess;
  ready: Promise<void>;
  startedAt: number;
  job: Job | null;
  /** Killed (or dying): takes no more jobs and its answers are ignored. */
  dead: boolean;
  /** Stopped by the pool itself (a cancelled job), not crashed. */
  killed: boolean;
  /** Past the pool's size after it shrank: takes no more jobs, stops once idle. */
  retiring: boolean;
}

export class ProcessPool implements Executor {
  readonly abortable = true;
  /** By index (the `worker` label). */
  private readonly slots = new Map<number, PoolProcess>();
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closing = false;
  private stopFollowing: () => void = () => {};

  private constructor(
    private readonly ctx: VariantContext<PoolOptions>,
    private size: number,
  ) {}

  /** Starts a pool of the size the options say (the CPU quota by default), full and warm. */
  static async start(ctx: VariantContext<PoolOptions>): Promise<ProcessPool> {
    const { own } = ctx;
    const size = startSize(ctx, own.poolSize, poolOptions.poolSize, own.poolFollowsQuota);
    const pool = new ProcessPool(ctx, 0);
    await pool.resize(size); // created full and warm
    if (own.poolFollowsQuota) pool.stopFollowing = followQuota(ctx, size, (next) => pool.resize(next));
    return pool;
  }

  /** Grows to `size` warm processes, or retires those past it (each once idle). */
  private async resize(size: number): Promise<void> {
    const starting: Array<Promise<void>> = [];
    for (let index = 0; index < Math.max(size, this.slots.size); index++) {
      const slot = this.slots.get(index);
      if (index >= size) {
        if (slot && !slot.retiring) {
          slot.retiring = true;
          if (slot.job === null) this.kill(slot);
        }
      } else if (!slot) {
        this.ctx.metrics.initWorker(index);
        const spawned = this.spawn(index);
        this.slots.set(index, spawned);
        starting.push(spawned.ready);
      } else {
        slot.retiring = false;
      }
    }
    this.size = size;
    await Promise.all(starting);
    this.dispatch();
  }

  run = (n: number, signal: AbortSignal): Promise<FibResult> => {
    if (!this.hasIdle() && this.queue.length >= this.ctx.own.maxQueue) {
      throw new RequestError('overloaded', `all ${this.size} pool processes busy and ${this.queue.length} requests queued`);
    }
    return new Promise<FibResult>((resolve, reject) => {
      const job: Job = { id: this.nextId++, n, signal, resolve, reject };
      signal.addEventListener('abort', () => this.cancel(job), { once: true });
      this.queue.push(job);
      this.dispatch();
    });
  };

  private hasIdle(): boolean {
    for (const slot of this.slots.values()) if (slot.job === null && !slot.dead && !slot.retiring) return true;
    return false;
  }

  /** Pool processes alive now: one that died shows until its replacement is up. */
  liveWorkers(): number {
    return [...this.slots.values()].filter((slot) => !slot.dead).length;
  }

  async close(): Promise<void> {
    this.stopFollowing();
    this.closing = true;
    const exits = [...this.slots.values()].map(
      (slot) =>
        new Promise<void>((resolve) =>
          slot.child.exitCode !== null || slot.child.signalCode !== null ? resolve() : slot.child.once('exit', () => resolve()),
        ),
    );
    for (const slot of this.slots.values()) this.kill(slot);
    await Promise.all(exits);
  }

  private spawn(index: number): PoolProcess {
    const child = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let markReady: () => void;
    const slot: PoolProcess = {
      index,
      child,
      ready: new Promise((resolve) => (markReady = resolve)),
      startedAt: Date.now(),
      job: null,
      dead: false,
      killed: false,
      retiring: false,
    };
    child.on('message', (message: PoolReply) => {
      if (message.type === 'ready') return markReady();
      const job = slot.job;
      if (slot.dead || !job || job.id !== message.id) return; // an answer for a job that was cancelled
      slot.job = null;
      if (message.result.worker) this.ctx.metrics.workerComputed(index, message.result.worker.busySeconds);
      job.resolve(message.result);
      if (slot.retiring) this.kill(slot);
      this.dispatch();
    });
    child.on('error', () => this.kill(slot));
    child.once('exit', () => {
      slot.dead = true;
      this.replace(slot);
    });
    return slot;
  }

  /** A pool process exited: its request fails, and the pool is brought back to full size. */
  private replace(slot: PoolProcess): void {
    const job = slot.job;
    slot.job = null;
    if (job && !job.signal.aborted) job.reject(new RequestError('internal', 'the pool process computing this request died'));
    if (this.closing || this.slots.get(slot.index) !== slot) return;
    if (slot.retiring) {
      // The pool shrank: gone for good, with its series.
      this.slots.delete(slot.index);
      this.ctx.metrics.removeWorker(slot.index);
      return;
    }
    const restart = () => {
      if (this.closing) return;
      const next = this.spawn(slot.index);
      this.slots.set(slot.index, next);
      void next.ready.then(() => this.dispatch());
    };
    if (!slot.killed && Date.now() - slot.startedAt < QUICK_DEATH_MS) setTimeout(restart, QUICK_DEATH_MS).unref();
    else restart();
  }

  private dispatch(): void {
    for (const slot of this.slots.values()) {
      if (this.queue.length === 0) return;
      if (slot.job !== null || slot.dead || slot.retiring || !slot.child.connected) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.child.send({ id: job.id, task: { n: job.n } } satisfies PoolRequest);
    }
  }

  private kill(slot: PoolProcess): void {
    slot.dead = true;
    slot.killed = true;
    slot.child.kill('SIGKILL');
  }

  /** The client left: drop its queued job, or stop the process computing it (and replace it). */
  private cancel(job: Job): void {
    const queued = this.queue.indexOf(job);
    if (queued !== -1) this.queue.splice(queued, 1);
    const slot = [...this.slots.values()].find((s) => s.job === job);
    if (slot) this.kill(slot);
    const abort = new Error('the client left');
    abort.name = 'AbortError';
    job.reject(abort);
  }
}
