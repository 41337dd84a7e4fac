// The Prometheus configuration and recording rules, checked with promtool: from the PATH (the
// offline Docker setup installs it), else from the Prometheus image when Docker has it, else
// skipped with the reason. CI sets LAB_REQUIRE_PROMTOOL=1, so there a missing promtool fails.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VARIANTS } from '../services/variants/index.js';

const DIR = fileURLToPath(new URL('../../prometheus/', import.meta.url));
const IMAGE = process.env.PROMETHEUS_IMAGE || 'prom/prometheus:v3.5.0';

/** How to run promtool here, with paths relative to prometheus/, or why it cannot run. */
function findPromtool(): { run: (args: string[]) => ReturnType<typeof spawnSync> } | { missing: string } {
  if (spawnSync('promtool', ['--version']).status === 0) {
    return { run: (args) => spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8' }) };
  }
  if (spawnSync('docker', ['image', 'inspect', IMAGE]).status === 0) {
    return {
      run: (args) =>
        spawnSync(
          'docker',
          [
            'run',
            '--rm',
            '-v',
            `${DIR}:/etc/prometheus:ro`,
            '-w',
            '/etc/prometheus',
            '--entrypoint',
            '/bin/promtool',
            IMAGE,
            ...args,
          ],
          { encoding: 'utf8' },
        ),
    };
  }
  return {
    missing: `promtool is not on the PATH and Docker has no ${IMAGE} image (run ../shared/offline-docker/setup.sh, or install Prometheus)`,
  };
}

const promtool = findPromtool();
const required = process.env.LAB_REQUIRE_PROMTOOL === '1';
const skip = 'missing' in promtool && !required ? promtool.missing : false;

function runPromtool(args: string[]): string {
  if ('missing' in promtool) assert.fail(`LAB_REQUIRE_PROMTOOL=1: ${promtool.missing}`);
  const result = promtool.run(args);
  const output = `${result.stdout?.toString() ?? ''}${result.stderr?.toString() ?? ''}`;
  assert.equal(result.status, 0, output);
  return output;
}

describe('prometheus', () => {
  it('promtool accepts the configuration and its rule files', { skip }, () => {
    const output = runPromtool(['check', 'config', 'prometheus.yml']);
    assert.match(output, /SUCCESS: \d+ rules found/);
  });

  it('promtool accepts the swarm configuration (dns_sd on tasks.<service>)', { skip }, () => {
    const output = runPromtool(['check', 'config', 'prometheus.swarm.yml']);
    assert.match(output, /SUCCESS: \d+ rules found/);
  });

  it('the recording rules pass their unit tests (promtool test rules)', { skip }, () => {
    runPromtool(['test', 'rules', 'tests/lab.rules.test.yml']);
  });

  it('scrapes every variant, and never sets the variant label itself', () => {
    const config = readFileSync(`${DIR}prometheus.yml`, 'utf8');
    for (const { name } of VARIANTS) {
      assert.match(config, new RegExp(`job_name: ${name}\\n\\s+static_configs:\\n\\s+- targets: \\["${name}:9464"\\]`));
    }
    assert.doesNotMatch(config, /^\s*variant:/m, 'the variant label comes from the services');
  });
});
