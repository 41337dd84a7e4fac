#!/usr/bin/env node
// `lab`: the lab's one command-line entry point. Subcommands load their
// modules only when they run. Exit codes: 0 done, 1 a failure while running, 2 a usage or
// configuration error (commander's own usage errors included).

import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { addOptions } from '../lab/command.js';
import { ConfigError } from '../lab/errors.js';
import { publishedVariantPort } from '../lab/ports.js';
import { allServeOptions } from './serve.js';
import { VARIANTS, VARIANT_NAMES } from '../variants/index.js';

const { version } = createRequire(import.meta.url)('../../../package.json') as { version: string };

const program = new Command('lab')
  .description("Beazley's PyCon 2015 fib server, one concurrency model per variant, measured side by side")
  .version(version)
  .showHelpAfterError()
  .exitOverride();

program
  .command('variants')
  .description('list the concurrency variants, one a line')
  .option(
    '--json',
    'print every row of the variant table: model, what it shows, published port (VARIANT_BASE_PORT), plug-in level, options, limits',
  )
  .action((opts: { json?: boolean }) => {
    if (opts.json) {
      const rows = VARIANTS.map((v) => ({
        name: v.name,
        // Where the compose lab publishes it: VARIANT_BASE_PORT (environment, .env) plus its offset.
        hostPort: publishedVariantPort(v.hostPort),
        group: v.group,
        model: v.model,
        shows: v.shows,
        runtime: v.runtime,
        level: v.runtime === 'node' ? v.plugin.level : null,
        script: v.runtime === 'python' ? v.script : null,
        parallelism: v.parallelism,
        takesTurns: v.takesTurns,
        interruptible: v.interruptible,
        connectionCap: v.connectionCap,
        idleTimeoutMs: v.idleTimeoutMs,
        options: Object.fromEntries(
          Object.entries(v.options).map(([key, spec]) => [key, { flag: spec.flag, env: spec.env, default: spec.default }]),
        ),
        limits: v.limits,
      }));
      console.log(JSON.stringify(rows, null, 2));
    } else {
      for (const name of VARIANT_NAMES) console.log(name);
    }
  });

const serve = program
  .command('serve')
  .description('run one variant: the fib protocol on --port, /metrics and /healthz on --metrics-port')
  .argument('<variant>', `one of: ${VARIANT_NAMES.join(', ')}`);
const serveSpecs = allServeOptions();
const readServeOptions = addOptions<Record<string, unknown>>(
  serve,
  [...serveSpecs].map(([key, { spec }]) => [key, spec]),
  (key) => {
    const variants = serveSpecs.get(key)?.variants;
    return variants ? ` [${variants.join(', ')}]` : '';
  },
);
serve.action(async (variantName: string, parsed: Record<string, unknown>) => {
  const { raw, given } = readServeOptions(parsed);
  const { runServe } = await import('./serve.js');
  await runServe(variantName, raw, given);
});

/**
 * The commands whose options pull in zod and yaml (scenario and sweep files): 0.1 s of every
 * start, and `lab serve` (each variant's container, and the tests' hundreds of servers) needs
 * neither. They are declared unless the command run is one declared above or by a variant's
 * row (found on a scratch program); help and an unknown command see them all, in this order.
 */
const firstArgument = process.argv[2];
const rowCommands = new Command();
for (const variant of VARIANTS) variant.commands?.(rowCommands);
const runsOwnCommand = [...program.commands, ...rowCommands.commands].some((command) => command.name() === firstArgument);
if (!runsOwnCommand) (await import('../loadgen/cli.js')).addLoadCommand(program);
// Commands of the variants' own (their rows say).
for (const variant of VARIANTS) variant.commands?.(program);
if (!runsOwnCommand) {
  (await import('../quota/cli.js')).addQuotaCommands(program);
  (await import('../sweep/cli.js')).addSweepCommands(program);
}

program.parseAsync().catch((error: unknown) => {
  if (error instanceof CommanderError) {
    // commander has printed the message (or the help, or the version) already
    process.exit(error.exitCode === 0 ? 0 : 2);
  }
  if (error instanceof ConfigError) {
    console.error(`lab: ${error.message}`);
    process.exit(2);
  }
  console.error(`lab: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
