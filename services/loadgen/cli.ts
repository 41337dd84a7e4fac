// `lab load`: the command's flags, each with its environment variable where compose sets it
// through .env. The work is in main.ts, loaded only when the command runs.

import type { Command } from 'commander';
import { Option } from 'commander';
import { loadOptionNames, type LoadOptionKey, type RawLoadOptions } from './options.js';

const ARGUMENTS: Partial<Record<LoadOptionKey, string>> = {
  targets: 'name=host:port',
  variants: 'names',
  scenarioSpec: 'name|file.yaml',
  connections: 'n',
  thinkMs: 'duration',
  rate: 'req/s',
  durationMs: 'duration',
  warmupMs: 'duration',
  timeoutMs: 'duration',
  reportEveryMs: 'duration',
  metricsPort: 'port',
  metricsHost: 'address',
  maxP99: 'duration',
  maxErrorRate: 'share',
  searchStep: 'duration',
};

export function addLoadCommand(program: Command): void {
  const command = program
    .command('load')
    .description(
      'the load generator: closed- and open-loop scenarios against fib servers, with a live display and trustworthy percentiles',
    )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  lab load --target eventloop=127.0.0.1:25002 --scenario beazley',
        '  lab load --variants eventloop,threadpool --scenario perf1,perf2 --duration 20s',
        "  lab load --target 'sync=127.0.0.1:25001?connect=per-request' --scenario perf2 --json",
        "  lab load --target 'talk=127.0.0.1:25000?legacy' --scenario perf2     # the talk's own Python servers",
        '  lab load --target threadpool=127.0.0.1:25005 --scenario mixed --search --max-p99 20ms',
        '',
        'A run is flagged GENERATOR-BOUND when the generator itself was the bottleneck: its event-loop',
        'delay p99 passed 20 ms, its CPU 0.9 cores, or (open loop) its schedule lag p99 5 ms.',
      ].join('\n'),
    );
  const attributes = new Map<LoadOptionKey, string>();
  for (const [key, name] of Object.entries(loadOptionNames) as Array<[LoadOptionKey, (typeof loadOptionNames)[LoadOptionKey]]>) {
    const argument = ARGUMENTS[key];
    const option = new Option(argument ? `${name.flag} <${argument}>` : name.flag, name.description);
    if ('env' in name) option.env(name.env);
    if (key === 'targets') option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    command.addOption(option);
    attributes.set(key, option.attributeName());
  }
  command.action(async (parsed: Record<string, unknown>) => {
    const raw: RawLoadOptions = {};
    for (const [key, attribute] of attributes) raw[key] = parsed[attribute];
    const { runLoadCommand } = await import('./main.js');
    await runLoadCommand(raw);
  });
}
