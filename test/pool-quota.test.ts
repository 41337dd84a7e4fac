// Pools that follow the CPU quota (POOL_FOLLOWS_QUOTA=1): `threadpool`, `processpool` and
// `cluster` started in a fixture cgroup (LAB_CGROUP_ROOT, a cgroup v2 tree in a temporary folder),
// whose quota the test changes live as `docker update --cpus` would. With the option the number
// of live workers follows the quota; without it the pool keeps its start size and only the
// exported quota moves: the mismatch the dashboards show.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { VARIANTS } from '../services/variants/index.js';
import { TestClient, metricsOf, referenceFib, runLab, sample, startVariant, waitForMetric } from './helpers.js';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A cgroup v2 tree holding only this process's own group, with a CPU quota of `cores`. */
function fixtureCgroup(cores: number): { env: Record<string, string>; setQuota(cores: number): void } {
  const root = mkdtempSync(join(tmpdir(), 'cgroup-quota-'));
  dirs.push(root);
  const setQuota = (quota: number) => writeFileSync(join(root, 'cpu.max'), `${Math.round(quota * 100_000)} 100000\n`);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu memory\n');
  writeFileSync(join(root, 'cpu.stat'), 'usage_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n');
  writeFileSync(join(root, 'memory.current'), '0\n');
  writeFileSync(join(root, 'self'), '0::/\n');
  setQuota(cores);
  return { env: { LAB_CGROUP_ROOT: root, LAB_CGROUP_SELF: join(root, 'self') }, setQuota };
}

const FOLLOWERS = VARIANTS.filter((v) => 'poolFollowsQuota' in v.options).map((v) => v.name);

describe('pools that follow the CPU quota', () => {
  it('are the pools and cluster (queue scales by containers, not by quota)', () => {
    assert.deepEqual([...FOLLOWERS].sort(), ['cluster', 'coroutines', 'gilpool', 'processpool', 'threadpool']);
  });

  for (const variant of FOLLOWERS) {
    it(`${variant}: POOL_FOLLOWS_QUOTA=1 grows and shrinks the workers with the quota, serving throughout`, async () => {
      const cgroup = fixtureCgroup(1);
      const server = await startVariant(variant, { ...cgroup.env, POOL_FOLLOWS_QUOTA: '1' });
      const client = await TestClient.connect(server.port);
      try {
        assert.equal(sample(await metricsOf(server), 'fib_workers'), 1, 'one worker for one core');
        cgroup.setQuota(1.5); // rounded up: 2
        await waitForMetric(server, 'fib_workers', (n) => n === 2);
        assert.equal(await client.ask('25'), `fib: ${referenceFib(25)}`);
        assert.equal(sample(await metricsOf(server), 'lab_cpu_quota_cores'), 1.5);
        cgroup.setQuota(1);
        await waitForMetric(server, 'fib_workers', (n) => n === 1);
        assert.equal(await client.ask('20'), `fib: ${referenceFib(20)}`);
      } finally {
        client.close();
        await server.stop();
      }
    });
  }

  it('without it, the pool keeps its size while the exported quota moves', async () => {
    const cgroup = fixtureCgroup(2);
    const server = await startVariant('threadpool', cgroup.env);
    try {
      assert.equal(sample(await metricsOf(server), 'fib_workers'), 2);
      cgroup.setQuota(0.5);
      await waitForMetric(server, 'lab_cpu_quota_cores', (q) => q === 0.5);
      assert.equal(sample(await metricsOf(server), 'fib_workers'), 2, 'two workers on half a core: the mismatch');
    } finally {
      await server.stop();
    }
  });

  it('refuses a fixed pool size that should follow the quota, naming both options', async () => {
    const { code, stderr } = await runLab(['serve', 'threadpool', '--port', '0', '--metrics-port', '0'], {
      POOL_SIZE: '2',
      POOL_FOLLOWS_QUOTA: '1',
    });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /--pool-follows-quota \(POOL_FOLLOWS_QUOTA\).*--pool-size \(POOL_SIZE\)/);
  });
});
