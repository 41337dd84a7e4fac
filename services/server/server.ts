// The shared server every variant runs on: the accept loop with the
// connection cap, the HTTP listener for /metrics and /healthz, and graceful shutdown with a drain
// timeout. A variant plugs in at one level (services/server/plugin.ts): an executor or a
// connection owner is served by the accept loop here; a process group (cluster) brings its own
// processes, and still gets this HTTP listener and this drain.

import { once } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { CgroupReader, defaultParallelism } from '../lab/cgroup.js';
import { LineConnection, afterNextPoll, endAndDiscard, type RequestHandler } from './connection.js';
import { computeFib } from './fib.js';
import { createMetricsServer, type MetricsSource } from '../lab/http.js';
import { eventLoopSampler } from '../lab/metrics.js';
import { createServerMetrics } from './metrics.js';
import { hostError } from '../lab/options.js';
import { serveOptions, type ServeOptions } from './options.js';
import type { ConnectionOwner, Executor, Variant, VariantContext } from './plugin.js';
import { formatError } from './protocol.js';

/** After the drain timeout, how long aborted connections get to write their last lines. */
const ABORT_GRACE_MS = 2000;
/** At most this many polls take connections from the accept queue after the drain began. */
const MAX_DRAIN_ACCEPT_POLLS = 100;

/** An owner that serves its connections in this process with LineConnection: drain and abort for all. */
export abstract class LineServingOwner implements ConnectionOwner {
  private readonly connections = new Set<LineConnection>();

  constructor(protected readonly ctx: VariantContext) {}

  abstract adopt(socket: Socket, release: () => void): void;
  abstract close(): Promise<void>;
  abstract liveWorkers(): number;

  /** Serves `socket` with `handler`; once it has closed, `cleanUp` runs, then `release`. */
  protected serve(
    socket: Socket,
    handler: RequestHandler,
    release: () => void,
    cleanUp: () => unknown = () => {},
    abortable = false,
  ): void {
    const connection = serveLines(socket, handler, this.ctx, abortable);
    this.connections.add(connection);
    void connection.done.then(async () => {
      this.connections.delete(connection);
      await cleanUp();
      release();
    });
  }

  async drain(): Promise<void> {
    await Promise.all([...this.connections].map((connection) => connection.drain()));
  }

  abort(): void {
    for (const connection of this.connections) connection.abort();
  }
}

/** Serves every connection in this process with the shared LineConnection and one executor. */
export class ExecutorOwner extends LineServingOwner {
  constructor(
    private readonly executor: Executor,
    ctx: VariantContext,
  ) {
    super(ctx);
  }

  adopt(socket: Socket, release: () => void): void {
    this.serve(socket, this.executor.run, release, undefined, this.executor.abortable);
  }

  liveWorkers(): number {
    return this.executor.liveWorkers();
  }

  close(): Promise<void> {
    return this.executor.close();
  }
}

/** fib on the calling thread: the executor of `eventloop` and `cluster`'s workers. */
export function inlineExecutor(): Executor {
  return { abortable: false, run: (n) => computeFib({ n }), liveWorkers: () => 1, close: async () => {} };
}

/** Serves one socket with the shared protocol machinery and the given handler. */
export function serveLines(
  socket: Socket,
  handler: RequestHandler,
  { options, metrics }: VariantContext,
  abortable = false,
): LineConnection {
  return new LineConnection(socket, {
    handler,
    abortable,
    fibMaxN: options.fibMaxN,
    maxPipeline: options.maxPipeline,
    idleTimeoutMs: options.idleTimeoutMs,
    lineTimeoutMs: options.lineTimeoutMs,
    recorder: metrics.recorder,
  });
}

/** Decides whether one more connection may open (the connection cap). */
export interface ConnectionGate {
  acquire(): boolean | Promise<boolean>;
  release(): void;
}

/** The cap counted in this process. */
export function localGate(max: number): ConnectionGate {
  let open = 0;
  return {
    acquire() {
      if (open >= max) return false;
      open += 1;
      return true;
    },
    release() {
      open -= 1;
    },
  };
}

export interface RunningServer {
  readonly variant: string;
  readonly fib: AddressInfo;
  /** The /metrics and /healthz listener; null where another process serves them. */
  readonly http: AddressInfo | null;
  readonly maxConnections: number;
  /** Stop accepting, drain, close; resolves when everything is closed. Idempotent. */
  shutdown(): Promise<void>;
  /** During shutdown: answer what is left `unavailable` now (a parent's drain timeout passed). */
  abort(): void;
  /** This process's series, as prom-client JSON (a parent aggregates them). */
  metrics(): Promise<unknown[]>;
}

export interface StartOptions {
  /** The cgroup to report and size pools from; null reports none. */
  cgroup?: CgroupReader | null;
  /** Admission against the connection cap; default: counted in this process. */
  gate?: ConnectionGate;
  /** Serve /metrics and /healthz; false where a parent process serves them (cluster workers). */
  http?: boolean;
  /** This process's index in a fixed set of worker processes (cluster workers). */
  workerIndex?: number;
}

/** What the shutdown drains: the accept loop, or a variant's process group. */
interface Drainable {
  drain(): Promise<void>;
  abort(): void;
  close(): Promise<void>;
}

/**
 * Starts a variant: `options` are the shared options, `own` the variant's own (both already
 * validated; see services/cli/serve.ts).
 */
export async function startServer(
  variant: Variant,
  options: ServeOptions,
  own: object,
  start: StartOptions = {},
): Promise<RunningServer> {
  if (variant.runtime !== 'node') throw new Error(`${variant.name} runs on ${variant.runtime}, not in this process`);
  const cgroup = start.cgroup === undefined ? new CgroupReader() : start.cgroup;
  const metrics = createServerMetrics(variant.name, { cgroup, workerIndex: start.workerIndex });
  const maxConnections = options.maxConnections ?? variant.connectionCap;
  const ctx: VariantContext = {
    options: { ...options, maxConnections, idleTimeoutMs: options.idleTimeoutMs ?? variant.idleTimeoutMs },
    own,
    metrics,
    cgroup,
    cpus: defaultParallelism(cgroup ?? undefined),
  };

  let serving: Drainable;
  let fibAddress: AddressInfo;
  let metricsSource: MetricsSource = metrics.registry;
  let health = (): Record<string, unknown> => ({});
  const { plugin } = variant;
  if (plugin.level === 'process-group') {
    const group = await plugin.startProcesses(ctx);
    serving = group;
    metricsSource = group.metrics;
    health = () => group.health();
    fibAddress = { address: options.host, family: options.host.includes(':') ? 'IPv6' : 'IPv4', port: group.port };
  } else {
    const owner =
      plugin.level === 'owner' ? await plugin.createOwner(ctx) : new ExecutorOwner(await plugin.createExecutor(ctx), ctx);
    const acceptor = new Acceptor(owner, ctx, start.gate ?? localGate(maxConnections));
    try {
      fibAddress = await acceptor.listen();
    } catch (error) {
      await owner.close();
      throw error;
    }
    serving = acceptor;
    health = () => ({ connections: acceptor.open });
  }

  let draining = false;
  const httpServer =
    start.http === false
      ? null
      : createMetricsServer(metricsSource, () => ({
          ok: !draining,
          status: draining ? 'draining' : 'ok',
          variant: variant.name,
          ...health(),
        }));
  if (httpServer) {
    try {
      await listen(httpServer, options.metricsPort, options.host);
    } catch (error) {
      await serving.drain();
      await serving.close();
      throw error;
    }
  }

  let shuttingDown: Promise<void> | undefined;
  return {
    variant: variant.name,
    fib: fibAddress,
    http: httpServer ? (httpServer.address() as AddressInfo) : null,
    maxConnections,
    abort: () => serving.abort(),
    metrics: () => metrics.registry.getMetricsAsJSON(),
    shutdown() {
      shuttingDown ??= (async () => {
        const drained = drainWithin(serving, options.drainTimeoutMs);
        // /healthz says `draining` from the drain's cut-off on (see LineConnection.drain): a line
        // sent after a client saw it is answered `unavailable`.
        afterNextPoll(() => (draining = true));
        await drained;
        if (httpServer) {
          httpServer.closeAllConnections();
          await new Promise<void>((resolve) => httpServer.close(() => resolve()));
        }
      })();
      return shuttingDown;
    },
  };
}

/** Drains; when the timeout passes first, aborts what is left and gives it a moment to write. Then closes. */
async function drainWithin(serving: Drainable, timeoutMs: number): Promise<void> {
  const drained = serving.drain();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  if ((await Promise.race([drained, timedOut])) === 'timeout') {
    serving.abort();
    await Promise.race([drained, delay(ABORT_GRACE_MS)]);
  }
  clearTimeout(timer);
  await serving.close();
}

/** The fib listener: admits connections under the cap and hands them to the owner. */
class Acceptor implements Drainable {
  open = 0;
  private draining = false;
  private listening = true;
  /** Connections taken from the accept queue, ever: the drain closes the listener once a poll takes none. */
  private accepted = 0;
  private whenEmpty: (() => void) | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly server: NetServer;

  constructor(
    private readonly owner: ConnectionOwner,
    private readonly ctx: VariantContext,
    gate: ConnectionGate,
  ) {
    const { metrics, options } = ctx;
    metrics.countConnections(() => this.open);
    metrics.countWorkers(() => owner.liveWorkers());
    // Paused until an owner reads: a variant may hand the socket to another process untouched.
    this.server = createNetServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
      this.accepted += 1;
      socket.on('error', () => {});
      void Promise.resolve(gate.acquire()).then((admitted) => {
        if (socket.destroyed) {
          if (admitted) gate.release();
          return;
        }
        if (!admitted) {
          metrics.countRequest('overloaded');
          endAndDiscard(socket, formatError('overloaded', `connection cap of ${options.maxConnections} reached`));
          return;
        }
        this.open += 1;
        this.sockets.add(socket);
        // The event-loop delay is sampled while a client is connected (EventLoopSampler).
        const unhold = eventLoopSampler.hold();
        let released = false;
        owner.adopt(socket, () => {
          if (released) return;
          released = true;
          unhold();
          this.open -= 1;
          gate.release();
          this.sockets.delete(socket);
          this.checkEmpty();
        });
        // Taken from the accept queue during the drain: drained at once, like the others.
        if (this.draining) void owner.drain();
      });
    });
  }

  async listen(): Promise<AddressInfo> {
    await listen(this.server, this.ctx.options.port, this.ctx.options.host);
    return this.server.address() as AddressInfo;
  }

  /**
   * Stops accepting once a poll of the event loop finds no connection waiting: connections the
   * kernel completed before the drain wait in its accept queue (taken one per poll), and closing
   * the listener would reset them with their requests. Resolves once every connection, those
   * included, has been released.
   */
  drain(): Promise<void> {
    this.draining = true;
    const closeWhenQuiet = (polls: number) => {
      const before = this.accepted;
      afterNextPoll(() => {
        if (this.accepted !== before && polls < MAX_DRAIN_ACCEPT_POLLS) return closeWhenQuiet(polls + 1);
        this.server.close();
        this.listening = false;
        this.checkEmpty();
      });
    };
    closeWhenQuiet(1);
    const empty = new Promise<void>((resolve) => (this.whenEmpty = resolve));
    return Promise.all([this.owner.drain(), empty]).then(() => {});
  }

  private checkEmpty(): void {
    if (this.draining && !this.listening && this.open === 0) this.whenEmpty?.();
  }

  abort(): void {
    this.owner.abort();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await this.owner.close();
  }
}

export async function listen(server: NetServer | HttpServer, port: number, host: string): Promise<void> {
  server.listen(port, host);
  // Rejects with the listen error (EADDRINUSE, ...); a HOST that is no address here is bad configuration.
  try {
    await once(server, 'listening');
  } catch (error) {
    throw hostError(error, serveOptions.host, host);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
