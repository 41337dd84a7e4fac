// The lab's Grafana dashboards as code. Each dashboard is described as rows of panels of
// PromQL queries (the spec below), then built into Grafana's classic dashboard JSON with the
// Grafana Foundation SDK. The same specs feed the stack test, which runs every query against the
// stack's real Prometheus. Queries group by `variant`, so a new variant shows up in every panel
// without an edit here.

import * as common from '@grafana/grafana-foundation-sdk/common';
import { DashboardBuilder, QueryVariableBuilder, RowBuilder, VariableRefresh } from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as TimeseriesBuilder } from '@grafana/grafana-foundation-sdk/timeseries';

/** The provisioned datasource (grafana/provisioning/datasources/prometheus.yml). */
export const DATASOURCE = { type: 'prometheus', uid: 'lab-prometheus' } as const;

export interface QuerySpec {
  expr: string;
  legend: string;
  /**
   * Why the stack test may see no series for some variant: an error query is empty while
   * nothing fails. Any other query must return a series for every variant.
   */
  exempt?: 'errors';
}

export interface PanelSpec {
  title: string;
  /** One sentence: what to look for. */
  description: string;
  unit: string;
  queries: QuerySpec[];
}

export interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  /** The file under grafana/dashboards/. */
  file: string;
  rows: RowSpec[];
}

const V = 'variant=~"$variant"';
const quantile = (q: number, metric: string, by: string, filter = V) =>
  `histogram_quantile(${q}, sum by (${by}, le) (rate(${metric}_bucket{${filter}}[$__rate_interval])))`;

export const LAB_OVERVIEW: DashboardSpec = {
  uid: 'lab-overview',
  title: 'Concurrency lab: overview',
  description: 'Every variant side by side: what the servers measure and what the load generator sees.',
  file: 'lab-overview.json',
  rows: [
    {
      title: 'Server side: what each variant measures (line received -> reply written)',
      panels: [
        {
          title: 'Requests per second',
          description: 'Replies per second each variant writes; under the same light load they should all match the load generator\'s rate.',
          unit: 'reqps',
          queries: [{ expr: `sum by (variant) (rate(fib_requests_total{${V}}[$__rate_interval]))`, legend: '{{variant}}' }],
        },
        {
          title: 'Server latency p50',
          description: 'The typical request inside the server: close to the compute time of fib(1) or fib(30) when nothing waits.',
          unit: 's',
          queries: [{ expr: quantile(0.5, 'fib_request_duration_seconds', 'variant'), legend: '{{variant}}' }],
        },
        {
          title: 'Server latency p99',
          description: 'The slow tail: on eventloop short requests that arrive during a fib(30) wait for it, so its p99 sits near a fib(30).',
          unit: 's',
          queries: [{ expr: quantile(0.99, 'fib_request_duration_seconds', 'variant'), legend: '{{variant}}' }],
        },
        {
          title: 'Error replies per second',
          description: 'Error lines by code; empty while every request succeeds.',
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
      title: 'Client side: what the load generator sees (send -> reply received)',
      panels: [
        {
          title: 'Requests per second by probe',
          description: 'Completed requests per variant and probe (long = fib(30), short = fib(1)); a variant that stalls short requests completes fewer of them.',
          unit: 'reqps',
          queries: [{ expr: `sum by (variant, probe) (rate(loadgen_requests_total{${V}}[$__rate_interval]))`, legend: '{{variant}} {{probe}}' }],
        },
        {
          title: 'Client latency p50 by probe',
          description: 'Typical latency as the client sees it, including the network and the wait to be read.',
          unit: 's',
          queries: [{ expr: quantile(0.5, 'loadgen_request_duration_seconds', 'variant, probe'), legend: '{{variant}} {{probe}}' }],
        },
        {
          title: 'Client latency p99 by probe',
          description: 'Compare the short probe across variants: head-of-line blocking shows here as short requests as slow as long ones.',
          unit: 's',
          queries: [{ expr: quantile(0.99, 'loadgen_request_duration_seconds', 'variant, probe'), legend: '{{variant}} {{probe}}' }],
        },
        {
          title: 'Client-side failures per second',
          description: 'Requests the load generator saw fail, by code (timeouts, refused connections, error replies); empty while all is well.',
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
  ],
};

export const DASHBOARDS: DashboardSpec[] = [LAB_OVERVIEW];

const PANEL_WIDTH = 12;
const PANEL_HEIGHT = 8;

/** Grafana's classic dashboard JSON for one spec. */
export function buildDashboard(spec: DashboardSpec): object {
  const builder = new DashboardBuilder(spec.title)
    .uid(spec.uid)
    .description(spec.description)
    .tags(['concurrency-lab', 'generated'])
    .editable()
    .refresh('5s')
    .time({ from: 'now-15m', to: 'now' })
    .timezone('browser')
    .tooltip(1) // shared crosshair: compare variants at the same instant
    .withVariable(
      new QueryVariableBuilder('variant')
        .label('Variant')
        .description('The variants to show')
        .datasource(DATASOURCE)
        .query({ query: 'label_values(fib_requests_total, variant)', refId: 'variants' })
        .definition('label_values(fib_requests_total, variant)')
        .refresh(VariableRefresh.OnTimeRangeChanged)
        .multi(true)
        .includeAll(true)
        .allValue('.+')
        .current({ text: ['All'], value: ['$__all'] }),
    );
  let y = 0;
  for (const row of spec.rows) {
    builder.withRow(new RowBuilder(row.title).gridPos({ x: 0, y, w: 24, h: 1 }));
    y += 1;
    row.panels.forEach((panel, i) => {
      const x = (i % 2) * PANEL_WIDTH;
      const panelY = y + Math.floor(i / 2) * PANEL_HEIGHT;
      builder.withPanel(timeseries(panel).gridPos({ x, y: panelY, w: PANEL_WIDTH, h: PANEL_HEIGHT }));
    });
    y += Math.ceil(row.panels.length / 2) * PANEL_HEIGHT;
  }
  const dashboard = builder.build() as { panels?: Array<{ id?: number }> };
  (dashboard.panels ?? []).forEach((panel, i) => (panel.id = i + 1));
  return dashboard;
}

function timeseries(panel: PanelSpec): TimeseriesBuilder {
  const builder = new TimeseriesBuilder()
    .title(panel.title)
    .description(panel.description)
    .datasource(DATASOURCE)
    .unit(panel.unit)
    .min(0)
    .lineWidth(1)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .legend(new common.VizLegendOptionsBuilder().showLegend(true).displayMode(common.LegendDisplayMode.List).placement(common.LegendPlacement.Bottom))
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending));
  panel.queries.forEach((query, i) => {
    builder.withTarget(
      new DataqueryBuilder()
        .datasource(DATASOURCE)
        .expr(query.expr)
        .legendFormat(query.legend)
        .range()
        .refId(String.fromCharCode(65 + i)),
    );
  });
  return builder;
}

/** The file's content: stable, pretty-printed JSON with a trailing newline. */
export function renderDashboard(spec: DashboardSpec): string {
  return `${JSON.stringify(buildDashboard(spec), null, 2)}\n`;
}

/** Every panel query of every dashboard, for the stack test. */
export function allQueries(): Array<{ dashboard: string; panel: string } & QuerySpec> {
  return DASHBOARDS.flatMap((d) =>
    d.rows.flatMap((row) => row.panels.flatMap((panel) => panel.queries.map((query) => ({ dashboard: d.uid, panel: panel.title, ...query })))),
  );
}
