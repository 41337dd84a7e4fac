// Runs a variant as a local `lab serve` process on free ports: for `lab load --variants`, which
// measures variants one at a time so they never share the CPU, and for the tests.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

export interface LocalVariant {
  variant: string;
  host: string;
  port: number;
  metricsPort: number;
  child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  exited: Promise<number | null>;
  /** Sends a signal (SIGTERM: drain) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
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
  const command = [...wrap, process.execPath, CLI, 'serve', variant, '--port', '0', '--metrics-port', '0'];
  const child = spawn(command[0]!, command.slice(1), {
    env: { ...process.env, HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /^listening .*$/m.exec(stdout);
      if (match) resolve(match[0]);
    });
    void exited.then((code) => reject(new Error(`lab serve ${variant} exited with ${code} before listening: ${stderr.trim()}`)));
  });
  const match = /^listening fib=(\S+):(\d+) metrics=(\S+):(\d+)$/.exec(line);
  if (!match) throw new Error(`unexpected listening line from lab serve ${variant}: ${line}`);
  return {
    variant,
    host: match[1]!.replace(/^\[|\]$/g, ''),
    port: Number(match[2]),
    metricsPort: Number(match[4]),
    child,
    stderr: () => stderr,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
