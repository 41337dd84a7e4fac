// What a variant needs beside it in a test, from its row's `backend`: `queue` needs Redis and its
// workers (test/queue/helpers.ts). `startServing` starts the variant with its backend and stops
// both together, so any test can loop over every variant of the table.

import { findVariant } from '../services/variants/index.js';
import { startVariant, type RunningVariant } from './helpers.js';
import { startQueueBackend } from './queue/helpers.js';

export interface Backend {
  /** The variant's environment to reach it (REDIS_URL). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export const BACKENDS: Record<'redis', () => Promise<Backend>> = { redis: startQueueBackend };

/** Starts `lab serve <variant>` with what it needs beside it; stopping it stops the backend too. */
export async function startServing(variant: string, env: Record<string, string> = {}): Promise<RunningVariant> {
  const kind = findVariant(variant)?.backend;
  if (!kind) return startVariant(variant, env);
  const backend = await BACKENDS[kind]();
  let server: RunningVariant;
  try {
    server = await startVariant(variant, { ...env, ...backend.env });
  } catch (error) {
    await backend.stop();
    throw error;
  }
  void server.exited.then(() => backend.stop());
  return server;
}
