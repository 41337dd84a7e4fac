// Configuration of `lab cpus` and `lab ps`, on the lab's one option machinery
// (services/lab/options.ts): a spec per flag, then each command's resolver with the checks
// across options (and `lab cpus`'s two arguments). Apart from cpus.ts and ps.ts so that the CLI
// can declare the flags without loading dockerode.

import { ConfigError } from '../lab/errors.js';
import {
  optionLabel,
  resolveOptions,
  str,
  switchOption,
  type OptionSpec,
  type OptionSpecs,
  type RawOptions,
} from '../lab/options.js';
import { publishedUrl } from '../lab/ports.js';

/** A number of seconds (a flag's argument) as ms; `accept` says which (the message says the same in words). */
function secondsOption(spell: {
  flag: string;
  description: string;
  defaultMs: number;
  defaultText: string;
  accept: (ms: number) => boolean;
  expected: string;
}): OptionSpec<number> {
  return {
    flag: spell.flag,
    argument: 'seconds',
    description: spell.description,
    default: spell.defaultMs,
    defaultText: spell.defaultText,
    parse(value) {
      const ms =
        typeof value === 'string' && value.trim() !== '' ? Number(value) * 1000 : typeof value === 'number' ? value : NaN;
      if (!Number.isFinite(ms) || !spell.accept(ms))
        throw new ConfigError(optionLabel(this), `expected ${spell.expected}, got ${JSON.stringify(value)}`);
      return ms;
    },
  };
}

/** A URL, written back without its trailing slash; unset (null), the lab's published port (.env) says where. */
function urlOption(spell: {
  flag: string;
  env: string;
  argument: string;
  description: string;
  defaultText: string;
}): OptionSpec<string | null> {
  return {
    ...spell,
    default: null,
    parse(value) {
      try {
        return new URL(String(value)).toString().replace(/\/$/, '');
      } catch {
        throw new ConfigError(optionLabel(this), `expected a URL such as http://127.0.0.1:9090, got ${JSON.stringify(value)}`);
      }
    },
  };
}

// `lab cpus`

export interface CpusFlags {
  /** Put back each variant's quota from `.env` (`<VARIANT>_CPUS`). */
  reset: boolean;
  /** How long to wait for the variant's own lab_cpu_quota_cores to show the change, ms. */
  confirmTimeoutMs: number;
  /** Where --reset reads the quotas when the environment does not set them. */
  envFile: string | undefined;
}

export interface CpusOptions extends CpusFlags {
  /** The variants to change (every running one for `all` and --reset). */
  target: string | null;
  /** The quota to set, in cores; null with --reset. */
  cores: number | null;
}

export const cpusOptions: OptionSpecs<CpusFlags> = {
  reset: switchOption({ flag: '--reset', description: 'put every running variant back to its quota in .env (<VARIANT>_CPUS)' }),
  confirmTimeoutMs: secondsOption({
    flag: '--confirm-timeout',
    description: 'how long the variant may take to show the new quota',
    defaultMs: 15_000,
    defaultText: '15',
    accept: (ms) => ms > 0,
    expected: 'seconds above 0',
  }),
  envFile: {
    flag: '--env-file',
    argument: 'path',
    description: 'where --reset reads the quotas the environment does not set',
    default: undefined,
    defaultText: "the lab's .env",
    parse(value) {
      return str(this, value);
    },
  },
};

/** The quota argument, as `lab cpus --help` names it. */
const CORES = '<cores>';

/** Docker's smallest quota. */
const MIN_CORES = 0.01;

export function resolveCpusOptions(
  args: { target?: string | undefined; cores?: string | undefined },
  raw: RawOptions<CpusFlags> = {},
): CpusOptions {
  const flags = resolveOptions(cpusOptions, raw);
  if (flags.reset && (args.target !== undefined || args.cores !== undefined)) {
    throw new ConfigError(
      cpusOptions.reset.flag,
      'takes no <variant> or <cores>: it puts every running variant back to its .env quota',
    );
  }
  if (!flags.reset && (args.target === undefined || args.cores === undefined)) {
    throw new ConfigError(CORES, 'give a variant (or all) and a number of cores, e.g. lab cpus threadpool 1, or --reset');
  }
  let cores: number | null = null;
  if (!flags.reset) {
    cores = Number(args.cores);
    if (!Number.isFinite(cores) || cores < MIN_CORES) {
      throw new ConfigError(CORES, `expected a number of cores from ${MIN_CORES} up, got ${JSON.stringify(args.cores)}`);
    }
  }
  return { ...flags, target: flags.reset ? null : args.target!, cores };
}

// `lab ps`

export interface PsOptions {
  /** Print one snapshot as JSON. */
  json: boolean;
  /** Refresh interval on a terminal, ms; 0 prints one snapshot. */
  everyMs: number;
  prometheusUrl: string;
  loadgenUrl: string;
}

type PsFlags = Omit<PsOptions, 'prometheusUrl' | 'loadgenUrl'> & { prometheusUrl: string | null; loadgenUrl: string | null };

export const psOptions: OptionSpecs<PsFlags> = {
  json: switchOption({ flag: '--json', description: 'print one snapshot as JSON' }),
  everyMs: secondsOption({
    flag: '--every',
    description: 'refresh interval on a terminal',
    defaultMs: 2000,
    defaultText: '2; 0 prints one snapshot',
    accept: (ms) => ms === 0 || ms >= 500,
    expected: 'seconds, 0.5 or more (0: one snapshot)',
  }),
  prometheusUrl: urlOption({
    flag: '--prometheus',
    env: 'LAB_PROMETHEUS_URL',
    argument: 'url',
    description: "the lab's Prometheus",
    defaultText: 'http://127.0.0.1:$PROMETHEUS_PORT, from the environment or .env, else 9090',
  }),
  loadgenUrl: urlOption({
    flag: '--loadgen',
    env: 'LAB_LOADGEN_URL',
    argument: 'url',
    description: "the lab's load generator",
    defaultText: 'http://127.0.0.1:$LOADGEN_PORT, from the environment or .env, else 9465',
  }),
};

export function resolvePsOptions(raw: RawOptions<PsFlags> = {}): PsOptions {
  const flags = resolveOptions(psOptions, raw);
  return {
    ...flags,
    prometheusUrl: flags.prometheusUrl ?? publishedUrl('PROMETHEUS_PORT'),
    loadgenUrl: flags.loadgenUrl ?? publishedUrl('LOADGEN_PORT'),
  };
}
