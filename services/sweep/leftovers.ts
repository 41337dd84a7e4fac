// What a killed native sweep leaves behind, and its removal. A sweep put back everything it made
// when it stops (Ctrl-C, SIGTERM, an error), but SIGKILL (the OOM killer, `kill -9`, a CI
// timeout) gives it no chance: its CPU cgroups stay, and so does the `lab serve` it was
// measuring, now an orphan, inside one of them (or outside any, pinned with taskset, or the
// baseline's). So every native sweep looks for them before it starts:
//
// - its groups are named `concurrency-lab-sweep-<pid>-<start time>`: the pid and the start time
//   of the process (clock ticks after boot, /proc/<pid>/stat) name one process for the life of
//   the machine, so a reused pid is never taken for the sweep that made the group. A group whose
//   process is gone (or is another process now) is a dead sweep's. Groups named by earlier lab
//   versions (`concurrency-lab-sweep-<pid>`) are a dead sweep's when that pid is gone or is not a
//   `lab sweep`.
// - the servers it starts carry LAB_SWEEP_OWNER=<pid>-<start time> in their environment (and so
//   do their own children): one whose owner is dead is a dead sweep's.
//
// A live sweep's group and servers are never touched, so two sweeps may run side by side.

import { readFileSync, readdirSync, realpathSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const GROUP_PREFIX = 'concurrency-lab-sweep-';
export const OWNER_ENV = 'LAB_SWEEP_OWNER';
const GROUP_NAME = /^concurrency-lab-sweep-(\d+)(?:-(\d+))?$/;

/** `<pid>-<start time>`: this sweep, for its groups' names and its servers' environment. */
export function ownerTag(pid = process.pid): string {
  return `${pid}-${startTime(pid) ?? 0}`;
}

export function groupName(pid = process.pid): string {
  return `${GROUP_PREFIX}${ownerTag(pid)}`;
}

/** Whether the sweep a tag (`<pid>-<start time>`, or a bare pid from an older lab) names is running. */
export function ownerAlive(tag: string): boolean {
  const match = /^(\d+)(?:-(\d+))?$/.exec(tag);
  if (!match) return false;
  const pid = Number(match[1]);
  const started = startTime(pid);
  if (started === null) return false;
  if (match[2] !== undefined) return started === Number(match[2]);
  return isLabSweep(pid);
}

/** The process's start time in clock ticks after boot (field 22 of /proc/<pid>/stat); null when it is gone. */
function startTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ...: comm may hold spaces and parentheses, so count after the last `)`
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return null; // a zombie has stopped: only its exit status is left
    const value = Number(fields[19]);
    return Number.isInteger(value) ? value : null;
  } catch {
    return null;
  }
}

function isLabSweep(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('sweep');
  } catch {
    return false;
  }
}

/** The directories a sweep makes its groups in: the v2 root, or the v1 cpu and cpuacct hierarchies. */
function hierarchies(root: string): string[] {
  const candidates = [root, ...['cpu', 'cpu,cpuacct', 'cpuacct,cpu', 'cpuacct'].map((m) => join(root, m))];
  const found = new Map<string, string>();
  for (const dir of candidates) {
    try {
      // v1 mounts are often one directory under several names (cpu -> cpu,cpuacct)
      const real = realpathSync(dir);
      if (!found.has(real) && readdirSync(dir).includes('cgroup.procs')) found.set(real, dir);
    } catch {
      // not mounted here
    }
  }
  return [...found.values()];
}

export interface Leftovers {
  /** The groups removed. */
  groups: string[];
  /** The processes killed: the stale servers (and their own children). */
  processes: number[];
  /** What could not be done, in words. */
  failures: string[];
}

/**
 * Kills the processes of dead sweeps (inside their groups, or marked in their environment) and
 * removes their groups. `root` is where cgroup filesystems are mounted.
 */
export async function removeLeftovers(root: string): Promise<Leftovers> {
  const leftovers: Leftovers = { groups: [], processes: [], failures: [] };
  const killed = new Set<number>();
  const kill = (pid: number) => {
    if (killed.has(pid) || pid === process.pid) return;
    try {
      process.kill(pid, 'SIGKILL');
      killed.add(pid);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH')
        leftovers.failures.push(`cannot kill ${pid}: ${(error as Error).message}`);
    }
  };
  const stale: string[] = [];
  for (const hierarchy of hierarchies(root)) {
    for (const entry of readdirSync(hierarchy)) {
      const match = GROUP_NAME.exec(entry);
      if (match && !ownerAlive(match[2] === undefined ? match[1]! : `${match[1]}-${match[2]}`)) {
        stale.push(join(hierarchy, entry));
      }
    }
  }
  for (const dir of stale) for (const pid of groupProcesses(dir)) kill(pid);
  for (const pid of markedOrphans()) kill(pid);
  for (const dir of stale) {
    try {
      await removeGroup(dir);
      leftovers.groups.push(dir);
    } catch (error) {
      leftovers.failures.push(`cannot remove ${dir}: ${(error as Error).message}`);
    }
  }
  leftovers.processes = [...killed].sort((a, b) => a - b);
  return leftovers;
}

/** One line for stderr, or null when there was nothing to remove. */
export function describeLeftovers({ groups, processes, failures }: Leftovers): string | null {
  if (groups.length + processes.length + failures.length === 0) return null;
  const parts: string[] = [];
  if (groups.length > 0) parts.push(`${groups.length} cgroup(s) ${groups.join(', ')}`);
  if (processes.length > 0) parts.push(`killed ${processes.length} stale lab serve process(es), pid ${processes.join(', ')}`);
  const removed = parts.length > 0 ? `removed what a killed sweep left: ${parts.join('; ')}` : '';
  const failed = failures.length > 0 ? `could not clean up what a killed sweep left: ${failures.join('; ')}` : '';
  return `lab sweep: ${[removed, failed].filter(Boolean).join('; ')}`;
}

function groupProcesses(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Processes whose environment names a sweep owner that is no longer running. */
function markedOrphans(): number[] {
  const orphans: number[] = [];
  const prefix = `${OWNER_ENV}=`;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return orphans; // no /proc: no native sweep ran here
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
    } catch {
      continue; // gone, or another user's (only root reads every process's environment)
    }
    const owner = environ
      .split('\0')
      .find((line) => line.startsWith(prefix))
      ?.slice(prefix.length);
    if (owner !== undefined && !ownerAlive(owner)) orphans.push(Number(entry));
  }
  return orphans;
}

/** Removes a group once its processes are gone; those still inside are killed (they are the sweep's). */
export async function removeGroup(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // another sweep removed it first
      for (const pid of groupProcesses(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await sleep(100);
    }
  }
  rmdirSync(dir);
}
