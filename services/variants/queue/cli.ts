// `lab worker`: the command's flags, each with its environment variable (compose sets them), from
// the worker's option specs. The worker itself (ioredis, piscina) is loaded only when it runs.

import { Option, type Command } from 'commander';
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
  const attributes = new Map<string, string>();
  for (const [key, spec] of Object.entries(queueWorkerOptions)) {
    const option = new Option(
      `${spec.flag} <${spec.argument}>`,
      `${spec.description} (default: ${spec.defaultText ?? String(spec.default)})`,
    ).env(spec.env);
    command.addOption(option);
    attributes.set(key, option.attributeName());
  }
  command.action(async (parsed: Record<string, unknown>) => {
    const raw: Record<string, unknown> = {};
    for (const [key, attribute] of attributes) raw[key] = parsed[attribute];
    const { runWorker } = await import('./worker.js');
    await runWorker(raw);
  });
}
