import { usageError } from '../errors.js';

/**
 * Find the revision a user means by its number ("0022" or "22"), its full
 * name, or a unique prefix of the name. An empty argument names nothing.
 * A run of zeros is read like any other argument: revision number 0 when one
 * exists, else a prefix (`00` is ambiguous among 0001…0009); only `0` itself
 * means "before the first revision", and only where that is accepted
 * (resolveRevisionOrStart).
 */
export function resolveRevisionName(query: string, names: readonly string[], flag = '--to'): string {
  if (query.trim() === '') {
    throw usageError(`${flag} was given an empty revision`, {
      hint: `Name a revision by its number (0022), its full name or a unique prefix${flag === '--to' || flag === '--from' ? `; \`${flag} 0\` means before the first revision where the command accepts it` : ''}.`,
    });
  }
  const exact = names.find((name) => name === query);
  if (exact) return exact;
  const byPrefix = names.filter((name) => name.startsWith(query));
  if (/^\d+$/.test(query)) {
    const byNumber = names.filter((name) => Number(name.split('_')[0]) === Number(query));
    // `002` among 0002 and 0020…0029: zero-padded, but a digit short of either, so neither is taken for it (a rollback
    // too deep, or not deep enough); `1` among 1, 10 and 11 is a number as written
    const padded = byNumber.length === 1 && query.length > 1 && query.startsWith('0') && query.length < byNumber[0]!.split('_')[0]!.length;
    const alsoPrefix = padded ? byPrefix.filter((name) => name !== byNumber[0]) : [];
    if (alsoPrefix.length > 0) {
      throw usageError(`${flag} ${query} is ambiguous: revision number ${Number(query)} is ${byNumber[0]}, and it begins ${alsoPrefix.join(', ')}`, {
        hint: `Give the number in full (${byNumber[0]!.split('_')[0]}) or more of the name.`,
      });
    }
    if (byNumber.length === 1) return byNumber[0]!;
  }
  // `00`, `000`: not the documented `0`, so never "every revision"; say which spelling that is
  const zeros = /^0+$/.test(query) && query !== '0' ? ` (\`${flag} 0\`, exactly, means before the first revision where the command accepts it)` : '';
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) {
    throw usageError(`${flag} ${query} is ambiguous: it matches ${byPrefix.join(', ')}`, {
      hint: `Give more of the name${zeros}.`,
    });
  }
  const known = names.length > 0 ? `known revisions: ${names[0]} … ${names[names.length - 1]}` : 'no revisions are known';
  throw usageError(`${flag} ${query} names no revision (${known})`, {
    hint: `Run \`belay status\` to list revisions${zeros}.`,
  });
}

/**
 * A revision, or null for `0` exactly (when no revision is numbered 0):
 * before the first revision, as in `rollback --to 0`, `plan --to 0` and
 * `rehearse --from 0`. Any other spelling (`00`, `0000`, an empty one) is
 * resolved as a revision, so reverting everything never comes from an
 * argument that only looks like 0.
 */
export function resolveRevisionOrStart(query: string, names: readonly string[], flag = '--to'): string | null {
  if (query === '0' && !names.some((name) => Number(name.split('_')[0]) === 0)) return null;
  return resolveRevisionName(query, names, flag);
}
