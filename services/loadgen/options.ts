// Configuration of `lab load`: one typed interface, one defaults object and flat guards that
// name the option and its limit (limits.ts), like `lab serve`'s (services/lab/options.ts).

import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../lab/errors.js';
import type { Parallelism } from '../server/plugin.js';
import { FIB_MAX_N_LIMIT } from '../server/protocol.js';
import { bool, int, optionLabel, optionalInt, str, type OptionName } from '../lab/options.js';
import { VARIANT_NAMES } from '../variants/index.js';
import { LOAD_LIMITS, durationText, type Limit } from './limits.js';
import { BUILT_IN_SCENARIOS, DEFAULT_SCENARIO_DIR, loadScenario, parseDuration, type Scenario } from './scenario.js';

export interface Target {
  /** The name results and metrics are labelled with (the `variant` label). */
  name: string;
  host: string;
  port: number;
  /** Open a connection per request and close it after the reply (how the talk's clients take turns on a sync server). */
  connectPerRequest: boolean;
  /** Talk like the talk's own clients: the bare number without a newline, one request at a time, replies `N` or `fib: N`. */
  legacy: boolean;
  /** The spotlight: where the variant serves its own /metrics (`host:port`), to read its quota and workers from. */
  metrics?: string | null;
  /** The spotlight: the server takes one client at a time, so perf2 connects per request while the hog keeps its connection (sync). */
  turns?: boolean;
  /** The spotlight: how the variant computes in parallel, which decides its third phase (see spotlight.ts). */
  parallel?: Parallelism;
}

/** `single`: one thing computes (no third phase); `fixed`: a fixed set of workers; `per-connection`: a thread or process per connection. */
export type { Parallelism } from '../server/plugin.js';
export const PARALLELISM: readonly Parallelism[] = ['single', 'per-connection', 'fixed-workers'];

export interface SpotlightOptions {
  /** Names of the targets to put in the spotlight, in turn. */
  variants: string[];
  /** The measured length of each phase, ms. */
  phaseMs: number;
  /** Before each phase's measured stretch (connections open, threads started), ms. */
  warmupMs: number;
  /** Between two turns (the background load resumes against the variant that just had its turn), ms. */
  gapMs: number;
  /** Stop after this many full rotations; null runs until stopped (or --duration). */
  rotations: number | null;
  /** Each turn runs its phases this many times, alternating (alone, beside, alone, beside...): figures are the rounds' medians. */
  rounds: number;
  /** The hog's request: fib(longN) in a loop (the talk's perf1: 30). */
  longN: number;
}

/** Values that replace every probe's own (the continuous load of compose uses them). */
export interface Overrides {
  connections: number | null;
  thinkMs: number | null;
  rate: number | null;
}

export interface SearchOptions {
  /** A step passes while its p99 (from the intended send time) stays at or under this, ms. */
  maxP99Ms: number;
  /** ... and its share of failed requests at or under this. */
  maxErrorRate: number;
  /** How long each step runs, ms. */
  stepMs: number;
  /** Each step's rate is the previous one's times this. */
  factor: number;
}

export interface LoadOptions {
  targets: Target[];
  /** Variants to start locally (`lab serve`, free ports) and measure one at a time. */
  variants: string[];
  /** As given: a built-in name, names joined by commas, or a .yaml file. */
  scenarioSpec: string;
  scenario: Scenario;
  overrides: Overrides;
  /** How long to run, ms: null runs the scenario's own length; 0 runs until stopped (SIGTERM / SIGINT). */
  durationMs: number | null;
  /** Measured but left out of the results, ms. */
  warmupMs: number;
  /** A request without a reply after this long counts as `timeout`, ms. */
  timeoutMs: number;
  /** How often the live display refreshes (and the fairness and generator-bound gauges), ms. */
  reportEveryMs: number;
  output: 'table' | 'json' | 'csv';
  /** Serve /metrics, /healthz and the control API here; null serves nothing. */
  metricsPort: number | null;
  metricsHost: string;
  /** Set: find the maximum throughput instead of running the scenario once. */
  search: SearchOptions | null;
  /** Set: the talk's experiment on one variant at a time, in rotation (spotlight.ts). */
  spotlight: SpotlightOptions | null;
  /** Whether the scenario runs as a continuous load against every target (with --spotlight, only when --scenario is given). */
  background: boolean;
  /** Threads the send loops run in (0: the main thread; see senders.ts). */
  sendThreads: number;
  /** What the control API's routes that change something need (`Authorization: Bearer <token>`); null without --metrics-port. */
  controlToken: string | null;
  /** Whether lab load made the token up (none was given): it prints it, with the control URL. */
  controlTokenGenerated: boolean;
  /** The only directory the control API reads scenario files from. */
  scenarioDir: string;
}

export const loadDefaults = {
  scenarioSpec: 'perf2',
  durationMs: null,
  warmupMs: 0,
  timeoutMs: 30_000,
  reportEveryMs: 1000,
  metricsHost: '127.0.0.1',
  search: { maxP99Ms: 50, maxErrorRate: 0.01, stepMs: 5000, factor: 1.5 },
  // A turn: 3 rounds of 2 or 3 phases of 0.5 + 2.5 s, then a gap of 5 s (the background's): 23 or 32 s a variant.
  spotlight: { phaseMs: 2500, warmupMs: 500, gapMs: 5000, longN: 30, rounds: 3 },
  sendThreads: 1,
} as const;

export const loadOptionNames = {
  targets: {
    flag: '--target',
    env: 'LOAD_TARGETS',
    description:
      'name=host:port[?connect=per-request][&legacy][&metrics=host:port][&turns][&parallel=single|per-connection|fixed-workers]; repeat it, or separate with commas (the last three are for --spotlight: see below)',
  },
  variants: {
    flag: '--variants',
    description: `start these variants locally (${VARIANT_NAMES.join(', ')}) on free ports and measure them one at a time`,
  },
  scenarioSpec: {
    flag: '--scenario',
    env: 'LOAD_SCENARIO',
    description: `a built-in scenario (${BUILT_IN_SCENARIOS.join(', ')}), several joined by commas, or a .yaml file`,
  },
  connections: {
    flag: '--connections',
    env: 'LOAD_CONNECTIONS',
    description: `connections per probe and target, ${range(LOAD_LIMITS.connections)}, at most ${LOAD_LIMITS.runConnections.max} in the whole run (replaces the scenario's)`,
  },
  thinkMs: {
    flag: '--think',
    env: 'LOAD_THINK',
    description: `closed loops: pause between a reply and the next request, randomized by ±50% (e.g. 250ms; ${durationRange(LOAD_LIMITS.thinkMs)})`,
  },
  rate: {
    flag: '--rate',
    env: 'LOAD_RATE',
    description: `open loops: requests per second per probe and target, ${range(LOAD_LIMITS.rate)}; with --search, the first step`,
  },
  durationMs: {
    flag: '--duration',
    env: 'LOAD_DURATION',
    description: `how long to run (e.g. 10s, 2m; at most ${durationText(LOAD_LIMITS.durationMs.max)}); 0 runs until stopped (default: the scenario's length)`,
  },
  warmupMs: {
    flag: '--warmup',
    env: 'LOAD_WARMUP',
    description: `run this long before measuring (left out of the results; at most ${durationText(LOAD_LIMITS.warmupMs.max)})`,
  },
  timeoutMs: {
    flag: '--timeout',
    env: 'LOAD_TIMEOUT',
    description: `per-request timeout (default 30s; ${durationRange(LOAD_LIMITS.timeoutMs)})`,
  },
  reportEveryMs: {
    flag: '--report-every',
    env: 'LOAD_REPORT_EVERY',
    description: `how often the live display refreshes (default 1s; ${durationRange(LOAD_LIMITS.reportEveryMs)})`,
  },
  json: { flag: '--json', description: 'print the results as JSON on stdout (with HDR histograms)' },
  csv: { flag: '--csv', description: 'print the results as CSV on stdout' },
  metricsPort: {
    flag: '--metrics-port',
    env: 'METRICS_PORT',
    description: 'serve /metrics, /healthz and the control API on this port (default: none)',
  },
  metricsHost: { flag: '--metrics-host', env: 'HOST', description: 'interface for --metrics-port' },
  controlToken: {
    flag: '--control-token',
    env: 'LOADGEN_TOKEN',
    description: `what the control API's PUT and DELETE routes need, as Authorization: Bearer <token> (${LOAD_LIMITS.tokenLength.min} to ${LOAD_LIMITS.tokenLength.max} characters of A-Z a-z 0-9 . _ ~ + / = -; default: a random one, printed on stderr)`,
  },
  scenarioDir: {
    flag: '--scenario-dir',
    env: 'LOAD_SCENARIO_DIR',
    description: "the only directory PUT /scenario reads .yaml files from (default: the lab's scenarios/)",
  },
  search: {
    flag: '--search',
    description: 'find the maximum throughput: step an open-loop rate up until p99 or errors pass their bounds',
  },
  maxP99: {
    flag: '--max-p99',
    description: `with --search: the p99 a step may reach (default 50ms; at most ${durationText(LOAD_LIMITS.maxP99Ms.max)})`,
  },
  maxErrorRate: {
    flag: '--max-error-rate',
    description: 'with --search: the share of failed requests a step may reach (default 0.01)',
  },
  searchStep: {
    flag: '--search-step',
    description: `with --search: how long each step runs (default 5s; ${durationRange(LOAD_LIMITS.searchStepMs)})`,
  },
  spotlight: {
    flag: '--spotlight',
    env: 'LOAD_SPOTLIGHT',
    description:
      "the talk's experiment on one variant at a time, in rotation: perf2 alone, beside one perf1 hog, beside as many hogs as it has workers (yes|no; alone: yes)",
  },
  spotlightPhaseMs: {
    flag: '--spotlight-phase',
    env: 'SPOTLIGHT_PHASE',
    description: `with --spotlight: how long each phase is measured, in each round (default 2.5s; ${durationRange(LOAD_LIMITS.spotlightPhaseMs)})`,
  },
  spotlightWarmupMs: {
    flag: '--spotlight-warmup',
    env: 'SPOTLIGHT_WARMUP',
    description: `with --spotlight: each phase's warm-up before it is measured (default 500ms; at most ${durationText(LOAD_LIMITS.spotlightWarmupMs.max)})`,
  },
  spotlightGapMs: {
    flag: '--spotlight-gap',
    env: 'SPOTLIGHT_GAP',
    description: `with --spotlight: the pause between two turns, when the background load runs (default 5s; at most ${durationText(LOAD_LIMITS.spotlightGapMs.max)})`,
  },
  spotlightVariants: {
    flag: '--spotlight-variants',
    env: 'SPOTLIGHT_VARIANTS',
    description: 'with --spotlight: the targets to put in the spotlight, in this order (default: every target, in order)',
  },
  spotlightLongN: {
    flag: '--spotlight-long-n',
    env: 'SPOTLIGHT_LONG_N',
    description: "with --spotlight: the n of the hogs' fib(n) (default 30, the talk's perf1)",
  },
  rounds: {
    flag: '--spotlight-rounds',
    env: 'SPOTLIGHT_ROUNDS',
    description: `with --spotlight: each turn runs its phases this many times, alternating, and reports the median and the spread of the rounds (default 3; ${range(LOAD_LIMITS.rounds)})`,
  },
  sendThreads: {
    flag: '--send-threads',
    env: 'LOAD_SEND_THREADS',
    description: `threads that send requests, each with its share of the connections (0: the main thread, which also serves /metrics; default 1; ${range(LOAD_LIMITS.sendThreads)})`,
  },
  rotations: {
    flag: '--rotations',
    description: `with --spotlight: stop after this many full rotations, ${range(LOAD_LIMITS.rotations)} (default: run until stopped, or --duration)`,
  },
} satisfies Record<string, OptionName & { description: string }>;

export type LoadOptionKey = keyof typeof loadOptionNames;
export type RawLoadOptions = Partial<Record<LoadOptionKey, unknown>>;

export function resolveLoadOptions(raw: RawLoadOptions): LoadOptions {
  const names = loadOptionNames;
  const given = (key: LoadOptionKey) => raw[key] !== undefined && raw[key] !== '' && raw[key] !== false;
  const variants = parseVariants(raw.variants);
  const targets = variants.length > 0 ? [] : parseTargets(raw.targets);
  if (variants.length > 0 && given('targets'))
    throw new ConfigError(optionLabel(names.variants), 'give either --variants or --target (LOAD_TARGETS), not both');
  const scenarioSpec = given('scenarioSpec') ? str(names.scenarioSpec, raw.scenarioSpec) : loadDefaults.scenarioSpec;
  const overrides: Overrides = {
    connections: optionalInt(names.connections, raw.connections, LOAD_LIMITS.connections.min, LOAD_LIMITS.connections.max),
    thinkMs: given('thinkMs') ? duration(names.thinkMs, raw.thinkMs, LOAD_LIMITS.thinkMs) : null,
    rate: given('rate') ? rate(names.rate, raw.rate) : null,
  };
  const scenario = applyOverrides(loadScenario(scenarioSpec, optionLabel(names.scenarioSpec)), overrides);
  const ms = (key: 'durationMs' | 'warmupMs' | 'timeoutMs' | 'reportEveryMs', fallback: number) =>
    given(key) ? duration(names[key], raw[key], LOAD_LIMITS[key]) : fallback;
  const json = raw.json === true;
  const csv = raw.csv === true;
  if (json && csv) throw new ConfigError('--json', 'give either --json or --csv');
  const spotlightOn = bool(names.spotlight, raw.spotlight);
  const spotlight = spotlightOn ? resolveSpotlight(raw, variants.length > 0 ? variants : targets.map((t) => t.name)) : null;
  const options: LoadOptions = {
    targets,
    variants,
    scenarioSpec,
    scenario,
    overrides,
    durationMs: given('durationMs')
      ? duration(names.durationMs, raw.durationMs, LOAD_LIMITS.durationMs)
      : loadDefaults.durationMs,
    warmupMs: ms('warmupMs', loadDefaults.warmupMs),
    timeoutMs: ms('timeoutMs', loadDefaults.timeoutMs),
    reportEveryMs: ms('reportEveryMs', loadDefaults.reportEveryMs),
    output: json ? 'json' : csv ? 'csv' : 'table',
    metricsPort: optionalInt(names.metricsPort, raw.metricsPort, 0, 65535),
    metricsHost: given('metricsHost') ? str(names.metricsHost, raw.metricsHost) : loadDefaults.metricsHost,
    search: raw.search === true ? resolveSearch(raw) : null,
    spotlight,
    background: spotlight === null || given('scenarioSpec'),
    controlToken: given('controlToken') ? controlToken(raw.controlToken) : null,
    controlTokenGenerated: false,
    scenarioDir: given('scenarioDir') ? scenarioDir(raw.scenarioDir) : DEFAULT_SCENARIO_DIR,
    sendThreads:
      optionalInt(names.sendThreads, raw.sendThreads, LOAD_LIMITS.sendThreads.min, LOAD_LIMITS.sendThreads.max) ??
      loadDefaults.sendThreads,
  };
  if (options.metricsPort !== null && options.controlToken === null) {
    options.controlToken = randomBytes(24).toString('base64url');
    options.controlTokenGenerated = true;
  }
  // Every target at once; with --variants one at a time, unless the spotlight starts them all (the search: one probe).
  if (options.background && !options.search)
    checkRunConnections(
      options.scenario,
      Math.max(1, spotlight ? variants.length + targets.length : targets.length),
      optionLabel(names[given('connections') ? 'connections' : 'scenarioSpec']),
    );
  if (spotlight) {
    if (options.search) throw new ConfigError(optionLabel(names.spotlight), 'give either --spotlight or --search');
    // The spotlight runs until stopped unless told otherwise; a background scenario runs as long.
    options.durationMs ??= 0;
    if (options.durationMs === 0 && spotlight.rotations === null && options.output !== 'table')
      throw new ConfigError(
        optionLabel(names.spotlight),
        `--${options.output} needs a run that ends: give --rotations or --duration`,
      );
  } else {
    for (const key of [
      'spotlightPhaseMs',
      'spotlightWarmupMs',
      'spotlightGapMs',
      'spotlightVariants',
      'spotlightLongN',
      'rotations',
      'rounds',
    ] as const)
      if (given(key)) throw new ConfigError(optionLabel(names[key]), 'applies only with --spotlight');
  }
  if (options.metricsPort !== null && ((options.variants.length > 0 && !spotlight) || options.search)) {
    throw new ConfigError(
      optionLabel(names.metricsPort),
      'serves a run against --target (LOAD_TARGETS), not --variants or --search',
    );
  }
  if (options.durationMs === 0 && options.variants.length > 0 && !spotlight)
    throw new ConfigError(optionLabel(names.durationMs), '--variants needs a duration: each variant is measured in turn');
  if (options.durationMs === 0 && options.output !== 'table' && !spotlight)
    throw new ConfigError(optionLabel(names.durationMs), `--${options.output} needs a run that ends`);
  return options;
}

function resolveSearch(raw: RawLoadOptions): SearchOptions {
  const names = loadOptionNames;
  const defaults = loadDefaults.search;
  const maxErrorRate = raw.maxErrorRate === undefined ? defaults.maxErrorRate : Number(raw.maxErrorRate);
  if (!(maxErrorRate >= 0 && maxErrorRate < 1))
    throw new ConfigError(names.maxErrorRate.flag, `expected a share from 0 to 1, got ${JSON.stringify(raw.maxErrorRate)}`);
  return {
    maxP99Ms: raw.maxP99 === undefined ? defaults.maxP99Ms : duration(names.maxP99, raw.maxP99, LOAD_LIMITS.maxP99Ms),
    maxErrorRate,
    stepMs: raw.searchStep === undefined ? defaults.stepMs : duration(names.searchStep, raw.searchStep, LOAD_LIMITS.searchStepMs),
    factor: defaults.factor,
  };
}

function resolveSpotlight(raw: RawLoadOptions, available: string[]): SpotlightOptions {
  const names = loadOptionNames;
  const defaults = loadDefaults.spotlight;
  const given = (key: LoadOptionKey) => raw[key] !== undefined && raw[key] !== '';
  const ms = (key: 'spotlightPhaseMs' | 'spotlightWarmupMs' | 'spotlightGapMs', fallback: number) =>
    given(key) ? duration(names[key], raw[key], LOAD_LIMITS[key]) : fallback;
  const options: SpotlightOptions = {
    variants: available,
    phaseMs: ms('spotlightPhaseMs', defaults.phaseMs),
    warmupMs: ms('spotlightWarmupMs', defaults.warmupMs),
    gapMs: ms('spotlightGapMs', defaults.gapMs),
    rotations: optionalInt(names.rotations, raw.rotations, LOAD_LIMITS.rotations.min, LOAD_LIMITS.rotations.max),
    rounds: optionalInt(names.rounds, raw.rounds, LOAD_LIMITS.rounds.min, LOAD_LIMITS.rounds.max) ?? defaults.rounds,
    longN: optionalInt(names.spotlightLongN, raw.spotlightLongN, 1, FIB_MAX_N_LIMIT) ?? defaults.longN,
  };
  if (given('spotlightVariants')) {
    options.variants = [
      ...new Set(
        (typeof raw.spotlightVariants === 'string' ? raw.spotlightVariants : JSON.stringify(raw.spotlightVariants))
          .split(',')
          .map((name) => name.trim())
          .filter((name) => name !== ''),
      ),
    ];
    for (const name of options.variants)
      if (!available.includes(name))
        throw new ConfigError(
          optionLabel(names.spotlightVariants),
          `unknown target ${JSON.stringify(name)}: expected some of ${available.join(', ')}`,
        );
  }
  if (options.variants.length === 0) throw new ConfigError(optionLabel(names.spotlightVariants), 'give at least one target');
  return options;
}

/** A yes/no option: the bare flag is yes; from the environment, 1/true/yes/on or 0/false/no/off/empty. */

/** Every probe takes the overrides that apply to its model. */
export function applyOverrides(scenario: Scenario, overrides: Overrides): Scenario {
  return {
    ...scenario,
    probes: scenario.probes.map((probe) => ({
      ...probe,
      connections: overrides.connections ?? probe.connections,
      thinkMs: probe.model === 'closed' && overrides.thinkMs !== null ? overrides.thinkMs : probe.thinkMs,
      rate: probe.model === 'open' && overrides.rate !== null ? overrides.rate : probe.rate,
    })),
  };
}

/** `name=host:port[?connect=per-request][&legacy][&metrics=host:port][&turns][&parallel=...]`, as a list or comma-separated strings. */
export function parseTargets(raw: unknown): Target[] {
  const label = optionLabel(loadOptionNames.targets);
  const items = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw])
    .flatMap((item) => String(item).split(','))
    .map((item) => item.trim())
    .filter((item) => item !== '');
  if (items.length === 0)
    throw new ConfigError(label, 'give at least one target, e.g. --target eventloop=127.0.0.1:25002 (or --variants eventloop)');
  const targets = items.map((item) => {
    const match = /^([A-Za-z0-9_.-]+)=(\[[^\]]+\]|[^:?]+):(\d+)(?:\?(.*))?$/.exec(item);
    if (!match) throw new ConfigError(label, `expected name=host:port, got ${JSON.stringify(item)}`);
    const [, name, host, port, query] = match as unknown as [string, string, string, string, string | undefined];
    const target: Target = {
      name,
      host: host.replace(/^\[|\]$/g, ''),
      port: int({ flag: `${loadOptionNames.targets.flag} ${name}` }, port, 1, 65535),
      connectPerRequest: false,
      legacy: false,
    };
    let connectGiven = false;
    for (const [key, value] of new URLSearchParams(query ?? '')) {
      if (key === 'connect' && (value === 'per-request' || value === 'persistent')) {
        target.connectPerRequest = value === 'per-request';
        connectGiven = true;
      } else if (key === 'legacy' && (value === '' || value === '1' || value === 'true')) {
        target.legacy = true;
      } else if (key === 'metrics' && /^(\[[^\]]+\]|[^:]+):\d+$/.test(value)) {
        int({ flag: `${loadOptionNames.targets.flag} ${name} metrics` }, value.slice(value.lastIndexOf(':') + 1), 1, 65535);
        target.metrics = value;
      } else if (key === 'turns' && (value === '' || value === '1' || value === 'true')) {
        target.turns = true;
      } else if (key === 'parallel' && (PARALLELISM as readonly string[]).includes(value)) {
        target.parallel = value as Parallelism;
      } else {
        throw new ConfigError(
          label,
          `unknown target option ${JSON.stringify(value ? `${key}=${value}` : key)} for ${name} (known: connect=per-request|persistent, legacy, metrics=host:port, turns, parallel=${PARALLELISM.join('|')})`,
        );
      }
    }
    // A server that takes one client at a time: the background load takes turns too, unless told otherwise.
    if (target.turns && !connectGiven) target.connectPerRequest = true;
    return target;
  });
  const seen = new Set<string>();
  for (const { name } of targets) {
    if (seen.has(name)) throw new ConfigError(label, `target name ${JSON.stringify(name)} given twice`);
    seen.add(name);
  }
  return targets;
}

function parseVariants(raw: unknown): string[] {
  if (raw === undefined || raw === '') return [];
  const names = (typeof raw === 'string' ? raw : JSON.stringify(raw))
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  for (const name of names) {
    if (!VARIANT_NAMES.includes(name)) {
      throw new ConfigError(
        optionLabel(loadOptionNames.variants),
        `unknown variant ${JSON.stringify(name)}: expected some of ${VARIANT_NAMES.join(', ')}`,
      );
    }
  }
  return [...new Set(names)];
}

/**
 * A duration such as `250ms`, `10s`, `2m` or `1h` (a bare number is seconds; a typed number, ms),
 * in ms, within `limit` when one is given (the message names it).
 */
export function duration(name: OptionName, value: unknown, limit?: Limit): number {
  const ms = typeof value === 'number' ? value : parseDuration(value);
  if (ms === null || !Number.isFinite(ms) || ms < (limit?.min ?? 0) || ms > (limit?.max ?? Infinity)) {
    throw new ConfigError(
      optionLabel(name),
      `expected a duration ${limit ? `${durationRange(limit)} ` : ''}such as 250ms, 10s or 2m, got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

/** Requests per second of an open loop, within LOAD_LIMITS.rate. */
export function rate(name: OptionName, value: unknown): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  const { min, max } = LOAD_LIMITS.rate;
  if (!(n >= min && n <= max))
    throw new ConfigError(
      optionLabel(name),
      `expected requests per second ${range(LOAD_LIMITS.rate)}, got ${JSON.stringify(value)}`,
    );
  return n;
}

/**
 * Every connection a run opens (each probe's against each target) within
 * LOAD_LIMITS.runConnections, so its descriptors stay far below the open-files limit.
 */
export function checkRunConnections(scenario: Scenario, targets: number, option: string): void {
  const perTarget = scenario.probes.reduce((sum, probe) => sum + probe.connections, 0);
  const total = perTarget * targets;
  const { max } = LOAD_LIMITS.runConnections;
  if (total > max)
    throw new ConfigError(
      option,
      `the run would open ${total} connections (${perTarget} per target x ${targets} target${targets > 1 ? 's' : ''}): at most ${max} in one run`,
    );
}

const TOKEN = /^[A-Za-z0-9._~+/=-]+$/;

/** The control token: long enough not to be guessed, and safe in a header. */
export function controlToken(value: unknown): string {
  const { min, max } = LOAD_LIMITS.tokenLength;
  if (typeof value !== 'string' || value.length < min || value.length > max || !TOKEN.test(value))
    throw new ConfigError(
      optionLabel(loadOptionNames.controlToken),
      `expected ${min} to ${max} characters of A-Z a-z 0-9 . _ ~ + / = - (e.g. openssl rand -hex 24)`,
    );
  return value;
}

function scenarioDir(value: unknown): string {
  const dir = resolve(str(loadOptionNames.scenarioDir, value));
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new ConfigError(optionLabel(loadOptionNames.scenarioDir), `no such directory: ${JSON.stringify(dir)}`);
  return dir;
}

/** A limit as words: `from 1 to 256`. */
function range({ min, max }: Limit): string {
  return `from ${min} to ${max}`;
}

/** A duration limit as words: `from 100ms to 1h`. */
function durationRange({ min, max }: Limit): string {
  return `from ${durationText(min)} to ${durationText(max)}`;
}
