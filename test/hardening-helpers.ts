// Helpers of the hardening reproductions (test/hardening.test.ts, the first pass, and
// test/hardening-second-pass.test.ts; two files so that the test runner can run them side by
// side) and the fuzz harness: each one
// drives a server into a state the hardening issue describes (a connection closing after
// line_too_long, a busy worker at SIGTERM, a deep pipeline) or waits for a state (a metric's
// value, a draining /healthz, an exit), always with a deadline, and reports what it measured.

import { once } from 'node:events';
import { readdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { VARIANTS } from '../services/variants/index.js';
import { startServing } from './backends.js';
import {
  TestClient,
  childProcesses,
  cpuSeconds,
  metricsOf,
  poll,
  referenceFib,
  sample,
  waitForValue,
  type Polled,
  type RunningVariant,
} from './helpers.js';

/** What one server-side limit or defect needs to be observed, at most; a test fails after it. */
export const STATE_DEADLINE_MS = 5000;

/**
 * How many servers the describes whose tests mostly wait (for an idle or line timeout, a close, a
 * drain) run at once: their bounds are state deadlines of seconds, not CPU time, so they share the
 * machine without a test measuring its neighbour. Defect 3's pipelines run three at a time (the
 * py-* variants and the pools spend most of theirs waiting on a pool's round trip, one request at
 * a time). Tests that time bytes (issue 20 item 1) or audit a drain under load (defect 2) stay one
 * at a time.
 */
export const WAITING_SERVERS = 4;
/** A safety net over each hardening test's own deadlines (the slowest, py-coroutines' 30,000-request pipeline, takes about 20 s). */
export const TEST_TIMEOUT_MS = 120_000;
export const fibReply = (n: number) => `fib: ${referenceFib(n)}`;
export const UNAVAILABLE = /^error: unavailable \S/;
/** Variants that serve one connection at a time by design (sync): a second client waits until the first leaves. */
export const TAKES_TURNS = VARIANTS.filter((v) => v.takesTurns).map((v) => v.name);

/** Runs `body` against a fresh server; whatever happens, the server and its children are gone after. */
export async function withServer(
  variant: string,
  env: Record<string, string>,
  body: (server: RunningVariant) => Promise<void>,
): Promise<void> {
  const server = await startServing(variant, env);
  try {
    await body(server);
  } finally {
    killServerTree(server);
    await server.exited;
  }
}

/** Resolves after `ms` without keeping the process alive: the losing side of a race with a deadline. */
export function deadline(ms: number): Promise<void> {
  return sleep(ms, undefined, { ref: false });
}

/** Whether the client's connection closed within `ms` (the server closed it, or it ended after our FIN). */
export function closedWithin(client: TestClient, ms = STATE_DEADLINE_MS): Promise<boolean> {
  return Promise.race([client.closedPromise.then(() => true), deadline(ms).then(() => false)]);
}

/** What a poll of /metrics saw (NaN: the series was absent; -1: /metrics did not answer). */
export type MetricWait = Polled<number>;

/**
 * Polls the server's /metrics until `name{labels}` meets `accept`, or the deadline passes; never
 * throws, so a test can assert with the value it measured in its message (waitForMetric fails instead).
 */
export function waitForSample(
  server: RunningVariant,
  name: string,
  accept: (value: number) => boolean,
  { labels = {}, deadlineMs = STATE_DEADLINE_MS }: { labels?: Record<string, string>; deadlineMs?: number } = {},
): Promise<MetricWait> {
  return poll(async () => sample(await metricsOf(server), name, labels), accept, {
    timeoutMs: deadlineMs,
    onError: () => -1,
  });
}

/** Waits until fib_connections_active reads `count` (the server has released what it should). */
export function waitForActiveConnections(server: RunningVariant, count: number, deadlineMs = STATE_DEADLINE_MS) {
  return waitForSample(server, 'fib_connections_active', (value) => value === count, { deadlineMs });
}

export { waitUntilDraining } from './helpers.js';

/** Waits until a process has used `seconds` more CPU than when called: it is computing now. */
export async function waitUntilComputing(pid: number, seconds = 0.05, deadlineMs = STATE_DEADLINE_MS): Promise<void> {
  const start = cpuSeconds(pid);
  await waitForValue(
    `process ${pid} to use ${seconds} s of CPU`,
    () => cpuSeconds(pid) - start,
    (used) => used >= seconds,
    { timeoutMs: deadlineMs, intervalMs: 5 },
  );
}

/** The server's live (not zombie) child processes: pool processes, cluster workers, per-connection children. */
export function liveChildren(server: RunningVariant): number[] {
  return childProcesses(server.child.pid!)
    .filter((child) => !child.zombie)
    .map((child) => child.pid);
}

/** Waits for a live child of the server that is not in `known`; returns its pid. */
export async function waitForNewChild(server: RunningVariant, known: number[], deadlineMs = STATE_DEADLINE_MS): Promise<number> {
  const fresh = await waitForValue(
    `a new child process (known ${known.join(',')})`,
    () => liveChildren(server).find((pid) => !known.includes(pid)),
    (pid) => pid !== undefined,
    { timeoutMs: deadlineMs, intervalMs: 2 },
  );
  return fresh!;
}

export interface Stopped {
  /** The exit code, or null when it had not exited within the allowance (it was then killed). */
  code: number | null;
  /** From the SIGTERM to the exit (or to the end of the allowance). */
  ms: number;
}

/**
 * Sends SIGTERM and waits up to `allowanceMs` for the exit; past it, kills the server and its
 * children (so an `after` never waits out a long drain timeout) and reports code null.
 */
export async function terminateWithin(server: RunningVariant, allowanceMs: number): Promise<Stopped> {
  const started = performance.now();
  if (server.child.exitCode !== null || server.child.signalCode !== null) return { code: server.child.exitCode, ms: 0 };
  server.child.kill('SIGTERM');
  const outcome = await Promise.race([server.exited.then((code) => ({ code })), deadline(allowanceMs).then(() => null)]);
  const ms = performance.now() - started;
  if (outcome) return { code: outcome.code, ms };
  killServerTree(server);
  await server.exited;
  return { code: null, ms };
}

/** SIGKILLs the server and every child it still has (cluster workers, pool and connection processes). */
export function killServerTree(server: RunningVariant): void {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  for (const pid of liveChildren(server)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  server.child.kill('SIGKILL');
}

/** What a client saw of a connection it made misbehave. */
export interface MisbehavedClient {
  /** The first reply line, or the error that ended the wait for it. */
  reply: string;
  /** Whether the server closed the connection (the client saw it close) within the deadline. */
  closedByServer: boolean;
}

/**
 * The issue's trigger #1: one write of `bytes` bytes of `1` with no newline (over the 64 KiB a
 * socket read returns, so the server reads the frame in two chunks), then a half-close.
 */
export async function sendOversizedFrameAndHalfClose(port: number, bytes = 65_537): Promise<MisbehavedClient> {
  const client = await TestClient.connect(port);
  try {
    await client.write('1'.repeat(bytes));
    client.socket.end();
    return await replyAndClose(client);
  } finally {
    client.close();
  }
}

/**
 * The issue's trigger #2: a line-mode connection overruns 64 bytes, and after the line_too_long
 * reply writes more bytes and half-closes.
 */
export async function writeAfterLineTooLongAndHalfClose(port: number): Promise<MisbehavedClient & { first: string }> {
  const client = await TestClient.connect(port);
  try {
    const first = await client.ask('1');
    await client.write('1'.repeat(100));
    const reply = await client.line(STATE_DEADLINE_MS).catch((error: Error) => error.message);
    // The server may have closed already: a write that fails is still a write the server must survive.
    await client.write('2\n3\n').catch(() => {});
    client.socket.end();
    return { first, reply, closedByServer: await closedWithin(client) };
  } finally {
    client.close();
  }
}

async function replyAndClose(client: TestClient): Promise<MisbehavedClient> {
  const reply = await client.line(STATE_DEADLINE_MS).catch((error: Error) => error.message);
  return { reply, closedByServer: await closedWithin(client) };
}

/** The reply a client got to `request` within `timeoutMs`, or what happened instead. */
export async function replyOrFate(client: TestClient, request: string, timeoutMs = STATE_DEADLINE_MS): Promise<string> {
  try {
    return await client.ask(request, timeoutMs);
  } catch (error) {
    return `<${(error as Error).message}>`;
  }
}

/** One request of a closed-loop connection and what became of it. */
export interface TrackedRequest {
  n: number;
  /** performance.now() when the bytes were handed to the kernel (the write call returned). */
  writtenAt: number;
  reply?: string;
  repliedAt?: number;
}

/** How one connection of a closed loop ended, as the client saw it. */
export interface TrackedConnection {
  requests: TrackedRequest[];
  /** Reply lines that came with no request outstanding (a request answered twice, or a stray line). */
  strayLines: string[];
  /** When the server's FIN arrived ('end'), if it did. */
  endAt: number | null;
  /** An error code (ECONNRESET, ...) seen before any FIN, and when. */
  resetCode: string | null;
  closedAt: number | null;
}

/**
 * A connection that sends one request, waits for its reply, thinks `thinkMs`, and sends the
 * next, until the server ends it or `stop()` is called. It records every request's write and
 * reply time, and whether the connection ended with a FIN or a reset.
 */
export class ClosedLoopConnection implements TrackedConnection {
  readonly requests: TrackedRequest[] = [];
  readonly strayLines: string[] = [];
  endAt: number | null = null;
  resetCode: string | null = null;
  closedAt: number | null = null;
  /** Called after each reply, with this connection (lets a test act at a precise moment). */
  onReply: ((connection: ClosedLoopConnection) => void) | null = null;
  private stopped = false;
  private buffered = '';
  private sent = 0;
  readonly closed: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    private readonly nextN: (index: number) => number,
    private readonly thinkMs: number,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => (this.endAt ??= performance.now()));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (this.endAt === null) this.resetCode ??= error.code ?? error.message;
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = performance.now();
        resolve();
      }),
    );
  }

  static async open(port: number, nextN: (index: number) => number, thinkMs: number): Promise<ClosedLoopConnection> {
    const socket = connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    return new ClosedLoopConnection(socket, nextN, thinkMs);
  }

  /** Sends the first request; the loop goes on by itself. */
  start(): void {
    this.send();
  }

  /** Sends no further request (the one outstanding still gets its reply). */
  stop(): void {
    this.stopped = true;
  }

  get outstanding(): TrackedRequest | undefined {
    const last = this.requests.at(-1);
    return last && last.reply === undefined ? last : undefined;
  }

  destroy(): void {
    this.stopped = true;
    this.socket.destroy();
  }

  private send(): void {
    if (this.stopped || this.endAt !== null || this.socket.destroyed) return;
    const n = this.nextN(this.sent++);
    this.socket.write(`${n}\n`);
    this.requests.push({ n, writtenAt: performance.now() });
  }

  private onData(chunk: Buffer): void {
    const lines = (this.buffered + chunk.toString('latin1')).split('\n');
    this.buffered = lines.pop()!;
    for (const line of lines) {
      const request = this.outstanding;
      if (!request) {
        this.strayLines.push(line);
        continue;
      }
      request.reply = line;
      request.repliedAt = performance.now();
      this.onReply?.(this);
      if (this.thinkMs > 0) setTimeout(() => this.send(), this.thinkMs);
      else this.send();
    }
  }
}

/**
 * Reads the replies of one deep pipeline without keeping them: counts them, checks each
 * against the expected reply of its position, and records how many had arrived when an
 * observer asks (reply order across connections).
 */
export class PipelineReader {
  count = 0;
  mismatches: string[] = [];
  private buffered = '';
  private readonly done: Promise<void>;
  private finish!: () => void;
  private onFirst: (() => void) | null = null;

  constructor(
    socket: Socket,
    private readonly expected: (index: number) => string,
    private readonly total: number,
  ) {
    this.done = new Promise((resolve) => (this.finish = resolve));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.once('close', () => this.finish());
  }

  /** Runs `action` synchronously when the first reply arrives. */
  whenFirstReply(action: () => void): void {
    this.onFirst = action;
  }

  /** Resolves when every reply has arrived or the connection closed, or at the deadline. */
  async finished(deadlineMs: number): Promise<boolean> {
    return Promise.race([this.done.then(() => this.count === this.total), deadline(deadlineMs).then(() => false)]);
  }

  private onData(chunk: Buffer): void {
    const lines = (this.buffered + chunk.toString('latin1')).split('\n');
    this.buffered = lines.pop()!;
    for (const line of lines) {
      const want = this.expected(this.count);
      if (line !== want && this.mismatches.length < 5) this.mismatches.push(`#${this.count}: ${line} (expected ${want})`);
      this.count += 1;
      if (this.count === 1) this.onFirst?.();
      if (this.count === this.total) this.finish();
    }
  }
}

/** A TCP race no server can avoid: a byte written this close to a signal or a FIN may miss it. */
export const RACE_MS = 100;

export interface ShutdownRun {
  /** performance.now() of the kill() call. */
  killedAt: number;
  /** The exit code, or null when the server had not exited by the deadline (it was then killed). */
  exitCode: number | null;
  /** performance.now() of the exit, or null. */
  exitedAt: number | null;
  connections: ClosedLoopConnection[];
}

/**
 * Runs `connections` closed-loop connections against the server; once they have `killAfter`
 * replies between them, sends SIGTERM (at that reply, so the kill lands mid-traffic) and lets
 * them go on until the server has ended every one of them and exited, or the deadline passes.
 */
export async function closedLoopThroughShutdown(
  server: RunningVariant,
  {
    connections,
    nextN,
    thinkMs,
    killAfter,
    deadlineMs,
  }: {
    connections: number;
    nextN: (connection: number, index: number) => number;
    thinkMs: number;
    killAfter: number;
    deadlineMs: number;
  },
): Promise<ShutdownRun> {
  const clients = await Promise.all(
    Array.from({ length: connections }, (_, c) => ClosedLoopConnection.open(server.port, (i) => nextN(c, i), thinkMs)),
  );
  let replies = 0;
  let killedAt = 0;
  const killed = new Promise<void>((resolve) => {
    for (const client of clients) {
      client.onReply = () => {
        replies += 1;
        if (replies === killAfter) {
          killedAt = performance.now();
          server.child.kill('SIGTERM');
          resolve();
        }
      };
    }
  });
  for (const client of clients) client.start();
  const until = performance.now() + deadlineMs;
  const remaining = () => Math.max(0, until - performance.now());
  const reachedKill = await Promise.race([killed.then(() => true), deadline(remaining()).then(() => false)]);
  if (!reachedKill) {
    killedAt = performance.now();
    server.child.kill('SIGTERM');
  }
  const exit = await Promise.race([
    server.exited.then((code) => ({ code, at: performance.now() })),
    deadline(remaining()).then(() => null),
  ]);
  await Promise.race([Promise.all(clients.map((client) => client.closed)), deadline(Math.min(remaining(), 1000))]);
  for (const client of clients) client.destroy();
  if (!exit) killServerTree(server);
  return { killedAt, exitCode: exit ? exit.code : null, exitedAt: exit ? exit.at : null, connections: clients };
}

/** What a shutdown under traffic did to each request, and every breach of the drain contract. */
export interface ShutdownAudit {
  violations: string[];
  requests: number;
  beforeKill: {
    answered: number;
    /** `unavailable` at the drain timeout. */
    refusedAtTimeout: number;
    /** `unavailable` to a request written within RACE_MS before the kill. */
    refusedRacingSignal: number;
    /**
     * `unavailable` to a connection not served before the kill: sync's clients waiting for their
     * turn, a connection whose thread or process had not started. Nothing of it was in flight.
     */
    refusedBeforeTurn: number;
    /** `unavailable` to a request read after the signal (accepted unless rules.strictBeforeKill). */
    refusedReadLate: number;
  };
  afterKill: { answered: number; refused: number; racedFin: number };
  /** Connections ended by a FIN, by a reset, or never closed. */
  endings: { fin: number; reset: number; open: number };
}

export interface AuditRules {
  drainTimeoutMs: number;
  /**
   * A request written before the kill must get its result (strict), except within RACE_MS of
   * the kill or at the drain timeout; otherwise any reply line will do (`unavailable` included).
   */
  strictBeforeKill: boolean;
  expected: (n: number) => string;
}

/** Checks a shutdown run against the drain contract (docs/protocol.md, Shutdown). */
export function auditShutdown(run: ShutdownRun, rules: AuditRules): ShutdownAudit {
  const audit: ShutdownAudit = {
    violations: [],
    requests: 0,
    beforeKill: { answered: 0, refusedAtTimeout: 0, refusedRacingSignal: 0, refusedBeforeTurn: 0, refusedReadLate: 0 },
    afterKill: { answered: 0, refused: 0, racedFin: 0 },
    endings: { fin: 0, reset: 0, open: 0 },
  };
  const ms = (t: number) => `${(t - run.killedAt).toFixed(0)} ms`;
  if (run.exitCode !== 0) audit.violations.push(`the server exited with ${run.exitCode} (null: not within the deadline)`);
  run.connections.forEach((connection, c) => {
    const where = `connection ${c}`;
    if (connection.resetCode !== null) audit.endings.reset += 1;
    else if (connection.endAt !== null) audit.endings.fin += 1;
    else audit.endings.open += 1;
    if (connection.resetCode !== null) audit.violations.push(`${where}: ${connection.resetCode} with no FIN from the server`);
    else if (connection.endAt === null) audit.violations.push(`${where}: never ended by the server`);
    if (connection.strayLines.length > 0)
      audit.violations.push(
        `${where}: ${connection.strayLines.length} reply lines with no request outstanding: ${connection.strayLines[0]}`,
      );
    let served = false;
    connection.requests.forEach((request, i) => {
      audit.requests += 1;
      const what = `${where} request ${i} (${request.n}, written at ${ms(request.writtenAt)} from SIGTERM)`;
      const before = request.writtenAt < run.killedAt;
      if (request.reply === undefined) {
        const fin = connection.endAt;
        if (!before && fin !== null && fin - request.writtenAt <= RACE_MS) audit.afterKill.racedFin += 1;
        else
          audit.violations.push(
            `${what}: no reply; ${fin === null ? 'no FIN either' : `the server's FIN came ${(fin - request.writtenAt).toFixed(0)} ms after it`}`,
          );
        return;
      }
      const refused = /^error: unavailable\b/.test(request.reply);
      if (!refused && request.reply !== rules.expected(request.n)) {
        audit.violations.push(`${what}: wrong reply ${JSON.stringify(request.reply)}`);
        return;
      }
      if (!before) {
        if (refused) audit.afterKill.refused += 1;
        else audit.afterKill.answered += 1;
        return;
      }
      if (!refused) {
        served = true;
        audit.beforeKill.answered += 1;
      } else if (request.repliedAt! - run.killedAt >= 0.9 * rules.drainTimeoutMs) audit.beforeKill.refusedAtTimeout += 1;
      else if (run.killedAt - request.writtenAt <= RACE_MS) audit.beforeKill.refusedRacingSignal += 1;
      else if (!served) audit.beforeKill.refusedBeforeTurn += 1;
      else if (rules.strictBeforeKill)
        audit.violations.push(`${what}: refused unavailable at ${ms(request.repliedAt!)}, before the drain timeout`);
      else audit.beforeKill.refusedReadLate += 1;
    });
  });
  return audit;
}

/** One line for the test log: how many requests met which fate. */
export function summarizeAudit(audit: ShutdownAudit): string {
  const b = audit.beforeKill;
  const a = audit.afterKill;
  return (
    `${audit.requests} requests; before SIGTERM: ${b.answered} answered, unavailable ${b.refusedAtTimeout} at the drain timeout, ` +
    `${b.refusedRacingSignal} racing the signal, ${b.refusedBeforeTurn} before their turn, ${b.refusedReadLate} read after the signal; ` +
    `after: ${a.answered} answered, ${a.refused} unavailable, ${a.racedFin} raced the FIN; ` +
    `connections: ${audit.endings.fin} FIN, ${audit.endings.reset} reset, ${audit.endings.open} never ended; ` +
    `${audit.violations.length} violations`
  );
}

/**
 * A served, idle connection whose client, when the server's FIN arrives (the drain closing
 * it), still writes a line and only then half-closes: bytes that reach a socket its server has
 * ended. Resolves once the client is connected and served; `finished` once its socket closed.
 */
export async function connectWritingAfterFin(port: number): Promise<{ finished: Promise<void> }> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write('1\n');
  await once(socket, 'data');
  socket.once('end', () => {
    socket.write('2\n');
    socket.end();
  });
  return { finished: once(socket, 'close').then(() => {}) };
}

/**
 * A client that pipelines `bytes` of requests (`out_of_range` ones: answered at once, three
 * times longer than asked) and never reads a reply: the kernel's buffers fill both ways and the
 * server's writes block. Returns the socket, paused; the caller destroys it.
 */
export async function pipelineAndNeverRead(port: number, bytes: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  socket.pause();
  await once(socket, 'connect');
  const line = '99999999999999999999\n';
  socket.write(line.repeat(Math.ceil(bytes / line.length)));
  return socket;
}

/**
 * The environment of a server whose heap heapHeld reads: a young generation of 1 MB, and a heap
 * snapshot into `dir` on SIGUSR2 (V8 collects all garbage first). Node's own flags: nothing in
 * the server knows.
 */
export function heapReadable(dir: string): Record<string, string> {
  return { NODE_OPTIONS: `--max-semi-space-size=1 --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}` };
}

/**
 * What the server's heap holds (started with heapReadable(dir)): it collects all its garbage and
 * writes a snapshot (deleted here), then nodejs_heap_size_used_bytes is read, the lowest of
 * `samples` reads: the objects it keeps alive, within its young generation (1 MB).
 */
export async function heapHeld(server: RunningVariant, dir: string, samples = 5): Promise<number> {
  const known = new Set(readdirSync(dir));
  process.kill(server.child.pid!, 'SIGUSR2');
  const until = performance.now() + STATE_DEADLINE_MS;
  let snapshot: string | undefined;
  while (!(snapshot = readdirSync(dir).find((name) => !known.has(name)))) {
    if (performance.now() >= until) throw new Error(`no heap snapshot in ${dir} within ${STATE_DEADLINE_MS} ms of SIGUSR2`);
    await sleep(20);
  }
  // The snapshot is written on the server's main thread: /metrics answers once it is complete.
  let lowest = Infinity;
  for (let i = 0; i < samples; i++) {
    lowest = Math.min(lowest, sample(await metricsOf(server), 'nodejs_heap_size_used_bytes'));
    await sleep(20);
  }
  rmSync(join(dir, snapshot), { force: true });
  return lowest;
}

/**
 * Connections that write a server one byte at a time and never read: the issue's tiny-chunk
 * flood. A connection whose bytes the kernel no longer takes (the server stopped reading and TCP
 * pushed back) waits for 'drain' before its next byte.
 */
export class TinyChunkFlood {
  /** Bytes each connection has written so far. */
  readonly written: number[];

  private constructor(private readonly sockets: Socket[]) {
    this.written = sockets.map(() => 0);
  }

  /** Opens `connections` connections and writes `first` on each (the request that keeps it busy). */
  static async open(port: number, connections: number, first: string): Promise<TinyChunkFlood> {
    const sockets = await Promise.all(
      Array.from({ length: connections }, async () => {
        const socket = connect({ port, host: '127.0.0.1' });
        socket.on('error', () => {});
        socket.setNoDelay(true);
        await once(socket, 'connect');
        socket.write(first);
        return socket;
      }),
    );
    return new TinyChunkFlood(sockets);
  }

  /**
   * Writes `pattern`'s bytes in turn, one byte per connection every `everyMs` (or more, on a busy
   * machine), until each connection has written `bytes` or `mostMs` has passed.
   */
  async run(pattern: string, bytes: number, everyMs: number, mostMs: number): Promise<void> {
    const blocked = new Set<number>();
    const until = performance.now() + mostMs;
    while (performance.now() < until && this.written.some((count) => count < bytes)) {
      this.sockets.forEach((socket, i) => {
        if (blocked.has(i) || socket.destroyed || this.written[i]! >= bytes) return;
        const byte = pattern[this.written[i]! % pattern.length]!;
        this.written[i]! += 1;
        if (!socket.write(byte)) {
          blocked.add(i);
          socket.once('drain', () => blocked.delete(i));
        }
      });
      await sleep(everyMs);
    }
  }

  destroy(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}

/** A client holding a connection with a line it never finishes. */
export interface PartialLineHolder {
  /** The reply to the line it finished first (where clients take turns, once its turn has come). */
  first: Promise<string>;
  /** Resolves once the server has closed the connection, with the lines it sent after `first`. */
  closed: Promise<string[]>;
  /** Stops writing and closes (the test is over). */
  stop(): void;
}

/**
 * A client that finishes one line (so the connection is in line mode), then writes the next one
 * a byte every `everyMs` and never its newline: the partial-line hold of issue 20. Resolves once
 * connected; it trickles once its first line is answered.
 */
export async function holdWithAPartialLine(port: number, everyMs: number): Promise<PartialLineHolder> {
  const client = await TestClient.connect(port);
  let timer: NodeJS.Timeout | undefined;
  const first = replyOrFate(client, '1', 30_000).then((reply) => {
    timer = setInterval(() => {
      if (!client.closed) client.write('1').catch(() => {});
    }, everyMs);
    return reply;
  });
  const closed = client.closedPromise.then(async () => {
    clearInterval(timer);
    const lines: string[] = [];
    for (let line = await client.line(1).catch(() => null); line !== null; line = await client.line(1).catch(() => null)) {
      lines.push(line);
    }
    return lines;
  });
  return {
    first,
    closed,
    stop() {
      clearInterval(timer);
      client.close();
    },
  };
}

/**
 * A client in the server's own process that writes `1\n` on every turn of the event loop until
 * the server has sent its FIN, from a setImmediate that runs before the server's own in each turn
 * (started before the drain, it stays first in the queue). So whenever the server decides to end
 * the connection, a request has reached its kernel since the poll it last read in: the drain race
 * of issue 20, made certain instead of a matter of milliseconds.
 */
export class EveryTurnWriter {
  written = 0;
  readonly replies: string[] = [];
  /** The server's FIN arrived. */
  ended = false;
  resetCode: string | null = null;
  readonly closed: Promise<void>;
  private buffered = '';

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      const lines = (this.buffered + chunk.toString('latin1')).split('\n');
      this.buffered = lines.pop()!;
      this.replies.push(...lines);
    });
    socket.on('end', () => (this.ended = true));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (!this.ended) this.resetCode ??= error.code ?? error.message;
    });
    this.closed = once(socket, 'close').then(() => {});
  }

  static async open(port: number): Promise<EveryTurnWriter> {
    const socket = connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    return new EveryTurnWriter(socket);
  }

  /** Writes one request and waits for its reply: the connection is served. */
  async served(): Promise<string> {
    this.socket.write('1\n');
    this.written += 1;
    while (this.replies.length < 1) await once(this.socket, 'data');
    return this.replies[0]!;
  }

  /**
   * Starts writing a request every turn, until `serverSentFin` says the server's shutdown(2) has
   * returned (a request written after it crossed the FIN; the client may see the FIN a turn later).
   */
  start(serverSentFin: () => boolean): void {
    const turn = () => {
      if (this.ended || this.socket.destroyed || serverSentFin()) return;
      this.socket.write('1\n');
      this.written += 1;
      setImmediate(turn);
    };
    setImmediate(turn);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
