// The run record: where and how a measurement was made, carried by every `lab load --json` (and
// --out file), every sweep file and every report, so that two of them can be compared knowing
// what differed besides the thing measured: the lab's version and commit, Node, the host's CPUs,
// kernel and cgroup version, each target's CPU quota and workers where it says them, the
// scenario or settings, and the start time. One zod schema describes it for its writers and for
// `lab compare`, which reads files it did not write.
//
// The commit comes from LAB_COMMIT when it is set (an image is built without .git: pass
// `--build-arg LAB_COMMIT=$(git rev-parse HEAD)`), else from `git rev-parse HEAD` in the lab's
// own directory when it is a clone; else it is null. `commitSource` says which.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, hostname, release, type } from 'node:os';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CgroupReader } from './cgroup.js';
import { parseExposition, pick } from './exposition.js';

/** The lab's root: dist/services/lab -> ../../.. (package.json, .git). */
const LAB_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const targetRecordSchema = z.object({
  name: z.string(),
  /** Where its /metrics was read (host:port); null: it was not known, so neither is the rest. */
  metrics: z.string().nullable(),
  /** lab_cpu_quota_cores where lab_cpu_quota_limited is 1; null without a quota or where unknown. */
  quotaCores: z.number().nonnegative().nullable(),
  /** lab_cpu_quota_limited: whether a quota was in force; null where unknown. */
  quotaLimited: z.boolean().nullable(),
  /** fib_workers at the end of the run: threads or processes computing (a pool's size); null where unknown. */
  workers: z.number().int().nonnegative().nullable(),
});

export const runRecordSchema = z.object({
  lab: z.object({
    version: z.string(),
    commit: z.string().nullable(),
    commitSource: z.enum(['LAB_COMMIT', 'git']).nullable(),
    /** git only: whether the working tree had changes to tracked files (null: unknown). */
    dirty: z.boolean().nullable(),
  }),
  node: z.string(),
  host: z.object({
    hostname: z.string(),
    cpus: z.number().int().nonnegative(),
    cpuModel: z.string(),
    /** os.type() and os.release(): `Linux 6.1.0-...`. */
    kernel: z.string(),
    cgroup: z.enum(['v1', 'v2']).nullable(),
    /** The recording process's own CPU quota (the generator's), cores; null: none. */
    ownQuotaCores: z.number().nonnegative().nullable(),
  }),
  targets: z.array(targetRecordSchema),
  /** The scenario as run (load) or the settings (sweep), as the command resolved it. */
  scenario: z.unknown(),
  startedAt: z.iso.datetime(),
});

export type TargetRecord = z.infer<typeof targetRecordSchema>;
export type RunRecord = z.infer<typeof runRecordSchema>;

let labCache: RunRecord['lab'] | null = null;

function git(args: string[]): string | null {
  try {
    return execFileSync('git', ['-C', LAB_ROOT, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 3000,
    });
  } catch {
    return null;
  }
}

/** The lab's version (package.json) and commit (LAB_COMMIT, else git, else null). */
export function labIdentity(env: NodeJS.ProcessEnv = process.env): RunRecord['lab'] {
  if (labCache && env === process.env) return labCache;
  let version = 'unknown';
  try {
    version = (JSON.parse(readFileSync(`${LAB_ROOT}package.json`, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    // no package.json beside the code: an unusual install; the version stays unknown
  }
  const given = env.LAB_COMMIT?.trim();
  let identity: RunRecord['lab'];
  if (given) identity = { version, commit: given, commitSource: 'LAB_COMMIT', dirty: null };
  else {
    const commit = git(['rev-parse', 'HEAD'])?.trim() || null;
    const status = commit === null ? null : git(['status', '--porcelain', '--untracked-files=no']);
    identity = { version, commit, commitSource: commit ? 'git' : null, dirty: status === null ? null : status.trim() !== '' };
  }
  if (env === process.env) labCache = identity;
  return identity;
}

/** The host as this process sees it. */
export function hostRecord(): RunRecord['host'] {
  const list = cpus();
  const reader = new CgroupReader();
  return {
    hostname: hostname(),
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    kernel: `${type()} ${release()}`,
    cgroup: reader.version === null ? null : reader.version === 1 ? 'v1' : 'v2',
    ownQuotaCores: reader.quotaCores(),
  };
}

/**
 * A target's quota and workers, read from its /metrics at `metrics` (host:port), as it exports
 * them (docs/protocol.md); every figure null when there is no address or it does not answer in time.
 */
export async function targetRecord(name: string, metrics: string | null | undefined, timeoutMs = 2000): Promise<TargetRecord> {
  const unknown: TargetRecord = { name, metrics: metrics ?? null, quotaCores: null, quotaLimited: null, workers: null };
  if (!metrics) return unknown;
  try {
    const response = await fetch(`http://${metrics}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) return unknown;
    const samples = parseExposition(await response.text());
    const limited = pick(samples, 'lab_cpu_quota_limited');
    const quota = pick(samples, 'lab_cpu_quota_cores');
    const workers = pick(samples, 'fib_workers');
    return {
      ...unknown,
      quotaLimited: limited === null ? null : limited === 1,
      quotaCores: limited === 1 ? quota : null,
      workers: workers === null ? null : Math.round(workers),
    };
  } catch {
    return unknown;
  }
}

export function runRecord(startedAt: Date, targets: TargetRecord[], scenario: unknown): RunRecord {
  return { lab: labIdentity(), node: process.version, host: hostRecord(), targets, scenario, startedAt: startedAt.toISOString() };
}
