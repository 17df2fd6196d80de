import { maskCredentials, secretSpellings } from '../db/secret-forms.js';

/**
 * Replace every secret inside a printed or logged value, however deep: each
 * known secret in every spelling (plain, percent-encoded, JSON-escaped), and
 * whatever stands in a URL's or connection string's password place, known or not.
 */
export function scrub<T>(value: T, secrets: readonly string[]): T {
  return scrubWith(value, secrets.filter((secret) => secret.length > 0).flatMap(secretSpellings));
}

function scrubWith<T>(value: T, spellings: readonly string[]): T {
  if (typeof value === 'string') {
    let text: string = value;
    for (const spelling of spellings) text = text.replaceAll(spelling, '***');
    return maskCredentials(text) as T;
  }
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => scrubWith(item, spellings)) as T;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = scrubWith(item, spellings);
  return out as T;
}
