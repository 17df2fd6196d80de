import pg from 'pg';
import { toPgConfig, type ConnectionParams } from '../db/connection.js';
import { endClient } from '../db/session.js';
import { SQLSTATE, sqlstateOf } from '../db/sqlstate.js';
import { BelayError, errorMessage } from '../errors.js';
import { BELAY_SCHEMA } from '../db/belay-schema.js';
import { archiveCatalog, compareWithArchive, partitionsFirst, withoutLiveExtensions, withoutOwnSchema, type ArchiveContents } from './archive-catalog.js';
import type { Manifest } from './manifest.js';
import type { BackupTools } from './pg-tools.js';

export interface ExactRestoreOptions {
  tools: BackupTools;
  env: NodeJS.ProcessEnv;
  lockTimeoutMs: number;
}

const LIST_LIMIT = 10;
/** How long its connections may take to open and to close. */
const CONNECT_TIMEOUT_MS = 10_000;
const listed = (labels: readonly string[]): string =>
  `${labels.slice(0, LIST_LIMIT).join(', ')}${labels.length > LIST_LIMIT ? ` and ${labels.length - LIST_LIMIT} more` : ''}`;

/**
 * What makes an in-place restore put back exactly the snapshot.
 * `pg_restore --clean` drops only what the archive holds: an object created
 * after the snapshot (a table the failed revision made) would survive it, or
 * stop it (a view on a restored table). So, once the damaged state is kept
 * as a quarantine snapshot, the objects the snapshot's table of contents
 * lacks are dropped before pg_restore; after it, the database's objects are
 * compared with that table of contents.
 */
export class ExactRestore {
  private archive: ArchiveContents | undefined;
  /** Objects dropped because the snapshot does not have them. */
  readonly dropped: string[] = [];
  /** Objects the snapshot does not have that could not be dropped. */
  readonly notDropped: string[] = [];

  constructor(
    private readonly manifest: Manifest,
    private readonly target: ConnectionParams,
    private readonly options: ExactRestoreOptions,
  ) {}

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client(
      toPgConfig(this.target, { applicationName: 'belay restore exact', connectTimeoutMs: CONNECT_TIMEOUT_MS, statementTimeoutMs: 10 * 60_000, lockTimeoutMs: this.options.lockTimeoutMs }),
    );
    client.on('error', () => {});
    await client.connect();
    return client;
  }

  /** The snapshot's table of contents, read once. */
  async tableOfContents(): Promise<ArchiveContents> {
    this.archive ??= await archiveCatalog(this.options.tools, this.manifest.path, this.options.env);
    return this.archive;
  }

  /**
   * Drop, in one transaction, the objects the snapshot does not have. Call
   * after the quarantine snapshot, before pg_restore; answers the list
   * pg_restore is to follow (`--use-list`): the snapshot's, without belay's
   * schema entry where the database has that schema (see withoutOwnSchema)
   * and the extensions it has (see withoutLiveExtensions), the partitions' constraints and indexes first (see partitionsFirst).
   */
  async dropNewerObjects(): Promise<string> {
    const { entries, listing } = await this.tableOfContents();
    const client = await this.connect();
    try {
      await client.query('BEGIN');
      const { extra } = await compareWithArchive(client, entries);
      // a sequence owned by a column has no statement of its own: dropping its table, or pg_restore --clean, takes it
      for (const entry of extra) {
        if (entry.drop === undefined) continue;
        await client.query('SAVEPOINT belay_drop');
        try {
          await client.query(entry.drop);
          await client.query('RELEASE SAVEPOINT belay_drop');
          this.dropped.push(entry.label);
        } catch (error) {
          await client.query('ROLLBACK TO SAVEPOINT belay_drop');
          if (sqlstateOf(error) === SQLSTATE.lockNotAvailable) throw error;
          this.notDropped.push(`${entry.label} (${errorMessage(error)})`);
        }
      }
      const { rows } = await client.query<{ present: boolean }>('SELECT to_regnamespace($1) IS NOT NULL AS present', [BELAY_SCHEMA]);
      const extensions = await client.query<{ name: string }>('SELECT extname AS name FROM pg_catalog.pg_extension');
      const ordered = withoutLiveExtensions(await partitionsFirst(client, listing), extensions.rows.map((row) => row.name));
      await client.query('COMMIT');
      return rows[0]?.present ? withoutOwnSchema(ordered) : ordered;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      this.dropped.length = 0;
      const code = sqlstateOf(error);
      throw new BelayError('manual', `could not remove the objects created after snapshot ${this.manifest.id}, so nothing was restored: ${errorMessage(error)}`, {
        hint:
          code === SQLSTATE.lockNotAvailable
            ? `Another session holds a lock on one of them longer than database.lockTimeoutSeconds (${this.options.lockTimeoutMs / 1000} s): end the sessions that hold locks in the database (pg_locks, pg_stat_activity), or raise database.lockTimeoutSeconds, then restore again.`
            : code === SQLSTATE.queryCanceled
              ? 'The statement was canceled (a signal, a statement timeout, or another session): restore again.'
              : 'Fix what the message says, then restore again.',
        details: { sqlstate: code ?? null },
      });
    } finally {
      await endClient(client, CONNECT_TIMEOUT_MS);
    }
  }

  /** How the restored database's objects differ from the snapshot's table of contents; empty when they match. */
  async differences(): Promise<string[]> {
    const { entries } = await this.tableOfContents();
    const client = await this.connect();
    try {
      const { extra, missing } = await compareWithArchive(client, entries);
      return [
        ...(extra.length > 0 ? [`objects the snapshot does not have are still there: ${listed(extra.map((e) => e.label))}`] : []),
        ...(missing.length > 0 ? [`objects of the snapshot are missing: ${listed(missing.map((e) => e.label))}`] : []),
      ];
    } finally {
      await endClient(client, CONNECT_TIMEOUT_MS);
    }
  }

  /** For the outcome message: what was dropped, and where it is kept. */
  note(keptSnapshot: string): string {
    const dropped = this.dropped.length === 0 ? '' : `; ${this.dropped.length} object(s) created after the snapshot were dropped (${listed(this.dropped)}), kept in snapshot ${keptSnapshot}`;
    const left = this.notDropped.length === 0 ? '' : `; could not drop ${listed(this.notDropped)}`;
    return `${dropped}${left}`;
  }
}
