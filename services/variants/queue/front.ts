// The `queue` variant's front: the executor `lab serve queue` plugs into the shared server. The
// shared LineConnection keeps framing, pipelining and per-connection reply order; this turns one
// admitted request into an entry of the Redis request stream and waits for the one reply that
// answers it, on this front's own reply stream.
//
// Exactly one answer per request, whatever fails: a request is answered by the first of its
// reply, the deadline, Redis found to have lost it, or its client leaving; anything that comes
// for it afterwards (a second reply of a redelivered job, a late one after the deadline) is
// dropped and counted. Requests whose front gave up are deleted from the stream, so a worker
// that has not started them never will, and one computing them stops (see worker.ts).

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { epochMs } from '../../lab/clock.js';
import { RequestError } from '../../lab/errors.js';
import type { FibResult } from '../../server/messages.js';
import { registerQueueFrontMetrics, type QueueFrontMetrics } from './metrics.js';
import type { Executor, VariantContext } from '../../server/plugin.js';
import { decodeReply, encodeRequest, queueKeys, type QueueKeys, type ReplyEntry } from './messages.js';
import { REDIS_URL_OPTION, type QueueFrontOptions } from './options.js';
import { RedisClock, UrlGuard, connectRedis, ensureGroup, reconnectDelay, refusalOf } from './redis.js';

/** A reply stream nobody refreshes (its front has gone) disappears after this long. */
const REPLY_STREAM_TTL_MS = 60_000;
/** How often the front refreshes its reply stream, trims what it has read and reads the queue's status. */
const MONITOR_EVERY_MS = 1000;
/** A worker that has not reported for this long no longer counts in fib_workers. */
const WORKER_LIVE_WINDOW_MS = 10_000;
/** Requests answered (or given up) remembered, to tell a duplicate reply from a late one. */
const REMEMBERED_ANSWERS = 10_000;

interface Waiting {
  resolve(result: FibResult): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  /** Set once the add has answered; null while it is on its way (or if it failed). */
  entryId: string | null;
  /** The reply stream's generation when the request was added; a newer one means Redis lost it. */
  generation: number;
}

type GiveUpReason = 'deadline' | 'redis_down' | 'redis_lost' | 'abandoned' | 'closing';

export class QueueFront implements Executor {
  /** A client that leaves takes its request out of the stream, and its worker stops computing it. */
  readonly abortable = true;
  /** This front's identity in Redis: its reply stream is `replies(id)`. Unique per process start. */
  readonly id = `${hostname()}-${randomBytes(4).toString('hex')}`;
  private readonly keys: QueueKeys;
  private readonly replyKey: string;
  private readonly metrics: QueueFrontMetrics;
  private readonly commands: Redis;
  /** Dedicated to the blocking XREAD of replies. */
  private readonly replies: Redis;
  private readonly clock = new RedisClock();
  /** Redis refusing the URL while the front starts is bad configuration (exit 2), later an outage. */
  private readonly guard: UrlGuard;
  private readonly log: (line: string) => void;
  private readonly waiting = new Map<string, Waiting>();
  private readonly answered = new Map<string, 'replied' | 'gave_up'>();
  private readonly events = new EventEmitter();
  private sequence = 0;
  /** Incremented each time this front (re)creates its reply stream. */
  private generation = 0;
  private lastReplyId = '0-0';
  /** The reply stream exists for this connection and the group is there: requests may be added. */
  private streamReady = false;
  /** The stream held QUEUE_STREAM_MAX_LEN entries at the monitor's last look (up to a second ago). */
  private streamFull = false;
  private workersSeen = 0;
  /** A refusal (see refused) has been logged since the front last became ready: one line, not one per command. */
  private refusalTold = false;
  private closing = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private readerDone: Promise<void> = Promise.resolve();
  private ensuring: Promise<void> | null = null;

  private readonly options: QueueFrontOptions;

  private constructor(ctx: VariantContext<QueueFrontOptions>) {
    const { own: options } = ctx;
    this.options = options;
    this.keys = queueKeys(options.keyPrefix);
    this.replyKey = this.keys.replies(this.id);
    this.metrics = registerQueueFrontMetrics(ctx.metrics.registry);
    this.log = (line: string) => console.error(`queue front ${this.id}: ${line}`);
    this.guard = new UrlGuard(options.redisUrl);
    this.commands = connectRedis(options.redisUrl, 'front', this.log, this.guard);
    this.replies = connectRedis(options.redisUrl, 'front-replies', this.log, this.guard);
    this.events.setMaxListeners(0);
  }

  /**
   * Connects (waiting up to a few seconds for Redis, then serving anyway: `unavailable` until it
   * comes). Rejects with a ConfigError when Redis refuses the URL meanwhile (see UrlGuard).
   */
  static async start(ctx: VariantContext<QueueFrontOptions>): Promise<QueueFront> {
    const front = new QueueFront(ctx);
    front.commands.on('ready', () => void front.ensureStream());
    front.commands.on('close', () => front.setStreamReady(false));
    front.readerDone = front.readReplies();
    front.timers.push(setInterval(() => void front.monitor(), MONITOR_EVERY_MS));
    front.timers.push(front.clock.keepSynced(front.commands));
    for (const timer of front.timers) timer.unref();
    const ready = new Promise<boolean>((resolve) => {
      if (front.streamReady) return resolve(true);
      front.events.once('stream-ready', () => resolve(true));
    });
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000).unref());
    try {
      const reached = await Promise.race([ready, timeout, front.guard.refused]);
      // The live workers, before the first request is admitted against them (and the scripts'
      // permissions, which a user may lack).
      if (reached) await front.monitor();
      else console.error(`queue front ${front.id}: Redis not reachable yet; answering unavailable until it is`);
      front.guard.started();
    } catch (error) {
      await front.close();
      throw error;
    }
    return front;
  }

  /** Live workers (those that reported in the last few seconds), for fib_workers. */
  liveWorkers(): number {
    return this.workersSeen;
  }

  run = (n: number, signal: AbortSignal): Promise<FibResult> => {
    if (this.closing) throw new RequestError('unavailable', 'the server is shutting down');
    if (!this.streamReady) {
      this.metrics.unavailable.labels({ reason: 'redis_down' }).inc();
      throw new RequestError('unavailable', 'the queue (Redis) is unreachable');
    }
    // As a pool: overloaded once every live worker is busy and MAX_QUEUE more wait.
    if (this.waiting.size >= this.workersSeen + this.options.maxQueue) {
      throw new RequestError(
        'overloaded',
        `${this.waiting.size} requests of this front queued for ${this.workersSeen} workers (MAX_QUEUE ${this.options.maxQueue})`,
      );
    }
    // A cheap early refusal from the last look at the stream; the bound itself is held by queueAdd.
    if (this.streamFull) throw this.streamFullError();
    const request = (++this.sequence).toString(36);
    return new Promise<FibResult>((resolve, reject) => {
      const waiting: Waiting = {
        resolve,
        reject,
        entryId: null,
        generation: this.generation,
        timer: setTimeout(() => this.giveUp(request, 'deadline'), this.options.deadlineMs),
      };
      // Registered before the add: the reply may come back before the add's own answer does.
      this.waiting.set(request, waiting);
      signal.addEventListener('abort', () => this.giveUp(request, 'abandoned'), { once: true });
      const fields = encodeRequest({ front: this.id, request, n, enqueuedAt: this.clock.toRedis(epochMs()) });
      // One round trip, as a plain XADD: the bound is checked in the same step (see queueAdd).
      this.commands.queueAdd(this.keys.requests, this.options.streamMaxLength, ...fields).then(
        (entryId) => {
          if (entryId === null) return this.refuse(request, waiting);
          if (this.waiting.get(request) === waiting) waiting.entryId = entryId;
          else this.deleteEntry(entryId); // given up while the add was on its way
        },
        (error: unknown) => {
          this.refused(error);
          this.giveUp(request, 'redis_down');
        },
      );
    });
  };

  async close(): Promise<void> {
    this.closing = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const request of [...this.waiting.keys()]) this.giveUp(request, 'closing');
    if (this.commands.status === 'ready') await this.commands.del(this.replyKey).catch(() => {});
    this.setStreamReady(false);
    this.commands.disconnect();
    this.replies.disconnect();
    this.events.emit('closed');
    await this.readerDone;
  }

  /** The stream held QUEUE_STREAM_MAX_LEN entries when the request came to be added: `overloaded`, nothing added. */
  private refuse(request: string, waiting: Waiting): void {
    if (this.waiting.get(request) !== waiting) return; // its client left meanwhile: answered already
    clearTimeout(waiting.timer);
    this.waiting.delete(request);
    waiting.reject(this.streamFullError());
  }

  private streamFullError(): RequestError {
    return new RequestError('overloaded', `the request stream is full (QUEUE_STREAM_MAX_LEN ${this.options.streamMaxLength})`);
  }

  /** Answers a request without its reply (once), and takes its entry out of the stream. */
  private giveUp(request: string, reason: GiveUpReason): void {
    const waiting = this.waiting.get(request);
    if (!waiting) return;
    this.forget(request, waiting, 'gave_up');
    if (waiting.entryId) this.deleteEntry(waiting.entryId);
    if (reason === 'abandoned') {
      // The client has gone or the connection has answered it already: nobody reads this.
      const abort = new Error('the client left');
      abort.name = 'AbortError';
      return waiting.reject(abort);
    }
    if (reason !== 'closing') this.metrics.unavailable.labels({ reason }).inc();
    const message = {
      deadline: `no worker answered within ${this.options.deadlineMs} ms (QUEUE_DEADLINE_MS)`,
      redis_down: 'the queue (Redis) is unreachable',
      redis_lost: 'the queue (Redis) restarted and lost the request',
      closing: 'the server is shutting down',
    }[reason];
    waiting.reject(new RequestError('unavailable', message));
  }

  private forget(request: string, waiting: Waiting, how: 'replied' | 'gave_up'): void {
    clearTimeout(waiting.timer);
    this.waiting.delete(request);
    this.answered.set(request, how);
    if (this.answered.size > REMEMBERED_ANSWERS) this.answered.delete(this.answered.keys().next().value!);
  }

  /** Deletes a request's entry: a worker that has not taken it never will; one computing it stops. */
  private deleteEntry(entryId: string): void {
    if (this.commands.status === 'ready') this.commands.xdel(this.keys.requests, entryId).catch(() => {});
  }

  private onReply(reply: ReplyEntry): void {
    const waiting = this.waiting.get(reply.request);
    if (!waiting) {
      this.metrics.dropped.labels({ reason: this.answered.get(reply.request) === 'replied' ? 'duplicate' : 'late' }).inc();
      return;
    }
    this.forget(reply.request, waiting, 'replied');
    if (reply.deliveries > 1) this.metrics.redeliveries.inc(reply.deliveries - 1);
    this.metrics.workerAnswered(reply.worker);
    if (reply.kind === 'dead_letter') {
      this.metrics.deadLetters.inc();
      return waiting.reject(new RequestError('internal', reply.message));
    }
    waiting.resolve({ value: reply.value, startedAt: this.clock.toLocal(reply.startedAt), computeSeconds: reply.computeSeconds });
  }

  /**
   * After every (re)connection: makes sure the group and this front's reply stream exist. A
   * reply stream that is gone means Redis lost everything it held for this front (a restart
   * without persistence): the requests still waiting will never be answered by a worker, so
   * they are answered `unavailable` now instead of at their deadline.
   */
  private ensureStream(): Promise<void> {
    this.ensuring ??= (async () => {
      try {
        await ensureGroup(this.commands, this.keys);
        if ((await this.commands.exists(this.replyKey)) === 0) {
          const created = await this.commands.xadd(this.replyKey, '*', 'hello', this.id);
          await this.commands.pexpire(this.replyKey, REPLY_STREAM_TTL_MS);
          const lostFrom = this.generation;
          this.generation += 1;
          this.lastReplyId = created ?? '0-0';
          for (const [request, waiting] of [...this.waiting])
            if (waiting.generation <= lostFrom) this.giveUp(request, 'redis_lost');
        }
        await this.clock.sync(this.commands);
        if (!this.closing) this.setStreamReady(true);
      } catch (error) {
        // Lost the connection again: its next 'ready' tries again. Or Redis refused what the
        // URL's user may do: the next reconnection tries again too.
        this.refused(error);
      } finally {
        this.ensuring = null;
      }
    })();
    return this.ensuring;
  }

  /**
   * Whether `error` is Redis refusing the URL (see refusalOf): it ends the start while the front
   * starts (see UrlGuard); later it is logged, once until the front is ready again.
   */
  private refused(error: unknown): boolean {
    const problem = refusalOf(error);
    if (problem === null) return false;
    if (!this.guard.refuse(problem) && !this.refusalTold) {
      this.refusalTold = true;
      this.log(`Redis refused ${REDIS_URL_OPTION}: ${problem}`);
    }
    return true;
  }

  private setStreamReady(ready: boolean): void {
    if (ready) this.refusalTold = false;
    this.streamReady = ready;
    this.metrics.redisUp.set(ready ? 1 : 0);
    if (ready) this.events.emit('stream-ready');
  }

  /** Reads this front's reply stream, from where it left off, for as long as the front lives. */
  private async readReplies(): Promise<void> {
    let failures = 0;
    while (!this.closing) {
      if (!this.streamReady || this.replies.status !== 'ready') {
        await this.whenStreamReady();
        continue;
      }
      try {
        const answer = await this.replies.xread('COUNT', 512, 'BLOCK', 2000, 'STREAMS', this.replyKey, this.lastReplyId);
        failures = 0;
        for (const [, entries] of answer ?? []) {
          for (const [id, fields] of entries) {
            this.lastReplyId = id;
            const reply = decodeReply(fields);
            if (reply) this.onReply(reply);
          }
        }
      } catch {
        if (this.closing) break;
        await new Promise((resolve) => setTimeout(resolve, reconnectDelay(++failures)).unref());
      }
    }
  }

  /** Resolves on the next change that may let the reader go on (the caller checks again). */
  private whenStreamReady(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.events.off('stream-ready', done);
        this.events.off('closed', done);
        this.replies.off('ready', done);
        resolve();
      };
      this.events.once('stream-ready', done);
      this.events.once('closed', done);
      this.replies.once('ready', done);
    });
  }

  /** Keeps the reply stream alive and short, and reads the queue's state for the metrics. */
  private async monitor(): Promise<void> {
    if (!this.streamReady) return;
    try {
      const [status, expire] = await Promise.all([
        this.commands.queueStatus(
          this.keys.requests,
          this.keys.workers,
          this.keys.dead,
          this.keys.group,
          WORKER_LIVE_WINDOW_MS,
          this.options.streamMaxLength,
        ),
        this.commands.pexpire(this.replyKey, REPLY_STREAM_TTL_MS),
        this.commands.xtrim(this.replyKey, 'MINID', this.lastReplyId),
      ]);
      const [length, pending, waiting, workers, dead, names] = status;
      this.metrics.streamEntries.set(length);
      this.metrics.pendingEntries.set(pending);
      this.metrics.waitingEntries.set(waiting);
      this.metrics.deadLetterEntries.set(dead);
      this.workersSeen = workers;
      this.metrics.keepWorkers(new Set(names));
      this.streamFull = length >= this.options.streamMaxLength;
      if (expire === 0) void this.ensureStream(); // the reply stream vanished without a reconnect
    } catch (error) {
      // Redis went away mid-way: 'close' has marked it down; the next tick tries again.
      this.refused(error);
    }
  }
}
