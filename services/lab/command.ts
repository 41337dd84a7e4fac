// Option specs (options.ts) as commander options: one loop for every `lab` command. Each spec
// becomes a flag with its argument, its environment variable and its default in --help; what
// commander read comes back as raw values by key (flag over variable; the default is the
// resolver's, applied by resolveOptions), with the keys given on the command line itself.

import { Option, type Command } from 'commander';
import type { OptionSpec, RawOptions } from './options.js';

/** What a command's action receives: the raw values by key, and which were given as flags (not from the environment). */
export interface ReadOptions<O> {
  raw: RawOptions<O>;
  given: Set<keyof O>;
}

/** The help line's default: the spec's own text, or the value where it says something (not a list, not null, not a switch's false). */
function defaultHelp(spec: OptionSpec<unknown>): string {
  if (spec.defaultText !== undefined) return ` (default: ${spec.defaultText})`;
  const value = spec.default;
  if (spec.argument !== undefined && (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'))
    return ` (default: ${String(value)})`;
  return '';
}

/**
 * Adds every spec to `command` as a commander option; returns how to read them back in the
 * command's action. `note` adds text after an option's help (`lab serve`: the variants that have it).
 */
export function addOptions<O>(
  command: Command,
  specs: Iterable<[keyof O & string, OptionSpec<unknown>]>,
  note: (key: keyof O & string) => string = () => '',
): (parsed: Record<string, unknown>) => ReadOptions<O> {
  const attributes = new Map<keyof O & string, string>();
  for (const [key, spec] of specs) {
    const argument =
      spec.argument === undefined ? '' : spec.argument.startsWith('[') ? ` ${spec.argument}` : ` <${spec.argument}>`;
    const option = new Option(`${spec.flag}${argument}`, `${spec.description}${defaultHelp(spec)}${note(key)}`);
    if (spec.env !== undefined) option.env(spec.env);
    if (spec.repeatable) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    command.addOption(option);
    attributes.set(key, option.attributeName());
  }
  return (parsed) => {
    const raw: RawOptions<O> = {};
    const given = new Set<keyof O>();
    for (const [key, attribute] of attributes) {
      raw[key] = parsed[attribute];
      if (command.getOptionValueSource(attribute) === 'cli') given.add(key);
    }
    return { raw, given };
  };
}

/** The entries of a spec object, typed by its keys (for addOptions). */
export function specEntries<O>(specs: { readonly [K in keyof O]: OptionSpec<O[K]> }): Array<
  [keyof O & string, OptionSpec<unknown>]
> {
  return Object.entries(specs) as Array<[keyof O & string, OptionSpec<unknown>]>;
}
