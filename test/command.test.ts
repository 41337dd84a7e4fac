// The one way every `lab` command declares its options: a spec per option, added to commander by
// addOptions, read back flag > environment > default, each guard naming the option; and the
// sweep file's durations read like the flags'.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { addOptions, specEntries } from '../services/lab/command.js';
import { durationOption } from '../services/lab/duration.js';
import { intOption, resolveOptions, switchOption, type OptionSpecs } from '../services/lab/options.js';
import { resolveSweepOptions } from '../services/sweep/options.js';
import { configErrorOf } from './helpers.js';

interface Demo {
  size: number;
  wait: number;
  json: boolean;
  names: string[];
}

const specs: OptionSpecs<Demo> = {
  size: intOption({ flag: '--size', env: 'DEMO_SIZE', description: 'how many', default: 4, min: 1, max: 9 }),
  wait: durationOption({ flag: '--wait', description: 'how long', limit: { min: 0, max: 60_000 }, default: 1000 }),
  json: switchOption({ flag: '--json', description: 'as JSON' }),
  names: {
    flag: '--name',
    argument: 'name',
    repeatable: true,
    description: 'a name; repeat it',
    default: [],
    parse: (value) => (Array.isArray(value) ? value.map(String) : [String(value)]),
  },
};

/** Parses `args` with `env` set, as `lab` would; returns what the action resolved and which keys were flags. */
async function run(args: string[], env: Record<string, string> = {}) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const command = new Command('demo').exitOverride();
    const read = addOptions(command, specEntries(specs));
    let result: { options: Demo; given: string[]; help: string } | undefined;
    command.action((parsed: Record<string, unknown>) => {
      const { raw, given } = read(parsed);
      result = { options: resolveOptions(specs, raw), given: [...given].map(String), help: command.helpInformation() };
    });
    await command.parseAsync(args, { from: 'user' });
    return result!;
  } finally {
    for (const key of Object.keys(env)) if (saved[key] === undefined) delete process.env[key];
  }
}

describe('options declared once, for every command', () => {
  it('reads flag over environment over default, and says which were flags', async () => {
    assert.deepEqual((await run([])).options, { size: 4, wait: 1000, json: false, names: [] });
    const fromEnv = await run([], { DEMO_SIZE: '7' });
    assert.deepEqual([fromEnv.options.size, fromEnv.given], [7, []]);
    const fromFlag = await run(['--size', '2', '--wait', '250ms', '--json', '--name', 'a', '--name', 'b'], { DEMO_SIZE: '7' });
    assert.deepEqual(fromFlag.options, { size: 2, wait: 250, json: true, names: ['a', 'b'] });
    assert.deepEqual(fromFlag.given.sort(), ['json', 'names', 'size', 'wait']);
  });

  it('shows each argument, default and variable in --help', async () => {
    const help = (await run([])).help.replace(/\s+/g, ' ');
    assert.match(help, /--size <n> how many \(default: 4\) \(env: DEMO_SIZE\)/);
    assert.match(help, /--wait <duration> how long \(default: 1s\)/);
    assert.match(help, /--json as JSON --name/, 'a switch takes no argument and shows no default');
  });

  it('refuses a bad value naming the option, flag and variable', async () => {
    assert.match(
      configErrorOf(() => resolveOptions(specs, { size: '10' })),
      /--size \(DEMO_SIZE\): expected an integer from 1 to 9, got "10"/,
    );
    assert.match(
      configErrorOf(() => resolveOptions(specs, { wait: '2m' })),
      /--wait: expected a duration from 0 to 1m such as 250ms/,
    );
  });

  it('reads a bare number in the sweep file as seconds, as the flag does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lab-options-'));
    const file = join(dir, 'sweep.yaml');
    writeFileSync(file, 'variants: [threadpool]\nwarmup: 2\nthroughputDuration: 1.5\ncollapseDuration: 750ms\n');
    const { settings } = resolveSweepOptions({ file });
    assert.deepEqual([settings.warmupMs, settings.throughputMs, settings.collapseMs], [2000, 1500, 750]);
    assert.equal(resolveSweepOptions({ warmup: '2' }).settings.warmupMs, 2000);
    assert.match(
      configErrorOf(() => resolveSweepOptions({ collapseDuration: '0.4' })),
      /--collapse-duration: must be at least 500ms/,
    );
  });
});
