// cluster: node:cluster, the shared server pre-forked into WORKERS processes (default: the CPU
// quota) that share one listening socket. The primary accepts and hands each new connection to
// the next worker in turn, so load is balanced per connection, not per request: a connection
// that sends only long requests pins one worker, and short requests on that connection wait
// behind them while another worker idles. A worker that dies is replaced; its connections close.
// With POOL_FOLLOWS_QUOTA=1 workers are forked or drained away when the CPU quota changes.
//
// It plugs in as a process group: the primary runs no fib; it forks and replaces workers, counts
// the connection cap across the cluster, and gives the shared server (which keeps /metrics,
// /healthz and the drain) a metrics source that adds its own series (the container's cgroup
// figures) to every worker's, summed with prom-client's AggregatorRegistry: request series and
// each worker's own counts (connections open, fib_workers = 1) add up; `worker`-labelled series
// stay per worker.

import nodeCluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import type { ClusterPrimaryMessage, ClusterWorkerMessage } from './messages.js';
import { optionalIntOption, type EnvOptionSpecs } from '../../lab/options.js';
import { type ServeOptions } from '../../server/options.js';
import { followQuota, poolFollowsQuotaOption, startSize } from '../../server/pools.js';
import { defineVariant, type ProcessGroup, type VariantContext } from '../../server/plugin.js';
import { inlineExecutor } from '../../server/server.js';

export interface ClusterOptions {
  /** Worker processes; null sizes the cluster from the CPU quota. */
  workers: number | null;
  poolFollowsQuota: boolean;
}

const clusterOptions: EnvOptionSpecs<ClusterOptions> = {
  workers: optionalIntOption({
    flag: '--workers',
    env: 'WORKERS',
    description: 'cluster worker processes',
    defaultText: 'the CPU quota, rounded up',
    min: 1,
    max: 256,
  }),
  poolFollowsQuota: poolFollowsQuotaOption,
};

/** How a worker learns its options and index. */
export const WORKER_ENV = 'LAB_CLUSTER_WORKER';
export interface WorkerSettings {
  options: ServeOptions;
  index: number;
}
/** How long the primary waits for a worker's metrics. */
const COLLECT_TIMEOUT_MS = 2000;
/** A worker that dies this soon after starting is replaced only after a pause (no crash loop). */
const QUICK_DEATH_MS = 1000;
/** After the drain timeout, how long workers get to exit before they are killed. */
const KILL_GRACE_MS = 5000;

const row = {
  hostPort: 25008,
  group: 'cluster',
  model: 'node:cluster, pre-forked workers sharing the listening socket',
  shows: 'connection-level balancing: one hog connection pins one worker',
  // Counted across the cluster; each connection costs its worker a few kilobytes.
  connectionCap: 10_000,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  interruptible: false,
  limits: { memory: '768m', pids: 256 },
};

export const cluster = defineVariant<ClusterOptions>({
  name: 'cluster',
  ...row,
  options: clusterOptions,
  parallelism: 'fixed-workers',
  workersOption: 'workers',
  plugin: { level: 'process-group', startProcesses: startWorkers },
});

/** What each worker runs: the shared server with fib inline, as `eventloop`. */
export const clusterWorker = defineVariant({
  name: 'cluster',
  ...row,
  options: {},
  parallelism: 'single',
  plugin: { level: 'executor', createExecutor: async () => inlineExecutor() },
});

async function startWorkers(ctx: VariantContext<ClusterOptions>): Promise<ProcessGroup> {
  const { options, own } = ctx;
  let size = startSize(ctx, own.workers, clusterOptions.workers, own.poolFollowsQuota);
  nodeCluster.setupPrimary({ exec: fileURLToPath(new URL('./worker.js', import.meta.url)), args: [] });
  const workers = new Map<number, Worker>(); // by index
  const held = new Map<Worker, number>(); // connections each worker holds against the cap
  let open = 0;
  let draining = false;
  /** Workers drained away when the cluster shrank: not replaced when they exit. */
  const retired = new WeakSet<Worker>();
  /**
   * Workers that said they listen. Only they are sent a message: a worker still loading its modules
   * has no listener yet, and a message it is sent then is lost. A drain lost that way (a SIGTERM
   * just after a crashed worker was replaced) held the shutdown for the drain timeout and the kill
   * grace, 17 s; a collect, /metrics for its timeout.
   */
  const ready = new WeakSet<Worker>();
  const listening = () => [...workers.values()].filter((worker) => ready.has(worker));

  const fork = (index: number): Promise<number> => {
    // Every worker listens on options.port, even 0: the primary then binds one port and shares it.
    const settings: WorkerSettings = { options: { ...options }, index };
    const worker = nodeCluster.fork({ [WORKER_ENV]: JSON.stringify(settings) });
    const startedAt = Date.now();
    workers.set(index, worker);
    held.set(worker, 0);
    const send = (message: ClusterPrimaryMessage) => tell(worker, message);
    // A worker that dies while a message is on its way (EPIPE): its 'exit' handles it.
    worker.on('error', () => {});
    worker.on('message', (message: ClusterWorkerMessage) => {
      if (message.type === 'acquire') {
        const ok = open < options.maxConnections;
        if (ok) {
          open += 1;
          held.set(worker, held.get(worker)! + 1);
        }
        send({ type: 'acquired', id: message.id, ok });
      } else if (message.type === 'release') {
        open -= 1;
        held.set(worker, held.get(worker)! - 1);
      }
    });
    worker.once('exit', () => {
      open -= held.get(worker) ?? 0; // its connections died with it
      held.delete(worker);
      if (workers.get(index) === worker) workers.delete(index);
      if (draining || retired.has(worker)) return;
      const again = () => {
        if (draining) return;
        // A replacement that dies before it listens is replaced in turn (its own 'exit'); not a crash of the primary.
        fork(index).catch((error: Error) => console.error(`cluster: ${error.message}`));
      };
      if (Date.now() - startedAt < QUICK_DEATH_MS) setTimeout(again, QUICK_DEATH_MS).unref();
      else again();
    });
    return new Promise((resolve, reject) => {
      worker.on('message', (message: ClusterWorkerMessage) => {
        if (message.type !== 'listening') return;
        ready.add(worker);
        // Told to go while it was starting: now it can hear it.
        if (draining || retired.has(worker)) tell(worker, { type: 'drain' });
        resolve(message.port);
      });
      worker.once('exit', (code) => reject(new Error(`cluster worker ${index} exited with ${code} before listening`)));
    });
  };

  const [port] = await Promise.all(Array.from({ length: size }, (_, index) => fork(index)));

  const resize = async (next: number) => {
    const before = size;
    size = next;
    for (const [index, worker] of workers) {
      // Past the new size: stop taking connections, finish the ones it has, exit.
      if (index >= next && !retired.has(worker)) {
        retired.add(worker);
        if (ready.has(worker)) tell(worker, { type: 'drain' });
      }
    }
    await Promise.all(Array.from({ length: Math.max(0, next - before) }, (_, i) => fork(before + i)));
  };
  const stopFollowing = own.poolFollowsQuota ? followQuota(ctx, size, resize) : () => {};

  let collectId = 0;
  const collect = async (): Promise<string> => {
    const id = ++collectId;
    const replies = listening().map(
      (worker) =>
        new Promise<unknown[] | null>((resolve) => {
          const timer = setTimeout(() => finish(null), COLLECT_TIMEOUT_MS);
          const onMessage = (message: ClusterWorkerMessage) =>
            message.type === 'metrics' && message.id === id && finish(message.metrics);
          const finish = (value: unknown[] | null) => {
            clearTimeout(timer);
            worker.off('message', onMessage);
            worker.off('exit', onExit);
            resolve(value);
          };
          const onExit = () => finish(null);
          worker.on('message', onMessage);
          worker.once('exit', onExit);
          if (!tell(worker, { type: 'collect', id })) finish(null);
        }),
    );
    const own = await ctx.metrics.registry.getMetricsAsJSON();
    const theirs = (await Promise.all(replies)).filter((reply): reply is unknown[] => reply !== null);
    // Summed by name and labels: request series and each worker's counts add up, per-worker series stay apart.
    return AggregatorRegistry.aggregate([own, ...theirs] as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
  };

  const exits = () =>
    [...workers.values()].map(
      (worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))),
    );
  /** Tells every worker that listens (one still starting is told to drain once it listens). */
  const tellAll = (message: ClusterPrimaryMessage) => {
    for (const worker of listening()) tell(worker, message);
  };

  return {
    port: port!,
    metrics: { metrics: collect, contentType: ctx.metrics.registry.contentType },
    health: () => ({ workers: workers.size, connections: open }),
    async drain() {
      draining = true;
      stopFollowing();
      const exited = exits();
      tellAll({ type: 'drain' });
      await Promise.all(exited);
    },
    abort() {
      tellAll({ type: 'abort' });
    },
    async close() {
      const exited = exits();
      const kill = setTimeout(() => {
        for (const worker of workers.values()) worker.process.kill('SIGKILL');
      }, KILL_GRACE_MS);
      await Promise.all(exited);
      clearTimeout(kill);
    },
  };
}

/** Sends a message to a worker if it is still connected; false when it is not (or the send failed). */
function tell(worker: Worker, message: ClusterPrimaryMessage): boolean {
  if (!worker.isConnected()) return false;
  try {
    return worker.send(message, undefined, () => {}); // the callback takes a late EPIPE instead of an 'error' event
  } catch {
    return false;
  }
}
