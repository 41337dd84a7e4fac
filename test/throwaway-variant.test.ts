// A variant is one folder plus one row: a throwaway row (test/throwaway-variant.ts), added to a
// temporary table and to nothing else, is picked up by everything the lab derives from the table:
// the compose file (its service, option, quota, limits, companion, and the load generator's
// target), Prometheus's scrape jobs, the .env defaults, the Makefile's list, the dashboards (the
// side-by-side panels and its own row and panel, through its row's hooks), and the spotlight,
// which measures it from the very target compose gives the load generator. The shared
// conformance suite runs on it in test/conformance.test.ts. The lab's own rows generate exactly
// what they did without it: the row only adds.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { allQueries, dashboardSpecs, renderDashboard } from '../grafana/src/dashboards.js';
import { createLoadgenMetrics } from '../services/loadgen/metrics.js';
import { parseTargets } from '../services/loadgen/options.js';
import { PauseGate } from '../services/loadgen/pause.js';
import { Spotlight, toSpotlightTarget, type LessonTurn } from '../services/loadgen/spotlight.js';
import { VARIANTS } from '../services/variants/index.js';
import {
  composeFile,
  envDefaultsFile,
  healthOverrideFile,
  loadTarget,
  prometheusFile,
  variantsMakefile,
} from '../tools/generate.js';
import { TestClient, metricsOf, sample } from './helpers.js';
import {
  THROWAWAY_METRIC,
  THROWAWAY_NAME,
  THROWAWAY_TABLE,
  serveInProcess,
  throwaway,
  type InProcessVariant,
} from './throwaway-variant.js';

interface Service {
  command?: string[];
  ports?: string[];
  cpus?: string;
  mem_limit?: string;
  pids_limit?: number;
  read_only?: boolean;
  cap_drop?: string[];
  healthcheck?: unknown;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
}
type Compose = { services: Record<string, Service> };

const parseCompose = (text: string) => parse(text, { merge: true }) as Compose;

describe('a throwaway variant, added as one row of a temporary table and nowhere else', () => {
  it('is in no table of the lab, and its table is the lab’s plus its row', () => {
    assert.ok(
      !VARIANTS.some((v) => v.name === THROWAWAY_NAME || v.hostPort === throwaway.hostPort),
      'a name and port of its own',
    );
    assert.deepEqual(
      THROWAWAY_TABLE.map((v) => v.name),
      [...VARIANTS.map((v) => v.name), THROWAWAY_NAME],
    );
  });

  it('gets its compose service, with its option, quota, limits, hardening and companion; the load generator targets it', () => {
    const compose = parseCompose(composeFile(THROWAWAY_TABLE));
    const service = compose.services[THROWAWAY_NAME];
    assert.ok(service, `no service ${THROWAWAY_NAME} in ${Object.keys(compose.services).join(', ')}`);
    assert.deepEqual(service.command, ['serve', THROWAWAY_NAME]);
    assert.deepEqual(service.ports, [`127.0.0.1:\${THROWAWAY_PORT:-${throwaway.hostPort}}:25000`], 'its port from .env');
    assert.equal(service.cpus, '${THROWAWAY_CPUS:-2}');
    assert.equal(service.environment?.TALLY_STEP, '${THROWAWAY_TALLY_STEP:-1}', 'its own option, from .env');
    assert.deepEqual([service.mem_limit, service.pids_limit], [throwaway.limits.memory, throwaway.limits.pids]);
    assert.deepEqual([service.read_only, service.cap_drop], [true, ['ALL']], 'hardened like every variant');
    assert.ok(service.healthcheck, 'a healthcheck');
    assert.equal(service.depends_on?.['throwaway-peer']?.condition, 'service_started', 'starts after its companion');
    assert.ok(compose.services['throwaway-peer'], 'its companion is a service');

    const loadgen = compose.services.loadgen!;
    assert.deepEqual(loadgen.environment?.LOAD_TARGETS?.split(','), THROWAWAY_TABLE.map(loadTarget));
    assert.equal(loadgen.depends_on?.[THROWAWAY_NAME]?.condition, 'service_started');
    // Its healthcheck's start interval (Docker 25+) is set as eventloop's is.
    const health = healthOverrideFile(THROWAWAY_TABLE);
    const listed = (name: string) => new RegExp(`^  ${name}:\\n    healthcheck:`, 'm').test(health);
    assert.equal(listed(THROWAWAY_NAME), listed('eventloop'), health);
  });

  it('leaves every other service as the lab’s table makes it, but the load generator’s list of targets', () => {
    const lab = parseCompose(composeFile());
    const withRow = parseCompose(composeFile(THROWAWAY_TABLE));
    const added = Object.keys(withRow.services).filter((name) => !(name in lab.services));
    assert.deepEqual(added.sort(), [THROWAWAY_NAME, 'throwaway-peer'].sort());
    for (const [name, service] of Object.entries(lab.services)) {
      if (name === 'loadgen') continue;
      assert.deepEqual(withRow.services[name], service, `${name} changed`);
    }
    const { environment, depends_on, ...rest } = withRow.services.loadgen!;
    const { environment: labEnvironment, depends_on: labDependsOn, ...labRest } = lab.services.loadgen!;
    assert.deepEqual(rest, labRest);
    assert.deepEqual({ ...environment, LOAD_TARGETS: '' }, { ...labEnvironment, LOAD_TARGETS: '' });
    assert.deepEqual(Object.keys(depends_on ?? {}), [...Object.keys(labDependsOn ?? {}), THROWAWAY_NAME]);
  });

  it('is scraped by Prometheus, with its companion; only those jobs are added', () => {
    const job = `  - job_name: ${THROWAWAY_NAME}\n    static_configs:\n      - targets: ["${THROWAWAY_NAME}:9464"]\n`;
    const config = prometheusFile(THROWAWAY_TABLE);
    assert.ok(config.includes(job), `no scrape job for ${THROWAWAY_NAME}:\n${config}`);
    assert.ok(config.includes(throwaway.companions!.scrape!), 'its companion’s scrape job');
    assert.equal(config.replace(job, '').replace(throwaway.companions!.scrape!, ''), prometheusFile());
  });

  it('has its .env defaults (quota, option, companion setting) and its place in the Makefile’s list', () => {
    const env = envDefaultsFile(THROWAWAY_TABLE);
    for (const line of ['THROWAWAY_CPUS=2', 'THROWAWAY_TALLY_STEP=1', 'THROWAWAY_PEER_IMAGE=busybox:1.36'])
      assert.match(env, new RegExp(`^${line}$`, 'm'), line);
    const makefile = variantsMakefile(THROWAWAY_TABLE);
    assert.match(makefile, new RegExp(`^VARIANTS := .* ${THROWAWAY_NAME}$`, 'm'));
    assert.match(makefile, new RegExp(`^VARIANT_PORT_OFFSETS := .* ${THROWAWAY_NAME}:${throwaway.hostPort - 25001}$`, 'm'));
  });

  it('is on the dashboards: every side-by-side panel eventloop is on (same traits), and its own row and panel, only for it', () => {
    const specs = dashboardSpecs(THROWAWAY_TABLE);
    const queries = allQueries(specs);
    const own = (title: string) => queries.filter((q) => q.panel === title);
    for (const title of ['Throwaway tally per second', 'Throwaway tally']) {
      assert.ok(own(title).length > 0, `no panel "${title}"`);
      for (const query of own(title)) {
        assert.ok(query.appliesTo(THROWAWAY_NAME), `${query.dashboard}/${title} applies to it`);
        assert.ok(!query.appliesTo('eventloop'), `${query.dashboard}/${title} is its own`);
      }
    }
    // The throwaway row has eventloop's traits (Node, one thread computing): the same shared panels apply.
    const shared = queries.filter((q) => !q.expr.includes(THROWAWAY_METRIC));
    const missing = shared.filter((q) => q.appliesTo('eventloop') !== q.appliesTo(THROWAWAY_NAME));
    assert.deepEqual(
      missing.map((q) => `${q.dashboard}/${q.panel}`),
      [],
    );
    const overview = specs.find((s) => s.uid === 'lab-overview')!;
    assert.ok(
      overview.rows.some((row) => row.title === 'The throwaway variant'),
      'its row on the overview',
    );
    assert.ok(renderDashboard(overview).includes(THROWAWAY_METRIC), 'its query in the overview’s JSON');
    const variantDashboard = specs.find((s) => s.uid === 'lab-variant')!;
    assert.ok(renderDashboard(variantDashboard).includes(THROWAWAY_METRIC), 'its query in the one-variant JSON');
  });

  describe('served', () => {
    let server: InProcessVariant;
    before(async () => {
      server = await serveInProcess(throwaway, { TALLY_STEP: '3' });
    });
    after(async () => {
      await server?.stop();
    });

    it('exports the metric its panels query, counted by its plug-in with its own option', async () => {
      const client = await TestClient.connect(server.port);
      try {
        for (const n of [1, 2, 10]) assert.match(await client.ask(String(n)), /^fib: \d+$/);
      } finally {
        client.close();
      }
      const text = await metricsOf(server);
      const tally = sample(text, THROWAWAY_METRIC, { variant: THROWAWAY_NAME });
      assert.ok(tally >= 9, `${THROWAWAY_METRIC}{variant="${THROWAWAY_NAME}"} ${tally}: 3 requests x TALLY_STEP 3 at least`);
      assert.equal(tally % 3, 0, `${THROWAWAY_METRIC} ${tally} counts in steps of TALLY_STEP`);
    });

    it('is measured by the spotlight from the target compose gives the load generator', async () => {
      // The load generator's target for it in compose, pointed at this process instead of the container.
      const composed = parseCompose(composeFile(THROWAWAY_TABLE))
        .services.loadgen!.environment!.LOAD_TARGETS!.split(',')
        .find((t) => t.startsWith(`${THROWAWAY_NAME}=`));
      assert.ok(composed, 'compose targets it');
      const local = composed
        .replace(`${THROWAWAY_NAME}:25000`, `127.0.0.1:${server.port}`)
        .replace(`${THROWAWAY_NAME}:9464`, `127.0.0.1:${server.metricsPort}`);
      const [target] = parseTargets(local);
      const metrics = createLoadgenMetrics();
      const turns: LessonTurn[] = [];
      const spotlight = new Spotlight(
        [toSpotlightTarget(target!)],
        { variants: [THROWAWAY_NAME], phaseMs: 300, warmupMs: 100, gapMs: 0, rotations: 1, longN: 25, rounds: 1 },
        { gate: new PauseGate(), metrics, onEvent: (event) => event.type === 'turn' && turns.push(event.turn) },
      );
      await spotlight.run(new AbortController().signal);
      assert.deepEqual(
        turns.map((t) => t.variant),
        [THROWAWAY_NAME],
      );
      const turn = turns[0]!;
      assert.deepEqual(
        turn.phases.map((p) => p.phase),
        ['alone', 'beside_one_long'],
        'a single-threaded row: no third phase',
      );
      assert.equal(turn.workers, 1, `its fib_workers, read from its /metrics: ${turn.notes.join('; ')}`);
      const text = await metrics.registry.metrics();
      const alone = sample(text, 'loadgen_lesson_short_requests_per_second', { variant: THROWAWAY_NAME, phase: 'alone' });
      assert.ok(alone > 0, `perf2 alone on it: ${alone}/s`);
      assert.ok(sample(text, 'loadgen_lesson_collapse_ratio', { variant: THROWAWAY_NAME }) > 0, 'its collapse ratio is exported');
    });
  });
});
