// Writes the generated dashboards into grafana/dashboards/ (`make dashboards`), or with
// --check exits 1 when a committed file differs from what the generator produces.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DASHBOARDS, renderDashboard } from './dashboards.js';

/** grafana/dashboards/, from dist/grafana/src/ or grafana/src/. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../../grafana/dashboards/', import.meta.url));

function main(args: string[]): number {
  const check = args.includes('--check');
  let stale = 0;
  for (const spec of DASHBOARDS) {
    const path = `${DASHBOARD_DIR}${spec.file}`;
    const wanted = renderDashboard(spec);
    let current: string | null = null;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      // not written yet
    }
    if (current === wanted) continue;
    if (check) {
      console.error(`${spec.file} differs from the generator: run 'make dashboards' and commit it`);
      stale += 1;
    } else {
      writeFileSync(path, wanted);
      console.log(`wrote ${path}`);
    }
  }
  return stale === 0 ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
