// The lab's error codes. Each code is a stable identifier: it is what a server writes after
// `error: ` on the wire, what the load generator records for a failed request, and the `outcome`
// label of the request counters on both sides. Add codes here, never inline.

/** Codes a server sends (docs/protocol.md). */
export const SERVER_ERROR_CODES = [
  'bad_request',
  'out_of_range',
  'line_too_long',
  'line_timeout',
  'input_overflow',
  'overloaded',
  'unavailable',
  'internal',
] as const;
export type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number];

/** Codes only a client observes: no server sends them. */
export const CLIENT_ERROR_CODES = [
  'timeout', // no reply within the request timeout
  'connect_error', // the connection could not be opened
  'closed', // the server closed the connection before replying
  'bad_reply', // a reply line the protocol does not define
] as const;
export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

/** The `outcome` label of request counters. */
export type Outcome = 'ok' | ServerErrorCode | ClientErrorCode;

export function isServerErrorCode(code: string): code is ServerErrorCode {
  return (SERVER_ERROR_CODES as readonly string[]).includes(code);
}

/** A request failed with a code the client will see as `error: <code> <message>`. */
export class RequestError extends Error {
  constructor(
    readonly code: ServerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

/** Bad configuration: names the option, as the user would write it, in its message. */
export class ConfigError extends Error {
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(`invalid ${option}: ${message}`);
    this.name = 'ConfigError';
  }
}
