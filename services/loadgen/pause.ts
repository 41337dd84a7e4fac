// Pausing load without stopping it. The spotlight measures one variant alone, so the background
// load pauses against that variant only while the rest of the run goes on, and the quota sweep
// takes a lease that pauses everything. Rather than restarting runs (which would reset their
// figures and churn their Prometheus series), every probe loop asks this gate before it sends:
// a paused closed loop hangs up and waits, a paused open loop skips the requests that fall due
// (they are not errors: nobody wanted them sent). The gate also counts the connections each
// target holds, so whoever pauses a target can wait until it is really left alone.

/** Lets the load against some targets, or all of them, pause and resume. */
export class PauseGate {
  private readonly pausedTargets = new Set<string>();
  private everything = false;
  private readonly listeners = new Set<() => void>();
  /** Connections open (or opening) per target, across every run that uses this gate. */
  private readonly held = new Map<string, number>();
  /** Called when a target's last connection closes (kept apart from `listeners`: this happens per request on some targets). */
  private readonly quietListeners = new Set<() => void>();

  isPaused(target: string): boolean {
    return this.everything || this.pausedTargets.has(target);
  }

  get allPaused(): boolean {
    return this.everything;
  }

  pause(target: string): void {
    if (this.pausedTargets.has(target)) return;
    this.pausedTargets.add(target);
    this.changed();
  }

  resume(target: string): void {
    if (this.pausedTargets.delete(target)) this.changed();
  }

  /** Pauses (or resumes) the load against every target at once, whatever each one's own state. */
  setAll(paused: boolean): void {
    if (this.everything === paused) return;
    this.everything = paused;
    this.changed();
  }

  /** Calls `listener` after every change; returns a function that unsubscribes it. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Resolves once `target` may be loaded again, or when `signal` aborts. */
  whenResumed(target: string, signal?: AbortSignal): Promise<void> {
    return this.until(() => !this.isPaused(target), signal);
  }

  /** Resolves once everything may be loaded again (the lease is over), or when `signal` aborts. */
  whenAllResumed(signal?: AbortSignal): Promise<void> {
    return this.until(() => !this.everything, signal);
  }

  /** A connection to `target` is being opened or is open: call the returned function once it is closed. */
  hold(target: string): () => void {
    this.adjustHeld(target, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.adjustHeld(target, -1);
    };
  }

  /** Connections to `target` opened (+) or closed (-) elsewhere: a sending thread holds them (see senders.ts). */
  adjustHeld(target: string, delta: number): void {
    const left = (this.held.get(target) ?? 0) + delta;
    if (left > 0) return void this.held.set(target, left);
    this.held.delete(target);
    if (delta < 0) for (const listener of [...this.quietListeners]) listener();
  }

  /** The targets paused one by one (not counting a pause of everything). */
  get pausedNames(): string[] {
    return [...this.pausedTargets];
  }

  /** Connections held to `target` now. */
  connections(target: string): number {
    return this.held.get(target) ?? 0;
  }

  /**
   * Resolves true once no connection to `target` (no target at all when it is null) is held: the
   * requests in flight when it was paused have come back and their connections are closed;
   * false after `timeoutMs`.
   */
  async quiet(target: string | null, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const idle = () => (target === null ? this.held.size === 0 : this.connections(target) === 0);
    if (idle()) return true;
    const timeout = AbortSignal.timeout(timeoutMs);
    const either = signal ? AbortSignal.any([signal, timeout]) : timeout;
    await this.until(idle, either, this.quietListeners);
    return idle();
  }

  private until(condition: () => boolean, signal?: AbortSignal, listeners = this.listeners): Promise<void> {
    if (condition() || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (condition()) done();
      };
      const done = () => {
        listeners.delete(check);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      listeners.add(check);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
  }
}
