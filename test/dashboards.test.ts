// The generated dashboards (test/generated.test.ts checks the committed JSON): uids and panel ids are
// unique, every panel describes itself, and every query uses metrics the lab really exports.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, it } from 'node:test';
import {
  DASHBOARDS,
  DATASOURCE,
  PROVISIONED_DATASOURCE,
  allQueries,
  dashboardSpecs,
  displayOrder,
  renderDashboard,
} from '../grafana/src/dashboards.js';
import { VARIANTS } from '../services/variants/index.js';
import { ROOT } from '../tools/generate.js';
import { createLoadgenMetrics } from '../services/loadgen/metrics.js';
import { createQueueWorkerMetrics, registerQueueFrontMetrics } from '../services/variants/queue/metrics.js';
import { createServerMetrics } from '../services/server/metrics.js';
import { registerGeneratorMetrics } from '../services/variants/generators/metrics.js';
import { registerCoroutineMetrics } from '../services/variants/coroutines/metrics.js';
import { CgroupReader } from '../services/lab/cgroup.js';

interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  collapsed?: boolean;
  panels?: Panel[];
  datasource?: { uid: string };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
  fieldConfig?: { defaults?: { links?: Array<{ title: string; url: string }> } };
}

interface Dashboard {
  uid: string;
  editable: boolean;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: unknown; datasource?: { uid: string } }> };
  annotations: { list: Array<{ name: string; expr?: string; datasource?: { uid: string } }> };
}

/** Every generated dashboard, parsed as Grafana reads it. */
const rendered = (): Dashboard[] => DASHBOARDS.map((spec) => JSON.parse(renderDashboard(spec)) as Dashboard);

/** Every panel, those inside collapsed rows included. */
const allPanels = (dashboard: Dashboard): Panel[] => dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

const RULES = fileURLToPath(new URL('../../prometheus/rules/', import.meta.url));

/** Metric names as Prometheus stores them (histograms as _bucket, _sum and _count), and recording rules. */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  const server = createServerMetrics('x', { cgroup: new CgroupReader() });
  registerGeneratorMetrics(server.registry);
  registerCoroutineMetrics(server.registry, () => 0);
  registerQueueFrontMetrics(server.registry);
  const registries = [
    server.registry,
    createLoadgenMetrics().registry,
    createQueueWorkerMetrics({ variant: 'x', cgroup: null }).registry,
  ];
  for (const registry of registries) {
    for (const metric of await registry.getMetricsAsJSON()) {
      names.add(metric.name);
      if (String(metric.type) === 'histogram')
        for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
    }
  }
  for (const file of readdirSync(RULES)) {
    const rules = parse(readFileSync(`${RULES}${file}`, 'utf8')) as { groups: Array<{ rules: Array<{ record?: string }> }> };
    for (const group of rules.groups) for (const rule of group.rules) if (rule.record) names.add(rule.record);
  }
  return names;
}

const PROMQL_WORDS = new Set([
  'job',
  'label_replace',
  'round',
  'sum',
  'by',
  'rate',
  'histogram_quantile',
  'le',
  'variant',
  'probe',
  'outcome',
  'scenario',
  'worker',
  'max',
  'min',
  'avg',
  'increase',
  'changes',
  'without',
  'on',
  'ignoring',
  'group_left',
  'irate',
  'clamp_min',
  'count',
  'abs',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'deriv',
  'delta',
  'resets',
  'label_replace',
  'vector',
  'time',
  'topk',
  'sort_desc',
  'phase',
  'quantile',
  'percentile',
  'reason',
  'clamp_max',
]);

describe('dashboards', () => {
  it('has unique dashboard uids, unique panel ids and a description on every panel', () => {
    const uids = DASHBOARDS.map((d) => d.uid);
    assert.equal(new Set(uids).size, uids.length, `duplicate uid in ${uids}`);
    for (const spec of DASHBOARDS) {
      const dashboard = JSON.parse(renderDashboard(spec)) as Dashboard;
      assert.equal(dashboard.uid, spec.uid);
      const ids = allPanels(dashboard).map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, `${spec.uid}: duplicate panel id in ${ids}`);
      for (const panel of allPanels(dashboard).filter((p) => p.type !== 'row')) {
        assert.ok(panel.description && panel.description.length > 20, `${spec.uid}/${panel.title} needs a description`);
        assert.equal(panel.datasource?.uid, DATASOURCE.uid);
        assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} has no query`);
        for (const target of panel.targets)
          assert.equal(target.datasource?.uid, '${ds}', `${spec.uid}/${panel.title}: every query reads \${ds}`);
        for (const target of panel.targets)
          assert.match(target.expr, /\$__rate_interval|^[^[]*$/, `${panel.title}: use $__rate_interval`);
      }
    }
  });

  it('queries only metrics that a service exports', async () => {
    const exported = await exportedNames();
    for (const query of allQueries()) {
      const withoutStrings = query.expr
        .replace(/"[^"]*"/g, '""')
        .replace(/\[[^\]]*\]/g, '')
        .replace(/\b\d+(\.\d+)?(e[+-]?\d+)?\b/g, '0');
      const identifiers = withoutStrings.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
      const metrics = identifiers.filter((word) => !PROMQL_WORDS.has(word) && !word.startsWith('$'));
      assert.ok(metrics.length > 0, `${query.panel}: no metric found in ${query.expr}`);
      for (const metric of metrics)
        assert.ok(exported.has(metric), `${query.dashboard}/${query.panel}: ${metric} is not exported`);
    }
  });

  it('selects variants through $variant only, so every variant appears', () => {
    for (const query of allQueries().filter((q) => !q.global)) {
      assert.match(
        query.expr,
        /variant=~?"\$variant"/,
        `${query.dashboard}/${query.panel} must select with $variant: ${query.expr}`,
      );
      assert.doesNotMatch(query.expr, /variant=~?"(?!\$variant)/, `${query.dashboard}/${query.panel} names a variant`);
    }
    for (const spec of DASHBOARDS) {
      const dashboard = JSON.parse(renderDashboard(spec)) as { annotations: { list: Array<{ expr: string }> } };
      assert.match(dashboard.annotations.list[0]!.expr, /lab_cpu_quota_cores/, `${spec.uid}: a CPU quota change is annotated`);
    }
  });

  it('reads the datasource through a datasource variable (type prometheus), whose default is the provisioned uid', () => {
    const provisioning = readFileSync(`${ROOT}grafana/provisioning/datasources/prometheus.yml`, 'utf8');
    assert.match(provisioning, new RegExp(`uid: ${PROVISIONED_DATASOURCE.uid}\\b`));
    assert.equal(DATASOURCE.uid, '${ds}');
    for (const dashboard of rendered()) {
      const ds = dashboard.templating.list.find((v) => v.name === 'ds');
      assert.equal(ds?.type, 'datasource', `${dashboard.uid}: a datasource variable`);
      assert.equal(ds?.query, 'prometheus', `${dashboard.uid}: of Prometheus datasources`);
      const text = JSON.stringify(dashboard);
      assert.doesNotMatch(text, new RegExp(`"uid": ?"${PROVISIONED_DATASOURCE.uid}"`), `${dashboard.uid}: no hard-coded uid`);
      assert.equal(dashboard.templating.list.find((v) => v.name === 'variant')?.datasource?.uid, '${ds}');
      for (const annotation of dashboard.annotations.list.filter((a) => a.expr))
        assert.equal(annotation.datasource?.uid, '${ds}', `${dashboard.uid}/${annotation.name}`);
    }
  });

  it('is read-only, as its provider forbids saving', () => {
    const provider = readFileSync(`${ROOT}grafana/provisioning/dashboards/lab.yml`, 'utf8');
    assert.match(provider, /allowUiUpdates: false/);
    for (const dashboard of rendered()) assert.equal(dashboard.editable, false, `${dashboard.uid}: editable`);
  });

  it("links to dashboards and variables that exist: every data link's target uid, and each variable it sets", () => {
    const dashboards = new Map(rendered().map((d) => [d.uid, d]));
    let toVariant = 0;
    let toPrometheus = 0;
    for (const dashboard of dashboards.values()) {
      const own = new Set(dashboard.templating.list.map((v) => v.name));
      for (const panel of allPanels(dashboard).filter((p) => p.type !== 'row')) {
        const links = panel.fieldConfig?.defaults?.links ?? [];
        assert.ok(links.length > 0, `${dashboard.uid}/${panel.title}: no data link`);
        for (const link of links) {
          const where = `${dashboard.uid}/${panel.title}: ${link.url}`;
          // The dashboard variables a link reads must exist where it is clicked.
          for (const [, name] of link.url.matchAll(/\$\{([a-z]+)(?::[a-z]+)?\}/g))
            assert.ok(own.has(name!), `${where}: no variable ${name}`);
          if (link.url.startsWith('${prometheus}/graph?g0.expr=')) {
            toPrometheus++;
            continue;
          }
          const match = /^\/d\/([\w-]+)\/[\w-]*\?(.*)$/.exec(link.url);
          assert.ok(match, `${where}: a dashboard link`);
          const target = dashboards.get(match[1]!);
          assert.ok(target, `${where}: no dashboard ${match[1]}`);
          const names = new Set(target.templating.list.map((v) => v.name));
          const params = new URLSearchParams(match[2]);
          for (const key of params.keys())
            if (key.startsWith('var-'))
              assert.ok(names.has(key.slice(4)), `${where}: ${match[1]} has no variable ${key.slice(4)}`);
          assert.equal(params.get('from'), '${__from}', `${where}: the time range carried`);
          assert.equal(params.get('to'), '${__to}', `${where}: the time range carried`);
          assert.match(
            params.get('var-variant') ?? '',
            /^\$\{(__field\.labels\.variant|__data\.fields\.variant|variant)\}$/,
            where,
          );
          toVariant++;
        }
      }
    }
    const overview = dashboards.get('lab-overview')!;
    const scoreboard = allPanels(overview).find((p) => p.type === 'table')!;
    assert.match(
      scoreboard.fieldConfig!.defaults!.links![0]!.url,
      /var-variant=\$\{__data\.fields\.variant\}/,
      'the scoreboard: its row',
    );
    console.log(`data links: ${toVariant} to the one-variant dashboard, ${toPrometheus} to Prometheus`);
  });

  it('opens the home dashboard on the scoreboard and the side-by-side comparison, the rest in collapsed rows', () => {
    const overview = rendered().find((d) => d.uid === 'lab-overview')!;
    const open = overview.panels.filter((p) => p.type !== 'row');
    const rows = overview.panels.filter((p) => p.type === 'row');
    assert.ok(open.length <= 8, `${open.length} panels open: ${open.map((p) => p.title).join(' | ')}`);
    assert.equal(open[0]?.title.startsWith('Collapse'), true, 'the collapse bars first');
    assert.ok(
      open.some((p) => p.type === 'table' && /scoreboard/i.test(p.title)),
      'the scoreboard open',
    );
    assert.ok(
      open.some((p) => p.title === 'Requests per second'),
      'the side-by-side comparison open',
    );
    assert.deepEqual(
      rows.filter((r) => !r.collapsed).map((r) => r.title.split(':')[0]),
      ['The scoreboard', 'Side by side, server side, under the light background load'],
    );
    const queueRow = rows.findIndex((r) => /queue/i.test(r.title));
    assert.ok(rows[queueRow]?.collapsed, 'the queue-only row collapsed');
    assert.ok(queueRow > rows.findIndex((r) => r.title.startsWith('Side by side')), 'below the side-by-side comparison');
  });

  it("lists bars in the table's side-by-side order: py-threads beside gil and threads, py-pool beside processpool, py-coroutines beside coroutines", () => {
    const order = displayOrder(VARIANTS);
    const near = (a: string, b: string) => Math.abs(order.indexOf(a) - order.indexOf(b));
    assert.ok(near('py-threads', 'gil') <= 2 && near('py-threads', 'threads') <= 2, order.join(' '));
    assert.equal(near('py-pool', 'processpool'), 1, order.join(' '));
    assert.equal(near('py-coroutines', 'coroutines'), 1, order.join(' '));
    for (const spec of dashboardSpecs().filter((s) => s.variable === 'multi')) {
      // The committed JSON, as Grafana loads it (test/generated.test.ts keeps it equal to the specs).
      const dashboard = JSON.parse(readFileSync(`${ROOT}grafana/dashboards/${spec.file}`, 'utf8')) as Dashboard;
      for (const panel of allPanels(dashboard).filter((p) => p.type === 'bargauge')) {
        // The variant each query names, in the order Grafana draws the bars.
        const seen = panel.targets!.map((t) => /variant="([\w-]+)"/.exec(t.expr)?.[1]);
        const variants = seen.filter((v, i) => v !== seen[i - 1]);
        assert.ok(
          variants.every((v) => v !== undefined),
          `${spec.uid}/${panel.title}: a query per variant`,
        );
        const expected = order.filter((v) => variants.includes(v));
        assert.deepEqual(variants, expected, `${spec.uid}/${panel.title}: in the side-by-side order`);
      }
    }
  });
});
