// `lab load`'s action: validate, then one of three things. A run of the scenario against every
// target at once (with the control API when it serves HTTP: compose's continuous load); with
// --variants, one run per variant, each started locally in turn so they never share the CPU;
// or with --search, the maximum-throughput search per target. Then the results on stdout.

import type { Server } from 'node:http';
import { once } from 'node:events';
import { createMetricsServer } from '../common/http.js';
import { createLoadgenMetrics, type LoadgenMetrics } from '../common/metrics.js';
import { Controller } from './control.js';
import { startLocalVariant } from './local.js';
import { resolveLoadOptions, type LoadOptions, type RawLoadOptions, type Target } from './options.js';
import { LiveDisplay, csv, runResults, table, type LoadReport, type Phase, type ProbeResult } from './report.js';
import { LoadRun } from './run.js';
import { searchMaxThroughput, searchTable, type SearchResult } from './search.js';

export async function runLoadCommand(raw: RawLoadOptions): Promise<void> {
  const options = resolveLoadOptions(raw);
  const metrics = options.metricsPort === null ? null : createLoadgenMetrics();
  const display = new LiveDisplay();
  const startedAt = new Date();
  try {
    if (options.search) return printSearch(await searchEach(options, metrics, display), options);
    const { phases, results, scenario } =
      options.variants.length > 0 ? await runVariants(options, metrics, display) : await runTogether(options, metrics, display);
    const report: LoadReport = {
      startedAt: startedAt.toISOString(),
      scenario: { name: scenario.name, description: scenario.description },
      warmupSeconds: options.warmupMs / 1000,
      phases,
      results,
    };
    display.stop();
    console.log(
      options.output === 'json' ? JSON.stringify(report, null, 2) : options.output === 'csv' ? csv(report) : table(report),
    );
  } finally {
    display.stop();
  }
}

/** Every target at once, until the duration ends or SIGTERM / SIGINT; PUT /scenario may switch runs. */
async function runTogether(options: LoadOptions, metrics: LoadgenMetrics | null, display: LiveDisplay) {
  const controller = new Controller(options, metrics, () => display.reset());
  const server = metrics ? await serveHttp(options, metrics, () => !controller.current.stopped, controller) : null;
  const stop = () => controller.current.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const ticker = setInterval(() => display.update(controller.current), options.reportEveryMs);
  // A switch through the control API replaces the run: wait for whichever is current at the end.
  let run: LoadRun;
  do {
    run = controller.current;
    await run.finished;
  } while (run !== controller.current);
  clearInterval(ticker);
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  if (server) await closeHttp(server);
  const { phase, results } = runResults(run);
  // The control API may have switched scenarios: the results are the last run's.
  return { phases: [phase], results, scenario: run.config.scenario };
}

/** One local variant at a time: start it, load it, stop it. */
async function runVariants(options: LoadOptions, metrics: LoadgenMetrics | null, display: LiveDisplay) {
  const phases: Phase[] = [];
  const results: ProbeResult[] = [];
  let interrupted = false;
  const onSignal = () => (interrupted = true);
  process.once('SIGINT', onSignal);
  for (const variant of options.variants) {
    if (interrupted) break;
    const server = await startLocalVariant(variant);
    try {
      const target = localTarget(variant, server.port);
      const durationMs = options.durationMs ?? options.scenario.durationMs;
      const run = new LoadRun(
        { scenario: options.scenario, targets: [target], durationMs, warmupMs: options.warmupMs, timeoutMs: options.timeoutMs },
        metrics,
      );
      const stop = () => run.stop();
      process.once('SIGINT', stop);
      display.reset();
      const ticker = setInterval(() => display.update(run, `${variant}: `), options.reportEveryMs);
      await run.finished;
      clearInterval(ticker);
      process.off('SIGINT', stop);
      const outcome = runResults(run);
      phases.push(outcome.phase);
      results.push(...outcome.results);
    } finally {
      await server.stop();
    }
  }
  process.off('SIGINT', onSignal);
  return { phases, results, scenario: options.scenario };
}

/** sync serves one connection at a time: like the talk's clients, take turns (a connection per request). */
export function localTarget(variant: string, port: number): Target {
  return { name: variant, host: '127.0.0.1', port, connectPerRequest: variant === 'sync', legacy: false };
}

async function searchEach(options: LoadOptions, metrics: LoadgenMetrics | null, display: LiveDisplay): Promise<SearchResult[]> {
  const results: SearchResult[] = [];
  if (options.variants.length > 0) {
    for (const variant of options.variants) {
      const server = await startLocalVariant(variant);
      try {
        results.push(await searchMaxThroughput(localTarget(variant, server.port), options, metrics, display));
      } finally {
        await server.stop();
      }
    }
  } else {
    for (const target of options.targets) results.push(await searchMaxThroughput(target, options, metrics, display));
  }
  return results;
}

function printSearch(results: SearchResult[], options: LoadOptions): void {
  if (options.output === 'json') console.log(JSON.stringify({ search: results }, null, 2));
  else if (options.output === 'csv') {
    console.log('target,probe,rate,achieved_rate,p99_ms,error_rate,generator_bound,passed');
    for (const r of results)
      for (const s of r.steps)
        console.log([r.target, r.probe, s.rate, s.achievedRate, s.p99Ms, s.errorRate, s.generatorBound, s.passed].join(','));
  } else console.log(searchTable(results));
}

async function serveHttp(
  options: LoadOptions,
  metrics: LoadgenMetrics,
  running: () => boolean,
  controller: Controller,
): Promise<Server> {
  const server = createMetricsServer(
    metrics.registry,
    () => ({ ok: running(), status: running() ? 'running' : 'stopped' }),
    controller.routes,
  );
  server.listen(options.metricsPort!, options.metricsHost);
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  console.error(
    `loadgen: metrics on http://${options.metricsHost}:${port}/metrics, control on http://${options.metricsHost}:${port}/scenario`,
  );
  return server;
}

async function closeHttp(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}
