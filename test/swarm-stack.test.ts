// The swarm stack (docker-stack.yml, tools/swarm.ts) keeps what the compose file promises, in the
// swarm's spelling: every lab service of docker-compose.yml with the same image, command, quota
// variable and memory and pids limits (deploy.resources), the same hardening and healthcheck;
// names resolved to the tasks (dnsrr: no routing mesh, which needs IPVS) and host-mode published
// ports on their own variables; every service placed by a role label; no Docker socket anywhere;
// Grafana only in its own stack file; Prometheus finding every variant and the queue's workers by
// tasks.<service>. (That it deploys and works: test/stack/swarm.test.ts, make test-swarm.)

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { VARIANTS } from '../services/variants/index.js';
import { ROOT, envName } from '../tools/generate.js';

interface SwarmService {
  image: string;
  command?: string[];
  environment?: Record<string, string>;
  read_only?: boolean;
  cap_drop?: string[];
  init?: boolean;
  volumes?: Array<{ type: string; source?: string; target: string }>;
  healthcheck?: { test: string[]; interval: string };
  ports?: Array<{ target: number; published: string; mode: string }>;
  networks?: string[];
  deploy: {
    endpoint_mode: string;
    replicas: number | string;
    resources: { limits: { cpus?: string; memory?: string; pids?: number }; reservations: { cpus: string; memory: string } };
    placement: { constraints: string[]; max_replicas_per_node?: string };
  };
}

interface ComposeService {
  image: string;
  command?: string[];
  cpus?: string;
  mem_limit?: string;
  pids_limit?: number;
  healthcheck?: { test: string[] };
  read_only?: boolean;
}

const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService> };
const stack = parse(read('docker-stack.yml')) as {
  version: string;
  services: Record<string, SwarmService>;
  networks: Record<string, { driver: string; attachable: boolean }>;
};
const grafana = parse(read('config/stack.grafana.yml')) as { services: Record<string, SwarmService> };

describe('the swarm stack file', () => {
  it('has every compose service but Grafana, with the same image, command, limits and healthcheck', () => {
    const expected = Object.keys(compose.services).filter((name) => name !== 'grafana');
    assert.deepEqual(Object.keys(stack.services).sort(), expected.sort());
    assert.deepEqual(Object.keys(grafana.services), ['grafana']);
    for (const [name, service] of Object.entries(stack.services)) {
      const original = compose.services[name]!;
      const image = original.image.endsWith(':local')
        ? `\${LAB_${original.image.includes('python') ? 'PYTHON_' : ''}IMAGE:-${original.image}}`
        : original.image;
      assert.equal(service.image, image, name);
      assert.deepEqual(service.command, original.command, name);
      assert.equal(service.deploy.resources.limits.cpus, original.cpus === undefined ? undefined : String(original.cpus), name);
      assert.equal(service.deploy.resources.limits.memory, original.mem_limit, name);
      assert.equal(service.deploy.resources.limits.pids, original.pids_limit, name);
      assert.deepEqual(service.healthcheck?.test, original.healthcheck?.test, `${name}: healthcheck`);
      assert.equal(service.read_only, original.read_only, `${name}: read-only`);
    }
  });

  it("keeps each variant's quota variable and the containers' hardening", () => {
    for (const variant of VARIANTS) {
      const service = stack.services[variant.name]!;
      assert.equal(service.deploy.resources.limits.cpus, `\${${envName(variant, 'CPUS')}:-2}`, variant.name);
      assert.deepEqual(service.cap_drop, ['ALL'], variant.name);
      assert.equal(service.init, true, variant.name);
      assert.deepEqual(service.volumes, [{ type: 'tmpfs', target: '/tmp' }], variant.name);
    }
  });

  it('reaches every service by DNS round robin and publishes in host mode, each port on its own variable', () => {
    for (const [name, service] of Object.entries(stack.services)) {
      assert.equal(service.deploy.endpoint_mode, 'dnsrr', `${name}: the routing mesh needs IPVS`);
      assert.deepEqual(service.networks, ['lab'], name);
      for (const port of service.ports ?? []) {
        assert.equal(port.mode, 'host', name);
        assert.match(port.published, /^\$\{[A-Z_]+_PORT:-\d+\}$/, name);
      }
    }
    for (const variant of VARIANTS) {
      const [port] = stack.services[variant.name]!.ports!;
      assert.equal(port!.published, `\${${envName(variant, 'PORT')}:-${variant.hostPort}}`, variant.name);
      assert.equal(port!.target, 25000, variant.name);
    }
    assert.equal(stack.services.prometheus!.ports![0]!.published, '${PROMETHEUS_PORT:-9090}');
    assert.equal(stack.services.loadgen!.ports![0]!.published, '${LOADGEN_PORT:-9465}');
    assert.equal(grafana.services.grafana!.ports![0]!.published, '${GRAFANA_PORT:-3000}');
    assert.deepEqual(stack.networks.lab, { driver: 'overlay', attachable: true });
  });

  it('places every service by its role label; the queue workers spread', () => {
    const role = (name: string) => (name === 'loadgen' ? 'lab.load' : name === 'prometheus' ? 'lab.monitor' : 'lab.variants');
    for (const [name, service] of Object.entries(stack.services)) {
      assert.deepEqual(service.deploy.placement.constraints, [`node.labels.${role(name)} == true`], name);
    }
    assert.deepEqual(grafana.services.grafana!.deploy.placement.constraints, ['node.labels.lab.monitor == true']);
    assert.equal(stack.services['queue-worker']!.deploy.replicas, '${QUEUE_WORKERS:-2}');
    assert.equal(stack.services['queue-worker']!.deploy.placement.max_replicas_per_node, '${QUEUE_WORKERS_PER_NODE:-2}');
  });

  it('mounts no Docker socket and no host directory: Prometheus and Grafana read swarm configs', () => {
    for (const file of ['docker-stack.yml', 'config/stack.grafana.yml']) {
      assert.doesNotMatch(read(file), /docker\.sock|type: bind/, file);
    }
    for (const [name, service] of [...Object.entries(stack.services), ...Object.entries(grafana.services)]) {
      for (const volume of service.volumes ?? []) assert.equal(volume.type, 'tmpfs', name);
    }
  });
});

describe("the swarm's Prometheus", () => {
  const config = read('prometheus/prometheus.swarm.yml');
  it('finds every variant, the queue workers and the load generator by tasks.<service>, never setting variant', () => {
    for (const { name } of VARIANTS) {
      assert.match(
        config,
        new RegExp(
          `job_name: ${name}\\n\\s+dns_sd_configs:\\n\\s+- names: \\["tasks\\.${name}"\\][^]*?replacement: ${name}:9464`,
        ),
        name,
      );
    }
    assert.match(config, /job_name: queue-worker\n\s+dns_sd_configs:\n\s+- names: \["tasks\.queue-worker"\]/);
    assert.match(config, /job_name: loadgen\n\s+dns_sd_configs:\n\s+- names: \["tasks\.loadgen"\]/);
    assert.doesNotMatch(config, /static_configs:\n\s+- targets: \["(?!localhost)/, 'only Prometheus itself is static');
    assert.doesNotMatch(config, /^\s*variant:/m);
  });
});
