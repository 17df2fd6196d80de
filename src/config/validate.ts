import { usageError } from '../errors.js';

/** Reads one config value at a key path, failing with the path and what was expected. */
export class ConfigReader {
  constructor(private readonly file: string) {}

  fail(path: string, expected: string, got: unknown): never {
    const shown = got === undefined ? 'nothing' : JSON.stringify(got);
    throw usageError(`invalid config ${this.file}: ${path} must be ${expected} (got ${shown})`, {
      hint: 'Fix that key; README.md "Config" lists every key and its default.',
    });
  }

  object(value: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) this.fail(path || 'the config', 'an object', value);
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!allowed.includes(key)) {
        throw usageError(`invalid config ${this.file}: unknown key ${path ? `${path}.` : ''}${key}`, {
          hint: `Known keys${path ? ` of ${path}` : ''}: ${allowed.join(', ')}.`,
        });
      }
    }
    return record;
  }

  optionalObject(value: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
    return value === undefined ? {} : this.object(value, path, allowed);
  }

  string(value: unknown, path: string): string {
    if (typeof value !== 'string' || value.length === 0) this.fail(path, 'a non-empty string', value);
    return value;
  }

  optionalString(value: unknown, path: string): string | undefined {
    return value === undefined ? undefined : this.string(value, path);
  }

  number(value: unknown, path: string, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) this.fail(path, `a number from ${min} to ${max}`, value);
    return value;
  }

  integer(value: unknown, path: string, fallback: number, min: number, max: number): number {
    const n = this.number(value, path, fallback, min, max);
    if (!Number.isInteger(n)) this.fail(path, `a whole number from ${min} to ${max}`, value);
    return n;
  }

  oneOf<T extends string>(value: unknown, path: string, choices: readonly T[], fallback: T): T {
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !choices.includes(value as T)) this.fail(path, `one of ${choices.map((c) => `"${c}"`).join(', ')}`, value);
    return value as T;
  }

  array(value: unknown, path: string): unknown[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) this.fail(path, 'a list', value);
    return value;
  }

  strings(value: unknown, path: string, fallback: string[]): string[] {
    if (value === undefined) return fallback;
    return this.array(value, path).map((item, i) => this.string(item, `${path}[${i}]`));
  }

  stringMap(value: unknown, path: string): Record<string, string> {
    if (value === undefined) return {};
    if (value === null || typeof value !== 'object' || Array.isArray(value)) this.fail(path, 'an object of strings', value);
    const out: Record<string, string> = {};
    for (const [key, item] of Object.entries(value)) out[key] = this.string(item, `${path}.${key}`);
    return out;
  }
}
