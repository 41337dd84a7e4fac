// Where a sweep's quotas are imposed. A backend sets a variant's quota for one point, says where
// to send load, reads the variant's cgroup counters around the measurement, and puts everything
// back at the end. The docker backend changes the compose lab's containers through the Docker
// API; the native one (native.ts) runs `lab serve` processes itself.

import type { Target } from '../loadgen/options.js';
import { localTarget } from '../loadgen/local.js';
import { measure, type MeasuredProbe, type MeasureOptions, type Measurement } from '../loadgen/measure.js';
import { measureThroughLoadgen } from './remote.js';
import { changeQuota, formatCores } from '../quota/cpus.js';
import { LabDocker, type ContainerCounters, type LabContainer, type LabKind } from '../quota/docker.js';
import { parseExposition, pick } from '../lab/exposition.js';
import { publishedVariantPort } from '../lab/ports.js';
import { findVariant } from '../variants/index.js';
import type { SweepMode } from './file.js';

export type Counters = ContainerCounters;

/** Measures one stretch against the point's variant (locally, or by the lab's own load generator). */
export type MeasureAt = (probes: MeasuredProbe[], options: MeasureOptions) => Promise<Measurement>;

export interface PreparedPoint {
  /** Where the load goes (a connection per request for a variant whose clients take turns; the hog keeps its own). */
  target: Target;
  measure: MeasureAt;
  /** The quota in force. */
  cpus: number;
  quotaHolders: number;
  /** fib_workers now (null when it cannot be read). */
  workers(): Promise<number | null>;
  /** The cgroup counters of whatever holds the quota, summed; null where they cannot be read. */
  counters(): Promise<Counters | null>;
  release(): Promise<void>;
}

export interface SweepBackend {
  mode: SweepMode;
  /** How quotas are imposed, in words, for the output and the sweep file. */
  isolation: string;
  hostCpus: number;
  /** The quota this backend imposes when `cpus` is asked for. */
  effectiveCpus(cpus: number): number;
  /** Checks the variants can be swept (running, known); throws ConfigError (exit 2) otherwise. */
  check(variants: string[]): Promise<void>;
  prepare(variant: string, cpus: number): Promise<PreparedPoint>;
  /** The baseline variant with no quota to speak of (all the host's CPUs), for t(fib(n)). */
  baseline(variant: string): Promise<{ target: Target; measure: MeasureAt; release(): Promise<void> }>;
  /** Puts back every quota changed and stops everything started; safe to call twice. */
  restore(): Promise<string[]>;
}

export function sumCounters(all: Array<Counters | null>): Counters | null {
  if (all.length === 0 || all.some((c) => c === null)) return null;
  const add = (key: 'usageSeconds' | 'periods' | 'throttledPeriods' | 'memoryBytes') =>
    all.some((c) => c![key] === null) ? null : all.reduce((sum, c) => sum + c![key]!, 0);
  return {
    at: Math.max(...all.map((c) => c!.at)),
    usageSeconds: add('usageSeconds'),
    periods: add('periods'),
    throttledPeriods: add('throttledPeriods'),
    memoryBytes: add('memoryBytes'),
  };
}

/** A stretch measured from this process: the local measure(). */
export const measureFromHere =
  (target: Target): MeasureAt =>
  (probes, options) =>
    measure(target, probes, options);

/**
 * The compose lab: quotas through the Docker API; the load sent by the lab's own load generator
 * from inside the compose network (remote.ts), or, where it cannot (no generator, or one without
 * POST /measure), from here on the published ports of 127.0.0.1, said once. The same against the
 * lab as a swarm stack (docs/swarm.md): there the quota is the service's, and swarm replaces the
 * variant's task at every point (LabDocker.setQuotaCores waits for the new one).
 */
export class DockerBackend implements SweepBackend {
  readonly mode = 'docker' as const;
  readonly isolation: string;
  /** Each quota's value before the sweep, by LabDocker.quotaKey (the container, or in swarm its service). */
  private readonly original = new Map<string, { container: LabContainer; variant: string; cores: number | null }>();
  /** Where the load comes from; set by check(). */
  private loadFrom: 'loadgen' | 'host' = 'host';

  private constructor(
    private readonly docker: LabDocker,
    readonly hostCpus: number,
    private readonly confirmTimeoutMs: number,
    private readonly loadgenUrl: string,
    private readonly loadgenHeaders: Record<string, string>,
    private readonly kind: LabKind,
  ) {
    this.isolation =
      kind === 'swarm'
        ? "docker: NanoCPUs of the swarm stack's services, through the service API (each change replaces the task)"
        : 'docker: NanoCpus of the compose containers, through the Docker API';
  }

  static async create(
    confirmTimeoutMs: number,
    loadgenUrl: string,
    loadgenHeaders: Record<string, string> = {},
    docker = new LabDocker(),
  ): Promise<DockerBackend> {
    return new DockerBackend(docker, await docker.hostCpus(), confirmTimeoutMs, loadgenUrl, loadgenHeaders, await docker.kind());
  }

  /** Where the sweep's requests come from, in words (the sweep prints it). */
  get loadSource(): string {
    return this.loadFrom === 'loadgen'
      ? `load from the lab's load generator inside the ${this.kind === 'swarm' ? "stack's overlay" : 'compose'} network (${this.loadgenUrl}/measure)`
      : 'load from this host on the published ports (no load generator with POST /measure)';
  }

  /** Measures through the generator where it can, else from here. */
  private measureFor(variant: string, target: Target): MeasureAt {
    if (this.loadFrom === 'host') return measureFromHere(target);
    return (probes, options) => measureThroughLoadgen(this.loadgenUrl, variant, probes, options, this.loadgenHeaders);
  }

  effectiveCpus(cpus: number): number {
    return cpus;
  }

  async check(variants: string[]): Promise<void> {
    await this.docker.variants(variants);
    // The generator knows /measure when it answers a GET with 405 (POST only) rather than 404.
    const probe = await fetch(`${this.loadgenUrl}/measure`, { signal: AbortSignal.timeout(3000) }).catch(() => null);
    await probe?.body?.cancel();
    this.loadFrom = probe?.status === 405 ? 'loadgen' : 'host';
  }

  private async setQuota(variant: string, cpus: number): Promise<{ holders: LabContainer[]; workers: number | null }> {
    const { quota } = (await this.docker.variants([variant]))[0]!;
    // In swarm the quota is the service's, one per service: its tasks are replaced at each change.
    const holders = await this.docker.quotaHolders(quota);
    for (const container of holders) {
      const key = await this.docker.quotaKey(container);
      if (!this.original.has(key)) {
        this.original.set(key, { container, variant, cores: await this.docker.quotaCores(container) });
      }
    }
    const changes = await Promise.all(holders.map((c) => changeQuota(this.docker, variant, c, cpus, this.confirmTimeoutMs)));
    const failed = changes.find((change) => change.error !== null);
    if (failed) throw new Error(`${variant}: quota ${cpus} not confirmed in ${failed.container}: ${failed.error}`);
    // The containers now holding the quota (new ones where swarm replaced the tasks).
    const now = (await this.docker.variants([variant]))[0]!.quota;
    return { holders: now, workers: changes[0]?.workers ?? null };
  }

  async prepare(variant: string, cpus: number): Promise<PreparedPoint> {
    const { holders } = await this.setQuota(variant, cpus);
    const target = localTarget(variant, publishedVariantPort(findVariant(variant)!.hostPort));
    return {
      target,
      measure: this.measureFor(variant, target),
      cpus,
      quotaHolders: holders.length,
      workers: async () => {
        const samples = await Promise.all(
          holders.map(async (c) => pick(parseExposition(await this.docker.metricsText(c)), 'fib_workers')),
        );
        return samples.some((s) => s === null) ? null : samples.reduce((a, b) => a! + b!, 0);
      },
      counters: async () => sumCounters(await Promise.all(holders.map((c) => this.docker.stats(c).catch(() => null)))),
      release: async () => {},
    };
  }

  async baseline(variant: string) {
    await this.setQuota(variant, this.hostCpus);
    const target = localTarget(variant, publishedVariantPort(findVariant(variant)!.hostPort));
    return { target, measure: this.measureFor(variant, target), release: async () => {} };
  }

  async restore(): Promise<string[]> {
    const restored: string[] = [];
    for (const { container, variant, cores } of this.original.values()) {
      try {
        await this.docker.setQuotaCores(container, cores, this.confirmTimeoutMs);
        restored.push(`${variant} ${formatCores(cores)}`);
      } catch (error) {
        restored.push(`${variant}: NOT restored to ${formatCores(cores)}: ${(error as Error).message}`);
      }
    }
    this.original.clear();
    return restored;
  }
}
