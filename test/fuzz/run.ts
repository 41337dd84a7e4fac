// `make fuzz`'s entry point: fuzzes every variant (or those given), one at a time so they never
// share the CPU, and prints per variant what was sent and checked and every failure with the
// command that replays it. Exits 1 when anything failed, 2 on a bad option.
//
//   npm run build && node dist/test/fuzz/run.js --seed 42 --seconds 10 [--variants eventloop,sync] [--clients 6]
//   node dist/test/fuzz/run.js --seed 42 --variants sync --session 3.17     # replay one session

import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../services/lab/errors.js';
import { VARIANT_NAMES } from '../../services/variants/index.js';
import { fuzzVariant, summarize } from './campaign.js';

export interface FuzzOptions {
  /** The run's seed; with a session id, all it takes to regenerate that session's bytes. */
  seed: number;
  /** Seconds of fuzzing per variant. */
  seconds: number;
  variants: string[];
  /** Concurrent clients per variant. */
  clients: number;
  /** Replay only this session (`client.index`). */
  session: string | null;
}

export const fuzzDefaults: Omit<FuzzOptions, 'seed'> = {
  seconds: 10,
  variants: [...VARIANT_NAMES],
  clients: 6,
  session: null,
};

export function resolveFuzzOptions(raw: Record<string, string | undefined>): FuzzOptions {
  const integer = (flag: string, value: string | undefined, fallback: number, min: number, max: number) => {
    if (value === undefined || value === '') return fallback;
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max)
      throw new ConfigError(flag, `expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    return n;
  };
  const variants = raw.variants ? raw.variants.split(',').map((name) => name.trim()) : fuzzDefaults.variants;
  const unknown = variants.filter((name) => !VARIANT_NAMES.includes(name));
  if (unknown.length > 0)
    throw new ConfigError('--variants', `unknown ${unknown.join(', ')}: expected some of ${VARIANT_NAMES.join(', ')}`);
  if (raw.session !== undefined && !/^\d+\.\d+$/.test(raw.session))
    throw new ConfigError('--session', `expected client.index as printed with a failure, got ${JSON.stringify(raw.session)}`);
  return {
    seed: integer('--seed', raw.seed, randomInt(0, 2 ** 31), 0, 2 ** 32 - 1),
    seconds: integer('--seconds', raw.seconds, fuzzDefaults.seconds, 1, 86_400),
    variants,
    clients: integer('--clients', raw.clients, fuzzDefaults.clients, 1, 64),
    session: raw.session ?? null,
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      seconds: { type: 'string' },
      variants: { type: 'string' },
      clients: { type: 'string' },
      session: { type: 'string' },
    },
  });
  const options = resolveFuzzOptions(values);
  const what = options.session ? `session ${options.session}` : `${options.seconds} s per variant, ${options.clients} clients`;
  console.log(`fuzz: seed ${options.seed}, ${what}, variants ${options.variants.join(',')}`);
  let failures = 0;
  for (const variant of options.variants) {
    const report = await fuzzVariant(variant, { ...options, session: options.session ?? undefined });
    console.log(summarize(report));
    for (const failure of report.failures) console.log(`  ${failure}`);
    if (report.failureCount > report.failures.length)
      console.log(`  ... and ${report.failureCount - report.failures.length} more`);
    failures += report.failureCount;
  }
  console.log(failures === 0 ? `fuzz: seed ${options.seed}: no failures` : `fuzz: seed ${options.seed}: ${failures} failures`);
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`fuzz: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(error instanceof ConfigError ? 2 : 1);
  },
);
