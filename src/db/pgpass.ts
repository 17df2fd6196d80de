import { readFile, stat } from 'node:fs/promises';

interface PgpassTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** Split one passfile line on unescaped colons, unescaping `\:` and `\\`. */
function splitFields(line: string): string[] {
  const fields: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '\\' && i + 1 < line.length) {
      current += line[++i];
    } else if (ch === ':') {
      fields.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  fields.push(current);
  return fields;
}

const matches = (pattern: string, value: string): boolean => pattern === '*' || pattern === value;

/** The password libpq would take from a .pgpass file, or undefined. */
export async function findPgpassPassword(file: string, target: PgpassTarget): Promise<string | undefined> {
  let text: string;
  try {
    const info = await stat(file);
    // libpq ignores a passfile readable by group or others; so do we.
    if (!info.isFile() || (info.mode & 0o077) !== 0) return undefined;
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  // libpq matches a Unix-socket connection against the host name "localhost".
  const host = target.host.startsWith('/') ? 'localhost' : target.host;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) continue;
    const fields = splitFields(line);
    if (fields.length < 5) continue;
    const [h, p, d, u, ...rest] = fields as [string, string, string, string, ...string[]];
    if (matches(h, host) && matches(p, String(target.port)) && matches(d, target.database) && matches(u, target.user)) {
      return rest.join(':');
    }
  }
  return undefined;
}
