// `lab cpus <variant|all> <cores>` and `lab cpus --reset`: changes the CPU quota of running
// variants through the Docker API (NanoCpus only, the same field compose's `cpus:` sets), then
// confirms the change where it matters, in the variant's own `lab_cpu_quota_cores` (what its
// cgroup now says), and prints before and after.

import { LabDocker, LabNotRunningError, type LabContainer, type VariantContainers } from './docker.js';
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
  const changes = await Promise.all(
    variants.flatMap(({ variant, quota }) =>
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
  await docker.setQuotaCores(container, cores);
  change.afterCores = await docker.quotaCores(container);
  const started = Date.now();
  let lastError = 'never read';
  while (Date.now() - started < confirmTimeoutMs) {
    try {
      const figures = await exported(docker, container);
      change.exportedAfter = figures.quota;
      change.workers = figures.workers;
      if (figures.quota !== null && Math.abs(figures.quota - cores) < 1e-6) {
        change.confirmedAfterMs = Date.now() - started;
        return change;
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
  const where = change.container === `concurrency-lab-${change.variant}-1` ? '' : ` (${change.container})`;
  if (change.error) return `${head}${where}  ${exportedText}: ${change.error}`;
  const confirmed = `confirmed after ${(change.confirmedAfterMs! / 1000).toFixed(1)} s`;
  // Pools keep their start size unless POOL_FOLLOWS_QUOTA is on (then they resize within a few
  // seconds): fib_workers shows which, right after the change.
  const pool = change.workers === null ? '' : `; fib_workers ${change.workers}`;
  return `${head}${where}  ${exportedText} (${confirmed})${pool}`;
}
