import { readFileSync } from 'node:fs';
import { usageError } from '../errors.js';

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** Look a user up in /etc/passwd (Node has no getpwnam). */
export function lookupUser(name: string): OsUser | undefined {
  let text: string;
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/**
 * initdb and postgres refuse to run as root. When belay runs as root, the
 * server runs as this unprivileged account instead; otherwise as ourselves.
 */
export function serverUser(): OsUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const user = lookupUser('postgres') ?? lookupUser('nobody');
  if (!user) {
    throw usageError('running as root, and neither a "postgres" nor a "nobody" account exists to run the PostgreSQL server as (initdb and postgres refuse root)', {
      hint: 'Create one (useradd --system postgres), run belay as an ordinary user, or connect to a server with --database-url or DATABASE_URL.',
    });
  }
  return user;
}
