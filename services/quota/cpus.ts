// `lab cpus <variant|all> <cores>` and `lab cpus --reset`: changes the CPU quota of running
// variants through the Docker API (NanoCpus only, the same field compose's `cpus:` sets), then
// confirms the change where it matters, in the variant's own `lab_cpu_quota_cores` (what its
// cgroup now says), and prints before and after. On a swarm stack the quota is the service's:
// swarm replaces its tasks to apply a new limit (no live change there), and the new tasks are
// confirmed the same way once they run.

import { LabDocker, LabNotRunningError, SWARM_STACK, type LabContainer, type VariantContainers } from './docker.js';
import { envQuota, envVariable } from './env.js';
import type { CpusOptions } from './options.js';
import { parseExposition, pick } from '../lab/exposition.js';
import { postAnnotation } from '../lab/grafana.js';

export type { CpusOptions } from './options.js';

/** What one container's quota was and became, and when its variant saw it. */
export interface QuotaChange {
  variant: string;
  container: string;
  beforeCores: number | null;
  afterCores: number | null;
  /** lab_cpu_quota_cores read inside the container before and after (null: not readable). */
  exportedBefore: number | null;
  exportedAfter: number | null;
  confirmedAfterMs: number | null;
  /** fib_workers after the change: pools are sized at start, so they may not match. */
  workers: number | null;
  /** Swarm only: whether the service's tasks were replaced, and how many of them this node runs (where it read them). */
  swarm?: { replaced: boolean; localTasks: number };
  error: string | null;
}

export async function runCpus(options: CpusOptions, docker = new LabDocker()): Promise<QuotaChange[]> {
  const hostCpus = await docker.hostCpus();
  const variants: VariantContainers[] =
    options.reset || options.target === 'all' ? await docker.runningVariants() : await docker.variants([options.target!]);
  if (variants.length === 0) throw new LabNotRunningError('no variant of the lab is running: start it with make up');
  const wanted = new Map<string, number>();
  for (const { variant } of variants) {
    let cores = options.reset ? envQuota(variant, hostCpus, options.envFile) : options.cores!;
    if (cores > hostCpus) {
      const source = options.reset ? `${envVariable(variant)}=${cores}` : `${cores} cores`;
      console.error(
        `lab cpus: ${source} is more than the Docker host's ${hostCpus} CPUs (Docker refuses more): using ${hostCpus}`,
      );
      cores = hostCpus;
    }
    wanted.set(variant, cores);
  }
  if ((await docker.kind()) === 'swarm') {
    console.error(
      "lab cpus: a swarm stack: the quota is the service's, and swarm replaces its tasks to apply a new one (each restarts; its figures start afresh)",
    );
  }
  const holders = await Promise.all(
    variants.map(async ({ variant, quota }) => ({ variant, quota: await docker.quotaHolders(quota) })),
  );
  const changes = await Promise.all(
    holders.flatMap(({ variant, quota }) =>
      quota.map((container) => changeQuota(docker, variant, container, wanted.get(variant)!, options.confirmTimeoutMs)),
    ),
  );
  for (const change of changes) console.log(describe(change));
  // One annotation per variant changed, on the dashboards of a running Grafana (skipped where none runs).
  const changed = [...wanted].filter(([variant]) => changes.some((c) => c.variant === variant && c.error === null));
  await Promise.all(
    changed.map(([variant, cores]) => postAnnotation(`lab cpus: ${variant} quota ${formatCores(cores)}`, ['lab-cpus', variant])),
  );
  return changes;
}

/** Sets one container's quota and waits until the variant exports it. */
export async function changeQuota(
  docker: LabDocker,
  variant: string,
  container: LabContainer,
  cores: number,
  confirmTimeoutMs: number,
): Promise<QuotaChange> {
  const change: QuotaChange = {
    variant,
    container: container.name,
    beforeCores: await docker.quotaCores(container),
    afterCores: null,
    exportedBefore: null,
    exportedAfter: null,
    confirmedAfterMs: null,
    workers: null,
    error: null,
  };
  change.exportedBefore = await exported(docker, container).then(
    (figures) => figures.quota,
    () => null,
  );
  const started = Date.now();
  if ((await docker.kind()) === 'swarm') return changeServiceQuota(docker, change, container, cores, confirmTimeoutMs, started);
  await docker.setQuotaCores(container, cores);
  change.afterCores = await docker.quotaCores(container);
  return confirm(docker, change, [container], cores, confirmTimeoutMs, started);
}

/** Swarm: the service's limit, its tasks replaced, then each new task on this node confirmed. */
async function changeServiceQuota(
  docker: LabDocker,
  change: QuotaChange,
  container: LabContainer,
  cores: number,
  confirmTimeoutMs: number,
  started: number,
): Promise<QuotaChange> {
  change.container = `${SWARM_STACK}_${container.service}`;
  let replaced: boolean;
  try {
    replaced = await docker.setQuotaCores(container, cores, confirmTimeoutMs);
  } catch (error) {
    change.error = (error as Error).message;
    return change;
  }
  const local = (await docker.containers()).filter((c) => c.running && c.service === container.service);
  change.swarm = { replaced, localTasks: local.length };
  if (local.length === 0) {
    // Every task runs on another node: swarm's word (running, with the new limit) is the confirmation.
    change.afterCores = cores;
    change.confirmedAfterMs = Date.now() - started;
    return change;
  }
  change.afterCores = await docker.quotaCores(local[0]!);
  return confirm(docker, change, local, cores, confirmTimeoutMs, started);
}

/** Waits until every container exports the new quota in lab_cpu_quota_cores. */
async function confirm(
  docker: LabDocker,
  change: QuotaChange,
  containers: LabContainer[],
  cores: number,
  confirmTimeoutMs: number,
  started: number,
): Promise<QuotaChange> {
  const deadline = Date.now() + confirmTimeoutMs;
  let lastError = 'never read';
  const pending = [...containers];
  while (Date.now() < deadline) {
    try {
      const figures = await exported(docker, pending[0]!);
      change.exportedAfter = figures.quota;
      change.workers = figures.workers;
      if (figures.quota !== null && Math.abs(figures.quota - cores) < 1e-6) {
        pending.shift();
        if (pending.length === 0) {
          change.confirmedAfterMs = Date.now() - started;
          return change;
        }
        continue;
      }
      lastError = `lab_cpu_quota_cores is ${figures.quota}`;
    } catch (error) {
      lastError = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  change.error = `not confirmed within ${confirmTimeoutMs / 1000} s: ${lastError}`;
  return change;
}

async function exported(docker: LabDocker, container: LabContainer) {
  const samples = parseExposition(await docker.metricsText(container));
  return { quota: pick(samples, 'lab_cpu_quota_cores'), workers: pick(samples, 'fib_workers') };
}

export function formatCores(cores: number | null): string {
  if (cores === null) return 'no quota';
  const text = Number(cores.toFixed(3)).toString();
  return `${text} ${cores === 1 ? 'core' : 'cores'}`;
}

function describe(change: QuotaChange): string {
  const head = `${change.variant.padEnd(12)} ${formatCores(change.beforeCores)} -> ${formatCores(change.afterCores)}`;
  const exportedText = `lab_cpu_quota_cores ${change.exportedBefore ?? '-'} -> ${change.exportedAfter ?? '-'}`;
  const where =
    change.container === `concurrency-lab-${change.variant}-1` || change.container === `${SWARM_STACK}_${change.variant}`
      ? ''
      : ` (${change.container})`;
  if (change.error) return `${head}${where}  ${exportedText}: ${change.error}`;
  const swarm = change.swarm;
  const how = !swarm
    ? ''
    : !swarm.replaced
      ? ', no task replaced (the limit was already that)'
      : swarm.localTasks === 0
        ? ', tasks replaced; they run on other nodes: swarm saw them running, their export not read from here'
        : `, ${swarm.localTasks} task${swarm.localTasks === 1 ? '' : 's'} replaced by swarm`;
  const confirmed = `confirmed after ${(change.confirmedAfterMs! / 1000).toFixed(1)} s${how}`;
  // Pools keep their start size unless POOL_FOLLOWS_QUOTA is on (then they resize within a few
  // seconds): fib_workers shows which, right after the change.
  const pool = change.workers === null ? '' : `; fib_workers ${change.workers}`;
  return `${head}${where}  ${exportedText} (${confirmed})${pool}`;
}
