// The lab's Grafana dashboards as code. Each dashboard is described as rows of panels of PromQL
// queries (the specs below), then built into Grafana's classic dashboard JSON with the Grafana
// Foundation SDK. The same specs feed the stack test, which runs every query against the
// stack's real Prometheus. Queries select variants with $variant and group by `variant` (or
// repeat a panel per variant); which panels apply to which variants is read from the variant
// table (services/variants/index.ts), and a variant's own rows and panels come from its row's
// `dashboards`, so a new variant needs no edit here. dashboardSpecs() takes the table as an
// argument (the lab's by default), so a test can build the dashboards of a table of its own.

import * as common from '@grafana/grafana-foundation-sdk/common';
import {
  AnnotationQueryBuilder,
  DashboardBuilder,
  DashboardLinkBuilder,
  DashboardLinkType,
  DatasourceVariableBuilder,
  QueryVariableBuilder,
  RowBuilder,
  TextBoxVariableBuilder,
  VariableRefresh,
} from '@grafana/grafana-foundation-sdk/dashboard';
import {
  HeatmapColorMode,
  HeatmapColorOptionsBuilder,
  HeatmapColorScale,
  PanelBuilder as HeatmapBuilder,
  YAxisConfigBuilder,
} from '@grafana/grafana-foundation-sdk/heatmap';
import { DataqueryBuilder, PromQueryFormat } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as BarGaugeBuilder } from '@grafana/grafana-foundation-sdk/bargauge';
import { PanelBuilder as TableBuilder } from '@grafana/grafana-foundation-sdk/table';
import { PanelBuilder as TimeseriesBuilder } from '@grafana/grafana-foundation-sdk/timeseries';
import { ONE, V, quantile, rate, type PanelSpec, type QuerySpec, type RowSpec } from '../../services/lab/dashboards.js';
import type { Variant } from '../../services/server/plugin.js';
import { VARIANTS } from '../../services/variants/index.js';

export type { PanelSpec, QuerySpec, RowSpec };

/** The rows and panels variants add for their own series, each limited to the variant that adds it (unless it says otherwise). */
const own = <T extends PanelSpec>(variant: string, panel: T): T => (panel.onlyFor ? panel : { ...panel, onlyFor: [variant] });
const variantRows = (variants: readonly Variant[]): RowSpec[] =>
  variants.flatMap((v) =>
    (v.dashboards?.overviewRows ?? []).map((row) => ({
      ...row,
      collapsed: true,
      panels: row.panels.map((p) => own(v.name, p)),
    })),
  );

/**
 * The order the side-by-side panels list variants in: group by group (each where its first row
 * is in the table), table order within a group, so that py-threads sits beside gil and threads,
 * py-pool beside processpool, py-coroutines beside coroutines (the row's `group`).
 */
export function displayOrder(variants: readonly Variant[]): string[] {
  const groups = [...new Set(variants.map((v) => v.group))];
  return groups.flatMap((group) => variants.filter((v) => v.group === group).map((v) => v.name));
}
const variantPanels = (variants: readonly Variant[]): PanelSpec[] =>
  variants.flatMap((v) => (v.dashboards?.variantPanels ?? []).map((p) => own(v.name, p)));

/** Variants not served by Node (the CPython ones): no event loop of Node's, no V8 heap, no nodejs_* series. */
const notNode = (variants: readonly Variant[]) => variants.filter((v) => v.runtime !== 'node').map((v) => v.name);

/** The provisioned datasource (grafana/provisioning/datasources/prometheus.yml): the `ds` variable's default. */
export const PROVISIONED_DATASOURCE = { type: 'prometheus', uid: 'lab-prometheus' } as const;
/** What every panel, query, variable and annotation uses: the dashboard's datasource variable. */
export const DATASOURCE = { type: 'prometheus', uid: '${ds}' } as const;
/** Where a viewer's browser reaches Prometheus (PROMETHEUS_PORT): the links to its graph page. */
export const PROMETHEUS_BROWSER_URL = 'http://127.0.0.1:9090';
/** The one-variant dashboard, which the side-by-side panels link to. */
export const VARIANT_DASHBOARD_UID = 'lab-variant';

export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  /** The file under grafana/dashboards/. */
  file: string;
  /** `multi`: compare any set of variants (all by default); `single`: look at one. */
  variable: 'multi' | 'single';
  /** Marks the spotlight's phases (hogs joining and leaving) on every time series. */
  spotlightAnnotations?: boolean;
  rows: RowSpec[];
  /** The variant table's side-by-side order (displayOrder): bar panels list their bars in it. */
  order?: string[];
}

/** The load generator's background load, without the spotlight's bursts. */
const BG = 'scenario!="spotlight"';

/** Variants without a fixed set of workers: no per-worker series. */
const withoutWorkerSet = (variants: readonly Variant[]) =>
  variants.filter((v) => v.parallelism !== 'fixed-workers').map((v) => v.name);

const cpuPanels = (filter: string, by: string): PanelSpec[] => [
  {
    title: 'Cores used against the CPU quota',
    description:
      'CPU the whole container uses (solid) next to its quota (dashed): a single-threaded variant stays at or under one core whatever its quota; a parallel one climbs to it.',
    unit: 'none',
    dashed: 'quota',
    queries: [
      {
        expr: `sum by (${by}) (${rate('lab_cpu_usage_seconds_total', filter)})`,
        legend: by === 'variant' ? '{{variant}} used' : 'used',
      },
      { expr: `max by (${by}) (lab_cpu_quota_cores{${filter}})`, legend: by === 'variant' ? '{{variant}} quota' : 'quota' },
    ],
  },
  {
    title: 'Throttled share of CPU periods',
    description:
      'The fraction of 100 ms scheduler periods in which the container hit its quota and was paused: above 0, the quota (not the model) is what limits it.',
    unit: 'percentunit',
    queries: [
      {
        expr: `sum by (${by}) (${rate('lab_cpu_throttled_periods_total', filter)}) / clamp_min(sum by (${by}) (${rate('lab_cpu_periods_total', filter)}), 1e-9)`,
        legend: by === 'variant' ? '{{variant}}' : 'throttled',
      },
    ],
  },
  {
    title: 'Memory',
    description:
      'Memory of the whole container (all its threads and processes), without file cache: a thread or a process per connection shows here.',
    unit: 'bytes',
    queries: [{ expr: `max by (${by}) (lab_memory_bytes{${filter}})`, legend: by === 'variant' ? '{{variant}}' : 'memory' }],
  },
];

const collapsePanel: PanelSpec = {
  title: 'Collapse: how far perf2 falls beside one long request',
  description:
    'perf2 (fib(1) in a loop) alone, divided by perf2 while one perf1 hog (fib(30) in a loop) runs, measured on each variant alone in its turn: about 1 where the model keeps short requests moving (threads, the pools, processes), 10 and more where one long request stalls everyone (eventloop, gil, sync; 1000 here means none answered at all).',
  unit: 'x',
  kind: 'bargauge',
  max: 1000,
  queries: [{ expr: `clamp_max(loadgen_lesson_collapse_ratio{${V}}, 1000)`, legend: '{{variant}}' }],
};

const scoreboardPanel: PanelSpec = {
  title: 'The scoreboard: collapse with its spread, and which variants cannot be told apart',
  description:
    "Each variant's collapse is the median of its turn's rounds (perf2 alone, beside one hog, again and again); the lowest and highest round show how much it moved. Variants in the same group have overlapping rounds: these figures cannot tell them apart. Generator-bound 1: in some round the load generator itself was the bottleneck. 1000 means no short request was answered beside the hog (sync).",
  unit: 'none',
  kind: 'table',
  queries: [
    { expr: `clamp_max(loadgen_lesson_collapse_ratio{${V}}, 1000)`, legend: 'collapse (median)' },
    { expr: `clamp_max(loadgen_lesson_collapse_ratio_low{${V}}, 1000)`, legend: 'lowest round' },
    { expr: `clamp_max(loadgen_lesson_collapse_ratio_high{${V}}, 1000)`, legend: 'highest round' },
    { expr: `loadgen_lesson_collapse_group{${V}}`, legend: 'group' },
    { expr: `loadgen_lesson_short_requests_per_second{${V}, phase="alone"}`, legend: 'perf2 alone (req/s)' },
    { expr: `loadgen_lesson_short_requests_per_second{${V}, phase="beside_one_long"}`, legend: 'perf2 beside one hog (req/s)' },
    { expr: `loadgen_lesson_generator_bound{${V}}`, legend: 'generator-bound' },
  ],
};

const p99Panel: PanelSpec = {
  title: 'perf2 p99: alone, then beside one long request',
  description:
    'The slowest fib(1) (p99) in each phase of the last turn: beside a hog it becomes a whole fib(30) where the hog blocks the loop or holds the lock, and stays microseconds where another core or worker takes the hog.',
  unit: 's',
  kind: 'bargauge',
  queries: [
    { expr: `loadgen_lesson_short_latency_seconds{${V}, phase="alone", percentile="p99"}`, legend: '{{variant}} alone' },
    {
      expr: `loadgen_lesson_short_latency_seconds{${V}, phase="beside_one_long", percentile="p99"}`,
      legend: '{{variant}} beside one long',
      exempt: 'errors',
    },
  ],
};

const livePanel: PanelSpec = {
  title: "The spotlight live: perf2's fib(1) rate as the hogs join and leave",
  description:
    'The variant in the spotlight, second by second (the purple regions are its phases): perf2 alone, then with one hog, then with a hog per worker. On eventloop and gil the rate falls to a few hundred per second the moment the hog joins; on threads it does not notice.',
  unit: 'reqps',
  wide: true,
  queries: [
    {
      expr: `sum by (variant) (rate(loadgen_requests_total{${V}, scenario="spotlight", probe="short", outcome="ok"}[$__rate_interval]))`,
      legend: '{{variant}} perf2',
    },
    {
      expr: `sum by (variant) (rate(loadgen_requests_total{${V}, scenario="spotlight", probe="long", outcome="ok"}[$__rate_interval]))`,
      legend: '{{variant}} hogs (fib(30))',
    },
  ],
};

/**
 * The spotlight's lesson figures: the talk's experiment run on each variant alone, in rotation
 * (services/loadgen/spotlight.ts), kept per variant until its next turn.
 */
const lessonRows = (variants: readonly Variant[]): RowSpec[] => [
  {
    title: "The scoreboard: the talk's experiment, one variant at a time (the spotlight)",
    panels: [collapsePanel, scoreboardPanel, p99Panel, p50Panel],
  },
  {
    title: 'More from the spotlight: every worker busy, quotas, the live rate, event loops',
    collapsed: true,
    panels: lessonDetails(variants),
  },
];

const p50Panel: PanelSpec = {
  title: 'perf2 p50: alone, then beside one long request',
  description:
    'The typical fib(1) in each phase: where it grows beside a hog, every short request waits, not only the unlucky ones (eventloop, gil); where it stays, the hog runs elsewhere.',
  unit: 's',
  kind: 'bargauge',
  queries: [
    { expr: `loadgen_lesson_short_latency_seconds{${V}, phase="alone", percentile="p50"}`, legend: '{{variant}} alone' },
    {
      expr: `loadgen_lesson_short_latency_seconds{${V}, phase="beside_one_long", percentile="p50"}`,
      legend: '{{variant}} beside one long',
      exempt: 'errors',
    },
  ],
};

const lessonDetails = (variants: readonly Variant[]): PanelSpec[] => [
  {
    title: 'perf2 beside as many hogs as workers',
    description:
      "Pools, cluster and the per-connection variants: once every worker (or core) has a hog, perf2 drops too. The pool was sized for the quota; the figure is perf2's rate alone against beside all workers long.",
    unit: 'reqps',
    kind: 'bargauge',
    notFor: variants.filter((v) => v.parallelism === 'single').map((v) => v.name),
    queries: [
      {
        expr: `loadgen_lesson_short_requests_per_second{${V}, phase="alone"} and on (variant) loadgen_lesson_short_requests_per_second{${V}, phase="beside_all_workers_long"}`,
        legend: '{{variant}} alone',
      },
      {
        expr: `loadgen_lesson_short_requests_per_second{${V}, phase="beside_all_workers_long"}`,
        legend: '{{variant}} beside all workers long',
      },
    ],
  },
  {
    title: 'The CPU quota and workers each variant was measured with',
    description:
      'The quota (cores) during its last turn, and how many hogs ran in its last phase (its workers, or its cores for a thread or process per connection): change a quota with lab cpus and the next turn shows what it buys.',
    unit: 'none',
    kind: 'bargauge',
    queries: [
      { expr: `loadgen_lesson_cpu_quota_cores{${V}}`, legend: '{{variant}} quota (cores)' },
      { expr: `loadgen_lesson_workers{${V}}`, legend: '{{variant}} hogs in the last phase' },
    ],
  },
  {
    title: 'How old each figure is, and whether the generator could keep up',
    description:
      "Seconds since each variant's last turn ended (a rotation takes a few minutes), and 1 where the load generator itself was the bottleneck during it (then the figures describe the generator, not the variant).",
    unit: 's',
    kind: 'bargauge',
    queries: [
      { expr: `time() - loadgen_lesson_timestamp_seconds{${V}}`, legend: '{{variant}} age' },
      { expr: `loadgen_lesson_generator_bound{${V}}`, legend: '{{variant}} generator-bound' },
    ],
  },
  livePanel,
  {
    title: 'Event-loop delay p99 of each variant',
    description:
      "How late each variant's event loop runs its timers: the signature of blocking that server-side request timing cannot see (a request waiting in the kernel while the loop computes is stamped only when read). A fib(30) on the loop shows as milliseconds (eventloop, sync, a cluster worker); threads, pools and gil keep the loop free.",
    unit: 's',
    notFor: notNode(variants),
    queries: [{ expr: `max by (variant) (nodejs_eventloop_lag_p99_seconds{${V}})`, legend: '{{variant}}' }],
  },
  {
    title: 'Workers that served in each phase (pools and cluster)',
    description:
      "How many of a fixed set of workers computed requests in each phase. cluster balances connections, not requests: beside one hog, perf2's connection lands on the hog's worker (1 used: it waits behind every fib(30), a large collapse) or on the other (2 used: unaffected). Which one is chance, from turn to turn.",
    unit: 'none',
    kind: 'bargauge',
    notFor: withoutWorkerSet(variants),
    queries: [{ expr: `loadgen_lesson_workers_used{${V}}`, legend: '{{variant}} {{phase}}' }],
  },
];

export const labOverview = (variants: readonly Variant[]): DashboardSpec => ({
  uid: 'lab-overview',
  title: 'Concurrency lab: overview',
  description:
    "The lessons at a glance (the talk's experiment on each variant in turn), then every variant side by side under the light background load: throughput, latency on both sides, CPU against quota, memory, event loops and queues.",
  file: 'lab-overview.json',
  variable: 'multi',
  spotlightAnnotations: true,
  order: displayOrder(variants),
  // Open on the scoreboard and the side-by-side comparison; the rest in collapsed rows.
  rows: [
    ...lessonRows(variants),
    {
      title: 'Side by side, server side, under the light background load: line received -> reply written',
      panels: [
        {
          title: 'Requests per second',
          description:
            "Replies per second each variant writes; under the lab's light background load they all follow the load generator (the spotlight adds bursts on the variant it measures).",
          unit: 'reqps',
          queries: [{ expr: `sum by (variant) (${rate('fib_requests_total', V)})`, legend: '{{variant}}' }],
        },
        {
          title: 'Server latency p50',
          description:
            'The typical request inside the server: about the compute time of fib(1) or fib(30) when nothing waits, more where requests queue behind each other.',
          unit: 's',
          queries: [{ expr: quantile(0.5, 'fib_request_duration_seconds', 'variant, ', V), legend: '{{variant}}' }],
        },
        {
          title: 'Server latency p99',
          description:
            "The slow tail, server side (it includes the spotlight's bursts): where a short request lands behind a fib(30) on a blocked loop, the server stamps it only once read, so a loop's blocking barely shows here; see event-loop delay.",
          unit: 's',
          queries: [{ expr: quantile(0.99, 'fib_request_duration_seconds', 'variant, ', V), legend: '{{variant}}' }],
        },
        {
          title: 'Error replies per second',
          description: 'Error lines by code (overloaded, unavailable, internal, ...); empty while every request succeeds.',
          unit: 'reqps',
          queries: [
            {
              expr: `sum by (variant, outcome) (rate(fib_requests_total{${V}, outcome!="ok"}[$__rate_interval])) > 0`,
              legend: '{{variant}} {{outcome}}',
              exempt: 'errors',
            },
          ],
        },
      ],
    },
    {
      title: 'Client side, under the background load: what the load generator sees (send -> reply received)',
      collapsed: true,
      panels: [
        {
          title: 'Requests per second by probe',
          description:
            'Completed requests per variant and probe (long = fib(30), short = fib(1)); a variant that stalls short requests completes fewer of them.',
          unit: 'reqps',
          queries: [
            {
              expr: `sum by (variant, probe) (${rate('loadgen_requests_total', `${V}, ${BG}`)})`,
              legend: '{{variant}} {{probe}}',
            },
          ],
        },
        {
          title: 'Client latency p50 by probe',
          description:
            'Typical latency as the client sees it, including the network and the wait to be read: compare the short probe across variants.',
          unit: 's',
          queries: [
            {
              expr: quantile(0.5, 'loadgen_request_duration_seconds', 'variant, probe, ', `${V}, ${BG}`),
              legend: '{{variant}} {{probe}}',
            },
          ],
        },
        {
          title: 'Client latency p99 by probe',
          description:
            'Under the light background load requests rarely meet, so head-of-line blocking shows only in the tail, if at all; the spotlight row above measures it.',
          unit: 's',
          queries: [
            {
              expr: quantile(0.99, 'loadgen_request_duration_seconds', 'variant, probe, ', `${V}, ${BG}`),
              legend: '{{variant}} {{probe}}',
            },
          ],
        },
        {
          title: 'Client-side failures per second',
          description:
            'Requests the load generator saw fail, by code (timeouts, refused connections, error replies); empty while all is well.',
          unit: 'reqps',
          queries: [
            {
              expr: `sum by (variant, outcome) (rate(loadgen_requests_total{${V}, outcome!="ok"}[$__rate_interval])) > 0`,
              legend: '{{variant}} {{outcome}}',
              exempt: 'errors',
            },
          ],
        },
      ],
    },
    {
      title: 'CPU and memory of each container',
      collapsed: true,
      panels: [
        ...cpuPanels(V, 'variant'),
        {
          title: 'Busiest event loop',
          description:
            "Utilization (0..1) of each variant's busiest event loop: 1 means a loop that computes all the time and reads no socket meanwhile.",
          unit: 'percentunit',
          notFor: notNode(variants),
          queries: [{ expr: `max by (variant) (${rate('lab_event_loop_busy_seconds_total', V)})`, legend: '{{variant}}' }],
        },
      ],
    },
    {
      title: 'Work in progress',
      collapsed: true,
      panels: [
        {
          title: 'Requests in flight',
          description:
            'Requests received and not yet answered: it grows where requests queue (behind a busy event loop, a full pool, a lock).',
          unit: 'none',
          queries: [{ expr: `sum by (variant) (fib_inflight_requests{${V}})`, legend: '{{variant}}' }],
        },
        {
          title: 'Queue wait p99',
          description:
            'How long the slowest requests waited before their computation started (for a pool, a free worker; for gil, the lock): waiting, not working.',
          unit: 's',
          queries: [{ expr: quantile(0.99, 'fib_queue_wait_seconds', 'variant, ', V), legend: '{{variant}}' }],
        },
        {
          title: 'Threads or processes computing',
          description:
            'Live threads or processes: fixed for pools and cluster, one per open connection for threads, processes and gil, 1 where fib runs on the event loop.',
          unit: 'none',
          queries: [{ expr: `max by (variant) (fib_workers{${V}})`, legend: '{{variant}}' }],
        },
        {
          title: 'Open connections',
          description: 'Client connections each variant holds (sync counts the ones waiting for their turn).',
          unit: 'none',
          queries: [{ expr: `sum by (variant) (fib_connections_active{${V}})`, legend: '{{variant}}' }],
        },
      ],
    },
    ...variantRows(variants),
    {
      title: 'The load generator',
      collapsed: true,
      panels: [
        {
          title: 'Is the load generator the bottleneck?',
          description:
            "generator-bound is 1 while the generator's own event-loop delay, CPU (0.9 cores at most: it has one thread) or schedule lag pass their thresholds: then the client-side figures describe the generator, not the variants.",
          unit: 'none',
          global: true,
          queries: [
            { expr: 'max(loadgen_generator_bound)', legend: 'generator-bound (1 = yes)' },
            { expr: 'sum(rate(process_cpu_seconds_total{job="loadgen"}[$__rate_interval]))', legend: 'CPU cores used' },
          ],
        },
      ],
    },
  ],
});

export const LAB_HEATMAPS: DashboardSpec = {
  uid: 'lab-heatmaps',
  title: 'Concurrency lab: latency heatmaps',
  description: 'The whole latency distribution of every variant over time, from its histogram buckets: one heatmap per variant.',
  file: 'lab-heatmaps.json',
  variable: 'multi',
  rows: [
    {
      title: 'Server side: line received -> reply written',
      panels: [
        {
          title: 'Server latency: $variant',
          description:
            'Each column is a time slice, each cell a latency bucket, its colour how many requests fell in it: two bands (fib(1) and fib(30)) mean short requests are not held up; one band means they wait for long ones.',
          unit: 's',
          kind: 'heatmap',
          repeat: true,
          queries: [
            { expr: `sum by (le) (${rate('fib_request_duration_seconds_bucket', ONE)})`, legend: '{{le}}', format: 'heatmap' },
          ],
        },
      ],
    },
    {
      title: 'Client side, under the background load: short requests (fib(1)) as the load generator sees them',
      panels: [
        {
          title: 'Short requests: $variant',
          description:
            'Only the short probe: where it sits near the fib(30) band, short requests wait behind long ones (head-of-line blocking, or a lock).',
          unit: 's',
          kind: 'heatmap',
          repeat: true,
          queries: [
            {
              expr: `sum by (le) (rate(loadgen_request_duration_seconds_bucket{${ONE}, ${BG}, probe="short"}[$__rate_interval]))`,
              legend: '{{le}}',
              format: 'heatmap',
            },
          ],
        },
      ],
    },
  ],
};

export const LAB_TALK_DEMO: DashboardSpec = {
  uid: 'lab-talk-demo',
  title: "Concurrency lab: the talk's demo",
  description: "Beazley's perf2-during-perf1 demo for every variant: what happens to short requests while long ones run.",
  file: 'lab-talk-demo.json',
  variable: 'multi',
  spotlightAnnotations: true,
  rows: [
    {
      title: "The talk's experiment on each variant alone, in rotation (the spotlight)",
      panels: [collapsePanel, p99Panel, livePanel],
    },
    {
      title: 'Under the light background load: short requests (perf2, fib(1)) while long ones (perf1, fib(30)) run',
      panels: [
        {
          title: 'Short requests per second',
          description:
            "perf2's throughput under the background load: its think time caps it at a few per second per variant, so only a variant that stalls badly falls below the others (the spotlight measures perf2 flat out).",
          unit: 'reqps',
          queries: [
            {
              expr: `sum by (variant) (rate(loadgen_requests_total{${V}, ${BG}, probe="short", outcome="ok"}[$__rate_interval]))`,
              legend: '{{variant}}',
            },
          ],
        },
        {
          title: 'Short request latency p50',
          description:
            'The typical fib(1) under the background load: with a think time between requests, a short request rarely meets a long one, so this stays small for every variant; the spotlight row measures the collision.',
          unit: 's',
          queries: [
            { expr: `variant_probe:loadgen_request_duration_seconds:p50_30s{${V}, probe="short"}`, legend: '{{variant}}' },
          ],
        },
        {
          title: 'Short request latency p99',
          description:
            'The unlucky fib(1) under the background load: about one short request in sixty meets a fib(30), so the p99 may reach a fib(30) on eventloop and sync or a switch interval on gil; the spotlight measures it reliably.',
          unit: 's',
          queries: [
            { expr: `variant_probe:loadgen_request_duration_seconds:p99_30s{${V}, probe="short"}`, legend: '{{variant}}' },
          ],
        },
        {
          title: 'Short / long latency (p50)',
          description:
            'How much of a long request a typical short one costs under the background load: near 0 for every variant while they rarely meet; the spotlight row shows the cost when they do.',
          unit: 'none',
          queries: [
            {
              expr: `variant_probe:loadgen_request_duration_seconds:p50_30s{${V}, probe="short"} / ignoring(probe) variant_probe:loadgen_request_duration_seconds:p50_30s{${V}, probe="long"}`,
              legend: '{{variant}}',
            },
          ],
        },
      ],
    },
    {
      title: 'Long requests, fairness, and what the CPU does',
      panels: [
        {
          title: 'Long request latency p50',
          description:
            "perf1's fib(30): the price of fairness shows here (generators computes it slower; gil makes it step aside every switch interval).",
          unit: 's',
          queries: [
            { expr: `variant_probe:loadgen_request_duration_seconds:p50_30s{${V}, probe="long"}`, legend: '{{variant}}' },
          ],
        },
        {
          title: "Fairness between a probe's connections",
          description:
            "Jain's index over the requests each connection of a probe completed (1: equal shares, 1/n: one connection got everything); raise LOAD_CONNECTIONS to see cluster pin connections to busy workers.",
          unit: 'none',
          queries: [{ expr: `min by (variant) (loadgen_fairness_index{${V}})`, legend: '{{variant}}' }],
        },
        {
          title: 'Cores used',
          description:
            'gil, generators, eventloop and sync never use more than one core, whatever their quota; the others use what the two loops need.',
          unit: 'none',
          queries: [{ expr: `variant:lab_cpu_cores_used:rate30s{${V}}`, legend: '{{variant}}' }],
        },
        {
          title: 'Queue wait p99',
          description:
            'Time requests spent waiting before they were computed: for gil it is the lock, for the pools a free worker.',
          unit: 's',
          queries: [{ expr: quantile(0.99, 'fib_queue_wait_seconds', 'variant, ', V), legend: '{{variant}}' }],
        },
      ],
    },
  ],
};

export const labVariant = (variants: readonly Variant[]): DashboardSpec => ({
  uid: 'lab-variant',
  title: 'Concurrency lab: one variant',
  description:
    'Everything about one variant: outcomes, latency and where it goes (queue or compute), connections, workers and their event loops, CPU and memory.',
  file: 'lab-variant.json',
  variable: 'single',
  rows: [
    {
      title: 'Requests',
      panels: [
        {
          title: 'Requests per second by outcome',
          description:
            'ok, and each error code the variant sent: overloaded means the cap or a full queue, unavailable a drain, internal a worker that died.',
          unit: 'reqps',
          queries: [{ expr: `sum by (outcome) (${rate('fib_requests_total', ONE)})`, legend: '{{outcome}}' }],
        },
        {
          title: 'Server latency',
          description: 'p50, p90 and p99 from line received to reply written.',
          unit: 's',
          queries: [
            { expr: quantile(0.5, 'fib_request_duration_seconds', '', ONE), legend: 'p50' },
            { expr: quantile(0.9, 'fib_request_duration_seconds', '', ONE), legend: 'p90' },
            { expr: quantile(0.99, 'fib_request_duration_seconds', '', ONE), legend: 'p99' },
          ],
        },
        {
          title: 'Queue wait against compute time',
          description:
            "Where a request's time goes: waiting to start (a worker, a lock, the event loop) or computing; a pool too small for its load shows wait growing while compute stays.",
          unit: 's',
          queries: [
            { expr: quantile(0.5, 'fib_queue_wait_seconds', '', ONE), legend: 'queue wait p50' },
            { expr: quantile(0.99, 'fib_queue_wait_seconds', '', ONE), legend: 'queue wait p99' },
            { expr: quantile(0.5, 'fib_compute_seconds', '', ONE), legend: 'compute p50' },
            { expr: quantile(0.99, 'fib_compute_seconds', '', ONE), legend: 'compute p99' },
          ],
        },
        {
          title: 'Client latency by probe',
          description:
            'The same requests as the load generator sees them, per probe: the gap to the server-side latency is the network and the wait to be read.',
          unit: 's',
          queries: [
            {
              expr: quantile(0.5, 'loadgen_request_duration_seconds', 'scenario, probe, ', ONE),
              legend: '{{scenario}} {{probe}} p50',
            },
            {
              expr: quantile(0.99, 'loadgen_request_duration_seconds', 'scenario, probe, ', ONE),
              legend: '{{scenario}} {{probe}} p99',
            },
          ],
        },
      ],
    },
    {
      title: 'Connections, workers and event loops',
      panels: [
        {
          title: 'Connections and requests in flight',
          description: 'Open connections, and requests received but not answered yet.',
          unit: 'none',
          queries: [
            { expr: `sum(fib_connections_active{${ONE}})`, legend: 'connections' },
            { expr: `sum(fib_inflight_requests{${ONE}})`, legend: 'in flight' },
          ],
        },
        {
          title: 'Threads or processes computing',
          description:
            'A fixed set for pools and cluster (back to full size after a crash), one per connection for threads, processes and gil.',
          unit: 'none',
          queries: [{ expr: `max(fib_workers{${ONE}})`, legend: 'workers' }],
        },
        {
          title: 'Requests per second by worker',
          description:
            'How the work spreads over a fixed set of workers: even for pools under many requests, one connection per worker for cluster.',
          unit: 'reqps',
          notFor: withoutWorkerSet(variants),
          queries: [{ expr: `sum by (worker) (${rate('fib_worker_requests_total', ONE)})`, legend: 'worker {{worker}}' }],
        },
        {
          title: 'Event-loop utilization per loop',
          description:
            'Each event loop on its own (never summed): the serving thread, and each worker of a pool or cluster; 1 is a loop that never waits.',
          unit: 'percentunit',
          notFor: notNode(variants),
          queries: [
            {
              expr: `label_replace(${rate('lab_event_loop_busy_seconds_total', ONE)}, "worker", "serving", "worker", "")`,
              legend: '{{worker}}',
            },
          ],
        },
        {
          title: 'Event-loop delay p99',
          description:
            "How late each process's event loop runs its timers: on eventloop and sync it is a whole fib, on the others it stays small.",
          unit: 's',
          notFor: notNode(variants),
          queries: [
            {
              expr: `label_replace(nodejs_eventloop_lag_p99_seconds{${ONE}}, "worker", "serving", "worker", "")`,
              legend: '{{worker}}',
            },
          ],
        },
        ...variantPanels(variants),
      ],
    },
    {
      title: 'CPU and memory',
      panels: [
        ...cpuPanels(ONE, 'variant'),
        {
          title: 'Heap used per process',
          description: 'V8 heap of the serving process and of each cluster worker (pool threads and processes are not included).',
          unit: 'bytes',
          notFor: notNode(variants),
          queries: [
            {
              expr: `label_replace(nodejs_heap_size_used_bytes{${ONE}}, "worker", "serving", "worker", "")`,
              legend: '{{worker}}',
            },
          ],
        },
      ],
    },
  ],
});

/** The dashboards of a variant table: the lab's own, or a test's (a throwaway row, to see that it needs no other edit). */
export function dashboardSpecs(variants: readonly Variant[] = VARIANTS): DashboardSpec[] {
  return [labOverview(variants), { ...LAB_TALK_DEMO, order: displayOrder(variants) }, LAB_HEATMAPS, labVariant(variants)];
}

export const DASHBOARDS: DashboardSpec[] = dashboardSpecs();

const PANEL_WIDTH = 12;
const PANEL_HEIGHT = 8;

/** The variables a dashboard defines (the dashboard test checks that every link's target has those it sets). */
export const DASHBOARD_VARIABLES = ['ds', 'variant', 'prometheus'] as const;

/** Grafana's classic dashboard JSON for one spec. */
export function buildDashboard(spec: DashboardSpec): object {
  const single = spec.variable === 'single';
  const builder = new DashboardBuilder(spec.title)
    .uid(spec.uid)
    .description(spec.description)
    .tags(['concurrency-lab', 'generated'])
    // Read-only, as the provider (grafana/provisioning/dashboards/lab.yml) forbids saving: the
    // files are generated (make generate), an edit in the UI would be lost.
    .readonly()
    .refresh('5s')
    .time({ from: 'now-15m', to: 'now' })
    .timezone('browser')
    .tooltip(1) // shared crosshair: compare variants at the same instant
    .link(
      new DashboardLinkBuilder('Concurrency lab')
        .type(DashboardLinkType.Dashboards)
        .tags(['concurrency-lab'])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    )
    // Every panel, query, variable and annotation reads the datasource through this variable.
    .withVariable(
      new DatasourceVariableBuilder('ds')
        .label('Datasource')
        .description("The Prometheus to read: the lab's own by default")
        .type('prometheus')
        .current({ text: 'Prometheus', value: PROVISIONED_DATASOURCE.uid }),
    )
    .withVariable(
      new QueryVariableBuilder('variant')
        .label('Variant')
        .description(single ? 'The variant to look at' : 'The variants to compare')
        .datasource(DATASOURCE)
        .query({ query: 'label_values(fib_requests_total, variant)', refId: 'variants' })
        .definition('label_values(fib_requests_total, variant)')
        .refresh(VariableRefresh.OnTimeRangeChanged)
        .sort(1)
        .multi(!single)
        .includeAll(!single)
        .allValue('.+')
        .current(single ? { text: 'eventloop', value: 'eventloop' } : { text: ['All'], value: ['$__all'] }),
    )
    // Where the browser reaches Prometheus, for the links to its graph page (PROMETHEUS_PORT in .env).
    .withVariable(
      new TextBoxVariableBuilder('prometheus')
        .label('Prometheus URL (links)')
        .description("Where this browser reaches Prometheus (http://127.0.0.1:$PROMETHEUS_PORT): the panels' links to its graph")
        .defaultValue(PROMETHEUS_BROWSER_URL)
        .current({ text: PROMETHEUS_BROWSER_URL, value: PROMETHEUS_BROWSER_URL }),
    )
    // A CPU quota change (lab cpus, docker update --cpus, or .env and make up) marks every time
    // series, where Grafana did not get lab cpus' own annotation (below) too.
    .annotation(
      new AnnotationQueryBuilder()
        .name('CPU quota changes')
        .datasource(DATASOURCE)
        .enable(true)
        .iconColor('orange')
        .expr(`changes(lab_cpu_quota_cores{${single ? ONE : V}}[1m]) > 0`)
        .step('10s')
        .titleFormat('CPU quota of {{variant}} changed')
        .textFormat('See "Cores used against the CPU quota"')
        .tagKeys('variant'),
    )
    // What `lab cpus` and `lab sweep` post to Grafana's annotation API (services/lab/grafana.ts).
    .annotation(
      new AnnotationQueryBuilder()
        .name('lab cpus and sweep points')
        .datasource({ type: 'grafana', uid: '-- Grafana --' })
        .enable(true)
        .iconColor('red')
        // Grafana's built-in annotations, filtered by tag (the SDK's query type has no such fields).
        .target({ build: () => ({ type: 'tags', tags: ['concurrency-lab'], matchAny: true, limit: 100 }) } as never),
    );
  if (spec.spotlightAnnotations) {
    // Regions while each phase of the spotlight runs: perf2 alone, then with the hogs.
    builder.annotation(
      new AnnotationQueryBuilder()
        .name('Spotlight phases')
        .datasource(DATASOURCE)
        .enable(true)
        .iconColor('purple')
        .expr(`loadgen_spotlight_phase{${single ? ONE : V}} == 1`)
        .step('5s')
        .titleFormat('spotlight on {{variant}}: {{phase}}')
        .textFormat('alone: perf2 only; beside_one_long: one perf1 hog joined; beside_all_workers_long: a hog per worker')
        .tagKeys('variant,phase'),
    );
  }
  let y = 0;
  for (const row of spec.rows) {
    const rowBuilder = new RowBuilder(row.title).gridPos({ x: 0, y, w: 24, h: 1 });
    if (row.collapsed) rowBuilder.collapsed(true);
    const rowY = y;
    y += 1;
    let column = 0;
    const panels: Array<{ build(): object }> = [];
    for (const panel of row.panels) {
      const width = panel.repeat || panel.wide ? 24 : PANEL_WIDTH;
      if (column + width > 24) {
        column = 0;
        y += PANEL_HEIGHT;
      }
      const built = buildPanel(panel, spec).gridPos({ x: column, y, w: width, h: PANEL_HEIGHT });
      panels.push({ build: () => withLinks(built.build(), panel, spec) });
      column += width;
    }
    // A collapsed row holds its panels (laid out below it when it opens) and takes one line; an
    // open one is followed by them.
    if (row.collapsed) {
      for (const panel of panels) rowBuilder.withPanel(panel as Parameters<RowBuilder['withPanel']>[0]);
      builder.withRow(rowBuilder);
      y = rowY + 1;
    } else {
      builder.withRow(rowBuilder);
      for (const panel of panels) builder.withPanel(panel as Parameters<DashboardBuilder['withPanel']>[0]);
      y += PANEL_HEIGHT;
    }
  }
  const dashboard = builder.build() as { panels?: Array<{ id?: number; panels?: Array<{ id?: number }> }> };
  let id = 0;
  for (const panel of dashboard.panels ?? []) {
    panel.id = ++id;
    for (const inner of panel.panels ?? []) inner.id = ++id;
  }
  return dashboard;
}

/** A query's refId: A..Z, then A1..Z1, ... (bar panels hold a query per variant). */
const refId = (i: number) => `${String.fromCharCode(65 + (i % 26))}${i >= 26 ? Math.floor(i / 26) : ''}`;

/** Keeps Grafana's variables (`${__from}`, `$variant`) as they are, percent-encodes the rest (a URL's query value). */
function encodeKeepingVariables(text: string): string {
  return text
    .split(/(\$\{[^}]+\}|\$[A-Za-z_]+)/)
    .map((part, i) => (i % 2 === 1 ? part : encodeURIComponent(part)))
    .join('');
}

/**
 * A panel's data links: to the one-variant dashboard with the series' variant, the datasource
 * and the time range carried (from the side-by-side panels), and to Prometheus' own graph of the
 * panel's first query for that variant (every panel).
 */
export function panelLinks(panel: PanelSpec, spec: DashboardSpec): Array<{ title: string; url: string; targetBlank?: boolean }> {
  const links: Array<{ title: string; url: string; targetBlank?: boolean }> = [];
  // The series' variant: a label of the series, a column of a table, the repeat's or the dashboard's value.
  const variant =
    spec.variable === 'single' || panel.repeat
      ? '${variant}'
      : panel.kind === 'table'
        ? '${__data.fields.variant}'
        : '${__field.labels.variant}';
  const perSeries = !panel.global && variant !== '${variant}';
  if (!panel.global && spec.uid !== VARIANT_DASHBOARD_UID) {
    links.push({
      title: `${variant === '${variant}' ? '${variant}' : 'This variant'} in detail (one-variant dashboard)`,
      url: `/d/${VARIANT_DASHBOARD_UID}/${VARIANT_DASHBOARD_UID}?var-variant=${variant}&var-ds=\${ds}&var-prometheus=\${prometheus:percentencode}&from=\${__from}&to=\${__to}`,
    });
  }
  const expr = panel.queries[0]!.expr.replaceAll('[$__rate_interval]', '[1m]')
    .replaceAll(V, perSeries ? `variant="${variant}"` : V)
    .replaceAll(ONE, `variant="${variant}"`);
  links.push({
    title: "This query in Prometheus' graph",
    url: `\${prometheus}/graph?g0.expr=${encodeKeepingVariables(expr)}&g0.tab=0&g0.range_input=1h`,
    targetBlank: true,
  });
  return links;
}

function withLinks<T extends object>(built: T, panel: PanelSpec, spec: DashboardSpec): T {
  const withConfig = built as T & { fieldConfig?: { defaults?: { links?: unknown[] } } };
  withConfig.fieldConfig ??= {};
  withConfig.fieldConfig.defaults ??= {};
  withConfig.fieldConfig.defaults.links = panelLinks(panel, spec);
  return built;
}

/**
 * A panel's queries. Bar panels of a multi-variant dashboard get one query per variant, in the
 * table's side-by-side order (displayOrder): Grafana draws bars in the order of their queries,
 * so pairs (gil, py-threads) stay together whatever their values.
 */
function targets(panel: PanelSpec, spec?: DashboardSpec): DataqueryBuilder[] {
  const applies = (variant: string) =>
    panel.onlyFor ? panel.onlyFor.includes(variant) : !(panel.notFor ?? []).includes(variant);
  const queries: QuerySpec[] =
    panel.kind === 'bargauge' && spec?.order && !panel.global
      ? spec.order
          .filter(applies)
          .flatMap((variant) =>
            panel.queries.map((query) => ({ ...query, expr: query.expr.replaceAll(V, `variant="${variant}", ${V}`) })),
          )
      : panel.queries;
  return queries.map((query, i) => {
    const target = new DataqueryBuilder().datasource(DATASOURCE).expr(query.expr).legendFormat(query.legend).refId(refId(i));
    if (panel.kind === 'bargauge') return target.instant();
    if (panel.kind === 'table') return target.instant().format(PromQueryFormat.Table);
    return query.format === 'heatmap' ? target.format(PromQueryFormat.Heatmap).range() : target.range();
  });
}

function buildPanel(panel: PanelSpec, spec: DashboardSpec): TimeseriesBuilder | HeatmapBuilder | BarGaugeBuilder | TableBuilder {
  if (panel.kind === 'table') {
    // One row per variant: the queries' values side by side (merge on the labels they share),
    // each column named after its query's legend, the timestamps hidden, sorted by the first.
    const rename: Record<string, string> = {};
    const order: Record<string, number> = { variant: 0 };
    panel.queries.forEach((query, i) => {
      rename[`Value #${String.fromCharCode(65 + i)}`] = query.legend;
      order[`Value #${String.fromCharCode(65 + i)}`] = i + 1;
    });
    const table = new TableBuilder()
      .title(panel.title)
      .description(panel.description)
      .datasource(DATASOURCE)
      .unit(panel.unit)
      .decimals(1)
      .withTransformation({ id: 'merge', options: {} })
      .withTransformation({
        id: 'organize',
        options: {
          excludeByName: { Time: true, __name__: true, instance: true, job: true },
          indexByName: order,
          renameByName: rename,
        },
      })
      .sortBy([new common.TableSortByFieldStateBuilder().displayName(panel.queries[0]!.legend).desc(true)]);
    for (const target of targets(panel)) table.withTarget(target);
    return table;
  }
  if (panel.kind === 'bargauge') {
    const bars = new BarGaugeBuilder()
      .title(panel.title)
      .description(panel.description)
      .datasource(DATASOURCE)
      .unit(panel.unit)
      .min(0)
      .orientation(common.VizOrientation.Horizontal)
      .displayMode(common.BarGaugeDisplayMode.Basic)
      .valueMode(common.BarGaugeValueMode.Text)
      .showUnfilled(true)
      .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
    if (panel.max !== undefined) bars.max(panel.max);
    for (const target of targets(panel, spec)) bars.withTarget(target);
    return bars;
  }
  if (panel.kind === 'heatmap') {
    const heatmap = new HeatmapBuilder()
      .title(panel.title)
      .description(panel.description)
      .datasource(DATASOURCE)
      .calculate(false)
      .cellGap(1)
      .showLegend()
      .yAxis(new YAxisConfigBuilder().unit(panel.unit).axisPlacement(common.AxisPlacement.Left))
      .color(
        new HeatmapColorOptionsBuilder()
          .mode(HeatmapColorMode.Scheme)
          .scheme('Oranges')
          .scale(HeatmapColorScale.Exponential)
          .exponent(0.5)
          .steps(64),
      );
    if (panel.repeat) heatmap.repeat('variant').repeatDirection('h').maxPerRow(3);
    for (const target of targets(panel)) heatmap.withTarget(target);
    return heatmap;
  }
  const timeseries = new TimeseriesBuilder()
    .title(panel.title)
    .description(panel.description)
    .datasource(DATASOURCE)
    .unit(panel.unit)
    .min(0)
    .lineWidth(1)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.List)
        .placement(common.LegendPlacement.Bottom),
    )
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending));
  if (panel.repeat) timeseries.repeat('variant').repeatDirection('h').maxPerRow(3);
  if (panel.dashed) {
    timeseries.overrideByRegexp(`.*${panel.dashed}.*`, [
      { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
      { id: 'custom.fillOpacity', value: 0 },
    ]);
  }
  for (const target of targets(panel)) timeseries.withTarget(target);
  return timeseries;
}

/** The file's content: stable, pretty-printed JSON with a trailing newline. */
export function renderDashboard(spec: DashboardSpec): string {
  return `${JSON.stringify(buildDashboard(spec), null, 2)}\n`;
}

export interface QueryCheck extends QuerySpec {
  dashboard: string;
  panel: string;
  /** The query is about the lab, not any variant: it must return a series, whatever its labels. */
  global: boolean;
  /** The query selects one variant at a time (a repeated panel, or a single-variant dashboard). */
  perVariant: boolean;
  /** Whether the panel has series for this variant. */
  appliesTo(variant: string): boolean;
}

/** Every panel query of every dashboard, with what the stack test needs to check it. */
export function allQueries(dashboards: readonly DashboardSpec[] = DASHBOARDS): QueryCheck[] {
  return dashboards.flatMap((d) =>
    d.rows.flatMap((row) =>
      row.panels.flatMap((panel) =>
        panel.queries.map((query) => ({
          ...query,
          dashboard: d.uid,
          panel: panel.title,
          global: panel.global === true,
          perVariant: d.variable === 'single' || panel.repeat === true,
          appliesTo: (variant: string) =>
            panel.onlyFor ? panel.onlyFor.includes(variant) : !(panel.notFor ?? []).includes(variant),
        })),
      ),
    ),
  );
}
