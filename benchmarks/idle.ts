// The lab's own cost when nothing is measured: with the load generator paused (its control API),
// how much CPU each of the lab's containers uses, from the cgroup counters dockerd reads for it
// (the stats API: read from outside, so reading costs the containers nothing), plus what Docker
// itself spends on the lab: dockerd, containerd and the containers' shims, which run every
// healthcheck (a `runc exec` per check, about 0.15 s of CPU on a small machine: the shim counts
// the runc processes it has reaped). Their sum is the lab's idle cost, the figure the bound is
// about. The whole host's busy cores (/proc/stat) are shown beside it, not judged: they also hold
// whatever else the machine does (a kernel thread, the CI runner), which is not the lab's.
// Run against a lab started with `make up`:
//
//   npm run build && node dist/benchmarks/idle.js [seconds, default 120] [--write]
//
// 120 s holds one healthcheck of every container (docker-compose.yml checks every 120 s). --write
// puts the table into benchmarks/README.md. The stack test asserts the bound with the same
// function (test/stack/stack.test.ts).

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { publishedUrl } from '../services/lab/ports.js';
import { LabDocker, usageBetween, type ContainerCounters, type LabContainer } from '../services/quota/docker.js';
import { LoadgenPause } from '../services/sweep/pause.js';

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux the lab runs on). */
const CLOCK_TICKS = 100;

/** What the lab may cost idle, in cores, whatever the machine: 0.15 of a 2-core machine. */
export const IDLE_BOUND_CORES = 0.15;

export interface IdleCost {
  seconds: number;
  containers: Array<{ name: string; service: string; cores: number }>;
  /** Every container of the lab. */
  totalCores: number;
  /** Docker's own processes over the same time (Linux, with the engine on this host; null elsewhere). */
  dockerCores: number | null;
  /** The lab's idle cost: its containers and Docker's work for them (the containers alone where Docker's cannot be read). */
  labCores: number;
  /** The whole host's busy cores over the same time (Linux; null elsewhere). */
  hostBusyCores: number | null;
}

/** Busy and total jiffies of the host (the first line of /proc/stat), or null where there is none. */
export function hostJiffies(): { busy: number; total: number } | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    const total = fields.slice(0, 8).reduce((sum, v) => sum + v, 0);
    return { busy: total - fields[3]! - fields[4]!, total };
  } catch {
    return null;
  }
}

/** Docker's processes, by the name the kernel gives them (15 characters: containerd-shim-runc-v2 is containerd-shim). */
const DOCKER_PROCESSES = new Set(['dockerd', 'containerd', 'containerd-shim', 'docker-proxy', 'runc']);

/**
 * CPU jiffies Docker's processes have used, their reaped children included (the shims reap the
 * runc of every healthcheck and exec), or null where no dockerd runs on this host (Docker
 * Desktop's VM, a remote engine). A process that starts and ends between two readings without
 * being reaped by one of them is missed; a healthcheck's own command is counted twice (in its
 * container, and in the shim that reaped it), a few milliseconds.
 */
export function dockerJiffies(): number | null {
  let total = 0;
  let found = false;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    if (!DOCKER_PROCESSES.has(name)) continue;
    if (name === 'dockerd') found = true;
    // After the name: state, ppid, ... utime stime cutime cstime are fields 14-17 of stat(5).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return found ? total : null;
}

/** Busy cores between two readings of hostJiffies(). */
export function busyCores(
  before: ReturnType<typeof hostJiffies>,
  after: ReturnType<typeof hostJiffies>,
  cpus: number,
): number | null {
  if (!before || !after || after.total === before.total) return null;
  return ((after.busy - before.busy) / (after.total - before.total)) * cpus;
}

/** The host's busy cores over `seconds` (its baseline, before the lab starts). */
export async function hostBusyOver(seconds: number, cpus: number): Promise<number | null> {
  const before = hostJiffies();
  await sleep(seconds * 1000);
  return busyCores(before, hostJiffies(), cpus);
}

/**
 * Pauses the lab's load generator, lets what was in flight settle, then measures every
 * container for `seconds`; resumes the load at the end.
 */
export async function measureIdleCost(seconds: number, loadgenUrl = publishedUrl('LOADGEN_PORT')): Promise<IdleCost> {
  const docker = new LabDocker();
  const cpus = await docker.hostCpus();
  const pause = new LoadgenPause(loadgenUrl);
  const problem = await pause.renew(seconds + 120);
  if (pause.problem !== null) throw new Error(problem ?? pause.problem);
  try {
    await sleep(5000); // connections closing, the last scrapes of the load's series
    const containers = (await docker.containers()).filter((c) => c.running);
    const read = () => Promise.all(containers.map((c) => docker.stats(c).catch(() => null)));
    // The host's window excludes the reads: asking dockerd for 20 containers' counters is the
    // benchmark's own cost (about 0.015 cores over a minute), not the lab's.
    const before = await read();
    const hostBefore = hostJiffies();
    const dockerBefore = dockerJiffies();
    await sleep(seconds * 1000);
    const dockerAfter = dockerJiffies();
    const hostAfter = hostJiffies();
    const after = await read();
    const rows = containers.map((c: LabContainer, i) => ({
      name: c.name,
      service: c.service,
      cores: used(before[i] ?? null, after[i] ?? null),
    }));
    const totalCores = rows.reduce((sum, r) => sum + r.cores, 0);
    const dockerCores =
      dockerBefore === null || dockerAfter === null ? null : (dockerAfter - dockerBefore) / CLOCK_TICKS / seconds;
    return {
      seconds,
      containers: rows.sort((a, b) => b.cores - a.cores),
      totalCores,
      dockerCores,
      labCores: totalCores + (dockerCores ?? 0),
      hostBusyCores: busyCores(hostBefore, hostAfter, cpus),
    };
  } finally {
    await pause.end();
  }
}

/** This host's CPUs, for the table's caption. */
const machineCpus = () => availableParallelism();

function used(before: ContainerCounters | null, after: ContainerCounters | null): number {
  if (!before || !after) return NaN;
  return usageBetween(before, after).coresUsed ?? NaN;
}

export function idleTable(cost: IdleCost, baseline: number | null = null): string {
  const lines = [
    `| container | cores used, idle (${cost.seconds} s) |`,
    '|---|---|',
    ...cost.containers.map((c) => `| ${c.name} | ${c.cores.toFixed(4)} |`),
    `| all the lab's containers | ${cost.totalCores.toFixed(3)} |`,
  ];
  if (cost.dockerCores !== null)
    lines.push(
      `| Docker's processes (dockerd, containerd, the shims and the healthchecks' runc) | ${cost.dockerCores.toFixed(3)} |`,
    );
  lines.push(`| **the lab's idle cost** | **${cost.labCores.toFixed(3)}** |`);
  if (cost.hostBusyCores !== null)
    lines.push(
      `| for comparison, the whole host (/proc/stat), everything it ran${baseline === null ? '' : `; ${baseline.toFixed(3)} before the lab started`} | ${cost.hostBusyCores.toFixed(3)} |`,
    );
  return lines.join('\n');
}

async function main(args: string[]): Promise<void> {
  const seconds = Number(args.find((a) => /^\d+$/.test(a)) ?? 120);
  console.error(`idle cost: pausing the load generator and measuring every container for ${seconds} s`);
  const cost = await measureIdleCost(seconds);
  const table = idleTable(cost);
  console.log(table);
  console.log(
    `\nthe lab's idle cost ${cost.labCores.toFixed(3)} cores (bound ${IDLE_BOUND_CORES}); reproduce: make up && node dist/benchmarks/idle.js ${seconds}`,
  );
  if (args.includes('--write')) {
    const path = fileURLToPath(new URL('../../benchmarks/README.md', import.meta.url));
    const text = readFileSync(path, 'utf8');
    const marked = /<!-- idle-cost -->[\s\S]*?<!-- \/idle-cost -->/;
    if (!marked.test(text)) throw new Error(`${path} has no <!-- idle-cost --> ... <!-- /idle-cost --> section`);
    const when = new Date().toISOString().slice(0, 10);
    writeFileSync(
      path,
      text.replace(
        marked,
        `<!-- idle-cost -->\nMeasured ${when}, \`node dist/benchmarks/idle.js ${seconds}\` against a plain \`make up\`, ${cost.containers.length} containers on ${machineCpus()} cores:\n\n${table}\n<!-- /idle-cost -->`,
      ),
    );
    console.error(`wrote the table into ${path}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
