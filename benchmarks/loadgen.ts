// Benchmarks of the load generator itself (figures printed, never asserted; see README.md):
//  1. its ceiling: closed-loop fib(1) against a trivial server, `lab load` next to a minimal
//     ping-pong client on the same server, with 1 and 64 connections (same run, side by side,
//     rounds alternating);
//  2. its open-loop schedule accuracy at 1,000 and 10,000 requests/s: schedule lag (p99 and max),
//     the sending thread's busy share, the process's CPU, and whether it flags itself; and at a
//     rate it cannot keep, that it does flag itself, and why.
//
//   npm run build && node dist/benchmarks/loadgen.js [seconds per measurement, default 10]

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PINGPONG = fileURLToPath(new URL('./pingpong.js', import.meta.url));
const CLI = fileURLToPath(new URL('../services/cli/index.js', import.meta.url));
const seconds = Number(process.argv[2] ?? 10);
const ROUNDS = 3;
/**
 * Seconds of load before each measurement, on both sides, not counted: without it, the first
 * tenth of a second of a run (the JIT compiling the hot path, the pacer thread starting) set the
 * open loop's maximum schedule lag, and weighed on the lab's side more than the minimal client's.
 */
const WARMUP = 2;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}`))));
  });
}

async function startServer(): Promise<{ port: number; stop: () => void }> {
  const child = spawn(process.execPath, [PINGPONG, 'server'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) =>
    child.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))),
  );
  return { port, stop: () => child.kill() };
}

function scenarioFile(rate: number, connections: number): string {
  const path = join(mkdtempSync(join(tmpdir(), 'bench-')), `open-${rate}.yaml`);
  writeFileSync(
    path,
    [
      'name: open',
      `duration: ${seconds}s`,
      'probes:',
      '  - name: steady',
      '    model: open',
      `    rate: ${rate}`,
      `    connections: ${connections}`,
      '    n: 1',
    ].join('\n'),
  );
  return path;
}

interface Report {
  phases: Array<{
    generator: {
      cpuCores: number;
      busy: number;
      eventLoopDelayP99Ms: number;
      scheduleLagP99Ms: number | null;
      scheduleLagMaxMs: number | null;
      generatorBound: boolean;
      reasons: string[];
    };
  }>;
  results: Array<{ requestsPerSecond: number; ok: number; requests: number; latencyMs: { p50: number; p99: number } }>;
}

const server = await startServer();

/** `lab load` against the trivial server after WARMUP s of the same load, its JSON report. */
async function labLoad(args: string[]): Promise<Report> {
  const out = await run([CLI, 'load', '--target', `t=127.0.0.1:${server.port}`, ...args, '--warmup', `${WARMUP}s`, '--json']);
  return JSON.parse(out) as Report;
}

try {
  console.log(`Load generator benchmarks, ${seconds} s per measurement, against a trivial server (benchmarks/pingpong.ts)`);
  console.log(`reproduce: npm run build && node dist/benchmarks/loadgen.js ${seconds}`);
  console.log(`every measurement after ${WARMUP} s of the same load, not counted`);
  console.log(`\n1. Ceiling: closed loop, fib(1), minimal client vs lab load (${ROUNDS} alternating rounds each, medians)`);
  console.log('connections  minimal req/s  lab load req/s  ratio');
  for (const connections of [1, 64]) {
    const minimal: number[] = [];
    const lab: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      minimal.push(
        Number(await run([PINGPONG, 'client', String(server.port), String(connections), String(seconds), String(WARMUP)])),
      );
      const report = await labLoad(['--scenario', 'perf2', '--connections', String(connections), '--duration', `${seconds}s`]);
      lab.push(report.results[0]!.requestsPerSecond);
    }
    const [m, l] = [median(minimal), median(lab)];
    console.log(
      `${String(connections).padStart(11)}  ${m.toFixed(0).padStart(13)}  ${l.toFixed(0).padStart(14)}  ${(l / m).toFixed(2).padStart(5)}   (rounds: ${minimal.map((x, i) => `${x.toFixed(0)}/${lab[i]!.toFixed(0)}`).join(', ')})`,
    );
  }
  console.log('\n2. Open-loop schedule accuracy: fixed arrivals, fib(1)');
  console.log('target req/s  connections  achieved  lag p99   lag max   sender busy  CPU cores  generator-bound');
  for (const [rate, connections] of [
    [1000, 16],
    [10_000, 32],
    [1_000_000, 64],
  ] as const) {
    const report = await labLoad(['--scenario', scenarioFile(rate, connections)]);
    const g = report.phases[0]!.generator;
    const r = report.results[0]!;
    const ms = (v: number | null) => (v === null ? '-' : `${v.toFixed(2)} ms`);
    console.log(
      `${String(rate).padStart(12)}  ${String(connections).padStart(11)}  ${r.requestsPerSecond.toFixed(0).padStart(8)}  ${ms(g.scheduleLagP99Ms).padEnd(8)}  ${ms(g.scheduleLagMaxMs).padEnd(8)}  ${`${(g.busy * 100).toFixed(0)}%`.padStart(11)}  ${g.cpuCores.toFixed(2).padStart(9)}  ${g.generatorBound ? `yes: ${g.reasons.join('; ')}` : 'no'}`,
    );
  }
} finally {
  server.stop();
}
