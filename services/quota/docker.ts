// The lab's containers through the Docker API (dockerode): find a variant's containers by their
// compose labels, change their CPU quota (NanoCpus), read their cgroup counters (the stats API,
// read by dockerd from outside, so reading costs the container nothing) and read a variant's own
// /metrics by exec'ing bash inside its container (no JavaScript runtime per read: `lab cpus`
// polls it until the new quota shows).
//
// Why exec for /metrics: the metrics port is not published, and exec works the same from the
// host and from the one-shot `make cpus` container (both hold the Docker socket), reads the
// variant's own figures the moment they change (Prometheus would add up to a scrape interval),
// and needs no route into the compose network.
//
// The same lab deployed as a Docker Swarm stack (docker-stack.yml, docs/swarm.md) is found by its
// stack label instead. There a container's limits cannot change: the quota is the service's
// (TaskTemplate.Resources.Limits.NanoCPUs), and swarm replaces the tasks to apply a new one, so
// setQuotaCores updates the service and waits until its new tasks run (swarm calls a task running
// once its healthcheck passes). Only the containers on this node are listed (exec and stats need
// the engine that runs them): run `lab cpus` and `lab ps` on the node of the variants.

import Docker from 'dockerode';
import { PassThrough } from 'node:stream';
import { ConfigError } from '../lab/errors.js';
import { dockerOptions } from './docker-host.js';
import { VARIANT_NAMES, findVariant } from '../variants/index.js';

export const COMPOSE_PROJECT = 'concurrency-lab';
/** The swarm stack's name (tools/swarm.ts): its services are concurrency-lab_<service>. */
export const SWARM_STACK = 'concurrency-lab';
const NANO = 1e9;

/** How the lab runs: compose containers, or the tasks of a swarm stack. */
export type LabKind = 'compose' | 'swarm';

/** What a swarm service update needs to read back (dockerode's types leave the spec untyped). */
interface SwarmServiceInfo {
  Version: { Index: number };
  Spec: {
    Mode?: { Replicated?: { Replicas?: number } };
    TaskTemplate: {
      Resources?: { Limits?: { NanoCPUs?: number } };
      ContainerSpec?: { Healthcheck?: { Interval?: number }; StopGracePeriod?: number };
    };
  };
  UpdateStatus?: { State?: string; Message?: string };
}

interface SwarmTask {
  DesiredState: string;
  Status: { State: string; Err?: string; ContainerStatus?: { ContainerID?: string } };
  Spec: { Resources?: { Limits?: { NanoCPUs?: number } } };
}

/** One container of a variant. */
export interface LabContainer {
  id: string;
  /** The container's name without the leading slash (concurrency-lab-threadpool-1). */
  name: string;
  /** Its compose service (the variant's own, or one of its companions that hold its quota). */
  service: string;
  running: boolean;
}

/**
 * A variant's containers. Its quota applies to its worker containers when it has any (the
 * row's `companions.quotaServices`: a front plus scaled worker containers, the quota meaning per
 * worker), else to its one container.
 */
export interface VariantContainers {
  variant: string;
  all: LabContainer[];
  /** The containers whose quota `lab cpus` sets: the workers, or the variant's own container. */
  quota: LabContainer[];
}

/**
 * The lab (or one variant) is not running, or Docker cannot be reached: a ConfigError, so `lab`
 * exits 2 with this one line, which says what to do rather than which option was wrong.
 */
export class LabNotRunningError extends ConfigError {
  constructor(message: string) {
    super('lab', message);
    this.message = message;
    this.name = 'LabNotRunningError';
  }
}

export class LabDocker {
  readonly docker: Docker;

  /** Where the engine was looked for (in the message when it cannot be reached). */
  readonly source: string;

  constructor(docker?: Docker) {
    if (docker) {
      this.docker = docker;
      this.source = 'the given client';
    } else {
      // DOCKER_HOST, else the active Docker context, else /var/run/docker.sock (docker-host.ts).
      const { options, source } = dockerOptions();
      this.docker = new Docker(options);
      this.source = source;
    }
  }

  private kindFound: Promise<LabKind> | null = null;

  /**
   * A swarm stack when this engine manages one named concurrency-lab, else compose (an engine in
   * no swarm, or a worker node, answers the services API with an error).
   */
  kind(): Promise<LabKind> {
    this.kindFound ??= this.docker.listServices({ filters: { label: [`com.docker.stack.namespace=${SWARM_STACK}`] } }).then(
      (services) => (services.length > 0 ? 'swarm' : 'compose'),
      () => 'compose' as const,
    );
    return this.kindFound;
  }

  /**
   * The containers to change a quota through: every one in compose; in swarm one per service (the
   * quota is the service's, and one update replaces all its tasks).
   */
  async quotaHolders(containers: readonly LabContainer[]): Promise<LabContainer[]> {
    if ((await this.kind()) === 'compose') return [...containers];
    return containers.filter((c, i) => containers.findIndex((other) => other.service === c.service) === i);
  }

  /** What identifies a quota across changes: the container in compose, the service in swarm (its tasks are replaced). */
  async quotaKey(container: LabContainer): Promise<string> {
    return (await this.kind()) === 'swarm' ? `service:${container.service}` : container.id;
  }

  /** The Docker host's CPU count: Docker refuses a quota above it. */
  async hostCpus(): Promise<number> {
    const info = (await this.docker.info()) as { NCPU?: number };
    return info.NCPU ?? 1;
  }

  /** Every container of the compose project, running or not, by service. */
  async containers(): Promise<LabContainer[]> {
    let list: Docker.ContainerInfo[];
    const swarm = (await this.kind()) === 'swarm';
    try {
      list = await this.docker.listContainers({
        all: true,
        // Compose's own service containers only: the image carries the project and service
        // labels too (compose build puts them there), so `docker run` of it (make cpus's
        // one-shot) would otherwise pass for a variant. In swarm: the stack's tasks on this node.
        filters: {
          label: swarm
            ? [`com.docker.stack.namespace=${SWARM_STACK}`]
            : [`com.docker.compose.project=${COMPOSE_PROJECT}`, 'com.docker.compose.oneoff=False'],
        },
      });
    } catch (error) {
      throw new LabNotRunningError(`cannot reach the Docker daemon (at ${this.source}): ${(error as Error).message}`);
    }
    return list
      .map((c) => ({
        id: c.Id,
        name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
        service: swarm
          ? (c.Labels['com.docker.swarm.service.name'] ?? '').replace(`${SWARM_STACK}_`, '')
          : (c.Labels['com.docker.compose.service'] ?? ''),
        running: c.State === 'running',
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The running containers of each variant named; an unknown or stopped variant is a ConfigError. */
  async variants(names: readonly string[]): Promise<VariantContainers[]> {
    for (const name of names) checkVariantName(name);
    const containers = await this.containers();
    return names.map((variant) => {
      const holders = quotaServices(variant);
      const all = containers.filter((c) => c.service === variant || holders.includes(c.service));
      const running = all.filter((c) => c.running);
      if (running.length === 0) {
        throw new LabNotRunningError(
          `${variant} is not running (no running container of compose project ${COMPOSE_PROJECT}): start the lab with make up`,
        );
      }
      const workers = running.filter((c) => holders.includes(c.service));
      return { variant, all: running, quota: workers.length > 0 ? workers : running };
    });
  }

  /** Every variant with at least one running container, in the order of the variant table. */
  async runningVariants(): Promise<VariantContainers[]> {
    const containers = await this.containers();
    const names = VARIANT_NAMES.filter((variant) =>
      containers.some((c) => c.running && (c.service === variant || quotaServices(variant).includes(c.service))),
    );
    return this.variants(names);
  }

  /** The container's CPU quota in cores (NanoCpus), or null when it has none. */
  async quotaCores(container: LabContainer): Promise<number | null> {
    const inspect = await this.docker.getContainer(container.id).inspect();
    const nano = inspect.HostConfig.NanoCpus ?? 0;
    if (nano > 0) return nano / NANO;
    // A quota set the other way (docker update --cpu-quota) shows here instead.
    const quota = inspect.HostConfig.CpuQuota ?? 0;
    const period = inspect.HostConfig.CpuPeriod || 100_000;
    return quota > 0 ? quota / period : null;
  }

  /**
   * Sets the container's quota; null removes it. In swarm, the quota of the container's service:
   * returns once its tasks run with the new limit (within `timeoutMs` plus what its stop grace
   * period and healthcheck interval need), having replaced them; true when they were replaced.
   */
  async setQuotaCores(container: LabContainer, cores: number | null, timeoutMs = 15_000): Promise<boolean> {
    const nano = cores === null ? 0 : Math.round(cores * NANO);
    if ((await this.kind()) === 'swarm') return this.setServiceQuota(container.service, nano, timeoutMs);
    await this.docker.getContainer(container.id).update({ NanoCpus: nano });
    return false;
  }

  /** The service's NanoCPUs limit through the service API, then waits until its tasks carry it and run. */
  private async setServiceQuota(service: string, nano: number, timeoutMs: number): Promise<boolean> {
    const name = `${SWARM_STACK}_${service}`;
    const handle = this.docker.getService(name);
    const info = (await handle.inspect()) as SwarmServiceInfo;
    const template = info.Spec.TaskTemplate;
    if ((template.Resources?.Limits?.NanoCPUs ?? 0) === nano) return false; // no restart for nothing
    template.Resources = { ...template.Resources, Limits: { ...template.Resources?.Limits, NanoCPUs: nano } };
    // The version read with the spec: swarm refuses the update if the service changed meanwhile.
    await handle.update({ _query: { version: info.Version.Index }, _body: info.Spec });
    // A task runs once its first healthcheck passes, one interval after it starts, and its
    // predecessor may take its whole stop grace period to leave first.
    const spec = template.ContainerSpec;
    const boundMs = timeoutMs + ((spec?.StopGracePeriod ?? 10e9) + 3 * (spec?.Healthcheck?.Interval ?? 30e9)) / 1e6;
    const started = Date.now();
    let state = 'no task yet';
    while (Date.now() - started < boundMs) {
      const current = (await handle.inspect()) as SwarmServiceInfo;
      if (current.UpdateStatus?.State === 'paused' || current.UpdateStatus?.State === 'rollback_completed') {
        throw new Error(`swarm ${current.UpdateStatus.State} the update of ${name}: ${current.UpdateStatus.Message}`);
      }
      const tasks = (await this.docker.listTasks({
        filters: { service: [name], 'desired-state': ['running'] },
      })) as SwarmTask[];
      const replicas = current.Spec.Mode?.Replicated?.Replicas ?? 1;
      const fresh = tasks.filter((t) => (t.Spec.Resources?.Limits?.NanoCPUs ?? 0) === nano);
      const running = fresh.filter((t) => t.Status.State === 'running');
      if (running.length >= replicas && fresh.length === tasks.length) return true;
      state = `${running.length} of ${replicas} new tasks running (${tasks.map((t) => t.Status.State + (t.Status.Err ? `: ${t.Status.Err}` : '')).join(', ')})`;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error(`${name}: ${state} after ${(boundMs / 1000).toFixed(0)} s`);
  }

  /** The cgroup counters dockerd reads for the container, from outside it. */
  async stats(container: LabContainer): Promise<ContainerCounters> {
    const stats = await this.docker.getContainer(container.id).stats({ stream: false, 'one-shot': true });
    const memory = stats.memory_stats as { usage?: number; stats?: Record<string, number> };
    const inactive = memory.stats?.total_inactive_file ?? memory.stats?.inactive_file ?? 0;
    return {
      at: Date.now(),
      usageSeconds: stats.cpu_stats.cpu_usage.total_usage / NANO,
      periods: stats.cpu_stats.throttling_data?.periods ?? 0,
      throttledPeriods: stats.cpu_stats.throttling_data?.throttled_periods ?? 0,
      memoryBytes: memory.usage === undefined ? null : Math.max(0, memory.usage - inactive),
    };
  }

  /**
   * The variant's own /metrics, read from inside its container by bash (in every lab image, the
   * Node and the Python one), over HTTP/1.0 on 127.0.0.1. Fails when the exec fails, the status
   * is not 200, or the endpoint does not answer within `timeoutMs`.
   */
  async metricsText(container: LabContainer, timeoutMs = 10_000): Promise<string> {
    const script =
      'exec 3<>"/dev/tcp/127.0.0.1/${METRICS_PORT:-9464}" || exit 1; ' +
      "printf 'GET /metrics HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3; " +
      'read -r status <&3; case $status in *" 200 "*) ;; *) echo "$status" >&2; exit 1;; esac; ' +
      'while read -r line <&3 && [ "${line%$\'\\r\'}" != "" ]; do :; done; cat <&3';
    const exec = await this.docker.getContainer(container.id).exec({
      Cmd: ['bash', '-c', script],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    stdout.on('data', (chunk: Buffer) => out.push(chunk));
    stderr.on('data', (chunk: Buffer) => err.push(chunk));
    this.docker.modem.demuxStream(stream, stdout, stderr);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.destroy();
        reject(new Error(`reading /metrics in ${container.name} took more than ${timeoutMs} ms`));
      }, timeoutMs);
      stream.once('end', () => (clearTimeout(timer), resolve()));
      stream.once('close', () => (clearTimeout(timer), resolve()));
      stream.once('error', (error: Error) => (clearTimeout(timer), reject(error)));
    });
    const { ExitCode } = await exec.inspect();
    if (ExitCode !== 0) {
      throw new Error(`reading /metrics in ${container.name} failed (${ExitCode}): ${Buffer.concat(err).toString().trim()}`);
    }
    return Buffer.concat(out).toString();
  }
}

/** Cumulative cgroup counters at one moment. */
export interface ContainerCounters {
  at: number;
  usageSeconds: number | null;
  periods: number | null;
  throttledPeriods: number | null;
  memoryBytes: number | null;
}

/** Cores used and the share of CFS periods throttled between two readings (null where unknown). */
export function usageBetween(
  before: ContainerCounters,
  after: ContainerCounters,
): { coresUsed: number | null; throttledShare: number | null } {
  const seconds = (after.at - before.at) / 1000;
  const used =
    before.usageSeconds === null || after.usageSeconds === null || seconds <= 0
      ? null
      : (after.usageSeconds - before.usageSeconds) / seconds;
  const periods = before.periods === null || after.periods === null ? null : after.periods - before.periods;
  const throttled =
    before.throttledPeriods === null || after.throttledPeriods === null ? null : after.throttledPeriods - before.throttledPeriods;
  return {
    coresUsed: used,
    throttledShare: periods === null || throttled === null ? null : periods > 0 ? throttled / periods : 0,
  };
}

/** The compose services whose containers hold a variant's CPU quota instead of its own (its row says). */
function quotaServices(variant: string): string[] {
  return findVariant(variant)?.companions?.quotaServices ?? [];
}

export function checkVariantName(name: string): void {
  if (!VARIANT_NAMES.includes(name)) {
    throw new ConfigError('<variant>', `unknown variant ${JSON.stringify(name)}: expected one of ${VARIANT_NAMES.join(', ')}`);
  }
}
