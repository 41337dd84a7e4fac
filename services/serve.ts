// `lab serve <variant>`: validates the configuration (the options every variant shares, and the
// variant's own), starts the shared server with the variant, prints the one `listening ...` line
// scripts wait for, and drains on SIGTERM / SIGINT.

import { ConfigError } from './common/errors.js';
import { optionLabel, resolveOptions, resolveServeOptions, serveOptions, type OptionSpec } from './common/options.js';
import { startServer } from './common/server.js';
import { VARIANTS, VARIANT_NAMES, findVariant } from './variants.js';

/** Every option `lab serve` knows: the shared ones, then each variant's (shared by name where two declare the same). */
export function allServeOptions(): Map<string, { spec: OptionSpec<unknown>; variants: string[] | null }> {
  const all = new Map<string, { spec: OptionSpec<unknown>; variants: string[] | null }>();
  for (const [key, spec] of Object.entries(serveOptions)) all.set(key, { spec: spec, variants: null });
  for (const variant of VARIANTS) {
    for (const [key, spec] of Object.entries(variant.options)) {
      const known = all.get(key);
      if (!known) all.set(key, { spec, variants: [variant.name] });
      else if (known.variants && known.spec.flag === spec.flag && known.spec.env === spec.env) known.variants.push(variant.name);
      else throw new Error(`option ${key} of ${variant.name} clashes with another option of the same name`);
    }
  }
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
