import { usageError } from '../errors.js';

/**
 * Find the revision a user means by its number ("0022" or "22"), its full
 * name, or a unique prefix of the name.
 */
export function resolveRevisionName(query: string, names: readonly string[], flag = '--to'): string {
  const exact = names.find((name) => name === query);
  if (exact) return exact;
  if (/^\d+$/.test(query)) {
    const byNumber = names.filter((name) => Number(name.split('_')[0]) === Number(query));
    if (byNumber.length === 1) return byNumber[0]!;
  }
  const byPrefix = names.filter((name) => name.startsWith(query));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) {
    throw usageError(`${flag} ${query} is ambiguous: it matches ${byPrefix.join(', ')}`, {
      hint: 'Give more of the name.',
    });
  }
  const known = names.length > 0 ? `known revisions: ${names[0]} … ${names[names.length - 1]}` : 'no revisions are known';
  throw usageError(`${flag} ${query} names no revision (${known})`, {
    hint: 'Run `belay status` to list revisions.',
  });
}

/**
 * A revision, or null for `0` (any run of zeros that names no revision):
 * before the first revision, as in `rollback --to 0`, `plan --to 0` and
 * `rehearse --from 0`.
 */
export function resolveRevisionOrStart(query: string, names: readonly string[], flag = '--to'): string | null {
  if (/^0+$/.test(query) && !names.some((name) => Number(name.split('_')[0]) === 0)) return null;
  return resolveRevisionName(query, names, flag);
}
