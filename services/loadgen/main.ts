// `lab load`'s action: validate, run, print live lines, then the table or JSON.

import { resolveLoadOptions } from './options.js';
import type { RawOptions } from '../common/options.js';
import type { LoadOptions } from './options.js';
import { collectResults, finalTable, liveLine } from './report.js';
import { startLoad } from './run.js';

export async function runLoadCommand(raw: RawOptions<LoadOptions>): Promise<void> {
  const options = resolveLoadOptions(raw);
  const startedAt = new Date();
  const run = await startLoad(options);
  if (run.metricsPort !== null) {
    console.error(`loadgen: metrics on http://${options.metricsHost}:${run.metricsPort}/metrics`);
  }
  let last = run.elapsedMs();
  const ticker = setInterval(() => {
    const now = run.elapsedMs();
    console.error(liveLine(run.recorders, now, now - last));
    last = now;
  }, options.reportEveryMs);
  const stop = () => run.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const recorders = await run.finished;
  clearInterval(ticker);
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  const result = collectResults(recorders, options, startedAt, run.elapsedMs());
  console.log(options.json ? JSON.stringify(result, null, 2) : finalTable(result));
}
