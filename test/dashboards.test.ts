// The generated dashboards (test/generated.test.ts checks the committed JSON): uids and panel ids are
// unique, every panel describes itself, and every query uses metrics the lab really exports.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, it } from 'node:test';
import { DASHBOARDS, DATASOURCE, allQueries, renderDashboard } from '../grafana/src/dashboards.js';
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
  datasource?: { uid: string };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
}

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
      const dashboard = JSON.parse(renderDashboard(spec)) as { uid: string; panels: Panel[] };
      assert.equal(dashboard.uid, spec.uid);
      const ids = dashboard.panels.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, `${spec.uid}: duplicate panel id in ${ids}`);
      for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
        assert.ok(panel.description && panel.description.length > 20, `${spec.uid}/${panel.title} needs a description`);
        assert.equal(panel.datasource?.uid, DATASOURCE.uid);
        assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} has no query`);
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

  it('the provisioned datasource has the uid the panels use', () => {
    const provisioning = readFileSync(`${ROOT}grafana/provisioning/datasources/prometheus.yml`, 'utf8');
    assert.match(provisioning, new RegExp(`uid: ${DATASOURCE.uid}\\b`));
  });
});
