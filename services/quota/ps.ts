// `lab ps`: every running variant with its CPU quota and what it does with it: cores used,
// throttled share, memory, connections, workers, and the load generator's last spotlight
// figures. Refreshed in place on a terminal, one snapshot otherwise (or as JSON).
//
// Sources: Docker for which variants run and their quota (NanoCpus, the truth); the lab's
// Prometheus for the variants' own series (one query covers every variant, so a refresh costs
// the variants nothing, unlike exec'ing into each); the load generator's /metrics for the
// spotlight gauges. A source that does not answer leaves its columns at '-'.

import { LabDocker, LabNotRunningError } from './docker.js';
import type { PsOptions } from './options.js';
import { parseExposition, pick } from '../lab/exposition.js';

export type { PsOptions } from './options.js';

export interface VariantRow {
  variant: string;
  containers: number;
  /** Per quota-holding container (per worker for a variant with workers), cores. */
  quotaCores: number | null;
  coresUsed: number | null;
  throttledShare: number | null;
  memoryBytes: number | null;
  connections: number | null;
  workers: number | null;
  spotlight: {
    aloneRps: number | null;
    besideOneLongRps: number | null;
    besideAllWorkersLongRps: number | null;
    collapseRatio: number | null;
    /** When the last spotlight turn ended (ISO time), null when there was none. */
    at: string | null;
  };
}

export interface PsSnapshot {
  at: string;
  variants: VariantRow[];
  /** Sources that did not answer, with why. */
  unavailable: string[];
}

const RATE_WINDOW = '10s';
const QUERIES = {
  coresUsed: `sum by (variant) (rate(lab_cpu_usage_seconds_total[${RATE_WINDOW}]))`,
  throttledShare: `sum by (variant) (rate(lab_cpu_throttled_periods_total[${RATE_WINDOW}])) / sum by (variant) (rate(lab_cpu_periods_total[${RATE_WINDOW}]))`,
  memoryBytes: 'sum by (variant) (lab_memory_bytes)',
  connections: 'sum by (variant) (fib_connections_active)',
  workers: 'sum by (variant) (fib_workers)',
} as const;

export async function snapshot(options: PsOptions, docker = new LabDocker()): Promise<PsSnapshot> {
  const unavailable: string[] = [];
  const variants = await docker.runningVariants();
  if (variants.length === 0) throw new LabNotRunningError('no variant of the lab is running: start it with make up');
  const [quotas, prometheus, loadgen] = await Promise.all([
    Promise.all(variants.map(async (v) => docker.quotaCores(v.quota[0]!))),
    queryAll(options.prometheusUrl).catch((error: Error) => {
      unavailable.push(`Prometheus at ${options.prometheusUrl}: ${error.message}`);
      return null;
    }),
    fetchText(`${options.loadgenUrl}/metrics`).then(parseExposition, (error: Error) => {
      unavailable.push(`load generator at ${options.loadgenUrl}: ${error.message}`);
      return null;
    }),
  ]);
  const fromPrometheus = (key: keyof typeof QUERIES, variant: string) => prometheus?.[key].get(variant) ?? null;
  const lesson = (name: string, labels: Record<string, string>) => (loadgen ? pick(loadgen, name, labels) : null);
  return {
    at: new Date().toISOString(),
    unavailable,
    variants: variants.map(({ variant, all }, index) => {
      const timestamp = lesson('loadgen_lesson_timestamp_seconds', { variant });
      return {
        variant,
        containers: all.length,
        quotaCores: quotas[index] ?? null,
        coresUsed: fromPrometheus('coresUsed', variant),
        throttledShare: fromPrometheus('throttledShare', variant),
        memoryBytes: fromPrometheus('memoryBytes', variant),
        connections: fromPrometheus('connections', variant),
        workers: fromPrometheus('workers', variant),
        spotlight: {
          aloneRps: lesson('loadgen_lesson_short_requests_per_second', { variant, phase: 'alone' }),
          besideOneLongRps: lesson('loadgen_lesson_short_requests_per_second', { variant, phase: 'beside_one_long' }),
          besideAllWorkersLongRps: lesson('loadgen_lesson_short_requests_per_second', {
            variant,
            phase: 'beside_all_workers_long',
          }),
          collapseRatio: lesson('loadgen_lesson_collapse_ratio', { variant }),
          at: timestamp === null || timestamp <= 0 ? null : new Date(timestamp * 1000).toISOString(),
        },
      };
    }),
  };
}

async function queryAll(base: string): Promise<Record<keyof typeof QUERIES, Map<string, number>>> {
  const entries = await Promise.all(
    (Object.entries(QUERIES) as Array<[keyof typeof QUERIES, string]>).map(async ([key, expr]) => {
      const body = JSON.parse(await fetchText(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`)) as {
        status: string;
        error?: string;
        data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
      };
      if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
      const values = new Map<string, number>();
      for (const sample of body.data?.result ?? []) {
        const value = Number(sample.value[1]);
        if (sample.metric.variant && Number.isFinite(value)) values.set(sample.metric.variant, value);
      }
      return [key, values] as const;
    }),
  );
  return Object.fromEntries(entries) as Record<keyof typeof QUERIES, Map<string, number>>;
}

async function fetchText(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(3000) }).catch((error: Error) => {
    // fetch says only `fetch failed`; its cause says why (ECONNREFUSED ...).
    throw error.cause instanceof Error ? error.cause : error;
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.text();
}

export function psTable(snap: PsSnapshot): string {
  const dash = (value: number | null, format: (v: number) => string) => (value === null ? '-' : format(value));
  const num = (digits: number) => (v: number) => v.toFixed(digits);
  const header = [
    'variant',
    'quota',
    'cores used',
    'throttled',
    'memory',
    'conns',
    'workers',
    'alone/s',
    'beside 1/s',
    'collapse',
    'spotlight',
  ];
  const rows = snap.variants.map((row) => [
    row.containers > 1 ? `${row.variant} (${row.containers})` : row.variant,
    dash(row.quotaCores, num(2)),
    dash(row.coresUsed, num(2)),
    dash(row.throttledShare, (v) => `${(v * 100).toFixed(0)}%`),
    dash(row.memoryBytes, (v) => `${(v / 2 ** 20).toFixed(0)} MiB`),
    dash(row.connections, num(0)),
    dash(row.workers, num(0)),
    dash(row.spotlight.aloneRps, num(0)),
    dash(row.spotlight.besideOneLongRps, num(0)),
    dash(row.spotlight.collapseRatio, (v) => (Number.isFinite(v) ? `${v.toFixed(1)}x` : 'inf')),
    row.spotlight.at === null ? '-' : `${Math.round((Date.parse(snap.at) - Date.parse(row.spotlight.at)) / 1000)} s ago`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const notes = snap.unavailable.map((reason) => `- not available: ${reason}`);
  return [line(header), ...rows.map(line), ...notes].join('\n');
}

export async function runPs(options: PsOptions): Promise<void> {
  const docker = new LabDocker();
  if (options.json) {
    console.log(JSON.stringify(await snapshot(options, docker), null, 2));
    return;
  }
  if (!process.stdout.isTTY || options.everyMs === 0) {
    console.log(psTable(await snapshot(options, docker)));
    return;
  }
  let stopped = false;
  const stop = () => (stopped = true);
  process.once('SIGINT', stop);
  let previousLines = 0;
  while (!stopped) {
    const text = `${psTable(await snapshot(options, docker))}\n(refreshing every ${options.everyMs / 1000} s; Ctrl-C to stop)`;
    // Back to the top of the last table and clear below it: refreshed in place.
    process.stdout.write(`${previousLines > 0 ? `\x1b[${previousLines}A\r\x1b[J` : ''}${text}\n`);
    previousLines = text.split('\n').length;
    const until = Date.now() + options.everyMs;
    while (!stopped && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  process.off('SIGINT', stop);
}
