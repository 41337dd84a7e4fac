// `lab cpus`, `lab ps`, `lab sweep` and `lab report`: CPU quotas as the lab's experiment axis.
// Only the flags live here; each command loads its module when it runs, so `lab variants` and
// `lab serve` never load dockerode or the report's libraries.

import { Option, type Command } from 'commander';
import { ConfigError } from '../lab/errors.js';
import { sweepOptionNames, type RawSweepOptions, type SweepOptionKey } from './options.js';

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
        const { resolveCpusOptions, runCpus } = await import('../quota/cpus.js');
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
      const { resolvePsOptions, runPs } = await import('../quota/ps.js');
      await runPs(
        resolvePsOptions({ json: opts.json, everyMs: opts.every, prometheusUrl: opts.prometheus, loadgenUrl: opts.loadgen }),
      );
    });

  const ARGUMENTS: Partial<Record<SweepOptionKey, string>> = {
    file: 'sweep.yaml',
    variants: 'names',
    cpus: 'cores,...',
    out: 'sweep.json',
    isolation: 'mode',
    warmup: 'duration',
    throughputDuration: 'duration',
    collapseDuration: 'duration',
    connectionsPerCore: 'n',
    cpuN: 'n',
    baselineVariant: 'variant',
    loadgenUrl: 'url',
  };
  const sweep = program
    .command('sweep')
    .description('variants x CPU quotas: throughput of fib(27), the perf2 collapse beside a fib(30) hog, short p99; resumable')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  lab sweep --variants threads,threadpool --cpus 0.5,1,1.5,2 --out sweep.json',
        '  lab sweep --file sweep.yaml          # keys: variants, cpus, out, warmup, throughputDuration, ...',
        '  lab sweep --native --variants threadpool --cpus 1,2',
        '  lab report sweep.json --out report.html',
        '',
        'An interrupted sweep (Ctrl-C) puts the quotas back; the same command resumes it.',
      ].join('\n'),
    );
  const attributes = new Map<SweepOptionKey, string>();
  for (const [key, name] of Object.entries(sweepOptionNames) as Array<
    [SweepOptionKey, (typeof sweepOptionNames)[SweepOptionKey]]
  >) {
    const argument = ARGUMENTS[key];
    const option = new Option(argument ? `${name.flag} <${argument}>` : name.flag, name.description);
    if ('env' in name) option.env(name.env);
    sweep.addOption(option);
    attributes.set(key, option.attributeName());
  }
  sweep.action(async (parsed: Record<string, unknown>) => {
    const raw: RawSweepOptions = {};
    for (const [key, attribute] of attributes) raw[key] = parsed[attribute];
    const [{ resolveSweepOptions }, { runSweep }] = await Promise.all([import('./options.js'), import('./sweep.js')]);
    await runSweep(resolveSweepOptions(raw));
  });

  program
    .command('report')
    .description('one self-contained HTML file from a sweep: charts against the quota, USL fit per variant')
    .argument('<sweep.json>', 'the file lab sweep wrote')
    .option('--out <report.html>', 'where to write the report (default report.html)')
    .action(async (file: string, opts: { out?: string }) => {
      const { resolveReportOptions, runReport } = await import('./report.js');
      try {
        runReport(resolveReportOptions({ sweep: file, out: opts.out }));
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        // `lab report: invalid sweep.json: points[3].throughput: expected a number, got "fast"`
        console.error(`lab report: ${error.message}`);
        process.exitCode = 2;
      }
    });
}
