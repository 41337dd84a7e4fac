// The variants written in Python (rows with runtime `python`, services/variants/py-*): how `lab serve`
// starts them (which python3, the options passed on, never outliving it), their own checks of a
// bad option when run alone, and their defaults agreeing with their rows. The protocol itself is
// the conformance suite's and the fuzz pass's, as for every row.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { VARIANTS } from '../services/variants/index.js';
import { ROOT } from '../tools/generate.js';
import { liveChildren } from './hardening-helpers.js';
import { TestClient, childProcesses, runLab, startVariant, waitUntil, type RunningVariant } from './helpers.js';

const PYTHON_ROWS = VARIANTS.filter((v) => v.runtime === 'python');
/** Debian's CPython with python3-prometheus-client (.ci/run installs it). */
const DEBIAN_PYTHON = '/usr/bin/python3';

/** A directory holding a `python3` that cannot import anything: what a PATH without the library looks like. */
function pathWithBrokenPython(): string {
  const dir = mkdtempSync(join(tmpdir(), 'no-client-'));
  writeFileSync(join(dir, 'python3'), '#!/bin/sh\necho "ModuleNotFoundError: No module named prometheus_client" >&2\nexit 1\n');
  chmodSync(join(dir, 'python3'), 0o755);
  return dir;
}

/** Runs a server script alone with Debian's python3 (no `lab serve` in front). */
function runScript(script: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync(DEBIAN_PYTHON, [join(ROOT, script), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 20_000,
  });
}

describe('the Python rows', () => {
  it('are three, on host ports of their own, each with a script', () => {
    assert.deepEqual(
      PYTHON_ROWS.map((v) => [v.name, v.hostPort]).sort((a, b) => Number(a[1]) - Number(b[1])),
      [
        ['py-threads', 25011],
        ['py-pool', 25012],
        ['py-coroutines', 25013],
      ],
    );
    const nodePorts = new Set(VARIANTS.filter((v) => v.runtime === 'node').map((v) => v.hostPort));
    for (const row of PYTHON_ROWS) assert.ok(!nodePorts.has(row.hostPort), `${row.name}: port ${row.hostPort} is a Node row's`);
  });

  for (const row of PYTHON_ROWS) {
    if (row.runtime !== 'python') continue;
    it(`${row.name}: the script's defaults are its row's (cap, idle timeout, own options)`, () => {
      // run_path does not run the `__main__` block: it only reads the module's constants.
      const read = spawnSync(
        DEBIAN_PYTHON,
        [
          '-c',
          'import json, runpy, sys; m = runpy.run_path(sys.argv[1]); ' +
            "print(json.dumps([m['VARIANT'], m['CONNECTION_CAP'], m['IDLE_TIMEOUT_MS'], " +
            "[[o.flag, o.env, o.default] for o in ([m['POOL_SIZE']] if 'POOL_SIZE' in m else [])]]))",
          join(ROOT, row.script),
        ],
        { encoding: 'utf8' },
      );
      assert.equal(read.status, 0, read.stderr);
      const own = Object.values(row.options).map((spec) => [spec.flag, spec.env, spec.default]);
      assert.deepEqual(JSON.parse(read.stdout), [row.name, row.connectionCap, row.idleTimeoutMs, own]);
    });

    it(`${row.name}: run alone, a bad option or variable exits 2 with one line naming it`, () => {
      const cases: Array<[string[], Record<string, string>, RegExp]> = [
        [['--port', 'x'], {}, /^[\w-]+: invalid --port \(PORT\): expected an integer from 0 to 65535, got "x"$/],
        [[], { MAX_CONNECTIONS: 'lots' }, /^[\w-]+: invalid --max-connections \(MAX_CONNECTIONS\): /],
        [['--fib-max-n=79'], {}, /^[\w-]+: invalid --fib-max-n \(FIB_MAX_N\): expected an integer from 0 to 78/],
        [['--no-such-flag', '1'], {}, /^[\w-]+: invalid --no-such-flag: no such option/],
      ];
      if (row.workersOption) cases.push([['--pool-size', '0'], {}, /^[\w-]+: invalid --pool-size \(POOL_SIZE\): /]);
      for (const [args, env, message] of cases) {
        const result = runScript(row.script, args, env);
        assert.equal(result.status, 2, `${args.join(' ')} ${JSON.stringify(env)}: ${result.stderr}`);
        assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
        assert.match(result.stderr.trim(), message);
      }
    });
  }

  it('py-coroutines refuses a cap its select() cannot hold, naming the option', () => {
    const result = runScript('services/variants/py-coroutines/server.py', ['--max-connections', '5000']);
    assert.equal(result.status, 2, result.stderr);
    assert.match(
      result.stderr.trim(),
      /^py-coroutines: invalid --max-connections \(MAX_CONNECTIONS\): .*select\(\).*at most 900/,
    );
  });
});

describe('lab serve with a Python row', () => {
  const started: RunningVariant[] = [];
  after(async () => {
    for (const server of started) await server.stop('SIGKILL');
  });

  it("passes over a python3 on the PATH that cannot import prometheus_client, for Debian's", async () => {
    const server = await startVariant('py-threads', { PATH: `${pathWithBrokenPython()}:${process.env.PATH}`, LAB_PYTHON: '' });
    started.push(server);
    assert.match(server.stderr(), /python3 on the PATH cannot import prometheus_client: using \/usr\/bin\/python3/);
    const client = await TestClient.connect(server.port);
    assert.equal(await client.ask('10'), 'fib: 55');
    client.close();
  });

  it('exits 2 with one line naming --python (LAB_PYTHON) and the package when the one given cannot import it', async () => {
    const broken = join(pathWithBrokenPython(), 'python3');
    for (const [args, env] of [
      [['--python', broken], {}],
      [[], { LAB_PYTHON: broken }],
    ] as const) {
      const { code, stderr } = await runLab(['serve', 'py-pool', '--port', '0', ...args], env);
      assert.equal(code, 2, stderr);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.match(stderr, /invalid --python \(LAB_PYTHON\): .*apt-get install python3-prometheus-client/);
    }
  });

  it('checks the options before starting python3, like any row', async () => {
    const { code, stderr } = await runLab(['serve', 'py-pool', '--pool-size', 'many']);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^lab: invalid --pool-size \(POOL_SIZE\): expected an integer from 1 to 1024, got "many"$/m);
    const other = await runLab(['serve', 'eventloop', '--python', DEBIAN_PYTHON]);
    assert.equal(other.code, 2, other.stderr);
    assert.match(
      other.stderr,
      new RegExp(
        `invalid --python \\(LAB_PYTHON\\): an option of ${PYTHON_ROWS.map((v) => v.name).join(', ')}; eventloop has no such option`,
      ),
    );
  });

  it('passes the pool size on, and the server never outlives lab serve: killed with it, pool and all', async () => {
    const server = await startVariant('py-pool', { POOL_SIZE: '3', LAB_PYTHON: DEBIAN_PYTHON });
    started.push(server);
    const metrics = await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`).then((r) => r.text());
    assert.match(metrics, /^fib_workers\{variant="py-pool"\} 3(\.0)?$/m, 'three pool processes');
    const [python] = liveChildren(server);
    assert.ok(python, 'lab serve runs python3 as its child');
    const pool = childProcesses(python).map((child) => child.pid);
    assert.equal(pool.length, 3, `pool processes: ${pool.join(',')}`);
    server.child.kill('SIGKILL'); // no drain, no forwarding: the kernel tells the child (PR_SET_PDEATHSIG)
    await waitUntil('the server and its pool are gone', () => {
      const alive = [python, ...pool].filter(running);
      return alive.length === 0 ? null : `still alive: ${alive.join(',')}`;
    });
  });
});

/** Whether a process still runs (not gone, not a zombie waiting to be reaped), from /proc (Linux). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
