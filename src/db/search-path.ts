import type { ClientBase } from 'pg';
import { BELAY_SCHEMA } from './belay-schema.js';
import { foldUnquoted } from './ident.js';

/** The entries of a search_path setting, unquoted (an unquoted one folded to lower case, as PostgreSQL reads it), with "$user" replaced by the role. */
export function searchPathEntries(setting: string, user: string): string[] {
  const entries: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < setting.length; i++) {
    const ch = setting[i]!;
    if (ch === '"' && quoted && setting[i + 1] === '"') {
      current += '"';
      i++;
    } else if (ch === '"') {
      quoted = !quoted;
    } else if (ch === ',' && !quoted) {
      entries.push(current);
      current = '';
    } else if (quoted) {
      current += ch;
    } else if (!/\s/.test(ch)) {
      current += foldUnquoted(ch);
    }
  }
  entries.push(current);
  return entries.filter((entry) => entry !== '').map((entry) => (entry === '$user' ? user : entry));
}

/**
 * Where unqualified CREATEs of the revisions would go, once belay's schema
 * exists: the first search_path entry that names an existing schema (or
 * belay's own, which belay creates).
 */
export async function creationSchema(client: ClientBase): Promise<{ role: string; schema: string | undefined }> {
  const { rows } = await client.query<{ role: string; path: string; schemas: string[] }>(
    "SELECT current_user AS role, current_setting('search_path') AS path, array(SELECT nspname::text FROM pg_namespace) AS schemas",
  );
  const { role, path, schemas } = rows[0]!;
  const known = new Set([...schemas, BELAY_SCHEMA]);
  return { role, schema: searchPathEntries(path, role).find((entry) => known.has(entry)) };
}
