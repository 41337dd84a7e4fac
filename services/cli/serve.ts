// `lab serve <variant>`: validates the configuration (the options every variant shares, and the
// variant's own), starts the shared server with the variant, prints the one `listening ...` line
// scripts wait for, and drains on SIGTERM / SIGINT. A variant written in Python (runtime
// `python`) is started as a `python3 <script>` child with the same options, given as flags; it
// prints that line and drains itself, this process passes the signals on and exits with its code.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../lab/errors.js';
import { optionLabel, resolveOptions, type EnvOptionSpec } from '../lab/options.js';
import { resolveServeOptions, serveOptions, type ServeOptions } from '../server/options.js';
import type { Variant } from '../server/plugin.js';
import { choosePython, pythonOption } from '../server/python.js';
import { startServer } from '../server/server.js';
import { VARIANTS, VARIANT_NAMES, findVariant } from '../variants/index.js';

/** The repository's root (the Python variants' scripts are named from it), from dist/services/ or services/. */
const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../' : '../../', import.meta.url));

/** Every option `lab serve` knows: the shared ones, then each variant's (shared by name where two declare the same). */
export function allServeOptions(): Map<string, { spec: EnvOptionSpec<unknown>; variants: string[] | null }> {
  const all = new Map<string, { spec: EnvOptionSpec<unknown>; variants: string[] | null }>();
  for (const [key, spec] of Object.entries(serveOptions)) all.set(key, { spec: spec, variants: null });
  for (const variant of VARIANTS) {
    for (const [key, spec] of Object.entries(variant.options)) {
      const known = all.get(key);
      if (!known) all.set(key, { spec, variants: [variant.name] });
      else if (known.variants && known.spec.flag === spec.flag && known.spec.env === spec.env) known.variants.push(variant.name);
      else throw new Error(`option ${key} of ${variant.name} clashes with another option of the same name`);
    }
  }
  const python = VARIANTS.filter((v) => v.runtime === 'python').map((v) => v.name);
  if (python.length > 0) all.set('python', { spec: pythonOption, variants: python });
  return all;
}

/**
 * @param raw every option's raw value, by key (from the flag or its environment variable)
 * @param given the keys given on the command line (not from the environment): an option of
 *   another variant given there is a mistake worth saying; in the environment it is ignored
 *   (compose and shells set variables for several variants).
 */
export async function runServe(
  variantName: string,
  raw: Record<string, unknown>,
  given: ReadonlySet<string> = new Set(),
): Promise<void> {
  const variant = findVariant(variantName);
  if (!variant) {
    throw new ConfigError(
      '<variant>',
      `unknown variant ${JSON.stringify(variantName)}: expected one of ${VARIANT_NAMES.join(', ')}`,
    );
  }
  for (const [key, { spec, variants }] of allServeOptions()) {
    if (variants && !variants.includes(variant.name) && given.has(key)) {
      throw new ConfigError(optionLabel(spec), `an option of ${variants.join(', ')}; ${variant.name} has no such option`);
    }
  }
  const options = resolveServeOptions(raw);
  const own = resolveOptions<Record<string, unknown>>(variant.options, raw);
  if (variant.runtime === 'python') {
    const python = choosePython(
      resolveOptions<{ python: string }>({ python: pythonOption }, { python: raw.python }).python,
      (line) => console.error(`lab: ${line}`),
    );
    return runPython(variant, variant.script, python, pythonArguments(variant, options, own));
  }
  const server = await startServer(variant, options, own);
  const show = (address: string, port: number) => `${address.includes(':') ? `[${address}]` : address}:${port}`;
  console.log(`listening fib=${show(options.host, server.fib.port)} metrics=${show(options.host, server.http!.port)}`);

  const stop = (signal: string) => {
    console.error(`${variant.name}: ${signal}: draining (up to ${options.drainTimeoutMs} ms)`);
    server.shutdown().then(
      () => process.exit(0),
      (error: Error) => {
        console.error(`${variant.name}: shutdown failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** The options as the Python server's flags: every shared one, settled (its cap, its idle timeout), and its own that are set. */
export function pythonArguments(variant: Variant, options: ServeOptions, own: Record<string, unknown>): string[] {
  const settled: Record<string, unknown> = {
    ...options,
    maxConnections: options.maxConnections ?? variant.connectionCap,
    idleTimeoutMs: options.idleTimeoutMs ?? variant.idleTimeoutMs,
  };
  const flags: string[] = [];
  for (const [key, spec] of Object.entries(serveOptions)) flags.push(spec.flag, flagValue(settled[key]));
  for (const [key, spec] of Object.entries(variant.options)) {
    if (own[key] !== null && own[key] !== undefined) flags.push(spec.flag, flagValue(own[key]));
  }
  return flags;
}

/** An option's value as a flag's argument: options are strings, numbers and booleans. */
function flagValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`cannot pass ${JSON.stringify(value)} as a flag`);
}

/** Runs `python <script> <flags>` in the foreground: its output is ours, our signals are its, its exit code is ours. */
function runPython(variant: Variant, script: string, python: string, flags: string[]): Promise<void> {
  // LAB_SERVE_PARENT: the server asks to be killed with this process (it never outlives it).
  const child = spawn(python, [`${ROOT}${script}`, ...flags], {
    stdio: 'inherit',
    env: { ...process.env, LAB_SERVE_PARENT: '1' },
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGTERM', forward);
  process.on('SIGINT', forward);
  return new Promise((_resolve, reject) => {
    child.once('error', (error) => reject(new Error(`${variant.name}: cannot run ${python}: ${error.message}`)));
    child.once('exit', (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}
