// `lab load`'s action: validate, then one of three things. A run of the scenario against every
// target at once (with the control API when it serves HTTP: compose's continuous load), with
// --spotlight the talk's experiment on one target at a time beside it; with --variants, one run
// per variant, each started locally in turn so they never share the CPU; or with --search, the
// maximum-throughput search per target. Then the results on stdout, and an exit code that says
// whether anything was answered at all.

import type { Server } from 'node:http';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { runRecord, targetRecord, type TargetRecord } from '../lab/run-record.js';
import { createMetricsServer } from '../lab/http.js';
import { eventLoopSampler } from '../lab/metrics.js';
import { createLoadgenMetrics, type LoadgenMetrics } from './metrics.js';
import { Controller } from './control.js';
import { localTarget, startLocalVariant, type LocalVariant } from './local.js';
import { hostError } from '../lab/options.js';
import { loadOptions, resolveLoadOptions, type LoadOptions, type RawLoadOptions, type Target } from './options.js';
import { PauseGate } from './pause.js';
import { waitForTargets } from './ready.js';
import { useSendThreads } from './senders.js';
import { LiveDisplay, csv, formatMs, runResults, table, type LoadReport, type Phase, type ProbeResult } from './report.js';
import { LoadRun } from './run.js';
import type { Scenario } from './scenario.js';
import { searchMaxThroughput, searchTable, type SearchResult } from './search.js';
import { Spotlight, toSpotlightTarget, type LessonTurn, type SpotlightEvent } from './spotlight.js';
import { spotlightCsv, spotlightJson, spotlightSummary, turnTable } from './spotlight-report.js';
import { checkThresholds, thresholdLines } from './thresholds.js';

/** The exit code of a run in which no request was answered. */
export const EXIT_NOTHING_ANSWERED = 1;
/** The exit code of a run in which a threshold failed (k6's). */
export const EXIT_THRESHOLD_FAILED = 99;

export async function runLoadCommand(raw: RawLoadOptions): Promise<void> {
  const options = resolveLoadOptions(raw);
  useSendThreads(options.sendThreads);
  const metrics = options.metricsPort === null ? null : createLoadgenMetrics();
  const display = new LiveDisplay();
  const startedAt = new Date();
  try {
    if (options.search) return printSearch(await searchEach(options, metrics, display), options, startedAt);
    if (options.spotlight) return await runSpotlight(options, metrics, display, startedAt);
    const { phases, results, scenario, targets } =
      options.variants.length > 0 ? await runVariants(options, metrics, display) : await runTogether(options, metrics, display);
    const report = loadReport(startedAt, options, scenario ?? options.scenario, phases, results, targets);
    // The scenario's own thresholds are those of the scenario run last (the control API may have switched it).
    const thresholds = [
      ...options.thresholds.filter((t) => !(options.scenario.thresholds ?? []).includes(t)),
      ...((scenario ?? options.scenario).thresholds ?? []),
    ];
    report.thresholds = checkThresholds(thresholds, results);
    display.stop();
    const json = JSON.stringify(report, null, 2);
    console.log(options.output === 'json' ? json : options.output === 'csv' ? csv(report) : table(report));
    if (options.out !== null) {
      writeFileSync(options.out, `${json}\n`);
      console.error(`lab load: wrote ${options.out}`);
    }
    // On stdout under the table; on stderr where stdout carries JSON or CSV.
    const lines = thresholdLines(thresholds, report.thresholds);
    if (lines.length > 0) (options.output === 'table' ? console.log : console.error)(lines.join('\n'));
    failUnlessAnswered(results.map((r) => ({ requests: r.requests, ok: r.ok, errors: r.errors })));
    if (process.exitCode === undefined && report.thresholds.some((c) => !c.passed)) {
      const failed = report.thresholds.filter((c) => !c.passed).length;
      console.error(`lab load: ${failed} of ${report.thresholds.length} threshold checks failed`);
      process.exitCode = EXIT_THRESHOLD_FAILED;
    }
  } finally {
    display.stop();
  }
}

function loadReport(
  startedAt: Date,
  options: LoadOptions,
  scenario: Scenario,
  phases: Phase[],
  results: ProbeResult[],
  targets: TargetRecord[] = [],
): LoadReport {
  return {
    run: runRecord(startedAt, targets, scenarioRecord(options, scenario)),
    startedAt: startedAt.toISOString(),
    scenario: { name: scenario.name, description: scenario.description },
    warmupSeconds: options.warmupMs / 1000,
    phases,
    results,
    thresholds: [],
  };
}

/** The scenario as run, for the run record: what was asked (the spec, the overrides) and what it became. */
function scenarioRecord(options: LoadOptions, scenario: Scenario) {
  return {
    spec: options.scenarioSpec,
    name: scenario.name,
    description: scenario.description,
    durationMs: options.durationMs ?? scenario.durationMs,
    warmupMs: options.warmupMs,
    timeoutMs: options.timeoutMs,
    sendThreads: options.sendThreads,
    overrides: options.overrides,
    probes: scenario.probes,
    thresholds: options.thresholds.map((t) => t.text),
  };
}

/** A run in which requests were sent and none was answered exits non-zero, saying so on stderr. */
function failUnlessAnswered(counts: Array<{ requests: number; ok: number; errors: Record<string, number> }>): void {
  const requests = counts.reduce((sum, c) => sum + c.requests, 0);
  if (requests === 0 || counts.some((c) => c.ok > 0)) return;
  const errors = new Map<string, number>();
  for (const c of counts) for (const [code, n] of Object.entries(c.errors)) errors.set(code, (errors.get(code) ?? 0) + n);
  const detail = [...errors].map(([code, n]) => `${code} ${n}`).join(', ');
  console.error(`lab load: every request failed (${requests} requests: ${detail})`);
  process.exitCode = EXIT_NOTHING_ANSWERED;
}

/**
 * Every target at once, until the duration ends or SIGTERM / SIGINT; PUT /scenario may switch
 * runs. With a spotlight, its rotation runs beside the background load (if any) and ends the run.
 */
async function runTogether(
  options: LoadOptions,
  metrics: LoadgenMetrics | null,
  display: LiveDisplay,
  onSpotlight?: (event: SpotlightEvent) => void,
) {
  const late = await waitForTargets(options.targets);
  if (late.length > 0) console.error(`loadgen: starting without ${late.join(', ')}: not healthy after waiting`);
  const controller = new Controller(options, metrics, new PauseGate(), () => display.reset());
  // This thread's event-loop delay is sampled while load may be sent, not while all of it is
  // paused (EventLoopSampler: an idle lab's processes do not wake for it).
  let unhold: (() => void) | null = null;
  const followGate = () => {
    if (!controller.gate.allPaused) {
      unhold ??= eventLoopSampler.hold();
    } else if (unhold) {
      unhold();
      unhold = null;
    }
  };
  followGate();
  controller.gate.subscribe(followGate);
  const spotlight = options.spotlight
    ? new Spotlight(options.targets.map(toSpotlightTarget), options.spotlight, {
        gate: controller.gate,
        metrics,
        onEvent: onSpotlight,
      })
    : null;
  controller.spotlight = spotlight;
  const stopper = new AbortController();
  const running = () => !stopper.signal.aborted && !(controller.current?.stopped ?? false);
  const server = metrics ? await serveHttp(options, metrics, running, controller) : null;
  const stop = () => {
    stopper.abort();
    controller.stop();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const ticker = setInterval(() => {
    if (controller.current) display.update(controller.current);
  }, options.reportEveryMs);
  const deadline = spotlight && options.durationMs ? setTimeout(stop, options.durationMs) : null;
  if (spotlight) {
    await spotlight.run(stopper.signal);
    controller.stop();
  }
  // A switch through the control API replaces the run: wait for whichever is current at the end.
  await controller.finished();
  if (deadline) clearTimeout(deadline);
  clearInterval(ticker);
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  if (server) await closeHttp(server);
  const run = controller.current;
  const targets = await Promise.all(options.targets.map((t) => targetRecord(t.name, t.metrics)));
  if (!run) return { phases: [], results: [], scenario: null, targets };
  const { phase, results } = runResults(run);
  // The control API may have switched scenarios: the results are the last run's.
  return { phases: [phase], results, scenario: run.config.scenario, targets };
}

/**
 * The spotlight's rotation over the targets (or local variants, all started at once: they idle
 * until their turn), with the scenario as background load when one was given. Each turn is
 * printed as it ends (table output), everything at the end.
 */
async function runSpotlight(options: LoadOptions, metrics: LoadgenMetrics | null, display: LiveDisplay, startedAt: Date) {
  const locals: LocalVariant[] = [];
  try {
    for (const variant of options.variants) locals.push(await startLocalVariant(variant));
    const targets =
      locals.length > 0 ? locals.map((local) => localTarget(local.variant, local.port, local.metricsPort)) : options.targets;
    const turns: LessonTurn[] = [];
    const spotlight = options.spotlight!;
    const phases = (t: Target) => (t.parallelism === undefined || t.parallelism === 'single' ? 2 : 3);
    const rotationMs = targets
      .filter((t) => spotlight.variants.includes(t.name))
      .reduce((ms, t) => ms + spotlight.rounds * phases(t) * (spotlight.warmupMs + spotlight.phaseMs) + spotlight.gapMs, 0);
    console.error(
      `spotlight: ${spotlight.variants.join(', ')}; ${spotlight.rounds} round${spotlight.rounds === 1 ? '' : 's'} of phases of ${formatMs(spotlight.phaseMs)} after ${formatMs(spotlight.warmupMs)} of warm-up, one rotation about ${formatMs(rotationMs)}`,
    );
    const onEvent = (event: SpotlightEvent) => {
      if (event.type === 'phase')
        console.error(
          `spotlight: ${event.variant}: round ${event.round}, ${event.phase}${event.hogs > 0 ? ` (${event.hogs} hog${event.hogs > 1 ? 's' : ''})` : ''}`,
        );
      else if (event.type === 'note') console.error(`spotlight: ${event.variant}: ${event.note}`);
      else if (event.type === 'abandoned') console.error(`spotlight: ${event.variant}: turn abandoned: ${event.reason}`);
      else {
        turns.push(event.turn);
        if (options.output === 'table') console.log(`${turnTable(event.turn)}\n`);
      }
    };
    const background = await runTogether({ ...options, targets }, metrics, display, onEvent);
    const records = await Promise.all(targets.map((t) => targetRecord(t.name, t.metrics)));
    display.stop();
    const report =
      background.scenario === null
        ? null
        : loadReport(startedAt, options, background.scenario, background.phases, background.results);
    if (options.output === 'json')
      console.log(
        JSON.stringify(
          {
            run: runRecord(startedAt, records, scenarioRecord(options, background.scenario ?? options.scenario)),
            startedAt: startedAt.toISOString(),
            spotlight: { turns: spotlightJson(turns) },
            background: report,
          },
          null,
          2,
        ),
      );
    else if (options.output === 'csv') console.log(spotlightCsv(turns));
    else console.log([...(report ? [table(report), ''] : []), spotlightSummary(turns)].join('\n'));
    failUnlessAnswered(turns.flatMap((turn) => turn.phases.flatMap((p) => [p.short, ...(p.long ? [p.long] : [])])));
  } finally {
    await Promise.all(locals.map((local) => local.stop()));
  }
}

/** One local variant at a time: start it, load it, stop it. */
async function runVariants(options: LoadOptions, metrics: LoadgenMetrics | null, display: LiveDisplay) {
  const phases: Phase[] = [];
  const results: ProbeResult[] = [];
  const targets: TargetRecord[] = [];
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
      targets.push(await targetRecord(variant, `127.0.0.1:${server.metricsPort}`));
    } finally {
      await server.stop();
    }
  }
  process.off('SIGINT', onSignal);
  return { phases, results, scenario: options.scenario, targets };
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

function printSearch(results: SearchResult[], options: LoadOptions, startedAt: Date): void {
  if (options.output === 'json')
    console.log(
      JSON.stringify({ run: runRecord(startedAt, [], scenarioRecord(options, options.scenario)), search: results }, null, 2),
    );
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
  // A HOST that is no address of this machine is bad configuration (exit 2, naming it).
  try {
    await once(server, 'listening');
  } catch (error) {
    throw hostError(error, loadOptions.metricsHost, options.metricsHost);
  }
  const { port } = server.address() as { port: number };
  const host = options.metricsHost.includes(':') ? `[${options.metricsHost}]` : options.metricsHost;
  // A token made up here is printed (whoever started lab load needs it); one that was given, never.
  const token = options.controlTokenGenerated
    ? `control token ${options.controlToken} (send Authorization: Bearer <token> to PUT and DELETE)`
    : 'control token from --control-token (LOADGEN_TOKEN)';
  console.error(`loadgen: metrics on http://${host}:${port}/metrics, control on http://${host}:${port}/scenario, ${token}`);
  return server;
}

async function closeHttp(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}
