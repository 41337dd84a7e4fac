// Configuration of `lab serve`: one typed interface for the options every variant shares, one
// spec per option (flag, environment variable, default, guard), and the same machinery for the
// options a variant adds for itself (its slice, declared in its row of the variant table). The
// CLI collects raw strings (commander reads each flag, or its environment variable); tests and
// child processes pass typed values. Either way everything is validated here, once, at start,
// and every guard's message names the option as the user wrote it (flag and variable).

import { ConfigError } from './errors.js';
import { FIB_MAX_N_LIMIT } from './protocol.js';

export interface OptionName {
  flag: string;
  env?: string;
}

/** One option: how it is spelled, its default, and its guard. */
export interface OptionSpec<T> extends OptionName {
  env: string;
  description: string;
  /** The argument's name in --help: `<n>`, `<ms>`, `<address>`. */
  argument: string;
  default: T;
  /** How the default reads in --help, where the value alone would not say it (null: "the CPU quota"). */
  defaultText?: string;
  /** Validates a raw value (a string from the command line or the environment, or a typed value). */
  parse(value: unknown): T;
}

export type OptionSpecs<O> = { readonly [K in keyof O]: OptionSpec<O[K]> };

export type RawOptions<T> = { [K in keyof T]?: T[K] | string | undefined };

/** Merges raw values over each option's default and validates every one; throws ConfigError. */
export function resolveOptions<O>(specs: OptionSpecs<O>, raw: RawOptions<O> = {}): O {
  const resolved = {} as O;
  for (const key of Object.keys(specs) as Array<keyof O>) {
    const spec = specs[key];
    // An empty value counts as unset (`MAX_QUEUE=` in .env, an empty variable from compose).
    resolved[key] = raw[key] === undefined || raw[key] === '' ? spec.default : spec.parse(raw[key]);
  }
  return resolved;
}

/** The defaults of a set of options, as one object. */
export function defaultsOf<O>(specs: OptionSpecs<O>): O {
  return resolveOptions(specs, {});
}

/** What every variant shares. A variant's own options come from its row of the variant table. */
export interface ServeOptions {
  /** Interface for both listeners. */
  host: string;
  /** The fib protocol's TCP port; 0 picks a free one. */
  port: number;
  /** HTTP port for /metrics and /healthz; 0 picks a free one. */
  metricsPort: number;
  /** The largest n served; larger ones get `out_of_range`. */
  fibMaxN: number;
  /** Open connections allowed; null takes the variant's own cap (what its model can afford). */
  maxConnections: number | null;
  /** How long shutdown waits for in-flight requests before answering them `unavailable`. */
  drainTimeoutMs: number;
  /** Requests of one connection in flight at once; further pipelined lines wait unread. */
  maxPipeline: number;
  /** A connection with nothing in flight and nothing received for this long is closed; null takes the variant's own. */
  idleTimeoutMs: number | null;
  /** A request line must be finished within this long of its first byte, or `line_timeout` closes the connection. */
  lineTimeoutMs: number;
}

type Bounds = { min: number; max: number };
type Spelling = { flag: string; env: string; description: string; argument?: string };

export function intOption(spell: Spelling & Bounds & { default: number }): OptionSpec<number> {
  return { argument: 'n', ...spell, parse: (value) => int(spell, value, spell.min, spell.max) };
}

/** An integer, or null when unset (an empty string counts as unset, as `POOL_SIZE=` in .env). */
export function optionalIntOption(spell: Spelling & Bounds & { defaultText: string }): OptionSpec<number | null> {
  return { argument: 'n', ...spell, default: null, parse: (value) => optionalInt(spell, value, spell.min, spell.max) };
}

export function stringOption(spell: Spelling & { default: string }): OptionSpec<string> {
  return { argument: 'text', ...spell, parse: (value) => str(spell, value) };
}

/** On with 1/true/yes/on, off with 0/false/no/off or empty. */
export function booleanOption(spell: Spelling & { default: boolean }): OptionSpec<boolean> {
  return { argument: '0|1', ...spell, parse: (value) => bool(spell, value) };
}

export const serveOptions: OptionSpecs<ServeOptions> = {
  host: stringOption({
    flag: '--host',
    env: 'HOST',
    argument: 'address',
    description: 'interface to listen on',
    default: '127.0.0.1',
  }),
  port: intOption({
    flag: '--port',
    env: 'PORT',
    description: 'fib protocol TCP port (0 picks a free port)',
    default: 25000,
    min: 0,
    max: 65535,
  }),
  metricsPort: intOption({
    flag: '--metrics-port',
    env: 'METRICS_PORT',
    description: 'HTTP port for /metrics and /healthz',
    default: 9464,
    min: 0,
    max: 65535,
  }),
  fibMaxN: intOption({
    flag: '--fib-max-n',
    env: 'FIB_MAX_N',
    description: `largest n served (at most ${FIB_MAX_N_LIMIT})`,
    default: 40,
    min: 0,
    max: FIB_MAX_N_LIMIT,
  }),
  maxConnections: optionalIntOption({
    flag: '--max-connections',
    env: 'MAX_CONNECTIONS',
    description: 'connection cap; over it a client gets `overloaded` and is closed',
    defaultText: "the variant's own (lab variants --json)",
    min: 1,
    max: 1_000_000,
  }),
  drainTimeoutMs: intOption({
    flag: '--drain-timeout-ms',
    env: 'DRAIN_TIMEOUT_MS',
    argument: 'ms',
    description: 'on SIGTERM, how long in-flight requests may take before they are answered `unavailable`',
    default: 10_000,
    min: 0,
    max: 3_600_000,
  }),
  maxPipeline: intOption({
    flag: '--max-pipeline',
    env: 'MAX_PIPELINE',
    description: 'requests of one connection in flight at once; further lines wait unread',
    default: 64,
    min: 1,
    max: 100_000,
  }),
  idleTimeoutMs: optionalIntOption({
    flag: '--idle-timeout-ms',
    env: 'IDLE_TIMEOUT_MS',
    argument: 'ms',
    description: 'close a connection with nothing in flight and nothing received for this long',
    defaultText: "the variant's own (5 minutes; sync 30 s)",
    min: 1,
    max: 86_400_000,
  }),
  lineTimeoutMs: intOption({
    flag: '--line-timeout-ms',
    env: 'LINE_TIMEOUT_MS',
    argument: 'ms',
    description: 'a request line must be finished within this long of its first byte, or `line_timeout` closes the connection',
    // Generous: a line is at most 66 bytes; a client that takes longer trickles it to hold a slot.
    default: 30_000,
    min: 1,
    max: 86_400_000,
  }),
};

export const serveDefaults: ServeOptions = defaultsOf(serveOptions);

/** Validates the options every variant shares; throws ConfigError naming the option. */
export function resolveServeOptions(raw: RawOptions<ServeOptions> = {}): ServeOptions {
  return resolveOptions(serveOptions, raw);
}

/** How an option appears in messages: `--port (PORT)`. */
export function optionLabel(name: OptionName): string {
  return name.env ? `${name.flag} (${name.env})` : name.flag;
}

export function int(name: OptionName, value: unknown, min: number, max: number): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(optionLabel(name), `expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** An integer, or null when unset (an empty string counts as unset, as `POOL_SIZE=` in .env). */
export function optionalInt(name: OptionName, value: unknown, min: number, max: number): number | null {
  if (value === null || value === undefined || value === '') return null;
  return int(name, value, min, max);
}

export function str(name: OptionName, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError(optionLabel(name), `expected a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value.trim();
}

/** On with 1/true/yes/on, off with 0/false/no/off, empty or absent. */
export function bool(name: OptionName, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === undefined || value === null) return false;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : value;
  if (text === '1' || text === 'true' || text === 'yes' || text === 'on') return true;
  if (text === '0' || text === 'false' || text === 'no' || text === 'off' || text === '') return false;
  throw new ConfigError(optionLabel(name), `expected 1 or 0 (true or false), got ${JSON.stringify(value)}`);
}
