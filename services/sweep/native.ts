// `lab sweep --native`: the sweep without Docker. Each point starts a fresh `lab serve` process
// inside a CPU cgroup this module creates (v2 `cpu.max`, or v1 `cpu.cfs_quota_us`), so the
// variant sizes its pools from the quota at start as it would in its container; the generator
// stays outside the cgroup. Where no cgroup can be created (not root, a read-only hierarchy),
// quotas become whole cores through CPU affinity (taskset): the server on the first cores, the
// generator on the others where any are left. It says which in the sweep file's `isolation`.
// Before it starts, it removes what an earlier sweep killed with SIGKILL left (leftovers.ts).
//
// Why by hand: no well-kept Node library creates cgroups; the files are the kernel's interface.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../lab/errors.js';
import { startLocalVariant, type LocalVariant } from '../loadgen/local.js';
import { localTarget } from '../loadgen/local.js';
import { parseExposition, pick } from '../lab/exposition.js';
import { measureFromHere, type Counters, type PreparedPoint, type SweepBackend } from './backend.js';
import type { SweepMode } from './file.js';
import { OWNER_ENV, describeLeftovers, groupName, ownerTag, removeGroup, removeLeftovers } from './leftovers.js';
import type { Isolation } from './options.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
const PERIOD_US = 100_000;

/** A cgroup created for the sweep: where its quota is written and its counters read. */
interface SweepCgroup {
  version: 1 | 2;
  /** v2: the group; v1: the group in the cpu hierarchy. */
  cpuDir: string;
  /** v1: the group in a separately mounted cpuacct hierarchy (usage), when there is one. */
  cpuacctDir: string | null;
}

export class NativeBackend implements SweepBackend {
  readonly mode: SweepMode;
  readonly isolation: string;
  readonly hostCpus = availableParallelism();
  private readonly running = new Set<LocalVariant>();
  private generatorMask: string | null = null;
  /** Marks the servers as this sweep's: a later sweep kills them if this one dies without stopping them. */
  private readonly serverEnv = { [OWNER_ENV]: ownerTag() };

  private constructor(private readonly cgroup: SweepCgroup | null) {
    if (cgroup) {
      this.mode = cgroup.version === 2 ? 'native-cgroup-v2' : 'native-cgroup-v1';
      this.isolation =
        cgroup.version === 2
          ? `native: cgroup v2 ${cgroup.cpuDir} (cpu.max), the server inside, the generator outside`
          : `native: cgroup v1 ${cgroup.cpuDir} (cpu.cfs_quota_us / cpu.cfs_period_us), the server inside, the generator outside`;
    } else {
      this.mode = 'native-affinity';
      this.isolation =
        'native: CPU affinity (taskset), whole cores only: the server on the first cores, the generator on the others where any are left';
    }
  }

  static async create(isolation: Isolation): Promise<NativeBackend> {
    const leftovers = describeLeftovers(await removeLeftovers(CGROUP_ROOT));
    if (leftovers) console.error(leftovers);
    let cgroup: SweepCgroup | null = null;
    let why = '';
    if (isolation !== 'affinity') {
      try {
        cgroup = createCgroup(groupName());
      } catch (error) {
        why = (error as Error).message;
        if (isolation === 'cgroup') throw new ConfigError('--isolation cgroup', `cannot create a CPU cgroup: ${why}`);
      }
    }
    if (!cgroup) {
      const taskset = spawnSync('taskset', ['--version'], { encoding: 'utf8' });
      if (taskset.status !== 0) {
        throw new ConfigError(
          '--native',
          `cannot create a CPU cgroup (${why || 'affinity asked'}) and taskset is not installed (util-linux)`,
        );
      }
      if (why) console.error(`lab sweep: cannot create a CPU cgroup (${why}): quotas become whole cores through CPU affinity`);
    }
    return new NativeBackend(cgroup);
  }

  effectiveCpus(cpus: number): number {
    return this.cgroup ? cpus : Math.min(this.hostCpus, Math.max(1, Math.ceil(cpus - 1e-9)));
  }

  async check(): Promise<void> {}

  async prepare(variant: string, cpus: number): Promise<PreparedPoint> {
    const effective = this.effectiveCpus(cpus);
    let wrap: string[];
    if (this.cgroup) {
      writeQuota(this.cgroup, effective);
      // The shell joins the cgroup, then becomes the server: the server is inside from its first instruction.
      const dirs = [this.cgroup.cpuDir, this.cgroup.cpuacctDir].filter((d): d is string => d !== null);
      const enter = dirs.map((dir) => `echo $$ > ${dir}/cgroup.procs`).join(' && ');
      wrap = ['/bin/sh', '-c', `${enter} && exec "$@"`, 'sh'];
    } else {
      wrap = ['taskset', '-c', coreList(0, effective)];
      this.pinGenerator(effective);
    }
    const server = await startLocalVariant(variant, this.serverEnv, wrap);
    this.running.add(server);
    const target = localTarget(variant, server.port);
    return {
      target,
      measure: measureFromHere(target),
      cpus: effective,
      quotaHolders: 1,
      workers: async () => {
        const response = await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
        return pick(parseExposition(await response.text()), 'fib_workers');
      },
      counters: () => Promise.resolve(this.cgroup ? readCounters(this.cgroup) : null),
      release: async () => {
        await server.stop();
        this.running.delete(server);
      },
    };
  }

  async baseline(variant: string) {
    // No quota and no pinning: one connection never needs more than one core.
    const server = await startLocalVariant(variant, this.serverEnv);
    this.running.add(server);
    const target = localTarget(variant, server.port);
    return {
      target,
      measure: measureFromHere(target),
      release: async () => {
        await server.stop();
        this.running.delete(server);
      },
    };
  }

  async restore(): Promise<string[]> {
    const done: string[] = [];
    await Promise.all([...this.running].map((server) => server.stop('SIGKILL')));
    this.running.clear();
    if (this.generatorMask !== null) {
      spawnSync('taskset', ['-a', '-p', this.generatorMask, String(process.pid)]);
      done.push(`generator affinity back to mask ${this.generatorMask}`);
      this.generatorMask = null;
    }
    if (this.cgroup) {
      for (const dir of [this.cgroup.cpuDir, this.cgroup.cpuacctDir]) {
        if (dir && existsSync(dir)) await removeGroup(dir);
      }
    }
    return done;
  }

  /** Keeps the generator (this process, every thread) off the server's cores, where any are left. */
  private pinGenerator(serverCores: number): void {
    if (this.generatorMask === null) {
      const current = spawnSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' });
      this.generatorMask = /:\s*([0-9a-f]+)\s*$/i.exec(current.stdout)?.[1] ?? 'ffffffff';
    }
    const cores = serverCores < this.hostCpus ? coreList(serverCores, this.hostCpus - serverCores) : coreList(0, this.hostCpus);
    spawnSync('taskset', ['-a', '-p', '-c', cores, String(process.pid)]);
  }
}

function coreList(first: number, count: number): string {
  return count <= 1 ? String(first) : `${first}-${first + count - 1}`;
}

/** Creates the group in the v2 hierarchy, else in v1's cpu (and cpuacct) hierarchies; throws saying why not. */
function createCgroup(name: string): SweepCgroup {
  const v2Controllers = join(CGROUP_ROOT, 'cgroup.controllers');
  if (existsSync(v2Controllers)) {
    if (!readFileSync(v2Controllers, 'utf8').split(/\s+/).includes('cpu'))
      throw new Error('the cgroup v2 root has no cpu controller');
    // Children of the root get the cpu controller only once the root delegates it.
    const subtree = join(CGROUP_ROOT, 'cgroup.subtree_control');
    if (!readFileSync(subtree, 'utf8').split(/\s+/).includes('cpu')) writeFileSync(subtree, '+cpu');
    const dir = join(CGROUP_ROOT, name);
    mkdirSync(dir);
    if (!existsSync(join(dir, 'cpu.max'))) {
      rmdirSync(dir);
      throw new Error('a new cgroup v2 group has no cpu.max');
    }
    return { version: 2, cpuDir: dir, cpuacctDir: null };
  }
  const cpuMount = ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']
    .map((m) => join(CGROUP_ROOT, m))
    .find((m) => existsSync(join(m, 'cpu.cfs_quota_us')));
  if (!cpuMount) throw new Error(`no cgroup v2 root and no v1 cpu hierarchy under ${CGROUP_ROOT}`);
  const cpuDir = join(cpuMount, name);
  mkdirSync(cpuDir);
  let cpuacctDir: string | null = null;
  const cpuacctMount = join(CGROUP_ROOT, 'cpuacct');
  if (!existsSync(join(cpuDir, 'cpuacct.usage')) && existsSync(join(cpuacctMount, 'cpuacct.usage'))) {
    cpuacctDir = join(cpuacctMount, name);
    mkdirSync(cpuacctDir);
  }
  return { version: 1, cpuDir, cpuacctDir };
}

function writeQuota(cgroup: SweepCgroup, cores: number): void {
  const quota = Math.max(1000, Math.round(cores * PERIOD_US));
  if (cgroup.version === 2) {
    writeFileSync(join(cgroup.cpuDir, 'cpu.max'), `${quota} ${PERIOD_US}`);
  } else {
    writeFileSync(join(cgroup.cpuDir, 'cpu.cfs_period_us'), String(PERIOD_US));
    writeFileSync(join(cgroup.cpuDir, 'cpu.cfs_quota_us'), String(quota));
  }
}

function readCounters(cgroup: SweepCgroup): Counters {
  const keyed = (path: string) => {
    const values = new Map<string, number>();
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const [key, value] = line.trim().split(/\s+/);
      if (key && value !== undefined) values.set(key, Number(value));
    }
    return values;
  };
  const stat = keyed(join(cgroup.cpuDir, 'cpu.stat'));
  let usageSeconds: number | null;
  if (cgroup.version === 2) {
    usageSeconds = (stat.get('usage_usec') ?? NaN) / 1e6;
  } else {
    const usageFile = join(cgroup.cpuacctDir ?? cgroup.cpuDir, 'cpuacct.usage');
    usageSeconds = existsSync(usageFile) ? Number(readFileSync(usageFile, 'utf8').trim()) / 1e9 : null;
  }
  return {
    at: Date.now(),
    usageSeconds: usageSeconds !== null && Number.isFinite(usageSeconds) ? usageSeconds : null,
    periods: stat.get('nr_periods') ?? null,
    throttledPeriods: stat.get('nr_throttled') ?? null,
    memoryBytes: null,
  };
}
