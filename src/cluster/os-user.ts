import { readFileSync } from 'node:fs';

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
  if (!user) throw new Error('running as root, and neither a "postgres" nor a "nobody" account exists to run the server');
  return user;
}
