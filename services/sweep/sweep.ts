// `lab sweep`: variants x CPU quotas x measurements. For each point it sets the quota, warms the
// variant up, then measures three things, one variant at a time with the lab's background load
// paused: the throughput of a CPU-bound request (a closed loop of fib(27) on enough connections
// to keep the quota busy), the talk's perf2 collapse (short requests alone, then beside one
// fib(30) hog) and the short requests' p99 beside that hog. Each point is appended to the sweep
// file as soon as it is measured, so an interrupted sweep resumes where it stopped; quotas are
// put back at the end, also on Ctrl-C.

import cliProgress from 'cli-progress';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../lab/errors.js';
import { runRecord } from '../lab/run-record.js';
import type { Measurement, ProbeFigures } from '../loadgen/measure.js';
import { formatCores } from '../quota/cpus.js';
import { usageBetween } from '../quota/docker.js';
import { postAnnotation } from '../lab/grafana.js';
import { DockerBackend, type Counters, type PreparedPoint, type SweepBackend } from './backend.js';
import {
  SWEEP_FILE_VERSION,
  existingSweep,
  settingsDiffer,
  writeSweepFile,
  type Baseline,
  type SweepFile,
  type SweepPoint,
} from './file.js';
import type { SweepOptions, SweepSettings } from './options.js';
import { LoadgenPause, controlHeaders } from './pause.js';

/** A variant and a quota still to measure. */
interface PlannedPoint {
  variant: string;
  requested: number;
  cpus: number;
}

export async function runSweep(options: SweepOptions): Promise<SweepFile> {
  const backend: SweepBackend = options.native
    ? await (await import('./native.js')).NativeBackend.create(options.isolation)
    : await DockerBackend.create(options.confirmTimeoutMs, options.loadgenUrl, controlHeaders());
  try {
    return await sweepWith(backend, options);
  } finally {
    const done = await backend.restore();
    if (done.length > 0) console.error(`lab sweep: restored: ${done.join(', ')}`);
  }
}

async function sweepWith(backend: SweepBackend, options: SweepOptions): Promise<SweepFile> {
  const { settings } = options;
  for (const cpus of options.cpus) {
    if (backend.effectiveCpus(cpus) > backend.hostCpus) {
      throw new ConfigError(
        '--cpus',
        `${cpus} cores is more than the host's ${backend.hostCpus} CPUs${options.native ? '' : ' (Docker refuses more)'}`,
      );
    }
  }
  await backend.check(options.variants);

  let sweep = existingSweep(options.out);
  if (sweep) {
    const differences = settingsDiffer(sweep, backend.mode, settings);
    if (differences.length > 0) {
      throw new ConfigError(
        '--out',
        `${options.out} holds a sweep measured otherwise (${differences.join('; ')}): give another --out, or remove it`,
      );
    }
  } else {
    sweep = {
      version: SWEEP_FILE_VERSION,
      mode: backend.mode,
      isolation: backend.isolation,
      host: { cpus: backend.hostCpus, node: process.version, platform: `${process.platform} ${hostname()}` },
      settings,
      baseline: null,
      startedAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      elapsedSeconds: 0,
      points: [],
      run: runRecord(new Date(), [], {
        mode: backend.mode,
        isolation: backend.isolation,
        variants: options.variants,
        cpus: options.cpus,
        baselineVariant: options.baselineVariant,
        settings,
      }),
    };
  }

  const plan: PlannedPoint[] = [];
  for (const variant of options.variants) {
    const seen = new Set<number>();
    for (const requested of options.cpus) {
      const cpus = backend.effectiveCpus(requested);
      if (seen.has(cpus)) continue;
      seen.add(cpus);
      if (sweep.points.some((p) => p.variant === variant && p.cpus === cpus)) continue;
      plan.push({ variant, requested, cpus });
    }
  }
  const total = options.variants.length * new Set(options.cpus.map((c) => backend.effectiveCpus(c))).size;
  console.error(`lab sweep: ${backend.isolation}`);
  if (backend instanceof DockerBackend) console.error(`lab sweep: ${backend.loadSource}`);
  if (backend.mode === 'native-affinity' && options.cpus.some((c) => backend.effectiveCpus(c) !== c)) {
    console.error(`lab sweep: whole cores only: ${options.cpus.map((c) => `${c} -> ${backend.effectiveCpus(c)}`).join(', ')}`);
  }
  if (plan.length < total)
    console.error(`lab sweep: resuming ${options.out}: ${total - plan.length} of ${total} points already measured`);

  const abort = new AbortController();
  const interrupt = (signal: string) => {
    if (!abort.signal.aborted) console.error(`\nlab sweep: ${signal}: stopping after putting the quotas back`);
    abort.abort();
  };
  // A closed terminal (SIGHUP) stops the sweep the same way: quotas back, cgroups removed.
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const handlers = signals.map((signal) => [signal, () => interrupt(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  const pause = new LoadgenPause(options.loadgenUrl);
  const pointSeconds = estimatePointSeconds(settings);
  const progress = new Progress(total, total - plan.length, pointSeconds);
  const started = Date.now();
  const elapsedBefore = sweep.elapsedSeconds;
  try {
    const note = await pause.renew(pointSeconds * 3);
    if (note) progress.log(note);
    if (!sweep.baseline) {
      progress.status(`baseline: t(fib(${settings.cpuN})) on ${options.baselineVariant}, one connection`);
      const baseline = await measureBaseline(backend, options.baselineVariant, settings, abort.signal);
      // An interrupted baseline is measured again on resume: the ideal line rests on it.
      if (!abort.signal.aborted) {
        sweep.baseline = baseline;
        writeSweepFile(options.out, sweep);
        progress.log(
          `baseline: t(fib(${settings.cpuN})) = ${(baseline.secondsPerRequest * 1000).toFixed(3)} ms on ${options.baselineVariant}: ideal ${baseline.requestsPerSecondPerCore.toFixed(0)} req/s per core`,
        );
      }
    }
    for (const planned of plan) {
      if (abort.signal.aborted) break;
      const renewed = await pause.renew(pointSeconds * 3);
      if (renewed) progress.log(renewed);
      progress.status(`${planned.variant} at ${formatCores(planned.cpus)}`);
      const prepared = await backend.prepare(planned.variant, planned.requested);
      let point: SweepPoint;
      try {
        point = await measurePoint(planned, prepared, settings, sweep.baseline!, abort.signal);
      } finally {
        await prepared.release();
      }
      if (abort.signal.aborted) break; // an interrupted point is measured again on resume
      sweep.points.push(point);
      sweep.elapsedSeconds = elapsedBefore + (Date.now() - started) / 1000;
      writeSweepFile(options.out, sweep);
      progress.point(describePoint(point));
      // On the compose lab, each point marks the dashboards of its Grafana (skipped where none runs).
      if (backend instanceof DockerBackend)
        await postAnnotation(`lab sweep: ${describePoint(point)}`, ['lab-sweep', point.variant]);
    }
  } finally {
    progress.stop();
    for (const [signal, handler] of handlers) process.off(signal, handler);
    await pause.end();
  }
  sweep.elapsedSeconds = elapsedBefore + (Date.now() - started) / 1000;
  writeSweepFile(options.out, sweep);
  console.log(sweepTable(sweep));
  const left = total - sweep.points.filter((p) => options.variants.includes(p.variant)).length;
  console.error(
    abort.signal.aborted
      ? `lab sweep: interrupted with ${left} points left: run the same command again to resume`
      : `lab sweep: ${sweep.points.length} points in ${options.out} (${formatSeconds(sweep.elapsedSeconds)} of measuring); draw them with: lab report ${options.out} --out report.html`,
  );
  if (abort.signal.aborted) process.exitCode = 130;
  return sweep;
}

/** Roughly how long one point takes (quota change and confirmation included), s. */
function estimatePointSeconds(s: SweepSettings): number {
  return (s.warmupMs + s.throughputMs + 500 + s.collapseMs + 1000 + s.collapseMs) / 1000 + 3;
}

async function measureBaseline(
  backend: SweepBackend,
  variant: string,
  settings: SweepSettings,
  signal: AbortSignal,
): Promise<Baseline> {
  const server = await backend.baseline(variant);
  try {
    const result = await server.measure([{ name: 'cpu', n: settings.cpuN, connections: 1 }], {
      durationMs: settings.throughputMs,
      warmupMs: settings.warmupMs,
      signal,
    });
    const figures = result.probes.cpu;
    if (!figures || figures.ok === 0)
      throw new Error(`baseline: no fib(${settings.cpuN}) answered by ${variant}: ${JSON.stringify(figures?.errors)}`);
    return {
      variant,
      n: settings.cpuN,
      secondsPerRequest: 1 / figures.okPerSecond,
      requestsPerSecondPerCore: figures.okPerSecond,
      measuredAt: new Date().toISOString(),
    };
  } finally {
    await server.release();
  }
}

async function measurePoint(
  planned: PlannedPoint,
  prepared: PreparedPoint,
  settings: SweepSettings,
  baseline: Baseline,
  signal: AbortSignal,
): Promise<SweepPoint> {
  const connections = Math.max(2, settings.connectionsPerCore * Math.ceil(prepared.cpus - 1e-9));
  // Workers are read half-way through the warm-up (threads and processes per connection exist by
  // then) and the cgroup counters at its end: neither reading costs the measured stretch anything.
  let workers: number | null = null;
  let before: Counters | null = null;
  let hostBefore: HostCpu | null = null;
  const readings = [
    sleep(settings.warmupMs / 2, undefined, { signal })
      .then(async () => (workers = await prepared.workers()))
      .catch(() => null),
    sleep(settings.warmupMs, undefined, { signal })
      .then(async () => {
        hostBefore = hostCpu();
        before = await prepared.counters();
      })
      .catch(() => null),
  ];
  const throughput = await prepared.measure([{ name: 'cpu', n: settings.cpuN, connections }], {
    durationMs: settings.throughputMs,
    warmupMs: settings.warmupMs,
    signal,
    dropLateReplies: true,
  });
  await Promise.all(readings);
  const after = await prepared.counters().catch(() => null);
  const hostAfter = hostCpu();
  const hostBusyCores = hostBefore === null ? null : busyCores(hostBefore, hostAfter);
  const usage = before && after ? usageBetween(before, after) : { coresUsed: null, throttledShare: null };

  const short = { name: 'short', n: settings.shortN, connections: 1 };
  const alone = await prepared.measure([short], {
    durationMs: settings.collapseMs,
    warmupMs: 500,
    signal,
    dropLateReplies: true,
  });
  // The hog keeps its own connection; the short requests take turns where the variant's clients do.
  const beside = await prepared.measure([{ name: 'long', n: settings.longN, connections: 1, connectPerRequest: false }, short], {
    durationMs: settings.collapseMs,
    warmupMs: 1000,
    signal,
    dropLateReplies: true,
  });
  const cpu = figures(throughput, 'cpu');
  const aloneShort = figures(alone, 'short');
  const besideShort = figures(beside, 'short');
  const ideal = (prepared.cpus * prepared.quotaHolders) / baseline.secondsPerRequest;
  const measurements = [throughput, alone, beside];
  const errors: Record<string, number> = {};
  for (const m of measurements) {
    for (const probe of Object.values(m.probes)) {
      for (const [outcome, count] of Object.entries(probe.errors)) errors[outcome] = (errors[outcome] ?? 0) + count;
    }
  }
  return {
    variant: planned.variant,
    cpus: prepared.cpus,
    ...(planned.requested !== prepared.cpus ? { requestedCpus: planned.requested } : {}),
    quotaHolders: prepared.quotaHolders,
    workers,
    throughput: cpu.okPerSecond,
    ...(cpu.intervals ? { throughputIntervals: cpu.intervals } : {}),
    ideal,
    throughputConnections: connections,
    throughputP50Ms: finite(cpu.p50Ms),
    collapse: {
      aloneRps: aloneShort.okPerSecond,
      besideRps: besideShort.okPerSecond,
      ratio: besideShort.ok > 0 ? aloneShort.okPerSecond / besideShort.okPerSecond : null,
      infinite: besideShort.ok === 0,
    },
    shortP99Ms: finite(besideShort.p99Ms),
    shortP99AloneMs: finite(aloneShort.p99Ms),
    coresUsed: usage.coresUsed,
    throttledShare: usage.throttledShare,
    generatorCores: throughput.generator.cpuCores,
    hostBusyCores,
    generatorBound: measurements.some((m) => m.generator.generatorBound),
    generatorReasons: [...new Set(measurements.flatMap((m) => m.generator.reasons))],
    errors,
    measuredAt: new Date().toISOString(),
  };
}

/** The whole machine's CPU time (from /proc/stat), to tell a busy neighbour from a slow variant. */
interface HostCpu {
  busy: number;
  total: number;
  cpus: number;
}

function hostCpu(): HostCpu | null {
  try {
    const lines = readFileSync('/proc/stat', 'utf8').split('\n');
    const fields = lines[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total, cpus: lines.filter((line) => /^cpu\d/.test(line)).length };
  } catch {
    return null;
  }
}

function busyCores(before: HostCpu, after: HostCpu | null): number | null {
  if (after === null || after.total <= before.total) return null;
  return ((after.busy - before.busy) / (after.total - before.total)) * after.cpus;
}

function figures(measurement: Measurement, probe: string): ProbeFigures {
  return measurement.probes[probe] ?? { requests: 0, ok: 0, okPerSecond: 0, p50Ms: NaN, p99Ms: NaN, maxMs: NaN, errors: {} };
}

function finite(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

function describePoint(p: SweepPoint): string {
  const collapse = p.collapse.infinite ? 'inf' : `${p.collapse.ratio!.toFixed(1)}x`;
  return (
    `${p.variant} at ${formatCores(p.cpus)}: ${p.throughput.toFixed(0)} req/s fib(27) (${((p.throughput / p.ideal) * 100).toFixed(0)}% of ideal), ` +
    `collapse ${collapse}, p99 beside a hog ${p.shortP99Ms === null ? '-' : `${p.shortP99Ms.toFixed(2)} ms`}` +
    (p.throttledShare === null ? '' : `, throttled ${(p.throttledShare * 100).toFixed(0)}%`) +
    (p.generatorBound ? ', GENERATOR-BOUND' : '')
  );
}

export function sweepTable(sweep: SweepFile): string {
  const header = [
    'variant',
    'cpus',
    'workers',
    'req/s',
    'ideal',
    'ratio',
    'cores used',
    'throttled',
    'gen cores',
    'host busy',
    'alone/s',
    'beside/s',
    'collapse',
    'p99 beside',
    'gen-bound',
  ];
  const dash = (v: number | null | undefined, f: (v: number) => string) => (v === null || v === undefined ? '-' : f(v));
  const rows = sweep.points.map((p) => [
    p.variant,
    String(p.cpus),
    dash(p.workers, String),
    p.throughput.toFixed(0),
    p.ideal.toFixed(0),
    (p.throughput / p.ideal).toFixed(2),
    dash(p.coresUsed, (v) => v.toFixed(2)),
    dash(p.throttledShare, (v) => `${(v * 100).toFixed(0)}%`),
    dash(p.generatorCores, (v) => v.toFixed(2)),
    dash(p.hostBusyCores, (v) => v.toFixed(2)),
    p.collapse.aloneRps.toFixed(0),
    p.collapse.besideRps.toFixed(0),
    p.collapse.infinite ? 'inf' : `${p.collapse.ratio!.toFixed(1)}x`,
    dash(p.shortP99Ms, (v) => `${v.toFixed(2)} ms`),
    p.generatorBound ? 'yes' : 'no',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const baseline = sweep.baseline
    ? `baseline t(fib(${sweep.baseline.n})) = ${(sweep.baseline.secondsPerRequest * 1000).toFixed(3)} ms (${sweep.baseline.variant}): ideal = cpus x ${sweep.baseline.requestsPerSecondPerCore.toFixed(0)} req/s`
    : 'no baseline';
  return [`${sweep.mode}, ${sweep.host.cpus} CPUs; ${baseline}`, line(header), ...rows.map(line)].join('\n');
}

function formatSeconds(seconds: number): string {
  return seconds < 90 ? `${seconds.toFixed(0)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** A progress bar with ETA on a terminal (stderr); plain lines otherwise. */
class Progress {
  private readonly multibar: cliProgress.MultiBar | null;
  private readonly bar: cliProgress.SingleBar | null;
  private done: number;
  private readonly doneAtStart: number;
  private readonly startedAt = Date.now();

  constructor(
    private readonly total: number,
    done: number,
    private readonly estimateSeconds: number,
  ) {
    this.done = done;
    this.doneAtStart = done;
    if (process.stderr.isTTY) {
      this.multibar = new cliProgress.MultiBar(
        {
          stream: process.stderr,
          format: ' {bar} {value}/{total} points | elapsed {duration_formatted} | ETA {etaText} | {status}',
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar = this.multibar.create(total, done, { status: 'starting', etaText: this.eta() });
    } else {
      this.multibar = null;
      this.bar = null;
    }
  }

  /** Points left times the mean time of the points measured so far in this run (the estimate before the first). */
  private eta(): string {
    const measured = this.done - this.doneAtStart;
    const perPoint = measured > 0 ? (Date.now() - this.startedAt) / 1000 / measured : this.estimateSeconds;
    const seconds = Math.round(perPoint * (this.total - this.done));
    return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
  }

  status(text: string): void {
    if (this.bar) this.bar.update({ status: text, etaText: this.eta() });
    else console.error(`lab sweep: [${this.done + 1}/${this.total}] ${text}`);
  }

  log(text: string): void {
    if (this.multibar) this.multibar.log(`${text}\n`);
    else console.error(`lab sweep: ${text}`);
  }

  point(text: string): void {
    this.done += 1;
    this.log(text);
    this.bar?.update(this.done, { etaText: this.eta() });
  }

  stop(): void {
    this.multibar?.stop();
  }
}
