// Test helpers: run `lab` as a real process (a variant on port 0, or a load), and talk to it
// over real sockets. Each helper is named after what it does to the server.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { ConfigError } from '../services/lab/errors.js';
import { parseExposition, pick } from '../services/lab/exposition.js';
import { spawnLab, startLocalVariant, type LocalVariant } from '../services/loadgen/local.js';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLI = fileURLToPath(new URL('../services/cli/index.js', import.meta.url));

export type RunningVariant = LocalVariant;

/** Starts `lab serve <variant>` on free ports and waits for its `listening` line. */
export const startVariant = startLocalVariant;

/** Runs `lab <args>` to completion. */
export async function runLab(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000) {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** A raw test client: writes bytes exactly as given and reads reply lines. */
export class TestClient {
  private buffered = '';
  private readonly lines: string[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString('latin1');
      const parts = this.buffered.split('\n');
      this.buffered = parts.pop()!;
      this.lines.push(...parts);
      this.wake();
    });
    socket.on('error', () => {});
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<TestClient> {
    const socket = connect({ port, host });
    await once(socket, 'connect');
    return new TestClient(socket);
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (error) => (error ? reject(error) : resolve())));
  }

  /** Resolves with the next reply line; rejects when the connection closes first or on timeout. */
  async line(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.closed) throw new Error(`connection closed while waiting for a reply (partial: ${JSON.stringify(this.buffered)})`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.lines.shift()!;
  }

  async readLines(count: number, timeoutMs?: number): Promise<string[]> {
    const result: string[] = [];
    for (let i = 0; i < count; i++) result.push(await this.line(timeoutMs));
    return result;
  }

  /** Sends one request line and returns its reply. */
  async ask(request: string, timeoutMs?: number): Promise<string> {
    await this.write(`${request}\n`);
    return this.line(timeoutMs);
  }

  /** Resolves when the server has closed the connection (rejects after the timeout). */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await Promise.race([
      this.closedPromise,
      sleep(timeoutMs).then(() => {
        throw new Error(`connection still open after ${timeoutMs} ms`);
      }),
    ]);
  }

  close(): void {
    this.socket.destroy();
  }

  /**
   * Leaves abruptly: the connection is reset (RST), as when a client dies with replies unread.
   * A plain close sends a FIN, which a server cannot tell from a client that half-closed and
   * still waits for its replies.
   */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** fib by iteration: the test's reference (servers must recurse; a test may not). */
export function referenceFib(n: number): number {
  let [a, b] = [1, 1];
  for (let i = 3; i <= n; i++) [a, b] = [b, a + b];
  return n <= 2 ? 1 : b;
}

export async function fetchText(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

/**
 * Asks fib(n) over and over on one connection for `ms`; resolves with how many replies came
 * back. With `depth` > 1 it keeps that many requests in flight (pipelined), so the server
 * always has the next one waiting: no idle gap between two replies.
 */
export async function loopRequests(port: number, n: number, ms: number, depth = 1): Promise<number> {
  const client = await TestClient.connect(port);
  try {
    await client.write(`${n}\n`.repeat(depth - 1));
    return await askRepeatedly(client, n, ms);
  } finally {
    client.close();
  }
}

/** Asks fib(n) over and over on an open connection for `ms`, one at a time; how many replies came back. */
export async function askRepeatedly(client: TestClient, n: number, ms: number): Promise<number> {
  const expected = `fib: ${referenceFib(n)}`;
  const until = performance.now() + ms;
  let count = 0;
  while (performance.now() < until) {
    const reply = await client.ask(String(n));
    if (reply !== expected) throw new Error(`fib(${n}) answered ${JSON.stringify(reply)}`);
    count += 1;
  }
  return count;
}

/** A process's resident memory and thread count, from /proc (Linux). */
export function processStatus(pid: number): { rssBytes: number; threads: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1]);
  return { rssBytes: field('VmRSS') * 1024, threads: field('Threads') };
}

/** The pids of a process's live children and the zombies among them, from /proc (Linux). */
export function childProcesses(parent: number): { pid: number; zombie: boolean }[] {
  const children: { pid: number; zombie: boolean }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === parent) children.push({ pid: Number(entry), zombie: state === 'Z' });
    } catch {
      // the process ended while we looked
    }
  }
  return children;
}

/** The value of the first sample `name` whose labels include `labels` on a metrics page (services/lab/exposition.ts), or NaN. */
export function sample(metricsText: string, name: string, labels: Record<string, string> = {}): number {
  return pick(parseExposition(metricsText), name, labels) ?? NaN;
}

export async function metricsOf(server: Pick<RunningVariant, 'metricsPort'>): Promise<string> {
  return (await fetchText(`http://127.0.0.1:${server.metricsPort}/metrics`)).body;
}

/** What a poll saw: whether the state came before the deadline, the last value read, and every distinct value in order. */
export interface Polled<T> {
  met: boolean;
  value: T;
  seen: T[];
}

export interface PollOptions<T> {
  timeoutMs?: number;
  intervalMs?: number;
  /** The value a read that throws counts as (default: the read's error fails the poll). */
  onError?: (error: Error) => T;
}

/**
 * The tests' one polling loop: reads `read` until `accept` holds or the deadline passes, and
 * returns what it saw; never throws on a missed deadline, so a test can assert with what it
 * measured. waitForValue is the same, failing with the last value. The way a test waits: for a
 * state, never for a fixed time.
 */
export async function poll<T>(
  read: () => T | Promise<T>,
  accept: (value: T) => boolean,
  { timeoutMs = 10_000, intervalMs = 20, onError }: PollOptions<T> = {},
): Promise<Polled<T>> {
  const deadline = performance.now() + timeoutMs;
  const seen: T[] = [];
  for (;;) {
    let value: T;
    try {
      value = await read();
    } catch (error) {
      if (!onError) throw error;
      value = onError(error as Error);
    }
    if (seen.length === 0 || !Object.is(seen.at(-1), value)) seen.push(value);
    if (accept(value)) return { met: true, value, seen };
    if (performance.now() >= deadline) return { met: false, value, seen };
    await sleep(intervalMs);
  }
}

/** Polls until `accept` holds and returns the value; fails naming `what`, the deadline and the values read. */
export async function waitForValue<T>(
  what: string,
  read: () => T | Promise<T>,
  accept: (value: T) => boolean,
  options: PollOptions<T> = {},
): Promise<T> {
  const { met, value, seen } = await poll(read, accept, options);
  if (!met) {
    const show = (v: T) => (typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v)));
    assert.fail(
      `${what}: not reached within ${options.timeoutMs ?? 10_000} ms: last value ${show(value)}${seen.length > 1 ? ` (read ${seen.map(show).join(' -> ')})` : ''}`,
    );
  }
  return value;
}

/**
 * Polls `check` until it returns null (the state is reached) or the deadline passes; then fails
 * with its last complaint (a check that throws complains with its message).
 */
export async function waitUntil(
  what: string,
  check: () => Promise<string | null> | string | null,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<void> {
  const { met, value } = await poll(check, (complaint) => complaint === null, {
    timeoutMs,
    intervalMs,
    onError: (error) => error.message,
  });
  if (!met) assert.fail(`${what}: not reached within ${timeoutMs} ms: ${value ?? 'never checked'}`);
}

/** waitUntil for a yes-or-no `condition`; `describe` says what was last seen when it fails. */
export function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  describe: () => string | Promise<string> = () => '',
  timeoutMs = 30_000,
): Promise<void> {
  return waitUntil(what, async () => ((await condition()) ? null : `last seen: ${await describe()}`), timeoutMs, 20);
}

/** Waits until /healthz answers 503: the server has begun its drain (new lines get `unavailable`). */
export function waitUntilDraining(server: Pick<RunningVariant, 'metricsPort'>, timeoutMs = 10_000): Promise<void> {
  return waitUntil(
    '/healthz reports draining',
    async () => {
      const { status } = await fetchText(`http://127.0.0.1:${server.metricsPort}/healthz`);
      return status === 503 ? null : `status ${status}`;
    },
    timeoutMs,
    5,
  );
}

/** The control token the tests' load generators get (PUT and DELETE of the control API need it). */
export const TEST_CONTROL_TOKEN = 'test-control-token-0123456789';

/**
 * Starts a long-running `lab load ... --metrics-port 0` with `token` (null: none given, so it
 * makes one up); resolves with its HTTP port once it listens.
 */
export async function startLoadServer(
  args: string[],
  { token = TEST_CONTROL_TOKEN, env = {} }: { token?: string | null; env?: Record<string, string> } = {},
) {
  const lab = await spawnLab(['load', ...args, '--metrics-port', '0', ...(token === null ? [] : ['--control-token', token])], {
    ready: /metrics on http:\/\/[^:]+:(\d+)\/metrics/,
    stream: 'stderr',
    env,
  });
  return { ...lab, port: Number(lab.ready[1]) };
}

/** A request to a load generator's control API, with the tests' control token (or `token`). */
export function controlRequest(
  url: string,
  method: string,
  body?: unknown,
  {
    token = TEST_CONTROL_TOKEN,
    headers = {},
    signal,
  }: { token?: string | null; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(url, {
    method,
    signal,
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
}

/** Waits until a sample of a server's /metrics (a running variant, or a metrics port) satisfies `ok`; returns it, or fails with the last value. */
export async function waitForMetric(
  server: RunningVariant | number,
  name: string,
  ok: (value: number) => boolean,
  labels: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<number> {
  const port = typeof server === 'number' ? server : server.metricsPort;
  return waitForValue(
    `${name}${JSON.stringify(labels)}`,
    async () => sample((await fetchText(`http://127.0.0.1:${port}/metrics`)).body, name, labels),
    ok,
    { timeoutMs },
  );
}

/**
 * Sends `1` and `n` pipelined and waits for fib(1)'s reply: by then fib(n) has started (a server
 * writes the replies before a long fib starts; see WRITE_TOGETHER_MAX_N). Works where /metrics
 * cannot answer while fib runs on the event loop.
 */
export async function startLongRequest(client: TestClient, n: number): Promise<void> {
  await client.write(`1\n${n}\n`);
  assert.equal(await client.line(), 'fib: 1');
}

/** CPU time (user + system) of a process and all its live descendants, in seconds (Linux). */
export function treeCpuSeconds(root: number): number {
  let total = cpuSeconds(root);
  for (const child of childProcesses(root)) {
    try {
      total += treeCpuSeconds(child.pid);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** CPU time (user + system) a process has used so far, in seconds, from /proc (Linux). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat; after the comm they are at 11 and 12
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

/** Listens on a free port of 127.0.0.1; returns the port and a close that resolves once it is closed. */
export async function listenOnFreePort(server: Server): Promise<{ port: number; close: () => Promise<void> }> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A free TCP port on 127.0.0.1: nothing listens on it (it was just freed). */
export async function freePort(): Promise<number> {
  const { port, close } = await listenOnFreePort(createServer());
  await close();
  return port;
}

/**
 * A fib(1) server that answers every line at once, except that once per run, `stallAfterMs`
 * after its first request, it stops answering for `stallMs` (then answers what waited, in order).
 */
export async function startStallingServer({ stallAfterMs, stallMs }: { stallAfterMs: number; stallMs: number }) {
  let firstAt: number | null = null;
  let stallUntil: number | null = null;
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    let buffered = '';
    let queue = Promise.resolve();
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const _line of lines) {
        queue = queue.then(async () => {
          const now = performance.now();
          firstAt ??= now;
          if (stallUntil === null && now - firstAt >= stallAfterMs) stallUntil = now + stallMs;
          if (stallUntil !== null && now < stallUntil) await sleep(stallUntil - now);
          if (!socket.destroyed) socket.write('fib: 1\n');
        });
      }
    });
    socket.on('error', () => {});
  });
  return {
    ...(await listenOnFreePort(server)),
    stalled: () => stallUntil !== null,
  };
}

/** Behaves like the talk's own Python servers: each received chunk is a request, the reply a bare number. */
export async function startBareReplyServer() {
  const server = createServer((socket) => {
    socket.on('data', (chunk) => socket.write(`${referenceFib(Number(chunk.toString().trim()))}\n`));
    socket.on('error', () => {});
  });
  return listenOnFreePort(server);
}

/** A fib server that answers every line `error: unavailable`: nothing it is asked is ever answered. */
export async function startAlwaysUnavailableServer() {
  const server = createServer((socket) => {
    socket.on('data', (chunk) => {
      for (const _ of chunk.toString().matchAll(/\n/g)) socket.write('error: unavailable always\n');
    });
    socket.on('error', () => {});
  });
  return listenOnFreePort(server);
}

/** Writes a scenario file for `lab load --scenario` in a temporary folder; returns its path. */
export function writeScenario(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'scenario-'));
  const path = join(dir, 'scenario.yaml');
  writeFileSync(path, yaml);
  return path;
}

/**
 * Two clients loop fib(30) on their own connections for `ms`: how many replies each got and
 * how many cores the server's process used meanwhile (a lesson's "uses at most one core").
 */
export async function twoCpuBoundClients(server: RunningVariant, ms: number): Promise<{ counts: number[]; cores: number }> {
  await loopRequests(server.port, 25, 200); // warm up
  const pid = server.child.pid!;
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const counts = await Promise.all([loopRequests(server.port, 30, ms), loopRequests(server.port, 30, ms)]);
  return { counts, cores: (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000) };
}

/** Runs `fn`, which must throw a ConfigError; returns its message (the option it names). */
export function configErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  return assert.fail('expected a ConfigError');
}

/** perf2's fib(1) replies alone and beside the hogs, one round of the talk's experiment. */
export interface CollapseRound {
  alone: number;
  beside: number;
  /** The hogs' fib(longN) replies while perf2 ran beside them. */
  hogReplies: number;
}

/**
 * The spotlight's collapse, measured directly: perf2 (one connection looping fib(1)) for `ms`
 * alone, then for `ms` beside `hogs` perf1 connections each looping fib(longN) one at a time
 * (the talk's clients), in `rounds` alternating rounds so that a machine that drifts moves both
 * phases alike. The ratio is the median of the rounds' alone / beside (Infinity where nothing
 * was answered beside).
 */
export async function measureCollapse(
  server: RunningVariant,
  { ms = 500, rounds = 3, hogs = 1, longN = 30 }: { ms?: number; rounds?: number; hogs?: number; longN?: number } = {},
): Promise<{ ratio: number; rounds: CollapseRound[]; shown: string }> {
  // Warm up both paths for a whole phase: a first round measured cold reads a third of the
  // later rounds' alone rate (JIT, pool threads and processes not yet hot).
  await Promise.all([loopRequests(server.port, 1, ms), loopRequests(server.port, longN, ms)]);
  await loopRequests(server.port, 1, ms);
  const measured: CollapseRound[] = [];
  for (let round = 0; round < rounds; round++) {
    const alone = await loopRequests(server.port, 1, ms);
    const [beside, ...hogCounts] = await Promise.all([
      loopRequests(server.port, 1, ms),
      ...Array.from({ length: hogs }, () => loopRequests(server.port, longN, ms)),
    ]);
    measured.push({ alone, beside: beside, hogReplies: hogCounts.reduce((a, b) => a + b, 0) });
  }
  const ratios = measured.map((r) => (r.beside === 0 ? Infinity : r.alone / r.beside)).sort((a, b) => a - b);
  const ratio = ratios[Math.floor(ratios.length / 2)]!;
  const shown =
    `${server.variant}: collapse ${ratio.toFixed(1)}x beside ${hogs} fib(${longN}) hog(s) ` +
    `(rounds of ${ms} ms, fib(1) replies alone -> beside [hog replies]: ` +
    measured.map((r) => `${r.alone} -> ${r.beside} [${r.hogReplies}]`).join(', ') +
    ')';
  return { ratio, rounds: measured, shown };
}
