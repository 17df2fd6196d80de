import type { ClientBase } from 'pg';
import { quoteIdent } from './ident.js';

/** Longest database name PostgreSQL keeps (NAMEDATALEN - 1). */
const MAX_NAME = 63;

/** A database name made of a base and a suffix, cut so the suffix survives. */
export function derivedName(base: string, suffix: string): string {
  return `${base.slice(0, MAX_NAME - suffix.length - 1)}_${suffix}`;
}

export async function databaseExists(client: ClientBase, name: string): Promise<boolean> {
  const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return (rowCount ?? 0) > 0;
}

export async function createDatabase(client: ClientBase, name: string, options: { template?: string; owner?: string } = {}): Promise<void> {
  const template = options.template ? ` TEMPLATE ${quoteIdent(options.template)}` : '';
  const owner = options.owner ? ` OWNER ${quoteIdent(options.owner)}` : '';
  await client.query(`CREATE DATABASE ${quoteIdent(name)}${template}${owner}`);
}

export async function dropDatabase(client: ClientBase, name: string): Promise<void> {
  await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
}

export async function renameDatabase(client: ClientBase, from: string, to: string): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
}

export async function setAllowConnections(client: ClientBase, name: string, allow: boolean): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdent(name)} WITH ALLOW_CONNECTIONS ${allow ? 'true' : 'false'}`);
}

/** End every other session on `name`; returns how many there were. */
export async function terminateSessions(client: ClientBase, name: string): Promise<number> {
  const { rows } = await client.query<{ ended: boolean }>(
    'SELECT pg_terminate_backend(pid, 5000) AS ended FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [name],
  );
  return rows.length;
}

export async function databaseOwner(client: ClientBase, name: string): Promise<string | undefined> {
  const { rows } = await client.query<{ owner: string }>(
    'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
    [name],
  );
  return rows[0]?.owner;
}

/** Whether the connected role may create databases (needed by the swap restore). */
export async function canCreateDatabases(client: ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    'SELECT rolcreatedb OR rolsuper AS ok FROM pg_roles WHERE rolname = current_user',
  );
  return rows[0]?.ok === true;
}

export async function setDatabaseOwner(client: ClientBase, name: string, owner: string): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdent(name)} OWNER TO ${quoteIdent(owner)}`);
}
