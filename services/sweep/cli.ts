// `lab sweep` and `lab report`: CPU quotas as the lab's experiment axis. Only the flags live here;
// each command loads its module when it runs, so `lab variants` and `lab serve` never load
// dockerode or the report's libraries.

import { Option, type Command } from 'commander';
import { ConfigError } from '../lab/errors.js';
import { sweepOptionNames, type RawSweepOptions, type SweepOptionKey } from './options.js';

export function addSweepCommands(program: Command): void {
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
