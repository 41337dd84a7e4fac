// What the variants with a fixed set of workers share (`threadpool` and `processpool` pools, and
// `cluster`'s pre-forked processes): their options, the size they start with, and following the
// CPU quota when asked. Pools are created full and warm and sized at start;
// with POOL_FOLLOWS_QUOTA=1 they are resized when the container's quota changes (polled from the
// cgroup), otherwise a live quota change shows the mismatch: pool size (fib_workers) and quota
// (lab_cpu_quota_cores) are both exported.

import { defaultParallelism } from '../lab/cgroup.js';
import { ConfigError } from '../lab/errors.js';
import {
  booleanOption,
  intOption,
  optionLabel,
  optionalIntOption,
  type EnvOptionSpec,
  type EnvOptionSpecs,
} from '../lab/options.js';
import type { VariantContext } from './plugin.js';

/** How often a pool that follows the quota reads it. */
export const QUOTA_POLL_MS = 2000;

export const poolFollowsQuotaOption: EnvOptionSpec<boolean> = booleanOption({
  flag: '--pool-follows-quota',
  env: 'POOL_FOLLOWS_QUOTA',
  description: `resize the workers when the CPU quota changes (read every ${QUOTA_POLL_MS / 1000} s); off, they keep their start size`,
  default: false,
});

export interface PoolOptions {
  /** Workers in the pool; null sizes it from the CPU quota (rounded up), else the CPU count. */
  poolSize: number | null;
  /** Requests that may wait for a free worker before new ones are answered `overloaded`. */
  maxQueue: number;
  poolFollowsQuota: boolean;
}

export const poolOptions: EnvOptionSpecs<PoolOptions> = {
  poolSize: optionalIntOption({
    flag: '--pool-size',
    env: 'POOL_SIZE',
    description: 'workers in the pool',
    defaultText: 'the CPU quota, rounded up',
    min: 1,
    max: 1024,
  }),
  maxQueue: intOption({
    flag: '--max-queue',
    env: 'MAX_QUEUE',
    description: 'requests waiting for a free worker before new ones get `overloaded`',
    default: 1024,
    min: 0,
    max: 1_000_000,
  }),
  poolFollowsQuota: poolFollowsQuotaOption,
};

/** What the pool variants' rows of the variant table have in common. */
export const poolTraits = {
  options: poolOptions,
  connectionCap: 10_000,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'fixed-workers',
  // A running fib is stopped (its thread terminated, its process killed) when its client leaves.
  interruptible: true,
  workersOption: 'poolSize',
  queueOption: 'maxQueue',
} as const;

/**
 * The number of workers to start with: the size given, else the CPU quota rounded up. A size
 * given and following the quota contradict each other: a ConfigError naming both.
 */
export function startSize(
  ctx: VariantContext,
  size: number | null,
  sizeOption: EnvOptionSpec<number | null>,
  follows: boolean,
): number {
  if (size !== null && follows) {
    throw new ConfigError(
      optionLabel(poolFollowsQuotaOption),
      `cannot follow the CPU quota with a fixed ${optionLabel(sizeOption)}`,
    );
  }
  return size ?? ctx.cpus;
}

/**
 * Calls `resize` with the new worker count each time the CPU quota (rounded up) changes, until
 * the returned function is called. Reads the cgroup every QUOTA_POLL_MS; a resize in progress
 * finishes before the next one starts.
 */
export function followQuota(ctx: VariantContext, current: number, resize: (size: number) => Promise<void>): () => void {
  let size = current;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    const wanted = defaultParallelism(ctx.cgroup ?? undefined);
    if (wanted === size) return;
    busy = true;
    console.error(`pool: CPU quota now ${ctx.cgroup?.quotaCores() ?? 'none'}: resizing ${size} -> ${wanted} workers`);
    resize(wanted).then(
      () => {
        size = wanted;
        busy = false;
      },
      (error: Error) => {
        console.error(`pool: resize to ${wanted} failed: ${error.message}`);
        busy = false;
      },
    );
  }, QUOTA_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
