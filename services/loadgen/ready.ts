// Before the load starts: wait until every target that names its /metrics address answers its
// /healthz. In compose the load generator starts as soon as the variants have started (a chain of
// health gates would cost a whole healthcheck interval per link), so it is the one that waits
// until they serve; a target that is still down at the deadline is loaded anyway (its requests
// fail with connect_error, which the figures show).

import type { Target } from './options.js';

/** How long the load generator waits for its targets before it starts regardless. */
export const READY_TIMEOUT_MS = 120_000;
const POLL_MS = 250;

/** Resolves with the names of the targets that were still not healthy when `timeoutMs` passed. */
export async function waitForTargets(targets: Target[], timeoutMs = READY_TIMEOUT_MS, signal?: AbortSignal): Promise<string[]> {
  const pending = new Map(targets.filter((t) => t.metrics).map((t) => [t.name, `http://${t.metrics}/healthz`]));
  const deadline = Date.now() + timeoutMs;
  let said = false;
  while (pending.size > 0 && Date.now() < deadline && !signal?.aborted) {
    await Promise.all(
      [...pending].map(async ([name, url]) => {
        const ok = await fetch(url, { signal: AbortSignal.timeout(POLL_MS * 4) }).then(
          (response) => response.ok,
          () => false,
        );
        if (ok) pending.delete(name);
      }),
    );
    if (pending.size === 0) break;
    if (!said) {
      console.error(`loadgen: waiting for ${[...pending.keys()].join(', ')} to answer /healthz`);
      said = true;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (said && pending.size === 0) console.error('loadgen: every target is up');
  return [...pending.keys()];
}
