// Configuration of `lab load`: a spec per flag (services/lab/options.ts: flag, variable, default,
// guard naming the option and its limit from limits.ts), then the resolver, which turns the flags
// into one typed LoadOptions and holds every check that concerns several of them.

import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../lab/errors.js';
import type { Parallelism } from '../server/plugin.js';
import { FIB_MAX_N_LIMIT } from '../server/protocol.js';
import { durationOption, durationRange, durationText, type Limit } from '../lab/duration.js';
import {
  booleanOption,
  int,
  intOption,
  isGiven,
  optionLabel,
  optionalIntOption,
  resolveOptions,
  str,
  stringOption,
  switchOption,
  type OptionName,
  type OptionSpecs,
  type RawOptions,
} from '../lab/options.js';
import { VARIANT_NAMES } from '../variants/index.js';
import { LOAD_LIMITS } from './limits.js';
import { BUILT_IN_SCENARIOS, DEFAULT_SCENARIO_DIR, loadScenario, type Scenario } from './scenario.js';
import { parseThreshold, type Threshold } from './thresholds.js';

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
  /**
   * The server takes one client at a time (the row's takesTurns; `?turns` in --target): the
   * background connects per request, and in the spotlight perf2 does while the hog keeps its connection (sync).
   */
  takesTurns?: boolean;
  /** The spotlight: how the variant computes in parallel (the row's parallelism; `?parallel=` in --target), which decides its third phase. */
  parallelism?: Parallelism;
}

/** `single`: one thing computes (no third phase); `fixed-workers`: a fixed set of workers; `per-connection`: a thread or process per connection. */
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
  /** --threshold's, then the scenario's own: checked at the end of the run (exit 99 when one fails). */
  thresholds: Threshold[];
  /** Also write the JSON results (with the run record) to this file; null: none. */
  out: string | null;
}

/** What the flags and variables of `lab load` say, one by one, typed: the resolver builds LoadOptions from them. */
export interface LoadFlags {
  targets: Target[];
  variants: string[];
  scenarioSpec: string;
  connections: number | null;
  thinkMs: number | null;
  rate: number | null;
  durationMs: number | null;
  warmupMs: number;
  timeoutMs: number;
  reportEveryMs: number;
  json: boolean;
  csv: boolean;
  metricsPort: number | null;
  metricsHost: string;
  controlToken: string | null;
  scenarioDir: string;
  search: boolean;
  maxP99: number;
  maxErrorRate: number;
  searchStep: number;
  spotlight: boolean;
  spotlightPhaseMs: number;
  spotlightWarmupMs: number;
  spotlightGapMs: number;
  spotlightVariants: string[] | null;
  spotlightLongN: number;
  rounds: number;
  sendThreads: number;
  rotations: number | null;
  thresholds: Threshold[];
  out: string | null;
}

const L = LOAD_LIMITS;

export const loadOptions: OptionSpecs<LoadFlags> = {
  targets: {
    flag: '--target',
    env: 'LOAD_TARGETS',
    argument: 'name=host:port',
    repeatable: true,
    description:
      'name=host:port[?connect=per-request][&legacy][&metrics=host:port][&turns][&parallel=single|per-connection|fixed-workers]; repeat it, or separate with commas (the last three are for --spotlight: see below)',
    default: [],
    parse: (value) => parseTargets(value),
  },
  variants: {
    flag: '--variants',
    argument: 'names',
    description: `start these variants locally (${VARIANT_NAMES.join(', ')}) on free ports and measure them one at a time`,
    default: [],
    parse: (value) => parseVariants(value),
  },
  scenarioSpec: stringOption({
    flag: '--scenario',
    env: 'LOAD_SCENARIO',
    argument: 'name|file.yaml',
    description: `a built-in scenario (${BUILT_IN_SCENARIOS.join(', ')}), several joined by commas, or a .yaml file`,
    default: 'perf2',
  }),
  connections: optionalIntOption({
    flag: '--connections',
    env: 'LOAD_CONNECTIONS',
    description: `connections per probe and target, ${range(L.connections)}, at most ${L.runConnections.max} in the whole run (replaces the scenario's)`,
    ...L.connections,
  }),
  thinkMs: durationOption({
    flag: '--think',
    env: 'LOAD_THINK',
    description: `closed loops: pause between a reply and the next request, randomized by ±50% (e.g. 250ms; ${durationRange(L.thinkMs)})`,
    limit: L.thinkMs,
    default: null,
  }),
  rate: {
    flag: '--rate',
    env: 'LOAD_RATE',
    argument: 'req/s',
    description: `open loops: requests per second per probe and target, ${range(L.rate)}; with --search, the first step`,
    default: null,
    parse(value) {
      return rate(this, value);
    },
  },
  durationMs: durationOption({
    flag: '--duration',
    env: 'LOAD_DURATION',
    description: `how long to run (e.g. 10s, 2m; at most ${durationText(L.durationMs.max)}); 0 runs until stopped`,
    limit: L.durationMs,
    default: null,
    defaultText: "the scenario's length",
  }),
  warmupMs: durationOption({
    flag: '--warmup',
    env: 'LOAD_WARMUP',
    description: `run this long before measuring (left out of the results; at most ${durationText(L.warmupMs.max)})`,
    limit: L.warmupMs,
    default: 0,
  }),
  timeoutMs: durationOption({
    flag: '--timeout',
    env: 'LOAD_TIMEOUT',
    description: `per-request timeout, ${durationRange(L.timeoutMs)}`,
    limit: L.timeoutMs,
    default: 30_000,
  }),
  reportEveryMs: durationOption({
    flag: '--report-every',
    env: 'LOAD_REPORT_EVERY',
    description: `how often the live display refreshes, ${durationRange(L.reportEveryMs)}`,
    limit: L.reportEveryMs,
    default: 1000,
  }),
  json: switchOption({ flag: '--json', description: 'print the results as JSON on stdout (with HDR histograms)' }),
  csv: switchOption({ flag: '--csv', description: 'print the results as CSV on stdout' }),
  metricsPort: optionalIntOption({
    flag: '--metrics-port',
    env: 'METRICS_PORT',
    argument: 'port',
    description: 'serve /metrics, /healthz and the control API on this port',
    defaultText: 'none',
    min: 0,
    max: 65535,
  }),
  metricsHost: stringOption({
    flag: '--metrics-host',
    env: 'HOST',
    argument: 'address',
    description: 'interface for --metrics-port',
    default: '127.0.0.1',
  }),
  controlToken: {
    flag: '--control-token',
    env: 'LOADGEN_TOKEN',
    argument: 'token',
    description: `what the control API's PUT and DELETE routes need, as Authorization: Bearer <token> (${L.tokenLength.min} to ${L.tokenLength.max} characters of A-Z a-z 0-9 . _ ~ + / = -)`,
    default: null,
    defaultText: 'a random one, printed on stderr',
    parse: (value) => controlToken(value),
  },
  scenarioDir: {
    flag: '--scenario-dir',
    env: 'LOAD_SCENARIO_DIR',
    argument: 'dir',
    description: 'the only directory PUT /scenario reads .yaml files from',
    default: DEFAULT_SCENARIO_DIR,
    defaultText: "the lab's scenarios/",
    parse: (value) => scenarioDir(value),
  },
  search: switchOption({
    flag: '--search',
    description: 'find the maximum throughput: step an open-loop rate up until p99 or errors pass their bounds',
  }),
  maxP99: durationOption({
    flag: '--max-p99',
    description: `with --search: the p99 a step may reach (at most ${durationText(L.maxP99Ms.max)})`,
    limit: L.maxP99Ms,
    default: 50,
  }),
  maxErrorRate: {
    flag: '--max-error-rate',
    argument: 'share',
    description: 'with --search: the share of failed requests a step may reach',
    default: 0.01,
    parse(value) {
      const share = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
      if (!(share >= 0 && share < 1))
        throw new ConfigError(optionLabel(this), `expected a share from 0 to 1, got ${JSON.stringify(value)}`);
      return share;
    },
  },
  searchStep: durationOption({
    flag: '--search-step',
    description: `with --search: how long each step runs, ${durationRange(L.searchStepMs)}`,
    limit: L.searchStepMs,
    default: 5000,
  }),
  spotlight: {
    ...booleanOption({
      flag: '--spotlight',
      env: 'LOAD_SPOTLIGHT',
      description:
        "the talk's experiment on one variant at a time, in rotation: perf2 alone, beside one perf1 hog, beside as many hogs as it has workers (yes|no; alone: yes)",
      default: false,
    }),
    // Optional: `--spotlight` alone means yes; LOAD_SPOTLIGHT=0 means no.
    argument: '[yes|no]',
    defaultText: 'no',
  },
  spotlightPhaseMs: durationOption({
    flag: '--spotlight-phase',
    env: 'SPOTLIGHT_PHASE',
    description: `with --spotlight: how long each phase is measured, in each round, ${durationRange(L.spotlightPhaseMs)}`,
    limit: L.spotlightPhaseMs,
    default: 2500,
  }),
  spotlightWarmupMs: durationOption({
    flag: '--spotlight-warmup',
    env: 'SPOTLIGHT_WARMUP',
    description: `with --spotlight: each phase's warm-up before it is measured (at most ${durationText(L.spotlightWarmupMs.max)})`,
    limit: L.spotlightWarmupMs,
    default: 500,
  }),
  spotlightGapMs: durationOption({
    flag: '--spotlight-gap',
    env: 'SPOTLIGHT_GAP',
    description: `with --spotlight: the pause between two turns, when the background load runs (at most ${durationText(L.spotlightGapMs.max)})`,
    limit: L.spotlightGapMs,
    // A turn: 3 rounds of 2 or 3 phases of 0.5 + 2.5 s, then this gap (the background's): 23 or 32 s a variant.
    default: 5000,
  }),
  spotlightVariants: {
    flag: '--spotlight-variants',
    env: 'SPOTLIGHT_VARIANTS',
    argument: 'names',
    description: 'with --spotlight: the targets to put in the spotlight, in this order',
    default: null,
    defaultText: 'every target, in order',
    parse: (value) => [...new Set(list(value))],
  },
  spotlightLongN: intOption({
    flag: '--spotlight-long-n',
    env: 'SPOTLIGHT_LONG_N',
    description: "with --spotlight: the n of the hogs' fib(n) (the talk's perf1: 30)",
    default: 30,
    min: 1,
    max: FIB_MAX_N_LIMIT,
  }),
  rounds: intOption({
    flag: '--spotlight-rounds',
    env: 'SPOTLIGHT_ROUNDS',
    description: `with --spotlight: each turn runs its phases this many times, alternating, and reports the median and the spread of the rounds, ${range(L.rounds)}`,
    default: 3,
    ...L.rounds,
  }),
  sendThreads: intOption({
    flag: '--send-threads',
    env: 'LOAD_SEND_THREADS',
    description: `threads that send requests, each with its share of the connections (0: the main thread, which also serves /metrics; ${range(L.sendThreads)})`,
    default: 1,
    ...L.sendThreads,
  }),
  rotations: optionalIntOption({
    flag: '--rotations',
    description: `with --spotlight: stop after this many full rotations, ${range(L.rotations)}`,
    defaultText: 'run until stopped, or --duration',
    ...L.rotations,
  }),
  thresholds: {
    flag: '--threshold',
    argument: 'threshold',
    repeatable: true,
    description:
      'checked at the end of the run, each printed PASS or FAIL; one failure exits 99. metric: p50, p90, p99, p99.9, max, mean (a duration with its unit), rate (req/s), errors (a share 1% or a count); op: < <= > >=; e.g. p99<10ms, short:p99.9<=50ms, errors<1%, rate>=1000; repeat it',
    default: [],
    defaultText: 'none',
    parse(value) {
      const items = Array.isArray(value) ? value : [value];
      return items.map((item) => parseThreshold(item, this.flag));
    },
  },
  out: {
    flag: '--out',
    argument: 'file.json',
    description: 'also write the results as JSON (what --json prints, with the run record) to this file',
    default: null,
    defaultText: 'none',
    parse(value) {
      const file = resolve(str(this, value));
      if (!existsSync(dirname(file)) || !statSync(dirname(file)).isDirectory())
        throw new ConfigError(this.flag, `no such directory: ${JSON.stringify(dirname(file))}`);
      if (existsSync(file) && statSync(file).isDirectory())
        throw new ConfigError(this.flag, `${JSON.stringify(file)} is a directory`);
      return file;
    },
  },
};

export type LoadOptionKey = keyof LoadFlags;
export type RawLoadOptions = RawOptions<LoadFlags>;

const NO_TARGET = 'give at least one target, e.g. --target eventloop=127.0.0.1:25002 (or --variants eventloop)';

/** The flags one by one (resolveOptions), then what they mean together: the checks across options are here. */
export function resolveLoadOptions(raw: RawLoadOptions): LoadOptions {
  const names = loadOptions;
  const flags = resolveOptions(loadOptions, raw);
  const given = (key: LoadOptionKey) => isGiven(raw[key]);
  const { variants } = flags;
  if (variants.length > 0 && given('targets'))
    throw new ConfigError(optionLabel(names.variants), 'give either --variants or --target (LOAD_TARGETS), not both');
  const targets = variants.length > 0 ? [] : flags.targets;
  if (variants.length === 0 && targets.length === 0) throw new ConfigError(optionLabel(names.targets), NO_TARGET);
  const overrides: Overrides = { connections: flags.connections, thinkMs: flags.thinkMs, rate: flags.rate };
  const scenario = applyOverrides(loadScenario(flags.scenarioSpec, optionLabel(names.scenarioSpec)), overrides);
  if (flags.json && flags.csv) throw new ConfigError('--json', 'give either --json or --csv');
  const spotlight = flags.spotlight ? resolveSpotlight(flags, variants.length > 0 ? variants : targets.map((t) => t.name)) : null;
  const options: LoadOptions = {
    targets,
    variants,
    scenarioSpec: flags.scenarioSpec,
    scenario,
    overrides,
    durationMs: flags.durationMs,
    warmupMs: flags.warmupMs,
    timeoutMs: flags.timeoutMs,
    reportEveryMs: flags.reportEveryMs,
    output: flags.json ? 'json' : flags.csv ? 'csv' : 'table',
    metricsPort: flags.metricsPort,
    metricsHost: flags.metricsHost,
    search: flags.search
      ? { maxP99Ms: flags.maxP99, maxErrorRate: flags.maxErrorRate, stepMs: flags.searchStep, factor: SEARCH_FACTOR }
      : null,
    spotlight,
    background: spotlight === null || given('scenarioSpec'),
    controlToken: flags.controlToken,
    controlTokenGenerated: false,
    scenarioDir: flags.scenarioDir,
    sendThreads: flags.sendThreads,
    thresholds: [...flags.thresholds, ...(scenario.thresholds ?? [])],
    out: flags.out,
  };
  const probeNames = scenario.probes.map((p) => p.name);
  for (const threshold of flags.thresholds)
    if (threshold.probe !== null && !probeNames.includes(threshold.probe))
      throw new ConfigError(
        optionLabel(names.thresholds),
        `no probe ${JSON.stringify(threshold.probe)} in scenario ${scenario.name} (its probes: ${probeNames.join(', ')}) in ${JSON.stringify(threshold.text)}`,
      );
  for (const key of ['thresholds', 'out'] as const)
    if (given(key) && (flags.search || flags.spotlight))
      throw new ConfigError(optionLabel(names[key]), 'applies to a run of the scenario, not to --search or --spotlight');
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

/** Each rate step of --search is the previous one's times this. */
const SEARCH_FACTOR = 1.5;

function resolveSpotlight(flags: LoadFlags, available: string[]): SpotlightOptions {
  const label = optionLabel(loadOptions.spotlightVariants);
  const chosen = flags.spotlightVariants ?? available;
  for (const name of chosen)
    if (!available.includes(name))
      throw new ConfigError(label, `unknown target ${JSON.stringify(name)}: expected some of ${available.join(', ')}`);
  if (chosen.length === 0) throw new ConfigError(label, 'give at least one target');
  return {
    variants: chosen,
    phaseMs: flags.spotlightPhaseMs,
    warmupMs: flags.spotlightWarmupMs,
    gapMs: flags.spotlightGapMs,
    rotations: flags.rotations,
    rounds: flags.rounds,
    longN: flags.spotlightLongN,
  };
}

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
  const label = optionLabel(loadOptions.targets);
  const items = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw])
    .flatMap((item) => String(item).split(','))
    .map((item) => item.trim())
    .filter((item) => item !== '');
  if (items.length === 0) throw new ConfigError(label, NO_TARGET);
  const targets = items.map((item) => {
    const match = /^([A-Za-z0-9_.-]+)=(\[[^\]]+\]|[^:?]+):(\d+)(?:\?(.*))?$/.exec(item);
    if (!match) throw new ConfigError(label, `expected name=host:port, got ${JSON.stringify(item)}`);
    const [, name, host, port, query] = match as unknown as [string, string, string, string, string | undefined];
    const target: Target = {
      name,
      host: host.replace(/^\[|\]$/g, ''),
      port: int({ flag: `${loadOptions.targets.flag} ${name}` }, port, 1, 65535),
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
        int({ flag: `${loadOptions.targets.flag} ${name} metrics` }, value.slice(value.lastIndexOf(':') + 1), 1, 65535);
        target.metrics = value;
      } else if (key === 'turns' && (value === '' || value === '1' || value === 'true')) {
        target.takesTurns = true;
      } else if (key === 'parallel' && (PARALLELISM as readonly string[]).includes(value)) {
        target.parallelism = value as Parallelism;
      } else {
        throw new ConfigError(
          label,
          `unknown target option ${JSON.stringify(value ? `${key}=${value}` : key)} for ${name} (known: connect=per-request|persistent, legacy, metrics=host:port, turns, parallel=${PARALLELISM.join('|')})`,
        );
      }
    }
    // A server that takes one client at a time: the background load takes turns too, unless told otherwise.
    if (target.takesTurns && !connectGiven) target.connectPerRequest = true;
    return target;
  });
  const seen = new Set<string>();
  for (const { name } of targets) {
    if (seen.has(name)) throw new ConfigError(label, `target name ${JSON.stringify(name)} given twice`);
    seen.add(name);
  }
  return targets;
}

/** Names joined by commas (or a list). */
function list(raw: unknown): string[] {
  return (Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? raw.split(',') : [JSON.stringify(raw)])
    .map((name) => name.trim())
    .filter((name) => name !== '');
}

function parseVariants(raw: unknown): string[] {
  const names = list(raw);
  for (const name of names) {
    if (!VARIANT_NAMES.includes(name)) {
      throw new ConfigError(
        optionLabel(loadOptions.variants),
        `unknown variant ${JSON.stringify(name)}: expected some of ${VARIANT_NAMES.join(', ')}`,
      );
    }
  }
  return [...new Set(names)];
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
      optionLabel(loadOptions.controlToken),
      `expected ${min} to ${max} characters of A-Z a-z 0-9 . _ ~ + / = - (e.g. openssl rand -hex 24)`,
    );
  return value;
}

function scenarioDir(value: unknown): string {
  const dir = resolve(str(loadOptions.scenarioDir, value));
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new ConfigError(optionLabel(loadOptions.scenarioDir), `no such directory: ${JSON.stringify(dir)}`);
  return dir;
}

/** A limit as words: `from 1 to 256`. */
function range({ min, max }: Limit): string {
  return `from ${min} to ${max}`;
}
