// The Prometheus configuration, checked by promtool when it is available (the offline Docker
// setup installs it; CI sets LAB_REQUIRE_PROMTOOL=1 so that a missing promtool fails there).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VARIANTS } from '../services/variants.js';

const CONFIG = fileURLToPath(new URL('../../prometheus/prometheus.yml', import.meta.url));
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
const required = process.env.LAB_REQUIRE_PROMTOOL === '1';
const skip = hasPromtool || required ? false : 'promtool is not on the PATH (run ../shared/offline-docker/setup.sh, or install Prometheus)';

describe('prometheus', () => {
  it('promtool accepts the configuration', { skip }, () => {
    assert.ok(hasPromtool, 'LAB_REQUIRE_PROMTOOL=1 but promtool is not on the PATH');
    const result = spawnSync('promtool', ['check', 'config', CONFIG], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  it('scrapes every variant, and never sets the variant label itself', () => {
    const config = readFileSync(CONFIG, 'utf8');
    for (const { definition } of VARIANTS) {
      assert.match(config, new RegExp(`job_name: ${definition.name}\\n\\s+static_configs:\\n\\s+- targets: \\["${definition.name}:9464"\\]`));
    }
    assert.doesNotMatch(config, /^\s*variant:/m, 'the variant label comes from the services');
  });
});
