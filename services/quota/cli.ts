// `lab cpus` and `lab ps`: the running lab's CPU quotas, changed live and watched. Only the flags
// live here; each command loads its module when it runs (dockerode among them).

import { Option, type Command } from 'commander';

export function addQuotaCommands(program: Command): void {
  program
    .command('cpus')
    .description("change running variants' CPU quota live (Docker API), confirmed by the variant's own lab_cpu_quota_cores")
    .argument('[variant]', 'a variant, or all')
    .argument('[cores]', "the quota in cores (above the Docker host's CPU count it is lowered to it)")
    .option('--reset', 'put every running variant back to its quota in .env (<VARIANT>_CPUS)')
    .option('--confirm-timeout <seconds>', 'how long the variant may take to show the new quota (default 15)')
    .option('--env-file <path>', "where --reset reads the quotas the environment does not set (default: the lab's .env)")
    .addHelpText('after', '\nExamples:\n  lab cpus threadpool 1\n  lab cpus all 0.5\n  lab cpus --reset')
    .action(
      async (
        target: string | undefined,
        cores: string | undefined,
        opts: { reset?: boolean; confirmTimeout?: string; envFile?: string },
      ) => {
        const { resolveCpusOptions, runCpus } = await import('./cpus.js');
        const changes = await runCpus(resolveCpusOptions({ target, cores, ...opts }));
        if (changes.some((change) => change.error !== null)) process.exitCode = 1;
      },
    );

  program
    .command('ps')
    .description(
      'every running variant: quota, cores used, throttled share, memory, connections, workers, last spotlight figures',
    )
    .option('--json', 'print one snapshot as JSON')
    .option('--every <seconds>', 'refresh interval on a terminal (default 2; 0 prints one snapshot)')
    .addOption(new Option('--prometheus <url>', "the lab's Prometheus (default http://127.0.0.1:9090)").env('LAB_PROMETHEUS_URL'))
    .addOption(new Option('--loadgen <url>', "the lab's load generator (default http://127.0.0.1:9465)").env('LAB_LOADGEN_URL'))
    .action(async (opts: { json?: boolean; every?: string; prometheus?: string; loadgen?: string }) => {
      const { resolvePsOptions, runPs } = await import('./ps.js');
      await runPs(
        resolvePsOptions({ json: opts.json, everyMs: opts.every, prometheusUrl: opts.prometheus, loadgenUrl: opts.loadgen }),
      );
    });
}
