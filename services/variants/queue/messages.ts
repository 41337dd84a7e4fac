// What the `queue` variant keeps in Redis and how its messages look there: the key names under
// one prefix, and the fields of a request entry (front -> workers) and of a reply entry (worker
// -> the front that owns the connection), typed and checked on both sides. Times that cross
// hosts are on Redis's clock (see RedisClock in redis.ts), never on a host's own.

/** The keys of one queue (one prefix). */
export interface QueueKeys {
  /** The request stream every front adds to and every worker reads through the group. */
  requests: string;
  /** The consumer group of the workers on `requests`. */
  group: string;
  /** Jobs delivered too often (MAX_DELIVERIES), kept for a person to look at. */
  dead: string;
  /** Sorted set: worker name -> when it last reported (Redis clock, ms); who is alive. */
  workers: string;
  /** One front's reply stream. */
  replies(front: string): string;
  /** The lease that keeps a worker's name its own while it lives. */
  lease(worker: string): string;
}

export function queueKeys(prefix: string): QueueKeys {
  return {
    requests: `${prefix}:requests`,
    group: 'workers',
    dead: `${prefix}:dead`,
    workers: `${prefix}:workers`,
    replies: (front) => `${prefix}:replies:${front}`,
    lease: (worker) => `${prefix}:worker:${worker}`,
  };
}

/** A request as a front adds it to the request stream. */
export interface RequestEntry {
  /** The front that owns the client connection (its reply stream is `replies(front)`). */
  front: string;
  /** Unique within that front; the front answers it at most once. */
  request: string;
  n: number;
  /** When the front added it, on Redis's clock, ms. */
  enqueuedAt: number;
}

/** What a worker sends back to a front. */
export type ReplyEntry = {
  request: string;
  /** The worker's name (its `worker` label). */
  worker: string;
  /** How many times the job had been delivered when this worker took it (1: first delivery). */
  deliveries: number;
} & (
  | {
      kind: 'result';
      value: number;
      /** When computing started, on Redis's clock, ms. */
      startedAt: number;
      computeSeconds: number;
    }
  | { kind: 'dead_letter'; message: string }
);

export function encodeRequest(entry: RequestEntry): string[] {
  return ['f', entry.front, 'r', entry.request, 'n', String(entry.n), 't', entry.enqueuedAt.toFixed(3)];
}

/** Null when the fields are not a request entry this version writes. */
export function decodeRequest(fields: readonly string[]): RequestEntry | null {
  const map = fieldMap(fields);
  const front = map.get('f');
  const request = map.get('r');
  const n = Number(map.get('n'));
  const enqueuedAt = Number(map.get('t'));
  if (!front || !request || !Number.isSafeInteger(n) || !Number.isFinite(enqueuedAt)) return null;
  return { front, request, n, enqueuedAt };
}

export function encodeReply(reply: ReplyEntry): string[] {
  const common = ['r', reply.request, 'w', reply.worker, 'd', String(reply.deliveries)];
  if (reply.kind === 'result') {
    return [...common, 'v', String(reply.value), 's', reply.startedAt.toFixed(3), 'c', String(reply.computeSeconds)];
  }
  return [...common, 'e', 'dead_letter', 'm', reply.message];
}

/** Null when the fields are not a reply (the front's own `hello` entry, or garbage). */
export function decodeReply(fields: readonly string[]): ReplyEntry | null {
  const map = fieldMap(fields);
  const request = map.get('r');
  const worker = map.get('w');
  const deliveries = Number(map.get('d'));
  if (!request || !worker || !Number.isSafeInteger(deliveries)) return null;
  if (map.get('e') === 'dead_letter') {
    return { request, worker, deliveries, kind: 'dead_letter', message: map.get('m') ?? 'dead-lettered' };
  }
  const value = Number(map.get('v'));
  const startedAt = Number(map.get('s'));
  const computeSeconds = Number(map.get('c'));
  if (!Number.isSafeInteger(value) || !Number.isFinite(startedAt) || !Number.isFinite(computeSeconds)) return null;
  return { request, worker, deliveries, kind: 'result', value, startedAt, computeSeconds };
}

function fieldMap(fields: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
  return map;
}
