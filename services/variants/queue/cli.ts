// `lab worker`: the command's flags, each with its environment variable (compose sets them), from
// the worker's option specs. The worker itself (ioredis, piscina) is loaded only when it runs.

import type { Command } from 'commander';
import { addOptions, specEntries } from '../../lab/command.js';
import { queueWorkerOptions } from './options.js';

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
        'Start as many as you like, on any host that reaches Redis; they share the work:',
        '  npx lab worker --redis redis://HOST:6379',
        'SIGTERM finishes the job in hand, replies, acknowledges and exits 0.',
      ].join('\n'),
    );
  const read = addOptions(command, specEntries(queueWorkerOptions));
  command.action(async (parsed: Record<string, unknown>) => {
    const { runWorker } = await import('./worker.js');
    await runWorker(read(parsed).raw);
  });
}
