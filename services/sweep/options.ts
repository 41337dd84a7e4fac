// Configuration of `lab sweep`: from flags, or from a YAML file (`--file`) whose keys are the
// flags' names, flags winning over the file. One typed interface, one defaults object, flat
// guards that name the option (or the file's field) in their one-line message.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../lab/errors.js';
import { optionLabel, type OptionName } from '../lab/options.js';
import { duration } from '../loadgen/options.js';
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

export const sweepDefaults = {
  cpus: [0.5, 1, 1.5, 2],
  out: 'sweep.json',
  native: false,
  isolation: 'auto' as Isolation,
  settings: {
    cpuN: 27,
    longN: 30,
    shortN: 1,
    connectionsPerCore: 2,
    warmupMs: 2000,
    throughputMs: 5000,
    collapseMs: 3000,
  } satisfies SweepSettings,
  baselineVariant: 'eventloop',
  loadgenUrl: 'http://127.0.0.1:9465',
  confirmTimeoutMs: 15_000,
};

export const sweepOptionNames = {
  file: {
    flag: '--file',
    description: 'read the sweep from a YAML file (keys: the flags without --, e.g. variants, cpus, warmup)',
  },
  variants: {
    flag: '--variants',
    description: `variants to sweep, comma-separated (default: all of ${VARIANT_NAMES.join(', ')})`,
  },
  cpus: { flag: '--cpus', description: 'CPU quotas in cores, comma-separated (default 0.5,1,1.5,2)' },
  out: { flag: '--out', description: 'the sweep file (JSON); an existing one is resumed (default sweep.json)' },
  native: { flag: '--native', description: 'no Docker: lab serve processes in cgroups this creates (or pinned to whole cores)' },
  isolation: {
    flag: '--isolation',
    description: 'with --native: auto (a cgroup when it may), cgroup, or affinity (whole cores)',
  },
  warmup: { flag: '--warmup', description: 'load after each quota change before measuring (default 2s)' },
  throughputDuration: { flag: '--throughput-duration', description: 'how long throughput is measured per point (default 5s)' },
  collapseDuration: { flag: '--collapse-duration', description: 'how long each collapse phase is measured (default 3s)' },
  connectionsPerCore: { flag: '--connections-per-core', description: 'throughput connections per core of quota (default 2)' },
  cpuN: { flag: '--cpu-n', description: 'n of the CPU-bound request whose throughput is measured (default 27)' },
  baselineVariant: {
    flag: '--baseline-variant',
    description: 'variant t(fib(n)) is measured on at start, one connection (default eventloop)',
  },
  loadgenUrl: {
    flag: '--loadgen',
    env: 'LAB_LOADGEN_URL',
    description:
      "the lab load generator's control API (its load is paused per point, with the token LOADGEN_TOKEN from the environment, else from .env in the current directory)",
  },
} satisfies Record<string, OptionName & { description: string }>;

export type SweepOptionKey = keyof typeof sweepOptionNames;
export type RawSweepOptions = Partial<Record<SweepOptionKey, unknown>>;

const listOrString = z.union([z.string(), z.array(z.union([z.string(), z.number()]))]);
const fileSchema = z
  .object({
    variants: listOrString.optional(),
    cpus: z.union([listOrString, z.number()]).optional(),
    out: z.string().optional(),
    native: z.boolean().optional(),
    isolation: z.string().optional(),
    warmup: z.union([z.string(), z.number()]).optional(),
    throughputDuration: z.union([z.string(), z.number()]).optional(),
    collapseDuration: z.union([z.string(), z.number()]).optional(),
    connectionsPerCore: z.number().optional(),
    cpuN: z.number().optional(),
    baselineVariant: z.string().optional(),
    loadgen: z.string().optional(),
  })
  .strict();

/** The file's values, then the flags' over them. */
export function resolveSweepOptions(raw: RawSweepOptions): SweepOptions {
  const names = sweepOptionNames;
  const merged: RawSweepOptions = { ...(raw.file ? readSweepFile(text(raw.file)) : {}) };
  for (const [key, value] of Object.entries(raw) as Array<[SweepOptionKey, unknown]>) {
    if (value !== undefined && key !== 'file') merged[key] = value;
  }
  const defaults = sweepDefaults.settings;
  const settings: SweepSettings = {
    cpuN: merged.cpuN === undefined ? defaults.cpuN : integer(names.cpuN, merged.cpuN, 1, 35),
    longN: defaults.longN,
    shortN: defaults.shortN,
    connectionsPerCore:
      merged.connectionsPerCore === undefined
        ? defaults.connectionsPerCore
        : integer(names.connectionsPerCore, merged.connectionsPerCore, 1, 64),
    warmupMs: merged.warmup === undefined ? defaults.warmupMs : duration(names.warmup, merged.warmup),
    throughputMs:
      merged.throughputDuration === undefined
        ? defaults.throughputMs
        : duration(names.throughputDuration, merged.throughputDuration),
    collapseMs:
      merged.collapseDuration === undefined ? defaults.collapseMs : duration(names.collapseDuration, merged.collapseDuration),
  };
  if (settings.throughputMs < 500) throw new ConfigError(names.throughputDuration.flag, 'must be at least 500ms');
  if (settings.collapseMs < 500) throw new ConfigError(names.collapseDuration.flag, 'must be at least 500ms');
  const isolation = merged.isolation === undefined ? sweepDefaults.isolation : text(merged.isolation);
  if (isolation !== 'auto' && isolation !== 'cgroup' && isolation !== 'affinity') {
    throw new ConfigError(names.isolation.flag, `expected auto, cgroup or affinity, got ${JSON.stringify(isolation)}`);
  }
  const native = merged.native === true;
  if (!native && merged.isolation !== undefined) throw new ConfigError(names.isolation.flag, 'applies only with --native');
  const baselineVariant = merged.baselineVariant === undefined ? sweepDefaults.baselineVariant : text(merged.baselineVariant);
  if (!VARIANT_NAMES.includes(baselineVariant)) {
    throw new ConfigError(
      names.baselineVariant.flag,
      `unknown variant ${JSON.stringify(baselineVariant)}: expected one of ${VARIANT_NAMES.join(', ')}`,
    );
  }
  const out = merged.out === undefined ? sweepDefaults.out : text(merged.out).trim();
  if (out === '') throw new ConfigError(names.out.flag, 'expected a file name');
  const loadgenUrl = merged.loadgenUrl === undefined ? sweepDefaults.loadgenUrl : text(merged.loadgenUrl);
  try {
    new URL(loadgenUrl);
  } catch {
    throw new ConfigError(
      optionLabel(names.loadgenUrl),
      `expected a URL such as http://127.0.0.1:9465, got ${JSON.stringify(loadgenUrl)}`,
    );
  }
  return {
    variants: parseVariants(merged.variants),
    cpus: parseCpus(merged.cpus),
    out,
    native,
    isolation,
    settings,
    baselineVariant,
    loadgenUrl: loadgenUrl.replace(/\/$/, ''),
    confirmTimeoutMs: sweepDefaults.confirmTimeoutMs,
  };
}

function readSweepFile(path: string): RawSweepOptions {
  const label = sweepOptionNames.file.flag;
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
  if (value === undefined) return [...VARIANT_NAMES];
  const names = list(value);
  if (names.length === 0) throw new ConfigError(sweepOptionNames.variants.flag, 'give at least one variant');
  for (const name of names) {
    if (!VARIANT_NAMES.includes(name)) {
      throw new ConfigError(
        sweepOptionNames.variants.flag,
        `unknown variant ${JSON.stringify(name)}: expected some of ${VARIANT_NAMES.join(', ')}`,
      );
    }
  }
  return [...new Set(names)];
}

function parseCpus(value: unknown): number[] {
  if (value === undefined) return [...sweepDefaults.cpus];
  const items = typeof value === 'number' ? [String(value)] : list(value);
  if (items.length === 0) throw new ConfigError(sweepOptionNames.cpus.flag, 'give at least one quota');
  const cpus = items.map((item) => {
    const cores = Number(item);
    if (!Number.isFinite(cores) || cores < 0.01) {
      throw new ConfigError(sweepOptionNames.cpus.flag, `expected numbers of cores from 0.01 up, got ${JSON.stringify(item)}`);
    }
    return cores;
  });
  return [...new Set(cpus)];
}

function integer(name: OptionName, value: unknown, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(optionLabel(name), `expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}
