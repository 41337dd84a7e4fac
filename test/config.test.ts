// Bad configuration exits non-zero with one line that names the option, flag or variable.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveOptions, resolveServeOptions, serveDefaults } from '../services/common/options.js';
import { poolOptions } from '../services/common/pools.js';
import { parseTargets, resolveLoadOptions } from '../services/loadgen/options.js';
import { configErrorOf as configError, runLab, startVariant } from './helpers.js';

describe('lab serve configuration', () => {
  it('merges values over the defaults', () => {
    assert.deepEqual(resolveServeOptions({}), serveDefaults);
    const options = resolveServeOptions({ port: '0', fibMaxN: 78, maxConnections: '', idleTimeoutMs: '300' });
    assert.equal(options.port, 0);
    assert.equal(options.fibMaxN, 78);
    assert.equal(options.maxConnections, null);
    assert.equal(options.idleTimeoutMs, 300);
    assert.deepEqual(resolveOptions(poolOptions, { poolSize: '3' }), { poolSize: 3, maxQueue: 1024, poolFollowsQuota: false });
  });

  it('names the option in every guard', () => {
    assert.match(
      configError(() => resolveServeOptions({ port: '70000' })),
      /--port \(PORT\)/,
    );
    assert.match(
      configError(() => resolveServeOptions({ fibMaxN: '79' })),
      /--fib-max-n \(FIB_MAX_N\).*0 to 78/,
    );
    assert.match(
      configError(() => resolveOptions(poolOptions, { poolSize: '0' })),
      /--pool-size \(POOL_SIZE\)/,
    );
    assert.match(
      configError(() => resolveServeOptions({ drainTimeoutMs: '1.5' })),
      /--drain-timeout-ms \(DRAIN_TIMEOUT_MS\)/,
    );
    assert.match(
      configError(() => resolveServeOptions({ maxConnections: 'lots' })),
      /--max-connections \(MAX_CONNECTIONS\)/,
    );
    assert.match(
      configError(() => resolveServeOptions({ host: ' ' })),
      /--host \(HOST\)/,
    );
  });

  for (const [what, args, env, pattern] of [
    ['a flag', ['--port', 'abc'], {}, /--port \(PORT\).*"abc"/],
    ['an environment variable', [], { FIB_MAX_N: '99' }, /FIB_MAX_N/],
    ['an unknown variant', [], {}, /unknown variant "nope"/],
  ] as const) {
    it(`exits non-zero with one line for ${what}`, async () => {
      const variant = what === 'an unknown variant' ? 'nope' : 'eventloop';
      const { code, stderr, stdout } = await runLab(['serve', variant, ...args], env);
      assert.notEqual(code, 0);
      assert.equal(stdout, '');
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.match(stderr, pattern);
    });
  }

  it("refuses another variant's option given on the command line, naming it (exit 2), but ignores it in the environment", async () => {
    const { code, stderr } = await runLab(['serve', 'eventloop', '--pool-size', '3', '--port', '0', '--metrics-port', '0']);
    assert.equal(code, 2, stderr);
    assert.match(
      stderr,
      /--pool-size \(POOL_SIZE\): an option of threadpool, processpool, py-pool, py-coroutines; eventloop has no such option/,
    );
    const server = await startVariant('eventloop', { POOL_SIZE: '3', GIL_SWITCH_MS: '7' });
    await server.stop();
  });

  it('shows each option with its default and variable in --help; --version; usage errors exit 2', async () => {
    const help = await runLab(['serve', '--help']);
    assert.equal(help.code, 0);
    const text = help.stdout.replace(/\s+/g, ' '); // however commander wraps it
    assert.match(text, /--drain-timeout-ms <ms> on SIGTERM, [^(]*\(default: 10000\) \(env: DRAIN_TIMEOUT_MS\)/);
    assert.match(
      text,
      /--pool-size <n> workers in the pool \(default: the CPU quota, rounded up\) \[threadpool, processpool, py-pool, py-coroutines\] \(env: POOL_SIZE\)/,
    );
    const version = await runLab(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const usage = await runLab(['serve']);
    assert.equal(usage.code, 2, usage.stderr);
    assert.match(usage.stderr, /missing required argument 'variant'/);
  });

  it('exits non-zero with one line when the port is taken', async () => {
    const first = await startVariant('eventloop');
    try {
      const { code, stderr } = await runLab(['serve', 'eventloop', '--port', String(first.port), '--metrics-port', '0']);
      assert.notEqual(code, 0);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.match(stderr, /EADDRINUSE/);
    } finally {
      await first.stop();
    }
  });
});

describe('lab load configuration', () => {
  it('parses targets with their options', () => {
    assert.deepEqual(parseTargets(['a=127.0.0.1:1', 'b=host.example:25001?connect=per-request,c=[::1]:3?legacy']), [
      { name: 'a', host: '127.0.0.1', port: 1, connectPerRequest: false, legacy: false },
      { name: 'b', host: 'host.example', port: 25001, connectPerRequest: true, legacy: false },
      { name: 'c', host: '::1', port: 3, connectPerRequest: false, legacy: true },
    ]);
  });

  it('names the option in every guard', () => {
    assert.match(
      configError(() => resolveLoadOptions({})),
      /--target \(LOAD_TARGETS\)/,
    );
    assert.match(
      configError(() => parseTargets('eventloop')),
      /--target.*name=host:port/,
    );
    assert.match(
      configError(() => parseTargets('a=h:1?turbo=x')),
      /unknown target option/,
    );
    assert.match(
      configError(() => parseTargets('a=h:1,a=h:2')),
      /given twice/,
    );
    const base = { targets: 'a=127.0.0.1:1' };
    assert.match(
      configError(() => resolveLoadOptions({ ...base, scenarioSpec: 'perf9' })),
      /--scenario \(LOAD_SCENARIO\).*perf9/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, scenarioSpec: 'perf1,beazley' })),
      /both have a probe named "long"/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, durationMs: '5x' })),
      /--duration \(LOAD_DURATION\)/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, connections: '0' })),
      /--connections \(LOAD_CONNECTIONS\)/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, timeoutMs: '0' })),
      /--timeout \(LOAD_TIMEOUT\)/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, rate: '-5' })),
      /--rate \(LOAD_RATE\)/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, variants: 'eventloop' })),
      /--variants.*not both/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ variants: 'eventloop,turbo' })),
      /--variants.*unknown variant "turbo"/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, json: true, csv: true })),
      /--json/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, durationMs: '0', json: true })),
      /--duration.*needs a run that ends/,
    );
  });

  it('reads durations in ms, s, m and h', () => {
    const options = resolveLoadOptions({
      targets: 'a=h:1',
      thinkMs: '250ms',
      durationMs: '2m',
      timeoutMs: '1.5',
      reportEveryMs: '1h',
    });
    assert.deepEqual(
      [options.overrides.thinkMs, options.durationMs, options.timeoutMs, options.reportEveryMs],
      [250, 120_000, 1500, 3_600_000],
    );
  });

  it('applies overrides to the probes they concern', () => {
    const options = resolveLoadOptions({
      targets: 'a=h:1',
      scenarioSpec: 'perf2,mixed',
      connections: '3',
      thinkMs: '10ms',
      rate: '50',
    });
    const [short, mixed] = options.scenario.probes;
    assert.deepEqual([short!.connections, short!.thinkMs, short!.rate], [3, 10, 0]);
    assert.deepEqual([mixed!.connections, mixed!.thinkMs, mixed!.rate], [3, 0, 50]);
  });

  it('exits non-zero with one line naming the option', async () => {
    const { code, stderr } = await runLab(['load', '--target', 'x=127.0.0.1:1', '--duration', 'soon']);
    assert.notEqual(code, 0);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.match(stderr, /--duration \(LOAD_DURATION\)/);
  });
});
