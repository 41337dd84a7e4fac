// cluster: node:cluster, the shared server pre-forked into WORKERS processes (default: the CPU
// quota) that share one listening socket. The primary accepts and hands each new connection to
// the next worker in turn, so load is balanced per connection, not per request: a connection
// that sends only long requests pins one worker, and short requests on that connection wait
// behind them while another worker idles. A worker that dies is replaced; its connections close.
//
// The primary runs no fib: it forks and replaces workers, counts the connection cap across the
// cluster, serves /metrics (its own cgroup figures plus every worker's series, summed with
// prom-client's AggregatorRegistry; per-worker series keep their `worker` label) and /healthz,
// and drains the workers on SIGTERM.

import nodeCluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import { CgroupReader, defaultParallelism } from '../common/cgroup.js';
import { createMetricsServer } from '../common/http.js';
import { createServerMetrics } from '../common/metrics.js';
import type { ClusterPrimaryMessage, ClusterWorkerMessage } from '../common/messages.js';
import type { ServeOptions } from '../common/options.js';
import { inlineExecutor, listen, type RunningServer, type VariantDefinition } from '../common/server.js';

/** How a worker learns its options and index. */
export const WORKER_ENV = 'LAB_CLUSTER_WORKER';
/** How long the primary waits for a worker's metrics. */
const COLLECT_TIMEOUT_MS = 2000;
/** A worker that dies this soon after starting is replaced only after a pause (no crash loop). */
const QUICK_DEATH_MS = 1000;

const model = {
  name: 'cluster',
  model: 'node:cluster, pre-forked workers sharing the listening socket',
  shows: 'connection-level balancing: one hog connection pins one worker',
  // Counted across the cluster; each connection costs its worker a few kilobytes.
  defaultMaxConnections: 10_000,
};

/** What each worker runs: the shared server with fib inline, as `eventloop`. */
export const clusterWorkerVariant: VariantDefinition = { ...model, createExecutor: async () => inlineExecutor() };

export const cluster: VariantDefinition = { ...model, start: startPrimary };

async function startPrimary(options: ServeOptions): Promise<RunningServer> {
  const cgroup = new CgroupReader();
  const size = options.workers ?? defaultParallelism(cgroup);
  const maxConnections = options.maxConnections ?? model.defaultMaxConnections;
  const metrics = createServerMetrics(model.name, { cgroup });
  nodeCluster.setupPrimary({ exec: fileURLToPath(new URL('./worker.js', import.meta.url)), args: [] });

  const workers = new Map<number, Worker>(); // by index
  const held = new Map<Worker, number>(); // connections each worker holds against the cap
  let open = 0;
  let shuttingDown = false;

  const fork = (index: number): Promise<number> => {
    // Every worker listens on options.port, even 0: the primary then binds one port and shares it.
    const worker = nodeCluster.fork({ [WORKER_ENV]: JSON.stringify({ options, index }) });
    const startedAt = Date.now();
    workers.set(index, worker);
    held.set(worker, 0);
    const send = (message: ClusterPrimaryMessage) => worker.isConnected() && worker.send(message);
    worker.on('message', (message: ClusterWorkerMessage) => {
      if (message.type === 'acquire') {
        const ok = !shuttingDown && open < maxConnections;
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
      if (shuttingDown) return;
      const again = () => !shuttingDown && void fork(index);
      if (Date.now() - startedAt < QUICK_DEATH_MS) setTimeout(again, QUICK_DEATH_MS).unref();
      else again();
    });
    return new Promise((resolve, reject) => {
      worker.on('message', (message: ClusterWorkerMessage) => message.type === 'listening' && resolve(message.port));
      worker.once('exit', (code) => reject(new Error(`cluster worker ${index} exited with ${code} before listening`)));
    });
  };

  const [port] = await Promise.all(Array.from({ length: size }, (_, index) => fork(index)));

  let collectId = 0;
  const collect = async (): Promise<string> => {
    const id = ++collectId;
    const replies = [...workers.values()].map(
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
          if (worker.isConnected()) worker.send({ type: 'collect', id } satisfies ClusterPrimaryMessage);
          else finish(null);
        }),
    );
    metrics.connections.set(open);
    const own = await metrics.registry.getMetricsAsJSON();
    const theirs = (await Promise.all(replies)).filter((reply): reply is unknown[] => reply !== null);
    // Summed by name and labels: request series add up, per-worker series stay apart.
    return AggregatorRegistry.aggregate([own, ...theirs] as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
  };

  const http = createMetricsServer({ metrics: collect, contentType: metrics.registry.contentType }, () => ({
    ok: !shuttingDown,
    status: shuttingDown ? 'draining' : 'ok',
    variant: model.name,
    workers: workers.size,
    connections: open,
  }));
  await listen(http, options.metricsPort, options.host);

  let stopped: Promise<void> | undefined;
  return {
    variant: model.name,
    fib: { address: options.host, family: options.host.includes(':') ? 'IPv6' : 'IPv4', port: port! },
    http: http.address() as AddressInfo,
    maxConnections,
    shutdown() {
      stopped ??= (async () => {
        shuttingDown = true;
        const exits = [...workers.values()].map(
          (worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))),
        );
        for (const worker of workers.values())
          if (worker.isConnected()) worker.send({ type: 'drain' } satisfies ClusterPrimaryMessage);
        // Each worker drains for up to drainTimeoutMs, then answers the rest `unavailable` and exits.
        const grace = setTimeout(() => {
          for (const worker of workers.values()) worker.process.kill('SIGKILL');
        }, options.drainTimeoutMs + 5000);
        await Promise.all(exits);
        clearTimeout(grace);
        http.closeAllConnections();
        await new Promise<void>((resolve) => http.close(() => resolve()));
      })();
      return stopped;
    },
  };
}
