// `coroutines`' own series, registered into the server's registry by the variant itself.

import { Gauge, type Registry } from 'prom-client';

/** `coroutines`: its scheduler's tasks parked on a pool's future, read when scraped. */
export function registerCoroutineMetrics(registry: Registry, waiting: () => number): void {
  new Gauge({
    name: 'fib_coroutine_futures_waiting',
    help: "Tasks of the coroutines scheduler parked on a pool's future (a fib handed to the pool, not yet completed).",
    registers: [registry],
    collect() {
      this.set(waiting());
    },
  });
}
