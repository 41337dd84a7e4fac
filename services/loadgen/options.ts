// Configuration of `lab load`: one typed interface, one defaults object and flat guards that
// name the option, like `lab serve`'s (services/common/options.ts).

import { ConfigError } from '../common/errors.js';
import { int, optionLabel, optionalInt, str, type OptionName, type RawOptions } from '../common/options.js';
import { SCENARIOS, type ScenarioName } from './scenarios.js';

export interface Target {
  /** The name results and metrics are labelled with (the `variant` label). */
  name: string;
  host: string;
  port: number;
  /** Open a connection per request and close it after the reply (how the talk's clients take turns on a sync server). */
  connectPerRequest: boolean;
}

export interface LoadOptions {
  targets: Target[];
  scenarios: ScenarioName[];
  /** Connections per probe and target. */
  connections: number;
  /** Pause between a reply and the next request on a connection, ms (randomized by ±50%). */
  thinkMs: number;
  /** How long to run, ms; 0 runs until stopped (SIGTERM / SIGINT). */
  durationMs: number;
  /** A request without a reply after this long counts as `timeout`, ms. */
  timeoutMs: number;
  /** How often a live line is printed, ms. */
  reportEveryMs: number;
  /** Print the results as JSON on stdout (live lines still go to stderr). */
  json: boolean;
  /** Serve /metrics and /healthz here; null serves nothing. */
  metricsPort: number | null;
  metricsHost: string;
}

export const loadDefaults: Omit<LoadOptions, 'targets'> = {
  scenarios: ['perf2'],
  connections: 1,
  thinkMs: 0,
  durationMs: 10_000,
  timeoutMs: 30_000,
  reportEveryMs: 1000,
  json: false,
  metricsPort: null,
  metricsHost: '127.0.0.1',
};

export const loadOptionNames = {
  targets: { flag: '--target', env: 'LOAD_TARGETS', description: 'name=host:port[?connect=per-request]; repeat it, or separate with commas' },
  scenarios: { flag: '--scenario', env: 'LOAD_SCENARIO', description: `built-in scenarios to run together, comma-separated: ${Object.keys(SCENARIOS).join(', ')}` },
  connections: { flag: '--connections', env: 'LOAD_CONNECTIONS', description: 'connections per probe and target' },
  thinkMs: { flag: '--think', env: 'LOAD_THINK', description: 'pause between a reply and the next request, randomized by ±50% (e.g. 250ms)' },
  durationMs: { flag: '--duration', env: 'LOAD_DURATION', description: 'how long to run (e.g. 10s, 2m); 0 runs until stopped' },
  timeoutMs: { flag: '--timeout', env: 'LOAD_TIMEOUT', description: 'per-request timeout (e.g. 30s)' },
  reportEveryMs: { flag: '--report-every', env: 'LOAD_REPORT_EVERY', description: 'how often to print a live line' },
  json: { flag: '--json', description: 'print the results as JSON on stdout' },
  metricsPort: { flag: '--metrics-port', env: 'METRICS_PORT', description: 'serve /metrics and /healthz on this port (default: none)' },
  metricsHost: { flag: '--metrics-host', env: 'HOST', description: 'interface for --metrics-port' },
} satisfies Record<keyof LoadOptions, OptionName & { description: string }>;

export function resolveLoadOptions(raw: RawOptions<LoadOptions> & { targets?: unknown }): LoadOptions {
  const names = loadOptionNames;
  const pick = <K extends keyof typeof loadDefaults>(key: K) => (raw[key] === undefined ? loadDefaults[key] : raw[key]);
  const options: LoadOptions = {
    targets: parseTargets(raw.targets),
    scenarios: parseScenarios(pick('scenarios')),
    connections: int(names.connections, pick('connections'), 1, 10_000),
    thinkMs: duration(names.thinkMs, pick('thinkMs')),
    durationMs: duration(names.durationMs, pick('durationMs')),
    timeoutMs: duration(names.timeoutMs, pick('timeoutMs')),
    reportEveryMs: duration(names.reportEveryMs, pick('reportEveryMs')),
    json: pick('json') === true || pick('json') === 'true',
    metricsPort: optionalInt(names.metricsPort, pick('metricsPort'), 0, 65535),
    metricsHost: str(names.metricsHost, pick('metricsHost')),
  };
  if (options.timeoutMs <= 0) throw new ConfigError(optionLabel(names.timeoutMs), 'must be more than 0');
  if (options.reportEveryMs < 100) throw new ConfigError(optionLabel(names.reportEveryMs), 'must be at least 100ms');
  return options;
}

/** `name=host:port[?connect=per-request]`, given as a list or comma-separated strings. */
export function parseTargets(raw: unknown): Target[] {
  const label = optionLabel(loadOptionNames.targets);
  const items = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw])
    .flatMap((item) => String(item).split(','))
    .map((item) => item.trim())
    .filter((item) => item !== '');
  if (items.length === 0) throw new ConfigError(label, 'give at least one target, e.g. --target eventloop=127.0.0.1:25002');
  const targets = items.map((item) => {
    const match = /^([A-Za-z0-9_.-]+)=(\[[^\]]+\]|[^:?]+):(\d+)(?:\?(.*))?$/.exec(item);
    if (!match) throw new ConfigError(label, `expected name=host:port, got ${JSON.stringify(item)}`);
    const [, name, host, port, query] = match as unknown as [string, string, string, string, string | undefined];
    const target: Target = {
      name,
      host: host.replace(/^\[|\]$/g, ''),
      port: int({ flag: `${loadOptionNames.targets.flag} ${name}` }, port, 1, 65535),
      connectPerRequest: false,
    };
    for (const [key, value] of new URLSearchParams(query ?? '')) {
      if (key === 'connect' && (value === 'per-request' || value === 'persistent')) {
        target.connectPerRequest = value === 'per-request';
      } else {
        throw new ConfigError(label, `unknown target option ${JSON.stringify(`${key}=${value}`)} for ${name} (known: connect=per-request|persistent)`);
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

function parseScenarios(raw: unknown): ScenarioName[] {
  const label = optionLabel(loadOptionNames.scenarios);
  const names = (Array.isArray(raw) ? raw.map(String) : String(raw).split(','))
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (names.length === 0) throw new ConfigError(label, 'give at least one scenario');
  for (const name of names) {
    if (!(name in SCENARIOS)) {
      throw new ConfigError(label, `unknown scenario ${JSON.stringify(name)}: expected one of ${Object.keys(SCENARIOS).join(', ')}`);
    }
  }
  return [...new Set(names)] as ScenarioName[];
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration such as `250ms`, `10s`, `2m` or `1h` (a bare number is seconds), in ms. */
export function duration(name: OptionName, value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value) : null;
  if (!match) throw new ConfigError(optionLabel(name), `expected a duration such as 250ms, 10s or 2m, got ${JSON.stringify(value)}`);
  return Number(match[1]) * UNITS[match[2] ?? 's']!;
}
