// `lab sweep` and `lab report`: CPU quotas as the lab's experiment axis. Only the flags live here;
// each command loads its module when it runs, so `lab variants` and `lab serve` never load
// dockerode or the report's libraries.

import type { Command } from 'commander';
import { addOptions, specEntries } from '../lab/command.js';
import { ConfigError } from '../lab/errors.js';
import { sweepOptions } from './options.js';

export function addSweepCommands(program: Command): void {
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
  const read = addOptions(sweep, specEntries(sweepOptions));
  sweep.action(async (parsed: Record<string, unknown>) => {
    const [{ resolveSweepOptions }, { runSweep }] = await Promise.all([import('./options.js'), import('./sweep.js')]);
    await runSweep(resolveSweepOptions(read(parsed).raw));
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

  program
    .command('compare')
    .description(
      'two lab load --json runs (rates and percentiles, B - A with a 95% bootstrap interval) or two sweeps (per variant and quota): a table and an HTML page',
    )
    .argument('<A>', 'a lab load --json (or --out) file, or a sweep file')
    .argument('<B>', 'another of the same kind')
    .option('--out <compare.html>', 'where to write the page (default compare.html)')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  lab load --variants eventloop --duration 10s --out a.json; (change something); ... --out b.json',
        '  lab compare a.json b.json --out compare.html',
        '  lab compare sweep-before.json sweep-after.json',
        '',
        'A row says "no difference" where the 95% interval of B - A holds 0. Bad input: one line, exit 2.',
      ].join('\n'),
    )
    .action(async (a: string, b: string, opts: { out?: string }) => {
      const { resolveCompareOptions, runCompare } = await import('./compare.js');
      try {
        runCompare(resolveCompareOptions({ a, b, out: opts.out }));
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        console.error(`lab compare: ${error.message}`);
        process.exitCode = 2;
      }
    });
}
