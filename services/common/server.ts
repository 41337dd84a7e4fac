// The shared server every variant runs on: the accept loop with the connection cap, the HTTP
// listener for /metrics and /healthz, and graceful shutdown with a drain timeout (LAB-SPEC
// section 2). A variant plugs in at one of three levels (section 3):
//   - an Executor decides only how a parsed request reaches a CPU (`eventloop`, `threadpool`,
//     `processpool`); the shared ExecutorOwner then serves every connection with LineConnection;
//   - a ConnectionOwner takes whole accepted sockets: it holds connections back (`sync`), gives
//     each its own thread or process (`threads`, `gil`, `processes`) or drives them from its own
//     scheduler (`generators`), reusing LineConnection or the protocol module where it serves;
//   - `start` replaces this function, for a variant that runs it in several processes (`cluster`).

import { once } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { CgroupReader, defaultParallelism } from './cgroup.js';
import { LineConnection, type RequestHandler } from './connection.js';
import { createMetricsServer } from './http.js';
import { computeFib } from './fib.js';
import { formatError } from './protocol.js';
import { createServerMetrics, type ServerMetrics } from './metrics.js';
import type { ServeOptions } from './options.js';

/** Level 1: how a parsed request reaches a CPU. */
export interface Executor {
  /** Threads or processes computing fib (reported as fib_workers). */
  readonly workers: number;
  run: RequestHandler;
  close(): Promise<void>;
}

/** Level 2: who owns an accepted connection. */
export interface ConnectionOwner {
  /** Serve this socket; call `release` once the connection is over (frees its place under the cap). */
  adopt(socket: Socket, release: () => void): void;
  /** Shutdown: answer what has started, then close every connection. */
  drain(): Promise<void>;
  /** The drain timeout passed: answer what is left `unavailable` and close. */
  abort(): void;
  /** Free the owner's threads or processes; called after every connection has closed. */
  close(): Promise<void>;
}

/** What a variant is given when the server starts it. */
export interface VariantContext {
  variant: string;
  options: ServeOptions;
  metrics: ServerMetrics;
  /** POOL_SIZE, else the CPU quota rounded up, else the CPU count. */
  poolSize: number;
}

export interface VariantDefinition {
  name: string;
  /** The concurrency model, in a phrase. */
  model: string;
  /** What it demonstrates, in a phrase. */
  shows: string;
  /** The connection cap when MAX_CONNECTIONS is not set: what the model can afford. */
  defaultMaxConnections: number;
  /** Level 1 plug-in; the shared ExecutorOwner serves the connections. */
  createExecutor?(ctx: VariantContext): Promise<Executor>;
  /** Level 2 plug-in, for variants that own whole connections. */
  createOwner?(ctx: VariantContext): Promise<ConnectionOwner>;
  /** Replaces startServer, for a variant that runs the shared server in several processes. */
  start?(options: ServeOptions): Promise<RunningServer>;
}

/** An owner that serves its connections in this process with LineConnection: drain and abort for all. */
export abstract class LineServingOwner implements ConnectionOwner {
  private readonly connections = new Set<LineConnection>();

  constructor(protected readonly ctx: VariantContext) {}

  abstract adopt(socket: Socket, release: () => void): void;
  abstract close(): Promise<void>;

  /** Serves `socket` with `handler`; once it has closed, `cleanUp` runs, then `release`. */
  protected serve(socket: Socket, handler: RequestHandler, release: () => void, cleanUp: () => unknown = () => {}): void {
    const connection = serveLines(socket, handler, this.ctx);
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
    ctx.metrics.workers.set(executor.workers);
  }

  adopt(socket: Socket, release: () => void): void {
    this.serve(socket, this.executor.run, release);
  }

  close(): Promise<void> {
    return this.executor.close();
  }
}

/** fib on the calling thread: the executor of `eventloop`, and what `sync` and `processes` run. */
export function inlineExecutor(): Executor {
  return { workers: 1, run: (n) => computeFib({ n }), close: async () => {} };
}

/** Serves one socket with the shared protocol machinery and the given handler. */
export function serveLines(socket: Socket, handler: RequestHandler, { options, metrics }: VariantContext): LineConnection {
  return new LineConnection(socket, {
    handler,
    fibMaxN: options.fibMaxN,
    maxPipeline: options.maxPipeline,
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
}

export interface StartOptions {
  /** The cgroup to report and size pools from; null reports none. */
  cgroup?: CgroupReader | null;
  /** Admission against the connection cap; default: counted in this process. */
  gate?: ConnectionGate;
  /** Serve /metrics and /healthz; false where a parent process serves them (cluster workers). */
  http?: boolean;
  /** This process's index in a fixed set of worker processes (cluster workers). */
  worker?: number;
  /** Metrics to record into, instead of a new registry. */
  metrics?: ServerMetrics;
}

export async function startServer(
  variant: VariantDefinition,
  options: ServeOptions,
  start: StartOptions = {},
): Promise<RunningServer> {
  const cgroup = start.cgroup === undefined ? new CgroupReader() : start.cgroup;
  const metrics = start.metrics ?? createServerMetrics(variant.name, { cgroup, worker: start.worker });
  const ctx: VariantContext = {
    variant: variant.name,
    options,
    metrics,
    poolSize: options.poolSize ?? defaultParallelism(cgroup ?? undefined),
  };
  const owner = await createOwner(variant, ctx);
  const maxConnections = options.maxConnections ?? variant.defaultMaxConnections;
  const gate = start.gate ?? localGate(maxConnections);

  let open = 0;
  let draining = false;
  const sockets = new Set<Socket>();
  // Paused until an owner reads: a variant may hand the socket to another process untouched.
  const fibServer: NetServer = createNetServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => {});
    void Promise.resolve(draining ? false : gate.acquire()).then((admitted) => {
      if (draining || socket.destroyed) {
        if (admitted) gate.release();
        return void socket.destroy();
      }
      if (!admitted) {
        metrics.requests.labels({ outcome: 'overloaded' }).inc();
        socket.end(formatError('overloaded', `connection cap of ${maxConnections} reached`));
        return;
      }
      open += 1;
      metrics.connections.set(open);
      sockets.add(socket);
      let released = false;
      owner.adopt(socket, () => {
        if (released) return;
        released = true;
        open -= 1;
        gate.release();
        sockets.delete(socket);
        metrics.connections.set(open);
      });
    });
  });

  const httpServer =
    start.http === false
      ? null
      : createMetricsServer(metrics.registry, () => ({
          ok: !draining,
          status: draining ? 'draining' : 'ok',
          variant: variant.name,
          connections: open,
        }));

  try {
    await listen(fibServer, options.port, options.host);
    if (httpServer) await listen(httpServer, options.metricsPort, options.host);
  } catch (error) {
    fibServer.close();
    httpServer?.close();
    await owner.close();
    throw error;
  }

  let shuttingDown: Promise<void> | undefined;
  const shutdown = () => {
    shuttingDown ??= (async () => {
      draining = true;
      fibServer.close();
      const drained = owner.drain();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), options.drainTimeoutMs);
      });
      if ((await Promise.race([drained, timedOut])) === 'timeout') {
        owner.abort();
        await Promise.race([drained, delay(2000)]);
        for (const socket of sockets) socket.destroy();
      }
      clearTimeout(timer);
      await owner.close();
      if (httpServer) {
        httpServer.closeAllConnections();
        await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      }
    })();
    return shuttingDown;
  };

  return {
    variant: variant.name,
    fib: fibServer.address() as AddressInfo,
    http: httpServer ? (httpServer.address() as AddressInfo) : null,
    maxConnections,
    shutdown,
  };
}

async function createOwner(variant: VariantDefinition, ctx: VariantContext): Promise<ConnectionOwner> {
  if (variant.createOwner) return variant.createOwner(ctx);
  if (variant.createExecutor) return new ExecutorOwner(await variant.createExecutor(ctx), ctx);
  throw new Error(`variant ${variant.name} defines neither createExecutor nor createOwner`);
}

export async function listen(server: NetServer | HttpServer, port: number, host: string): Promise<void> {
  server.listen(port, host);
  await once(server, 'listening'); // rejects with the listen error (EADDRINUSE, ...)
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
