// The contract between the shared server and a variant: what a variant's row in the table
// (services/variants/index.ts) says about it, and the one level at which it plugs in, as a tagged
// union so the type system says "exactly one":
//   - `executor`: decides only how a parsed request reaches a CPU (inline, a pool of threads or
//     of processes); the shared server serves every connection with LineConnection;
//   - `owner`: takes whole accepted sockets: holds connections back (one at a time), gives each
//     its own thread or process, or drives them from its own scheduler, reusing LineConnection
//     or the protocol module where it serves;
//   - `process-group`: runs the shared server in several processes, which the variant starts;
//     the shared server keeps /metrics, /healthz and the drain over them.
// A row whose `runtime` is `python` has no plug-in: it is a CPython server of its own (a script in
// its folder, on services/server/python/labfib), which `lab serve` starts as a child. A row also
// carries what only its variant has: companions in compose, dashboard panels, commands.

import type { Socket } from 'node:net';
import type { Command } from 'commander';
import type { VariantDashboards } from '../lab/dashboards.js';
import type { CgroupReader } from '../lab/cgroup.js';
import type { RequestHandler } from './connection.js';
import type { MetricsSource } from '../lab/http.js';
import type { ServerMetrics } from './metrics.js';
import type { EnvOptionSpec, EnvOptionSpecs } from '../lab/options.js';
import type { ServeOptions } from './options.js';

/** Level `executor`: how a parsed request reaches a CPU. */
export interface Executor {
  /**
   * Whether `run` honours its AbortSignal (fib runs on another thread or process and can be
   * stopped when the client leaves). A signal is made per request only for those that do.
   */
  readonly abortable: boolean;
  run: RequestHandler;
  /** Threads or processes computing fib, alive now (fib_workers). */
  liveWorkers(): number;
  close(): Promise<void>;
}

/** Level `owner`: who holds an accepted connection. */
export interface ConnectionOwner {
  /** Serve this socket; call `release` once the connection is over (frees its place under the cap). */
  adopt(socket: Socket, release: () => void): void;
  /** Shutdown: answer what has started, then close every connection. */
  drain(): Promise<void>;
  /** The drain timeout passed: answer what is left `unavailable` and close. */
  abort(): void;
  /** Free the owner's threads or processes; called after every connection has closed. */
  close(): Promise<void>;
  /** Threads or processes computing fib, alive now (fib_workers). */
  liveWorkers(): number;
}

/** Level `process-group`: the shared server run in several processes, which the variant starts. */
export interface ProcessGroup {
  /** The fib port the processes share. */
  readonly port: number;
  /** /metrics of the whole group (this process's series with every process's, aggregated). */
  readonly metrics: MetricsSource;
  /** Extra fields of /healthz. */
  health(): Record<string, unknown>;
  drain(): Promise<void>;
  abort(): void;
  close(): Promise<void>;
}

/** The shared options as a variant runs with them: the cap and the idle timeout settled (its own defaults where unset). */
export type ServingOptions = Omit<ServeOptions, 'maxConnections' | 'idleTimeoutMs'> & {
  maxConnections: number;
  idleTimeoutMs: number;
};

/** What a variant is given when the server starts it. */
export interface VariantContext<O = object> {
  /** The options every variant shares. */
  options: ServingOptions;
  /** The variant's own options (its slice of the table). */
  own: O;
  metrics: ServerMetrics;
  /** The container's cgroup (null where none is read: a cluster worker leaves it to the primary). */
  cgroup: CgroupReader | null;
  /** The CPU quota rounded up (at least 1), else the CPU count: the default size of a pool. */
  cpus: number;
}

export type Plugin<O> =
  | { level: 'executor'; createExecutor(ctx: VariantContext<O>): Promise<Executor> }
  | { level: 'owner'; createOwner(ctx: VariantContext<O>): Promise<ConnectionOwner> }
  | { level: 'process-group'; startProcesses(ctx: VariantContext<O>): Promise<ProcessGroup> };

/**
 * How a variant uses the CPU: `single` (one thread computes everything), `per-connection` (a
 * thread or process per connection), `fixed-workers` (a pool or a pre-forked set, with
 * per-worker series). The spotlight's third phase and the dashboards' per-worker panels follow it.
 */
export type Parallelism = 'single' | 'per-connection' | 'fixed-workers';

/** Where a variant's server runs: `node` (this process, through its plug-in) or `python` (a CPython child). */
export type Runtime = 'node' | 'python';

/** How a row is served: a plug-in of the shared Node server, or a CPython script of its own. */
export type Implementation<O = object> =
  | { runtime: 'node'; plugin: Plugin<O> }
  | {
      runtime: 'python';
      /** The server, from the repository's root (`services/variants/py-threads/server.py`): `lab serve` runs `python3 <script>`. */
      script: string;
    };

/** One row of the variant table: everything the lab needs to know about a variant. */
export type VariantDefinition<O = object> = VariantFields<O> &
  ({ runtime?: 'node'; plugin: Plugin<O> } | Extract<Implementation<O>, { runtime: 'python' }>);

/** What every row says, whatever runs it. */
export interface VariantFields<O = object> {
  name: string;
  /**
   * The fib port compose publishes on 127.0.0.1 with VARIANT_BASE_PORT at its default, 25001
   * (docs/protocol.md, Ports); its offset from 25001 is the variant's for any base (.env's
   * VARIANT_BASE_PORT moves them all: services/lab/ports.ts).
   */
  hostPort: number;
  /**
   * The variants it is compared with side by side, named after the group's first row: the real
   * CPython beside its emulation (`threads` for threads, gil, py-threads), a pool beside its GIL
   * or Python twin. The dashboards' side-by-side panels list variants group by group (each group
   * where its first row is in the table), in table order within a group.
   */
  group: string;
  /** The concurrency model, in a phrase. */
  model: string;
  /** What it demonstrates, in a phrase. */
  shows: string;
  /** The variant's own options: flags, variables, defaults and guards (e.g. the pool size). */
  options: EnvOptionSpecs<O>;
  /** The connection cap when MAX_CONNECTIONS is not set: what the model can afford. */
  connectionCap: number;
  /** IDLE_TIMEOUT_MS when not set. */
  idleTimeoutMs: number;
  /** Serves one client at a time: clients take turns (a load generator connects per request). */
  takesTurns: boolean;
  parallelism: Parallelism;
  /** A running fib can be stopped (its client left, or the drain timed out): fib runs off the serving thread. */
  interruptible: boolean;
  /** The option that sizes its fixed set of workers (tests set it to 2). */
  workersOption?: keyof O & string;
  /** The option that bounds its queue of requests waiting for a worker (`overloaded` past it). */
  queueOption?: keyof O & string;
  /** What its container may use (compose): memory, and processes + threads. */
  limits: { memory: string; pids: number };
  /** A server it needs beside it, which the tests start for it (`queue`: Redis and its workers). */
  backend?: 'redis';
  /** What it brings into the compose stack beside its own container (`queue`: Redis and its workers). */
  companions?: Companions;
  /** Dashboard rows and panels for the series only it exports (limited to it unless a panel says otherwise). */
  dashboards?: VariantDashboards;
  /** Commands of its own for `lab` (registered by the CLI, e.g. a command that runs its workers). */
  commands?: (program: Command) => void;
}

/** Compose services, scrape jobs and .env settings a variant adds; written into the generated files as they are. */
export interface Companions {
  /** Compose services (YAML under `services:`; the `*variant` and `*lab-service` anchors are there to merge). */
  services: string;
  /** Services compose starts before the variant's own container (started, not healthy: the variant retries them itself). */
  dependsOn: string[];
  /** Prometheus scrape jobs (YAML under `scrape_configs:`). */
  scrape?: string;
  /** .env settings the services read: name, default, comment. */
  env?: Array<[string, string, string]>;
  /** Its compose services whose containers hold the variant's CPU quota (`lab cpus`), instead of its own container (its workers). */
  quotaServices?: string[];
  /** The variant's own options as compose sets them, where they differ from their defaults (REDIS_URL: the companion's address). */
  optionDefaults?: Record<string, string>;
}

/** A row of the table, its own options' type erased, its runtime said (`node` where the definition left it out). */
export type Variant = Omit<VariantFields<object>, 'options' | 'workersOption' | 'queueOption'> & {
  options: Readonly<Record<string, EnvOptionSpec<unknown>>>;
  workersOption?: string;
  queueOption?: string;
} & Implementation<object>;

/** Checks a row against its own options' type, then erases it for the table. */
export function defineVariant<O extends object>(definition: VariantDefinition<O>): Variant {
  return definition.runtime === 'python' ? definition : { ...definition, runtime: 'node' };
}
