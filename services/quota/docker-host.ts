// Where the Docker engine is, as the docker CLI finds it, for dockerode (`lab cpus`, `lab ps`,
// `lab sweep`): DOCKER_HOST when set (dockerode reads it, with DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH), else the endpoint of the active Docker context (`docker context inspect`:
// Docker Desktop, Colima and rootless Docker each set one, none of them at /var/run/docker.sock
// on the user's side), else /var/run/docker.sock (Linux's default, and the one-shot `make cpus`
// container's mount, where no docker CLI runs). `make cpus` finds the socket to mount the same way
// (scripts/docker-socket.sh).

import { spawnSync } from 'node:child_process';
import type Docker from 'dockerode';

export const DEFAULT_SOCKET = '/var/run/docker.sock';

/** The active context's engine address (`unix:///...`, `tcp://...`, `ssh://...`), or null without a docker CLI or context. */
export function contextHost(): string | null {
  const result = spawnSync('docker', ['context', 'inspect', '--format', '{{.Endpoints.docker.Host}}'], {
    encoding: 'utf8',
    timeout: 5000,
  });
  const host = result.status === 0 ? result.stdout.trim() : '';
  return host === '' ? null : host;
}

/** dockerode's options for an engine address; undefined: its own defaults (DOCKER_HOST, else the Linux socket). */
export function dockerOptions(
  env: NodeJS.ProcessEnv = process.env,
  inspectContext: () => string | null = contextHost,
): { options: Docker.DockerOptions | undefined; source: string } {
  if (env.DOCKER_HOST) return { options: undefined, source: `DOCKER_HOST ${env.DOCKER_HOST}` };
  const host = inspectContext();
  if (host === null) return { options: { socketPath: DEFAULT_SOCKET }, source: DEFAULT_SOCKET };
  const source = `the Docker context's ${host}`;
  if (host.startsWith('unix://')) return { options: { socketPath: host.slice('unix://'.length) }, source };
  if (host.startsWith('npipe://')) return { options: { socketPath: host.slice('npipe:'.length) }, source };
  const url = new URL(host);
  const port = url.port === '' ? undefined : Number(url.port);
  if (url.protocol === 'ssh:')
    return { options: { protocol: 'ssh', host: url.hostname, port: port ?? 22, username: url.username || undefined }, source };
  return { options: { protocol: 'http', host: url.hostname, port: port ?? 2375 }, source };
}
