// Which CPython runs the variants written in Python (rows with runtime `python`, services/variants/py-*):
// the one named by --python (LAB_PYTHON); else the python3 on the PATH if it can import
// prometheus_client; else Debian's /usr/bin/python3 (python3-prometheus-client). None that can:
// a configuration error naming the option and the package to install.

import { spawnSync } from 'node:child_process';
import { ConfigError } from '../lab/errors.js';
import { optionLabel, stringOption, type EnvOptionSpec } from '../lab/options.js';

export const pythonOption: EnvOptionSpec<string> = stringOption({
  flag: '--python',
  env: 'LAB_PYTHON',
  argument: 'path',
  description: 'the python3 that runs the Python variants; it must import prometheus_client',
  default: '',
});
pythonOption.defaultText = 'python3 on the PATH if it imports prometheus_client, else /usr/bin/python3';

/** Where to look when --python is not given, in order. */
export const PYTHON_CANDIDATES = ['python3', '/usr/bin/python3'];

const INSTALL = 'apt-get install python3-prometheus-client (or pip install prometheus-client)';

function canImportClient(python: string): boolean {
  const result = spawnSync(python, ['-c', 'import prometheus_client'], { stdio: 'ignore', timeout: 20_000 });
  return result.status === 0;
}

/**
 * The python3 to run: `chosen` (the option's value) when given, checked; else the first
 * candidate that imports prometheus_client. `note` hears when the PATH's python3 was passed over.
 */
export function choosePython(chosen: string, note: (line: string) => void = () => {}): string {
  const label = optionLabel(pythonOption);
  if (chosen !== '') {
    if (canImportClient(chosen)) return chosen;
    throw new ConfigError(label, `${chosen} cannot run \`import prometheus_client\`: ${INSTALL}, or name a python3 that can`);
  }
  for (const [i, candidate] of PYTHON_CANDIDATES.entries()) {
    if (!canImportClient(candidate)) continue;
    if (i > 0) note(`python3 on the PATH cannot import prometheus_client: using ${candidate}`);
    return candidate;
  }
  throw new ConfigError(
    label,
    `no python3 here can import prometheus_client (tried ${PYTHON_CANDIDATES.join(', ')}): ${INSTALL}, or name one that can`,
  );
}
