// `coroutines`' own panels on the one-variant dashboard (its row of the variant table adds them):
// the tasks waiting on the pool, and the scheduler's event-loop delay, which stays low however
// many wait, since the scheduler never computes.

import { ONE, type VariantDashboards } from '../../lab/dashboards.js';

export const coroutinesDashboards: VariantDashboards = {
  variantPanels: [
    {
      title: 'Tasks waiting on a future',
      description: "Tasks parked on a pool's future: fibs handed to the pool and not yet completed.",
      unit: 'short',
      queries: [{ expr: `sum(fib_coroutine_futures_waiting{${ONE}})`, legend: 'tasks waiting' }],
    },
    {
      title: 'Scheduler event-loop delay',
      description:
        'The scheduler thread never computes a fib: its event-loop delay stays far below a fib(30) while the pool works.',
      unit: 's',
      queries: [
        { expr: `max(nodejs_eventloop_lag_p99_seconds{${ONE}})`, legend: 'p99' },
        { expr: `max(nodejs_eventloop_lag_p50_seconds{${ONE}})`, legend: 'p50' },
      ],
    },
  ],
};
