/** Quote an SQL identifier. Every identifier belay interpolates goes through here. */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new Error('empty SQL identifier');
  if (name.includes('\u0000')) throw new Error('SQL identifier contains a NUL byte');
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quote a possibly schema-qualified name given as separate parts. */
export function quoteQualified(...parts: string[]): string {
  return parts.map(quoteIdent).join('.');
}
