// The ports the compose stack publishes on 127.0.0.1, each from a setting of `.env` (defaults in
// config/lab.env, written there by tools/generate.ts from PUBLISHED_PORTS): Grafana, Prometheus,
// the load generator, and the variants, which take consecutive ports from VARIANT_BASE_PORT (each
// at its row's fixed offset: its `hostPort` less the default base). The `lab` commands that talk
// to the running stack (`lab ps`, `lab sweep`) find it through these, so a lab moved off a port
// that was taken is still found.

import { envSetting } from './dotenv.js';
import { ConfigError } from './errors.js';

/** Each published port's .env setting, its default and what listens there. */
export const PUBLISHED_PORTS = {
  GRAFANA_PORT: { default: 3000, what: 'Grafana' },
  PROMETHEUS_PORT: { default: 9090, what: 'Prometheus' },
  LOADGEN_PORT: { default: 9465, what: "the load generator's metrics and control API" },
  VARIANT_BASE_PORT: { default: 25001, what: 'the first variant (each variant at its fixed offset from it)' },
} as const;

export type PublishedPort = keyof typeof PUBLISHED_PORTS;

/** The default base: a row's `hostPort` is its port with this base, so its offset is `hostPort - DEFAULT_VARIANT_BASE_PORT`. */
export const DEFAULT_VARIANT_BASE_PORT = PUBLISHED_PORTS.VARIANT_BASE_PORT.default;

/** The largest offset a row may take (the table's ports stay within this many of the base). */
export const MAX_VARIANT_OFFSET = 98;

/** A published port: the environment's, else `.env`'s, else its default; a bad value is a ConfigError naming the setting. */
export function publishedPort(name: PublishedPort, env: NodeJS.ProcessEnv = process.env, envFile?: string): number {
  const raw = envSetting(name, env, envFile);
  if (raw === undefined) return PUBLISHED_PORTS[name].default;
  const max = name === 'VARIANT_BASE_PORT' ? 65535 - MAX_VARIANT_OFFSET : 65535;
  const port = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(port) || port < 1 || port > max) {
    throw new ConfigError(name, `expected a port from 1 to ${max}, got ${JSON.stringify(raw)}`);
  }
  return port;
}

/** `http://127.0.0.1:<port>` of a published service. */
export function publishedUrl(
  name: Exclude<PublishedPort, 'VARIANT_BASE_PORT'>,
  env?: NodeJS.ProcessEnv,
  envFile?: string,
): string {
  return `http://127.0.0.1:${publishedPort(name, env, envFile)}`;
}

/** A row's offset from the base: its `hostPort` (the port with the default base) less that base. */
export function variantPortOffset(hostPort: number): number {
  return hostPort - DEFAULT_VARIANT_BASE_PORT;
}

/** Where the stack publishes a variant whose row says `hostPort`: VARIANT_BASE_PORT plus the row's offset. */
export function publishedVariantPort(hostPort: number, env?: NodeJS.ProcessEnv, envFile?: string): number {
  return publishedPort('VARIANT_BASE_PORT', env, envFile) + variantPortOffset(hostPort);
}
