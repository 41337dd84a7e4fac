// What `make generate` derives from the variant table: every committed file equals what the table
// produces (so a newcomer with only Docker has them right), and the compose file keeps the lab's
// rules and the containers' hardening: one service per variant on its published port (127.0.0.1
// only), its own CPU quota variable, memory and pids limits, read-only, no capabilities, a grace
// period longer than the drain timeout, a healthcheck on every service that another depends on
// (none starting a JavaScript runtime), images pinned.
// Where Docker's compose is installed, `docker compose config` must resolve the file to the same
// settings (merge keys and variables included).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { VARIANTS } from '../services/variants/index.js';
import {
  DEFAULT_CPUS,
  DEFAULT_PYTHON_IMAGE,
  HEALTH_INTERVAL,
  PYTHON_IMAGE_NAME,
  ROOT,
  envName,
  generatedFiles,
  loadTarget,
} from '../tools/generate.js';

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string; args?: Record<string, string> };
  command?: string[];
  cpus?: string | number;
  mem_limit?: string | number;
  pids_limit?: number;
  ports?: Array<string | { host_ip: string; published: string | number; target: number }>;
  stop_grace_period?: string;
  healthcheck?: unknown;
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
  environment?: Record<string, string>;
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
  tmpfs?: string[] | string;
  restart?: string;
}

const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8'), { merge: true }) as {
  name: string;
  services: Record<string, Service>;
};
const LAB_SERVICES = [...VARIANTS.map((v) => v.name), 'loadgen'];

function dockerCompose(args: string[], env: Record<string, string> = {}): { ok: boolean; stdout: string; stderr: string } {
  const result = spawnSync('docker', ['compose', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
  return { ok: result.status === 0, stdout: result.stdout ?? '', stderr: result.stderr ?? String(result.error ?? '') };
}
const composeAvailable = dockerCompose(['version']).ok;

describe('generated files', () => {
  for (const { path, content } of generatedFiles()) {
    it(`${path} is what the variant table produces (else: make generate)`, () => {
      assert.equal(readFileSync(`${ROOT}${path}`, 'utf8'), content, `${path} drifted: run 'make generate' and commit it`);
    });
  }

  it('the Makefile reads its variant list from config/variants.mk', () => {
    const makefile = readFileSync(`${ROOT}Makefile`, 'utf8');
    assert.match(makefile, /^include config\/variants\.mk$/m);
    assert.doesNotMatch(makefile, /^VARIANTS :?=/m, 'no hand-kept list');
  });
});

describe('docker-compose.yml', () => {
  it('has a fixed project name', () => {
    assert.equal(compose.name, 'concurrency-lab');
  });

  for (const variant of VARIANTS) {
    it(`runs ${variant.name} on 127.0.0.1:${variant.hostPort} with its own CPU quota, limits and drain grace`, () => {
      const service = compose.services[variant.name];
      assert.ok(service, `no service ${variant.name}`);
      assert.deepEqual(service.command, ['serve', variant.name]);
      assert.deepEqual(service.ports, [`127.0.0.1:\${${envName(variant, 'PORT')}:-${variant.hostPort}}:25000`]);
      assert.equal(service.cpus, `\${${envName(variant, 'CPUS')}:-${DEFAULT_CPUS}}`);
      assert.equal(service.mem_limit, variant.limits.memory);
      assert.equal(service.pids_limit, variant.limits.pids);
      const grace = Number(/^(\d+)s$/.exec(service.stop_grace_period ?? '')?.[1]);
      const drainMs = Number(/DRAIN_TIMEOUT_MS:-(\d+)/.exec(service.environment?.DRAIN_TIMEOUT_MS ?? '')?.[1]);
      assert.ok(grace * 1000 > drainMs, `stop_grace_period ${service.stop_grace_period} must exceed DRAIN_TIMEOUT_MS ${drainMs}`);
      assert.ok(service.healthcheck, 'healthcheck');
      for (const spec of Object.values(variant.options)) {
        assert.ok(
          service.environment?.[spec.env]?.includes(envName(variant, spec.env)),
          `${spec.env} from .env's ${envName(variant, spec.env)}`,
        );
      }
    });
  }

  it('hardens every lab container: read-only with a tmpfs, no capabilities, no privilege escalation', () => {
    for (const name of LAB_SERVICES) {
      const service = compose.services[name]!;
      assert.equal(service.read_only, true, `${name}: read_only`);
      assert.deepEqual(service.cap_drop, ['ALL'], `${name}: cap_drop`);
      assert.deepEqual(service.security_opt, ['no-new-privileges:true'], `${name}: security_opt`);
      assert.deepEqual(service.tmpfs, ['/tmp'], `${name}: tmpfs`);
      assert.ok(service.mem_limit && service.pids_limit, `${name}: memory and pids limits`);
    }
    const processes = VARIANTS.find((v) => v.name === 'processes')!;
    const eventloop = VARIANTS.find((v) => v.name === 'eventloop')!;
    assert.ok(processes.limits.pids > eventloop.limits.pids, 'a process per connection needs more pids than one event loop');
  });

  it('limits Prometheus and Grafana, and does not restart the load on every Docker start', () => {
    for (const name of ['prometheus', 'grafana']) {
      assert.ok(compose.services[name]?.cpus && compose.services[name]?.mem_limit, `${name}: cpus and mem_limit`);
    }
    assert.equal(compose.services.loadgen?.restart, '${LOADGEN_RESTART:-no}');
  });

  it('publishes every port on 127.0.0.1 only, each on the port a setting of .env names', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const port of service.ports ?? []) {
        const text = typeof port === 'string' ? port : JSON.stringify(port);
        assert.match(text, /^127\.0\.0\.1:\$\{[A-Z_]+_PORT:-\d+\}:\d+$/, `${name}: ${text}`);
      }
    }
    const published = (service: string) => compose.services[service]?.ports?.[0];
    assert.equal(published('grafana'), '127.0.0.1:${GRAFANA_PORT:-3000}:3000');
    assert.equal(published('prometheus'), '127.0.0.1:${PROMETHEUS_PORT:-9090}:9090');
    assert.equal(published('loadgen'), '127.0.0.1:${LOADGEN_PORT:-9465}:9465');
  });

  it('checks the health of every dependency, cheaply', () => {
    // Started, not healthy: each dependent waits for what it needs itself (the load generator
    // polls its targets' /healthz, the queue retries Redis); only Grafana waits for Prometheus.
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        const expected = name === 'grafana' ? 'service_healthy' : 'service_started';
        assert.equal(condition, expected, `${name} -> ${dependency}`);
        assert.ok(compose.services[dependency]?.healthcheck, `${dependency} needs a healthcheck`);
      }
    }
    // A check is an exec into the container every interval: never a JavaScript runtime, never often.
    const text = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
    assert.doesNotMatch(text, /test:.*"node"/, 'no healthcheck starts Node');
    for (const [name, service] of Object.entries(compose.services)) {
      const check = service.healthcheck as { test?: string[]; interval?: string } | undefined;
      if (!check) continue;
      assert.ok(!(check.test ?? []).includes('node'), `${name}: ${JSON.stringify(check.test)}`);
      assert.equal(check.interval, HEALTH_INTERVAL, `${name}: healthcheck interval`);
    }
  });

  it('takes third-party images from variables whose defaults are pinned tags', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.image === 'concurrency-lab:local' || service.image === PYTHON_IMAGE_NAME) continue;
      assert.match(service.image ?? '', /^\$\{[A-Z_]+_IMAGE:-[a-z/]+:v?\d+\.\d+\.\d+\}$/, `${name}: ${service.image}`);
    }
  });

  it('runs the Python rows on the Python image, built once from Dockerfile.python, and the others on the Node one', () => {
    const builds = Object.entries(compose.services).filter(([, service]) => service.build);
    assert.deepEqual(
      builds.map(([name, service]) => [name, service.build?.dockerfile ?? 'Dockerfile']),
      [
        [VARIANTS.find((v) => v.runtime === 'node')!.name, 'Dockerfile'],
        [VARIANTS.find((v) => v.runtime === 'python')!.name, 'Dockerfile.python'],
      ],
      'each image built by one service',
    );
    const python = builds.find(([, service]) => service.build?.dockerfile === 'Dockerfile.python')![1];
    assert.equal(python.build?.args?.PYTHON_IMAGE, `\${PYTHON_IMAGE:-${DEFAULT_PYTHON_IMAGE}}`);
    assert.match(DEFAULT_PYTHON_IMAGE, /^python:3\.\d+-slim$/, 'an official CPython image, pinned to a minor version');
    const dockerfile = readFileSync(`${ROOT}Dockerfile.python`, 'utf8');
    assert.match(
      dockerfile,
      new RegExp(`^ARG PYTHON_IMAGE=${DEFAULT_PYTHON_IMAGE.replace('.', '\\.')}$`, 'm'),
      'the same default',
    );
    assert.match(dockerfile, /python3 -c 'import prometheus_client' .*\|\| pip install .*prometheus-client==\d+\.\d+\.\d+/);
    assert.match(dockerfile, /^USER (?!root)\w+$/m, 'not root');
    for (const variant of VARIANTS) {
      const service = compose.services[variant.name]!;
      const image = variant.runtime === 'python' ? PYTHON_IMAGE_NAME : 'concurrency-lab:local';
      assert.equal(service.image, image, variant.name);
      const check = service.healthcheck as { test?: string[] };
      // The Python image has no node: its check is the bash script alone.
      if (variant.runtime === 'python') assert.deepEqual(check.test, ['CMD', 'lab-healthcheck'], variant.name);
      if (variant.runtime === 'python')
        assert.match(dockerfile, new RegExp(`^COPY services/variants/${variant.name}/server\\.py `, 'm'));
    }
  });

  it('puts Grafana behind a profile, so LAB_NO_GRAFANA=1 can leave it out', () => {
    assert.deepEqual(compose.services.grafana?.profiles, ['grafana']);
  });

  it('lets anonymous viewers open Explore, never save (viewers_can_edit, read-only dashboards)', () => {
    const env = compose.services.grafana?.environment ?? {};
    assert.equal(env.GF_AUTH_ANONYMOUS_ORG_ROLE, 'Viewer');
    assert.equal(env.GF_USERS_VIEWERS_CAN_EDIT, 'true');
  });

  it('loads every variant from the load generator, started after each', () => {
    const targets = (compose.services.loadgen?.environment?.LOAD_TARGETS ?? '').split(',');
    assert.deepEqual(targets, VARIANTS.map(loadTarget));
    for (const variant of VARIANTS) {
      assert.equal(
        compose.services.loadgen?.depends_on?.[variant.name]?.condition,
        'service_started',
        `loadgen starts after ${variant.name}`,
      );
    }
    // Clients of a variant that serves one connection at a time take turns.
    for (const variant of VARIANTS) {
      const target = new URLSearchParams(loadTarget(variant).split('?')[1]);
      assert.equal(target.has('turns'), variant.takesTurns, `${variant.name}: turns`);
      assert.equal(target.get('metrics'), `${variant.name}:9464`, `${variant.name}: its /metrics, for the spotlight`);
      assert.equal(target.get('parallel') ?? 'single', variant.parallelism, `${variant.name}: parallel`);
    }
  });

  it(
    'docker compose config resolves it with the same hardening',
    { skip: composeAvailable ? false : 'docker compose is not installed here' },
    () => {
      const { ok, stdout, stderr } = dockerCompose(['--profile', 'grafana', 'config', '--format', 'json'], {
        COMPOSE_PROFILES: 'grafana',
      });
      assert.ok(ok, stderr);
      const resolved = JSON.parse(stdout) as { services: Record<string, Service> };
      for (const name of LAB_SERVICES) {
        const service = resolved.services[name]!;
        assert.equal(service.read_only, true, `${name}: read_only`);
        assert.deepEqual(service.cap_drop, ['ALL'], `${name}: cap_drop`);
        assert.deepEqual(service.security_opt, ['no-new-privileges:true'], `${name}: security_opt`);
        assert.ok(
          Number(service.pids_limit) > 0 && Number(service.mem_limit) > 0,
          `${name}: limits ${service.pids_limit} ${service.mem_limit}`,
        );
        for (const port of service.ports ?? []) {
          assert.equal(typeof port === 'object' ? port.host_ip : '', '127.0.0.1', `${name}: ${JSON.stringify(port)}`);
        }
      }
      assert.ok(resolved.services.grafana, 'the grafana profile');
    },
  );

  it(
    'docker compose config publishes on the ports the environment (or .env) names',
    { skip: composeAvailable ? false : 'docker compose is not installed here' },
    () => {
      const ports = { GRAFANA_PORT: '13000', PROMETHEUS_PORT: '19090', LOADGEN_PORT: '19465', SYNC_PORT: '26001' };
      const { ok, stdout, stderr } = dockerCompose(['config', '--format', 'json'], { COMPOSE_PROFILES: 'grafana', ...ports });
      assert.ok(ok, stderr);
      const resolved = JSON.parse(stdout) as { services: Record<string, Service> };
      const published = (name: string) =>
        (resolved.services[name]?.ports ?? []).map((p) => (typeof p === 'object' ? `${p.published}:${p.target}` : p));
      assert.deepEqual(['grafana', 'prometheus', 'loadgen', 'sync'].map(published), [
        ['13000:3000'],
        ['19090:9090'],
        ['19465:9465'],
        ['26001:25000'],
      ]);
    },
  );
});

describe('scripts/init-env.sh', () => {
  /** Runs the script in a copy of the repository's config, with a `docker` that reports `cpus` CPUs. */
  function initEnv(dir: string, cpus: number, api = '', extra: Record<string, string> = {}): string {
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'docker'),
      `#!/bin/sh\n[ "$1" = info ] && echo ${cpus} && exit 0\n[ "$1" = version ] && [ -n "$API" ] && echo "$API" && exit 0\nexit 1\n`,
    );
    chmodSync(join(bin, 'docker'), 0o755);
    const result = spawnSync('bash', [join(dir, 'scripts/init-env.sh')], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, API: api, ...extra },
    });
    assert.equal(result.status, 0, result.stderr);
    return readFileSync(join(dir, '.env'), 'utf8');
  }
  function copyOfRepository(): string {
    const dir = mkdtempSync(join(tmpdir(), 'init-env-'));
    mkdirSync(join(dir, 'scripts'));
    mkdirSync(join(dir, 'config'));
    copyFileSync(`${ROOT}scripts/init-env.sh`, join(dir, 'scripts/init-env.sh'));
    copyFileSync(`${ROOT}config/lab.env`, join(dir, 'config/lab.env'));
    copyFileSync(`${ROOT}config/variants.mk`, join(dir, 'config/variants.mk'));
    return dir;
  }

  it('writes every default once, keeps what is there, and lowers quotas to the host CPU count', () => {
    const dir = copyOfRepository();
    writeFileSync(join(dir, '.env'), 'EVENTLOOP_CPUS=0.5\n');
    const first = initEnv(dir, 1);
    const keys = [...first.matchAll(/^([A-Z_]+)=/gm)].map((m) => m[1]);
    assert.equal(new Set(keys).size, keys.length, `each key once: ${keys.join(' ')}`);
    for (const variant of VARIANTS) assert.ok(keys.includes(envName(variant, 'CPUS')), envName(variant, 'CPUS'));
    assert.match(first, /^EVENTLOOP_CPUS=0\.5$/m, 'an existing value is kept');
    assert.match(first, /^THREADPOOL_CPUS=1$/m, 'lowered to the host CPU count');
    assert.match(first, /^GRAFANA_ADMIN_PASSWORD=\S{16,}$/m);
    // The control token is per run: each run replaces it (once), and changes nothing else.
    const token = (text: string) => /^LOADGEN_TOKEN=([A-Za-z0-9]{16,})$/m.exec(text)?.[1];
    const withoutToken = (text: string) => text.replace(/^# the load generator's control token .*\nLOADGEN_TOKEN=.*\n/m, '');
    assert.match(first, /^COMPOSE_FILE=docker-compose\.yml$/m, 'an engine without start_interval: the compose file alone');
    const second = initEnv(dir, 1);
    assert.ok(
      token(first) && token(second) && token(first) !== token(second),
      `a fresh token: ${token(first)}, ${token(second)}`,
    );
    assert.equal([...second.matchAll(/^LOADGEN_TOKEN=/gm)].length, 1, 'one token');
    assert.equal(withoutToken(second), withoutToken(first), 'a second run adds nothing else');
    // Docker 25+ (API 1.44): healthy within seconds of a start, through the override file.
    const newer = initEnv(dir, 1, '1.47');
    assert.match(newer, /^COMPOSE_FILE=docker-compose\.yml:config\/compose\.health\.yml$/m);
    assert.equal([...newer.matchAll(/^COMPOSE_FILE=/gm)].length, 1, 'one COMPOSE_FILE');
    assert.match(initEnv(dir, 1, '1.43'), /^COMPOSE_FILE=docker-compose\.yml$/m, 'and back without it on an older engine');
  });

  it("derives every variant's port from VARIANT_BASE_PORT at each run, and refuses a bad base naming it", () => {
    const dir = copyOfRepository();
    const first = initEnv(dir, 2);
    for (const setting of ['GRAFANA_PORT=3000', 'PROMETHEUS_PORT=9090', 'LOADGEN_PORT=9465', 'VARIANT_BASE_PORT=25001'])
      assert.match(first, new RegExp(`^${setting}$`, 'm'), setting);
    const portsOf = (text: string) =>
      VARIANTS.map((v) => Number(new RegExp(`^${envName(v, 'PORT')}=(\\d+)$`, 'm').exec(text)?.[1]));
    assert.deepEqual(
      portsOf(first),
      VARIANTS.map((v) => v.hostPort),
      'the defaults: each row at its port',
    );
    writeFileSync(join(dir, '.env'), first.replace(/^VARIANT_BASE_PORT=25001$/m, 'VARIANT_BASE_PORT=31001'));
    const moved = initEnv(dir, 2);
    assert.deepEqual(
      portsOf(moved),
      VARIANTS.map((v) => v.hostPort + 6000),
      'all moved with the base',
    );
    assert.equal([...moved.matchAll(/^SYNC_PORT=/gm)].length, 1, 'one line each');
    assert.deepEqual(
      portsOf(initEnv(dir, 2, '', { VARIANT_BASE_PORT: '41001' })),
      VARIANTS.map((v) => v.hostPort + 16000),
      'the environment wins',
    );
    const bad = spawnSync('bash', [join(dir, 'scripts/init-env.sh')], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, VARIANT_BASE_PORT: 'lots' },
    });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /^init-env: VARIANT_BASE_PORT: expected a port .*"?lots/);
  });

  it('uses nothing a stock macOS bash 3.2 lacks', () => {
    const script = readFileSync(`${ROOT}scripts/init-env.sh`, 'utf8');
    for (const bashism of [/\$\{[a-z_]+\^\^\}/i, /\$\{[a-z_]+,,\}/i, /declare -A/, /\bmapfile\b/, /\breadarray\b/]) {
      assert.doesNotMatch(script, bashism);
    }
  });
});
