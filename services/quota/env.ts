// The CPU quotas the lab was started with: `<VARIANT>_CPUS` from the environment or from `.env`
// (scripts/init-env.sh writes it on `make up`), in compose's order of precedence (the shell's
// environment wins over the file). `lab cpus --reset` puts these back.

import { join } from 'node:path';
import { PROJECT_ROOT, readEnvFile } from '../lab/dotenv.js';
import { ConfigError } from '../lab/errors.js';

export { PROJECT_ROOT, readEnvFile };

export function envVariable(variant: string): string {
  return `${variant.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_CPUS`;
}

/**
 * The quota `.env` gives `variant`, in cores: the environment first, then the file, else the
 * default of init-env.sh and compose (2 cores, or the host's CPU count if lower).
 */
export function envQuota(variant: string, hostCpus: number, envFile = join(PROJECT_ROOT, '.env')): number {
  const name = envVariable(variant);
  const raw = process.env[name] ?? readEnvFile(envFile)[name];
  if (raw === undefined || raw.trim() === '') return Math.min(2, hostCpus);
  const cores = Number(raw);
  if (!Number.isFinite(cores) || cores <= 0) {
    throw new ConfigError(name, `expected a number of cores above 0, got ${JSON.stringify(raw)}`);
  }
  return cores;
}
