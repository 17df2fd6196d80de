import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg, { escapeLiteral } from 'pg';
import { startTempCluster } from '../cluster/temp-cluster.js';
import { withDatabase, toPgConfig, type ConnectionParams } from '../db/connection.js';
import { errorMessage, preflightError, usageError } from '../errors.js';
import { quoteIdent } from '../db/ident.js';
import { connectError, endClient } from '../db/session.js';
import { SQLSTATE, sqlstateOf } from '../db/sqlstate.js';
import { assertWritable } from '../db/writable.js';
import { createDatabase, dropDatabase, MAINTENANCE_DATABASES, renameDatabase } from '../db/databases.js';
import { markDatabase, type MarkedKind } from '../db/marked-databases.js';

export interface Throwaway {
  params: ConnectionParams;
  /** "ephemeral cluster in /tmp/…" or "database X on server Y". */
  where: string;
  /** What of it may be left now (the databases it made and has not dropped yet): what a removal cut short names. */
  readonly left: string;
  /** What to do by hand when dispose failed and it is left behind. */
  readonly removeByHand: string;
  /** What rehearsals killed outright had left (their ephemeral clusters), removed as this one was made, or named where that failed. */
  orphans: string[];
  /**
   * Another database on the same server, a copy of `template` (CREATE
   * DATABASE … TEMPLATE: nobody may be connected to it meanwhile), removed
   * with the rest by dispose.
   */
  copyDatabase(template: string): Promise<ConnectionParams>;
  /** Another database, new from template1 (as the first was, unless it came from another template), removed with the rest by dispose. */
  freshDatabase(): Promise<ConnectionParams>;
  /** Drop one of the databases this throwaway made. */
  dropDatabase(name: string): Promise<void>;
  /** Cancel the statement each session in its databases is running (as pg_cancel_backend does): a signal stops the rehearsal now. */
  cancel(): Promise<void>;
  /** Remove it: the cluster (stopped and deleted) or every database it made (dropped, their sessions ended). Each call waits for the same removal. */
  dispose(): Promise<void>;
}

/** The ephemeral cluster's maintenance database. */
const MAINTENANCE = 'template1';

const sessionOptions = { applicationName: 'belay rehearse', connectTimeoutMs: 10_000, statementTimeoutMs: 0, lockTimeoutMs: 10_000 };

/**
 * A connection to the first of `databases` that accepts the role (the ones the
 * throwaways are made and dropped from); answers which one. Only a refused
 * connection moves on to the next.
 */
async function openMaintenance(server: ConnectionParams, databases: readonly string[]): Promise<{ client: pg.Client; database: string }> {
  let refused: unknown;
  for (const database of databases) {
    const client = new pg.Client(toPgConfig(withDatabase(server, database), sessionOptions));
    client.on('error', () => {});
    try {
      await client.connect();
      return { client, database };
    } catch (error) {
      refused ??= error;
    }
  }
  throw connectError(withDatabase(server, databases[0] ?? server.database), refused);
}

/** Run `work` on a connection to the first of `databases` that accepts the role (openMaintenance); answers which one. */
async function onMaintenance(server: ConnectionParams, work: (client: pg.Client) => Promise<void>, databases: readonly string[]): Promise<string> {
  const { client, database } = await openMaintenance(server, databases);
  try {
    await work(client);
    return database;
  } finally {
    await endClient(client, sessionOptions.connectTimeoutMs);
  }
}

/** More databases named after the first: `<name>_c1`, `<name>_c2`, … */
function copier(
  server: ConnectionParams,
  first: string,
  made: Set<string>,
  maintenance: string,
  mark: (name: string) => Promise<void> = async () => {},
): Pick<Throwaway, 'copyDatabase' | 'freshDatabase' | 'dropDatabase' | 'cancel'> {
  let copies = 0;
  const make = async (options: { template?: string }): Promise<ConnectionParams> => {
    const name = `${first}_c${++copies}`;
    made.add(name);
    await onMaintenance(server, (client) => createDatabase(client, name, options), [maintenance]);
    await mark(name);
    return withDatabase(server, name);
  };
  return {
    copyDatabase: (from) => make({ template: from }),
    freshDatabase: () => make({}),
    dropDatabase: async (name) => {
      if (!made.has(name)) return;
      await onMaintenance(server, (client) => dropDatabase(client, name), [maintenance]);
      made.delete(name);
    },
    cancel: async () => {
      await onMaintenance(
        server,
        async (client) => {
          // the rehearsal's own sessions: another role's (autovacuum's) this role may not cancel, and the query would fail
          await client.query('SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = ANY($1) AND usename = current_user AND pid <> pg_backend_pid()', [[...made]]);
        },
        [maintenance],
      );
    },
  };
}

/**
 * A fresh cluster in a temp dir (initdb, socket only), removed afterwards.
 * The rehearsal runs in the database initdb made as `postgres` (a copy of
 * template1, like any CREATE DATABASE), renamed: a CREATE DATABASE copies
 * the template through the WAL and costs a few hundred milliseconds here.
 * Nothing else uses this cluster: template1 serves as its maintenance database.
 */
export async function ephemeralCluster(pgBin: string | undefined, path: string | undefined): Promise<Throwaway> {
  const cluster = await startTempCluster({ prefix: 'belay-rehearse-', superuser: 'postgres', tcp: false, pgBin, path });
  const { spec } = cluster;
  const params: ConnectionParams = { host: spec.socketDir, port: spec.port, user: spec.superuser, database: 'rehearsal', source: 'ephemeral cluster' };
  try {
    await onMaintenance(params, (client) => renameDatabase(client, 'postgres', 'rehearsal'), [MAINTENANCE]);
  } catch (error) {
    await cluster.remove();
    throw error;
  }
  const { removed, kept } = cluster.orphans;
  return {
    params,
    where: `an ephemeral cluster in ${cluster.root}`,
    orphans: [
      ...removed.map((root) => `removed the ephemeral cluster a killed rehearse left in ${root} (its server stopped)`),
      ...kept.map(({ root, why }) => `could not remove the ephemeral cluster a killed rehearse left in ${root}: ${why}`),
    ],
    left: `an ephemeral cluster in ${cluster.root}`,
    removeByHand: `Delete ${cluster.root} by hand once no server runs from it (its data folder is ${spec.dataDir}): belay made it for this rehearsal only.`,
    ...copier(params, 'rehearsal', new Set(['rehearsal']), MAINTENANCE),
    dispose: cluster.remove,
  };
}

/** The throwaway a rehearsal on `server` makes, as a fault names it before it is made (its random name unknown). */
export function unnamedThrowaway(server: ConnectionParams | undefined): Pick<Throwaway, 'where' | 'left' | 'removeByHand'> {
  if (server) {
    return {
      where: 'a database belay_rehearse_<random> on the connected server',
      left: 'a database belay_rehearse_<random> on the connected server',
      removeByHand: 'Drop that database by hand, if it was made, once its server answers (the newest belay_rehearse_ one no rehearsal still runs on): belay made it for this rehearsal only.',
    };
  }
  const where = `an ephemeral cluster in ${join(tmpdir(), 'belay-rehearse-<pid>-<random>')}`;
  return {
    where,
    left: where,
    removeByHand: 'Delete that folder by hand, if it was made, once no server runs from it: belay made it for this rehearsal only.',
  };
}

export const REHEARSAL_PREFIX = 'belay_rehearse_';

/** The databases a rehearsal makes on a real server: `belay_rehearse_<10 hex>`, and its copies `…_c1`, `…_c2`. */
export const REHEARSAL_DATABASES: MarkedKind = {
  markerPrefix: 'belay rehearsal ',
  namePrefix: () => REHEARSAL_PREFIX,
  nameRest: '^[0-9a-f]{10}(_c[0-9]+)?$',
};

/**
 * A new database on the given server (from a template when named), dropped
 * afterwards with every copy of it. Each is marked as belay's for the
 * connected database (markDatabase) as soon as it is made.
 */
export async function throwawayDatabase(server: ConnectionParams, template: string | undefined): Promise<Throwaway> {
  const name = `${REHEARSAL_PREFIX}${randomBytes(5).toString('hex')}`;
  // the maintenance databases, else the connected one itself, for a role that may connect to neither (CONNECT
  // revoked from PUBLIC, pg_hba.conf); never the template: a CREATE DATABASE waits for no session on it
  const candidates = [...MAINTENANCE_DATABASES, server.database].filter((database) => database !== template);
  const keeper = await openMaintenance(server, candidates).then(async (opened) => {
    try {
      await assertWritable(opened.client, opened.database);
      await createDatabase(opened.client, name, template ? { template } : {});
    } catch (error) {
      await endClient(opened.client, sessionOptions.connectTimeoutMs);
      throw error;
    }
    return opened;
  }).catch((error: unknown) => {
    const state = sqlstateOf(error);
    if (template && state === SQLSTATE.invalidCatalogName) {
      throw usageError(`--template ${template}: ${errorMessage(error)}`, { hint: 'Name a database of the connected server to copy (--template NAME), or leave --template out. Nothing was touched.', cause: error });
    }
    if (template && state === SQLSTATE.objectInUse) {
      throw preflightError(`--template ${template}: ${errorMessage(error)}`, {
        hint: `CREATE DATABASE … TEMPLATE copies a database nobody is connected to: end the sessions on ${template} (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${escapeLiteral(template)}), or name another template. Nothing was touched.`,
        cause: error,
      });
    }
    if (state !== SQLSTATE.insufficientPrivilege) throw error;
    throw preflightError(`${server.user} may not create the throwaway database a rehearsal on the connected server runs in: ${errorMessage(error)}`, {
      hint: `As a superuser: ALTER ROLE ${quoteIdent(server.user)} CREATEDB; or rehearse on a cluster belay starts for the rehearsal alone (no --database-url, databaseUrl, DATABASE_URL or PG* variables set). Nothing was touched.`,
      cause: error,
    });
  });
  const maintenance = keeper.database;
  // the keeper's session stays open until the databases are dropped: the marker names it, so a `status` or `recover`
  // meanwhile sees them in use; a rehearse killed from the mark on leaves them to `recover`
  const mark = (database: string): Promise<void> => markDatabase(keeper.client, REHEARSAL_DATABASES, database, server.database);
  await mark(name).catch(async (error: unknown) => {
    await dropDatabase(keeper.client, name).catch(() => {});
    await endClient(keeper.client, sessionOptions.connectTimeoutMs);
    throw error;
  });
  const where = `database ${name}${template ? ` (from template ${template})` : ''} on the connected server`;
  const made = new Set([name]);
  let disposing: Promise<void> | undefined;
  const drop = async (): Promise<void> => {
    try {
      await onMaintenance(server, async (client) => {
        for (const database of made) {
          await dropDatabase(client, database);
          made.delete(database);
        }
      }, [maintenance]);
    } catch (error) {
      throw new Error(`${[...made].join(', ')} not dropped: ${errorMessage(error)}`, { cause: error });
    } finally {
      await endClient(keeper.client, sessionOptions.connectTimeoutMs);
    }
  };
  return {
    params: { ...withDatabase(server, name), source: `throwaway database on ${server.host}` },
    where,
    orphans: [],
    // the copies (`_c1`, …) included: the first may be gone while they are not
    get left() {
      return made.size === 0 ? where : `${made.size === 1 ? 'database' : 'databases'} ${[...made].join(', ')} on the connected server`;
    },
    get removeByHand() {
      const drops = [...made].map((database) => `DROP DATABASE IF EXISTS ${quoteIdent(database)};`).join(' ');
      return `Drop what is left of it by hand once its server answers${drops ? `: ${drops}` : ''} (belay made it for this rehearsal only).`;
    },
    ...copier(server, name, made, maintenance, mark),
    dispose: () => (disposing ??= drop()),
  };
}
