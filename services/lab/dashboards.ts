// The language the lab's dashboards are written in (grafana/src/dashboards.ts builds Grafana's
// JSON from it): rows of panels of PromQL queries, and the selectors and helpers the queries
// share. Here, apart from the builder, so that a variant can declare panels of its own in its
// folder (its row's `dashboards`) without importing Grafana's SDK.

export interface QuerySpec {
  expr: string;
  legend: string;
  /** Error queries are empty while nothing fails: the stack test only checks they run. */
  exempt?: 'errors';
  /** A heatmap's bucket query. */
  format?: 'heatmap';
}

export interface PanelSpec {
  title: string;
  /** One sentence: what to look for. */
  description: string;
  unit: string;
  /**
   * A time series (default); a heatmap of histogram buckets; bars of each series' last value
   * (instant queries); or a table of the last values, one row per variant and a column per
   * query (instant queries joined on `variant`; the legends name the columns).
   */
  kind?: 'timeseries' | 'heatmap' | 'bargauge' | 'table';
  queries: QuerySpec[];
  /** Grafana repeats the panel for each selected variant; its queries select `variant="$variant"`. */
  repeat?: boolean;
  /** Variants this panel has no series for (e.g. per-worker series of single-process variants). */
  notFor?: string[];
  /** The only variants this panel has series for. */
  onlyFor?: string[];
  /** Series (by legend, a regular expression) drawn as a dashed line: limits, not measurements. */
  dashed?: string;
  /** Full width, for panels that repeat across a row. */
  wide?: boolean;
  /** About the lab itself (the load generator), not about any variant: no $variant. */
  global?: boolean;
  /** Bar gauges: the end of the scale (values past it fill the bar). */
  max?: number;
}

export interface RowSpec {
  title: string;
  panels: PanelSpec[];
  /** Closed when the dashboard opens (a click opens it): for what a first look does not need. */
  collapsed?: boolean;
}

/** Selects the variants of the $variant variable (a regex for multi, one name for single). */
export const V = 'variant=~"$variant"';
/** Selects the one variant of a repeated panel or a single-variant dashboard. */
export const ONE = 'variant="$variant"';
/** The load generator's background load, without the spotlight's bursts. */
export const rate = (metric: string, filter: string) => `rate(${metric}{${filter}}[$__rate_interval])`;
export const quantile = (q: number, metric: string, by: string, filter: string) =>
  `histogram_quantile(${q}, sum by (${by}le) (${rate(`${metric}_bucket`, filter)}))`;

/** What a variant adds to the dashboards for the series only it exports (its row of the variant table). */
export interface VariantDashboards {
  /** Rows on the overview dashboard, after the side-by-side ones (collapsed: the home page opens on the comparison). */
  overviewRows?: RowSpec[];
  /** Panels on the one-variant dashboard. */
  variantPanels?: PanelSpec[];
}
