// The lab's one reader of Prometheus's text format (services/lab/exposition.ts), on pages
// prom-client writes and on the corners of the format its callers could meet.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry, Gauge, Histogram } from 'prom-client';
import { parseExposition, pick } from '../services/lab/exposition.js';

describe('parseExposition', () => {
  it('reads a page prom-client writes, label values with quotes, backslashes and newlines included', async () => {
    const registry = new Registry();
    const gauge = new Gauge({
      name: 'demo_value',
      help: 'a "help" line with } and ,',
      labelNames: ['path'],
      registers: [registry],
    });
    const odd = 'a "quoted" \\ back\nslash, {braced}';
    gauge.set({ path: odd }, 2.5);
    gauge.set({ path: 'plain' }, -1e-3);
    const histogram = new Histogram({ name: 'demo_seconds', help: 'h', buckets: [0.1], registers: [registry] });
    histogram.observe(0.05);
    const samples = parseExposition(await registry.metrics());
    assert.equal(pick(samples, 'demo_value', { path: odd }), 2.5);
    assert.equal(pick(samples, 'demo_value', { path: 'plain' }), -0.001);
    assert.equal(pick(samples, 'demo_seconds_bucket', { le: '+Inf' }), 1);
    assert.equal(pick(samples, 'demo_seconds_count'), 1);
    assert.equal(samples.filter((s) => s.name.startsWith('demo_')).length, 2 + 2 + 2);
  });

  it('reads +Inf, -Inf and NaN, a timestamp, no labels and empty braces; skips comments and broken lines', () => {
    const page = [
      '# HELP up whether it answers',
      '# TYPE up gauge',
      'up 1 1700000000000',
      'inf_value +Inf',
      'minus_inf{a="b"} -Inf',
      'not_a_number{} NaN',
      '  spaced { a = "1" , b="2", }   3  ',
      'broken{a="unterminated} 1',
      'bad_value{a="1"} fast',
      'two_values 1 2 3',
      '9starts_with_a_digit 1',
      '',
    ].join('\n');
    const samples = parseExposition(page);
    assert.deepEqual(
      samples.map((s) => [s.name, s.labels, s.value]),
      [
        ['up', {}, 1],
        ['inf_value', {}, Infinity],
        ['minus_inf', { a: 'b' }, -Infinity],
        ['not_a_number', {}, NaN],
        ['spaced', { a: '1', b: '2' }, 3],
      ],
    );
  });

  it('picks the first sample whose labels include the ones asked, or null', () => {
    const samples = parseExposition('x{a="1",b="2"} 5\nx{a="1",b="3"} 6\n');
    assert.equal(pick(samples, 'x', { b: '3' }), 6);
    assert.equal(pick(samples, 'x', { a: '1' }), 5);
    assert.equal(pick(samples, 'x', { a: '2' }), null);
    assert.equal(pick(samples, 'y'), null);
  });
});
