// Configuration of `lab load`: one typed interface, one defaults object and flat guards that
// name the option, like `lab serve`'s (services/common/options.ts).

import { ConfigError } from '../common/errors.js';
import { int, optionLabel, optionalInt, str, type OptionName } from '../common/options.js';
import { VARIANT_NAMES } from '../variants.js';
import { BUILT_IN_SCENARIOS, loadScenario, parseDuration, type Scenario } from './scenario.js';

export interface Target {
  /** The name results and metrics are labelled with (the `variant` label). */
  name: string;
  host: string;
  port: number;
  /** Open a connection per request and close it after the reply (how the talk's clients take turns on a sync server). */
  connectPerRequest: boolean;
  /** Talk like the talk's own clients: the bare number without a newline, one request at a time, replies `N` or `fib: N`. */
  legacy: boolean;
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
}

export const loadDefaults = {
  scenarioSpec: 'perf2',
  durationMs: null,
  warmupMs: 0,
  timeoutMs: 30_000,
  reportEveryMs: 1000,
  metricsHost: '127.0.0.1',
  search: { maxP99Ms: 50, maxErrorRate: 0.01, stepMs: 5000, factor: 1.5 },
} as const;

export const loadOptionNames = {
  targets: {
    flag: '--target',
    env: 'LOAD_TARGETS',
    description: 'name=host:port[?connect=per-request][&legacy]; repeat it, or separate with commas',
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
    description: "connections per probe and target (replaces the scenario's)",
  },
  thinkMs: {
    flag: '--think',
    env: 'LOAD_THINK',
    description: 'closed loops: pause between a reply and the next request, randomized by ±50% (e.g. 250ms)',
  },
  rate: {
    flag: '--rate',
    env: 'LOAD_RATE',
    description: 'open loops: requests per second per probe and target; with --search, the first step',
  },
  durationMs: {
    flag: '--duration',
    env: 'LOAD_DURATION',
    description: "how long to run (e.g. 10s, 2m); 0 runs until stopped (default: the scenario's length)",
  },
  warmupMs: { flag: '--warmup', env: 'LOAD_WARMUP', description: 'run this long before measuring (left out of the results)' },
  timeoutMs: { flag: '--timeout', env: 'LOAD_TIMEOUT', description: 'per-request timeout (e.g. 30s)' },
  reportEveryMs: { flag: '--report-every', env: 'LOAD_REPORT_EVERY', description: 'how often the live display refreshes' },
  json: { flag: '--json', description: 'print the results as JSON on stdout (with HDR histograms)' },
  csv: { flag: '--csv', description: 'print the results as CSV on stdout' },
  metricsPort: {
    flag: '--metrics-port',
    env: 'METRICS_PORT',
    description: 'serve /metrics, /healthz and the control API on this port (default: none)',
  },
  metricsHost: { flag: '--metrics-host', env: 'HOST', description: 'interface for --metrics-port' },
  search: {
    flag: '--search',
    description: 'find the maximum throughput: step an open-loop rate up until p99 or errors pass their bounds',
  },
  maxP99: { flag: '--max-p99', description: 'with --search: the p99 a step may reach (default 50ms)' },
  maxErrorRate: {
    flag: '--max-error-rate',
    description: 'with --search: the share of failed requests a step may reach (default 0.01)',
  },
  searchStep: { flag: '--search-step', description: 'with --search: how long each step runs (default 5s)' },
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
    connections: optionalInt(names.connections, raw.connections, 1, 10_000),
    thinkMs: given('thinkMs') ? duration(names.thinkMs, raw.thinkMs) : null,
    rate: given('rate') ? positive(names.rate, raw.rate) : null,
  };
  const scenario = applyOverrides(loadScenario(scenarioSpec, optionLabel(names.scenarioSpec)), overrides);
  const json = raw.json === true;
  const csv = raw.csv === true;
  if (json && csv) throw new ConfigError('--json', 'give either --json or --csv');
  const options: LoadOptions = {
    targets,
    variants,
    scenarioSpec,
    scenario,
    overrides,
    durationMs: given('durationMs') ? duration(names.durationMs, raw.durationMs) : loadDefaults.durationMs,
    warmupMs: given('warmupMs') ? duration(names.warmupMs, raw.warmupMs) : loadDefaults.warmupMs,
    timeoutMs: given('timeoutMs') ? duration(names.timeoutMs, raw.timeoutMs) : loadDefaults.timeoutMs,
    reportEveryMs: given('reportEveryMs') ? duration(names.reportEveryMs, raw.reportEveryMs) : loadDefaults.reportEveryMs,
    output: json ? 'json' : csv ? 'csv' : 'table',
    metricsPort: optionalInt(names.metricsPort, raw.metricsPort, 0, 65535),
    metricsHost: given('metricsHost') ? str(names.metricsHost, raw.metricsHost) : loadDefaults.metricsHost,
    search: raw.search === true ? resolveSearch(raw) : null,
  };
  if (options.timeoutMs <= 0) throw new ConfigError(optionLabel(names.timeoutMs), 'must be more than 0');
  if (options.reportEveryMs < 100) throw new ConfigError(optionLabel(names.reportEveryMs), 'must be at least 100ms');
  if (options.metricsPort !== null && (options.variants.length > 0 || options.search)) {
    throw new ConfigError(
      optionLabel(names.metricsPort),
      'serves a run against --target (LOAD_TARGETS), not --variants or --search',
    );
  }
  if (options.durationMs === 0 && options.variants.length > 0)
    throw new ConfigError(optionLabel(names.durationMs), '--variants needs a duration: each variant is measured in turn');
  if (options.durationMs === 0 && options.output !== 'table')
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
    maxP99Ms: raw.maxP99 === undefined ? defaults.maxP99Ms : duration(names.maxP99, raw.maxP99),
    maxErrorRate,
    stepMs: raw.searchStep === undefined ? defaults.stepMs : duration(names.searchStep, raw.searchStep),
    factor: defaults.factor,
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

/** `name=host:port[?connect=per-request][&legacy]`, given as a list or comma-separated strings. */
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
    for (const [key, value] of new URLSearchParams(query ?? '')) {
      if (key === 'connect' && (value === 'per-request' || value === 'persistent')) {
        target.connectPerRequest = value === 'per-request';
      } else if (key === 'legacy' && (value === '' || value === '1' || value === 'true')) {
        target.legacy = true;
      } else {
        throw new ConfigError(
          label,
          `unknown target option ${JSON.stringify(value ? `${key}=${value}` : key)} for ${name} (known: connect=per-request|persistent, legacy)`,
        );
      }
    }
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

/** A duration such as `250ms`, `10s`, `2m` or `1h` (a bare number is seconds), in ms. */
export function duration(name: OptionName, value: unknown): number {
  const ms = typeof value === 'number' ? value : parseDuration(value);
  if (ms === null || !Number.isFinite(ms) || ms < 0) {
    throw new ConfigError(optionLabel(name), `expected a duration such as 250ms, 10s or 2m, got ${JSON.stringify(value)}`);
  }
  return ms;
}

function positive(name: OptionName, value: unknown): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new ConfigError(optionLabel(name), `expected a positive number, got ${JSON.stringify(value)}`);
  return n;
}
