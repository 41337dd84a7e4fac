// Sweep files written by hand for `lab report`: a legitimate one with the shape and the figures a
// real 2-core sweep gives (three variants at four quotas, one collapse that never answered), and
// hostile variants of it (markup in its fields, fields missing or of the wrong type). Made here
// rather than measured, so the report's tests run in a second and see every kind of point.

import type { SweepFile, SweepPoint } from '../services/sweep/file.js';

const SECONDS_PER_REQUEST = 0.0024;

function point(variant: string, cpus: number, efficiency: number, collapse: number | null, p99: number): SweepPoint {
  const ideal = cpus / SECONDS_PER_REQUEST;
  const throughput = ideal * efficiency;
  const aloneRps = 9000 + cpus * 400;
  return {
    variant,
    cpus,
    quotaHolders: 1,
    workers: variant === 'eventloop' ? 1 : Math.ceil(cpus),
    throughput,
    ideal,
    throughputConnections: Math.max(2, 2 * Math.ceil(cpus)),
    throughputP50Ms: 2.4 / efficiency,
    collapse: {
      aloneRps,
      besideRps: collapse === null ? 0 : aloneRps / collapse,
      ratio: collapse,
      infinite: collapse === null,
    },
    shortP99Ms: collapse === null ? null : p99,
    shortP99AloneMs: 0.21,
    coresUsed: Math.min(cpus, variant === 'eventloop' ? 1 : cpus) * 0.98,
    throttledShare: cpus < 1 ? 0.93 : 0.41,
    generatorCores: 0.31,
    hostBusyCores: 1.62,
    generatorBound: cpus === 2 && variant === 'processpool',
    generatorReasons: cpus === 2 && variant === 'processpool' ? ['event-loop delay p99 52 ms'] : [],
    errors: variant === 'eventloop' && cpus === 0.5 ? { timeout: 3 } : {},
    measuredAt: `2026-12-01T10:${String(10 + Math.round(cpus * 8)).padStart(2, '0')}:00.000Z`,
  };
}

/** Three variants at 0.5, 1, 1.5 and 2 cores, a baseline, the settings `lab sweep` defaults to. */
export function legitimateSweep(): SweepFile {
  const quotas = [0.5, 1, 1.5, 2];
  return {
    version: 1,
    mode: 'native-cgroup-v1',
    isolation:
      'native: cgroup v1 /sys/fs/cgroup/cpu/concurrency-lab-sweep-4242-77 (cpu.cfs_quota_us / cpu.cfs_period_us), the server inside, the generator outside',
    host: { cpus: 2, node: 'v20.19.0', platform: 'linux lab-host' },
    settings: {
      cpuN: 27,
      longN: 30,
      shortN: 1,
      connectionsPerCore: 2,
      warmupMs: 2000,
      throughputMs: 5000,
      collapseMs: 3000,
    },
    baseline: {
      variant: 'eventloop',
      n: 27,
      secondsPerRequest: SECONDS_PER_REQUEST,
      requestsPerSecondPerCore: 1 / SECONDS_PER_REQUEST,
      measuredAt: '2026-12-01T10:02:00.000Z',
    },
    startedAt: '2026-12-01T10:00:00.000Z',
    updatedAt: '2026-12-01T10:40:00.000Z',
    elapsedSeconds: 1480,
    points: [
      ...quotas.map((c) => point('threadpool', c, 0.95 - c * 0.03, 1.4 + c * 0.1, 3.1)),
      ...quotas.map((c) => point('eventloop', c, Math.min(1, 1 / c) * 0.97, c === 0.5 ? null : 310 / c, 900)),
      ...quotas.map((c) => point('processpool', c, 0.9 - c * 0.05, 1.2, 2.7)),
    ],
  };
}
