// The Docker Swarm form of the lab (docs/swarm.md), derived from the compose file rather than
// written a second time: every service of docker-compose.yml, its image, command, environment,
// hardening and healthcheck, becomes a swarm service with the swarm's spelling of the same limits
// (deploy.resources), a role that places it (node labels), DNS round robin instead of the routing
// mesh, and host-mode published ports. Prometheus gets its own config that finds every task by
// DNS (tasks.<service>), so no long-running service mounts the Docker socket.
//   docker-stack.yml                 the stack (`make swarm-up`), Grafana left out
//   config/stack.grafana.yml         Grafana, a second stack file deployed with the first when wanted
//   prometheus/prometheus.swarm.yml  the scrape jobs for the swarm (dns_sd_configs)

import { parse as parseYaml, stringify } from 'yaml';
import type { Variant } from '../services/server/plugin.js';

/** What the swarm stack reads from a compose service (after merge keys). */
interface ComposeService {
  image?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | number | null>;
  init?: boolean;
  read_only?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
  stop_grace_period?: string;
  healthcheck?: { test: string[]; interval?: string; timeout?: string; start_period?: string; retries?: number };
  cpus?: string | number;
  mem_limit?: string;
  pids_limit?: number;
  ports?: string[];
  deploy?: { replicas?: string | number };
  volumes?: string[];
}

/** The node label of each role: `docker node update --label-add lab.load=true <node>`. */
export const ROLES = { load: 'lab.load', variants: 'lab.variants', monitor: 'lab.monitor' } as const;
export type Role = keyof typeof ROLES;

/** The stack's name: services are `concurrency-lab_<service>` (services/quota/docker.ts finds them by it). */
export const STACK = 'concurrency-lab';

/**
 * How often swarm checks a task's health. A task counts as running only once its first check
 * passes, which comes one interval after it starts (Docker 20.10 has no start_interval in swarm),
 * so this bounds how long a deployment and every quota change take; each check is an exec, about
 * 0.1 s of CPU: 20 services every 30 s cost about 0.07 cores.
 */
export const SWARM_HEALTH_INTERVAL = '30s';

/**
 * A service's published ports, as compose publishes them: `127.0.0.1:${SYNC_PORT:-25001}:25000`.
 * The stack publishes each on the same variable (scripts/init-env.sh derives the variants' from
 * VARIANT_BASE_PORT into .env, which scripts/swarm.sh reads; stack files have no arithmetic).
 */
function portsOf(service: ComposeService): Array<{ published: string; target: number }> {
  return (service.ports ?? []).map((spec) => {
    const match = /^(?:[\d.]+:)?(\$\{[A-Z][A-Z0-9_]*:-\d+\}):(\d+)$/.exec(spec);
    if (!match) throw new Error(`a published port that names no .env setting: ${spec}`);
    return { published: match[1]!, target: Number(match[2]) };
  });
}

function roleOf(name: string): Role {
  if (name === 'loadgen') return 'load';
  if (name === 'prometheus' || name === 'grafana') return 'monitor';
  return 'variants';
}

/**
 * The lab's own images can come from a registry on several nodes (scripts/swarm.sh tags and
 * pushes them when LAB_REGISTRY is set, and names them in LAB_IMAGE and LAB_PYTHON_IMAGE).
 */
function imageOf(image: string | undefined): string | undefined {
  if (image === 'concurrency-lab:local') return '${LAB_IMAGE:-concurrency-lab:local}';
  if (image === 'concurrency-lab-python:local') return '${LAB_PYTHON_IMAGE:-concurrency-lab-python:local}';
  return image;
}

/** One compose service in swarm form. */
function swarmService(name: string, service: ComposeService): Record<string, unknown> {
  const out: Record<string, unknown> = { image: imageOf(service.image) };
  if (service.entrypoint) out.entrypoint = service.entrypoint;
  if (service.command) out.command = service.command;
  if (service.environment) out.environment = service.environment;
  if (service.init) out.init = true;
  if (service.read_only) out.read_only = true;
  if (service.cap_drop) out.cap_drop = service.cap_drop;
  // Swarm has no tmpfs key (nor security_opt: swarm services cannot set no-new-privileges).
  if (service.tmpfs) out.volumes = service.tmpfs.map((target) => ({ type: 'tmpfs', target }));
  // Scaled workers get a host name that reads in logs (the task's slot, kept when swarm replaces
  // the task); their `worker` label is the slot each claims in Redis (w1, w2, ...), as in compose.
  if (service.deploy?.replicas !== undefined) out.hostname = `${name}-{{.Task.Slot}}`;
  if (service.stop_grace_period) out.stop_grace_period = service.stop_grace_period;
  if (service.healthcheck) {
    out.healthcheck = { ...service.healthcheck, interval: `\${SWARM_HEALTH_INTERVAL:-${SWARM_HEALTH_INTERVAL}}` };
  }
  out.networks = ['lab'];
  const ports = portsOf(service);
  if (ports.length > 0) {
    out.ports = ports.map(({ published, target }) => ({
      target,
      published,
      protocol: 'tcp',
      mode: 'host',
    }));
  }
  const role = roleOf(name);
  const limits: Record<string, unknown> = {};
  if (service.cpus !== undefined) limits.cpus = String(service.cpus);
  if (service.mem_limit) limits.memory = service.mem_limit;
  if (service.pids_limit) limits.pids = service.pids_limit;
  const placement: Record<string, unknown> = { constraints: [`node.labels.${ROLES[role]} == true`] };
  const replicated = service.deploy?.replicas !== undefined;
  if (replicated) {
    // Scaled workers: spread over the nodes of their role, at most this many on one node.
    placement.preferences = [{ spread: 'node.id' }];
    placement.max_replicas_per_node = '${QUEUE_WORKERS_PER_NODE:-2}';
  }
  out.deploy = {
    // No virtual IP: the name resolves to the tasks themselves (the routing mesh needs IPVS).
    endpoint_mode: 'dnsrr',
    replicas: replicated ? service.deploy!.replicas : 1,
    resources: {
      limits,
      // Small on purpose: what the scheduler counts, so that every task of the lab fits one 2-core node.
      reservations: { cpus: '0.05', memory: '32M' },
    },
    restart_policy: { condition: 'on-failure', delay: '5s' },
    // One task at a time, the old one stopped first: a host-mode port is held until it exits.
    update_config: { parallelism: 1, order: 'stop-first', failure_action: 'pause' },
    placement,
  };
  return out;
}

const HEADER = (what: string) =>
  `# GENERATED by \`make generate\` (tools/generate.ts, tools/swarm.ts) from the variant table and
# docker-compose.yml. Edit those, not this file: a test fails when it differs from what they produce.
${what}`;

/** The configs (swarm's read-only files, copied to every node) Prometheus reads. */
const PROMETHEUS_CONFIGS = {
  'prometheus-config': config('prometheus-config', './prometheus/prometheus.swarm.yml'),
  'prometheus-rules': config('prometheus-rules', './prometheus/rules/lab.rules.yml'),
};

/**
 * A swarm config from a file. A config cannot change once created, so its name carries
 * LAB_CONFIG_VERSION (scripts/swarm.sh: a hash of the files), and a redeploy after an edit
 * creates new configs instead of failing.
 */
function config(key: string, file: string): { name: string; file: string } {
  return { name: `${STACK}_${key}-\${LAB_CONFIG_VERSION:-0}`, file };
}

function parseCompose(composeText: string): Record<string, ComposeService> {
  return (parseYaml(composeText, { merge: true }) as { services: Record<string, ComposeService> }).services;
}

/** docker-stack.yml: every compose service but Grafana. */
export function stackFile(composeText: string): string {
  const services: Record<string, unknown> = {};
  for (const [name, service] of Object.entries(parseCompose(composeText))) {
    if (name === 'grafana') continue;
    const converted = swarmService(name, service);
    if (name === 'prometheus') {
      // The config travels with the stack (a swarm config), not as a bind mount of this checkout.
      delete converted.volumes;
      converted.configs = [
        { source: 'prometheus-config', target: '/etc/prometheus/prometheus.yml' },
        { source: 'prometheus-rules', target: '/etc/prometheus/rules/lab.rules.yml' },
      ];
    }
    services[name] = converted;
  }
  const body = stringify(
    {
      version: '3.9',
      services,
      networks: { lab: { driver: 'overlay', attachable: true } },
      configs: PROMETHEUS_CONFIGS,
    },
    { lineWidth: 0, aliasDuplicateObjects: false },
  );
  return HEADER(`#
# The concurrency lab on Docker Swarm (docs/swarm.md): \`make swarm-up\` deploys it as stack
# ${STACK}, \`make swarm-down\` removes it. The services of docker-compose.yml, with:
# - limits in deploy.resources (a variant's quota: <VARIANT>_CPUS, as in compose; \`lab cpus\`
#   changes it through the service API, and swarm replaces the task to apply it);
# - placement by node label: ${ROLES.load} (load generator), ${ROLES.variants} (variants, Redis,
#   queue workers spread at most QUEUE_WORKERS_PER_NODE a node), ${ROLES.monitor} (Prometheus,
#   Grafana). make swarm-up gives a single node every role;
# - endpoint_mode dnsrr and host-mode published ports: the routing mesh needs IPVS in the kernel.
#   A host-mode port listens on every interface of the node running the task (swarm cannot bind
#   it to 127.0.0.1): keep the nodes behind a firewall. Ports: <VARIANT>_PORT (from
#   VARIANT_BASE_PORT), LOADGEN_PORT, PROMETHEUS_PORT, GRAFANA_PORT;
# - Prometheus reads prometheus/prometheus.swarm.yml (tasks.<service> in DNS), a swarm config.
# Grafana is config/stack.grafana.yml, deployed beside this file when COMPOSE_PROFILES has grafana.
${body}`);
}

/** config/stack.grafana.yml: Grafana, with its provisioning and dashboards as swarm configs. */
export function stackGrafanaFile(composeText: string, dashboardFiles: string[]): string {
  const grafana = parseCompose(composeText).grafana;
  if (!grafana) throw new Error('docker-compose.yml has no grafana service');
  const converted = swarmService('grafana', grafana);
  delete converted.volumes;
  const configs: Record<string, { name: string; file: string }> = {
    'grafana-datasources': config('grafana-datasources', './grafana/provisioning/datasources/prometheus.yml'),
    'grafana-dashboards-provider': config('grafana-dashboards-provider', './grafana/provisioning/dashboards/lab.yml'),
  };
  const mounts = [
    { source: 'grafana-datasources', target: '/etc/grafana/provisioning/datasources/prometheus.yml' },
    { source: 'grafana-dashboards-provider', target: '/etc/grafana/provisioning/dashboards/lab.yml' },
  ];
  for (const file of dashboardFiles) {
    const key = `grafana-dashboard-${file.replace(/\.json$/, '')}`;
    configs[key] = config(key, `./grafana/dashboards/${file}`);
    mounts.push({ source: key, target: `/var/lib/grafana/dashboards/${file}` });
  }
  converted.configs = mounts;
  const body = stringify(
    { version: '3.9', services: { grafana: converted }, configs },
    { lineWidth: 0, aliasDuplicateObjects: false },
  );
  return HEADER(`#
# Grafana for the swarm stack: \`make swarm-up\` deploys it with docker-stack.yml when
# COMPOSE_PROFILES names grafana (and LAB_NO_GRAFANA is not 1). Paths are relative to the
# first stack file's directory (the repository's root), as \`docker stack deploy\` reads them.
${body}`);
}

/**
 * prometheus/prometheus.swarm.yml: the compose config's jobs, each finding its service's tasks by
 * DNS (tasks.<service> lists every task's address, wherever it runs). A variant has one task, and
 * its `instance` is written back to the compose form (sync:9464), so dashboards and queries read
 * the same; the queue's workers keep their addresses, as in compose.
 */
export function prometheusSwarmFile(variants: readonly Variant[], scrapeInterval: string, metricsPort: number): string {
  const dnsJob = (name: string, port: number, relabel: boolean) =>
    `  - job_name: ${name}
    dns_sd_configs:
      - names: ["tasks.${name}"]
        type: A
        port: ${port}
        refresh_interval: ${scrapeInterval}
${relabel ? `    relabel_configs:\n      - target_label: instance\n        replacement: ${name}:${port}\n` : ''}`;
  const workers = variants.flatMap((v) => v.companions?.quotaServices ?? []);
  return HEADER(`#
# Prometheus for the lab on Docker Swarm (docker-stack.yml): the jobs of prometheus.yml, each
# finding its service's tasks in the swarm's DNS (tasks.<service>: one address per task, on
# whichever node it runs). No Docker socket. No relabelling sets \`variant\` (the processes do).
global:
  scrape_interval: ${scrapeInterval}
  scrape_timeout: 3s
  evaluation_interval: ${scrapeInterval}

rule_files:
  - rules/*.yml

scrape_configs:
${variants.map((v) => dnsJob(v.name, metricsPort, true)).join('')}${workers.map((name) => dnsJob(name, metricsPort, false)).join('')}${dnsJob('loadgen', 9465, true)}  # Prometheus itself: series no panel reads, every 30 s (as in prometheus/prometheus.yml).
  - job_name: prometheus
    scrape_interval: 30s
    static_configs:
      - targets: ["localhost:9090"]
`);
}
