// The options of the variants that compute on a fixed pool of threads or processes
// (`threadpool`, `processpool`): how many workers, and how many requests may wait for one.
// Pools are created full and warm and sized at start (LAB-SPEC section 3).

import { intOption, optionalIntOption, type OptionSpecs } from './options.js';

export interface PoolOptions {
  /** Workers in the pool; null sizes it from the CPU quota (rounded up), else the CPU count. */
  poolSize: number | null;
  /** Requests that may wait for a free worker before new ones are answered `overloaded`. */
  maxQueue: number;
}

export const poolOptions: OptionSpecs<PoolOptions> = {
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
};
