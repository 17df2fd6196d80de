import { escapeLiteral, type ClientBase } from 'pg';
import { errorMessage } from '../errors.js';
import { quoteIdent } from './ident.js';
import { SQLSTATE, sqlstateOf } from './sqlstate.js';

/** Longest database name PostgreSQL keeps, in bytes (NAMEDATALEN - 1); a longer one it cuts without an error. */
const MAX_NAME = 63;

/** The databases a session that creates, drops or renames others connects to, in this order (createdb's). */
export const MAINTENANCE_DATABASES = ['postgres', 'template1'] as const;

/**
 * A database name made of a base and a suffix, the base cut so the suffix
 * survives: to whole characters of at most 63 bytes in all (UTF-8), or the
 * server would cut the suffix and the name belay reports would not exist.
 */
export function derivedName(base: string, suffix: string): string {
  let room = MAX_NAME - Buffer.byteLength(suffix) - 1;
  let kept = '';
  for (const char of base) {
    room -= Buffer.byteLength(char);
    if (room < 0) break;
    kept += char;
  }
  return `${kept}_${suffix}`;
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

/** What a database is made with that its dump does not carry; read from pg_database, by what the server has. */
export interface DatabaseProperties {
  encoding: string;
  collate: string;
  ctype: string;
  /** `c` libc, `i` icu, `b` builtin (PostgreSQL 17); null before PostgreSQL 15. */
  provider: string | null;
  /** The ICU (or builtin) locale. */
  locale: string | null;
  icuRules: string | null;
  connectionLimit: number;
  /** null when it is template0's, which every role may create in. */
  tablespace: string | null;
  comment: string | null;
}

export async function databaseProperties(client: ClientBase, name: string, serverVersionNum: number): Promise<DatabaseProperties | undefined> {
  const provider = serverVersionNum >= 150000 ? 'd.datlocprovider::text' : 'NULL';
  const locale = serverVersionNum >= 170000 ? 'd.datlocale' : serverVersionNum >= 150000 ? 'd.daticulocale' : 'NULL';
  const icuRules = serverVersionNum >= 160000 ? 'd.daticurules' : 'NULL';
  const { rows } = await client.query<DatabaseProperties>(
    `SELECT pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate, d.datctype AS ctype,
            ${provider} AS provider, ${locale} AS locale, ${icuRules} AS "icuRules", d.datconnlimit AS "connectionLimit",
            NULLIF(t.spcname, (SELECT s.spcname FROM pg_database z JOIN pg_tablespace s ON s.oid = z.dattablespace WHERE z.datname = 'template0')) AS tablespace,
            shobj_description(d.oid, 'pg_database') AS comment
       FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace
      WHERE d.datname = $1`,
    [name],
  );
  return rows[0];
}

const PROVIDERS: Record<string, { name: string; locale: string }> = { c: { name: 'libc', locale: '' }, i: { name: 'icu', locale: 'ICU_LOCALE' }, b: { name: 'builtin', locale: 'BUILTIN_LOCALE' } };

/**
 * A new, empty database (from template0) with what `like` was made with:
 * encoding, locales and their provider, tablespace, comment. Its connection
 * limit is set apart (`setConnectionLimit`): a restore into it needs sessions.
 */
export async function createDatabaseLike(client: ClientBase, name: string, like: DatabaseProperties): Promise<void> {
  const options = [`TEMPLATE template0 ENCODING ${escapeLiteral(like.encoding)} LC_COLLATE ${escapeLiteral(like.collate)} LC_CTYPE ${escapeLiteral(like.ctype)}`];
  const provider = like.provider === null ? undefined : PROVIDERS[like.provider];
  if (provider) options.push(`LOCALE_PROVIDER ${provider.name}`);
  if (provider?.locale && like.locale !== null) options.push(`${provider.locale} ${escapeLiteral(like.locale)}`);
  if (like.icuRules !== null) options.push(`ICU_RULES ${escapeLiteral(like.icuRules)}`);
  if (like.tablespace !== null) options.push(`TABLESPACE ${quoteIdent(like.tablespace)}`);
  await client.query(`CREATE DATABASE ${quoteIdent(name)} ${options.join(' ')}`);
  if (like.comment !== null) await client.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${escapeLiteral(like.comment)}`);
}

export async function setConnectionLimit(client: ClientBase, name: string, limit: number): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdent(name)} WITH CONNECTION LIMIT ${Math.trunc(limit)}`);
}

export async function dropDatabase(client: ClientBase, name: string): Promise<void> {
  try {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  } catch (error) {
    // FORCE checks the right to end every session there, an autovacuum worker's too, which only a superuser
    // may end; a plain DROP DATABASE cancels autovacuum itself once the other sessions are gone
    if (sqlstateOf(error) !== SQLSTATE.insufficientPrivilege) throw error;
    await terminateSessions(client, name);
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
  }
}

/**
 * Rename a database, on disk when this returns: a swap restore goes on (its
 * hook, its report) as if the restored copy were the database, so a server
 * whose commits are asynchronous (synchronous_commit = off) must not lose the
 * rename in a crash right after. Its commit also flushes what came before it,
 * the restored copy's rows among it.
 */
export async function renameDatabase(client: ClientBase, from: string, to: string): Promise<void> {
  await client.query(`BEGIN; SET LOCAL synchronous_commit = on; ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}; COMMIT`).catch(async (error: unknown) => {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  });
}

export async function setAllowConnections(client: ClientBase, name: string, allow: boolean): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdent(name)} WITH ALLOW_CONNECTIONS ${allow ? 'true' : 'false'}`);
}

/**
 * End every other session on `name`; returns how many there were.
 * Autovacuum workers (no role) are left to ALTER DATABASE, which cancels
 * them itself. (backend_type is hidden from a non-superuser for other roles'
 * sessions, so the role is what tells them apart.)
 */
export async function terminateSessions(client: ClientBase, name: string): Promise<number> {
  const { rows } = await client.query<{ ended: boolean }>(
    `SELECT pg_terminate_backend(pid, 5000) AS ended FROM pg_stat_activity
      WHERE datname = $1 AND pid <> pg_backend_pid() AND usesysid IS NOT NULL`,
    [name],
  );
  return rows.length;
}

/**
 * Why this role could not swap `name` for a restored copy, or [] when it
 * can: a swap creates a database, renames this one (its owner's right) and
 * must end every session on it (a superuser's sessions only a superuser can).
 */
export async function swapObstacles(client: ClientBase, name: string): Promise<string[]> {
  const { rows } = await client.query<{ creates: boolean; owns: boolean; unkillable: string[] }>(
    `WITH me AS (SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user)
     SELECT (SELECT rolsuper OR rolcreatedb FROM me) AS creates,
            (SELECT (SELECT rolsuper FROM me) OR pg_has_role(current_user, datdba, 'MEMBER') FROM pg_database WHERE datname = $1) AS owns,
            array(SELECT DISTINCT r.rolname::text
                    FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
                   WHERE a.datname = $1 AND a.pid <> pg_backend_pid()
                     AND NOT (SELECT rolsuper FROM me)
                     AND (r.rolsuper OR NOT (pg_has_role(current_user, r.oid, 'MEMBER') OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')))) AS unkillable`,
    [name],
  );
  const row = rows[0];
  const obstacles: string[] = [];
  if (!row?.creates) obstacles.push('the role cannot create databases');
  if (!row?.owns) obstacles.push(`the role does not own ${name}, so it cannot rename it`);
  if (row && row.unkillable.length > 0) obstacles.push(`sessions of ${row.unkillable.join(', ')} are connected and this role cannot end them (superuser, or pg_signal_backend, needed)`);
  return obstacles;
}

export async function databaseOwner(client: ClientBase, name: string): Promise<string | undefined> {
  const { rows } = await client.query<{ owner: string }>(
    'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
    [name],
  );
  return rows[0]?.owner;
}

export async function setDatabaseOwner(client: ClientBase, name: string, owner: string): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdent(name)} OWNER TO ${quoteIdent(owner)}`);
}

/** A privilege on a database (GRANT … ON DATABASE) of a role other than its owner; `grantee` null for PUBLIC. */
export interface DatabaseGrant {
  grantee: string | null;
  privilege: string;
  grantable: boolean;
}

/**
 * The privileges others hold on database `name`, or null when it has the
 * defaults (CONNECT and TEMPORARY to PUBLIC), which a new database has too.
 * The owner's own are not listed: they go with the ownership.
 */
export async function databaseGrants(client: ClientBase, name: string): Promise<DatabaseGrant[] | null> {
  const { rows } = await client.query<{ defaults: boolean; grantee: string | null; privilege: string | null; grantable: boolean | null }>(
    `SELECT d.datacl IS NULL AS defaults, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END AS grantee,
            a.privilege_type AS privilege, a.is_grantable AS grantable
       FROM pg_catalog.pg_database d
       LEFT JOIN LATERAL pg_catalog.aclexplode(d.datacl) a ON a.grantee <> d.datdba
      WHERE d.datname = $1
      ORDER BY 2 NULLS FIRST, 3`,
    [name],
  );
  if (rows.length === 0 || rows[0]!.defaults) return null;
  return rows.flatMap((row) => (row.privilege === null ? [] : [{ grantee: row.grantee, privilege: row.privilege, grantable: row.grantable === true }]));
}

/** Give database `name`, which has the default privileges, those of `grants` instead (databaseGrants); null leaves the defaults. */
export async function setDatabaseGrants(client: ClientBase, name: string, grants: readonly DatabaseGrant[] | null): Promise<void> {
  if (grants === null) return;
  const database = quoteIdent(name);
  await client.query(`REVOKE ALL ON DATABASE ${database} FROM PUBLIC`);
  for (const grant of grants) {
    // privilege_type is one of CREATE, CONNECT, TEMPORARY: a keyword, never user text
    await client.query(`GRANT ${grant.privilege} ON DATABASE ${database} TO ${grant.grantee === null ? 'PUBLIC' : quoteIdent(grant.grantee)}${grant.grantable ? ' WITH GRANT OPTION' : ''}`);
  }
}

/** A setting of a database (`ALTER DATABASE … SET`), or of one role in it (`ALTER ROLE … IN DATABASE … SET`) when `role` names it. */
export interface DatabaseSetting {
  role: string | null;
  name: string;
  /** As pg_db_role_setting holds it: a list's elements quoted as identifiers where they must be, joined by ", ". */
  value: string;
}

export async function databaseSettings(client: ClientBase, name: string): Promise<DatabaseSetting[]> {
  const { rows } = await client.query<DatabaseSetting>(
    `SELECT r.rolname AS role, o.name, o.value
       FROM pg_catalog.pg_db_role_setting s
       JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
       LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
      CROSS JOIN LATERAL pg_catalog.pg_options_to_table(s.setconfig) WITH ORDINALITY AS o (name, value, n)
      WHERE d.datname = $1
      ORDER BY r.rolname NULLS FIRST, o.n`,
    [name],
  );
  return rows;
}

/**
 * The settings whose elements the server quotes as identifiers (GUC_LIST_QUOTE), as pg_dump
 * knows them (variable_is_guc_list_quote): given as one string, the list would be quoted whole.
 */
const QUOTED_LISTS = new Set(['local_preload_libraries', 'search_path', 'session_preload_libraries', 'shared_preload_libraries', 'temp_tablespaces', 'unix_socket_directories']);

/** A setting's value as `SET name TO …` takes it back: each element of a quoted list a string of its own (pg_dump's SplitGUCList). */
function settingValue({ name, value }: DatabaseSetting): string {
  if (!QUOTED_LISTS.has(name.toLowerCase())) return escapeLiteral(value);
  const elements = [...value.matchAll(/\s*(?:"((?:[^"]|"")*)"|([^\s,]+))\s*(?:,|$)/gy)].map((match) => match[1]?.replaceAll('""', '"') ?? match[2] ?? '');
  return elements.length === 0 ? "''" : elements.map((element) => escapeLiteral(element)).join(', ');
}

const setStatement = (database: string, setting: DatabaseSetting): string =>
  `ALTER ${setting.role === null ? '' : `ROLE ${quoteIdent(setting.role)} IN `}DATABASE ${quoteIdent(database)} SET ${quoteIdent(setting.name)} TO ${settingValue(setting)}`;

/** Give database `name` `settings`: a swap restore's copy those of the database it takes the place of. */
export async function setDatabaseSettings(client: ClientBase, name: string, settings: readonly DatabaseSetting[]): Promise<void> {
  for (const setting of settings) await client.query(setStatement(name, setting));
}

/**
 * The settings of `name` this role could not give a database it owns, each
 * with the server's reason: a superuser-only one (log_min_duration_statement,
 * a custom one such as app.tenant), another role's without the right to alter
 * it. Asked of the server itself, which knows its own rules (GRANT SET ON
 * PARAMETER, CREATEROLE with ADMIN): each is set again on `name` to the value
 * it has, in a transaction rolled back.
 */
export async function settingsRefused(client: ClientBase, name: string, settings: readonly DatabaseSetting[]): Promise<string[]> {
  const refused: string[] = [];
  await client.query('BEGIN');
  try {
    for (const setting of settings) {
      await client.query('SAVEPOINT setting');
      await client.query(setStatement(name, setting)).catch(async (error: unknown) => {
        refused.push(`${setting.name}${setting.role === null ? '' : ` of role ${setting.role}`} (${errorMessage(error)})`);
        await client.query('ROLLBACK TO SAVEPOINT setting');
      });
    }
  } finally {
    await client.query('ROLLBACK');
  }
  return refused;
}
