// Runs a load: for every target, every probe of every chosen scenario gets its own connections,
// each in a closed loop (send one request, wait for the reply, think, repeat) until the duration
// ends or the run is stopped. Targets are loaded at the same time, as compose's continuous load
// does. Latency is measured from just before the request is written (in connect-per-request
// mode, from just before connecting: the wait to be accepted is part of what the client sees).

import { once } from 'node:events';
import type { Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createMetricsServer } from '../common/http.js';
import { createLoadgenMetrics } from '../common/metrics.js';
import { ClientConnection, ClientFailure } from './client.js';
import type { LoadOptions, Target } from './options.js';
import { ProbeRecorder, type ConnectionRecorder } from './recorder.js';
import { SCENARIOS, type Probe } from './scenarios.js';

export interface RunHandle {
  /** Resolves with the recorders when the run has ended (duration reached, or stop()). */
  finished: Promise<ProbeRecorder[]>;
  recorders: ProbeRecorder[];
  /** The metrics listener's port, when one was asked for. */
  metricsPort: number | null;
  stop(): void;
  /** Time under load: from the start until now, or until the run was stopped. */
  elapsedMs(): number;
}

/** How long a stopped run waits for requests already sent before it drops them. */
const STOP_GRACE_MS = 5000;
/** Pause before reconnecting after a connection could not be opened. */
const RECONNECT_DELAY_MS = 500;

export async function startLoad(options: LoadOptions): Promise<RunHandle> {
  const metrics = options.metricsPort === null ? null : createLoadgenMetrics();
  let running = true;
  let server: Server | null = null;
  if (metrics && options.metricsPort !== null) {
    server = createMetricsServer(metrics.registry, () => ({ ok: running, status: running ? 'running' : 'stopped' }));
    server.listen(options.metricsPort, options.metricsHost);
    await once(server, 'listening');
  }

  const startedAt = performance.now();
  const stopSignal = new AbortController();
  const recorders: ProbeRecorder[] = [];
  const loops: Promise<void>[] = [];
  for (const target of options.targets) {
    for (const scenario of options.scenarios) {
      for (const probe of SCENARIOS[scenario].probes) {
        const recorder = new ProbeRecorder({ target: target.name, scenario, probe: probe.name }, options.connections, metrics);
        recorders.push(recorder);
        for (let i = 0; i < options.connections; i++) {
          loops.push(closedLoop(target, probe, recorder.forConnection(i), options, stopSignal.signal));
        }
      }
    }
  }

  let stoppedAt: number | null = null;
  const stop = () => {
    stoppedAt ??= performance.now();
    stopSignal.abort();
  };
  const timer = options.durationMs > 0 ? setTimeout(stop, options.durationMs) : null;
  const finished = Promise.all(loops).then(async () => {
    if (timer) clearTimeout(timer);
    running = false;
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server!.close(resolve));
    }
    return recorders;
  });
  return {
    finished,
    recorders,
    metricsPort: server ? (server.address() as { port: number }).port : null,
    stop,
    elapsedMs: () => (stoppedAt ?? performance.now()) - startedAt,
  };
}

async function closedLoop(
  target: Target,
  probe: Probe,
  recorder: ConnectionRecorder,
  options: LoadOptions,
  stopped: AbortSignal,
): Promise<void> {
  let connection: ClientConnection | null = null;
  // A stopped run cuts what is still in flight after a grace period.
  const cut = () => setTimeout(() => connection?.destroy(), STOP_GRACE_MS).unref();
  stopped.addEventListener('abort', cut, { once: true });
  try {
    // Start at a random point of one think time, so connections do not march in lockstep.
    if (options.thinkMs > 0) await sleep(Math.random() * options.thinkMs, stopped);
    while (!stopped.aborted) {
      const start = performance.now();
      if (!connection || !connection.isOpen) {
        try {
          connection = await ClientConnection.open(target.host, target.port, options.timeoutMs);
        } catch (error) {
          if (stopped.aborted) break;
          recorder.record(error instanceof ClientFailure ? error.code : 'connect_error', null);
          await sleep(RECONNECT_DELAY_MS, stopped);
          continue;
        }
      }
      const requestStart = target.connectPerRequest ? start : performance.now();
      const answer = await connection.request(probe.n, options.timeoutMs);
      const gotReply = answer.outcome !== 'timeout' && answer.outcome !== 'closed';
      if (gotReply || !stopped.aborted) {
        recorder.record(answer.outcome, gotReply ? performance.now() - requestStart : null);
      }
      if (target.connectPerRequest) {
        connection.close();
        connection = null;
      }
      // Think times vary uniformly by ±50% around the setting, for the same reason.
      if (options.thinkMs > 0) await sleep(options.thinkMs * (0.5 + Math.random()), stopped);
    }
  } finally {
    stopped.removeEventListener('abort', cut);
    connection?.close();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
