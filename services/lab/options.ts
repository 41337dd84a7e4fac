// One way to declare a command's options, for every `lab` command: a spec per option (flag,
// environment variable, default, guard), resolved flag > environment > default by
// resolveOptions, and added to a commander command by addOptions (services/lab/command.ts).
// `lab serve` uses the same machinery for the options a variant adds for itself (its slice,
// declared in its row of the variant table). The CLI collects raw strings (commander reads each
// flag, or its environment variable); tests and child processes pass typed values. Either way
// every value is validated here, once, at start, and every guard's message names the option as
// the user wrote it (flag and variable). Checks across options belong to each command's resolver.

import { ConfigError } from './errors.js';

export interface OptionName {
  flag: string;
  env?: string;
}

/** One option: how it is spelled, its default, and its guard. */
export interface OptionSpec<T> extends OptionName {
  description: string;
  /**
   * The argument's name in --help: `n` reads `<n>`; in brackets (`[yes|no]`) the argument is
   * optional. Absent: a switch, which takes no argument (true when given).
   */
  argument?: string;
  /** The flag may be given several times; the values arrive as a list. */
  repeatable?: boolean;
  default: T;
  /** How the default reads in --help, where the value alone would not say it (null: "the CPU quota"). */
  defaultText?: string;
  /** Validates a raw value (a string from the command line or the environment, or a typed value). */
  parse(value: unknown): T;
}

/** An option that compose sets through .env (`lab serve`'s, a variant's, `lab worker`'s): it has a variable and an argument. */
export type EnvOptionSpec<T> = OptionSpec<T> & { env: string; argument: string };

export type OptionSpecs<O> = { readonly [K in keyof O]: OptionSpec<O[K]> };
export type EnvOptionSpecs<O> = { readonly [K in keyof O]: EnvOptionSpec<O[K]> };

/** Raw values by option: strings (and lists, for a repeatable flag) from the CLI, or typed values. */
export type RawOptions<T> = { [K in keyof T]?: unknown };

/** Whether a raw value counts as given: an empty value counts as unset (`MAX_QUEUE=` in .env), and so does a switch that is off. */
export function isGiven(value: unknown): boolean {
  return value !== undefined && value !== '' && value !== false;
}

/** Merges raw values over each option's default and validates every one; throws ConfigError. */
export function resolveOptions<O>(specs: OptionSpecs<O>, raw: RawOptions<O> = {}): O {
  const resolved = {} as O;
  for (const key of Object.keys(specs) as Array<keyof O>) {
    const spec = specs[key];
    // An empty value counts as unset (`MAX_QUEUE=` in .env, an empty variable from compose).
    resolved[key] = raw[key] === undefined || raw[key] === '' ? spec.default : spec.parse(raw[key]);
  }
  return resolved;
}

/** The defaults of a set of options, as one object. */
export function defaultsOf<O>(specs: OptionSpecs<O>): O {
  return resolveOptions(specs, {});
}

type Bounds = { min: number; max: number };
type Spelling = { flag: string; env?: string; description: string; argument?: string; defaultText?: string };
type EnvSpelling = Spelling & { env: string };

export function intOption(spell: EnvSpelling & Bounds & { default: number }): EnvOptionSpec<number>;
export function intOption(spell: Spelling & Bounds & { default: number }): OptionSpec<number> & { argument: string };
export function intOption(spell: Spelling & Bounds & { default: number }): OptionSpec<number> & { argument: string } {
  return { argument: 'n', ...spell, parse: (value) => int(spell, value, spell.min, spell.max) };
}

/** An integer, or null when unset (an empty string counts as unset, as `POOL_SIZE=` in .env). */
export function optionalIntOption(spell: EnvSpelling & Bounds & { defaultText: string }): EnvOptionSpec<number | null>;
export function optionalIntOption(spell: Spelling & Bounds): OptionSpec<number | null> & { argument: string };
export function optionalIntOption(spell: Spelling & Bounds): OptionSpec<number | null> & { argument: string } {
  return { argument: 'n', ...spell, default: null, parse: (value) => optionalInt(spell, value, spell.min, spell.max) };
}

export function stringOption(spell: EnvSpelling & { default: string }): EnvOptionSpec<string>;
export function stringOption(spell: Spelling & { default: string }): OptionSpec<string> & { argument: string };
export function stringOption(spell: Spelling & { default: string }): OptionSpec<string> & { argument: string } {
  return { argument: 'text', ...spell, parse: (value) => str(spell, value) };
}

/** On with 1/true/yes/on, off with 0/false/no/off or empty. */
export function booleanOption(spell: EnvSpelling & { default: boolean }): EnvOptionSpec<boolean>;
export function booleanOption(spell: Spelling & { default: boolean }): OptionSpec<boolean> & { argument: string };
export function booleanOption(spell: Spelling & { default: boolean }): OptionSpec<boolean> & { argument: string } {
  return { argument: '0|1', ...spell, parse: (value) => bool(spell, value) };
}

/** A flag without an argument (`--json`): true when given, else false. */
export function switchOption(spell: { flag: string; env?: string; description: string }): OptionSpec<boolean> {
  return { ...spell, default: false, parse: (value) => bool(spell, value) };
}

/** How an option appears in messages: `--port (PORT)`. */
export function optionLabel(name: OptionName): string {
  return name.env ? `${name.flag} (${name.env})` : name.flag;
}

export function int(name: OptionName, value: unknown, min: number, max: number): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(optionLabel(name), `expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** An integer, or null when unset (an empty string counts as unset, as `POOL_SIZE=` in .env). */
export function optionalInt(name: OptionName, value: unknown, min: number, max: number): number | null {
  if (value === null || value === undefined || value === '') return null;
  return int(name, value, min, max);
}

export function str(name: OptionName, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError(optionLabel(name), `expected a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value.trim();
}

/**
 * A listen error that says the host is no address of this machine (a name that does not
 * resolve, or an address another machine has), as bad configuration naming `name`; any other
 * error (EADDRINUSE ...) as it is.
 */
export function hostError(error: unknown, name: OptionName, host: string): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NONAME')
    return new ConfigError(optionLabel(name), `cannot listen on ${JSON.stringify(host)}: no such host (${code})`);
  if (code === 'EADDRNOTAVAIL')
    return new ConfigError(optionLabel(name), `cannot listen on ${JSON.stringify(host)}: not an address of this machine`);
  return error;
}

/** On with 1/true/yes/on, off with 0/false/no/off, empty or absent. */
export function bool(name: OptionName, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === undefined || value === null) return false;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : value;
  if (text === '1' || text === 'true' || text === 'yes' || text === 'on') return true;
  if (text === '0' || text === 'false' || text === 'no' || text === 'off' || text === '') return false;
  throw new ConfigError(optionLabel(name), `expected 1 or 0 (true or false), got ${JSON.stringify(value)}`);
}
