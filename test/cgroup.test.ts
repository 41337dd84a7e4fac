// The cgroup reader on fixture trees of both versions (this machine's Docker runs v1 and reports
// the host's CPUs whatever the quota, so v2 can only be tested this way).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CgroupReader, defaultParallelism } from '../services/lab/cgroup.js';

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** Writes a fixture tree: { 'cpu/cpu.cfs_quota_us': '150000\n', ... } plus /proc/self/cgroup. */
function fixture(files: Record<string, string>, membership: string): { root: string; procSelfCgroup: string } {
  const base = mkdtempSync(join(tmpdir(), 'cgroup-'));
  roots.push(base);
  const root = join(base, 'sys/fs/cgroup');
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  mkdirSync(root, { recursive: true });
  const procSelfCgroup = join(base, 'cgroup');
  writeFileSync(procSelfCgroup, membership);
  return { root, procSelfCgroup };
}

const V2_CONTAINER = {
  'cgroup.controllers': 'cpuset cpu io memory pids\n',
  'cpu.max': '150000 100000\n',
  'cpu.stat': 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 7\nthrottled_usec 350000\n',
  'memory.current': '52428800\n',
  'memory.stat': 'anon 41943040\nfile 10485760\ninactive_file 4194304\n',
};

const V1_CONTAINER = {
  'cpu/cpu.cfs_quota_us': '50000\n',
  'cpu/cpu.cfs_period_us': '100000\n',
  'cpu/cpu.stat': 'nr_periods 120\nnr_throttled 30\nthrottled_time 1500000000\n',
  'cpuacct/cpuacct.usage': '7250000000\n',
  'memory/memory.usage_in_bytes': '104857600\n',
  'memory/memory.stat': 'cache 20971520\nrss 83886080\ntotal_inactive_file 8388608\n',
};

describe('cgroup v2', () => {
  it('reads quota, CPU, throttling and memory inside a container', () => {
    const reader = new CgroupReader(fixture(V2_CONTAINER, '0::/\n'));
    assert.equal(reader.version, 2);
    assert.deepEqual(reader.stats(), {
      version: 2,
      quotaCores: 1.5,
      usageSeconds: 2.5,
      periods: 40,
      throttledPeriods: 7,
      throttledSeconds: 0.35,
      memoryBytes: 52428800 - 4194304,
    });
    assert.equal(defaultParallelism(reader), 2, '1.5 cores round up to 2 workers');
  });

  it('reports no quota for `max`', () => {
    const reader = new CgroupReader(fixture({ ...V2_CONTAINER, 'cpu.max': 'max 100000\n' }, '0::/\n'));
    assert.equal(reader.quotaCores(), null);
  });

  it("finds the process's own group on a host", () => {
    const files = Object.fromEntries(Object.entries(V2_CONTAINER).map(([k, v]) => [`lab.slice/${k}`, v]));
    const reader = new CgroupReader(
      fixture({ 'cgroup.controllers': 'cpu memory\n', 'cpu.max': 'max 100000\n', ...files }, '0::/lab.slice\n'),
    );
    assert.equal(reader.quotaCores(), 1.5);
  });

  it('never sizes a pool below one worker', () => {
    const reader = new CgroupReader(fixture({ ...V2_CONTAINER, 'cpu.max': '10000 100000\n' }, '0::/\n'));
    assert.equal(reader.quotaCores(), 0.1);
    assert.equal(defaultParallelism(reader), 1);
  });
});

describe('cgroup v1', () => {
  it('reads quota, CPU, throttling and memory inside a container (files at each mount root)', () => {
    const reader = new CgroupReader(fixture(V1_CONTAINER, '4:memory:/docker/abc\n3:cpuacct:/docker/abc\n2:cpu:/docker/abc\n'));
    assert.equal(reader.version, 1);
    assert.deepEqual(reader.stats(), {
      version: 1,
      quotaCores: 0.5,
      usageSeconds: 7.25,
      periods: 120,
      throttledPeriods: 30,
      throttledSeconds: 1.5,
      memoryBytes: 104857600 - 8388608,
    });
    assert.equal(defaultParallelism(reader), 1);
  });

  it('reads a combined cpu,cpuacct mount', () => {
    const files = {
      'cpu,cpuacct/cpu.cfs_quota_us': '250000\n',
      'cpu,cpuacct/cpu.cfs_period_us': '100000\n',
      'cpu,cpuacct/cpuacct.usage': '1000000000\n',
    };
    const reader = new CgroupReader(fixture(files, '2:cpu,cpuacct:/\n'));
    assert.equal(reader.quotaCores(), 2.5);
    assert.equal(reader.stats()?.usageSeconds, 1);
    assert.equal(defaultParallelism(reader), 3);
  });

  it('reports no quota for -1', () => {
    const reader = new CgroupReader(fixture({ ...V1_CONTAINER, 'cpu/cpu.cfs_quota_us': '-1\n' }, '2:cpu:/\n'));
    assert.equal(reader.quotaCores(), null);
  });
});

describe('no cgroup', () => {
  it('reads nothing and falls back to the CPU count', () => {
    const reader = new CgroupReader(fixture({}, ''));
    assert.equal(reader.version, null);
    assert.equal(reader.stats(), null);
    assert.ok(defaultParallelism(reader) >= 1);
  });
});
