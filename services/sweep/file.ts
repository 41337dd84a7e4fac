// The sweep file: one JSON document holding how a sweep was run (mode, host, settings, the
// baseline that draws the ideal line) and every point measured so far. It is rewritten whole
// after each point, to a temporary file renamed over the old one, so an interrupted sweep
// leaves a complete file and a rerun resumes where it stopped. `lab report` reads it.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ConfigError } from '../common/errors.js';
import type { SweepSettings } from './options.js';

export const SWEEP_FILE_VERSION = 1;

/** docker: the compose lab's containers; native-*: local `lab serve` processes. */
export type SweepMode = 'docker' | 'native-cgroup-v1' | 'native-cgroup-v2' | 'native-affinity';

export interface Baseline {
  variant: string;
  n: number;
  /** Mean time of one fib(n) request, one connection, nothing else running: t(fib(n)). */
  secondsPerRequest: number;
  /** 1 / t: the ideal line's slope, requests per second per core. */
  requestsPerSecondPerCore: number;
  measuredAt: string;
}

export interface SweepPoint {
  variant: string;
  /** The quota in force, cores (per worker container for a variant with several). */
  cpus: number;
  /** The quota asked for, when it differs (affinity rounds up to whole cores). */
  requestedCpus?: number;
  /** Containers (or processes) holding that quota: the ideal scales with it. */
  quotaHolders: number;
  /** fib_workers during the point (threads or processes alive, or the pool size). */
  workers: number | null;
  /** fib(cpuN) answered per second, closed loop, enough connections to keep the quota busy. */
  throughput: number;
  /** cpus x quotaHolders / t(fib(cpuN)). */
  ideal: number;
  throughputConnections: number;
  /** p50 of the fib(cpuN) requests, ms. */
  throughputP50Ms: number | null;
  collapse: {
    /** fib(shortN) per second, one connection, alone. */
    aloneRps: number;
    /** ... beside one fib(longN) hog connection. */
    besideRps: number;
    /** alone / beside; null when nothing was answered beside the hog (`infinite`). */
    ratio: number | null;
    infinite: boolean;
  };
  /** p99 of the short requests beside one hog, ms (the head-of-line blocking a client sees); null when none was answered. */
  shortP99Ms: number | null;
  /** p99 of the short requests alone, ms. */
  shortP99AloneMs: number | null;
  /** Over the throughput measurement, from the cgroup; null where unknown. */
  coresUsed: number | null;
  throttledShare: number | null;
  /** CPU the generator itself used during the throughput measurement, cores: on a small host it comes out of the same cores. */
  generatorCores: number;
  /**
   * The whole machine's busy cores over the throughput measurement (/proc/stat of the host the
   * sweep runs on): minus the variant's and the generator's, what neighbours (and docker-proxy) took.
   */
  hostBusyCores: number | null;
  /** The generator was the bottleneck in some phase: the point describes the generator, not the server. */
  generatorBound: boolean;
  generatorReasons: string[];
  /** Failed requests by outcome, all phases together. */
  errors: Record<string, number>;
  measuredAt: string;
}

export interface SweepFile {
  version: number;
  mode: SweepMode;
  /** How the quota was imposed, in words (the cgroup path, the cores pinned). */
  isolation: string;
  host: { cpus: number; node: string; platform: string };
  settings: SweepSettings;
  baseline: Baseline | null;
  startedAt: string;
  updatedAt: string;
  /** Seconds spent measuring, over every run of the sweep (resumes add up). */
  elapsedSeconds: number;
  points: SweepPoint[];
}

export function readSweepFile(path: string, option = '<sweep.json>'): SweepFile {
  let data: SweepFile;
  try {
    data = JSON.parse(readFileSync(path, 'utf8')) as SweepFile;
  } catch (error) {
    throw new ConfigError(option, `cannot read a sweep from ${path}: ${(error as Error).message}`);
  }
  if (data?.version !== SWEEP_FILE_VERSION || !Array.isArray(data.points)) {
    throw new ConfigError(option, `${path} is not a sweep file of version ${SWEEP_FILE_VERSION}`);
  }
  return data;
}

export function existingSweep(path: string): SweepFile | null {
  return existsSync(path) ? readSweepFile(path, '--out') : null;
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
