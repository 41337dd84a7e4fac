// `lab load`: the command's flags, each with its environment variable where compose sets it
// through .env. The work is in main.ts, loaded only when the command runs.

import type { Command } from 'commander';
import { addOptions, specEntries } from '../lab/command.js';
import { loadOptions } from './options.js';

export function addLoadCommand(program: Command): void {
  const command = program
    .command('load')
    .description(
      'the load generator: closed- and open-loop scenarios against fib servers, with a live display and trustworthy percentiles',
    )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  lab load --target eventloop=127.0.0.1:25002 --scenario beazley',
        '  lab load --variants eventloop,threadpool --scenario perf1,perf2 --duration 20s',
        "  lab load --target 'sync=127.0.0.1:25001?connect=per-request' --scenario perf2 --json",
        "  lab load --target 'talk=127.0.0.1:25000?legacy' --scenario perf2     # the talk's own Python servers",
        "  lab load --variants eventloop --threshold 'p99<10ms' --threshold 'errors<1%' --out run.json",
        '  lab load --target threadpool=127.0.0.1:25005 --scenario mixed --search --max-p99 20ms',
        '  lab load --spotlight --variants eventloop,threadpool --rotations 1',
        "  lab load --spotlight --target 'eventloop=127.0.0.1:25002?metrics=127.0.0.1:9464' \\",
        "           --target 'threadpool=127.0.0.1:25005?metrics=127.0.0.1:9465&parallel=fixed-workers'",
        '',
        "The spotlight: the talk's experiment on one target at a time, in rotation. Each turn measures",
        'perf2 (one connection looping fib(1)) alone, then beside one perf1 hog (a connection looping',
        'fib(30)), then (parallel=fixed-workers or per-connection) beside as many hogs as the variant has',
        'workers: fib_workers (fixed) or its CPU quota rounded up (per-connection), read from its',
        '/metrics at metrics=host:port; and again, in --spotlight-rounds rounds, so that drift cancels:',
        "each figure is the rounds' median, with their lowest and highest. turns: the server takes one",
        'client at a time (sync): perf2 connects per request while the hog keeps its connection. With',
        '--scenario, that scenario runs as background load against every target, paused during each',
        'turn (the variant in the spotlight has the machine to itself) and running between turns.',
        'Collapse = perf2 alone / beside one long request (inf when nothing was answered beside it).',
        'With --metrics-port each turn sets the loadgen_lesson_* series; PUT /pause {"seconds": N}',
        'pauses all load for N s (a renewable lease), DELETE /pause resumes.',
        '',
        'The control API (--metrics-port): GET /scenario, /pause, /spotlight, /metrics and /healthz are',
        'open; PUT and DELETE need Authorization: Bearer <token> (--control-token, LOADGEN_TOKEN; without',
        'one, lab load makes one up and prints it on stderr). Every route answers only a Host header that',
        'names its address (localhost, 127.0.0.1, ::1), and PUT /scenario reads .yaml files only from',
        '--scenario-dir (LOAD_SCENARIO_DIR).',
        '',
        "Thresholds: --threshold 'p99<10ms' (every probe), 'short:p99<10ms' (one probe), 'errors<1%',",
        "'rate>=1000' (repeat it; or a scenario file's thresholds: list), checked at the end, each printed",
        'PASS or FAIL with the value measured. --out FILE writes the JSON results (with the run record:',
        'lab version and commit, Node, host, quotas, scenario) to FILE whatever the output.',
        '',
        'Exit codes: 0 done (every threshold passed); 1 requests were sent and none was answered (or',
        'another failure while running); 2 bad configuration (one line naming the option); 99 a',
        "threshold failed (k6's code).",
        '',
        'The send loops run in --send-threads threads (default 1), apart from the thread that serves',
        '/metrics. A run is flagged GENERATOR-BOUND when the generator itself was the bottleneck, with',
        'the cause: event_loop_delay (a sending thread handled replies and timers late: p99 over 20 ms),',
        'cpu (a sending thread busy over 90% of the time, or its CPU quota throttling it in over 5% of',
        'periods) or schedule_lag (open loop: requests left late although a connection was free, p99',
        'over 5 ms).',
      ].join('\n'),
    );
  const read = addOptions(command, specEntries(loadOptions));
  command.action(async (parsed: Record<string, unknown>) => {
    const { runLoadCommand } = await import('./main.js');
    await runLoadCommand(read(parsed).raw);
  });
}
