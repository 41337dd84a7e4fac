// Runs a variant as a local `lab serve` process on free ports (for `lab load --variants`, which
// measures variants one at a time so they never share the CPU, for `lab sweep --native`, and for
// the tests), and describes it as a load target.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { findVariant } from '../variants/index.js';
import type { Target } from './options.js';

const CLI = fileURLToPath(new URL('../cli/index.js', import.meta.url));

export interface LocalVariant extends LabProcess {
  variant: string;
  host: string;
  port: number;
  metricsPort: number;
}

/** A running `lab` command, started by spawnLab. */
export interface LabProcess {
  child: ChildProcess;
  /** What the `ready` pattern matched. */
  ready: RegExpExecArray;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  exited: Promise<number | null>;
  /** Sends a signal (SIGTERM: drain) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnLabOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** A command to run it through first (`taskset -c 0`, or a shell that joins a cgroup). */
  wrap?: string[];
  /** Resolves once this matches what the process wrote to `stream` (its line saying it is up). */
  ready: RegExp;
  stream?: 'stdout' | 'stderr';
}

/** Runs `lab <args>` and resolves once it says it is up; rejects, with its stderr, if it exits first. */
export async function spawnLab(
  args: string[],
  { env = {}, wrap = [], ready, stream = 'stdout' }: SpawnLabOptions,
): Promise<LabProcess> {
  const command = [...wrap, process.execPath, CLI, ...args];
  const child = spawn(command[0]!, command.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    for (const name of ['stdout', 'stderr'] as const) {
      child[name].on('data', (chunk: Buffer) => {
        output[name] += chunk.toString();
        const found = name === stream && ready.exec(output[name]);
        if (found) resolve(found);
      });
    }
    void exited.then((code) => reject(new Error(`lab ${args[0]} exited with ${code} before it was up: ${output.stderr.trim()}`)));
  });
  return {
    child,
    ready: match,
    stdout: () => output.stdout,
    stderr: () => output.stderr,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * Starts `lab serve <variant>` on port 0 and resolves once it prints its `listening` line.
 * `wrap` runs it through another command first (`taskset -c 0`, or a shell that joins a cgroup).
 */
export async function startLocalVariant(
  variant: string,
  env: Record<string, string> = {},
  wrap: string[] = [],
): Promise<LocalVariant> {
  const lab = await spawnLab(['serve', variant, '--port', '0', '--metrics-port', '0'], {
    env: { HOST: '127.0.0.1', ...env },
    wrap,
    ready: /^listening fib=(\S+):(\d+) metrics=(\S+):(\d+)$/m,
  });
  const [, host, port, , metricsPort] = lab.ready;
  return {
    ...lab,
    variant,
    host: host!.replace(/^\[|\]$/g, ''),
    port: Number(port),
    metricsPort: Number(metricsPort),
  };
}

/** A local variant as a target: how its clients behave and how it computes come from its row of the variant table. */
export function localTarget(variant: string, port: number, metricsPort?: number): Target {
  const row = findVariant(variant);
  return {
    name: variant,
    host: '127.0.0.1',
    port,
    // One connection at a time: like the talk's clients, take turns (a connection per request).
    connectPerRequest: row?.takesTurns ?? false,
    legacy: false,
    takesTurns: row?.takesTurns ?? false,
    parallelism: row?.parallelism ?? 'single',
    metrics: metricsPort === undefined ? null : `127.0.0.1:${metricsPort}`,
  };
}
