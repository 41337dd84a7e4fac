// The sweep file: one JSON document holding how a sweep was run (mode, host, settings, the
// baseline that draws the ideal line) and every point measured so far. It is rewritten whole
// after each point, to a temporary file renamed over the old one, so an interrupted sweep
// leaves a complete file and a rerun resumes where it stopped. `lab report` reads it.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../lab/errors.js';
import { runRecordSchema } from '../lab/run-record.js';

export const SWEEP_FILE_VERSION = 1;

// The schema is the one description of the file: the types below are inferred from it, so what
// `lab sweep` writes and what `lab sweep` (resuming) and `lab report` read cannot drift apart.
// A file is read only through it: `lab report` turns the file into a page meant to be shared, so
// a field of the wrong type (markup where a number belongs) is refused, never drawn.

const count = z.number().int().nonnegative();
const nonNegative = z.number().nonnegative();
const positive = z.number().positive();
/** As Date.toISOString() writes it. */
const timestamp = z.iso.datetime();

/** docker: the compose lab's containers; native-*: local `lab serve` processes. */
export const sweepModeSchema = z.enum(['docker', 'native-cgroup-v1', 'native-cgroup-v2', 'native-affinity']);

/** What each point measures; recorded in the sweep file, and a resumed sweep must match it. */
export const sweepSettingsSchema = z.object({
  /** The CPU-bound request of the throughput measurement: fib(cpuN). */
  cpuN: count,
  /** The hog beside which short requests collapse: fib(longN), the talk's perf1. */
  longN: count,
  /** The short request: fib(shortN), the talk's perf2. */
  shortN: count,
  /** Throughput connections per core of quota (rounded up), at least 2: enough to keep the quota busy. */
  connectionsPerCore: count.min(1),
  /** Run after a quota change before measuring, ms (the throughput load itself warms up). */
  warmupMs: nonNegative,
  throughputMs: nonNegative,
  /** Each of the two collapse phases (alone, beside one hog), ms. */
  collapseMs: nonNegative,
});

export const baselineSchema = z.object({
  variant: z.string(),
  n: count,
  /** Mean time of one fib(n) request, one connection, nothing else running: t(fib(n)). */
  secondsPerRequest: positive,
  /** 1 / t: the ideal line's slope, requests per second per core. */
  requestsPerSecondPerCore: positive,
  measuredAt: timestamp,
});

export const sweepPointSchema = z.object({
  variant: z.string().min(1),
  /** The quota in force, cores (per worker container for a variant with several). */
  cpus: positive,
  /** The quota asked for, when it differs (affinity rounds up to whole cores). */
  requestedCpus: positive.optional(),
  /** Containers (or processes) holding that quota: the ideal scales with it. */
  quotaHolders: count.min(1),
  /** fib_workers during the point (threads or processes alive, or the pool size). */
  workers: count.nullable(),
  /** fib(cpuN) answered per second, closed loop, enough connections to keep the quota busy. */
  throughput: nonNegative,
  /**
   * The throughput measurement in intervals of about a second: their length (ms) and the fib(cpuN)
   * answered in each, which `lab compare` resamples for a confidence interval. Absent from files
   * written before they were recorded.
   */
  throughputIntervals: z.array(z.object({ ms: nonNegative, ok: count })).optional(),
  /** cpus x quotaHolders / t(fib(cpuN)). */
  ideal: positive,
  throughputConnections: count,
  /** p50 of the fib(cpuN) requests, ms. */
  throughputP50Ms: nonNegative.nullable(),
  collapse: z
    .object({
      /** fib(shortN) per second, one connection, alone. */
      aloneRps: nonNegative,
      /** ... beside one fib(longN) hog connection. */
      besideRps: nonNegative,
      /** alone / beside; null when nothing was answered beside the hog (`infinite`). */
      ratio: nonNegative.nullable(),
      infinite: z.boolean(),
    })
    .refine((c) => (c.ratio === null) === c.infinite, {
      path: ['ratio'],
      message: 'expected a number when infinite is false, null when it is true',
    }),
  /** p99 of the short requests beside one hog, ms (the head-of-line blocking a client sees); null when none was answered. */
  shortP99Ms: nonNegative.nullable(),
  /** p99 of the short requests alone, ms. */
  shortP99AloneMs: nonNegative.nullable(),
  /** Over the throughput measurement, from the cgroup; null where unknown. */
  coresUsed: nonNegative.nullable(),
  throttledShare: nonNegative.nullable(),
  /**
   * CPU the generator itself used during the throughput measurement, cores: on a small host it
   * comes out of the same cores. Absent from files written before it was recorded.
   */
  generatorCores: nonNegative.optional(),
  /**
   * The whole machine's busy cores over the throughput measurement (/proc/stat of the host the
   * sweep runs on): minus the variant's and the generator's, what neighbours (and docker-proxy)
   * took. Absent from files written before it was recorded.
   */
  hostBusyCores: nonNegative.nullable().optional(),
  /** The generator was the bottleneck in some phase: the point describes the generator, not the server. */
  generatorBound: z.boolean(),
  generatorReasons: z.array(z.string()),
  /** Failed requests by outcome, all phases together. */
  errors: z.record(z.string(), count),
  measuredAt: timestamp,
});

export const sweepFileSchema = z.object({
  version: z.literal(SWEEP_FILE_VERSION),
  mode: sweepModeSchema,
  /** How the quota was imposed, in words (the cgroup path, the cores pinned). */
  isolation: z.string(),
  host: z.object({ cpus: count.min(1), node: z.string(), platform: z.string() }),
  settings: sweepSettingsSchema,
  baseline: baselineSchema.nullable(),
  startedAt: timestamp,
  updatedAt: timestamp,
  /** Seconds spent measuring, over every run of the sweep (resumes add up). */
  elapsedSeconds: nonNegative,
  points: z.array(sweepPointSchema),
  /**
   * Where and how the sweep was started (services/lab/run-record.ts; its scenario: the mode,
   * variants, quotas and settings). Each point holds its own quota and workers. Absent from files
   * written before it was recorded; a resumed sweep keeps its first record.
   */
  run: runRecordSchema.optional(),
});

export type SweepMode = z.infer<typeof sweepModeSchema>;
export type SweepSettings = z.infer<typeof sweepSettingsSchema>;
export type Baseline = z.infer<typeof baselineSchema>;
export type SweepPoint = z.infer<typeof sweepPointSchema>;
export type SweepFile = z.infer<typeof sweepFileSchema>;

/**
 * Reads and checks a sweep file; throws a ConfigError naming `label` and the first field that is
 * wrong, on one line (`points[3].throughput: expected a number, got "fast"`).
 */
export function readSweepFile(path: string, label = path): SweepFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(label, `cannot read it: ${oneLine((error as Error).message)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(label, `not JSON: ${oneLine((error as Error).message)}`);
  }
  const version = (data as { version?: unknown } | null)?.version;
  if (typeof data !== 'object' || data === null || Array.isArray(data) || version === undefined) {
    throw new ConfigError(label, `not a sweep file (no version field; lab sweep writes version ${SWEEP_FILE_VERSION})`);
  }
  if (version !== SWEEP_FILE_VERSION) {
    throw new ConfigError(
      label,
      `version: expected ${SWEEP_FILE_VERSION}, got ${received(version)} (written by another lab version?)`,
    );
  }
  const parsed = sweepFileSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    const [issue, ...more] = parsed.error.issues;
    throw new ConfigError(label, `${describeIssue(issue!)}${more.length > 0 ? ` (and ${more.length} more)` : ''}`);
  }
  return parsed.data;
}

/** `points[3].collapse.ratio: expected a number, got "fast"`: where, what was expected, what was there. */
export function describeIssue(issue: z.core.$ZodIssue): string {
  const where = fieldPath(issue.path) || 'the top level';
  const got = 'input' in issue ? `, got ${received(issue.input)}` : '';
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined && !('received' in issue)
        ? `${where}: missing (expected ${article(issue.expected)})`
        : `${where}: expected ${article(issue.expected)}${got}`;
    case 'invalid_value':
      return `${where}: expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}${got}`;
    case 'invalid_format':
      return `${where}: expected ${issue.format === 'datetime' ? 'a date and time as toISOString() writes it' : `a ${issue.format}`}${got}`;
    case 'too_small':
      return issue.origin === 'array'
        ? `${where}: expected at least ${issue.minimum} item(s)`
        : `${where}: expected a number ${issue.inclusive ? '>=' : '>'} ${issue.minimum}${got}`;
    case 'custom':
      return `${where}: ${issue.message}`;
    default:
      return `${where}: ${oneLine(issue.message)}${got}`;
  }
}

/** `points[3].errors["a b"]`: the path of a field as a reader would write it in JavaScript. */
function fieldPath(path: PropertyKey[]): string {
  return path
    .map((key, i) =>
      typeof key === 'number'
        ? `[${key}]`
        : typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)
          ? `${i === 0 ? '' : '.'}${key}`
          : `[${JSON.stringify(String(key))}]`,
    )
    .join('');
}

function article(expected: string): string {
  const noun = expected === 'int' ? 'integer' : expected;
  return `${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun}`;
}

/** What was found, quoted and cut short: a message must stay one line whatever the file holds. */
export function received(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

export function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 160 ? `${flat.slice(0, 157)}...` : flat;
}

export function existingSweep(path: string): SweepFile | null {
  return existsSync(path) ? readSweepFile(path, `--out ${path}`) : null;
}

export function writeSweepFile(path: string, sweep: SweepFile): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify({ ...sweep, updatedAt: new Date().toISOString() }, null, 2)}\n`);
  renameSync(temporary, path);
}

/** The settings that differ between a file and this run, in words; empty when it can be resumed. */
export function settingsDiffer(file: SweepFile, mode: SweepMode, settings: SweepSettings): string[] {
  const differences: string[] = [];
  if (file.mode !== mode) differences.push(`mode ${file.mode} (now ${mode})`);
  for (const key of Object.keys(settings) as Array<keyof SweepSettings>) {
    if (file.settings[key] !== settings[key]) differences.push(`${key} ${file.settings[key]} (now ${settings[key]})`);
  }
  return differences;
}
