// docker-compose.yml against the variants table and LAB-SPEC's rules: one service per variant
// on its published port (127.0.0.1 only), its own CPU quota variable, a grace period longer than
// the drain timeout, healthchecks gating what depends on them, images pinned.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { VARIANTS } from '../services/variants.js';

const FILE = fileURLToPath(new URL('../../docker-compose.yml', import.meta.url));

interface Service {
  image?: string;
  command?: string[];
  cpus?: string | number;
  ports?: string[];
  stop_grace_period?: string;
  healthcheck?: unknown;
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
  environment?: Record<string, string>;
}

const compose = parse(readFileSync(FILE, 'utf8'), { merge: true }) as { name: string; services: Record<string, Service> };

describe('docker-compose.yml', () => {
  it('has a fixed project name', () => {
    assert.equal(compose.name, 'concurrency-lab');
  });

  for (const { definition, hostPort } of VARIANTS) {
    it(`runs ${definition.name} on 127.0.0.1:${hostPort} with its own CPU quota and drain grace`, () => {
      const service = compose.services[definition.name];
      assert.ok(service, `no service ${definition.name}`);
      assert.deepEqual(service.command, ['serve', definition.name]);
      assert.deepEqual(service.ports, [`127.0.0.1:${hostPort}:25000`]);
      assert.equal(service.cpus, `\${${definition.name.toUpperCase()}_CPUS:-2}`);
      const grace = Number(/^(\d+)s$/.exec(service.stop_grace_period ?? '')?.[1]);
      const drainMs = Number(/DRAIN_TIMEOUT_MS:-(\d+)/.exec(service.environment?.DRAIN_TIMEOUT_MS ?? '')?.[1]);
      assert.ok(grace * 1000 > drainMs, `stop_grace_period ${service.stop_grace_period} must exceed DRAIN_TIMEOUT_MS ${drainMs}`);
      assert.ok(service.healthcheck, 'healthcheck');
    });
  }

  it('publishes every port on 127.0.0.1 only', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const port of service.ports ?? []) assert.match(port, /^127\.0\.0\.1:\d+:\d+$/, `${name}: ${port}`);
    }
  });

  it('gates every dependency on a healthcheck', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        assert.equal(condition, 'service_healthy', `${name} -> ${dependency}`);
        assert.ok(compose.services[dependency]?.healthcheck, `${dependency} needs a healthcheck`);
      }
    }
  });

  it('takes third-party images from variables whose defaults are pinned tags', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.image === 'concurrency-lab:local') continue;
      assert.match(service.image ?? '', /^\$\{[A-Z_]+_IMAGE:-[a-z/]+:v?\d+\.\d+\.\d+\}$/, `${name}: ${service.image}`);
    }
  });

  it('lists every variant, in order, where the Makefile and scripts/init-env.sh loop over them', () => {
    const names = VARIANTS.map((v) => v.definition.name);
    const makefile = readFileSync(fileURLToPath(new URL('../../Makefile', import.meta.url)), 'utf8');
    assert.deepEqual(/^VARIANTS := ([a-z ]+)$/m.exec(makefile)?.[1]?.split(' '), names, 'Makefile VARIANTS');
    const initEnv = readFileSync(fileURLToPath(new URL('../../scripts/init-env.sh', import.meta.url)), 'utf8');
    assert.deepEqual(/for variant in ([a-z ]+); do/.exec(initEnv)?.[1]?.split(' '), names, 'scripts/init-env.sh');
  });

  it('puts Grafana behind a profile, so LAB_NO_GRAFANA=1 can leave it out', () => {
    assert.deepEqual(compose.services.grafana?.profiles, ['grafana']);
  });

  it('loads every variant from the load generator', () => {
    const targets = (compose.services.loadgen?.environment?.LOAD_TARGETS ?? '').split(',');
    // sync serves one connection at a time: its clients must take turns.
    const expected = VARIANTS.map(
      ({ definition: { name } }) => `${name}=${name}:25000${name === 'sync' ? '?connect=per-request' : ''}`,
    );
    assert.deepEqual(targets, expected);
    for (const { definition } of VARIANTS) {
      assert.equal(
        compose.services.loadgen?.depends_on?.[definition.name]?.condition,
        'service_healthy',
        `loadgen waits for ${definition.name}`,
      );
    }
  });
});
