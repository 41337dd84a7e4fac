// How `lab` (dockerode) and `make cpus` find the Docker engine: DOCKER_HOST, else the active
// Docker context's endpoint, else /var/run/docker.sock. A `docker` on the PATH that answers
// `docker context inspect` as Docker Desktop, Colima or rootless Docker would plays the CLI.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_SOCKET, dockerOptions } from '../services/quota/docker-host.js';
import { ROOT } from '../tools/generate.js';

describe('finding the Docker engine (DOCKER_HOST, the Docker context, /var/run/docker.sock)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'docker-host-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lab: DOCKER_HOST is left to dockerode; else the context endpoint; else the Linux socket', () => {
    assert.deepEqual(dockerOptions({ DOCKER_HOST: 'tcp://10.0.0.2:2376' }, () => 'unix:///never').options, undefined);
    const colima = 'unix:///Users/me/.colima/default/docker.sock';
    assert.deepEqual(dockerOptions({}, () => colima).options, { socketPath: '/Users/me/.colima/default/docker.sock' });
    assert.deepEqual(dockerOptions({}, () => 'unix:///run/user/1000/docker.sock').options, {
      socketPath: '/run/user/1000/docker.sock',
    });
    assert.deepEqual(dockerOptions({}, () => 'tcp://192.168.5.2:2375').options, {
      protocol: 'http',
      host: '192.168.5.2',
      port: 2375,
    });
    assert.deepEqual(dockerOptions({}, () => 'ssh://me@builder').options, {
      protocol: 'ssh',
      host: 'builder',
      port: 22,
      username: 'me',
    });
    assert.deepEqual(
      dockerOptions({}, () => null),
      { options: { socketPath: DEFAULT_SOCKET }, source: DEFAULT_SOCKET },
    );
  });

  /** Runs scripts/docker-socket.sh with a `docker` whose current context points at `host` (none: no docker CLI). */
  function socketFor(host: string | null, env: Record<string, string> = {}): string {
    const bin = join(dir, `bin-${Math.random().toString(36).slice(2)}`);
    mkdirSync(bin);
    if (host !== null) {
      writeFileSync(join(bin, 'docker'), `#!/bin/sh\n[ "$1 $2" = "context inspect" ] && echo '${host}' && exit 0\nexit 1\n`);
      chmodSync(join(bin, 'docker'), 0o755);
    }
    const result = spawnSync('bash', [join(ROOT, 'scripts/docker-socket.sh')], {
      encoding: 'utf8',
      // Only the fake docker, and what bash needs (uname): no host docker CLI.
      env: { PATH: `${bin}:/usr/bin:/bin`, ...env },
    });
    assert.equal(result.status, 0, result.stderr);
    return result.stdout.trim();
  }

  it('make cpus mounts the socket the context names where it is on this Linux host, else /var/run/docker.sock', async (t) => {
    if (process.platform !== 'linux')
      return t.skip(`a unix socket of the host is mounted only on Linux; this is ${process.platform}`);
    const socket = join(dir, 'docker.sock');
    const server = createServer().listen(socket);
    await once(server, 'listening');
    try {
      assert.equal(socketFor(`unix://${socket}`), socket, 'rootless Docker: the socket of the context');
      assert.equal(socketFor('unix:///nowhere/docker.sock'), '/var/run/docker.sock', 'a socket not on this host (a VM)');
      assert.equal(socketFor('tcp://10.0.0.2:2375'), '/var/run/docker.sock', 'an engine over TCP: its own socket');
      assert.equal(socketFor(null), '/var/run/docker.sock', 'no docker CLI');
      assert.equal(socketFor('unix:///nowhere', { DOCKER_HOST: `unix://${socket}` }), socket, 'DOCKER_HOST first');
    } finally {
      server.close();
    }
    const makefile = readFileSync(join(ROOT, 'Makefile'), 'utf8');
    assert.match(makefile, /-v "\$\$\(\.\/scripts\/docker-socket\.sh\)":\/var\/run\/docker\.sock/, 'make cpus uses it');
  });
});
