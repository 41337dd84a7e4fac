// The lab load generator's pause lease: `PUT /pause {"seconds": N}` pauses all of its load (the
// background and the spotlight rotation) for N seconds and is renewed per sweep point, so a
// sweep that dies leaves the lab's load to resume by itself; `DELETE /pause` resumes at once.
// A generator without the endpoint (404) or none at all is said once, and the sweep goes on.
// Both routes need the lab's control token (LOADGEN_TOKEN): from the environment, else from the
// .env of the current directory (where `make up` writes a fresh one).

import { join } from 'node:path';
import { LOAD_LIMITS } from '../loadgen/limits.js';
import { readEnvFile } from '../quota/env.js';

/** The load generator's control token: LOADGEN_TOKEN from the environment, else from ./.env; null when neither has one. */
export function loadgenToken(envFile = join(process.cwd(), '.env')): string | null {
  const token = process.env.LOADGEN_TOKEN || readEnvFile(envFile).LOADGEN_TOKEN;
  return token ? token : null;
}

/** The header that carries the control token, or none without one. */
export function controlHeaders(token: string | null = loadgenToken()): Record<string, string> {
  return token === null ? {} : { authorization: `Bearer ${token}` };
}

export class LoadgenPause {
  /** Null while pausing works; else why the background load is not paused, said once. */
  problem: string | null = null;
  private active = false;

  constructor(
    private readonly url: string,
    private readonly token: string | null = loadgenToken(),
  ) {}

  private get headers(): Record<string, string> {
    return controlHeaders(this.token);
  }

  /** Takes or renews the lease; returns a message the first time it cannot. */
  async renew(seconds: number): Promise<string | null> {
    if (this.problem !== null) return null;
    try {
      const response = await fetch(`${this.url}/pause`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...this.headers },
        // Within the lease the generator grants; renewed per point, so a longer one is never needed.
        body: JSON.stringify({ seconds: Math.min(LOAD_LIMITS.pauseSeconds.max, Math.max(1, Math.ceil(seconds))) }),
        signal: AbortSignal.timeout(3000),
      });
      await response.body?.cancel();
      if (response.ok) {
        const first = !this.active;
        this.active = true;
        return first ? `background load paused (lease on ${this.url}/pause, renewed per point)` : null;
      }
      this.problem =
        response.status === 404 || response.status === 405
          ? 'background load not paused: loadgen has no /pause'
          : response.status === 401
            ? `background load not paused: PUT ${this.url}/pause answered 401: ${this.token === null ? 'no' : 'a wrong'} control token (LOADGEN_TOKEN, from the environment or ./.env)`
            : `background load not paused: PUT ${this.url}/pause answered ${response.status}`;
    } catch (error) {
      this.problem = `background load not paused: no load generator at ${this.url} (${reason(error)})`;
    }
    return this.problem;
  }

  /** Ends the lease (the load resumes now); quiet when there is none. */
  async end(): Promise<void> {
    if (!this.active) return;
    this.active = false;
    try {
      const response = await fetch(`${this.url}/pause`, {
        method: 'DELETE',
        headers: this.headers,
        signal: AbortSignal.timeout(3000),
      });
      await response.body?.cancel();
    } catch {
      // The lease runs out by itself.
    }
  }
}

/** fetch's TypeError says only `fetch failed`; its cause says why (ECONNREFUSED ...). */
function reason(error: unknown): string {
  const cause = (error as Error).cause;
  return cause instanceof Error ? cause.message : (error as Error).message;
}
