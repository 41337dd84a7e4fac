// The Redis side of the `queue` variant, shared by its front and its workers: how a process
// connects (fail fast while Redis is down, reconnect with backoff), the Lua scripts that make
// each multi-step change atomic (bounded add, acknowledge-then-reply, heartbeat, claim, trim,
// status), and the clock every cross-host time is expressed in (Redis's own).
//
// Why scripts: a worker's reply and its XACK must be one step, or a worker dying between them
// leaves a job redelivered although its reply went out; "reply only if this worker is the one
// that acknowledged it" is what keeps a job claimed by two workers from being answered twice;
// and "add only below the bound" must be one step, or fronts adding at once all pass it.

import { Redis, type Result } from 'ioredis';
import { epochMs } from '../../lab/clock.js';
import { ConfigError } from '../../lab/errors.js';
import type { QueueKeys } from './messages.js';
import { REDIS_URL_OPTION, redactRedisUrl } from './options.js';

/** Reconnect delays: 100 ms doubling to 2 s, with jitter so that many clients do not reconnect in step. */
export function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.max(0, attempt - 1), 2000) + Math.floor(Math.random() * 100);
}

/**
 * Why Redis refused this process's URL itself, as opposed to being out of reach: a database
 * index the server does not have, credentials it rejects (NOAUTH, WRONGPASS), a user without a
 * permission the queue needs (NOPERM, or a script's command denied). Waiting does not cure
 * these; only the URL (or the server's ACL) does. Null for any other error.
 */
export function refusalOf(error: unknown): string | null {
  if (!(error instanceof Error)) return null;
  const message = error.message.trim();
  if (/^ERR (DB index is out of range|invalid DB index)/i.test(message)) {
    return `the server has no such database (${message})`;
  }
  if (/^(NOAUTH|WRONGPASS)\b|^ERR invalid password/.test(message)) return `the server refused the credentials (${message})`;
  if (/^NOPERM\b|^ERR The user executing the script can't run/.test(message)) {
    return `the user lacks a permission the queue needs (${message})`;
  }
  return null;
}

/**
 * Decides what a refused URL (see refusalOf) does to a process. While it starts, it is bad
 * configuration: `refused` rejects with a ConfigError naming the option, and `lab` exits 2 with
 * that one line instead of retrying forever. Once started (it has reached Redis, or the front
 * serves `unavailable` without it), it is an outage like any other, logged once and retried
 * with backoff: the server's ACL may be put right without a restart.
 */
export class UrlGuard {
  /** Rejects with the first refusal heard while starting; never resolves. */
  readonly refused: Promise<never>;
  private starting = true;
  private heard: ConfigError | null = null;
  private reject!: (error: ConfigError) => void;

  constructor(private readonly redisUrl: string) {
    this.refused = new Promise<never>((_, reject) => (this.reject = reject));
    this.refused.catch(() => {}); // a refusal nobody awaits any more is not an unhandled rejection
  }

  /** Reports a refusal: true when it ends the start (the caller says nothing more), false once started. */
  refuse(problem: string): boolean {
    if (!this.starting) return false;
    this.heard ??= new ConfigError(REDIS_URL_OPTION, `${redactRedisUrl(this.redisUrl)}: ${problem}`);
    this.reject(this.heard);
    return true;
  }

  /** The start is over: throws the refusal heard during it, if any; later ones are outages. */
  started(): void {
    if (this.heard) throw this.heard;
    this.starting = false;
  }
}

/**
 * A connection that fails commands at once while Redis is unreachable (no offline queue, no
 * resend after a reconnect: the caller decides what a failed command means) and reconnects
 * forever with backoff. `role` names it in CLIENT LIST and in log lines. A refused URL (see
 * refusalOf) goes to `guard`; the connection never carries on regardless.
 */
export function connectRedis(redisUrl: string, role: string, log: (line: string) => void, guard: UrlGuard): Redis {
  const redis = new Redis(redisUrl, {
    connectionName: role,
    protocol: 2, // RESP2 shapes everywhere, as the scripts and the typed replies below expect
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: reconnectDelay,
    scripts: SCRIPTS,
  });
  // One line per outage and one per recovery, not one per reconnect attempt; a refusal says so
  // even when the outage began as Redis being out of reach.
  let outage: 'unreachable' | 'refused' | null = null;
  redis.on('error', (error: Error) => {
    const problem = refusalOf(error);
    if (problem) {
      // Close and retry with backoff: after a failed SELECT, ioredis would go on in database 0.
      redis.disconnect(true);
      if (outage === 'refused') return;
      outage = 'refused';
      if (guard.refuse(problem)) return;
      log(`${role}: Redis at ${redactRedisUrl(redisUrl)} refused ${REDIS_URL_OPTION}: ${problem}; retrying with backoff`);
      return;
    }
    if (outage !== null) return;
    outage = 'unreachable';
    log(`${role}: Redis at ${redactRedisUrl(redisUrl)} unreachable (${error.message}); reconnecting with backoff`);
  });
  redis.on('ready', () => {
    void checkVersion(redis, role, log);
    if (outage === null) return;
    outage = null;
    log(`${role}: reconnected to Redis`);
  });
  return redis;
}

/** The scripts rely on Redis 7 (XAUTOCLAIM dropping deleted entries, XINFO GROUPS lag): say so plainly on an older one. */
async function checkVersion(redis: Redis, role: string, log: (line: string) => void): Promise<void> {
  const version = /^redis_version:(\d+)\.(\d+)/m.exec(await redis.info('server').catch(() => ''));
  if (version && Number(version[1]) < 7) {
    log(`${role}: Redis ${version[1]}.${version[2]} is too old: the queue needs Redis 7.0 or later`);
  }
}

/** Resolves once `redis` is ready, or when `stop` aborts (then with false). */
export function whenReady(redis: Redis, stop?: AbortSignal): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  if (stop?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const ready = () => {
      stop?.removeEventListener('abort', stopped);
      resolve(true);
    };
    const stopped = () => {
      redis.off('ready', ready);
      resolve(false);
    };
    redis.once('ready', ready);
    stop?.addEventListener('abort', stopped, { once: true });
  });
}

/** Creates the workers' consumer group (and the stream) unless it exists. */
export async function ensureGroup(redis: Redis, keys: QueueKeys): Promise<void> {
  try {
    // `$`: a group created now owes nothing to entries added before it. Fronts and workers both
    // create it before their first XADD / XREADGROUP, so no request is ever added without it.
    await redis.xgroup('CREATE', keys.requests, keys.group, '$', 'MKSTREAM');
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('BUSYGROUP')) throw error;
  }
}

export function isNoGroupError(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOGROUP');
}

/**
 * Milliseconds on Redis's clock, from this host's clock plus a measured offset. Stream entry ids
 * carry Redis's clock too, so every host compares times against one clock, whatever its own
 * says. The offset is measured with TIME: the midpoint of the round trip, good to half of it.
 */
export class RedisClock {
  /** How often a front or worker re-measures Redis's clock. */
  static readonly RESYNC_EVERY_MS = 10_000;
  private offsetMs = 0;
  private bestRoundTripMs = Infinity;
  private measuredAt = 0;

  async sync(redis: Redis): Promise<void> {
    const sent = epochMs();
    const [seconds, micros] = await redis.time();
    const received = epochMs();
    const roundTrip = received - sent;
    // Keep the tightest sample, but take a fresh one at least every minute (clocks drift).
    if (roundTrip <= this.bestRoundTripMs || received - this.measuredAt > 60_000) {
      this.offsetMs = Number(seconds) * 1000 + Number(micros) / 1000 - (sent + received) / 2;
      this.bestRoundTripMs = roundTrip;
      this.measuredAt = received;
    }
  }

  /** Re-measures every RESYNC_EVERY_MS (a failure waits for the next time); clear the timer to stop. */
  keepSynced(redis: Redis): NodeJS.Timeout {
    return setInterval(() => void this.sync(redis).catch(() => {}), RedisClock.RESYNC_EVERY_MS);
  }

  /** A local epoch time (see clock.ts) on Redis's clock. */
  toRedis(localMs: number): number {
    return localMs + this.offsetMs;
  }

  /** A time on Redis's clock as a local epoch time. */
  toLocal(redisMs: number): number {
    return redisMs - this.offsetMs;
  }
}

// Scripts run atomically in Redis. KEYS first, then ARGV, as numberOfKeys says.
const SCRIPTS = {
  /**
   * KEYS: requests. ARGV: max length, request fields... A front's enqueue: adds the request
   * unless the stream already holds max length entries, in the same step as the check, so fronts
   * adding at the same moment cannot together pass the bound (each front's own view of the
   * length is up to a second old). The new entry's id, or nil when refused.
   */
  queueAdd: {
    numberOfKeys: 1,
    lua: `
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))`,
  },
  /**
   * KEYS: requests, replies. ARGV: group, entry id, reply MAXLEN, reply fields...
   * Acknowledges the job and deletes its entry (the stream holds only jobs waiting or being
   * computed) and, only if this call acknowledged it, adds the reply (never creating the reply
   * stream of a front that has gone). 0: someone else had acknowledged it (no reply sent);
   * 1: replied; 2: acknowledged, but the front's reply stream is gone.
   */
  queueReply: {
    numberOfKeys: 2,
    lua: `
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('XADD', KEYS[2], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4)) then return 1 end
return 2`,
  },
  /**
   * KEYS: requests, replies, dead. ARGV: group, entry id, reply MAXLEN, dead MAXLEN, count of dead
   * fields, dead fields..., reply fields... Like queueReply, and keeps the job in the dead stream.
   */
  queueDeadLetter: {
    numberOfKeys: 3,
    lua: `
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
local count = tonumber(ARGV[5])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 6, 5 + count))
if redis.call('XADD', KEYS[2], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 6 + count)) then return 1 end
return 2`,
  },
  /**
   * KEYS: requests. ARGV: group, consumer, entry id. A worker computing a job says it is still
   * at it: resets the job's idle time without counting a delivery (XCLAIM JUSTID), so nobody
   * claims it. 1: still ours; 0: acknowledged by another or deleted by its front (XCLAIM drops a
   * deleted entry from the pending list); -1: another worker has claimed it.
   */
  queueHeartbeat: {
    numberOfKeys: 1,
    lua: `
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 then return 0 end
if pending[1][2] ~= ARGV[2] then return -1 end
if #redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID') == 0 then return 0 end
return 1`,
  },
  /**
   * KEYS: requests. ARGV: group, consumer, min idle ms, cursor. Claims one job idle longer than
   * min idle (its worker died or stalls) and returns {next cursor, id, fields, deliveries}, or
   * {next cursor} when there is none from this cursor on.
   */
  queueClaim: {
    numberOfKeys: 1,
    lua: `
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', 1)
local entry = claimed[2][1]
if not entry then return {claimed[1]} end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
return {claimed[1], entry[1], entry[2], pending[1][4]}`,
  },
  /**
   * KEYS: requests. ARGV: group. The safety net behind the XDEL of every acknowledged entry:
   * trims all entries before the oldest pending one, or, with none pending, before the last
   * delivered. Never an entry that is waiting or being computed. Returns how many went.
   */
  queueTrim: {
    numberOfKeys: 1,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local last
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, delivered
  for i = 1, #group, 2 do
    if group[i] == 'name' then name = group[i + 1] elseif group[i] == 'last-delivered-id' then delivered = group[i + 1] end
  end
  if name == ARGV[1] then last = delivered end
end
if not last then return 0 end
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
if summary[1] > 0 then last = summary[2] end
return redis.call('XTRIM', KEYS[1], 'MINID', last)`,
  },
  /**
   * KEYS: lease, workers. ARGV: token, lease ms, name, force. Takes or renews the lease on a
   * worker name (unless another process holds it and force is 0) and marks the worker alive.
   * 1: the name is this process's; 0: another process holds it.
   */
  queueRegister: {
    numberOfKeys: 2,
    lua: `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and ARGV[4] == '0' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], now[1] * 1000 + math.floor(now[2] / 1000), ARGV[3])
return 1`,
  },
  /**
   * KEYS: requests, workers, dead. ARGV: group, live window ms, lag cap. What a front reports:
   * {stream length, pending, waiting (not yet delivered), live workers, dead-letter length, the
   * live workers' names}. Live: registered within the window (a worker whose heartbeat and lease
   * lapsed, or that stopped cleanly, is not).
   */
  queueStatus: {
    numberOfKeys: 3,
    lua: `
local now = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(ARGV[2]))
local pending, waiting = 0, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then
      pending = fields['pending']
      waiting = fields['lag']
      if not waiting then
        waiting = #redis.call('XRANGE', KEYS[1], '(' .. fields['last-delivered-id'], '+', 'COUNT', ARGV[3])
      end
    end
  end
end
return {redis.call('XLEN', KEYS[1]), pending, waiting, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3]),
  redis.call('ZRANGE', KEYS[2], 0, -1)}`,
  },
};

type Arg = string | number;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    queueAdd(requests: string, maxLength: number, ...fields: string[]): Result<string | null, Context>;
    queueReply(requests: string, replies: string, ...args: Arg[]): Result<0 | 1 | 2, Context>;
    queueDeadLetter(requests: string, replies: string, dead: string, ...args: Arg[]): Result<0 | 1 | 2, Context>;
    queueHeartbeat(requests: string, group: string, consumer: string, id: string): Result<-1 | 0 | 1, Context>;
    queueClaim(
      requests: string,
      group: string,
      consumer: string,
      minIdleMs: number,
      cursor: string,
    ): Result<[cursor: string] | [cursor: string, id: string, fields: string[], deliveries: number], Context>;
    queueTrim(requests: string, group: string): Result<number, Context>;
    queueRegister(
      lease: string,
      workers: string,
      token: string,
      leaseMs: number,
      name: string,
      force: 0 | 1,
    ): Result<0 | 1, Context>;
    queueStatus(
      requests: string,
      workers: string,
      dead: string,
      group: string,
      liveWindowMs: number,
      lagCap: number,
    ): Result<[length: number, pending: number, waiting: number, workers: number, dead: number, names: string[]], Context>;
  }
}
