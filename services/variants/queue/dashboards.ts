// The `queue` variant's own row on the overview dashboard (its row of the variant table adds it).

import { V, quantile, type VariantDashboards, type RowSpec } from '../../lab/dashboards.js';

/** Its stream, its workers and Redis, as the front and the workers export them (services/variants/queue/metrics.ts). */
export const queueRow: RowSpec = {
  title: 'The queue: requests on a Redis stream, workers in their own containers',
  panels: [
    {
      title: 'Requests in the stream',
      description:
        'Waiting for a worker, and delivered but not yet acknowledged (being computed, or held by a worker that died until another claims it): a queue that keeps growing has too few workers.',
      unit: 'none',
      queries: [
        { expr: `max by (variant) (lab_queue_waiting_entries{${V}})`, legend: '{{variant}} waiting' },
        { expr: `max by (variant) (lab_queue_pending_entries{${V}})`, legend: '{{variant}} being computed' },
        { expr: `max by (variant) (lab_queue_stream_entries{${V}})`, legend: '{{variant}} stream length' },
      ],
    },
    {
      title: 'Queue wait p99: added to the stream -> computation started',
      description:
        "Measured on Redis's clock (comparable across hosts): the time a request waits for a free worker. It grows when every worker is busy; scale out with make scale N=4.",
      unit: 's',
      queries: [{ expr: quantile(0.99, 'lab_queue_wait_seconds', 'variant, ', V), legend: '{{variant}}' }],
    },
    {
      title: 'Requests per second by worker',
      description:
        'Each worker on its own, by the slot it holds (w1, w2, ...: a worker that is replaced takes the slot back): they share the work; a worker that joins takes its share at once, one that dies stops and its jobs go to the others.',
      unit: 'reqps',
      queries: [
        {
          expr: `sum by (variant, worker) (rate(lab_queue_worker_jobs_total{${V}, outcome="replied"}[$__rate_interval]))`,
          legend: '{{worker}}',
        },
      ],
    },
    {
      title: 'Live workers and Redis reachability',
      description:
        'Workers that reported in the last seconds (fib_workers), and 1 while the front reaches Redis: at 0 it answers unavailable at once, and recovers by itself.',
      unit: 'none',
      queries: [
        { expr: `max by (variant) (fib_workers{${V}})`, legend: '{{variant}} live workers' },
        { expr: `min by (variant) (lab_queue_redis_up{${V}})`, legend: '{{variant}} Redis up' },
      ],
    },
    {
      title: 'Redeliveries, dead letters and unavailable answers',
      description:
        'A job claimed from a worker that died or stalled is delivered again; after MAX_DELIVERIES it is dead-lettered (answered internal). unavailable: Redis down, a deadline, or lost with Redis. All zero while all is well.',
      unit: 'reqps',
      queries: [
        {
          expr: `sum by (variant) (rate(lab_queue_redeliveries_total{${V}}[$__rate_interval]))`,
          legend: '{{variant}} redeliveries',
        },
        {
          expr: `sum by (variant) (rate(lab_queue_dead_letters_total{${V}}[$__rate_interval]))`,
          legend: '{{variant}} dead letters',
        },
        {
          expr: `sum by (variant, reason) (rate(lab_queue_unavailable_total{${V}}[$__rate_interval]))`,
          legend: '{{variant}} unavailable ({{reason}})',
        },
      ],
    },
  ],
};

export const queueDashboards: VariantDashboards = { overviewRows: [queueRow] };
