// Bad configuration exits non-zero with one line that names the option, flag or variable.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { resolveOptions } from '../services/lab/options.js';
import { PROJECT_ROOT } from '../services/lab/dotenv.js';
import { publishedPort, publishedUrl, publishedVariantPort } from '../services/lab/ports.js';
import { resolvePsOptions } from '../services/quota/options.js';
import { resolveSweepOptions } from '../services/sweep/options.js';
import { resolveServeOptions, serveDefaults } from '../services/server/options.js';
import { poolOptions } from '../services/server/pools.js';
import { LOAD_LIMITS } from '../services/loadgen/limits.js';
import { parseTargets, resolveLoadOptions } from '../services/loadgen/options.js';
import { VARIANTS } from '../services/variants/index.js';
import { CLI, configErrorOf as configError, runLab, startVariant } from './helpers.js';

const MODULE_TRACE = fileURLToPath(new URL('./module-trace.js', import.meta.url));

/** The rows that take --pool-size, in the table's order (as the CLI lists them). */
const POOL_SIZED = VARIANTS.filter((row) => Object.values(row.options).some((spec) => spec.flag === '--pool-size'))
  .map((row) => row.name)
  .join(', ');

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
    assert.ok(
      stderr.includes(`--pool-size (POOL_SIZE): an option of ${POOL_SIZED}; eventloop has no such option`),
      `${stderr} (expected the rows with a pool: ${POOL_SIZED})`,
    );
    const server = await startVariant('eventloop', { POOL_SIZE: '3', GIL_SWITCH_MS: '7' });
    await server.stop();
  });

  it('shows each option with its default and variable in --help; --version; usage errors exit 2', async () => {
    const help = await runLab(['serve', '--help']);
    assert.equal(help.code, 0);
    const text = help.stdout.replace(/\s+/g, ' '); // however commander wraps it
    assert.match(text, /--drain-timeout-ms <ms> on SIGTERM, [^(]*\(default: 10000\) \(env: DRAIN_TIMEOUT_MS\)/);
    assert.ok(
      text.includes(`--pool-size <n> workers in the pool (default: the CPU quota, rounded up) [${POOL_SIZED}] (env: POOL_SIZE)`),
      `${text} (expected the rows with a pool: ${POOL_SIZED})`,
    );
    const version = await runLab(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const usage = await runLab(['serve']);
    assert.equal(usage.code, 2, usage.stderr);
    assert.match(usage.stderr, /missing required argument 'variant'/);
  });

  it('lab serve declares only its own commands: it loads neither zod nor yaml, and lab --help still lists every command', () => {
    // test/module-trace.ts prints every package the process resolves.
    const packagesOf = (args: string[]) => {
      const run = spawnSync(process.execPath, ['--import', MODULE_TRACE, CLI, ...args], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      return { stdout: run.stdout, packages: new Set([...run.stderr.matchAll(/^resolve (\S+)$/gm)].map((m) => m[1]!)) };
    };
    const serve = packagesOf(['serve', '--help']);
    assert.ok(serve.packages.has('commander'), `the trace saw no package at all: ${[...serve.packages].join(', ')}`);
    for (const heavy of ['zod', 'yaml'])
      assert.ok(!serve.packages.has(heavy), `lab serve loaded ${heavy}: ${[...serve.packages].join(', ')}`);
    const help = packagesOf(['--help']);
    // The variants' own commands (queue's `worker`) as their rows declare them, on a scratch program.
    const rowCommands = new Command();
    for (const variant of VARIANTS) variant.commands?.(rowCommands);
    const own = rowCommands.commands.map((command) => command.name());
    for (const command of ['variants', 'serve', 'load', ...own, 'cpus', 'ps', 'sweep', 'report', 'compare']) {
      assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'), `lab --help lists ${command}:\n${help.stdout}`);
    }
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

  // Every number of lab load one past its limit (limits.ts), and a few one short of it: exit 2,
  // one line naming the option and the limit. Each would otherwise run: a target nothing answers.
  const H = 3_600_000;
  const { connections, rate, durationMs, rotations } = LOAD_LIMITS;
  const PAST_THE_LIMIT: Array<[string[], RegExp]> = [
    [
      ['--connections', `${connections.max + 1}`],
      /--connections \(LOAD_CONNECTIONS\): expected an integer from 1 to 256, got "257"/,
    ],
    [['--connections', '0'], /--connections \(LOAD_CONNECTIONS\): expected an integer from 1 to 256/],
    [['--rate', `${rate.max + 1}`], /--rate \(LOAD_RATE\): expected requests per second from 0.001 to 1000000, got "1000001"/],
    [['--rate', '0.0009'], /--rate \(LOAD_RATE\): expected requests per second from 0.001 to 1000000/],
    [['--think', `${H + 1}ms`], /--think \(LOAD_THINK\): expected a duration from 0 to 1h /],
    [['--duration', `${durationMs.max + 1}ms`], /--duration \(LOAD_DURATION\): expected a duration from 0 to 168h /],
    [['--warmup', `${H + 1}ms`], /--warmup \(LOAD_WARMUP\): expected a duration from 0 to 1h /],
    [['--timeout', `${H + 1}ms`], /--timeout \(LOAD_TIMEOUT\): expected a duration from 1ms to 1h /],
    [['--timeout', '0'], /--timeout \(LOAD_TIMEOUT\): expected a duration from 1ms to 1h /],
    [['--report-every', `${H + 1}ms`], /--report-every \(LOAD_REPORT_EVERY\): expected a duration from 100ms to 1h /],
    [['--report-every', '99ms'], /--report-every \(LOAD_REPORT_EVERY\): expected a duration from 100ms to 1h /],
    [['--metrics-port', '65536'], /--metrics-port \(METRICS_PORT\): expected an integer from 0 to 65535/],
    [['--search', '--max-p99', `${H + 1}ms`], /--max-p99: expected a duration from 0 to 1h /],
    [['--search', '--search-step', `${H + 1}ms`], /--search-step: expected a duration from 100ms to 1h /],
    [['--search', '--max-error-rate', '1'], /--max-error-rate: expected a share from 0 to 1/],
    [
      ['--spotlight', '--spotlight-phase', `${H + 1}ms`],
      /--spotlight-phase \(SPOTLIGHT_PHASE\): expected a duration from 200ms to 1h /,
    ],
    [
      ['--spotlight', '--spotlight-warmup', `${H + 1}ms`],
      /--spotlight-warmup \(SPOTLIGHT_WARMUP\): expected a duration from 0 to 1h /,
    ],
    [['--spotlight', '--spotlight-gap', `${H + 1}ms`], /--spotlight-gap \(SPOTLIGHT_GAP\): expected a duration from 0 to 1h /],
    [['--spotlight', '--rotations', `${rotations.max + 1}`], /--rotations: expected an integer from 1 to 1000000/],
    [['--spotlight', '--spotlight-long-n', '79'], /--spotlight-long-n \(SPOTLIGHT_LONG_N\): expected an integer from 1 to 78/],
    [
      ['--target', 'b=127.0.0.1:1,c=127.0.0.1:1,d=127.0.0.1:1,e=127.0.0.1:1', '--connections', '256'],
      /--connections \(LOAD_CONNECTIONS\): the run would open 1280 connections \(256 per target x 5 targets\): at most 1024 in one run/,
    ],
    [['--control-token', 'short'], /--control-token \(LOADGEN_TOKEN\): expected 16 to 256 characters/],
  ];
  for (const [args, pattern] of PAST_THE_LIMIT) {
    it(`refuses ${args.join(' ')}: exit 2, one line naming the option and its limit`, async () => {
      const { code, stdout, stderr } = await runLab(
        ['load', '--target', 'a=127.0.0.1:1', '--duration', '1s', ...args],
        {},
        20_000,
      );
      assert.equal(code, 2, `exit ${code}: ${stderr}`);
      assert.equal(stdout, '');
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.match(stderr, pattern);
    });
  }

  it('keeps a run of 1e300 requests/s from starting, at once (it used to hang and die of memory)', async () => {
    const { code, stderr } = await runLab(
      ['load', '--target', 'a=127.0.0.1:1', '--scenario', 'mixed', '--rate', '1e300', '--duration', '2s'],
      {},
      20_000,
    );
    assert.equal(code, 2, `exit ${code}: ${stderr.slice(0, 500)}`);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.match(stderr, /--rate \(LOAD_RATE\): expected requests per second from 0.001 to 1000000, got "1e300"/);
  });

  it('accepts every number at its limit', () => {
    const options = resolveLoadOptions({
      targets: 'a=127.0.0.1:1,b=127.0.0.1:1,c=127.0.0.1:1,d=127.0.0.1:1',
      connections: String(connections.max),
      rate: String(rate.max),
      thinkMs: '1h',
      durationMs: '168h',
      warmupMs: '1h',
      timeoutMs: '1h',
      reportEveryMs: '1h',
      scenarioSpec: 'mixed',
    });
    assert.deepEqual(
      [options.overrides.connections, options.overrides.rate, options.overrides.thinkMs, options.durationMs],
      [256, 1_000_000, H, 168 * H],
    );
    assert.equal(options.controlToken, null, 'no token without --metrics-port');
    const served = resolveLoadOptions({ targets: 'a=127.0.0.1:1', metricsPort: '0' });
    assert.ok(served.controlTokenGenerated && served.controlToken!.length >= 16, 'a token is made up for the control API');
  });

  it('exits 2 naming HOST when it is no address of this machine (lab load and lab serve)', async () => {
    for (const [args, env, pattern] of [
      [['load', '--target', 'a=127.0.0.1:1', '--metrics-port', '0'], { HOST: 'no.such.host.invalid' }, /--metrics-host \(HOST\)/],
      [['serve', 'eventloop', '--port', '0', '--metrics-port', '0'], { HOST: 'no.such.host.invalid' }, /--host \(HOST\)/],
      [
        ['serve', 'eventloop', '--port', '0', '--metrics-port', '0', '--host', '192.0.2.1'],
        {},
        /--host \(HOST\).*not an address of this machine/,
      ],
    ] as const) {
      const { code, stderr } = await runLab([...args], env, 20_000);
      assert.equal(code, 2, `lab ${args.join(' ')}: exit ${code}: ${stderr}`);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.match(stderr, pattern);
      assert.doesNotMatch(stderr, /getaddrinfo|listen E/, 'no raw resolver message');
    }
  });
});

describe('published ports (.env: GRAFANA_PORT, PROMETHEUS_PORT, LOADGEN_PORT, VARIANT_BASE_PORT)', () => {
  /** A directory holding an .env with these lines (the lab's .env, as init-env.sh writes it). */
  function envDir(lines: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'lab-ports-'));
    writeFileSync(join(dir, '.env'), lines);
    return dir;
  }

  it('reads the environment first, then .env, else the default; variants move with the base', () => {
    const dir = envDir('PROMETHEUS_PORT=19090\nVARIANT_BASE_PORT=31001\nLOADGEN_PORT=\n');
    const file = join(dir, '.env');
    try {
      assert.equal(publishedPort('PROMETHEUS_PORT', {}, file), 19090, 'from .env');
      assert.equal(publishedPort('PROMETHEUS_PORT', { PROMETHEUS_PORT: '29090' }, file), 29090, 'the environment wins');
      assert.equal(publishedPort('LOADGEN_PORT', {}, file), 9465, 'empty counts as unset');
      assert.equal(publishedUrl('GRAFANA_PORT', {}, file), 'http://127.0.0.1:3000');
      const threadpool = VARIANTS.find((v) => v.name === 'threadpool')!;
      assert.equal(publishedVariantPort(threadpool.hostPort, {}, file), 31005, 'threadpool: base + 4');
      assert.equal(publishedVariantPort(threadpool.hostPort, {}, join(dir, 'none')), threadpool.hostPort, 'no .env');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the setting of a bad port', () => {
    assert.match(
      configError(() => publishedPort('GRAFANA_PORT', { GRAFANA_PORT: '3000x' })),
      /^invalid GRAFANA_PORT: expected a port from 1 to 65535, got "3000x"/,
    );
    assert.match(
      configError(() => publishedPort('VARIANT_BASE_PORT', { VARIANT_BASE_PORT: '65500' })),
      /^invalid VARIANT_BASE_PORT: expected a port from 1 to 65437/,
    );
  });

  it('lab ps and lab sweep find the lab on the ports of the environment, and a flag still wins', () => {
    const saved = { ...process.env };
    try {
      Object.assign(process.env, { PROMETHEUS_PORT: '19090', LOADGEN_PORT: '19465' });
      const ps = resolvePsOptions({});
      assert.deepEqual([ps.prometheusUrl, ps.loadgenUrl], ['http://127.0.0.1:19090', 'http://127.0.0.1:19465']);
      assert.equal(resolvePsOptions({ prometheusUrl: 'http://prom:9090/' }).prometheusUrl, 'http://prom:9090');
      assert.equal(resolveSweepOptions({}).loadgenUrl, 'http://127.0.0.1:19465');
    } finally {
      for (const key of ['PROMETHEUS_PORT', 'LOADGEN_PORT']) if (saved[key] === undefined) delete process.env[key];
    }
  });

  it('make urls prints the ports of .env, and of the environment over it', () => {
    // A copy of the Makefile and its generated list, beside an .env of other ports.
    const dir = envDir('COMPOSE_PROFILES=grafana\nGRAFANA_PORT=13000\nPROMETHEUS_PORT=19090\nVARIANT_BASE_PORT=31001\n');
    try {
      mkdirSync(join(dir, 'config'));
      copyFileSync(join(PROJECT_ROOT, 'Makefile'), join(dir, 'Makefile'));
      copyFileSync(join(PROJECT_ROOT, 'config/variants.mk'), join(dir, 'config/variants.mk'));
      const env = { ...process.env };
      // LAB_NO_GRAFANA=1 (as CI's offline Docker sets it) would leave Grafana's lines out.
      for (const key of [
        'GRAFANA_PORT',
        'PROMETHEUS_PORT',
        'LOADGEN_PORT',
        'VARIANT_BASE_PORT',
        'COMPOSE_PROFILES',
        'LAB_NO_GRAFANA',
      ])
        delete env[key];
      const make = (extra: Record<string, string> = {}) => {
        const result = spawnSync('make', ['--no-print-directory', 'urls'], {
          cwd: dir,
          encoding: 'utf8',
          env: { ...env, ...extra },
        });
        assert.equal(result.status, 0, result.stderr);
        return result.stdout;
      };
      const out = make();
      assert.match(out, /Grafana +http:\/\/127\.0\.0\.1:13000 /);
      assert.match(
        out,
        /http:\/\/127\.0\.0\.1:13000\/d\/lab-overview\?var-prometheus=http:\/\/127\.0\.0\.1:19090$/m,
        "the dashboards' links to Prometheus follow PROMETHEUS_PORT",
      );
      assert.match(out, /Prometheus +http:\/\/127\.0\.0\.1:19090$/m);
      assert.match(out, /Load gen +http:\/\/127\.0\.0\.1:9465\/metrics$/m, 'the default where .env says nothing');
      for (const v of VARIANTS) assert.match(out, new RegExp(`nc 127\\.0\\.0\\.1 ${v.hostPort + 6000} +\\(${v.name}\\)`), v.name);
      const over = make({ LOADGEN_PORT: '19465', GRAFANA_PORT: '23000' });
      assert.match(over, /Load gen +http:\/\/127\.0\.0\.1:19465\/metrics$/m);
      assert.match(over, /Grafana +http:\/\/127\.0\.0\.1:23000 /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
