// The quota commands against the running compose stack, as steps the stack test calls once it
// has brought the stack up (this file starts nothing and tests nothing on its own):
// - `lab cpus eventloop 0.5` changes the container's NanoCpus and the variant's exported quota,
//   `lab cpus --reset` puts back the .env value; `make cpus` does the same without Node, and no
//   lab service holds the Docker socket;
// - a short sweep (two variants x two quotas) from the host writes a report that headless
//   Chromium draws without an error, and leaves the quotas as they were;
// - the multi-core lesson on the spotlight's own figures: threadpool (its pool following the
//   quota) at 1 core collapses at least 1.5x more than at 2 cores; processpool at 1 core with its
//   fixed pool of 2 is throttled and collapses less (needs the spotlight rotation).
// Each check verifies through other eyes than the command's own: `docker inspect` for NanoCpus,
// Prometheus for what the variant exports.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishedUrl } from '../../services/lab/ports.js';
import { envQuota } from '../../services/quota/env.js';
import type { PsSnapshot } from '../../services/quota/ps.js';
import type { SweepFile } from '../../services/sweep/file.js';
import { VARIANT_NAMES } from '../../services/variants/index.js';
import { runLab, waitUntil } from '../helpers.js';
import { checkReportPage, chromiumMissing } from '../report-browser.js';

// The lab's published ports, as .env (or the environment) sets them.
const PROMETHEUS = publishedUrl('PROMETHEUS_PORT');

function nanoCpus(variant: string): number {
  const result = spawnSync('docker', ['inspect', '-f', '{{.HostConfig.NanoCpus}}', `concurrency-lab-${variant}-1`], {
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  return Number(result.stdout.trim());
}

function hostCpus(): number {
  const result = spawnSync('docker', ['info', '--format', '{{.NCPU}}'], { encoding: 'utf8' });
  return Number(result.stdout.trim()) || 1;
}

async function query(expr: string, time?: number): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const at = time === undefined ? '' : `&time=${time}`;
  const response = await fetch(`${PROMETHEUS}/api/v1/query?query=${encodeURIComponent(expr)}${at}`);
  const body = (await response.json()) as { status: string; error?: string; data?: { result: [] } };
  if (body.status !== 'success') throw new Error(`query failed: ${expr}: ${body.error}`);
  return body.data!.result;
}

async function scalar(expr: string, time?: number): Promise<number | null> {
  const [sample] = await query(expr, time);
  return sample ? Number(sample.value[1]) : null;
}

/** Waits for a state of the stack, asking every second. */
const eventually = (what: string, check: () => Promise<string | null>, timeoutMs: number) =>
  waitUntil(what, check, timeoutMs, 1000);

async function exportedQuota(variant: string, cores: number): Promise<void> {
  await eventually(
    `Prometheus sees lab_cpu_quota_cores{variant="${variant}"} == ${cores}`,
    async () => {
      const value = await scalar(`lab_cpu_quota_cores{variant="${variant}"}`);
      return value === cores ? null : `it is ${value}`;
    },
    30_000,
  );
}

/** `lab cpus eventloop 0.5` then `lab cpus --reset`, checked in docker inspect and Prometheus. */
export async function checkCpusAndReset(): Promise<void> {
  const wanted = envQuota('eventloop', hostCpus());
  const set = await runLab(['cpus', 'eventloop', '0.5']);
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /eventloop\s+.* -> 0\.5 cores\s+lab_cpu_quota_cores .* -> 0\.5 \(confirmed after/, set.stdout);
  assert.equal(nanoCpus('eventloop'), 0.5e9);
  await exportedQuota('eventloop', 0.5);

  const reset = await runLab(['cpus', '--reset']);
  assert.equal(reset.code, 0, reset.stderr);
  assert.match(reset.stdout, new RegExp(`eventloop\\s+0\\.5 cores -> ${wanted} cores`), reset.stdout);
  assert.equal(nanoCpus('eventloop'), wanted * 1e9);
  await exportedQuota('eventloop', wanted);

  const unknown = await runLab(['cpus', 'no-such-variant', '1']);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.equal(unknown.stderr.trim().split('\n').length, 1, unknown.stderr);
}

/** A short sweep of two variants at two quotas, its report in Chromium, the quotas back as they were. */
export async function checkShortSweepReport(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lab-stack-sweep-'));
  try {
    const before = { eventloop: nanoCpus('eventloop'), threadpool: nanoCpus('threadpool') };
    const out = join(dir, 'sweep.json');
    const sweep = await runLab(
      [
        'sweep',
        '--variants',
        'eventloop,threadpool',
        '--cpus',
        '0.5,1',
        '--out',
        out,
        // Short phases: these points check the plumbing (quotas set and restored, cgroup
        // counters read, the report drawn), not the figures (make report's sweep measures those).
        '--warmup',
        '500ms',
        '--throughput-duration',
        '1s',
        '--collapse-duration',
        '500ms',
      ],
      {},
      300_000,
    );
    assert.equal(sweep.code, 0, sweep.stderr);
    const file = JSON.parse(readFileSync(out, 'utf8')) as SweepFile;
    assert.equal(file.mode, 'docker');
    assert.deepEqual(
      file.points.map((p) => `${p.variant}@${p.cpus}`),
      ['eventloop@0.5', 'eventloop@1', 'threadpool@0.5', 'threadpool@1'],
    );
    for (const p of file.points) {
      assert.ok(p.throughput > 0 && p.collapse.aloneRps > 0, JSON.stringify(p));
      assert.ok(p.coresUsed !== null && p.throttledShare !== null, `cgroup counters read: ${JSON.stringify(p)}`);
    }
    const half = file.points.find((p) => p.variant === 'eventloop' && p.cpus === 0.5)!;
    assert.ok(half.coresUsed! < 0.5 * 1.15, `the quota holds eventloop to half a core: ${JSON.stringify(half)}`);
    assert.deepEqual({ eventloop: nanoCpus('eventloop'), threadpool: nanoCpus('threadpool') }, before, 'quotas restored');

    const missing = chromiumMissing();
    if (missing && !process.env.CI) {
      console.log(`report not checked in a browser: ${missing}`);
      return;
    }
    const report = join(dir, 'report.html');
    const rendered = await runLab(['report', out, '--out', report]);
    assert.equal(rendered.code, 0, rendered.stderr);
    const page = await checkReportPage(report);
    assert.deepEqual(page.consoleErrors, []);
    assert.deepEqual(page.requests, []);
    assert.equal(page.expectedCharts, 4, 'two throughput charts, collapse, p99');
    assert.equal(page.drawnCharts.length, 4, JSON.stringify(page));
    assert.equal(page.blankCanvases, 0, JSON.stringify(page));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type SpotlightTurn = Awaited<ReturnType<typeof nextSpotlightTurn>>;

/** The spotlight's figures of `variant` from a turn that ends after `after` (unix seconds) measured at `quota` cores. */
export async function nextSpotlightTurn(variant: string, after: number, quota: number, timeoutMs: number) {
  let at = 0;
  await eventually(
    `a spotlight turn of ${variant} at ${quota} cores ending after ${new Date(after * 1000).toISOString()}`,
    async () => {
      at = (await scalar(`loadgen_lesson_timestamp_seconds{variant="${variant}"}`)) ?? 0;
      const measuredAt = await scalar(`loadgen_lesson_cpu_quota_cores{variant="${variant}"}`);
      return at > after && measuredAt === quota
        ? null
        : `last turn ended at ${at ? new Date(at * 1000).toISOString() : 'never'}, measured at ${measuredAt} cores`;
    },
    timeoutMs,
  );
  // The throttling over the turn needs the variant's counters scraped after the turn ended.
  await eventually(
    `a scrape of ${variant} after its turn`,
    async () => {
      const scrapedAt = await scalar(`max(timestamp(lab_cpu_periods_total{variant="${variant}"}))`);
      return scrapedAt !== null && scrapedAt >= at ? null : `last scrape at ${scrapedAt}`;
    },
    30_000,
  );
  const collapse = await scalar(`loadgen_lesson_collapse_ratio{variant="${variant}"}`);
  const throttled = await scalar(
    `sum(increase(lab_cpu_throttled_periods_total{variant="${variant}"}[30s])) / sum(increase(lab_cpu_periods_total{variant="${variant}"}[30s]))`,
    at,
  );
  const workers = await scalar(`max(fib_workers{variant="${variant}"})`, at);
  return { at, collapse: collapse ?? NaN, throttledShare: throttled ?? NaN, workers };
}

/**
 * The multi-core lesson on one run's figures, from the spotlight's turns (loadgen_lesson_*
 * gauges): `atTwo` is threadpool's turn at 2 cores, taken from the stack's first rotation, and the
 * turns at 1 core come next. threadpool follows its quota (THREADPOOL_POOL_FOLLOWS_QUOTA=true): at
 * 1 core it has one worker, so short requests queue behind the hog, and it collapses far more than
 * at 2 cores (2 workers). processpool, at 1 core in the same rotation, keeps its 2 workers (a
 * fixed pool, the default): the mismatch. Its two hogs ask for two cores of one, so the quota
 * binds and it is throttled, while its short requests share the core instead of queueing, and
 * collapse less.
 *
 * Why the throttling is asserted on processpool, not threadpool: a pool sized to its quota never
 * asks for more than the quota (that is what following it is for), so threadpool at 1 core is
 * throttled only by the main thread's odd overlap: 0% to 2% of periods over a turn, in runs on
 * the same machine. Measured on a busy 2-core machine: threadpool 26.6x at 1 core (throttled 0%)
 * against 1.10x at 2 cores; a fixed pool of 2 at 1 core, 1.29x and throttled 58%.
 * Returns the turns' figures for the record.
 */
export async function checkQuotaLesson(atTwo: SpotlightTurn, turnTimeoutMs = 300_000) {
  for (const variant of ['threadpool', 'processpool']) {
    const one = await runLab(['cpus', variant, '1']);
    assert.equal(one.code, 0, one.stderr);
  }
  const since = Date.now() / 1000;
  const [atOne, fixedAtOne] = await Promise.all([
    nextSpotlightTurn('threadpool', since, 1, turnTimeoutMs),
    nextSpotlightTurn('processpool', since, 1, turnTimeoutMs),
  ]);
  const reset = await runLab(['cpus', '--reset']);
  assert.equal(reset.code, 0, reset.stderr);
  const turn = (t: SpotlightTurn, cores: number) =>
    `${t.collapse.toFixed(2)}x at ${cores} core${cores === 1 ? '' : 's'} (${t.workers} workers, throttled ${(t.throttledShare * 100).toFixed(0)}%)`;
  const figures = `threadpool ${turn(atOne, 1)}, ${turn(atTwo, 2)}; processpool (fixed pool) ${turn(fixedAtOne, 1)}`;
  console.log(`spotlight: ${figures}`);
  assert.equal(atOne.workers, 1, `threadpool's pool follows 1 core: ${figures}`);
  assert.equal(atTwo.workers, 2, `threadpool's pool follows 2 cores: ${figures}`);
  assert.ok(atOne.collapse >= 1.5 * atTwo.collapse, `threadpool collapses at 1 core >= 1.5x its collapse at 2 cores: ${figures}`);
  assert.equal(fixedAtOne.workers, 2, `processpool keeps its 2 workers at 1 core: ${figures}`);
  assert.ok(fixedAtOne.throttledShare > 0.05, `processpool at 1 core with 2 workers is throttled: ${figures}`);
  assert.ok(
    atOne.collapse >= 1.5 * fixedAtOne.collapse,
    `at 1 core, the pool that follows the quota collapses more than the fixed pool, which shares the core: ${figures}`,
  );
  return { atOne, atTwo, fixedAtOne };
}

/** `make cpus` and `make cpus-reset` work without Node (a one-shot container), and no lab service mounts the Docker socket. */
export async function checkMakeCpusOneShot(root: string): Promise<void> {
  const wanted = envQuota('eventloop', hostCpus());
  const make = (args: string[]) =>
    spawnSync('make', ['--no-print-directory', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  const set = make(['cpus', 'VARIANT=eventloop', 'CPUS=0.5']);
  assert.equal(set.status, 0, `${set.stdout}\n${set.stderr}`);
  assert.match(set.stdout, /eventloop\s+.* -> 0\.5 cores\s+lab_cpu_quota_cores .* -> 0\.5 \(confirmed after/, set.stdout);
  assert.equal(nanoCpus('eventloop'), 0.5e9);
  await exportedQuota('eventloop', 0.5);
  const reset = make(['cpus-reset']);
  assert.equal(reset.status, 0, `${reset.stdout}\n${reset.stderr}`);
  assert.equal(nanoCpus('eventloop'), wanted * 1e9);

  const ids = spawnSync('docker', ['ps', '-q', '--filter', 'label=com.docker.compose.project=concurrency-lab'], {
    encoding: 'utf8',
  });
  const containers = ids.stdout.split('\n').filter(Boolean);
  assert.ok(containers.length > 0, 'the lab is running');
  const mounts = spawnSync('docker', ['inspect', '-f', '{{.Name}} {{range .Mounts}}{{.Source}} {{end}}', ...containers], {
    encoding: 'utf8',
  });
  const holders = mounts.stdout.split('\n').filter((line) => line.includes('docker.sock'));
  assert.deepEqual(holders, [], 'no running container of the lab holds the Docker socket');
}

/** `lab ps --json`: every variant with its .env quota and the figures Prometheus has for it. */
export async function checkPs(): Promise<void> {
  const cpus = hostCpus();
  await eventually(
    'lab ps --json shows every variant with its quota and its workers',
    async () => {
      const { code, stdout, stderr } = await runLab(['ps', '--json']);
      if (code !== 0) return `exit ${code}: ${stderr}`;
      const snapshot = JSON.parse(stdout) as PsSnapshot;
      const rows = new Map(snapshot.variants.map((row) => [row.variant, row]));
      for (const variant of VARIANT_NAMES) {
        const row = rows.get(variant);
        if (!row) return `${variant} missing from ${stdout}`;
        if (row.quotaCores !== envQuota(variant, cpus)) return `${variant}: quota ${row.quotaCores}`;
        if (row.workers === null || row.memoryBytes === null || row.coresUsed === null)
          return `${variant}: ${JSON.stringify(row)}`;
      }
      return null;
    },
    60_000,
  );
}
