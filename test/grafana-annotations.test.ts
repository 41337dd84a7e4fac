// `lab cpus` and `lab sweep` post annotations to Grafana's HTTP API (services/lab/grafana.ts).
// Grafana cannot run on the test machine, so a small local HTTP server plays the one part of its
// API used here (POST /api/annotations with basic auth: 200 and an id, 401 with a wrong password)
// and records each request; an address nobody listens on plays a Grafana that does not run.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ANNOTATION_TAG, postAnnotation, resetAnnotationDebug } from '../services/lab/grafana.js';
import { freePort } from './helpers.js';

interface Recorded {
  method: string;
  path: string;
  authorization: string | undefined;
  body: { time?: number; tags?: string[]; text?: string };
}

/** Grafana's annotation API as far as the lab uses it: POST /api/annotations, admin's basic auth. */
class GrafanaAnnotationsApi {
  readonly requests: Recorded[] = [];
  private readonly server: Server;

  constructor(private readonly password: string) {
    this.server = createServer((request, response) => {
      let text = '';
      request.on('data', (chunk: Buffer) => (text += chunk.toString()));
      request.on('end', () => {
        this.requests.push({
          method: request.method ?? '',
          path: request.url ?? '',
          authorization: request.headers.authorization,
          body: text ? (JSON.parse(text) as Recorded['body']) : {},
        });
        const expected = `Basic ${Buffer.from(`admin:${this.password}`).toString('base64')}`;
        response.setHeader('content-type', 'application/json');
        if (request.method !== 'POST' || request.url !== '/api/annotations') {
          response.statusCode = 404;
          response.end('{"message":"Not found"}');
        } else if (request.headers.authorization !== expected) {
          response.statusCode = 401;
          response.end('{"message":"Invalid username or password"}');
        } else {
          response.end(JSON.stringify({ message: 'Annotation added', id: this.requests.length }));
        }
      });
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe("annotations on Grafana (lab cpus, lab sweep), against a fake of Grafana's annotation API", () => {
  const grafana = new GrafanaAnnotationsApi('s3cret');
  let port = 0;
  let dir = '';
  /** An .env as make up writes it, with Grafana on `grafanaPort`. */
  const envFile = (lines: string) => {
    const path = join(dir, `env-${Math.random().toString(36).slice(2)}`);
    writeFileSync(path, lines);
    return path;
  };

  before(async () => {
    port = await grafana.listen();
    dir = mkdtempSync(join(tmpdir(), 'lab-annotations-'));
  });
  after(async () => {
    await grafana.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("posts one annotation, tagged, as admin with .env's password, to Grafana on GRAFANA_PORT", async () => {
    const file = envFile(`COMPOSE_PROFILES=grafana\nGRAFANA_PORT=${port}\nGRAFANA_ADMIN_PASSWORD=s3cret\n`);
    const before = Date.now();
    const posted = await postAnnotation('lab cpus: threadpool quota 1', ['lab-cpus', 'threadpool'], { env: {}, envFile: file });
    assert.equal(posted, true, JSON.stringify(grafana.requests));
    const request = grafana.requests.at(-1)!;
    assert.deepEqual([request.method, request.path], ['POST', '/api/annotations']);
    assert.deepEqual(request.body.tags, [ANNOTATION_TAG, 'lab-cpus', 'threadpool']);
    assert.equal(request.body.text, 'lab cpus: threadpool quota 1');
    assert.ok(request.body.time! >= before && request.body.time! <= Date.now(), `time ${request.body.time}`);
  });

  it('takes GRAFANA_URL and the password from the environment over .env', async () => {
    const file = envFile('GRAFANA_PORT=1\nGRAFANA_ADMIN_PASSWORD=wrong\n');
    const count = grafana.requests.length;
    const env = { GRAFANA_URL: `http://127.0.0.1:${port}/`, GRAFANA_ADMIN_PASSWORD: 's3cret' };
    assert.equal(await postAnnotation('lab sweep: eventloop at 1', ['lab-sweep'], { env, envFile: file }), true);
    assert.equal(grafana.requests.length, count + 1);
  });

  it('skips a Grafana that refuses it or does not run, without throwing; one debug line under LAB_DEBUG only', async () => {
    const lines: string[] = [];
    const debug = (line: string) => lines.push(line);
    resetAnnotationDebug();
    const refused = envFile(`GRAFANA_PORT=${port}\nGRAFANA_ADMIN_PASSWORD=wrong\n`);
    assert.equal(await postAnnotation('x', [], { env: {}, envFile: refused, debug }), false, 'a 401');
    assert.deepEqual(lines, [], 'silent without LAB_DEBUG');
    resetAnnotationDebug();
    const nobody = envFile(`GRAFANA_PORT=${await freePort()}\nGRAFANA_ADMIN_PASSWORD=s3cret\n`);
    for (let i = 0; i < 3; i++)
      assert.equal(await postAnnotation('x', [], { env: { LAB_DEBUG: '1' }, envFile: nobody, debug }), false);
    assert.equal(lines.length, 1, `one line: ${lines.join(' | ')}`);
    assert.match(lines[0]!, /^lab: debug: no Grafana annotation: http:\/\/127\.0\.0\.1:\d+ unreachable/);
  });

  it('does not try where Grafana is left out of the lab (COMPOSE_PROFILES without grafana, LAB_NO_GRAFANA)', async () => {
    const count = grafana.requests.length;
    const file = envFile(`COMPOSE_PROFILES=\nGRAFANA_PORT=${port}\nGRAFANA_ADMIN_PASSWORD=s3cret\n`);
    assert.equal(await postAnnotation('x', [], { env: { COMPOSE_PROFILES: 'other' }, envFile: file }), false);
    assert.equal(await postAnnotation('x', [], { env: { LAB_NO_GRAFANA: '1' }, envFile: file }), false);
    assert.equal(grafana.requests.length, count, 'no request');
  });
});
