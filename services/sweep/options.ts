// Configuration of `lab sweep`: from flags, or from a YAML file (`--file`) whose keys are the
// flags' names, flags winning over the file. A spec per flag (services/lab/options.ts: flag,
// default, guard naming the option or the file's field in its one-line message), then the
// resolver with the checks across options.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../lab/errors.js';
import { duration, durationOption } from '../lab/duration.js';
import {
  intOption,
  isGiven,
  optionLabel,
  resolveOptions,
  switchOption,
  type OptionSpec,
  type OptionSpecs,
  type RawOptions,
} from '../lab/options.js';
import { publishedUrl } from '../lab/ports.js';
import { VARIANT_NAMES } from '../variants/index.js';
import type { SweepSettings } from './file.js';

export type Isolation = 'auto' | 'cgroup' | 'affinity';

/** What each point measures: its schema is in file.ts, the sweep file's one description. */
export type { SweepSettings };

export interface SweepOptions {
  variants: string[];
  cpus: number[];
  /** The sweep file: results are appended there after each point; an existing one is resumed. */
  out: string;
  /** Run `lab serve` processes on this machine instead of the compose lab's containers. */
  native: boolean;
  /** --native: how a quota is imposed (auto: a cgroup when one can be created, else CPU affinity). */
  isolation: Isolation;
  settings: SweepSettings;
  /** The variant t(fib(cpuN)) is measured on at start, with one connection: the ideal line's slope. */
  baselineVariant: string;
  /** The load generator's control API, whose background load is paused per point. */
  loadgenUrl: string;
  /** How long a quota change may take to show in the variant's lab_cpu_quota_cores. */
  confirmTimeoutMs: number;
}

const settingsDefaults: SweepSettings = {
  cpuN: 27,
  longN: 30,
  shortN: 1,
  connectionsPerCore: 2,
  warmupMs: 2000,
  throughputMs: 5000,
  collapseMs: 3000,
};

/** What the flags (and the file's keys) say, one by one, typed: the resolver builds SweepOptions from them. */
export interface SweepFlags {
  file: string | null;
  variants: string[];
  cpus: number[];
  out: string;
  native: boolean;
  isolation: Isolation;
  warmup: number;
  throughputDuration: number;
  collapseDuration: number;
  connectionsPerCore: number;
  cpuN: number;
  baselineVariant: string;
  /** Null: the lab's own (LOADGEN_PORT of the environment or .env). */
  loadgenUrl: string | null;
}

/** A phase measured for at least 500 ms: shorter ones hold too few long requests to say anything. */
function measuredDuration(flag: string, description: string, defaultMs: number): OptionSpec<number> {
  return {
    ...durationOption({ flag, description, default: defaultMs }),
    parse(value) {
      const ms = duration(this, value);
      if (ms < 500) throw new ConfigError(this.flag, 'must be at least 500ms');
      return ms;
    },
  };
}

export const sweepOptions: OptionSpecs<SweepFlags> = {
  file: {
    flag: '--file',
    argument: 'sweep.yaml',
    description: 'read the sweep from a YAML file (keys: the flags without --, e.g. variants, cpus, warmup)',
    default: null,
    parse: (value) => text(value),
  },
  variants: {
    flag: '--variants',
    argument: 'names',
    description: 'variants to sweep, comma-separated',
    default: [...VARIANT_NAMES],
    defaultText: `all of ${VARIANT_NAMES.join(', ')}`,
    parse: (value) => parseVariants(value),
  },
  cpus: {
    flag: '--cpus',
    argument: 'cores,...',
    description: 'CPU quotas in cores, comma-separated',
    default: [0.5, 1, 1.5, 2],
    defaultText: '0.5,1,1.5,2',
    parse: (value) => parseCpus(value),
  },
  out: {
    flag: '--out',
    argument: 'sweep.json',
    description: 'the sweep file (JSON); an existing one is resumed',
    default: 'sweep.json',
    parse(value) {
      const out = text(value).trim();
      if (out === '') throw new ConfigError(this.flag, 'expected a file name');
      return out;
    },
  },
  native: switchOption({
    flag: '--native',
    description: 'no Docker: lab serve processes in cgroups this creates (or pinned to whole cores)',
  }),
  isolation: {
    flag: '--isolation',
    argument: 'mode',
    description: 'with --native: auto (a cgroup when it may), cgroup, or affinity (whole cores)',
    default: 'auto',
    parse(value) {
      const isolation = text(value);
      if (isolation !== 'auto' && isolation !== 'cgroup' && isolation !== 'affinity')
        throw new ConfigError(this.flag, `expected auto, cgroup or affinity, got ${JSON.stringify(isolation)}`);
      return isolation;
    },
  },
  warmup: durationOption({
    flag: '--warmup',
    description: 'load after each quota change before measuring',
    default: settingsDefaults.warmupMs,
  }),
  throughputDuration: measuredDuration(
    '--throughput-duration',
    'how long throughput is measured per point',
    settingsDefaults.throughputMs,
  ),
  collapseDuration: measuredDuration(
    '--collapse-duration',
    'how long each collapse phase is measured',
    settingsDefaults.collapseMs,
  ),
  connectionsPerCore: intOption({
    flag: '--connections-per-core',
    description: 'throughput connections per core of quota',
    default: settingsDefaults.connectionsPerCore,
    min: 1,
    max: 64,
  }),
  cpuN: intOption({
    flag: '--cpu-n',
    description: 'n of the CPU-bound request whose throughput is measured',
    default: settingsDefaults.cpuN,
    min: 1,
    max: 35,
  }),
  baselineVariant: {
    flag: '--baseline-variant',
    argument: 'variant',
    description: 'variant t(fib(n)) is measured on at start, one connection',
    default: 'eventloop',
    parse(value) {
      const name = text(value);
      if (!VARIANT_NAMES.includes(name))
        throw new ConfigError(this.flag, `unknown variant ${JSON.stringify(name)}: expected one of ${VARIANT_NAMES.join(', ')}`);
      return name;
    },
  },
  loadgenUrl: {
    flag: '--loadgen',
    env: 'LAB_LOADGEN_URL',
    argument: 'url',
    description:
      "the lab load generator's control API (its load is paused per point, with the token LOADGEN_TOKEN from the environment, else from .env in the current directory)",
    default: null,
    defaultText: 'http://127.0.0.1:$LOADGEN_PORT, from the environment or .env, else 9465',
    parse(value) {
      const url = text(value);
      try {
        new URL(url);
      } catch {
        throw new ConfigError(optionLabel(this), `expected a URL such as http://127.0.0.1:9465, got ${JSON.stringify(url)}`);
      }
      return url.replace(/\/$/, '');
    },
  },
};

export type SweepOptionKey = keyof SweepFlags;
export type RawSweepOptions = RawOptions<SweepFlags>;

/** How long a quota change may take to show in the variant's lab_cpu_quota_cores. */
const CONFIRM_TIMEOUT_MS = 15_000;

const listOrString = z.union([z.string(), z.array(z.union([z.string(), z.number()]))]);
// A duration in the file is written as a flag's (a bare number: seconds).
const durationField = z.union([z.string(), z.number().transform(String)]);
const fileSchema = z
  .object({
    variants: listOrString.optional(),
    cpus: z.union([listOrString, z.number()]).optional(),
    out: z.string().optional(),
    native: z.boolean().optional(),
    isolation: z.string().optional(),
    warmup: durationField.optional(),
    throughputDuration: durationField.optional(),
    collapseDuration: durationField.optional(),
    connectionsPerCore: z.number().optional(),
    cpuN: z.number().optional(),
    baselineVariant: z.string().optional(),
    loadgen: z.string().optional(),
  })
  .strict();

/** The file's values, then the flags' over them; each option's guard, then the checks across options. */
export function resolveSweepOptions(raw: RawSweepOptions): SweepOptions {
  const file = isGiven(raw.file) ? sweepOptions.file.parse(raw.file) : null;
  const merged: RawSweepOptions = { ...(file === null ? {} : readSweepFile(file)) };
  for (const [key, value] of Object.entries(raw) as Array<[SweepOptionKey, unknown]>) {
    if (value !== undefined && key !== 'file') merged[key] = value;
  }
  const flags = resolveOptions(sweepOptions, merged);
  if (!flags.native && isGiven(merged.isolation))
    throw new ConfigError(sweepOptions.isolation.flag, 'applies only with --native');
  return {
    variants: flags.variants,
    cpus: flags.cpus,
    out: flags.out,
    native: flags.native,
    isolation: flags.isolation,
    settings: {
      ...settingsDefaults,
      cpuN: flags.cpuN,
      connectionsPerCore: flags.connectionsPerCore,
      warmupMs: flags.warmup,
      throughputMs: flags.throughputDuration,
      collapseMs: flags.collapseDuration,
    },
    baselineVariant: flags.baselineVariant,
    loadgenUrl: flags.loadgenUrl ?? publishedUrl('LOADGEN_PORT'),
    confirmTimeoutMs: CONFIRM_TIMEOUT_MS,
  };
}

function readSweepFile(path: string): RawSweepOptions {
  const label = sweepOptions.file.flag;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(label, `cannot read ${path}: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text) ?? {};
  } catch (error) {
    throw new ConfigError(label, `${path} is not YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  const parsed = fileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${label} ${path}`, `${issue.path.join('.') || 'top level'}: ${issue.message}`);
  }
  const { loadgen, ...rest } = parsed.data;
  return { ...rest, loadgenUrl: loadgen };
}

/** Flags and the file's fields arrive as strings or numbers (zod and commander see to that). */
function text(value: unknown): string {
  return typeof value === 'string'
    ? value
    : typeof value === 'number' || typeof value === 'boolean'
      ? String(value)
      : JSON.stringify(value);
}

function list(value: unknown): string[] {
  const items = Array.isArray(value) ? value.map(String) : String(value).split(',');
  return items.map((item) => item.trim()).filter((item) => item !== '');
}

function parseVariants(value: unknown): string[] {
  const names = list(value);
  if (names.length === 0) throw new ConfigError(sweepOptions.variants.flag, 'give at least one variant');
  for (const name of names) {
    if (!VARIANT_NAMES.includes(name)) {
      throw new ConfigError(
        sweepOptions.variants.flag,
        `unknown variant ${JSON.stringify(name)}: expected some of ${VARIANT_NAMES.join(', ')}`,
      );
    }
  }
  return [...new Set(names)];
}

function parseCpus(value: unknown): number[] {
  const items = typeof value === 'number' ? [String(value)] : list(value);
  if (items.length === 0) throw new ConfigError(sweepOptions.cpus.flag, 'give at least one quota');
  const cpus = items.map((item) => {
    const cores = Number(item);
    if (!Number.isFinite(cores) || cores < 0.01) {
      throw new ConfigError(sweepOptions.cpus.flag, `expected numbers of cores from 0.01 up, got ${JSON.stringify(item)}`);
    }
    return cores;
  });
  return [...new Set(cpus)];
}
