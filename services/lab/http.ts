// The small HTTP listener every lab process exposes: Prometheus text on /metrics, a JSON health
// report on /healthz (503 while the process drains or has stopped, so healthchecks see it).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** What /metrics serves: a prom-client Registry, or anything that renders one (cluster). */
export interface MetricsSource {
  metrics(): Promise<string>;
  contentType: string;
}

export interface Health {
  ok: boolean;
  [detail: string]: unknown;
}

/** Answers a request the listener does not know itself; returns false to let it answer 404. */
export type ExtraRoutes = (req: IncomingMessage, res: ServerResponse, path: string) => boolean;

export function createMetricsServer(registry: MetricsSource, health: () => Health, extra?: ExtraRoutes): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (extra?.(req, res, path)) return;
    if (req.method === 'GET' && path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
    } else if (req.method === 'GET' && path === '/healthz') {
      const report = health();
      res.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(report)}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  });
}
