// Reads this process's own cgroup: the CPU quota (for pool sizes) and the container's CPU use,
// throttling and memory (for metrics). Both cgroup v2 (one unified tree, `cpu.max`, `cpu.stat`,
// `memory.current`) and v1 (separate `cpu`, `cpuacct` and `memory` mounts) are read. Why by hand:
// `os.availableParallelism()` ignores CPU quotas on the Node versions in use, and no well-kept
// library reads both cgroup versions' files.
//
// Inside a container the files sit at the root of each mount (a private cgroup namespace on v2,
// Docker's bind mounts on v1). On a host the process's own group is found in /proc/self/cgroup;
// when that path does not exist under the mount, the mount's root is used.

import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

export interface CgroupStats {
  version: 1 | 2;
  /** CPU quota in cores (quota / period), or null when the group has no quota. */
  quotaCores: number | null;
  usageSeconds: number | null;
  periods: number | null;
  throttledPeriods: number | null;
  throttledSeconds: number | null;
  /** Memory in use, without the inactive file cache (what `docker stats` shows). */
  memoryBytes: number | null;
}

export interface CgroupPaths {
  /** Where cgroup filesystems are mounted. */
  root: string;
  /** The process's cgroup membership file. */
  procSelfCgroup: string;
}

/**
 * Where to read by default. LAB_CGROUP_ROOT and LAB_CGROUP_SELF point elsewhere: a cgroup
 * filesystem mounted at another place, or the tests' fixture files (a quota changed live).
 */
const DEFAULT_PATHS: CgroupPaths = {
  root: process.env.LAB_CGROUP_ROOT || '/sys/fs/cgroup',
  procSelfCgroup: process.env.LAB_CGROUP_SELF || '/proc/self/cgroup',
};

export class CgroupReader {
  readonly version: 1 | 2 | null;
  private readonly dirs: { cpu?: string; cpuacct?: string; memory?: string; unified?: string };

  constructor(paths: Partial<CgroupPaths> = {}) {
    const { root, procSelfCgroup } = { ...DEFAULT_PATHS, ...paths };
    const membership = parseMembership(readText(procSelfCgroup) ?? '');
    if (existsSync(join(root, 'cgroup.controllers'))) {
      this.version = 2;
      this.dirs = { unified: ownDir(root, membership.get('') ?? '/') };
    } else if (existsSync(join(root, 'cpu')) || existsSync(join(root, 'cpu,cpuacct'))) {
      this.version = 1;
      const mount = (name: string) => {
        for (const candidate of [name, 'cpu,cpuacct', 'cpuacct,cpu']) {
          const dir = join(root, candidate);
          if (existsSync(dir)) return ownDir(dir, membership.get(name) ?? '/');
        }
        return undefined;
      };
      this.dirs = { cpu: mount('cpu'), cpuacct: mount('cpuacct'), memory: mount('memory') };
    } else {
      this.version = null;
      this.dirs = {};
    }
  }

  /** The CPU quota in cores, or null when there is none (or no cgroup could be read). */
  quotaCores(): number | null {
    if (this.version === 2) {
      const [quota, period] = (readText(join(this.dirs.unified!, 'cpu.max')) ?? 'max').trim().split(/\s+/);
      if (quota === undefined || quota === 'max') return null;
      return ratio(Number(quota), Number(period ?? 100000));
    }
    if (this.version === 1 && this.dirs.cpu) {
      const quota = readNumber(join(this.dirs.cpu, 'cpu.cfs_quota_us'));
      const period = readNumber(join(this.dirs.cpu, 'cpu.cfs_period_us'));
      if (quota === null || period === null || quota <= 0) return null;
      return ratio(quota, period);
    }
    return null;
  }

  stats(): CgroupStats | null {
    if (this.version === 2) {
      const dir = this.dirs.unified!;
      const cpu = readKeyed(join(dir, 'cpu.stat'));
      const memory = readNumber(join(dir, 'memory.current'));
      const inactive = readKeyed(join(dir, 'memory.stat')).get('inactive_file') ?? 0;
      return {
        version: 2,
        quotaCores: this.quotaCores(),
        usageSeconds: scaled(cpu.get('usage_usec'), 1e6),
        periods: cpu.get('nr_periods') ?? null,
        throttledPeriods: cpu.get('nr_throttled') ?? null,
        throttledSeconds: scaled(cpu.get('throttled_usec'), 1e6),
        memoryBytes: memory === null ? null : Math.max(0, memory - inactive),
      };
    }
    if (this.version === 1) {
      const cpu = this.dirs.cpu ? readKeyed(join(this.dirs.cpu, 'cpu.stat')) : new Map<string, number>();
      const usage = this.dirs.cpuacct ? readNumber(join(this.dirs.cpuacct, 'cpuacct.usage')) : null;
      const memory = this.dirs.memory ? readNumber(join(this.dirs.memory, 'memory.usage_in_bytes')) : null;
      const inactive = this.dirs.memory ? (readKeyed(join(this.dirs.memory, 'memory.stat')).get('total_inactive_file') ?? 0) : 0;
      return {
        version: 1,
        quotaCores: this.quotaCores(),
        usageSeconds: scaled(usage ?? undefined, 1e9),
        periods: cpu.get('nr_periods') ?? null,
        throttledPeriods: cpu.get('nr_throttled') ?? null,
        throttledSeconds: scaled(cpu.get('throttled_time'), 1e9),
        memoryBytes: memory === null ? null : Math.max(0, memory - inactive),
      };
    }
    return null;
  }
}

/**
 * The number of CPUs a pool should use by default: the cgroup quota rounded up (at least 1),
 * or, with no quota, `os.availableParallelism()`.
 */
export function defaultParallelism(reader: CgroupReader = new CgroupReader()): number {
  const quota = reader.quotaCores();
  return quota === null ? availableParallelism() : Math.max(1, Math.ceil(quota - 1e-9));
}

function parseMembership(text: string): Map<string, string> {
  // Lines look like `4:memory:/docker/abc` (v1) or `0::/user.slice` (v2).
  const result = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    for (const controller of (match[1] as string).split(',')) result.set(controller, match[2] as string);
  }
  return result;
}

function ownDir(mount: string, path: string): string {
  const dir = join(mount, path);
  return path !== '/' && existsSync(dir) ? dir : mount;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function readNumber(path: string): number | null {
  const text = readText(path);
  if (text === null) return null;
  const value = Number(text.trim());
  return Number.isFinite(value) ? value : null;
}

function readKeyed(path: string): Map<string, number> {
  const result = new Map<string, number>();
  for (const line of (readText(path) ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && Number.isFinite(Number(value))) result.set(key, Number(value));
  }
  return result;
}

function ratio(quota: number, period: number): number | null {
  return Number.isFinite(quota) && Number.isFinite(period) && period > 0 ? quota / period : null;
}

/** A count of micro- or nanoseconds in seconds. */
function scaled(value: number | undefined, perSecond: number): number | null {
  return value === undefined ? null : value / perSecond;
}
