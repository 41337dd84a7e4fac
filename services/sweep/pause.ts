// The lab load generator's pause lease: `PUT /pause {"seconds": N}` pauses all of its load (the
// background and the spotlight rotation) for N seconds and is renewed per sweep point, so a
// sweep that dies leaves the lab's load to resume by itself; `DELETE /pause` resumes at once.
// A generator without the endpoint (404) or none at all is said once, and the sweep goes on.

export class LoadgenPause {
  /** Null while pausing works; else why the background load is not paused, said once. */
  problem: string | null = null;
  private active = false;

  constructor(private readonly url: string) {}

  /** Takes or renews the lease; returns a message the first time it cannot. */
  async renew(seconds: number): Promise<string | null> {
    if (this.problem !== null) return null;
    try {
      const response = await fetch(`${this.url}/pause`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ seconds: Math.ceil(seconds) }),
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
      const response = await fetch(`${this.url}/pause`, { method: 'DELETE', signal: AbortSignal.timeout(3000) });
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
