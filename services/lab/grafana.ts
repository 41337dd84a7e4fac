// Annotations on the lab's Grafana: `lab cpus` (a quota change) and `lab sweep` (each point
// measured) POST one to Grafana's HTTP API (POST /api/annotations, tagged `concurrency-lab` and
// what it is about), which every dashboard shows through its built-in annotation query on that
// tag. Grafana is optional (LAB_NO_GRAFANA, or a lab without the `grafana` profile): where it does
// not answer, the annotation is skipped, and only LAB_DEBUG=1 says so, in one line per process.
// The dashboards' `changes(lab_cpu_quota_cores)` annotation still marks a quota change from
// Prometheus alone. Where: GRAFANA_URL, else http://127.0.0.1:$GRAFANA_PORT; who: admin with
// GRAFANA_ADMIN_PASSWORD (the environment first, then .env, as compose reads them).

import { envSetting } from './dotenv.js';
import { publishedUrl } from './ports.js';

/** Every annotation the lab posts carries this tag (the dashboards' annotation query reads it). */
export const ANNOTATION_TAG = 'concurrency-lab';
/** How long a post may take: the command it annotates does not wait for a Grafana that hangs. */
const POST_TIMEOUT_MS = 2000;

export interface AnnotationOptions {
  env?: NodeJS.ProcessEnv;
  envFile?: string;
  /** Where the one debug line goes (stderr by default). */
  debug?: (line: string) => void;
}

let told = false;

/** Where and as whom annotations are posted, or why they are not. */
export function grafanaAccess(
  env: NodeJS.ProcessEnv = process.env,
  envFile?: string,
): { url: string; authorization: string } | { skip: string } {
  const profiles = envSetting('COMPOSE_PROFILES', env, envFile);
  const explicit = envSetting('GRAFANA_URL', env, envFile);
  if (!explicit && (env.LAB_NO_GRAFANA === '1' || (profiles !== undefined && !profiles.split(',').includes('grafana'))))
    return { skip: 'Grafana is not part of this lab (LAB_NO_GRAFANA or COMPOSE_PROFILES)' };
  const password = envSetting('GRAFANA_ADMIN_PASSWORD', env, envFile);
  if (password === undefined) return { skip: 'no GRAFANA_ADMIN_PASSWORD in the environment or .env' };
  const user = envSetting('GRAFANA_ADMIN_USER', env, envFile) ?? 'admin';
  const url = (explicit ?? publishedUrl('GRAFANA_PORT', env, envFile)).replace(/\/$/, '');
  return { url, authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

/**
 * Posts one annotation (now, tagged `concurrency-lab` and `tags`); true once Grafana took it.
 * Never throws: an unreachable or refusing Grafana is skipped (one debug line under LAB_DEBUG).
 */
export async function postAnnotation(text: string, tags: string[], options: AnnotationOptions = {}): Promise<boolean> {
  const env = options.env ?? process.env;
  const skip = (why: string) => {
    if (!told && env.LAB_DEBUG) (options.debug ?? ((line) => console.error(line)))(`lab: debug: no Grafana annotation: ${why}`);
    told = true;
    return false;
  };
  let access: ReturnType<typeof grafanaAccess>;
  try {
    access = grafanaAccess(env, options.envFile);
  } catch (error) {
    return skip((error as Error).message);
  }
  if ('skip' in access) return skip(access.skip);
  try {
    const response = await fetch(`${access.url}/api/annotations`, {
      method: 'POST',
      headers: { authorization: access.authorization, 'content-type': 'application/json' },
      body: JSON.stringify({ time: Date.now(), tags: [ANNOTATION_TAG, ...tags], text }),
      signal: AbortSignal.timeout(POST_TIMEOUT_MS),
    });
    await response.body?.cancel();
    return response.ok ? true : skip(`${access.url}/api/annotations answered ${response.status}`);
  } catch (error) {
    return skip(`${access.url} unreachable (${(error as Error).message})`);
  }
}

/** For tests: the debug line is said again. */
export function resetAnnotationDebug(): void {
  told = false;
}
