// `lab serve <variant>`: validates the configuration, starts the shared server with the variant,
// prints the one `listening ...` line scripts wait for, and drains on SIGTERM / SIGINT.

import { ConfigError } from './common/errors.js';
import { resolveServeOptions, type RawOptions, type ServeOptions } from './common/options.js';
import { startServer } from './common/server.js';
import { VARIANT_NAMES, findVariant } from './variants.js';

export async function runServe(variantName: string, raw: RawOptions<ServeOptions>): Promise<void> {
  const variant = findVariant(variantName);
  if (!variant) {
    throw new ConfigError(
      '<variant>',
      `unknown variant ${JSON.stringify(variantName)}: expected one of ${VARIANT_NAMES.join(', ')}`,
    );
  }
  const options = resolveServeOptions(raw);
  const server = variant.start ? await variant.start(options) : await startServer(variant, options);
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
