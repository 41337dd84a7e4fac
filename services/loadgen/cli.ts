// `lab load`: the command's flags (each with its environment variable, so compose configures
// it through .env) and what it prints. The run itself is in run.ts.

import { Command, Option } from 'commander';
import { loadOptionNames, type LoadOptions } from './options.js';
import type { RawOptions } from '../common/options.js';

export function addLoadCommand(program: Command): void {
  const command = program
    .command('load')
    .description('closed-loop load against fib servers: a live line per second, then a table per target and probe')
    .addHelpText(
      'after',
      '\nExamples:\n  lab load --target eventloop=127.0.0.1:25002 --scenario perf1,perf2 --duration 20s\n' +
        '  lab load --target sync=127.0.0.1:25001?connect=per-request --scenario perf2 --json',
    );
  const names = loadOptionNames;
  const attributes = new Map<keyof LoadOptions, string>();
  const flag = (key: keyof LoadOptions, arg: string) => {
    const name = names[key];
    const option = new Option(arg ? `${name.flag} <${arg}>` : name.flag, name.description);
    if ('env' in name) option.env(name.env);
    command.addOption(option);
    attributes.set(key, option.attributeName());
    return option;
  };
  flag('targets', 'name=host:port').argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
  flag('scenarios', 'names');
  flag('connections', 'n');
  flag('thinkMs', 'duration');
  flag('durationMs', 'duration');
  flag('timeoutMs', 'duration');
  flag('reportEveryMs', 'duration');
  flag('json', '');
  flag('metricsPort', 'port');
  flag('metricsHost', 'address');
  command.action(async (parsed: Record<string, unknown>) => {
    const raw: Record<string, unknown> = {};
    for (const [key, attribute] of attributes) raw[key] = parsed[attribute];
    const { runLoadCommand } = await import('./main.js');
    await runLoadCommand(raw as RawOptions<LoadOptions>);
  });
}
