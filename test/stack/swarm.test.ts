// The lab as a Docker Swarm stack (docker-stack.yml, docs/swarm.md), as `make swarm-up` deploys
// it, on this machine: a swarm of one node (`docker swarm init --advertise-addr 127.0.0.1` when
// the engine is in none, and only then left again), every role on it. Checks that every service's
// tasks run and are healthy, that Prometheus finds every variant and both queue workers by DNS
// (no Docker socket), that the load generator reaches the variants by service name (the
// spotlight's first turn is exported), and that `lab cpus eventloop 1` goes through the service
// API, swarm replacing the task, and shows in lab_cpu_quota_cores. Always removes the stack and
// leaves the machine as it was, but for the bridge docker_gwbridge that `docker swarm init` makes
// and Docker keeps after leaving (its stale endpoint refuses `docker network rm`: moby#37018), and
// puts back .env as it found it. Run with `make test-swarm` (needs Docker; not beside the compose
// lab's default ports: its own ports are below).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SweepFile } from '../../services/sweep/file.js';
import { VARIANTS } from '../../services/variants/index.js';
import { TestClient, runLab } from '../helpers.js';
import { SPOTLIGHT_FOR_CI, eventually, queryAt } from './prometheus-api.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const STACK = 'concurrency-lab';
const ROLES = ['lab.load', 'lab.variants', 'lab.monitor'];
const NAMES = VARIANTS.map((v) => v.name);

/** Ports of its own, apart from the compose lab's (9090, 9465, 25001...), which may be running. */
const PORTS = { VARIANT_BASE_PORT: 36001, PROMETHEUS_PORT: 39190, LOADGEN_PORT: 39565, GRAFANA_PORT: 39300 };
const PROMETHEUS = `http://127.0.0.1:${PORTS.PROMETHEUS_PORT}`;
const variantPort = (hostPort: number) => PORTS.VARIANT_BASE_PORT + hostPort - 25001;

const ENV: Record<string, string> = {
  ...SPOTLIGHT_FOR_CI,
  ...Object.fromEntries(Object.entries(PORTS).map(([k, v]) => [k, String(v)])),
  // A task counts as running once its first healthcheck passes, one interval after it starts,
  // and every quota change replaces a task: at 3 s (make swarm-up: 30 s) the test waits 40 s less
  // than at 10 s (127 s -> 87 s here). The checks' own CPU does not matter here: nothing measures a
  // ratio, and the sweep's one point is held to its quota.
  SWARM_HEALTH_INTERVAL: '3s',
};

function run(command: string, args: string[], timeoutMs = 120_000): { ok: boolean; out: string } {
  const result = spawnSync(command, args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, ...ENV },
  });
  return { ok: result.status === 0, out: `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ?? ''}` };
}

function must(command: string, args: string[], timeoutMs?: number): string {
  const { ok, out } = run(command, args, timeoutMs);
  if (!ok) throw new Error(`${command} ${args.join(' ')} failed:\n${out}`);
  return out;
}

const query = (expr: string) => queryAt(PROMETHEUS, expr);

describe('the swarm stack', () => {
  /** Whether this test made the swarm (then it leaves it), and the role labels it added to the node. */
  let createdSwarm = false;
  let nodeId = '';
  const labelsBefore = new Set<string>();
  const figures: string[] = [];
  /** When make swarm-up returned: every task running and healthy. */
  let deployed = 0;
  /**
   * .env as it was: swarm.sh rewrites it (the variants' ports from this test's VARIANT_BASE_PORT,
   * a new control token), and a compose lab running beside would then be out of step with it.
   */
  const ENV_FILE = join(ROOT, '.env');
  let envBefore: string | null = null;

  before(() => {
    envBefore = existsSync(ENV_FILE) ? readFileSync(ENV_FILE, 'utf8') : null;
    const state = must('docker', ['info', '--format', '{{.Swarm.LocalNodeState}}']).trim();
    if (state === 'inactive') {
      must('docker', ['swarm', 'init', '--advertise-addr', '127.0.0.1']);
      createdSwarm = true;
    } else {
      assert.equal(state, 'active', `the Docker engine's swarm state: ${state}`);
    }
    nodeId = must('docker', ['info', '--format', '{{.Swarm.NodeID}}']).trim();
    const labels = JSON.parse(must('docker', ['node', 'inspect', '--format', '{{json .Spec.Labels}}', nodeId])) as Record<
      string,
      string
    > | null;
    for (const role of ROLES) if (labels?.[role] !== undefined) labelsBefore.add(role);
    // A stack left by an earlier run goes first.
    if (run('docker', ['stack', 'services', '-q', STACK]).out.trim() !== '') must('./scripts/swarm.sh', ['down'], 300_000);
    const started = Date.now();
    must('./scripts/swarm.sh', ['up'], 900_000);
    deployed = Date.now();
    figures.push(
      `make swarm-up (build, deploy, every task running and healthy): ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
  });

  after(() => {
    try {
      console.log(run('docker', ['stack', 'ps', STACK, '--format', '{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}']).out);
      const started = Date.now();
      console.log(must('./scripts/swarm.sh', ['down'], 300_000));
      figures.push(`make swarm-down (containers and network gone): ${((Date.now() - started) / 1000).toFixed(0)} s`);
    } finally {
      if (createdSwarm) {
        must('docker', ['swarm', 'leave', '--force']);
      } else {
        const added = ROLES.filter((role) => !labelsBefore.has(role));
        if (added.length > 0) must('docker', ['node', 'update', ...added.flatMap((r) => ['--label-rm', r]), nodeId]);
      }
      if (envBefore === null) rmSync(ENV_FILE, { force: true });
      else writeFileSync(ENV_FILE, envBefore);
      console.log(`swarm figures:\n  ${figures.join('\n  ')}`);
    }
  });

  it("every service's tasks run and Docker calls every container healthy", () => {
    const services = must('docker', ['stack', 'services', STACK, '--format', '{{.Name}} {{.Replicas}}']).trim().split('\n');
    const short = services.filter((line) => {
      const [running, wanted] = line.split(' ')[1]!.split('/');
      return running !== wanted;
    });
    assert.deepEqual(short, [], `services short of tasks: ${services.join(', ')}`);
    for (const name of [...NAMES, 'queue-worker', 'redis', 'loadgen', 'prometheus']) {
      assert.ok(
        services.some((line) => line.startsWith(`${STACK}_${name} `)),
        `service ${name} in ${services.join(', ')}`,
      );
    }
    const ids = must('docker', ['ps', '-q', '--filter', `label=com.docker.stack.namespace=${STACK}`])
      .trim()
      .split('\n');
    const states = must('docker', [
      'inspect',
      '-f',
      '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}',
      ...ids,
    ])
      .trim()
      .split('\n');
    const unhealthy = states.filter((line) => !line.endsWith(' healthy'));
    assert.deepEqual(unhealthy, [], `containers not healthy: ${unhealthy.join(', ')}`);
    figures.push(`${services.length} services, ${ids.length} containers, all healthy`);
  });

  it('every variant answers on its host-mode published port', async () => {
    for (const { name, hostPort } of VARIANTS) {
      const client = await TestClient.connect(variantPort(hostPort));
      try {
        assert.equal(await client.ask('6'), 'fib: 8', name);
      } finally {
        client.close();
      }
    }
  });

  it('Prometheus finds every variant, both queue workers and the load generator by DNS (tasks.<service>)', async () => {
    const started = Date.now();
    let shown = '';
    await eventually('up == 1 for every job and instance', async () => {
      const up = await query('up');
      const byJob = new Map<string, string[]>();
      for (const s of up)
        if (s.value[1] === '1') byJob.set(s.metric.job!, [...(byJob.get(s.metric.job!) ?? []), s.metric.instance!]);
      shown = [...byJob].map(([job, instances]) => `${job}: ${instances.join(' ')}`).join('; ');
      const missing = [
        ...NAMES.filter((name) => !byJob.get(name)?.includes(`${name}:9464`)),
        ...((byJob.get('queue-worker')?.length ?? 0) >= 2 ? [] : ['queue-worker x2']),
        ...(byJob.get('loadgen')?.includes('loadgen:9465') ? [] : ['loadgen']),
      ];
      return missing.length === 0 ? null : `not up yet: ${missing.join(', ')} (up: ${shown})`;
    });
    const targets = (await query('up == 1')).length;
    figures.push(
      `${targets} scrape targets up (${NAMES.length} variants, 2 queue workers, loadgen, prometheus) ${((Date.now() - started) / 1000).toFixed(0)} s after the deploy finished`,
    );
    // The worker label, which the dashboards read, is the slot each worker claims in Redis (w1, w2, ...).
    await eventually('both queue workers computed requests, each under its own worker label', async () => {
      const workers = (await query('count by (worker) (fib_worker_requests_total{variant="queue"})')).map((s) => s.metric.worker);
      return workers.filter((w) => /^w\d+$/.test(w ?? '')).length >= 2 ? null : `worker labels: ${JSON.stringify(workers)}`;
    });
  });

  it("the load generator reaches the variants by service name: the spotlight's first turn is exported", async () => {
    await eventually(
      'a spotlight turn in loadgen_lesson_timestamp_seconds',
      async () => {
        const turns = (await query('loadgen_lesson_timestamp_seconds > 0')).map((s) => s.metric.variant);
        return turns.length > 0 ? null : 'no turn yet';
      },
      180_000,
    );
    const [first] = await query('loadgen_lesson_collapse_ratio');
    assert.ok(first, 'the first turn exported its collapse ratio');
    figures.push(
      `the spotlight's first turn (${first.metric.variant}, collapse ${first.value[1]}) exported ${((Date.now() - deployed) / 1000).toFixed(0)} s after the deploy finished`,
    );
    // Every variant answered the background load from the generator, by its service name.
    await eventually('requests from the load generator to every variant', async () => {
      const seen = new Set(
        (await query('sum by (variant) (fib_request_duration_seconds_count) > 0')).map((s) => s.metric.variant),
      );
      const missing = NAMES.filter((name) => !seen.has(name));
      return missing.length === 0 ? null : `no requests yet to ${missing.join(', ')}`;
    });
  });

  it('lab cpus eventloop 1 goes through the service API: swarm replaces the task, lab_cpu_quota_cores follows', async () => {
    const started = Date.now();
    const { code, stdout, stderr } = await runLab(['cpus', 'eventloop', '1'], {}, 300_000);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stderr, /swarm replaces its tasks/, stderr);
    assert.match(stdout, /eventloop +[\d.]+ cores -> 1 core .*confirmed after .*1 task replaced by swarm/, stdout);
    const nano = must('docker', [
      'service',
      'inspect',
      '--format',
      '{{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}}',
      `${STACK}_eventloop`,
    ]).trim();
    assert.equal(nano, '1000000000', 'the service spec holds the new limit');
    await eventually(
      'lab_cpu_quota_cores{job="eventloop"} == 1 in Prometheus',
      async () => {
        const [sample] = await query('lab_cpu_quota_cores{variant="eventloop", job="eventloop"}');
        return sample && Number(sample.value[1]) === 1 ? null : `quota ${sample?.value[1]}`;
      },
      60_000,
    );
    figures.push(
      `lab cpus eventloop 1: ${stdout.trim()} (the command took ${seconds.toFixed(1)} s; in Prometheus ${((Date.now() - started) / 1000).toFixed(1)} s after it began)`,
    );
  });

  it('lab ps reads the swarm stack: the new quota beside the others', async () => {
    const { code, stdout, stderr } = await runLab([
      'ps',
      '--json',
      '--prometheus',
      PROMETHEUS,
      '--loadgen',
      `http://127.0.0.1:${PORTS.LOADGEN_PORT}`,
    ]);
    assert.equal(code, 0, stderr);
    const snap = JSON.parse(stdout) as { variants: Array<{ variant: string; quotaCores: number | null; containers: number }> };
    assert.deepEqual(
      snap.variants.map((v) => v.variant),
      NAMES,
    );
    assert.equal(snap.variants.find((v) => v.variant === 'eventloop')?.quotaCores, 1);
    assert.equal(snap.variants.find((v) => v.variant === 'queue')?.containers, 3, 'the queue front and its two workers');
  });

  it("lab sweep on the stack: the service's quota at each point, load from the generator on the overlay network, restored after", async () => {
    const nano = () =>
      must('docker', [
        'service',
        'inspect',
        '--format',
        '{{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}}',
        `${STACK}_eventloop`,
      ]).trim();
    const before = nano();
    const dir = mkdtempSync(join(tmpdir(), 'lab-swarm-sweep-'));
    try {
      const out = join(dir, 'sweep.json');
      const started = Date.now();
      const sweep = await runLab(
        [
          'sweep',
          '--variants',
          'eventloop',
          '--cpus',
          '0.5',
          '--loadgen',
          `http://127.0.0.1:${PORTS.LOADGEN_PORT}`,
          '--out',
          out,
          // Short phases: the point checks the plumbing (the quota set through the service API and
          // restored, the cgroup counters read), not the figures.
          '--warmup',
          '500ms',
          '--throughput-duration',
          '1s',
          '--collapse-duration',
          '500ms',
        ],
        {},
        600_000,
      );
      assert.equal(sweep.code, 0, sweep.stderr);
      assert.match(sweep.stderr, /load from the lab's load generator inside the stack's overlay network/, sweep.stderr);
      const file = JSON.parse(readFileSync(out, 'utf8')) as SweepFile;
      assert.equal(file.mode, 'docker');
      const [point] = file.points;
      assert.ok(
        point && point.variant === 'eventloop' && point.cpus === 0.5 && point.throughput > 0,
        JSON.stringify(file.points),
      );
      assert.ok(
        point.coresUsed !== null && point.coresUsed < 0.5 * 1.15,
        `the quota holds eventloop to half a core: ${JSON.stringify(point)}`,
      );
      assert.equal(nano(), before, 'the quota restored');
      figures.push(
        `lab sweep eventloop at 0.5 (baseline, the point, the restore: tasks replaced at each change): ${((Date.now() - started) / 1000).toFixed(0)} s, ${point.throughput.toFixed(0)} req/s, ${point.coresUsed.toFixed(2)} cores used`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
