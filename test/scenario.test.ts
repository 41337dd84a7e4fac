// Scenarios: the built-ins, YAML files, and validation errors that name the field at fault.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { seededRandom } from '../services/loadgen/arrivals.js';
import { BUILT_IN_SCENARIOS, DEFAULT_SCENARIO_DIR, loadScenario, loadScenarioFrom } from '../services/loadgen/scenario.js';
import { connectionActive, pickN, rateAt } from '../services/loadgen/schedule.js';
import { configErrorOf, writeScenario } from './helpers.js';

const errorOf = (yaml: string) => configErrorOf(() => loadScenario(writeScenario(yaml)));

describe('scenarios', () => {
  it('has the built-ins, each valid', () => {
    assert.deepEqual(BUILT_IN_SCENARIOS, ['perf1', 'perf2', 'beazley', 'mixed', 'ramp']);
    for (const name of BUILT_IN_SCENARIOS) assert.equal(loadScenario(name).name, name);
    const beazley = loadScenario('beazley');
    assert.equal(beazley.durationMs, 30_000);
    const long = beazley.probes.find((p) => p.name === 'long')!;
    assert.deepEqual([long.connections, long.startMs, long.stopMs, long.staggerMs], [2, 5000, 25_000, 5000]);
  });

  it('reads a YAML file, with durations in any unit and weighted n', () => {
    const path = writeScenario(
      [
        'name: custom',
        'description: two probes',
        'duration: 1m',
        'probes:',
        '  - name: small',
        '    n: {"1": 3, "25": 1}',
        '    think: 20ms',
        '  - name: steady',
        '    model: open',
        '    rate: 50',
        '    arrival: poisson',
        '    n: 10',
        '    start: 1.5s',
      ].join('\n'),
    );
    const scenario = loadScenario(path);
    assert.equal(scenario.durationMs, 60_000);
    assert.deepEqual(scenario.probes[0]!.n, [
      { n: 1, weight: 3 },
      { n: 25, weight: 1 },
    ]);
    assert.equal(scenario.probes[0]!.thinkMs, 20);
    assert.deepEqual(
      [scenario.probes[1]!.model, scenario.probes[1]!.rate, scenario.probes[1]!.arrival, scenario.probes[1]!.startMs],
      ['open', 50, 'poisson', 1500],
    );
  });

  it('names the field at fault', () => {
    assert.match(
      errorOf('name: x\nprobes:\n  - name: a\n    model: open\n    n: 1'),
      /probes\[0\]\.rate: an open-loop probe needs a rate/,
    );
    assert.match(errorOf('name: x\nprobes:\n  - name: a\n    n: 79'), /probes\[0\]\.n:/);
    assert.match(errorOf('name: x\nprobes:\n  - name: a\n    n: 1\n    speed: 3'), /probes\[0\]: .*speed/);
    assert.match(errorOf('name: x\nprobes:\n  - name: a\n    n: 1\n    think: soon'), /probes\[0\]\.think: expected a duration/);
    assert.match(
      errorOf('name: x\nprobes:\n  - name: a\n    n: 1\n  - name: a\n    n: 2'),
      /probes\[1\]\.name: probe "a" is defined twice/,
    );
    assert.match(
      errorOf('name: x\nprobes:\n  - name: a\n    n: 1\n    start: 5s\n    stop: 2s'),
      /probes\[0\]\.stop: must be after start/,
    );
    assert.match(
      errorOf('name: x\nprobes:\n  - name: a\n    n: 1\n    rate: 10'),
      /probes\[0\]\.rate: a closed-loop probe has no rate/,
    );
    assert.match(errorOf('name: x\nprobes: []'), /probes: a scenario needs at least one probe/);
    assert.match(errorOf('probes:\n  - name: a\n    n: 1'), /name:/);
    assert.match(errorOf('name: [unclosed'), /not valid YAML/);
    assert.match(errorOf('name: x\nprobes:\n  - name: a\n    n: {"1": 1, "99": 1}'), /probes\[0\]\.n\.99: n must be at most 78/);
  });

  it("holds a file's numbers to lab load's limits, naming the field and the limit", () => {
    const probe = (lines: string) => errorOf(`name: x\nprobes:\n  - name: a\n    n: 1\n${lines}`);
    const open = (lines: string) => probe(`    model: open\n${lines}`);
    for (const [error, pattern] of [
      [open('    rate: 1000001'), /probes\[0\]\.rate: expected requests per second from 0.001 to 1000000, got 1000001/],
      [open('    rate: 1e300'), /probes\[0\]\.rate: expected requests per second from 0.001 to 1000000, got 1e\+300/],
      [open('    rate: 0.0009'), /probes\[0\]\.rate: expected requests per second from 0.001 to 1000000/],
      [
        open('    rate: {from: 1, to: 1000001, steps: 2}'),
        /probes\[0\]\.rate\.to: expected requests per second from 0.001 to 1000000/,
      ],
      [
        open('    rate: {from: 1, to: 2, steps: 1001}'),
        /probes\[0\]\.rate\.steps: expected a whole number of steps from 1 to 1000/,
      ],
      [
        open('    rate: 1\n    depth: 257'),
        /probes\[0\]\.depth: expected a whole number of requests in flight per connection from 1 to 256/,
      ],
      [probe('    connections: 257'), /probes\[0\]\.connections: expected a whole number of connections from 1 to 256, got 257/],
      [probe('    think: 3600001ms'), /probes\[0\]\.think: expected a duration from 0 to 1h /],
      [probe('    start: 604800001ms'), /probes\[0\]\.start: expected a duration from 0 to 168h /],
      [errorOf('name: x\nduration: 169h\nprobes:\n  - name: a\n    n: 1'), /duration: expected a duration from 0 to 168h /],
      [
        errorOf('name: x\nprobes:\n  - name: a\n    n: {"1": 1e7}'),
        /probes\[0\]\.n\.1: expected a weight above 0, at most 1000000/,
      ],
      [
        errorOf(`name: x\nprobes:\n${[0, 1, 2, 3, 4].map((i) => `  - name: p${i}\n    n: 1\n    connections: 256`).join('\n')}`),
        /probes: 1280 connections over all probes: at most 1024 in one run/,
      ],
    ] as const)
      assert.match(error, pattern);
  });

  it("ships scenario files that are valid (the control API's directory, scenarios/)", () => {
    const files = readdirSync(DEFAULT_SCENARIO_DIR).filter((name) => name.endsWith('.yaml'));
    assert.ok(files.length >= 2, `files in ${DEFAULT_SCENARIO_DIR}: ${files.join(', ')}`);
    for (const name of files) {
      const { scenario, source } = loadScenarioFrom(name, DEFAULT_SCENARIO_DIR);
      assert.equal(`${scenario.name}.yaml`, name, 'each file is named after its scenario');
      assert.equal(source, join(DEFAULT_SCENARIO_DIR, name));
    }
  });

  it('reads files for the control API only from its directory, and says nothing of one outside', () => {
    const root = mkdtempSync(join(tmpdir(), 'scenario-dir-'));
    const dir = join(root, 'scenarios');
    mkdirSync(dir);
    writeFileSync(join(dir, 'inside.yaml'), 'name: inside\nprobes:\n  - name: a\n    n: 1\n');
    // Outside: a file whose keys a validation error would name.
    writeFileSync(join(root, 'outside.yaml'), 'name: outside\nsecret_key_name: 1\nprobes:\n  - name: a\n    n: 1\n');
    symlinkSync(join(root, 'outside.yaml'), join(dir, 'link.yaml'));
    assert.equal(loadScenarioFrom('inside.yaml', dir).scenario.name, 'inside');
    assert.equal(loadScenarioFrom(join(dir, 'inside.yaml'), dir).scenario.name, 'inside', 'a path into it');
    assert.equal(loadScenarioFrom('perf1,perf2', dir).scenario.name, 'perf1+perf2', 'built-ins as ever');
    const refusal = (spec: string) => configErrorOf(() => loadScenarioFrom(spec, dir)).replace(JSON.stringify(spec), '<spec>');
    const missing = refusal('missing.yaml');
    assert.match(missing, /^invalid scenario: no scenario file <spec> in the scenario directory \(LOAD_SCENARIO_DIR\)/);
    assert.match(missing, /inside\.yaml/, 'it lists the files inside');
    for (const spec of [
      join(root, 'outside.yaml'),
      '../outside.yaml',
      'link.yaml',
      join(root, 'missing.yaml'),
      '/etc/passwd.yaml',
    ]) {
      const error = refusal(spec);
      assert.equal(error, missing, `${spec}: the same answer as for a file that does not exist`);
      assert.doesNotMatch(error, /secret|ENOENT|EACCES/);
    }
    // The command line reads any path: it is the user's own.
    assert.match(
      configErrorOf(() => loadScenario(join(root, 'outside.yaml'))),
      /secret_key_name/,
    );
  });

  it('draws n by weight', () => {
    const random = seededRandom(1);
    const draws = Array.from({ length: 10_000 }, () =>
      pickN(
        {
          n: [
            { n: 1, weight: 9 },
            { n: 30, weight: 1 },
          ],
        },
        random,
      ),
    );
    const large = draws.filter((n) => n === 30).length;
    assert.ok(large > 850 && large < 1150, `${large} of 10000 draws were 30, expected about 1000`);
    assert.equal(pickN({ n: 7 }), 7);
  });

  it('staggers connections and steps ramps', () => {
    const probe = { startMs: 5000, stopMs: 25_000, staggerMs: 5000 };
    assert.deepEqual(
      [4999, 5000, 9999, 10_000, 19_999, 20_000, 24_999, 25_000].map((t) => [
        connectionActive(probe, 0, t, 30_000),
        connectionActive(probe, 1, t, 30_000),
      ]),
      [
        [false, false],
        [true, false],
        [true, false],
        [true, true],
        [true, true],
        [true, false],
        [true, false],
        [false, false],
      ],
    );
    const ramp = { rate: { from: 100, to: 1000, steps: 10 } };
    assert.deepEqual(
      [0, 5999, 6000, 59_999].map((t) => rateAt(ramp, t, 60_000)),
      [100, 100, 200, 1000],
    );
  });
});
