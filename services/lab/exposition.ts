// Reads samples out of Prometheus's text exposition format: the lab's one reader, for `lab cpus`,
// `lab ps` and `lab sweep`, the spotlight (a variant's quota and workers from its own /metrics)
// and the tests. Why by hand: prom-client only writes the format. Small but whole: label values
// with escaped quotes, backslashes and newlines, a `}` or `,` inside a value, +Inf/-Inf/NaN,
// comments, timestamps. A line it cannot read is skipped (a page is read for a few series).

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const NUMBER = /^[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)$/;

/** Every sample of a page, in order. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseLine(line);
    if (sample) samples.push(sample);
  }
  return samples;
}

/** One sample line (`name{a="b",...} value [timestamp]`), or null when it is not one. */
function parseLine(line: string): Sample | null {
  const name = NAME.exec(line)?.[0];
  if (name === undefined) return null;
  let at = name.length;
  const labels: Record<string, string> = {};
  if (line[skipSpaces(line, at)] === '{') {
    at = skipSpaces(line, at);
    at += 1;
    for (;;) {
      at = skipSpaces(line, at);
      if (line[at] === '}') break;
      const key = LABEL_NAME.exec(line.slice(at))?.[0];
      if (key === undefined) return null;
      at = skipSpaces(line, at + key.length);
      if (line[at] !== '=') return null;
      at = skipSpaces(line, at + 1);
      if (line[at] !== '"') return null;
      let value = '';
      for (at += 1; at < line.length && line[at] !== '"'; at += 1) {
        if (line[at] === '\\' && at + 1 < line.length) {
          at += 1;
          value += line[at] === 'n' ? '\n' : line[at];
        } else {
          value += line[at];
        }
      }
      if (line[at] !== '"') return null;
      labels[key] = value;
      at = skipSpaces(line, at + 1);
      if (line[at] === ',') at += 1;
      else if (line[at] !== '}') return null;
    }
    at += 1;
  }
  if (at < line.length && line[at] !== ' ' && line[at] !== '\t') return null;
  const [valueText, timestamp, ...rest] = line.slice(at).trim().split(/\s+/);
  if (valueText === undefined || rest.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) return null;
  const value = parseValue(valueText);
  return value === null ? null : { name, labels, value };
}

function skipSpaces(line: string, at: number): number {
  while (line[at] === ' ' || line[at] === '\t') at += 1;
  return at;
}

function parseValue(text: string): number | null {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  return NUMBER.test(text) ? Number(text) : null;
}

/** The value of the first sample named `name` whose labels include `labels`, or null. */
export function pick(samples: Sample[], name: string, labels: Record<string, string> = {}): number | null {
  const found = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found === undefined ? null : found.value;
}
