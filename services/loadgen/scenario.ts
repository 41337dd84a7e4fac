// Scenarios: named mixes of probes. A probe is one kind of traffic on its own connections: which
// n (one value, or weights over several), which load model (closed loop: send, wait, think;
// open loop: a fixed or Poisson arrival schedule at a rate), how many connections, and when
// they join and leave the run. Built-in scenarios and YAML files go through the same schema
// (zod), so a file's mistakes are reported with the path of the field at fault, and both hold
// the same limits as the flags (limits.ts). The control API reads files only from the scenario
// directory (loadScenarioFrom).

import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../lab/errors.js';
import { FIB_MAX_N_LIMIT } from '../server/protocol.js';
import { durationText, parseDuration, type Limit } from '../lab/duration.js';
import { LOAD_LIMITS } from './limits.js';
import { parseThreshold, type Threshold } from './thresholds.js';

export interface RampRate {
  from: number;
  to: number;
  steps: number;
}

export interface Probe {
  /** The `probe` label. */
  name: string;
  /** n of every request, or weights over several values of n. */
  n: number | Array<{ n: number; weight: number }>;
  model: 'closed' | 'open';
  connections: number;
  /** Closed loop: pause between a reply and the next request (randomized by ±50%), ms. */
  thinkMs: number;
  /** Open loop: requests per second over all the probe's connections, or steps from..to. */
  rate: number | RampRate;
  /** Open loop: evenly spaced arrivals, or a Poisson process (exponential gaps). */
  arrival: 'fixed' | 'poisson';
  /** Open loop: requests in flight per connection (1 = wait for each reply, as wrk2). */
  depth: number;
  /** When the probe's first connection joins, ms into the scenario. */
  startMs: number;
  /** When its first connection leaves, ms into the scenario; null: at the end. */
  stopMs: number | null;
  /** Connection i joins i * stagger after the first and leaves i * stagger before it. */
  staggerMs: number;
  /** Closed loop: a connection per request or not, whatever the target says (the spotlight's hog keeps its connection to sync). */
  connectPerRequest?: boolean;
}

export interface Scenario {
  name: string;
  description: string;
  /** Its natural length: the default --duration, and the period its schedule repeats with when it runs until stopped. */
  durationMs: number;
  probes: Array<Probe & { scenario: string }>;
  /** Checked at the end of a run (thresholds.ts); absent or empty: none. */
  thresholds?: Threshold[];
}

/** A duration within `limit` (ms), as a string with its unit or a number of seconds. */
const durationIn = (limit: Limit) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === null || ms < limit.min || ms > limit.max) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration from ${durationText(limit.min)} to ${durationText(limit.max)} (such as 250ms, 10s or 2m), got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return ms;
  });
const duration = durationIn(LOAD_LIMITS.durationMs);

/** A number within `limit` (`above`: its min excluded; `integer`: a whole number), the message naming both ends. */
const numberIn = (limit: Limit, what: string, { above = false, integer = false } = {}) =>
  z.number().refine((n) => (!integer || Number.isInteger(n)) && (above ? n > limit.min : n >= limit.min) && n <= limit.max, {
    error: (issue) =>
      `expected ${integer ? 'a whole number of ' : ''}${what} ${above ? `above ${limit.min}, at most` : `from ${limit.min} to`} ${limit.max}, got ${JSON.stringify(issue.input)}`,
  });
const intIn = (limit: Limit, what: string) => numberIn(limit, what, { integer: true });
const rate = numberIn(LOAD_LIMITS.rate, 'requests per second');

const fibN = z.number().int().min(0).max(FIB_MAX_N_LIMIT);

const probeSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9_-]*$/, 'expected a lowercase name (letters, digits, - and _)'),
    n: z.union([
      fibN,
      z.record(z.string().regex(/^\d+$/, 'expected n as the key'), numberIn(LOAD_LIMITS.weight, 'a weight', { above: true })),
    ]),
    model: z.enum(['closed', 'open']).default('closed'),
    connections: intIn(LOAD_LIMITS.connections, 'connections').default(1),
    think: durationIn(LOAD_LIMITS.thinkMs).default(0),
    rate: z.union([rate, z.object({ from: rate, to: rate, steps: intIn(LOAD_LIMITS.rampSteps, 'steps') }).strict()]).optional(),
    arrival: z.enum(['fixed', 'poisson']).default('fixed'),
    depth: intIn(LOAD_LIMITS.depth, 'requests in flight per connection').default(1),
    start: duration.default(0),
    stop: duration.optional(),
    stagger: duration.default(0),
  })
  .strict()
  .superRefine((probe, ctx) => {
    if (probe.model === 'open' && probe.rate === undefined)
      ctx.addIssue({ code: 'custom', path: ['rate'], message: 'an open-loop probe needs a rate (requests per second)' });
    if (probe.model === 'closed' && probe.rate !== undefined)
      ctx.addIssue({ code: 'custom', path: ['rate'], message: 'a closed-loop probe has no rate (use think)' });
    if (probe.model === 'closed' && probe.depth !== 1)
      ctx.addIssue({ code: 'custom', path: ['depth'], message: 'pipelining depth is for open-loop probes' });
    if (probe.stop !== undefined && probe.stop <= probe.start)
      ctx.addIssue({ code: 'custom', path: ['stop'], message: 'must be after start' });
    if (typeof probe.n === 'object') {
      for (const key of Object.keys(probe.n)) {
        if (Number(key) > FIB_MAX_N_LIMIT)
          ctx.addIssue({ code: 'custom', path: ['n', key], message: `n must be at most ${FIB_MAX_N_LIMIT}` });
      }
    }
  });

const scenarioSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9_-]*$/, 'expected a lowercase name (letters, digits, - and _)'),
    description: z.string().default(''),
    duration: duration.default(10_000),
    probes: z.array(probeSchema).min(1, 'a scenario needs at least one probe'),
    /** k6-style pass/fail checks at the end of the run: `p99<10ms`, `short:errors<1%` (thresholds.ts). */
    thresholds: z.array(z.string()).default([]),
  })
  .strict()
  .superRefine((scenario, ctx) => {
    const connections = scenario.probes.reduce((sum, probe) => sum + probe.connections, 0);
    if (connections > LOAD_LIMITS.runConnections.max)
      ctx.addIssue({
        code: 'custom',
        path: ['probes'],
        message: `${connections} connections over all probes: at most ${LOAD_LIMITS.runConnections.max} in one run`,
      });
    const seen = new Set<string>();
    scenario.probes.forEach((probe, i) => {
      if (seen.has(probe.name))
        ctx.addIssue({
          code: 'custom',
          path: ['probes', i, 'name'],
          message: `probe ${JSON.stringify(probe.name)} is defined twice`,
        });
      seen.add(probe.name);
    });
  });

type ScenarioInput = z.input<typeof scenarioSchema>;

/** Validates a scenario written as YAML or JS data; throws ConfigError naming the field. */
export function toScenario(input: unknown, source: string): Scenario {
  const result = scenarioSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.reduce<string>(
      (text, key) => (typeof key === 'number' ? `${text}[${key}]` : text ? `${text}.${String(key)}` : String(key)),
      '',
    );
    throw new ConfigError(source, `${path || '(top level)'}: ${issue.message}`);
  }
  const { name, description, duration: durationMs, probes } = result.data;
  const names = probes.map((p) => p.name);
  const thresholds = result.data.thresholds.map((text, i) => {
    const where = `thresholds[${i}]`;
    let threshold: Threshold;
    try {
      threshold = parseThreshold(text, where);
    } catch (error) {
      throw new ConfigError(source, (error as Error).message.replace(/^invalid /, ''));
    }
    if (threshold.probe !== null && !names.includes(threshold.probe))
      throw new ConfigError(
        source,
        `${where}: no probe ${JSON.stringify(threshold.probe)} in the scenario (its probes: ${names.join(', ')})`,
      );
    return threshold;
  });
  return {
    name,
    description,
    durationMs,
    probes: probes.map((p) => ({
      scenario: name,
      name: p.name,
      n: typeof p.n === 'number' ? p.n : Object.entries(p.n).map(([n, weight]) => ({ n: Number(n), weight })),
      model: p.model,
      connections: p.connections,
      thinkMs: p.think,
      rate: p.rate ?? 0,
      arrival: p.arrival,
      depth: p.depth,
      startMs: p.start,
      stopMs: p.stop ?? null,
      staggerMs: p.stagger,
    })),
    thresholds,
  };
}

const BUILT_IN: Record<string, ScenarioInput> = {
  perf1: {
    name: 'perf1',
    description: "the talk's perf1: the latency of a long request, fib(30), in a loop",
    probes: [{ name: 'long', n: 30 }],
  },
  perf2: {
    name: 'perf2',
    description: "the talk's perf2: requests per second of trivial requests, fib(1), in a loop",
    probes: [{ name: 'short', n: 1 }],
  },
  beazley: {
    name: 'beazley',
    description: "the talk's demo: perf2 runs throughout while perf1 hogs join (at 5 s and 10 s) and leave (at 20 s and 25 s)",
    duration: '30s',
    probes: [
      { name: 'short', n: 1 },
      { name: 'long', n: 30, connections: 2, start: '5s', stop: '25s', stagger: '5s' },
    ],
  },
  mixed: {
    name: 'mixed',
    description: 'open loop at 100 requests/s (Poisson arrivals) over 4 connections: mostly fib(1), a few fib(20) and fib(30)',
    duration: '30s',
    probes: [{ name: 'mixed', model: 'open', rate: 100, arrival: 'poisson', connections: 4, n: { '1': 90, '20': 8, '30': 2 } }],
  },
  ramp: {
    name: 'ramp',
    description: 'open loop fib(20) stepping from 100 to 2000 requests/s in 10 steps over 8 connections: where latency breaks',
    duration: '60s',
    probes: [{ name: 'ramp', model: 'open', rate: { from: 100, to: 2000, steps: 10 }, connections: 8, n: 20 }],
  },
};

export const BUILT_IN_SCENARIOS = Object.keys(BUILT_IN);

/** Where the control API reads scenario files by default: the lab's own scenarios/ (dist/services/loadgen -> ../../../). */
export const DEFAULT_SCENARIO_DIR = fileURLToPath(new URL('../../../scenarios/', import.meta.url));

/** Whether a spec names a scenario file rather than built-ins. */
export function isScenarioFile(spec: string): boolean {
  return /\.ya?ml$/.test(spec);
}

/**
 * One scenario from a built-in name, a comma-separated list of built-ins (run together: their
 * probes merged), or a YAML file (a name ending in .yaml or .yml) at any path: what the user
 * running `lab load` gives on its command line.
 */
export function loadScenario(spec: string, option = '--scenario'): Scenario {
  if (isScenarioFile(spec)) {
    let text: string;
    try {
      text = readFileSync(spec, 'utf8');
    } catch (error) {
      throw new ConfigError(option, `cannot read ${spec}: ${(error as Error).message}`);
    }
    let data: unknown;
    try {
      data = parseYaml(text);
    } catch (error) {
      throw new ConfigError(option, `${spec} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
    }
    return toScenario(data, `scenario file ${spec}`);
  }
  const names = spec
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (names.length === 0) throw new ConfigError(option, 'give a scenario');
  const scenarios = names.map((name) => {
    const input = BUILT_IN[name];
    if (!input)
      throw new ConfigError(
        option,
        `unknown scenario ${JSON.stringify(name)}: expected one of ${BUILT_IN_SCENARIOS.join(', ')}, or a .yaml file`,
      );
    return toScenario(input, `built-in scenario ${name}`);
  });
  if (scenarios.length === 1) return scenarios[0]!;
  const probes = scenarios.flatMap((s) => s.probes);
  const names_ = probes.map((p) => p.name);
  const clash = names_.find((name, i) => names_.indexOf(name) !== i);
  if (clash) throw new ConfigError(option, `scenarios ${names.join(', ')} both have a probe named ${JSON.stringify(clash)}`);
  return {
    name: names.join('+'),
    description: scenarios.map((s) => s.description).join('; '),
    durationMs: Math.max(...scenarios.map((s) => s.durationMs)),
    probes,
    thresholds: scenarios.flatMap((s) => s.thresholds ?? []),
  };
}

/**
 * The file a spec names inside `dir` (a name relative to it, or a path into it), after every
 * symbolic link is followed; null when there is no such file there, or it lies outside `dir`.
 */
export function scenarioFileIn(dir: string, spec: string): string | null {
  try {
    const root = realpathSync(dir);
    const file = realpathSync(resolve(root, spec));
    const inside = relative(root, file);
    if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) return null;
    return statSync(file).isFile() ? file : null;
  } catch {
    return null;
  }
}

/** The scenario files of `dir`, by name (none when it cannot be read). */
export function scenarioFilesIn(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter(isScenarioFile)
      .filter((name) => scenarioFileIn(dir, name) !== null)
      .sort();
  } catch {
    return [];
  }
}

/**
 * A scenario for the control API: built-ins as loadScenario reads them, but files only from
 * `dir` (LOAD_SCENARIO_DIR). A file outside it, or none at all, gets one and the same answer,
 * which says nothing of what lies outside; only a file inside is read, so no error can show
 * anything of another. Returns the scenario and the spec that reads it again (the file's path).
 */
export function loadScenarioFrom(spec: string, dir: string, option = 'scenario'): { scenario: Scenario; source: string } {
  if (!isScenarioFile(spec)) return { scenario: loadScenario(spec, option), source: spec };
  const file = scenarioFileIn(dir, spec);
  if (file === null) {
    const files = scenarioFilesIn(dir);
    throw new ConfigError(
      option,
      `no scenario file ${JSON.stringify(spec)} in the scenario directory (LOAD_SCENARIO_DIR): expected a built-in (${BUILT_IN_SCENARIOS.join(', ')}) or one of its files (${files.length > 0 ? files.join(', ') : 'none'})`,
    );
  }
  return { scenario: loadScenario(file, option), source: file };
}
