// `lab compare A B --out compare.html`: two `lab load --json` runs (per target and probe: the
// request rate and the latency percentiles, B − A with a 95% bootstrap confidence interval of
// that difference) or two sweep files (per variant and quota: throughput, collapse, the short
// requests' p99), as a table on stdout and a self-contained page in the style of `lab report`.
// Both files are read through zod schemas first (one line naming the first wrong field, exit 2),
// since a compare page, like a report, is made to be shared.
//
// The confidence interval (docs/loadgen.md#comparing-two-runs-lab-compare): each run's JSON holds
// the run cut into intervals of about a second, each with its request count and its own HDR
// histogram. A bootstrap replicate draws as many intervals as the run has, with replacement,
// merges their histograms and reads the percentiles and the rate (requests / time) off the
// merge; A and B are resampled independently, and the 2.5th and 97.5th percentiles of the 2000
// replicates' differences B − A bound the interval. Resampling whole intervals rather than single
// requests (a block bootstrap) keeps what happens within a second together: latencies come in
// bursts (a long request, a GC pause) and are not independent, so resampling requests one by one
// would give intervals far too narrow. Where the interval holds 0 the row says "no difference".
// The draws come from a fixed seed: comparing the same files prints the same table.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import hdr from 'hdr-histogram-js';
import { z } from 'zod';
import { ConfigError } from '../lab/errors.js';
import { runRecordSchema, type RunRecord } from '../lab/run-record.js';
import { describeIssue, oneLine, readSweepFile, received, type SweepFile } from './file.js';
import { dataBlock, join, page, runRecordLine, trusted } from './html.js';

export interface CompareOptions {
  a: string;
  b: string;
  out: string;
}

export function resolveCompareOptions(raw: { a?: string; b?: string; out?: string }): CompareOptions {
  if (!raw.a || !raw.b) throw new ConfigError('<A> <B>', 'give two lab load --json files or two sweep files');
  const out = raw.out ?? 'compare.html';
  if (!out.endsWith('.html')) throw new ConfigError('--out', `expected a file name ending in .html, got ${JSON.stringify(out)}`);
  return { a: raw.a, b: raw.b, out };
}

// --- inputs -----------------------------------------------------------------------------------

const count = z.number().int().nonnegative();
const nonNegative = z.number().nonnegative();
/** A percentile in ms; null where nothing was answered (NaN in the run, null in its JSON). */
const latency = nonNegative.nullable();

const intervalSchema = z.object({ ms: nonNegative, requests: count, ok: count, latency: z.string().nullable() });

const resultSchema = z.object({
  target: z.string().min(1),
  scenario: z.string(),
  probe: z.string().min(1),
  requests: count,
  ok: count,
  requestsPerSecond: nonNegative,
  latencyMs: z.object({ p50: latency, p90: latency, p99: latency, p999: latency, max: latency, mean: latency }),
  /** Absent from runs written before they were recorded: no confidence interval then. */
  intervals: z.array(intervalSchema).optional(),
  intervalsComplete: z.boolean().optional(),
});

export const loadRunSchema = z.object({
  run: runRecordSchema.optional(),
  startedAt: z.iso.datetime(),
  scenario: z.object({ name: z.string(), description: z.string() }),
  results: z.array(resultSchema).min(1),
});

export type LoadRunFile = z.infer<typeof loadRunSchema>;
type Result = z.infer<typeof resultSchema>;

export type CompareInput = { kind: 'load'; path: string; run: LoadRunFile } | { kind: 'sweep'; path: string; sweep: SweepFile };

/** A `lab load --json` run or a sweep file, checked; a ConfigError naming `path` and the first wrong field otherwise. */
export function readCompareInput(path: string): CompareInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, `cannot read it: ${oneLine((error as Error).message)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(path, `not JSON: ${oneLine((error as Error).message)}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new ConfigError(path, `expected a lab load --json run or a sweep file, got ${received(data)}`);
  if ('points' in data || 'version' in data) return { kind: 'sweep', path, sweep: readSweepFile(path) };
  if ('spotlight' in data || 'search' in data)
    throw new ConfigError(
      path,
      `a ${'spotlight' in data ? '--spotlight' : '--search'} run: lab compare takes runs of a scenario and sweep files`,
    );
  if (!('results' in data))
    throw new ConfigError(path, 'neither a lab load --json run (no results) nor a sweep file (no version, no points)');
  const parsed = loadRunSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    const [issue, ...more] = parsed.error.issues;
    throw new ConfigError(path, `${describeIssue(issue!)}${more.length > 0 ? ` (and ${more.length} more)` : ''}`);
  }
  const seen = new Set<string>();
  parsed.data.results.forEach((r, i) => {
    const key = `${r.target}/${r.probe}`;
    if (seen.has(key))
      throw new ConfigError(
        path,
        `results[${i}]: target ${JSON.stringify(r.target)} and probe ${JSON.stringify(r.probe)} appear twice`,
      );
    seen.add(key);
  });
  return { kind: 'load', path, run: parsed.data };
}

// --- the bootstrap ----------------------------------------------------------------------------

export const REPLICATES = 2000;
/** Fewer intervals than this on either side: no interval (a resample of 3 seconds says little). */
export const MIN_INTERVALS = 4;
const SEED = 0x1ab5eed;
export const PERCENTILES = [
  { key: 'p50', label: 'p50', at: 50 },
  { key: 'p90', label: 'p90', at: 90 },
  { key: 'p99', label: 'p99', at: 99 },
  { key: 'p999', label: 'p99.9', at: 99.9 },
] as const;

/** mulberry32: a small seeded generator, so the same files give the same intervals. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A run's intervals, ready to resample: each as (value index, count) pairs over one sorted list of values (ms). */
interface Samples {
  ms: number[];
  requests: number[];
  values: number[];
  pairs: Array<{ index: Int32Array; count: Float64Array }>;
}

function samplesOf(result: Result, label: string, where: string): Samples | null {
  const intervals = result.intervals ?? [];
  if (intervals.length < MIN_INTERVALS) return null;
  const decoded = intervals.map((interval, i) => {
    const buckets = new Map<number, number>();
    if (interval.latency === null) return buckets;
    let histogram;
    try {
      histogram = hdr.decodeFromCompressedBase64(interval.latency, 32, false) as hdr.Histogram & {
        countsArrayLength: number;
        getCountAtIndex(index: number): number;
        valueFromIndex(index: number): number;
        highestEquivalentValue(value: number): number;
      };
    } catch {
      throw new ConfigError(label, `${where}.intervals[${i}].latency: not an HDR histogram (compressed, base64)`);
    }
    for (let k = 0; k < histogram.countsArrayLength; k++) {
      const n = histogram.getCountAtIndex(k);
      // The bucket's top, capped by the largest value seen: as the run's own percentiles are read.
      if (n > 0)
        buckets.set(Math.min(histogram.highestEquivalentValue(histogram.valueFromIndex(k)), histogram.maxValue) / 1000, n);
    }
    histogram.destroy();
    return buckets;
  });
  const values = [...new Set(decoded.flatMap((b) => [...b.keys()]))].sort((x, y) => x - y);
  const position = new Map(values.map((v, i) => [v, i]));
  return {
    ms: intervals.map((i) => i.ms),
    requests: intervals.map((i) => i.requests),
    values,
    pairs: decoded.map((b) => ({
      index: Int32Array.from([...b.keys()].map((v) => position.get(v)!)),
      count: Float64Array.from(b.values()),
    })),
  };
}

/** REPLICATES resamples of a run: the rate and each percentile of each (NaN where a resample holds no reply). */
function bootstrap(samples: Samples, random: () => number): { rate: Float64Array; percentiles: Float64Array[] } {
  const n = samples.ms.length;
  const rate = new Float64Array(REPLICATES);
  const percentiles = PERCENTILES.map(() => new Float64Array(REPLICATES));
  const merged = new Float64Array(samples.values.length);
  for (let r = 0; r < REPLICATES; r++) {
    merged.fill(0);
    let ms = 0;
    let requests = 0;
    let total = 0;
    for (let k = 0; k < n; k++) {
      const pick = Math.floor(random() * n);
      ms += samples.ms[pick]!;
      requests += samples.requests[pick]!;
      const { index, count } = samples.pairs[pick]!;
      for (let j = 0; j < index.length; j++) {
        merged[index[j]!]! += count[j]!;
        total += count[j]!;
      }
    }
    rate[r] = ms > 0 ? (requests / ms) * 1000 : NaN;
    PERCENTILES.forEach(({ at }, p) => {
      if (total === 0) return void (percentiles[p]![r] = NaN);
      const rank = Math.max(1, Math.ceil((at / 100) * total));
      let seen = 0;
      for (let u = 0; u < merged.length; u++) {
        seen += merged[u]!;
        if (seen >= rank) return void (percentiles[p]![r] = samples.values[u]!);
      }
    });
  }
  return { rate, percentiles };
}

/** REPLICATES resamples of a rate: intervals drawn with replacement, their counts over their time (per second). */
function rateReplicates(intervals: Array<{ ms: number; ok: number }>, random: () => number): Float64Array {
  const out = new Float64Array(REPLICATES);
  const n = intervals.length;
  for (let r = 0; r < REPLICATES; r++) {
    let ms = 0;
    let ok = 0;
    for (let k = 0; k < n; k++) {
      const pick = intervals[Math.floor(random() * n)]!;
      ms += pick.ms;
      ok += pick.ok;
    }
    out[r] = ms > 0 ? (ok / ms) * 1000 : NaN;
  }
  return out;
}

/** The 95% interval of B − A over paired replicates; null when too few replicates hold a value on both sides. */
function differenceInterval(a: Float64Array, b: Float64Array): [number, number] | null {
  const differences: number[] = [];
  for (let r = 0; r < a.length; r++) if (Number.isFinite(a[r]!) && Number.isFinite(b[r]!)) differences.push(b[r]! - a[r]!);
  if (differences.length < a.length * 0.9) return null;
  differences.sort((x, y) => x - y);
  const at = (q: number) => differences[Math.min(differences.length - 1, Math.max(0, Math.round(q * (differences.length - 1))))]!;
  return [at(0.025), at(0.975)];
}

// --- the comparison ---------------------------------------------------------------------------

export type Verdict = 'no difference' | 'B higher' | 'B lower' | 'no interval';

export interface CompareRow {
  /** target/probe (runs) or variant at quota (sweeps). */
  group: string;
  metric: string;
  unit: 'req/s' | 'ms' | 'x';
  /** null: not measured; Infinity: a collapse with nothing answered beside the hog. */
  a: number | null;
  b: number | null;
  /** B − A; null where either is missing or infinite. */
  difference: number | null;
  /** (B − A) / A; null where A is 0 or missing. */
  relative: number | null;
  /** 95% interval of B − A; null without one (see note). */
  interval: [number, number] | null;
  verdict: Verdict | null;
  note: string | null;
}

export interface Comparison {
  kind: 'load' | 'sweep';
  a: { path: string; label: string; run: RunRecord | undefined };
  b: { path: string; label: string; run: RunRecord | undefined };
  rows: CompareRow[];
  /** Groups only one side has. */
  onlyIn: { a: string[]; b: string[] };
  /** What the run records say differed besides the measurement (commit, Node, host ...). */
  recordDifferences: string[];
  /** Sweeps: the quotas, per variant, and their throughput on each side (the page's charts). */
  charts: Array<{ name: string; unit: string; x: number[]; xLabel: string; a: Array<number | null>; b: Array<number | null> }>;
}

function row(group: string, metric: string, unit: CompareRow['unit'], a: number | null, b: number | null): CompareRow {
  // A collapse may be infinite (nothing answered beside the hog): shown, but no difference taken.
  const difference = a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) ? null : b - a;
  return {
    group,
    metric,
    unit,
    a,
    b,
    difference,
    relative: difference === null || a === null || a === 0 ? null : difference / a,
    interval: null,
    verdict: null,
    note: null,
  };
}

function verdictOf(interval: [number, number]): Verdict {
  if (interval[0] <= 0 && interval[1] >= 0) return 'no difference';
  return interval[0] > 0 ? 'B higher' : 'B lower';
}

function compareRuns(a: CompareInput & { kind: 'load' }, b: CompareInput & { kind: 'load' }): Comparison {
  const random = seeded(SEED);
  const rows: CompareRow[] = [];
  const charts: Comparison['charts'] = [];
  const inB = new Map(b.run.results.map((r, i) => [`${r.target}/${r.probe}`, { r, i }]));
  const inA = new Set(a.run.results.map((r) => `${r.target}/${r.probe}`));
  a.run.results.forEach((ra, ia) => {
    const group = `${ra.target}/${ra.probe}`;
    const found = inB.get(group);
    if (!found) return;
    const { r: rb, i: ib } = found;
    const sa = samplesOf(ra, a.path, `results[${ia}]`);
    const sb = samplesOf(rb, b.path, `results[${ib}]`);
    const why =
      sa && sb
        ? null
        : `fewer than ${MIN_INTERVALS} one-second intervals in ${!sa ? 'A' : 'B'} (${(!sa ? ra : rb).intervals?.length ?? 'none: written before lab recorded them'}): run longer for an interval`;
    const boot = sa && sb ? { a: bootstrap(sa, random), b: bootstrap(sb, random) } : null;
    const metrics: Array<{
      metric: string;
      unit: CompareRow['unit'];
      a: number | null;
      b: number | null;
      pick: (x: ReturnType<typeof bootstrap>) => Float64Array;
    }> = [
      { metric: 'req/s', unit: 'req/s', a: ra.requestsPerSecond, b: rb.requestsPerSecond, pick: (x) => x.rate },
      ...PERCENTILES.map(({ key, label }, p) => ({
        metric: label,
        unit: 'ms' as const,
        a: ra.latencyMs[key],
        b: rb.latencyMs[key],
        pick: (x: ReturnType<typeof bootstrap>) => x.percentiles[p]!,
      })),
    ];
    for (const m of metrics) {
      const r = row(group, m.metric, m.unit, m.a, m.b);
      if (boot) {
        r.interval = differenceInterval(m.pick(boot.a), m.pick(boot.b));
        r.verdict = r.interval ? verdictOf(r.interval) : 'no interval';
        if (!r.interval) r.note = 'too few resamples held a reply on both sides';
      } else {
        r.verdict = 'no interval';
        r.note = why;
      }
      rows.push(r);
    }
    charts.push({
      name: group,
      unit: 'ms',
      xLabel: 'percentile',
      x: PERCENTILES.map((p) => p.at),
      a: PERCENTILES.map((p) => ra.latencyMs[p.key]),
      b: PERCENTILES.map((p) => rb.latencyMs[p.key]),
    });
  });
  return {
    kind: 'load',
    a: { path: a.path, label: `${a.run.scenario.name}, ${a.run.startedAt}`, run: a.run.run },
    b: { path: b.path, label: `${b.run.scenario.name}, ${b.run.startedAt}`, run: b.run.run },
    rows,
    onlyIn: {
      a: [...inA].filter((g) => !inB.has(g)),
      b: [...inB.keys()].filter((g) => !inA.has(g)),
    },
    recordDifferences: recordDifferences(a.run.run, b.run.run),
    charts,
  };
}

function compareSweeps(a: CompareInput & { kind: 'sweep' }, b: CompareInput & { kind: 'sweep' }): Comparison {
  const key = (p: { variant: string; cpus: number }) => `${p.variant} at ${p.cpus} core${p.cpus === 1 ? '' : 's'}`;
  const inB = new Map(b.sweep.points.map((p) => [key(p), p]));
  const inA = new Set(a.sweep.points.map(key));
  const rows: CompareRow[] = [];
  const note = 'collapse, p99 and workers are measured once per point: no interval';
  const random = seeded(SEED);
  for (const pa of a.sweep.points) {
    const pb = inB.get(key(pa));
    if (!pb) continue;
    const group = key(pa);
    const add = (metric: string, unit: CompareRow['unit'], va: number | null, vb: number | null) => {
      const r = row(group, metric, unit, va, vb);
      r.note = note;
      rows.push(r);
      return r;
    };
    const throughput = add('throughput', 'req/s', pa.throughput, pb.throughput);
    // Throughput has its intervals of about a second (files since they were recorded): a bootstrap interval as for runs.
    const [ia, ib] = [pa.throughputIntervals ?? [], pb.throughputIntervals ?? []];
    if (ia.length >= MIN_INTERVALS && ib.length >= MIN_INTERVALS) {
      throughput.interval = differenceInterval(rateReplicates(ia, random), rateReplicates(ib, random));
      throughput.verdict = throughput.interval ? verdictOf(throughput.interval) : 'no interval';
      throughput.note = null;
    } else {
      throughput.verdict = 'no interval';
      throughput.note = `throughput: an interval needs ${MIN_INTERVALS} or more one-second samples a side (a --throughput-duration of 5s or more, files since they were recorded)`;
    }
    add(
      'collapse',
      'x',
      pa.collapse.infinite ? Infinity : pa.collapse.ratio,
      pb.collapse.infinite ? Infinity : pb.collapse.ratio,
    );
    add('short p99 beside a hog', 'ms', pa.shortP99Ms, pb.shortP99Ms);
    add('workers', 'x', pa.workers, pb.workers);
  }
  const variants = [...new Set([...a.sweep.points, ...b.sweep.points].map((p) => p.variant))];
  const charts = variants.map((variant) => {
    const x = [...new Set([...a.sweep.points, ...b.sweep.points].filter((p) => p.variant === variant).map((p) => p.cpus))].sort(
      (m, n) => m - n,
    );
    const at = (sweep: SweepFile) =>
      x.map((c) => sweep.points.find((p) => p.variant === variant && p.cpus === c)?.throughput ?? null);
    return { name: variant, unit: 'req/s', xLabel: 'CPU quota (cores)', x, a: at(a.sweep), b: at(b.sweep) };
  });
  const label = (s: SweepFile) => `${s.mode}, ${s.points.length} points, ${s.startedAt}`;
  return {
    kind: 'sweep',
    a: { path: a.path, label: label(a.sweep), run: a.sweep.run },
    b: { path: b.path, label: label(b.sweep), run: b.sweep.run },
    rows,
    onlyIn: { a: [...inA].filter((g) => !inB.has(g)), b: [...inB.keys()].filter((g) => !inA.has(g)) },
    recordDifferences: [
      ...(a.sweep.mode === b.sweep.mode ? [] : [`mode: ${a.sweep.mode} -> ${b.sweep.mode}`]),
      ...Object.keys(a.sweep.settings)
        .filter((k) => a.sweep.settings[k as keyof SweepFile['settings']] !== b.sweep.settings[k as keyof SweepFile['settings']])
        .map(
          (k) =>
            `settings.${k}: ${a.sweep.settings[k as keyof SweepFile['settings']]} -> ${b.sweep.settings[k as keyof SweepFile['settings']]}`,
        ),
      ...recordDifferences(a.sweep.run, b.sweep.run),
    ],
    charts,
  };
}

/** The fields of two run records that differ, as `node: v20.19.0 -> v22.1.0` (the scenario and start time aside). */
export function recordDifferences(a: RunRecord | undefined, b: RunRecord | undefined): string[] {
  if (!a || !b) return a === b ? ['neither has a run record'] : [`only ${a ? 'A' : 'B'} has a run record`];
  const flat = (record: RunRecord): Map<string, string> => {
    const out = new Map<string, string>();
    const put = (key: string, value: string | number | boolean | null) => out.set(key, value === null ? '-' : String(value));
    for (const [k, v] of Object.entries(record.lab)) put(`lab.${k}`, v);
    put('node', record.node);
    for (const [k, v] of Object.entries(record.host)) put(`host.${k}`, v);
    for (const t of record.targets) {
      put(`${t.name}.quotaCores`, t.quotaCores);
      put(`${t.name}.workers`, t.workers);
    }
    return out;
  };
  const fa = flat(a);
  const fb = flat(b);
  const keys = [...new Set([...fa.keys(), ...fb.keys()])];
  return keys.filter((k) => fa.get(k) !== fb.get(k)).map((k) => `${k}: ${fa.get(k) ?? '-'} -> ${fb.get(k) ?? '-'}`);
}

export function compareInputs(a: CompareInput, b: CompareInput): Comparison {
  if (a.kind !== b.kind)
    throw new ConfigError(
      b.path,
      `is a ${b.kind === 'load' ? 'lab load run' : 'sweep file'} but ${a.path} is a ${a.kind === 'load' ? 'lab load run' : 'sweep file'}: compare two of a kind`,
    );
  const comparison = a.kind === 'load' ? compareRuns(a, b as typeof a) : compareSweeps(a, b as typeof a);
  if (comparison.rows.length === 0)
    throw new ConfigError(
      b.path,
      `nothing in common with ${a.path}: ${a.kind === 'load' ? 'no target and probe' : 'no variant at a quota'} measured in both`,
    );
  return comparison;
}

// --- output -----------------------------------------------------------------------------------

function value(v: number | null, unit: CompareRow['unit']): string {
  if (v === Infinity) return '∞';
  if (v === null || !Number.isFinite(v)) return '-';
  if (unit === 'ms') return Math.abs(v) < 1 ? `${(v * 1000).toFixed(0)}us` : `${v.toFixed(Math.abs(v) < 10 ? 2 : 1)}ms`;
  if (unit === 'req/s') return v.toFixed(Math.abs(v) < 10 ? 1 : 0);
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function signed(v: number | null, unit: CompareRow['unit']): string {
  if (v === null) return '-';
  return `${v >= 0 ? '+' : '-'}${value(Math.abs(v), unit)}`;
}

export function describeRow(r: CompareRow): string[] {
  return [
    r.group,
    r.metric,
    value(r.a, r.unit),
    value(r.b, r.unit),
    r.difference === null
      ? '-'
      : `${signed(r.difference, r.unit)}${r.relative === null ? '' : ` (${r.relative >= 0 ? '+' : ''}${(r.relative * 100).toFixed(1)}%)`}`,
    r.interval ? `${signed(r.interval[0], r.unit)} .. ${signed(r.interval[1], r.unit)}` : '-',
    r.verdict ?? '-',
  ];
}

const HEADER = ['', 'metric', 'A', 'B', 'B - A', '95% CI of B - A', 'verdict'];

/** Control characters from a file never reach the terminal. */
const clean = (text: string) => text.replace(/\p{Cc}/gu, '?');

export function compareTable(c: Comparison): string {
  const cells = [HEADER, ...c.rows.map(describeRow)].map((cols) => cols.map(clean));
  const widths = HEADER.map((_, i) => Math.max(...cells.map((cols) => cols[i]!.length)));
  const lines = cells.map((cols) =>
    cols
      .map((col, i) => (i < 2 ? col.padEnd(widths[i]!) : col.padStart(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
  const notes = [...new Set(c.rows.map((r) => r.note).filter((n): n is string => n !== null))];
  return [
    clean(`A: ${c.a.path} (${c.a.label})`),
    clean(`B: ${c.b.path} (${c.b.label})`),
    ...lines,
    ...notes.map((n) => clean(`note: ${n}`)),
    ...(c.onlyIn.a.length ? [clean(`only in A: ${c.onlyIn.a.join(', ')}`)] : []),
    ...(c.onlyIn.b.length ? [clean(`only in B: ${c.onlyIn.b.join(', ')}`)] : []),
    ...(c.recordDifferences.length
      ? [clean(`run records differ: ${c.recordDifferences.join('; ')}`)]
      : ['run records: nothing differs but the scenario and the time']),
  ].join('\n');
}

/** Reads and checks both files (exit 2 naming the first wrong field), prints the table, writes the page. */
export function runCompare(options: CompareOptions): void {
  const comparison = compareInputs(readCompareInput(options.a), readCompareInput(options.b));
  writeFileSync(options.out, renderCompare(comparison));
  console.log(`${compareTable(comparison)}\nwrote ${options.out}`);
}

const require = createRequire(import.meta.url);

export function renderCompare(c: Comparison): string {
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const rows = c.rows.map((r) => {
    const cells = describeRow(r);
    const verdict =
      r.verdict === 'no difference' ? 'same' : r.verdict === 'B higher' || r.verdict === 'B lower' ? 'differs' : 'none';
    return page`<tr class="${verdict}"${r.note ? page` title="${r.note}"` : ''}>${cells.map((cell) => page`<td>${cell}</td>`)}</tr>`;
  });
  const what =
    c.kind === 'load'
      ? page`Per target and probe: the request rate and the latency percentiles (from the intended send time in an open loop), B − A, and a 95% confidence interval of that difference from a block bootstrap: ${REPLICATES} resamples of each run's one-second intervals, their histograms merged. <b>no difference</b>: the interval holds 0.`
      : page`Per variant and quota: throughput of the CPU-bound request, the collapse (alone / beside a hog) and the short requests' p99 beside it, B − A. Throughput has a 95% interval of B − A where both sweeps recorded its one-second intervals (a block bootstrap, as for load runs; <b>no difference</b>: the interval holds 0); the other figures are measured once per point, so a difference there is a difference of two measurements.`;
  const list = (items: string[]) =>
    join(
      items.map((item) => page`<li>${item}</li>`),
      '\n',
    );
  return page`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Concurrency lab: compare</title>
<style>${trusted(uplotCss)}</style>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1240px; padding: 0 16px; color: #1d1d1f; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #555; } .note { color: #666; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px 20px; }
.chart h3 { font-size: 14px; margin: 8px 0 2px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; } th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
tr.same td:last-child { color: #2a7a2a; } tr.differs td:last-child { color: #b3261e; font-weight: 600; } tr.none td:last-child { color: #888; }
</style>
</head>
<body>
<h1>Concurrency lab: ${c.kind === 'load' ? 'two load runs' : 'two sweeps'} compared</h1>
<p class="meta"><b>A</b>: <code>${c.a.path}</code> (${c.a.label}). ${runRecordLine(c.a.run)}.<br>
<b>B</b>: <code>${c.b.path}</code> (${c.b.label}). ${runRecordLine(c.b.run)}.</p>
<p class="note">${what}</p>
${c.recordDifferences.length ? page`<h2>What differed besides the measurement</h2><ul class="note">${list(c.recordDifferences)}</ul>` : page`<p class="note">The run records differ in nothing but the scenario and the time.</p>`}

<h2>${c.kind === 'load' ? 'Latency percentiles, A and B' : 'Throughput against quota, A and B'}</h2>
<div class="grid" id="charts"></div>

<h2>Every figure</h2>
<table id="figures"><thead><tr>${HEADER.map((h) => page`<th>${h}</th>`)}</tr></thead>
<tbody>${join(rows, '\n')}</tbody></table>
${c.onlyIn.a.length ? page`<p class="note">Only in A: ${c.onlyIn.a.join(', ')}</p>` : ''}
${c.onlyIn.b.length ? page`<p class="note">Only in B: ${c.onlyIn.b.join(', ')}</p>` : ''}

<script>${trusted(uplotJs)}</script>
<script type="application/json" id="compare-data">${dataBlock({ kind: c.kind, charts: c.charts })}</script>
<script>
${trusted(PAGE_SCRIPT)}
</script>
</body>
</html>
`.text;
}

// Runs in the page: one chart per group, A and B; counts them in window.labCharts as the report does.
const PAGE_SCRIPT = `
const DATA = JSON.parse(document.getElementById('compare-data').textContent);
window.labCharts = { expected: 0, drawn: new Set() };
const grid = document.getElementById('charts');
DATA.charts.forEach((c, i) => {
  const box = document.createElement('div');
  box.className = 'chart';
  box.innerHTML = '<h3></h3>';
  box.querySelector('h3').textContent = c.name;
  grid.appendChild(box);
  const id = 'chart-' + i;
  window.labCharts.expected++;
  const points = (color) => ({ show: true, size: 8, fill: color, stroke: color });
  const load = DATA.kind === 'load';
  new uPlot({
    width: 390, height: 240, legend: { live: false },
    hooks: { draw: [() => window.labCharts.drawn.add(id)] },
    scales: { x: { time: false, distr: load ? 2 : 1 }, y: load ? { distr: 3 } : { range: (u, lo, hi) => [0, hi * 1.1] } },
    axes: [{ label: c.xLabel, values: (u, v) => v.map((x) => (load ? 'p' : '') + String(+(+x).toFixed(2))) }, { label: c.unit, size: 60 }],
    series: [{ label: c.xLabel }, { label: 'A', stroke: '#1f77b4', width: 2, spanGaps: true, points: points('#1f77b4') },
      { label: 'B', stroke: '#d62728', width: 2, dash: [6, 4], spanGaps: true, points: points('#d62728') }],
  }, [c.x, c.a.map((y) => (y == null || !(y > 0) ? null : y)), c.b.map((y) => (y == null || !(y > 0) ? null : y))], box);
});
`;
