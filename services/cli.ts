#!/usr/bin/env node
// `lab`: the lab's one command-line entry point (LAB-SPEC section 4). Subcommands load their
// modules only when they run, so `lab variants` stays quick.

import { Command, Option } from 'commander';
import { ConfigError } from './common/errors.js';
import { serveOptionNames, type ServeOptions } from './common/options.js';
import { addLoadCommand } from './loadgen/cli.js';
import { addQuotaCommands } from './sweep/cli.js';
import { VARIANTS, VARIANT_NAMES } from './variants.js';

const program = new Command('lab')
  .description("Beazley's PyCon 2015 fib server, one concurrency model per variant, measured side by side")
  .showHelpAfterError();

program
  .command('variants')
  .description('list the concurrency variants, one a line')
  .option('--json', 'print name, model, what it shows and the compose host port')
  .action((opts: { json?: boolean }) => {
    if (opts.json) {
      const rows = VARIANTS.map(({ definition: d, hostPort }) => ({ name: d.name, model: d.model, shows: d.shows, hostPort }));
      console.log(JSON.stringify(rows, null, 2));
    } else {
      for (const name of VARIANT_NAMES) console.log(name);
    }
  });

const serve = program
  .command('serve')
  .description('run one variant: the fib protocol on --port, /metrics and /healthz on --metrics-port')
  .argument('<variant>', `one of: ${VARIANT_NAMES.join(', ')}`);
for (const [key, name] of Object.entries(serveOptionNames)) {
  serve.addOption(new Option(`${name.flag} <${key === 'host' ? 'address' : 'n'}>`, name.description).env(name.env!));
}
serve.action(async (variantName: string, raw: Partial<Record<keyof ServeOptions, string>>) => {
  const { runServe } = await import('./serve.js');
  await runServe(variantName, raw);
});

addLoadCommand(program);
addQuotaCommands(program);

program.parseAsync().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`lab: ${error.message}`);
    process.exit(2);
  }
  console.error(`lab: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
