import { usageError } from '../errors.js';

/** Quote an SQL identifier. Every identifier belay interpolates goes through here. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\u0000')) {
    throw usageError(`${name.length === 0 ? 'an empty' : 'a NUL byte in a'} name where PostgreSQL needs an identifier`, {
      hint: 'Check the database, role, schema and table names in the connection settings and the config.',
    });
  }
  return `"${name.replaceAll('"', '""')}"`;
}

/** An unquoted identifier as PostgreSQL reads it: ASCII letters folded to lower case (its downcase_identifier), the rest as written. */
export const foldUnquoted = (name: string): string => name.replace(/[A-Z]/g, (upper) => upper.toLowerCase());

/** Quote a possibly schema-qualified name given as separate parts. */
export function quoteQualified(...parts: string[]): string {
  return parts.map(quoteIdent).join('.');
}
