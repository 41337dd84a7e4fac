// `generators`' own series, registered into the server's registry by the variant itself.

import { Counter, type Registry } from 'prom-client';

/** `generators`: how many fib slices its scheduler has run (each FIB_SLICE calls, then a yield). */
export function registerGeneratorMetrics(registry: Registry): Counter {
  return new Counter({
    name: 'fib_generator_slices_total',
    help: 'Fib slices the generators scheduler ran: FIB_SLICE calls each, then a yield to the next task.',
    registers: [registry],
  });
}
