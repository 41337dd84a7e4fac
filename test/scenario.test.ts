// Scenarios: the built-ins, YAML files, and validation errors that name the field at fault.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../services/loadgen/arrivals.js';
import { BUILT_IN_SCENARIOS, connectionActive, loadScenario, pickN, rateAt } from '../services/loadgen/scenario.js';
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
