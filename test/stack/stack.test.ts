// The whole compose stack, as `make up` runs it: brings any earlier stack down, builds afresh,
// starts everything (Grafana too unless LAB_NO_GRAFANA=1), talks to the variants on their
// published ports, runs a short load, and checks through Prometheus's HTTP API that every
// variant is scraped and that every dashboard query returns a series for every variant; that
// Docker calls every container healthy; and what the idle lab costs the machine. Always tears
// the stack down. Run with `make test-stack` (needs Docker).
//
// Two settings differ from a plain `make up`, to fit CI's time: the spotlight's phases and the
// gaps between its turns are 500 ms (2.5 s and 5 s by default; the same 3 rounds), and the test
// does not wait for Docker's first healthcheck (120 s after a start where Docker has no
// start_interval) before it begins: it waits until every variant answers, and checks Docker's
// verdict in a later step. The steps that read the rotation's figures (the dashboards, the
// multi-core lesson's turn at 2 cores) come right after it, before the idle step's half-minute
// without load.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { allQueries } from '../../grafana/src/dashboards.js';
import type { LoadReport } from '../../services/loadgen/report.js';
import { publishedUrl, publishedVariantPort } from '../../services/lab/ports.js';
import { VARIANTS } from '../../services/variants/index.js';
import { IDLE_BOUND_CORES, hostBusyOver, idleTable, measureIdleCost } from '../../benchmarks/idle.js';
import { TestClient, runLab, waitUntil } from '../helpers.js';
import { SPOTLIGHT_FOR_CI, eventually, queryAt, type Sample } from './prometheus-api.js';
import {
  checkCpusAndReset,
  checkMakeCpusOneShot,
  checkPs,
  checkShortSweepReport,
  checkQuotaLesson,
  nextSpotlightTurn,
  type SpotlightTurn,
} from './quota-steps.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
// The lab's published ports, as .env (or the environment) sets them.
const PROMETHEUS = publishedUrl('PROMETHEUS_PORT');
const LOADGEN = publishedUrl('LOADGEN_PORT');
/** Where the stack publishes a variant (VARIANT_BASE_PORT plus its offset). */
const portOf = (variant: { hostPort: number }) => publishedVariantPort(variant.hostPort);
const NAMES = VARIANTS.map((v) => v.name);
/** What Grafana's $__rate_interval becomes: 4 scrape intervals at least; 30 s gives the rates enough samples. */
const RATE_INTERVAL = '30s';

/** `docker compose`, with the short spotlight settings for the load generator's container (only there: a plain `lab load` refuses spotlight options). */
function compose(args: string[], timeoutMs = 600_000): string {
  const result = spawnSync('docker', ['compose', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, ...SPOTLIGHT_FOR_CI },
  });
  if (result.status !== 0) {
    throw new Error(
      `docker compose ${args.join(' ')} failed (${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}

const query = (expr: string): Promise<Sample[]> => queryAt(PROMETHEUS, expr);

function envFile(): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of readFileSync(`${ROOT}.env`, 'utf8').split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match) values[match[1]!] = match[2]!;
  }
  return values;
}

function hostCpus(): number {
  const result = spawnSync('docker', ['info', '--format', '{{.NCPU}}'], { encoding: 'utf8' });
  return Number(result.stdout.trim()) || 1;
}

/** What every dashboard annotates: a variant whose CPU quota changed in the last minute. */
const QUOTA_ANNOTATION = 'changes(lab_cpu_quota_cores{variant=~".+"}[1m]) > 0';

describe('the compose stack', () => {
  let failed = false;

  /** The host's busy cores before the lab started (the idle step compares against it). */
  let hostBaseline: number | null = null;
  /** threadpool's turn of the first rotation, at its .env quota of 2 cores (the multi-core lesson's 2-core side). */
  let threadpoolAtTwo: SpotlightTurn | null = null;

  before(async () => {
    // The multi-core lesson below needs a pool that follows its quota (threadpool: one worker at
    // one core) beside one that does not (processpool keeps two workers on one core: the mismatch).
    process.env.THREADPOOL_POOL_FOLLOWS_QUOTA = '1';
    process.env.PROCESSPOOL_POOL_FOLLOWS_QUOTA = '0';
    compose(['down', '-v', '--remove-orphans'], 180_000);
    compose(['build']);
    hostBaseline = await hostBusyOver(5, hostCpus());
    compose(['up', '-d', '--remove-orphans']);
    await waitUntil(
      'every variant answering on its published port, and the load generator serving',
      async () => {
        const down: string[] = [];
        for (const variant of VARIANTS) {
          const { name } = variant;
          const client = await TestClient.connect(portOf(variant)).catch(() => null);
          if (!client) down.push(name);
          else client.close();
        }
        const loadgen = await fetch(`${LOADGEN}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (!loadgen) down.push('loadgen');
        return down.length === 0 ? null : `not yet: ${down.join(', ')}`;
      },
      240_000,
      1000,
    );
  });

  after(() => {
    try {
      if (failed) console.log(compose(['logs', '--no-color', '--tail', '40']));
      console.log(compose(['ps']));
    } finally {
      compose(['down', '-v', '--remove-orphans'], 180_000);
    }
  });

  const step = (name: string, fn: () => Promise<void>) =>
    void it(name, async () => {
      try {
        await fn();
      } catch (error) {
        failed = true;
        throw error;
      }
    });

  step("every variant answers `6` with `fib: 8` on its published port, and the talk's no-newline client", async () => {
    for (const variant of VARIANTS) {
      const { name } = variant;
      const hostPort = portOf(variant);
      const client = await TestClient.connect(hostPort);
      try {
        assert.equal(await client.ask('6'), 'fib: 8', name);
      } finally {
        client.close();
      }
      const perf2 = await TestClient.connect(hostPort);
      try {
        await perf2.write('1');
        assert.equal(await perf2.line(), 'fib: 1', `${name}, legacy b'1'`);
      } finally {
        perf2.close();
      }
    }
  });

  step('Prometheus has request histograms from every variant', async () => {
    await eventually('fib_request_duration_seconds_count > 0 for every variant', async () => {
      const samples = await query('sum by (variant) (fib_request_duration_seconds_count)');
      const seen = new Map(samples.map((s) => [s.metric.variant, Number(s.value[1])]));
      const missing = NAMES.filter((name) => !((seen.get(name) ?? 0) > 0));
      return missing.length === 0 ? null : `no requests yet from ${missing.join(', ')} (seen: ${JSON.stringify([...seen])})`;
    });
  });

  step("the spotlight's first rotation tells the talk's story in loadgen_lesson_collapse_ratio", async () => {
    // One full rotation: every variant has had its turn (about 5 minutes with the defaults).
    await eventually(
      'every variant has lesson figures',
      async () => {
        const seen = new Set((await query('loadgen_lesson_timestamp_seconds')).map((s) => s.metric.variant));
        const missing = NAMES.filter((name) => !seen.has(name));
        return missing.length === 0 ? null : `no turn yet for ${missing.join(', ')}`;
      },
      600_000,
    );
    // Prometheus writes infinities as +Inf and -Inf, which Number() does not read.
    const value = (text: string) => (text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text));
    const byVariant = async (expr: string) => new Map((await query(expr)).map((s) => [s.metric.variant!, value(s.value[1])]));
    const collapse = await byVariant('loadgen_lesson_collapse_ratio');
    const low = await byVariant('loadgen_lesson_collapse_ratio_low');
    const high = await byVariant('loadgen_lesson_collapse_ratio_high');
    const group = await byVariant('loadgen_lesson_collapse_group');
    const quota = await byVariant('loadgen_lesson_cpu_quota_cores');
    const bound = await byVariant('loadgen_lesson_generator_bound');
    const p99 = await byVariant('loadgen_lesson_short_latency_seconds{phase="beside_one_long", percentile="p99"}');
    const alone = await byVariant('loadgen_lesson_short_requests_per_second{phase="alone"}');
    const beside = await byVariant('loadgen_lesson_short_requests_per_second{phase="beside_one_long"}');
    const used = await byVariant('loadgen_lesson_workers_used{phase="beside_one_long"}');
    const causes = (await query('loadgen_lesson_generator_bound_rounds')).map(
      (s) => `${s.metric.variant} ${s.metric.phase} ${s.metric.cause} in ${s.value[1]} rounds`,
    );
    const ratio = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
    const scoreboard = NAMES.map(
      (name) =>
        `${name.padEnd(12)} collapse ${ratio(collapse.get(name)).padStart(7)} (${ratio(low.get(name))}-${ratio(high.get(name))}, group ${group.get(name)})  perf2 ${alone.get(name)?.toFixed(0).padStart(6)}/s alone, ${beside.get(name)?.toFixed(0).padStart(6)}/s beside one long, p99 beside ${((p99.get(name) ?? NaN) * 1000).toFixed(2)} ms  (quota ${quota.get(name)}${bound.get(name) ? ', GENERATOR-BOUND' : ''})`,
    );
    console.log(`the lesson scoreboard after one rotation (medians of 3 rounds, lowest-highest):\n${scoreboard.join('\n')}`);
    console.log(`generator-bound rounds: ${causes.length === 0 ? 'none' : causes.join('; ')}`);
    const shown = scoreboard.join(' | ');
    // As after a plain `make up` on a quiet machine: no turn of the first rotation describes the generator.
    const flagged = NAMES.filter((name) => bound.get(name) !== 0);
    assert.deepEqual(flagged, [], `turns flagged generator-bound (rounds: ${causes.join('; ') || 'none'}): ${shown}`);
    const stalls = ['eventloop', 'sync'];
    const parallel = ['threads', 'threadpool', 'processes', 'processpool'];
    for (const name of stalls)
      assert.ok(collapse.get(name)! >= 10, `${name}: one long request stalls short ones (collapse >= 10): ${shown}`);
    // gil's short requests get through mostly in the hog's gaps: between a fib(30) reply and the
    // next request no thread holds the lock. A Node fib(30) takes 4-5 ms (CPython's, in the talk,
    // 0.3 s), so the gaps are a tenth of the time and the collapse is about (fib(30) + gap) / gap:
    // 11.6x to 32x measured, lower the busier the machine. 5x still sets it apart from threads (1x).
    assert.ok(collapse.get('gil')! >= 5, `gil: short requests wait for the lock (collapse >= 5): ${shown}`);
    for (const name of parallel)
      assert.ok(collapse.get(name)! <= 3, `${name}: the hog runs on another core (collapse <= 3): ${shown}`);
    assert.ok(p99.get('generators')! < 0.05, `generators: short p99 beside one long request < 50 ms: ${shown}`);
    // cluster balances connections: beside one hog, perf2's connection shares its worker (pinned,
    // it waits behind every fib(30)) or has its own (unaffected). Each turn shows one of the two.
    const clusterWorkers = used.get('cluster');
    if (clusterWorkers === 1) {
      assert.ok(collapse.get('cluster')! >= 10, `cluster, perf2 pinned to the hog's worker: collapse >= 10: ${shown}`);
    } else {
      assert.equal(clusterWorkers, 2, `cluster: workers used beside one long request: ${clusterWorkers}`);
      assert.ok(collapse.get('cluster')! <= 3, `cluster, perf2 on its own worker: collapse <= 3: ${shown}`);
    }
    console.log(`cluster: perf2 ${clusterWorkers === 1 ? "shared the hog's worker" : 'had a worker of its own'} this turn`);
    // The multi-core lesson's figure at 2 cores (below): this rotation's turn of threadpool.
    threadpoolAtTwo = await nextSpotlightTurn('threadpool', 0, 2, 30_000);
  });

  // Right after the rotation, while every variant's series are fresh (after the idle step's
  // half-minute without load the rate panels would wait for new samples: 20 s).
  step('every dashboard query returns a series for every variant it applies to', async () => {
    const checks = allQueries();
    for (const q of checks) {
      const expr = q.expr.replaceAll('$__rate_interval', RATE_INTERVAL);
      const variants = NAMES.filter((name) => q.appliesTo(name));
      if (q.exempt) {
        await query(expr.replaceAll('$variant', '.+')); // must still be valid PromQL
        continue;
      }
      await eventually(`${q.dashboard} / ${q.panel}`, async () => {
        // A NaN (a quantile over a window without observations) draws nothing: it does not count.
        const finite = (samples: Sample[]) => samples.filter((s) => Number.isFinite(Number(s.value[1])));
        let missing: string[];
        if (q.global) {
          missing = finite(await query(expr)).length > 0 ? [] : ['the lab'];
        } else if (q.perVariant) {
          // A repeated panel, or the one-variant dashboard: the query selects one variant at a time.
          const results = await Promise.all(
            variants.map(async (name) => [name, finite(await query(expr.replaceAll('$variant', name)))] as const),
          );
          missing = results.filter(([, samples]) => samples.length === 0).map(([name]) => name);
        } else {
          const seen = new Set(finite(await query(expr.replaceAll('$variant', '.+'))).map((s) => s.metric.variant));
          missing = variants.filter((name) => !seen.has(name));
        }
        return missing.length === 0 ? null : `no finite series for ${missing.join(', ')} from ${expr}`;
      });
    }
    console.log(
      `checked ${checks.length} panel queries of ${new Set(checks.map((q) => q.dashboard)).size} dashboards against ${NAMES.length} variants`,
    );
  });

  // After the steps that read the first rotation and its dashboards: a load from the host beside
  // the spotlight's turn takes the cores the turn measures (in CI it made the first turn's rounds
  // generator-bound), and a user's `make up` has no such load.
  step('a short load from the host gets every request answered', async () => {
    const targets = VARIANTS.map((v) => `${v.name}=127.0.0.1:${portOf(v)}`).join(',');
    const { code, stdout, stderr } = await runLab([
      'load',
      '--target',
      targets,
      '--scenario',
      'perf1,perf2',
      '--duration',
      '5s',
      '--json',
    ]);
    assert.equal(code, 0, stderr);
    for (const result of (JSON.parse(stdout) as LoadReport).results) {
      assert.ok(
        result.ok > 0 && result.ok === result.requests,
        `${result.target}/${result.probe}: ${JSON.stringify(result.errors)}`,
      );
    }
  });

  step('Docker calls every container healthy (a bash healthcheck, no JavaScript runtime per check)', async () => {
    await waitUntil(
      'every container of the lab healthy',
      async () => {
        const ids = compose(['ps', '-q']).split('\n').filter(Boolean);
        const states = spawnSync(
          'docker',
          ['inspect', '-f', '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}', ...ids],
          {
            encoding: 'utf8',
          },
        )
          .stdout.trim()
          .split('\n');
        const unhealthy = states.filter((line) => !line.endsWith(' healthy'));
        return unhealthy.length === 0 ? null : `not healthy yet: ${unhealthy.join(', ')}`;
      },
      150_000,
      2000,
    );
  });

  step(`the idle lab (load generator paused) costs at most ${IDLE_BOUND_CORES} cores`, async () => {
    // 30 s, a quarter of benchmarks/idle.ts's 120 s, to fit CI's time. The containers' round of
    // healthchecks (every 120 s: a `runc exec` into each of 20 containers, about 1.5 s of CPU in
    // all) falls inside the window or outside it: five 30 s windows in a row after a plain `make
    // up` read 0.029-0.039 cores without it and 0.083 and 0.088 with it, inside the bound.
    const cost = await measureIdleCost(30);
    console.log(`the lab's idle cost:\n${idleTable(cost, hostBaseline)}`);
    const docker = cost.dockerCores === null ? 'not readable here' : cost.dockerCores.toFixed(3);
    const shown =
      `the lab ${cost.labCores.toFixed(3)} cores: containers ${cost.totalCores.toFixed(3)}, Docker's processes ${docker}; ` +
      `the whole host ${cost.hostBusyCores?.toFixed(3)}, before the lab started ${hostBaseline?.toFixed(3)}`;
    // The host's figure is shown, not judged: it also holds what else runs on the machine (a
    // kernel thread, the CI runner), 0.01-0.03 cores that come and go, and what the lab costs is
    // read exactly from the containers' cgroups and Docker's own processes.
    assert.ok(cost.labCores <= IDLE_BOUND_CORES, `its containers and Docker's work for them: ${shown}`);
  });

  step("each variant reports its own container's CPU quota from its cgroup", async () => {
    const env = envFile();
    for (const name of NAMES) {
      const wanted = Number(env[`${name.toUpperCase()}_CPUS`] ?? 2);
      // job: the variant's own container (queue's workers export their quota under its name too).
      await eventually(
        `lab_cpu_quota_cores{variant="${name}", job="${name}"}`,
        async () => {
          const [sample] = await query(`lab_cpu_quota_cores{variant="${name}", job="${name}"}`);
          if (!sample) return 'no sample yet';
          return Number(sample.value[1]) === wanted ? null : `${sample.value[1]} cores, .env says ${wanted}`;
        },
        30_000,
      );
    }
  });

  step('the load generator serves its control API on 127.0.0.1:$LOADGEN_PORT, changes only with the token of .env', async () => {
    const state = (await (await fetch(`${LOADGEN}/scenario`)).json()) as {
      targets: string[];
      scenario: { spec: string };
    };
    assert.deepEqual(state.targets, NAMES);
    assert.equal(state.scenario.spec, envFile().LOAD_SCENARIO ?? 'perf1,perf2');
    const put = (body: unknown, token = envFile().LOADGEN_TOKEN) =>
      fetch(`${LOADGEN}/scenario`, {
        method: 'PUT',
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
    assert.ok(envFile().LOADGEN_TOKEN, 'make up (init-env.sh) wrote a control token into .env');
    assert.equal((await put({ scenario: 'no-such-scenario' })).status, 400, 'a bad switch is refused and the load goes on');
    assert.equal((await put({ rate: 5 }, 'not-the-token-of-this-lab')).status, 401, 'a wrong token is refused');
    const file = await put({ scenario: 'open-steady.yaml', targets: ['eventloop'] });
    assert.equal(file.status, 200, `a file of the image's scenarios/: ${await file.text()}`);
    const back = await put({ scenario: envFile().LOAD_SCENARIO ?? 'perf1,perf2', targets: NAMES });
    assert.equal(back.status, 200, await back.text());
  });

  step('a live quota change (docker update --cpus) shows in lab_cpu_quota_cores and as an annotation', async () => {
    const container = compose(['ps', '-q', 'threadpool']).trim();
    const update = spawnSync('docker', ['update', '--cpus', '0.5', container], { encoding: 'utf8' });
    assert.equal(update.status, 0, update.stderr);
    await eventually(
      'lab_cpu_quota_cores{variant="threadpool"} == 0.5',
      async () => {
        const [sample] = await query('lab_cpu_quota_cores{variant="threadpool"}');
        return sample && Number(sample.value[1]) === 0.5 ? null : `quota ${sample?.value[1]}`;
      },
      30_000,
    );
    await eventually(
      'the quota annotation fires for threadpool',
      async () => {
        const variants = (await query(QUOTA_ANNOTATION)).map((s) => s.metric.variant);
        return variants.includes('threadpool') ? null : `annotation query returned ${JSON.stringify(variants)}`;
      },
      30_000,
    );
    const reset = await runLab(['cpus', '--reset']);
    assert.equal(reset.code, 0, reset.stderr);
  });

  step('lab ps shows every variant with its quota, cores, memory and workers', checkPs);

  step('lab cpus eventloop 0.5 changes NanoCpus and the exported quota; --reset puts back .env', checkCpusAndReset);

  step('make cpus does the same from a one-shot container; no lab service holds the Docker socket', () =>
    checkMakeCpusOneShot(ROOT),
  );

  step(
    'the multi-core lesson: threadpool at 1 core collapses at least 1.5x more than at 2; a fixed pool at 1 core is throttled',
    async () => {
      // The spotlight on the two pools alone for the turns this takes, then back to the rotation.
      const spotlight = (variants: string[]) =>
        fetch(`${LOADGEN}/spotlight`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${envFile().LOADGEN_TOKEN}` },
          body: JSON.stringify({ variants }),
        });
      assert.ok(threadpoolAtTwo, "the first rotation's turn of threadpool (an earlier step)");
      assert.equal((await spotlight(['threadpool', 'processpool'])).status, 200);
      try {
        await checkQuotaLesson(threadpoolAtTwo);
      } finally {
        await spotlight(NAMES);
      }
    },
  );

  step('a short sweep (two variants x two quotas) writes a report that Chromium draws without an error', checkShortSweepReport);

  step('queue scales out: a third worker joins the group and takes work', async () => {
    // No --wait: Docker's first healthcheck of the new worker comes a whole interval later; the
    // worker joining the group is what counts here.
    compose(['up', '-d', '--no-recreate', '--scale', 'queue-worker=3', 'queue-worker']);
    await eventually(
      'fib_workers{variant="queue"} == 3',
      async () => {
        const [sample] = await query('max(fib_workers{variant="queue"})');
        return sample && Number(sample.value[1]) === 3 ? null : `live workers ${sample?.value[1]}`;
      },
      60_000,
    );
    const queue = VARIANTS.find((v) => v.name === 'queue')!;
    const { code, stdout, stderr } = await runLab([
      'load',
      '--target',
      `queue=127.0.0.1:${portOf(queue)}`,
      '--scenario',
      'perf1',
      '--connections',
      '6',
      '--duration',
      '5s',
      '--json',
    ]);
    assert.equal(code, 0, stderr);
    const result = (JSON.parse(stdout) as LoadReport).results[0]!;
    assert.ok(result.ok > 0 && result.ok === result.requests, JSON.stringify(result.errors));
    await eventually(
      'every queue worker computed some of the fib(30)s',
      async () => {
        const busy = await query('sum by (worker) (increase(fib_worker_requests_total{variant="queue"}[20s])) > 0');
        return busy.length >= 3 ? null : `workers with requests: ${JSON.stringify(busy.map((s) => s.metric.worker))}`;
      },
      30_000,
    );
    // Named by slot (a replica index leased in Redis), not by container: w1, w2, w3.
    const names = (await query('sum by (worker) (fib_worker_requests_total{variant="queue"})')).map((s) => s.metric.worker);
    assert.deepEqual([...names].sort(), ['w1', 'w2', 'w3'], 'the workers are the slots w1..w3');
    // A worker leaving (its slot taken again, its series dropped once its registration lapses) is
    // tested in test/queue/ (scale, workers) on a real Redis; waiting here for the lapse took 10 s.
  });
});
