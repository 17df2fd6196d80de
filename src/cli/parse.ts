import { InvalidArgumentError } from 'commander';

/** A whole number within bounds, for flags like --keep and --health-timeout. */
export function integerFlag(name: string, min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} takes a whole number, got "${value}".`);
    const parsed = Number(value);
    if (parsed < min || parsed > max) throw new InvalidArgumentError(`${name} must be between ${min} and ${max}, got ${parsed}.`);
    return parsed;
  };
}
