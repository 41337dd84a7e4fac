// Timestamps that threads and processes of one machine can compare: milliseconds since the Unix
// epoch with sub-millisecond resolution. `performance.now()` alone is relative to each thread's
// own start, so a queue wait measured across a worker boundary needs the time origin added.

import { performance } from 'node:perf_hooks';

export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}
