// generators: the talk's generator-based server. One thread, one hand-written scheduler
// (services/server/scheduler.ts) running a task per connection
// (services/server/task-per-connection.ts); fib itself is a generator that yields every
// FIB_SLICE calls, so requests share the one core round-robin: a fib(1) is answered while a
// fib(32) runs, at the price of a fib that is slower than plain recursion (the bookkeeping of
// an explicit stack, and a trip through the scheduler per slice). Throughput stays one core.
// A task also steps aside after BATCH requests in a row, so a client pipelining thousands of
// fib(1) gets turns like everyone else instead of keeping the core.
//
// The shared server accepts (and counts the cap); everything after, reading, framing, replies,
// the idle timeout, the line deadline and draining, is driven by the task with the shared
// protocol module.

import { epochMs } from '../../lab/clock.js';
import { registerGeneratorMetrics } from './metrics.js';
import { intOption } from '../../lab/options.js';
import { defineVariant, type VariantContext } from '../../server/plugin.js';
import { generatorsDashboards } from './dashboards.js';
import { CPU, type Wait } from '../../server/scheduler.js';
import { TaskPerConnectionOwner, type Computation } from '../../server/task-per-connection.js';

interface GeneratorOptions {
  /** fib calls between two yields to the scheduler. */
  fibSlice: number;
}

export const generators = defineVariant<GeneratorOptions>({
  dashboards: generatorsDashboards,
  name: 'generators',
  hostPort: 25003,
  group: 'generators',
  model: "the talk's round-robin scheduler of generator tasks; fib yields every FIB_SLICE calls",
  shows: 'fairness on one core without threads; throughput stays one core',
  options: {
    fibSlice: intOption({
      flag: '--fib-slice',
      env: 'FIB_SLICE',
      description: 'fib calls between two yields to the scheduler',
      default: 10_000,
      min: 1,
      max: 1_000_000_000,
    }),
  },
  connectionCap: 10_000,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'single',
  // A task is stopped between two slices when its client leaves.
  interruptible: true,
  limits: { memory: '256m', pids: 64 },
  plugin: { level: 'owner', createOwner: async (ctx) => new GeneratorOwner(ctx) },
});

/**
 * fib(n) as a generator: the same calls as the recursive fib (each visit of the explicit stack
 * is one call, in the same order), yielding to the scheduler every `slice` calls.
 */
export function* fibSliced(n: number, slice: number): Generator<Wait, number, undefined> {
  const stack = [n];
  let leaves = 0;
  let budget = slice;
  while (stack.length > 0) {
    const m = stack.pop()!;
    if (--budget === 0) {
      budget = slice;
      yield CPU;
    }
    if (m <= 2) leaves += 1;
    else stack.push(m - 2, m - 1);
  }
  return leaves;
}

class GeneratorOwner extends TaskPerConnectionOwner<GeneratorOptions> {
  constructor(ctx: VariantContext<GeneratorOptions>) {
    const slices = registerGeneratorMetrics(ctx.metrics.registry);
    super(ctx, () => slices.inc());
  }

  liveWorkers(): number {
    return 1;
  }

  /** fib sliced inline: the task yields the CPU every FIB_SLICE calls. */
  protected *compute(n: number): Computation {
    const startedAt = epochMs();
    const value = yield* fibSliced(n, this.ctx.own.fibSlice);
    return { value, startedAt, computeSeconds: (epochMs() - startedAt) / 1000 };
  }
}
