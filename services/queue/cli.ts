// `lab worker`: the command's flags, each with its environment variable (compose sets them). The
// worker itself (ioredis, piscina) is loaded only when the command runs.

import { Option, type Command } from 'commander';
import type { RawOptions } from '../common/options.js';
import { queueWorkerDefaults, queueWorkerOptionNames, type QueueWorkerOptions } from './options.js';

const ARGUMENTS: Record<keyof QueueWorkerOptions, string> = {
  redisUrl: 'url',
  keyPrefix: 'prefix',
  name: 'name',
  claimIdleMs: 'ms',
  maxDeliveries: 'n',
  host: 'address',
  metricsPort: 'port',
};

export function addWorkerCommand(program: Command): void {
  const command = program
    .command('worker')
    .description(
      'a worker of the `queue` variant: computes the fib requests its fronts add to Redis (lab serve queue is the front)',
    )
    .addHelpText(
      'after',
      [
        '',
        `Defaults: --redis ${queueWorkerDefaults.redisUrl}, --claim-idle-ms ${queueWorkerDefaults.claimIdleMs}, --max-deliveries ${queueWorkerDefaults.maxDeliveries}.`,
        'Start as many as you like, on any host that reaches Redis; they share the work:',
        '  npx lab worker --redis redis://HOST:6379',
        'SIGTERM finishes the job in hand, replies, acknowledges and exits 0.',
      ].join('\n'),
    );
  const attributes = new Map<keyof QueueWorkerOptions, string>();
  for (const [key, name] of Object.entries(queueWorkerOptionNames) as Array<
    [keyof QueueWorkerOptions, { flag: string; env?: string; description: string }]
  >) {
    const option = new Option(`${name.flag} <${ARGUMENTS[key]}>`, name.description).env(name.env!);
    command.addOption(option);
    attributes.set(key, option.attributeName());
  }
  command.action(async (parsed: Record<string, string | undefined>) => {
    const raw: RawOptions<QueueWorkerOptions> = {};
    for (const [key, attribute] of attributes) raw[key] = parsed[attribute];
    const { runWorker } = await import('./worker.js');
    await runWorker(raw);
  });
}
