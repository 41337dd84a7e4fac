// The lab's `.env` (scripts/init-env.sh writes it on `make up`; compose reads it): read here for
// the commands that run on the host beside the compose stack (`lab ps`, `lab cpus`, `lab sweep`),
// in compose's order of precedence: the shell's environment first, then the file.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root, where compose and `make up` keep `.env` (dist/services/lab -> ../../..). */
export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The lab's .env file. */
export const LAB_ENV_FILE = join(PROJECT_ROOT, '.env');

/** `KEY=value` lines of an env file (quotes around a value dropped); {} when there is no file. */
export function readEnvFile(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  const values: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (match) values[match[1]!] = match[2]!.replace(/^(['"])(.*)\1$/, '$2');
  }
  return values;
}

/** A setting as compose sees it: the environment's value, else the file's; undefined when neither sets it (empty counts as unset). */
export function envSetting(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
  envFile: string = LAB_ENV_FILE,
): string | undefined {
  const value = env[name] || readEnvFile(envFile)[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
