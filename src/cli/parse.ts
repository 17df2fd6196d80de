import { InvalidArgumentError, type Command } from 'commander';

/** A whole number within bounds, for flags like --keep and --health-timeout. */
export function integerFlag(name: string, min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} takes a whole number, got "${value}".`);
    const parsed = Number(value);
    if (parsed < min || parsed > max) throw new InvalidArgumentError(`${name} must be between ${min} and ${max}, got ${parsed}.`);
    return parsed;
  };
}

/** Seconds, whole or decimal (2, 0.5, 1.25), as the config's timeoutSeconds takes them. */
export function secondsFlag(name: string, min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^\d+(\.\d+)?$/.test(value.trim())) throw new InvalidArgumentError(`${name} takes a number of seconds (2, 0.5), got "${value}".`);
    const parsed = Number(value);
    if (parsed < min || parsed > max) throw new InvalidArgumentError(`${name} must be between ${min} and ${max} seconds, got ${parsed}.`);
    return parsed;
  };
}

/**
 * A flag naming a database, folder or file: an empty value (a script's unset
 * variable, `--database-url "$DATABASE_URL"`) names none, and is refused
 * rather than read as not given (the embedded cluster) or as the working folder.
 */
export function nonEmptyFlag(name: string): (value: string) => string {
  return (value) => {
    if (value.trim() === '') throw new InvalidArgumentError(`${name} was given an empty value.`);
    return value;
  };
}

/**
 * An option that takes one value, given twice with two values (`--to 1
 * --to 2`), is refused naming both: commander would keep the last one
 * without a word. The same value twice is one value.
 */
export function refuseRepeats(command: Command): void {
  for (const option of command.options) {
    if (!(option.required || option.optional) || option.variadic) continue;
    let given: string | undefined;
    command.on(`option:${option.name()}`, (value: string | undefined) => {
      if (value === undefined) return;
      if (given !== undefined && given !== value) {
        command.error(`error: ${option.long ?? option.flags} given twice, as "${given}" and as "${value}": give it once`, { code: 'commander.conflictingOption' });
      }
      given = value;
    });
  }
}
