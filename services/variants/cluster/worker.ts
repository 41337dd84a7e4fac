// A `cluster` worker process: runs the shared server (fib inline, as `eventloop`) on the port
// every worker shares through the primary. The primary serves /metrics for all of them (it asks
// each worker for its registry), counts the connection cap across the cluster, and tells the
// workers when to drain and when the drain timeout has passed.

import type { ClusterPrimaryMessage, ClusterWorkerMessage } from './messages.js';
import { startServer, type ConnectionGate } from '../../server/server.js';
import { WORKER_ENV, clusterWorker, type WorkerSettings } from './index.js';

const send = (message: ClusterWorkerMessage) => process.send!(message);
const { options, index } = JSON.parse(process.env[WORKER_ENV]!) as WorkerSettings;

/** The cap is the primary's to count: each new connection asks it. */
const pending = new Map<number, (ok: boolean) => void>();
let nextId = 1;
const gate: ConnectionGate = {
  acquire: () =>
    new Promise<boolean>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      send({ type: 'acquire', id });
    }),
  release: () => send({ type: 'release' }),
};

const server = await startServer(clusterWorker, options, {}, { cgroup: null, gate, http: false, workerIndex: index });

process.on('message', (message: ClusterPrimaryMessage) => {
  switch (message.type) {
    case 'acquired':
      pending.get(message.id)?.(message.ok);
      pending.delete(message.id);
      break;
    case 'collect':
      void server.metrics().then((json) => send({ type: 'metrics', id: message.id, metrics: json }));
      break;
    case 'drain':
      void server.shutdown().then(() => process.exit(0));
      break;
    case 'abort':
      server.abort();
      break;
  }
});
send({ type: 'listening', port: server.fib.port });
