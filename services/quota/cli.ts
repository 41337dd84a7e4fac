// `lab cpus` and `lab ps`: the running lab's CPU quotas, changed live and watched. Only the flags
// live here (their specs in options.ts); each command loads its module when it runs (dockerode
// among them).

import type { Command } from 'commander';
import { addOptions, specEntries } from '../lab/command.js';
import { cpusOptions, psOptions, resolveCpusOptions, resolvePsOptions } from './options.js';

export function addQuotaCommands(program: Command): void {
  const cpus = program
    .command('cpus')
    .description("change running variants' CPU quota live (Docker API), confirmed by the variant's own lab_cpu_quota_cores")
    .argument('[variant]', 'a variant, or all')
    .argument('[cores]', "the quota in cores (above the Docker host's CPU count it is lowered to it)")
    .addHelpText('after', '\nExamples:\n  lab cpus threadpool 1\n  lab cpus all 0.5\n  lab cpus --reset');
  const readCpus = addOptions(cpus, specEntries(cpusOptions));
  cpus.action(async (target: string | undefined, cores: string | undefined, parsed: Record<string, unknown>) => {
    const options = resolveCpusOptions({ target, cores }, readCpus(parsed).raw);
    const { runCpus } = await import('./cpus.js');
    const changes = await runCpus(options);
    if (changes.some((change) => change.error !== null)) process.exitCode = 1;
  });

  const ps = program
    .command('ps')
    .description(
      'every running variant: quota, cores used, throttled share, memory, connections, workers, last spotlight figures',
    );
  const readPs = addOptions(ps, specEntries(psOptions));
  ps.action(async (parsed: Record<string, unknown>) => {
    const options = resolvePsOptions(readPs(parsed).raw);
    const { runPs } = await import('./ps.js');
    await runPs(options);
  });
}
